"""Benchmark: what a user waits for, from a fresh process to the first answer, gm against pgmpy.

    python -m experiments.bench_bn_first [--quick] [--networks alarm,munin2] [--timeout 600] [--out runs/bench_bn_first]

For each network pgmpy ships, one evidence set (forward-sampled, 20% of the variables observed, the same
for both libraries) is answered in a fresh Python process per library, so nothing is cached in memory:

* gm, empty on-disk caches (``GM_CACHE_DIR`` a new temporary folder): ``import`` (gm and JAX), loading
  the network, then all marginals (``bn.marginals``, which on concrete arrays runs the host engine:
  path search + lowering + contraction, no XLA compile), then MPE (``bn.mpe``), then a single-variable
  ``bn.pruned_query`` and 1,000 forward samples (``bn.sample``), each timed alone. The path search's
  share is reported apart.
* gm, warm caches: the same, in a second fresh process with the same cache folder (the plans on disk).
* pgmpy: ``import`` + load (``BIFReader`` on the bundled file's text), then all marginals of the same evidence
  by ``VariableElimination`` (one query per unobserved variable), then a MAP query over the unobserved
  variables (``map_query``), a single-variable query and ``BayesianModelSampling.forward_sample(1000)``.

Each child process has ``--timeout`` seconds; a step that did not finish is reported as ``>T``. Marginals
of the two libraries are compared (largest absolute difference) and MPE by log-probability under gm.
Results: a table on stdout and ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from experiments._common import write_results

ALL = ("asia", "cancer", "earthquake", "sachs", "survey", "alarm", "barley", "child", "insurance",
       "mildew", "water", "hailfinder", "hepar2", "win95pts", "andes", "diabetes", "pathfinder", "pigs",
       "link", "munin1", "munin2", "munin3", "munin4", "munin")
QUICK = ("asia", "alarm")

_GM_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np, jax
from gm import bn
from gm.bn import tensornet
from gm.data.networks import load_network
t1 = time.perf_counter()
name, ev_file, out_file = sys.argv[1:4]
net = load_network(name)
t2 = time.perf_counter()
ev = np.asarray(json.load(open(ev_file))["evidence"], np.int32)
res = {"import": t1 - t0, "load": t2 - t1}
def save():
    json.dump(res, open(out_file, "w"))
save()
search = []
orig = tensornet._search
def timed(*a, **k):
    s = time.perf_counter(); r = orig(*a, **k); search.append(time.perf_counter() - s); return r
tensornet._search = timed
s = time.perf_counter(); post = jax.block_until_ready(bn.marginals(net, ev)); res["marginals"] = time.perf_counter() - s
res["search"] = sum(search); save()
np.savez(out_file + ".npz", *[np.asarray(post[n]) for n in net.names])
s = time.perf_counter(); x = jax.block_until_ready(bn.mpe(net, ev)); res["mpe"] = time.perf_counter() - s
res["mpe_log_prob"] = float(bn.log_prob(net, x.states)); res["mpe_reported_log_prob"] = float(x.log_prob); save()
hidden = [net.names[i] for i in range(net.n_vars) if ev[i] < 0]
observed = [net.names[i] for i in range(net.n_vars) if ev[i] >= 0]
s = time.perf_counter(); q = jax.block_until_ready(bn.pruned_query(net, [hidden[0]], ev, observed=observed)); res["pruned_query"] = time.perf_counter() - s
save()
s = time.perf_counter(); xs = jax.block_until_ready(bn.sample(jax.random.PRNGKey(0), net, 1000)); res["sample"] = time.perf_counter() - s
res["total"] = time.perf_counter() - t0
save()
"""

_PGMPY_CHILD = r"""
import gzip, json, sys, time, warnings, logging
warnings.filterwarnings("ignore"); logging.disable(logging.WARNING)
t0 = time.perf_counter()
import numpy as np
from pgmpy.readwrite import BIFReader
from pgmpy.inference import VariableElimination
from pgmpy.sampling import BayesianModelSampling
name, bif, ev_file, out_file = sys.argv[1:5]
model = BIFReader(string=gzip.open(bif, 'rt').read()).get_model()
t1 = time.perf_counter()
info = json.load(open(ev_file))
names, states, ev = info["names"], info["states"], info["evidence"]
evidence = {names[i]: states[i][v] for i, v in enumerate(ev) if v >= 0}
hidden = [names[i] for i, v in enumerate(ev) if v < 0]
res = {"import_load": t1 - t0}
def save():
    json.dump(res, open(out_file, "w"))
save()
engine = VariableElimination(model)
s = time.perf_counter(); q = engine.query([hidden[0]], evidence=evidence, show_progress=False); res["query"] = time.perf_counter() - s
save()
s = time.perf_counter()
post = {}
for v in hidden:
    f = engine.query([v], evidence=evidence, show_progress=False)
    i = names.index(v)
    post[v] = np.asarray(f.values)[[f.state_names[v].index(st) for st in states[i]]]
res["marginals"] = time.perf_counter() - s
np.savez(out_file + ".npz", **{k.replace("/", "_"): v for k, v in post.items()})
save()
s = time.perf_counter(); sm = BayesianModelSampling(model).forward_sample(size=1000, show_progress=False); res["sample"] = time.perf_counter() - s
save()
s = time.perf_counter(); m = engine.map_query(variables=hidden, evidence=evidence, show_progress=False); res["map"] = time.perf_counter() - s
res["map_assignment"] = {k: str(v) for k, v in m.items()}
save()
"""


