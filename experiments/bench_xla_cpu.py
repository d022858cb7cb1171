"""Benchmark: the rates XLA:CPU reaches on the operations that the largest product of a big network is made of.

    python -m experiments.bench_xla_cpu [--networks water,barley,munin1] [--out runs/bench_xla_cpu]

Issue 16 asks batched all-marginals on water, barley and munin1 to reach 25% of the machine's float32
matrix-product peak. This script measures the building blocks that bound them, one network's largest
matrix-product step at a time, as `bn.map_batched(bn.marginals, ...)` runs it (a chunk of evidence sets
under `jax.vmap`; both operands of that step depend on the evidence, so the chunk is a batch dimension of
the product, not one of its matrix dimensions).

Table 1, the step's products, in multiply-adds per second and as a share of the 2048^2 peak measured in
the same run:
- ``fwd``: the forward product ``x[H, M, K] @ y[H, K, N]`` (H = chunk x the step's batch labels);
- ``dx``: the reverse pass's ``g @ y^T``, ``dy``: its ``x^T @ g``;
- ``2-D``: the same multiply-adds as one ``[H M, K] @ [K, N]`` product, what a step with one unbatched
  operand gets (the chunk folded into M).

Table 2, writing the step's left operand in its product's layout from the layout the plan holds it in
(a transpose whose result feeds the product), in nanoseconds per entry:
- ``copy``: an elementwise multiply, no transpose (memory speed);
- ``N-d``: the transpose, its result left with one axis per label;
- ``merged``: the same transpose with the labels of each group merged into one axis, as the product
  reads it (``[H, M, K]``). XLA fuses that reshape into the transposing loop, which then runs over the
  merged shape.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from gm import bn
from gm.data.networks import load_network
from experiments._common import write_results

NETWORKS = ("water", "barley", "munin1")
# Evidence sets per chunk: `bn.map_batched` on the unrolled engine keeps a chunk's largest intermediate
# near 8 MB (at least 4 sets, at most 4,096): water 18, barley 4, munin1 4.
CHUNK_BYTES = 8e6
_HI = jax.lax.Precision.HIGHEST


def timed(fn, *args, repeats: int = 15) -> float:
    """Median seconds of the compiled ``fn(*args)`` (compiled and run once first)."""
    fn = jax.jit(fn)
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak(n: int = 2048) -> float:
    a = jnp.ones((n, n), jnp.float32)
    return n**3 / timed(lambda x: x @ x, a, repeats=5)


def product_steps(net: bn.BayesNet, share: float):
    """The plan's pairwise steps, largest first, that together make ``share`` of its multiply-adds, each as
    ``(multiply-adds, a's labels, groups (h, m, k, n), both operands intermediates)``."""
    p = bn.network_plan(net.structure)
    labels, sizes, n_in = p.labels, p.sizes, len(p.inputs)
    steps = []
    for step in p.steps:
        if step.b < 0:
            continue
        la, lb, out = labels[step.a], labels[step.b], set(step.out)
        madds = math.prod(sizes[l] for l in set(out) | set(la) | set(lb))
        h = tuple(l for l in la if l in lb and l in out)
        k = tuple(l for l in la if l in lb and l not in out)
        m = tuple(l for l in la if l not in lb and l in out)
        n = tuple(l for l in lb if l not in la and l in out)
        steps.append((madds, la, (h, m, k, n), step.a >= n_in and step.b >= n_in))
    steps.sort(key=lambda s: -s[0])
    chosen, total = [], 0.0
    for s in steps:
        if total >= share * p.flops:
            break
        chosen.append(s)
        total += s[0]
    return chosen, p


def product_rates(H, M, K, N, rng) -> dict:
    """Multiply-adds per second of ``x[H, M, K] @ y[H, K, N]`` and of its reverse pass's two products."""
    x = jnp.asarray(rng.random((H, M, K)), jnp.float32)
    y = jnp.asarray(rng.random((H, K, N)), jnp.float32)
    g = jnp.asarray(rng.random((H, M, N)), jnp.float32)
    madds = H * M * K * N
    dims = lambda c, b: ((c, b), ((0,), (0,)))
    return {
        "fwd": madds / timed(lambda x, y: jax.lax.dot_general(x, y, dims((2,), (1,)), precision=_HI), x, y),
        "dx": madds / timed(lambda g, y: jax.lax.dot_general(g, y, dims((2,), (2,)), precision=_HI), g, y),
        "dy": madds / timed(lambda x, g: jax.lax.dot_general(x, g, dims((1,), (1,)), precision=_HI), x, g),
        "2-D": madds / timed(lambda x, y: x.reshape(H * M, K) @ y[0], x, y),
    }


def measure(name: str, gemm_peak: float, share: float) -> dict:
    net = load_network(name)
    steps, p = product_steps(net, share)
    chunk = int(min(4096, max(4, CHUNK_BYTES // (4 * max(1, p.largest)))))
    sizes = p.sizes
    size = lambda g: math.prod(sizes[l] for l in g)
    rng = np.random.default_rng(0)
    floor = 0.0  # seconds per evidence set of the chosen steps' three products at the measured rates
    floor_nn = 0.0  # the same if the reverse pass's two products ran as fast as the forward one
    for i, (madds, la, (h, m, k, n), both_batched) in enumerate(steps):
        # under jax.vmap the chunk is a batch of matrices when both operands carry it; a CPT operand
        # enters unbatched, and the chunk joins the other operand's free dimension
        H, M = (chunk * size(h), size(m)) if both_batched else (size(h), chunk * size(m))
        K, N = size(k), size(n)
        rates = product_rates(H, M, K, N, rng)
        floor += madds * sum(1.0 / rates[key] for key in ("fwd", "dx", "dy"))
        floor_nn += 3 * madds / rates["fwd"]
        if i == 0:
            largest = {"H": H, "M": M, "K": K, "N": N, "both_batched": both_batched, "madds": madds,
                       **{f"{key}_gmac_s": v / 1e9 for key, v in rates.items()},
                       **{f"{key}_share": v / gemm_peak for key, v in rates.items()}}
            h_, m_, k_ = h, m, k
            la_ = la
    budget = 3 * p.flops / (0.25 * gemm_peak)  # seconds per set at 25% of the peak
    # the largest step's left operand: held in the plan's label order, written in the product's h + m + k
    source = tuple(l for l in la_ if l in h_ + m_ + k_)
    target = h_ + m_ + k_
    perm = (0,) + tuple(1 + source.index(l) for l in target)
    t = jnp.asarray(rng.random((chunk,) + tuple(sizes[l] for l in source)), jnp.float32)
    merged = (chunk * size(h_), size(m_), size(k_))
    writes = {
        "copy": timed(lambda t: t * 2.0, t) / t.size,
        "N-d": timed(lambda t: jnp.transpose(t, perm) * 2.0, t) / t.size,
        "merged": timed(lambda t: (jnp.transpose(t, perm) * 2.0).reshape(merged), t) / t.size,
    }
    return {"network": name, "chunk": chunk, "plan_madds": p.flops, "steps_timed": len(steps),
            "steps_madds": sum(s[0] for s in steps), "products_ms_per_1000": floor * 1e6,
            "products_at_fwd_rate_ms_per_1000": floor_nn * 1e6,
            "budget_ms_per_1000": budget * 1e6, **largest,
            **{f"{key}_ns_per_entry": v * 1e9 for key, v in writes.items()}}


def tables(rows: list[dict], gemm_peak: float) -> str:
    lines = [f"float32 GEMM peak (2048^2) in this run: {gemm_peak / 1e9:.1f} GMAC/s", "",
             "The largest product step (H x (M x K x N) per chunk), GMAC/s (share of the peak):", "",
             "| network | chunk | H x (M x K x N) | fwd | dx = g y^T | dy = x^T g | 2-D, chunk in M |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[f'{k}_gmac_s']:.1f} ({r[f'{k}_share']:.0%})" for k in ("fwd", "dx", "dy", "2-D")]
        lines.append(f"| {r['network']} | {r['chunk']} | {r['H']} x ({r['M']} x {r['K']} x {r['N']}) | " + " | ".join(cells) + " |")
    lines += ["", "The products alone, at these rates, against the time 25% of the peak allows (ms per 1,000 sets):", "",
              "| network | steps timed (share of the plan's multiply-adds) | their three products | the same, all at the fwd rate | 25% of peak allows, all work |",
              "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['network']} | {r['steps_timed']} ({r['steps_madds'] / r['plan_madds']:.0%}) | "
                     f"{r['products_ms_per_1000']:,.0f} | {r['products_at_fwd_rate_ms_per_1000']:,.0f} | {r['budget_ms_per_1000']:,.0f} |")
    lines += ["", "Writing the largest step's left operand in its product's layout, ns per entry:", "",
              "| network | copy | transpose, N-d result | transpose, merged [H, M, K] |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['network']} | {r['copy_ns_per_entry']:.2f} | {r['N-d_ns_per_entry']:.2f} | "
                     f"{r['merged_ns_per_entry']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description="XLA:CPU rates on the big networks' largest product step")
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--share", type=float, default=0.9, help="time the largest steps making this share of the multiply-adds")
    parser.add_argument("--out", default="runs/bench_xla_cpu")
    args = parser.parse_args(argv)
    gemm_peak = peak()
    rows = [measure(name, gemm_peak, args.share) for name in args.networks.split(",")]
    text = tables(rows, gemm_peak)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    write_results(os.path.join(args.out, "results.json"), {"device": str(jax.devices()[0]), "peak_gmac_s": gemm_peak / 1e9, "rows": rows})
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(text + "\n")
    return rows


if __name__ == "__main__":
    main()
