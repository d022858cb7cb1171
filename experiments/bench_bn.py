"""Benchmark: all posterior marginals for B evidence sets, gm (jit + vmap) against pgmpy, same run.

    python -m experiments.bench_bn [--quick] [--networks alarm,hepar2] [--batch 1000] [--out runs/bench_bn]

For each network bundled with pgmpy: B evidence sets are drawn by forward sampling with 20% of the
variables observed (the same sets for both libraries). gm answers all B with one compiled function
(`bn.map_batched(bn.marginals, ...)`, timed after compilation, median over repeats); pgmpy's
VariableElimination answers one query per unobserved variable (its own elimination order and pruning
per query; a single ``joint=False`` call ran out of memory on hepar2), timed on the first few sets. Reported: evidence sets per second for both and their ratio, gm's compile time and path
search time (apart from the run time), the contraction's multiply-adds (log10) and largest intermediate,
and the largest absolute difference between the two libraries' marginals.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
import warnings

import jax
import numpy as np

from gm import bn, parallel
from gm.data.networks import load_network
from experiments._common import write_results

FULL = ("asia", "alarm", "child", "insurance", "hepar2", "win95pts", "hailfinder", "water", "barley",
        "mildew", "pathfinder", "andes", "munin1", "pigs", "diabetes", "munin2", "link")
QUICK = ("asia", "alarm", "child", "insurance")
# pgmpy evidence sets timed per network (pgmpy takes seconds to a minute per set on the large ones).
PGMPY_SETS = {"munin1": 5, "link": 1, "andes": 3, "pigs": 3, "pathfinder": 5, "water": 5, "diabetes": 1, "munin2": 1}
# Smaller batches where one evidence set costs ~1e8 multiply-adds.
BATCH = {"munin1": 100, "link": 100}


def evidence_sets(net: bn.BayesNet, key, batch: int, fraction: float = 0.2) -> np.ndarray:
    """B forward-sampled assignments with ``fraction`` of the variables observed, int32[B, n_vars]."""
    k_sample, k_mask = jax.random.split(key)
    x = np.asarray(bn.sample(k_sample, net, batch))
    observed = np.asarray(jax.random.uniform(k_mask, x.shape)) < fraction
    return np.where(observed, x, -1).astype(np.int32)


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """The machine's float32 matrix-product rate in the same run: multiply-adds per second of an n x n GEMM."""
    import jax.numpy as jnp

    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(f(a))
        times.append(time.perf_counter() - start)
    return n**3 / statistics.median(times)


def time_gm(net, evs, repeats: int, method: str = "auto"):
    fn = jax.jit(lambda net, evs: bn.map_batched(bn.marginals, net, evs, method=method))
    start = time.perf_counter()
    plan = bn.network_plan(net.structure)
    plan_seconds = time.perf_counter() - start
    start = time.perf_counter()
    compiled = fn.lower(net, evs).compile()
    compile_seconds = time.perf_counter() - start
    out = jax.block_until_ready(compiled(net, evs))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(net, evs))
        times.append(time.perf_counter() - start)
    return out, statistics.median(times), compile_seconds, plan, plan_seconds


def time_pgmpy(net, evs, n_sets: int):
    from pgmpy.inference import VariableElimination

    model = bn.to_pgmpy(net)
    engine = VariableElimination(model)
    results, times = [], []
    for b in range(n_sets):
        evidence = {net.names[i]: net.states[i][v] for i, v in enumerate(evs[b]) if v >= 0}
        hidden = [n for i, n in enumerate(net.names) if evs[b, i] < 0]
        start = time.perf_counter()
        factors = {v: engine.query([v], evidence=evidence, show_progress=False) for v in hidden}
        times.append(time.perf_counter() - start)
        post = {}
        for name, factor in factors.items():
            i = net.index(name)
            order = [factor.state_names[name].index(s) for s in net.states[i]]
            post[name] = np.asarray(factor.values)[order]
        results.append(post)
    return results, statistics.median(times)


