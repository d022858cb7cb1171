"""Timing of parameter learning on alarm (37 variables, 509 free parameters).

    python -m experiments.bench_learn [--quick] [--out runs/bench_learn] [--records 100000]

Samples records from alarm and times, separately, the first call (trace + compile + run) and the median
of repeated calls after compilation of: `gm.learn.mle`, `gm.learn.dirichlet` (BDeu, ESS 5), 100
bootstrap replicates of the MLE in one `vmap`, and one EM iteration with 20% of the values missing
(10,000 records). With ``--pgmpy`` (default in the full run) also pgmpy's MaximumLikelihoodEstimator on
the same records, for scale. Writes ``results.json``.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from gm import bn, learn
from gm.data import load_network
from experiments._common import write_results


def _time(fn, *args, repeats: int):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        runs.append(time.perf_counter() - t0)
    return dict(first_call_s=first, median_s=float(np.median(runs)), repeats=repeats)


def main(argv=None):
    ap = argparse.ArgumentParser(description="gm.learn timings on alarm")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="runs/bench_learn")
    ap.add_argument("--records", type=int, default=None)
    ap.add_argument("--pgmpy", action=argparse.BooleanOptionalAction, default=None)
    args = ap.parse_args(argv)
    n = args.records or (10_000 if args.quick else 100_000)
    repeats = 3 if args.quick else 7
    with_pgmpy = (not args.quick) if args.pgmpy is None else args.pgmpy
    os.makedirs(args.out, exist_ok=True)
    net = load_network("alarm")
    data = jax.jit(bn.sample, static_argnums=2)(jax.random.key(0), net, n)
    results = dict(records=n, variables=net.n_vars, devices=str(jax.devices()), cpu_count=os.cpu_count())
    s = net.structure
    results["mle"] = _time(jax.jit(lambda d: learn.mle(s, d)), data, repeats=repeats)
    results["dirichlet_bdeu"] = _time(
        jax.jit(lambda d: learn.dirichlet(s, d, prior=learn.Prior.bdeu(5.0))), data, repeats=repeats)
    boot = jax.random.multinomial(jax.random.key(1), float(n), jnp.full(n, 1.0 / n), shape=(100 if not args.quick else 10, n))
    results["mle_bootstrap"] = dict(
        replicates=int(boot.shape[0]),
        **_time(jax.jit(jax.vmap(lambda w, d: learn.mle(s, d, weights=w), in_axes=(0, None))), boot, data,
                repeats=max(1, repeats // 2)),
    )
    m = min(n, 10_000)
    rng = np.random.default_rng(0)
    missing = np.where(rng.random((m, net.n_vars)) < 0.2, -1, np.asarray(data[:m])).astype(np.int32)
    init = learn.random_init(jax.random.key(2), net)
    results["em_iteration_20pct_missing"] = dict(
        records=m, **_time(jax.jit(lambda nt, d: learn.em_step(nt, d).model), init, missing, repeats=repeats))
    if with_pgmpy:
        import logging
        import warnings

        import pandas as pd
        from pgmpy.estimators import MaximumLikelihoodEstimator

        warnings.filterwarnings("ignore")
        logging.getLogger("pgmpy").setLevel(logging.ERROR)
        d = np.asarray(data)
        frame = pd.DataFrame({name: np.asarray(net.states[i], object)[d[:, i]] for i, name in enumerate(net.names)})
        model = bn.to_pgmpy(net)
        model.remove_cpds(*model.get_cpds())
        t0 = time.perf_counter()
        MaximumLikelihoodEstimator(model, frame).get_parameters()
        results["pgmpy_mle_s"] = time.perf_counter() - t0
    write_results(os.path.join(args.out, "results.json"), results)
    for key, value in results.items():
        print(f"{key}: {value}")
    return results


if __name__ == "__main__":
    main()
