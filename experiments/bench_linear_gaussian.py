"""Benchmark: conditional means and covariances of linear-Gaussian networks, gm (jit + vmap) against pgmpy.

    python -m experiments.bench_linear_gaussian [--quick] [--networks ecoli70,arth150] [--batch 2000]
                                                [--out runs/bench_linear_gaussian]

For each Gaussian network pgmpy ships, B evidence sets are drawn by forward sampling with 20% of the
variables observed. Two workloads, same sets for both libraries:

* **per-row patterns** (each set observes its own variables): gm answers all B with one compiled
  ``jax.vmap(linear_gaussian.posterior)`` (the square-root QR per set); pgmpy's
  ``LinearGaussianBayesianNetwork.predict_probability`` takes one DataFrame per observed pattern, so it
  is called once per set (timed on the first few sets and reported per set).
* **one pattern** (all B sets observe the same variables): pgmpy answers them in one
  ``predict_probability`` call; gm uses ``jax.vmap(linear_gaussian.condition)`` over the values, which
  factors Σ_bb once for the batch.

Reported: evidence sets per second for both and the ratio gm/pgmpy (median of repeats, after
compilation), gm's compile time, and the largest difference of conditional means between the two
(relative to the largest |mean|) and of conditional variances (relative).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from experiments._common import median_seconds, write_results
from gm.data.networks import GAUSSIAN_NETWORKS, gaussian_json_path, load_network
from gm.learn import linear_gaussian as lg


def evidence_sets(net, key, batch: int, fraction: float = 0.2):
    """``(values f32[B, n], observed bool[B, n])``: forward samples with ``fraction`` observed."""
    k_sample, k_mask = jax.random.split(key)
    x = np.asarray(lg.sample(k_sample, net, batch))
    observed = np.asarray(jax.random.uniform(k_mask, x.shape)) < fraction
    return x, observed

def _compiled(fn, *args):
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    seconds = time.perf_counter() - start
    jax.block_until_ready(compiled(*args))
    return compiled, seconds


def _pgmpy_predict(pg, net, x, observed_row):
    import pandas as pd

    cols = [net.names[i] for i in np.flatnonzero(observed_row)]
    return pg.predict_probability(pd.DataFrame(x[:, observed_row], columns=cols))


def _differences(net, gm_mean, gm_var, missing, mean, cov):
    idx = np.asarray([net.index(m) for m in missing], int)
    dm = np.abs(np.asarray(gm_mean, np.float64)[..., idx] - mean).max() / np.abs(mean).max()
    dv = (np.abs(np.asarray(gm_var, np.float64)[..., idx] - np.diagonal(cov)) / np.diagonal(cov)).max()
    return float(dm), float(dv)


def run_network(name: str, batch: int, repeats: int, pgmpy_sets: int, seed: int = 0) -> dict:
    from pgmpy.models import LinearGaussianBayesianNetwork

    net = load_network(name)
    pg = LinearGaussianBayesianNetwork.load(gaussian_json_path(name))
    x, observed = evidence_sets(net, jax.random.key(seed), batch)
    evidence = lg.Evidence(jnp.asarray(x), jnp.asarray(observed))

    # per-row patterns
    per_row = jax.vmap(lg.posterior, in_axes=(None, 0))
    compiled, compile_rows = _compiled(per_row, net, evidence)
    gm_rows = median_seconds(lambda: compiled(net, evidence), repeats, warmup=False)
    post = compiled(net, evidence)
    start = time.perf_counter()
    diffs = []
    for k in range(pgmpy_sets):
        missing, mean, cov = _pgmpy_predict(pg, net, x[k : k + 1], observed[k])
        diffs.append(_differences(net, post.mean[k], np.diagonal(post.covariance[k]), missing, mean[0], cov))
    pg_rows = (time.perf_counter() - start) / pgmpy_sets

    # one pattern for the whole batch
    pattern = observed[0]
    index = tuple(int(i) for i in np.flatnonzero(pattern))
    values = jnp.asarray(x[:, pattern])
    g = lg.joint(net)
    one = jax.vmap(lambda v: lg.condition(g, index, v))
    compiled1, compile_one = _compiled(one, values)
    gm_one = median_seconds(lambda: compiled1(values), repeats, warmup=False)
    cond = compiled1(values)
    pg_times = []
    for _ in range(max(1, repeats // 2)):
        start = time.perf_counter()
        missing, mean, cov = _pgmpy_predict(pg, net, x, pattern)
        pg_times.append(time.perf_counter() - start)
    pg_one = statistics.median(pg_times)
    dm1, dv1 = _differences(net, jnp.zeros((batch, net.n_vars)).at[:, ~pattern].set(cond.mean),
                            jnp.zeros(net.n_vars).at[~pattern].set(jnp.diagonal(cond.covariance[0])),
                            missing, mean, cov)
    return {
        "network": name, "n_vars": net.n_vars, "batch": batch,
        "rows_gm_sets_per_s": batch / gm_rows, "rows_pgmpy_sets_per_s": 1.0 / pg_rows,
        "rows_ratio": (batch / gm_rows) * pg_rows, "rows_compile_s": compile_rows,
        "rows_mean_diff": max(d[0] for d in diffs), "rows_var_diff": max(d[1] for d in diffs),
        "one_gm_sets_per_s": batch / gm_one, "one_pgmpy_sets_per_s": batch / pg_one,
        "one_ratio": pg_one / gm_one, "one_compile_s": compile_one,
        "one_mean_diff": dm1, "one_var_diff": dv1, "pgmpy_sets_timed": pgmpy_sets,
    }


def table(rows) -> str:
    head = ("| network | n | B | per-row patterns: gm sets/s | pgmpy sets/s | gm/pgmpy | compile s | "
            "one pattern: gm sets/s | pgmpy sets/s | gm/pgmpy | max rel. diff mean / var |")
    lines = [head, "|---" * 11 + "|"]
    for r in rows:
        lines.append(
            f"| {r['network']} | {r['n_vars']} | {r['batch']} | {r['rows_gm_sets_per_s']:.4g} | "
            f"{r['rows_pgmpy_sets_per_s']:.4g} | {r['rows_ratio']:.3g} | {r['rows_compile_s']:.2f} | "
            f"{r['one_gm_sets_per_s']:.4g} | {r['one_pgmpy_sets_per_s']:.4g} | {r['one_ratio']:.3g} | "
            f"{max(r['rows_mean_diff'], r['one_mean_diff']):.1e} / {max(r['rows_var_diff'], r['one_var_diff']):.1e} |"
        )
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description="gm vs pgmpy: Gaussian conditionals for a batch of evidence sets")
    parser.add_argument("--quick", action="store_true", help="two networks, small batch (for tests)")
    parser.add_argument("--networks", default=None, help="comma-separated names (default: all four)")
    parser.add_argument("--batch", type=int, default=None, help="evidence sets per network (default 2000, quick 100)")
    parser.add_argument("--repeats", type=int, default=None, help="timing repeats (default 5, quick 2)")
    parser.add_argument("--pgmpy-sets", type=int, default=None, help="per-row sets timed for pgmpy (default 50)")
    parser.add_argument("--out", default="runs/bench_linear_gaussian")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)
    names = args.networks.split(",") if args.networks else (("ecoli70", "magic-niab") if args.quick else GAUSSIAN_NETWORKS)
    batch = args.batch or (100 if args.quick else 2000)
    repeats = args.repeats or (2 if args.quick else 5)
    pgmpy_sets = args.pgmpy_sets or (5 if args.quick else 50)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for name in names:
        row = run_network(name, batch, repeats, pgmpy_sets)
        rows.append(row)
        print(json.dumps({k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    write_results(os.path.join(args.out, "results.json"), {"device": str(jax.devices()[0]), "load_average": load, "rows": rows})
    text = table(rows)
    print(text)
    print(f"load average: {load}")
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(text + "\n")
    return rows


if __name__ == "__main__":
    main()
