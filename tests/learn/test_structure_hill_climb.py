"""Hill climbing against pgmpy's HillClimbSearch (same score, same empty start) and its constraints."""

import warnings

import jax
import numpy as np
import pytest

from gm import bn, learn
from gm.data.networks import load_network
from gm.learn.structure import hill_climb, hill_climb_restarts, network_score
from gm.learn.structure.search import structure_edges


def pgmpy_frame(net, data):
    pd = pytest.importorskip("pandas")
    return pd.DataFrame({name: pd.Categorical.from_codes(np.asarray(data)[:, i], categories=list(net.states[i]))
                         for i, name in enumerate(net.names)})


def pgmpy_parents(net, dag):
    index = {name: i for i, name in enumerate(net.names)}
    parents = [[] for _ in net.names]
    for a, b in dag.edges():
        parents[index[b]].append(index[a])
    return parents


@pytest.mark.parametrize("name,n,score", [("asia", 2000, "bic"), ("asia", 2000, "bdeu"), ("sachs", 3000, "bic"),
                                          ("sachs", 3000, "k2")])
def test_score_at_least_pgmpy(x64, name, n, score):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgmpy.estimators import HillClimbSearch
    net = load_network(name)
    data = np.asarray(bn.sample(jax.random.key(3), net, n))
    ours = hill_climb_restarts(jax.random.key(0), data, net, score=score, restarts=5)
    method = {"bic": "bic-d", "bdeu": "bdeu", "k2": "k2"}[score]
    dag = HillClimbSearch(pgmpy_frame(net, data)).estimate(scoring_method=method, show_progress=False)
    theirs = network_score(data, pgmpy_parents(net, dag), variables=net, score=score)
    mine = network_score(data, ours.structure, score=score)
    np.testing.assert_allclose(mine, ours.score, rtol=1e-9)
    assert mine >= theirs - 1e-6 * abs(theirs)


def test_constraints_and_parameters():
    net = load_network("asia")
    data = np.asarray(bn.sample(jax.random.key(0), net, 3000))
    free = hill_climb(data, net)
    edges = structure_edges(free.structure)
    banned = sorted(edges)[0]
    named = (net.names[banned[0]], net.names[banned[1]])
    required = ("asia", "dysp")
    result = hill_climb(data, net, blacklist=[named], whitelist=[required], max_indegree=1)
    got = structure_edges(result.structure)
    assert banned not in got
    assert (net.index("asia"), net.index("dysp")) in got
    assert max(len(p) for p in result.structure.parents) <= 1
    fitted = learn.mle(result.structure, data)
    assert np.isfinite(float(np.sum(np.asarray(bn.log_prob(fitted, data[0])))))
    with pytest.raises(ValueError, match="both white- and blacklisted"):
        hill_climb(data, net, whitelist=[required], blacklist=[required])
    with pytest.raises(ValueError, match="unknown variable"):
        hill_climb(data, net, blacklist=[("asia", "nope")])


def test_restarts_never_worse():
    net = load_network("asia")
    data = np.asarray(bn.sample(jax.random.key(1), net, 1000))
    plain = hill_climb(data, net, score="bdeu")
    again = hill_climb_restarts(jax.random.key(0), data, net, score="bdeu", restarts=3)
    assert again.score >= plain.score - 1e-3


def test_tabu_phase_returns_the_best_graph_seen(x64):
    net = load_network("asia")
    data = np.asarray(bn.sample(jax.random.key(2), net, 1000))
    greedy = hill_climb(data, net, score="bdeu", escape=0)
    tabu = hill_climb(data, net, score="bdeu", kicks=0)  # escape = 10 non-improving moves
    assert tabu.n_iterations >= greedy.n_iterations + 10  # the tabu phase ran its budget
    np.testing.assert_allclose(network_score(data, tabu.structure, score="bdeu"), tabu.score, rtol=1e-9)
    assert tabu.score >= greedy.score - 1e-9 * abs(greedy.score)


