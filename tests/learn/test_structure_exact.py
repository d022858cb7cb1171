"""Exact search against brute force over every DAG (hypothesis), and its refusals."""

import itertools

import jax
import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from gm import bn
from gm.data.networks import load_network
from gm.learn.structure import exact_search, hill_climb, network_score
from tests.learn.structure_reference import reference_score


def brute_force_best(data, cards, score):
    """max over all DAGs of the sum of float64 loop-reference local scores."""
    n = len(cards)
    local = {}

    def s(v, pa):
        key = (v, pa)
        if key not in local:
            local[key] = reference_score(data, cards, v, list(pa), score)
        return local[key]

    pairs = list(itertools.combinations(range(n), 2))
    best = -np.inf
    for choice in itertools.product(range(3), repeat=len(pairs)):
        edges = [(i, j) if c == 1 else (j, i) for (i, j), c in zip(pairs, choice) if c]
        graph = nx.DiGraph(edges)
        graph.add_nodes_from(range(n))
        if not nx.is_directed_acyclic_graph(graph):
            continue
        best = max(best, sum(s(v, tuple(sorted(graph.predecessors(v)))) for v in range(n)))
    return best


def random_data(seed, n_vars, n_records):
    rng = np.random.default_rng(seed)
    cards = tuple(int(c) for c in rng.integers(2, 4, n_vars))
    cols = []
    for v in range(n_vars):
        base = rng.integers(0, cards[v], n_records)
        if v and rng.random() < 0.8:  # copy a noisy function of an earlier column
            src = cols[int(rng.integers(0, v))]
            base = np.where(rng.random(n_records) < 0.7, src % cards[v], base)
        cols.append(base)
    return np.stack(cols, axis=1).astype(np.int32), cards


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), score=st.sampled_from(["bic", "bdeu", "k2"]))
def test_exact_equals_brute_force_four_variables(x64, seed, score):
    data, cards = random_data(seed, 4, 120)
    result = exact_search(data, cards, score=score)
    want = brute_force_best(data, cards, score)
    np.testing.assert_allclose(result.score, want, rtol=1e-6)
    np.testing.assert_allclose(network_score(data, result.structure, score=score), want, rtol=1e-6)


@pytest.mark.slow
def test_exact_equals_brute_force_five_variables(x64):
    data, cards = random_data(7, 5, 200)
    for score in ["bic", "bdeu"]:
        np.testing.assert_allclose(exact_search(data, cards, score=score).score,
                                   brute_force_best(data, cards, score), rtol=1e-6)


def test_exact_at_least_hill_climbing_on_asia():
    net = load_network("asia")
    data = np.asarray(bn.sample(jax.random.key(0), net, 2000))
    exact = exact_search(data, net, score="bdeu")
    assert exact.score >= hill_climb(data, net, score="bdeu").score - 1e-2
    assert exact.structure.names == net.names


def test_exact_with_max_parents_and_refusals():
    data, cards = random_data(1, 5, 100)
    limited = exact_search(data, cards, max_parents=1)
    assert max(len(p) for p in limited.structure.parents) <= 1
    assert limited.score <= exact_search(data, cards).score + 1e-4
    with pytest.raises(ValueError, match="GiB"):
        exact_search(data, cards, memory_limit=1000)
    with pytest.raises(ValueError, match="local scores .*GiB"):
        exact_search(data, cards, max_families=10)