def _run(code: str, args: list[str], out_file: str, timeout: float, env: dict) -> dict:
    try:
        subprocess.run([sys.executable, "-c", code, *args], env=env, timeout=timeout, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except subprocess.TimeoutExpired:
        pass
    try:
        with open(out_file) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _fmt(x, timeout):
    return f">{timeout:.0f}" if x is None else f"{x:.2f}"


def run_network(name: str, timeout: float, workdir: str, pgmpy: bool = True) -> dict:
    import jax
    import numpy as np

    from gm import bn
    from gm.data.networks import bif_path, load_network

    net = load_network(name)
    key = jax.random.PRNGKey(0)
    x = np.asarray(bn.sample(key, net, 1))[0]
    observed = np.random.default_rng(0).random(net.n_vars) < 0.2
    ev = np.where(observed, x, -1).astype(int)
    ev_file = os.path.join(workdir, f"{name}_ev.json")
    with open(ev_file, "w") as f:
        json.dump({"evidence": ev.tolist(), "names": list(net.names), "states": [list(s) for s in net.states]}, f)
    cache = tempfile.mkdtemp(prefix="gm_cache_", dir=workdir)
    env = dict(os.environ, GM_CACHE_DIR=cache)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    row = {"network": name, "vars": net.n_vars, "observed": int(observed.sum())}
    cold = _run(_GM_CHILD, [name, ev_file, os.path.join(workdir, f"{name}_gm_cold.json")],
                os.path.join(workdir, f"{name}_gm_cold.json"), timeout, env)
    warm = _run(_GM_CHILD, [name, ev_file, os.path.join(workdir, f"{name}_gm_warm.json")],
                os.path.join(workdir, f"{name}_gm_warm.json"), timeout, env)
    row["gm_cold"], row["gm_warm"] = cold, warm
    if pgmpy:
        out = os.path.join(workdir, f"{name}_pgmpy.json")
        row["pgmpy"] = _run(_PGMPY_CHILD, [name, bif_path(name), ev_file, out], out, timeout, dict(os.environ))
        try:
            a = np.load(os.path.join(workdir, f"{name}_gm_cold.json.npz"))
            b = np.load(out + ".npz")
            diffs = [float(np.max(np.abs(a[f"arr_{i}"] - b[n.replace("/", "_")])))
                     for i, n in enumerate(net.names) if n.replace("/", "_") in b.files]
            row["max_abs_diff"] = max(diffs) if diffs else None
        except (OSError, KeyError, ValueError):
            row["max_abs_diff"] = None
        m = row["pgmpy"].get("map_assignment")
        if m:
            y = np.array([net.states[i].index(m[n]) if n in m else int(ev[i]) for i, n in enumerate(net.names)])
            row["pgmpy_map_log_prob"] = float(bn.log_prob(net, y))
    return row


def first_answer(r: dict) -> float | None:
    c = r.get("gm_cold", {})
    if "marginals" not in c:
        return None
    return c["import"] + c["load"] + c["marginals"]


def print_table(rows: list[dict], timeout: float) -> None:
    head = ("| network | vars | gm import+load s | marginals s (search s) | mpe s | pruned query s | 1000 samples s | "
            "first answer s | warm: marginals s | pgmpy import+load s | pgmpy all marginals s | ratio | "
            "pgmpy MAP s | pgmpy 1 query s | pgmpy 1000 samples s | max abs diff | MPE log P gm / pgmpy |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        c, w, p = r.get("gm_cold", {}), r.get("gm_warm", {}), r.get("pgmpy", {})
        fa = first_answer(r)
        pg = None if "marginals" not in p else p["import_load"] + p["marginals"]
        ratio = f"{pg / fa:.1f}x" if fa and pg else "-"
        il = c["import"] + c["load"] if "load" in c else None
        search = f" ({c['search']:.1f})" if "search" in c else ""
        mpe_lp = f"{c['mpe_log_prob']:.3f} / " + (f"{r['pgmpy_map_log_prob']:.3f}" if r.get("pgmpy_map_log_prob") is not None else "-") if "mpe_log_prob" in c else "-"
        diff = f"{r['max_abs_diff']:.1e}" if r.get("max_abs_diff") is not None else "-"
        print(f"| {r['network']} | {r['vars']} | {_fmt(il, timeout)} | {_fmt(c.get('marginals'), timeout)}{search} | "
              f"{_fmt(c.get('mpe'), timeout)} | {_fmt(c.get('pruned_query'), timeout)} | {_fmt(c.get('sample'), timeout)} | "
              f"{_fmt(fa, timeout)} | {_fmt(w.get('marginals'), timeout)} | {_fmt(p.get('import_load'), timeout)} | "
              f"{_fmt(p.get('marginals'), timeout)} | {ratio} | {_fmt(p.get('map'), timeout)} | {_fmt(p.get('query'), timeout)} | "
              f"{_fmt(p.get('sample'), timeout)} | {diff} | {mpe_lp} |")


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="asia and alarm only")
    parser.add_argument("--networks", default=None, help="comma-separated names (default: every network pgmpy ships)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per child process")
    parser.add_argument("--no-pgmpy", action="store_true")
    parser.add_argument("--out", default="runs/bench_bn_first")
    args = parser.parse_args(argv)
    names = args.networks.split(",") if args.networks else (QUICK if args.quick else ALL)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in names:
            start = time.perf_counter()
            rows.append(run_network(name, args.timeout, workdir, pgmpy=not args.no_pgmpy))
            print(f"# {name}: {time.perf_counter() - start:.0f} s", flush=True)
            write_results(os.path.join(args.out, "results.json"), rows)
    print_table(rows, args.timeout)
    return rows


if __name__ == "__main__":
    main()
