"""Structure learning on the bnlearn networks: gm.learn.structure against pgmpy.

For each network and N, N training records and 10,000 held-out records are forward-sampled from the true
network (`gm.bn.sample`). Each method learns a structure from the training records; we report

* SHD to the true DAG (pairs whose edge is missing, extra or reversed) and to the true CPDAG (the learned
  DAG's CPDAG, or PC's own CPDAG, against the true DAG's);
* score - the true network's score on the same records (BIC for the BIC searches, PC, exact and Chow-Liu;
  BDeu with ESS 10 for the BDeu searches), float64;
* held-out log-likelihood per record (CPTs: posterior mean under BDeu, ESS 1);
* time: gm's first call (with XLA compilation) and the median of ``--repeats`` more calls (compile apart);
  pgmpy's one call.

Methods: ``hc-bic`` / ``hc-bdeu`` (`hill_climb`'s default search from the empty start: pgmpy's greedy climb
with its defaults, tabu 100 and epsilon 1e-4, then a tabu phase of 10 non-improving moves and one kick, a
climb from the best graph perturbed, then up to 8 random-tie restarts while distinct records x neighbourhoods
evaluated stay under 2,000,000), ``hc-bic-g`` / ``hc-bdeu-g`` (``escape=0``: the greedy climb alone,
pgmpy's algorithm),
``hc-bic-r`` / ``hc-bdeu-r`` (`hill_climb_restarts`, 6 more climbs), ``pc-chi2`` (`pc`, alpha 0.01, at most 5
conditioning variables), ``exact-bic`` (`exact_search`; child with at most 2 parents per variable; larger
networks are refused by its memory estimate), ``chow-liu``; pgmpy's ``HillClimbSearch`` (bic-d, bdeu)
and ``PC`` (chi_square, 0.01, its default parallel-stable variant, n_jobs=1: on a shared 2-core machine its
joblib workers cost more than they give) as ``pgmpy-*``.

    python -m experiments.structure [--quick] [--out runs/structure]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings

import jax
import numpy as np

from gm import bn, learn
from gm.data.networks import load_network
from gm.learn import structure as st
from gm.learn.structure.pc import dag_extension
from gm.learn.structure.search import make_structure
from experiments._common import write_results

NETWORKS = ("asia", "sachs", "child", "insurance", "alarm")
SIZES = (1_000, 10_000, 100_000)
HELD_OUT = 10_000


def held_out_log_likelihood(structure, train, test) -> float:
    """Mean log P(x) of the held-out records under BDeu(1)-posterior-mean CPTs fitted on ``train``."""
    net = learn.dirichlet(structure, train, prior=learn.Prior.bdeu(1.0))
    total = np.zeros(len(test))
    for i, pa in enumerate(structure.parents):
        cpt = np.asarray(net.cpts[i], np.float64)
        total += np.log(cpt[tuple(test[:, p] for p in pa) + (test[:, i],)])
    return float(total.mean())


def _pgmpy_frames(net, data):
    import pandas as pd

    categorical = pd.DataFrame({name: pd.Categorical.from_codes(data[:, i], categories=list(net.states[i]))
                                for i, name in enumerate(net.names)})
    return categorical, pd.DataFrame(data, columns=net.names)


def _pgmpy_parents(net, edges):
    parents = [[] for _ in net.names]
    for a, b in edges:
        parents[net.index(b)].append(net.index(a))
    return parents


def run_pgmpy(method, net, data):
    """(parents, cpdag or None, seconds) of pgmpy's HillClimbSearch / PC."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        from pgmpy.estimators import PC, HillClimbSearch

        categorical, integers = _pgmpy_frames(net, data)
        t = time.perf_counter()
        if method == "pgmpy-hc-bic":
            dag = HillClimbSearch(categorical).estimate(scoring_method="bic-d", show_progress=False)
            out = _pgmpy_parents(net, dag.edges()), None
        elif method == "pgmpy-hc-bdeu":
            dag = HillClimbSearch(categorical).estimate(scoring_method="bdeu", show_progress=False)
            out = _pgmpy_parents(net, dag.edges()), None
        else:
            pdag = PC(integers).estimate(ci_test="chi_square", significance_level=0.01, show_progress=False,
                                         n_jobs=1)
            ix = net.index
            directed = {(ix(a), ix(b)) for a, b in pdag.directed_edges}
            undirected = {tuple(sorted((ix(a), ix(b)))) for a, b in pdag.undirected_edges}
            out = dag_extension(net.n_vars, directed, undirected), (directed, undirected)
        seconds = time.perf_counter() - t
        logging.disable(logging.NOTSET)
    return out[0], out[1], seconds