def test_kicks_deterministic_and_never_worse(x64):
    net = load_network("asia")
    data = np.asarray(bn.sample(jax.random.key(4), net, 1000))
    tabu = hill_climb(data, net, score="bic", kicks=0)
    kicked = hill_climb(data, net, score="bic", kicks=2)
    assert kicked.score >= tabu.score - 1e-9 * abs(tabu.score)
    assert kicked.n_iterations > tabu.n_iterations  # the kicks climbed
    np.testing.assert_allclose(network_score(data, kicked.structure, score="bic"), kicked.score, rtol=1e-9)
    again = hill_climb(data, net, score="bic", kicks=2, seed=0)  # the default seed
    assert again.structure == kicked.structure and again.n_iterations == kicked.n_iterations
    with pytest.raises(ValueError, match="kicks must be >= 0"):
        hill_climb(data, net, kicks=-1)
    with pytest.raises(TypeError, match="takes no 'kicks'"):
        hill_climb_restarts(jax.random.key(0), data, net, kicks=1)


@pytest.mark.slow
def test_default_at_least_pgmpy_on_insurance():
    # insurance, N = 10,000, BIC, the search in float32 as by default: the greedy climb and the greedy climb +
    # tabu phase (kicks=0) end 500-1,100 below pgmpy (depending on pgmpy's tie order), the default with its kick
    # 270-850 above
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgmpy.estimators import HillClimbSearch
    net = load_network("insurance")
    data = np.asarray(bn.sample(jax.random.fold_in(jax.random.key(0), 10_000), net, 10_000))
    ours = hill_climb(data, net, score="bic")
    dag = HillClimbSearch(pgmpy_frame(net, data)).estimate(scoring_method="bic-d", show_progress=False)
    with jax.enable_x64(True):
        theirs = network_score(data, pgmpy_parents(net, dag), variables=net, score="bic")
        assert network_score(data, ours.structure, score="bic") >= theirs


def test_restarts_never_worse_and_budgeted(x64):
    # the restarts come after the phases of the search without them, so the default can only gain on it
    net = load_network("asia")
    data = np.asarray(bn.sample(jax.random.key(4), net, 1000))
    greedy = hill_climb(data, net, score="bic", escape=0)
    without = hill_climb(data, net, score="bic", restarts=0)
    default = hill_climb(data, net, score="bic")
    assert default.n_iterations > without.n_iterations  # 60 distinct records: the budget allows restarts
    for result in (greedy, without, default):
        np.testing.assert_allclose(network_score(data, result.structure, score="bic"), result.score, rtol=1e-9)
    assert default.score >= without.score >= greedy.score - 1e-9 * abs(greedy.score)
    spent = hill_climb(data, net, score="bic", restart_budget=0)  # no budget: the search without restarts
    assert spent.structure == without.structure and spent.n_iterations == without.n_iterations
    with pytest.raises(ValueError, match="restarts must be >= 0"):
        hill_climb(data, net, restarts=-1)


PGMPY_CLIMB = """
import json, sys, warnings
import numpy as np, pandas as pd
warnings.simplefilter("ignore")
from pgmpy.estimators import HillClimbSearch
names, states, data = json.load(sys.stdin)
data = np.asarray(data)
frame = pd.DataFrame({n: pd.Categorical.from_codes(data[:, i], categories=s) for i, (n, s) in
                      enumerate(zip(names, states))})
print(json.dumps([list(e) for e in HillClimbSearch(frame).estimate(scoring_method="bic-d",
                                                                  show_progress=False).edges()]))
"""


@pytest.mark.slow
def test_default_at_least_pgmpy_on_alarm_1000_bic():
    # alarm, N = 1,000 (the experiment's records), BIC: pgmpy's climb with PYTHONHASHSEED=14 breaks its ties
    # into a local optimum (the best of 22 hash seeds tried) that the search without restarts misses by 2.7
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("pgmpy")
    net = load_network("alarm")
    data = np.asarray(bn.sample(jax.random.fold_in(jax.random.key(0), 1000), net, 1000))
    out = subprocess.run([sys.executable, "-c", PGMPY_CLIMB], capture_output=True, text=True, check=True,
                         input=json.dumps([list(net.names), [list(s) for s in net.states], data.tolist()]),
                         env={**os.environ, "PYTHONHASHSEED": "14"})
    parents = [[] for _ in net.names]
    for a, b in json.loads(out.stdout.strip().splitlines()[-1]):
        parents[net.index(b)].append(net.index(a))
    ours = hill_climb(data, net, score="bic")
    with jax.enable_x64(True):  # measured: pgmpy -11578.9, without restarts -11581.7, the default -11552.1
        theirs = network_score(data, parents, variables=net, score="bic")
        assert network_score(data, ours.structure, score="bic") >= theirs