def run_network(name: str, batch: int, repeats: int, pgmpy_sets: int, seed: int = 0, method: str = "auto") -> dict:
    net = load_network(name)
    evs = evidence_sets(net, jax.random.PRNGKey(seed), batch)
    out, seconds, compile_seconds, plan, plan_seconds = time_gm(net, evs, repeats, method)
    ref, pgmpy_seconds = time_pgmpy(net, evs, pgmpy_sets)
    diffs = [np.abs(np.asarray(out[var][b], np.float64) - p) for b, post in enumerate(ref) for var, p in post.items()]
    diff = float(np.max(np.concatenate(diffs))) if diffs else float("nan")  # NaN anywhere shows up
    nan = any(bool(np.isnan(np.asarray(v)).any()) for v in out.values())
    gm_rate = batch / seconds
    pgmpy_rate = 1.0 / pgmpy_seconds
    return {
        "network": name,
        "variables": net.n_vars,
        "batch": batch,
        "gm_sets_per_s": gm_rate,
        "pgmpy_sets_per_s": pgmpy_rate,
        "pgmpy_sets_timed": pgmpy_sets,
        "ratio": gm_rate / pgmpy_rate,
        "compile_s": compile_seconds,
        "path_search_s": plan.search_seconds if plan.search_seconds else plan_seconds,
        "log10_flops": plan.log10_flops,
        "largest_intermediate": plan.largest,
        "max_abs_diff": diff,
        "nan": nan,
        "method": method,
        # forward + reverse pass: about 3x the plan's multiply-adds per evidence set
        "gmac_per_s": 3 * plan.flops * batch / seconds / 1e9,
    }


def table(rows) -> str:
    head = ("| network | vars | B | gm sets/s | pgmpy sets/s | ratio | compile s | path s | log10 FLOPs "
            "| largest | GMAC/s | max abs diff |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        lines.append(
            f"| {r['network']} | {r['variables']} | {r['batch']} | {r['gm_sets_per_s']:,.0f} | "
            f"{r['pgmpy_sets_per_s']:,.2f} | {r['ratio']:,.0f}x | {r['compile_s']:.1f} | "
            f"{r['path_search_s']:.1f} | {r['log10_flops']:.1f} | {r['largest_intermediate']:,} | "
            f"{r.get('gmac_per_s', float('nan')):.2f} | {r['max_abs_diff']:.1e} |"
        )
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description="gm vs pgmpy: all marginals for a batch of evidence sets")
    parser.add_argument("--quick", action="store_true", help="small networks, small batch (for tests)")
    parser.add_argument("--networks", default=None, help="comma-separated names (default: all, or the quick set)")
    parser.add_argument("--batch", type=int, default=None, help="evidence sets per network (default 1000, quick 200)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", default="runs/bench_bn")
    parser.add_argument("--compile-cache", nargs="?", const="", default=None, metavar="DIR",
                        help="JAX's persistent compilation cache (default dir ~/.cache/gm/xla): a second run "
                             "reports the cached load time as compile time")
    parser.add_argument("--method", default="auto", choices=bn.inference.METHODS,
                        help="the engine for the batched marginals (auto: the step program under jit)")
    parallel.add_distributed_args(parser)
    args = parser.parse_args(argv)
    parallel.initialize_from_args(args)
    if args.compile_cache is not None:
        import gm

        gm.enable_compilation_cache(args.compile_cache or None)
    warnings.filterwarnings("ignore", category=FutureWarning)
    names = args.networks.split(",") if args.networks else (QUICK if args.quick else FULL)
    repeats = args.repeats or (3 if args.quick else 5)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    try:
        from tqdm import tqdm
    except ImportError:  # progress bars are optional
        def tqdm(x, **_):
            return x
    for name in tqdm(names, desc="networks"):
        batch = args.batch or (200 if args.quick else BATCH.get(name, 1000))
        pgmpy_sets = 3 if args.quick else PGMPY_SETS.get(name, 20)
        row = run_network(name, batch, repeats, pgmpy_sets, method=args.method)
        rows.append(row)
        print(json.dumps({k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
        write_results(os.path.join(args.out, "results.json"), {"device": str(jax.devices()[0]), "rows": rows})
    peak = matmul_peak()
    text = table(rows) + f"\n\nfloat32 GEMM peak measured in this run: {peak / 1e9:.1f} GMAC/s"
    print(text)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(text + "\n")
    return rows


if __name__ == "__main__":
    main()