def run_gm(method, key, net, data):
    """(parents, cpdag or None, note) of one gm method."""
    if method in ("hc-bic", "hc-bdeu", "hc-bic-g", "hc-bdeu-g"):
        escape = 0 if method.endswith("-g") else None
        r = st.hill_climb(data, net, score=method.split("-")[1], escape=escape)
        return r.structure.parents, None, f"{r.n_iterations} moves"
    if method in ("hc-bic-r", "hc-bdeu-r"):
        score = method.split("-")[1]
        return st.hill_climb_restarts(key, data, net, score=score, restarts=6).structure.parents, None, ""
    if method == "pc-chi2":
        r = st.pc(data, net, test="chi_square", significance_level=0.01)
        return r.dag.parents, (r.directed, r.undirected), f"{r.n_tests} tests"
    if method == "exact-bic":
        max_parents = 2 if net.n_vars > 12 else None
        r = st.exact_search(data, net, score="bic", max_parents=max_parents)
        return r.structure.parents, None, "" if max_parents is None else f"max {max_parents} parents"
    if method == "chow-liu":
        return st.chow_liu(data, net).structure.parents, None, ""
    raise ValueError(method)


def evaluate(net, parents, cpdag, train, test, score):
    true_parents = net.structure.parents
    true_cpdag = st.dag_to_cpdag(true_parents)
    edges = {(p, c) for c, ps in enumerate(parents) for p in ps}
    true_edges = {(p, c) for c, ps in enumerate(true_parents) for p in ps}
    learned_cpdag = cpdag if cpdag is not None else st.dag_to_cpdag(parents)
    structure = make_structure(net, parents, net.n_vars)
    with jax.enable_x64(True):
        learned = st.network_score(train, parents, variables=net, score=score)
        truth = st.network_score(train, true_parents, variables=net, score=score)
    return dict(
        shd_dag=st.shd(edges, set(), true_edges, set()),
        shd_cpdag=st.shd(*learned_cpdag, *true_cpdag),
        edges=len(edges),
        score_minus_true=learned - truth,
        score=score,
        held_out_ll=held_out_log_likelihood(structure, train, test),
    )


GM_METHODS = ("hc-bic", "hc-bdeu", "hc-bic-g", "hc-bdeu-g", "hc-bic-r", "hc-bdeu-r", "pc-chi2", "exact-bic", "chow-liu")
PGMPY_METHODS = ("pgmpy-hc-bic", "pgmpy-hc-bdeu", "pgmpy-pc")
SCORE_OF = {"hc-bdeu": "bdeu", "hc-bdeu-g": "bdeu", "hc-bdeu-r": "bdeu", "pgmpy-hc-bdeu": "bdeu"}


def run(networks, sizes, *, seed=0, pgmpy_pc_max_n=10_000, methods=None, repeats=1, log=print):
    rows = []
    for name in networks:
        net = load_network(name)
        for n in sizes:
            key = jax.random.fold_in(jax.random.key(seed), n)
            train = np.asarray(bn.sample(key, net, n))
            test = np.asarray(bn.sample(jax.random.fold_in(key, 1), net, HELD_OUT))
            for method in methods or GM_METHODS + PGMPY_METHODS:
                row = dict(network=name, n_vars=net.n_vars, N=n, method=method)
                try:
                    if method.startswith("pgmpy"):
                        if method == "pgmpy-pc" and n > pgmpy_pc_max_n:
                            row["note"] = f"skipped (N > {pgmpy_pc_max_n})"
                            rows.append(row)
                            continue
                        parents, cpdag, seconds = run_pgmpy(method, net, train)
                        row.update(seconds=seconds)
                    else:
                        t = time.perf_counter()
                        run_gm(method, key, net, train)
                        first = time.perf_counter() - t
                        times = []
                        for _ in range(max(1, repeats)):
                            t = time.perf_counter()
                            parents, cpdag, note = run_gm(method, key, net, train)
                            times.append(time.perf_counter() - t)
                        row.update(seconds=float(np.median(times)), seconds_with_compile=first, note=note,
                                   load_average=os.getloadavg()[0])
                except ValueError as err:  # exact search refusing with its estimate
                    row["note"] = f"refused: {err}"
                    rows.append(row)
                    log(f"{name} N={n} {method}: {row['note'][:90]}")
                    continue
                row.update(evaluate(net, parents, cpdag, train, test, SCORE_OF.get(method, "bic")))
                rows.append(row)
                log(f"{name} N={n} {method}: SHD {row['shd_dag']} / {row['shd_cpdag']}, "
                    f"score-true {row['score_minus_true']:.1f}, {row['seconds']:.3f} s")
    return rows


