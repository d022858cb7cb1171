"""Benchmark: the first 1,000 samples in a fresh process, gm against pgmpy, on every network pgmpy ships.

    python -m experiments.bench_sampling [--quick] [--networks asia,munin] [--n 1000] [--tasks forward,lw]
                                         [--out runs/bench_sampling]

What a notebook user waits for: each (network, library, task) runs in a FRESH Python subprocess with empty
caches (``GM_CACHE_DIR`` a new temporary folder, JAX's persistent compilation cache off), and reports
  * import: importing the library (gm: ``jax`` + ``gm.bn``; pgmpy: its reader and sampler),
  * load: reading the bundled ``<name>.bif.gz`` (``gm.data.networks.load_network``; pgmpy's
    ``get_example_model``),
  * first: the first call alone, without ``jax.jit`` (gm: ``bn.sample(key, net, n)`` or
    ``bn.likelihood_weighting(key, net, ev, n)``; pgmpy: ``BayesianModelSampling.forward_sample(size=n)``
    or ``likelihood_weighted_sample(evidence, size=n)``),
  * again: the median of three further calls (what the call costs once compiled),
and total = import + load + first. The CPU seconds of the first call and of the process up to the end of
the first call (``first_cpu_s``, ``total_cpu_s``, all threads) are recorded too, as a check on wall
times taken on a shared machine. Tasks: ``forward`` (ancestral samples) and ``lw`` (likelihood
weighting with 5 observed variables: the last five in topological order, set to one forward sample's
values so that the evidence is possible; the same evidence for both libraries). The table gives both
libraries' first-call and total seconds and the ratios pgmpy / gm (above 1: gm is faster). The load
average is recorded before and after, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from experiments._common import write_results

QUICK = ("asia", "cancer")
TASKS = ("forward", "lw")
LIBRARIES = ("gm", "pgmpy")


# --------------------------------------------------------------------------------------------------
# the child process: one library, one network, one task


def _child(library: str, task: str, name: str, n: int, evidence: dict) -> dict:
    start = time.perf_counter()
    if library == "gm":
        import jax

        from gm import bn
        from gm.data.networks import load_network

        imported = time.perf_counter()
        net = load_network(name)
        loaded = time.perf_counter()
        ev = net.evidence(evidence)

        def call(seed):
            key = jax.random.key(seed)
            out = bn.sample(key, net, n) if task == "forward" else bn.likelihood_weighting(key, net, ev, n)
            return jax.block_until_ready(out)
    else:
        import logging
        import warnings

        warnings.filterwarnings("ignore")
        logging.disable(logging.WARNING)
        from pgmpy.factors.discrete import State
        from pgmpy.sampling import BayesianModelSampling
        from pgmpy.utils import get_example_model

        imported = time.perf_counter()
        model = get_example_model(name)
        loaded = time.perf_counter()
        states = [State(var, value) for var, value in evidence.items()]

        def call(seed):
            sampler = BayesianModelSampling(model)
            if task == "forward":
                return sampler.forward_sample(size=n, seed=seed, show_progress=False)
            return sampler.likelihood_weighted_sample(evidence=states, size=n, seed=seed, show_progress=False)

    t0, c0 = time.perf_counter(), time.process_time()
    call(0)
    first, first_cpu = time.perf_counter() - t0, time.process_time() - c0
    total_cpu = time.process_time()
    again = []
    for seed in (1, 2, 3):
        t0 = time.perf_counter()
        call(seed)
        again.append(time.perf_counter() - t0)
    return {
        "import_s": imported - start,
        "load_s": loaded - imported,
        "first_s": first,
        "first_cpu_s": first_cpu,
        "again_s": statistics.median(again),
        "total_s": loaded - start + first,
        "total_cpu_s": total_cpu,
    }


def _run_child(library: str, task: str, name: str, n: int, evidence: dict, timeout: float) -> dict:
    env = dict(os.environ)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    spec = json.dumps({"library": library, "task": task, "name": name, "n": n, "evidence": evidence})
    with tempfile.TemporaryDirectory(prefix="gm-bench-cache-") as cache:
        env["GM_CACHE_DIR"] = cache
        try:
            proc = subprocess.run([sys.executable, "-m", "experiments.bench_sampling", "--child", spec],
                                  capture_output=True, text=True, timeout=timeout, env=env, cwd=root)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["exit status %d" % proc.returncode])[-1]}
    return json.loads(lines[-1])


# --------------------------------------------------------------------------------------------------
# the parent


def _evidence(name: str, k: int = 5) -> dict:
    """The last ``k`` variables in topological order at one forward sample's values (state names)."""
    import jax

    from gm import bn
    from gm.data.networks import load_network

    net = load_network(name)
    x = bn.sample(jax.random.key(123), net, 1)[0]
    chosen = net.structure.topological_order[-k:]
    return {net.names[i]: net.states[i][int(x[i])] for i in chosen}


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def table(rows: list[dict]) -> str:
    lines = [
        "| network | vars | task | gm first s | pgmpy first s | first ratio | gm total s | pgmpy total s "
        "| total ratio | gm again s | pgmpy again s |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        g, p = r["gm"], r["pgmpy"]
        lines.append(
            f"| {r['network']} | {r['n_vars']} | {r['task']} | {_fmt(g.get('first_s'))} | "
            f"{_fmt(p.get('first_s'))} | {_fmt(r.get('first_ratio'), '.1f')} | {_fmt(g.get('total_s'))} | "
            f"{_fmt(p.get('total_s'))} | {_fmt(r.get('total_ratio'), '.1f')} | {_fmt(g.get('again_s'), '.3f')} | "
            f"{_fmt(p.get('again_s'), '.3f')} |"
        )
    return "\n".join(lines)


def _ratio(a: dict, b: dict, field: str):
    if field in a and field in b and b[field] > 0:
        return a[field] / b[field]
    return None


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description="first 1,000 samples in a fresh process: gm vs pgmpy")
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)} (for tests)")
    parser.add_argument("--networks", default=None, help="comma-separated names (default: all pgmpy ships)")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated: forward, lw")
    parser.add_argument("--n", type=int, default=1000, help="samples per call")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per child process")
    parser.add_argument("--out", default="runs/bench_sampling")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        spec = json.loads(args.child)
        print(json.dumps(_child(**spec)), flush=True)
        return []

    from gm.data.networks import NETWORKS, load_network

    names = args.networks.split(",") if args.networks else (QUICK if args.quick else NETWORKS)
    tasks = [t for t in args.tasks.split(",") if t]
    for t in tasks:
        if t not in TASKS:
            raise ValueError(f"unknown task {t!r}; choose from {TASKS}")
    os.makedirs(args.out, exist_ok=True)
    result = {"n": args.n, "load_average_start": _load_average(), "rows": []}
    rows = result["rows"]
    for name in names:
        n_vars = load_network(name).n_vars
        evidence = _evidence(name) if "lw" in tasks else {}
        for task in tasks:
            row = {"network": name, "n_vars": n_vars, "task": task, "evidence": evidence if task == "lw" else {}}
            for library in LIBRARIES:
                row[library] = _run_child(library, task, name, args.n, row["evidence"], args.timeout)
            row["first_ratio"] = _ratio(row["pgmpy"], row["gm"], "first_s")
            row["total_ratio"] = _ratio(row["pgmpy"], row["gm"], "total_s")
            rows.append(row)
            print(table([row]).splitlines()[-1], flush=True)
            result["load_average_end"] = _load_average()
            write_results(os.path.join(args.out, "results.json"), result)
    text = table(rows)
    text += f"\n\nload average: start {result['load_average_start']}, end {result.get('load_average_end')}"
    print(text)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(text + "\n")
    return rows


if __name__ == "__main__":
    main()