def speedups(rows):
    """gm (compile apart, and with compile) against pgmpy, per network, N and search."""
    out = []
    index = {(r["network"], r["N"], r["method"]): r for r in rows}
    for (name, n, method), r in index.items():
        if method.startswith("pgmpy") or "seconds" not in r:
            continue
        other = {"hc-bic": "pgmpy-hc-bic", "hc-bdeu": "pgmpy-hc-bdeu", "hc-bic-g": "pgmpy-hc-bic",
                 "hc-bdeu-g": "pgmpy-hc-bdeu", "hc-bic-r": "pgmpy-hc-bic",
                 "hc-bdeu-r": "pgmpy-hc-bdeu", "pc-chi2": "pgmpy-pc"}.get(method)
        theirs = index.get((name, n, other)) if other else None
        if theirs and "seconds" in theirs:
            out.append(dict(network=name, N=n, method=method, gm_s=r["seconds"],
                            gm_with_compile_s=r["seconds_with_compile"], pgmpy_s=theirs["seconds"],
                            speedup=theirs["seconds"] / r["seconds"],
                            speedup_with_compile=theirs["seconds"] / r["seconds_with_compile"],
                            score_gm_minus_pgmpy=r.get("score_minus_true", np.nan) - theirs.get("score_minus_true", np.nan)))
    return out


def table(rows, ups):
    lines = ["| network | N | method | SHD DAG | SHD CPDAG | edges | score - true | held-out LL | time s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "shd_dag" not in r:
            lines.append(f"| {r['network']} | {r['N']:,} | {r['method']} | – | – | – | – | – | {r.get('note', '')[:60]} |")
            continue
        t = f"{r['seconds']:.3f}" + (f" ({r['seconds_with_compile']:.1f})" if "seconds_with_compile" in r else "")
        lines.append(f"| {r['network']} | {r['N']:,} | {r['method']} | {r['shd_dag']} | {r['shd_cpdag']} | "
                     f"{r['edges']} | {r['score_minus_true']:.1f} | {r['held_out_ll']:.3f} | {t} |")
    lines += ["", "| network | N | search | gm s | gm s with compile | pgmpy s | speed-up | with compile | "
              "score gm - pgmpy |", "|---|---|---|---|---|---|---|---|---|"]
    for u in ups:
        lines.append(f"| {u['network']} | {u['N']:,} | {u['method']} | {u['gm_s']:.3f} | {u['gm_with_compile_s']:.2f} | "
                     f"{u['pgmpy_s']:.2f} | {u['speedup']:.1f}x | {u['speedup_with_compile']:.1f}x | "
                     f"{u['score_gm_minus_pgmpy']:.1f} |")
    return "\n".join(lines)


def figure(rows, networks, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(networks), figsize=(4 * len(networks), 3.4), squeeze=False)
    methods = sorted({r["method"] for r in rows})
    for ax, name in zip(axes[0], networks):
        for m in methods:
            pts = [(r["N"], r["shd_dag"]) for r in rows if r["network"] == name and r["method"] == m and "shd_dag" in r]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o", ls="--" if m.startswith("pgmpy") else "-", label=m)
        ax.set_xscale("log")
        ax.set_title(name)
        ax.set_xlabel("N")
    axes[0][0].set_ylabel("SHD to the true DAG")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description="structure learning: gm.learn.structure against pgmpy")
    ap.add_argument("--quick", action="store_true", help="asia only, N = 1000")
    ap.add_argument("--out", default="runs/structure")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--networks", default=None, help="comma-separated subset of " + ",".join(NETWORKS))
    ap.add_argument("--sizes", default=None, help="comma-separated N values")
    ap.add_argument("--methods", default=None, help="comma-separated subset of the methods")
    ap.add_argument("--repeats", type=int, default=3, help="timed gm calls after the first (median reported)")
    ap.add_argument("--pgmpy-pc-max-n", type=int, default=10_000, help="skip pgmpy's PC above this N (slow)")
    args = ap.parse_args(argv)
    networks = ("asia",) if args.quick else NETWORKS
    sizes = (1_000,) if args.quick else SIZES
    if args.networks:
        networks = tuple(args.networks.split(","))
    if args.sizes:
        sizes = tuple(int(s) for s in args.sizes.split(","))
    os.makedirs(args.out, exist_ok=True)
    t0 = time.perf_counter()
    methods = tuple(args.methods.split(",")) if args.methods else None
    rows = run(networks, sizes, seed=args.seed, pgmpy_pc_max_n=args.pgmpy_pc_max_n, methods=methods,
               repeats=args.repeats)
    ups = speedups(rows)
    md = table(rows, ups)
    out = dict(config=dict(networks=networks, sizes=sizes, seed=args.seed, held_out=HELD_OUT,
                           load_average=os.getloadavg()),
               rows=rows, speedups=ups, table=md, seconds=time.perf_counter() - t0)
    write_results(os.path.join(args.out, "results.json"), out)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(md + "\n")
    figure(rows, networks, os.path.join(args.out, "shd.png"))
    print(md)
    print(f"({out['seconds']:.1f} s, load average {os.getloadavg()})")
    return out


if __name__ == "__main__":
    main()
