"""Query-specific pruning: the pruned sub-network's posterior equals brute-force enumeration on the
full network, and the pruning really drops barren and separated variables."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gm import bn
from gm.data import load_network
from tests.bn import oracle as O
from tests.bn.util import build
from tests.bn.strategies import bn_settings, evidences, specs


@bn_settings(12)
@given(st.data())
def test_pruned_query_matches_enumeration(data):
    spec = data.draw(specs(kinds=("dirichlet", "peaked", "zeros")))
    ev = data.draw(evidences(spec))
    unobserved = [i for i in range(spec.n) if ev[i] < 0]
    if not unobserved:
        return
    k = data.draw(st.integers(1, min(2, len(unobserved))))
    q = data.draw(st.permutations(unobserved))[:k]
    names = [spec.names[i] for i in q]
    observed = [spec.names[i] for i in range(spec.n) if ev[i] >= 0]
    net = build(spec)
    got = bn.pruned_query(net, names, ev, observed=observed, check=True)
    exact = O.query(spec, q, ev)
    np.testing.assert_allclose(np.asarray(got), exact, atol=1e-5)
    sub = bn.prune(net, names, observed)
    assert len(sub.indices) <= spec.n
    assert set(names) <= set(sub.net.names)


def _chain():
    # A -> B -> C -> D, and E -> D; F isolated
    return bn.BayesNet.from_dict(
        states={v: 2 for v in "ABCDEF"},
        parents={"B": ["A"], "C": ["B"], "D": ["C", "E"]},
        cpts={"A": [0.3, 0.7], "B": [[0.9, 0.1], [0.2, 0.8]], "C": [[0.6, 0.4], [0.1, 0.9]],
              "D": [[[0.5, 0.5], [0.3, 0.7]], [[0.8, 0.2], [0.4, 0.6]]], "E": [0.5, 0.5], "F": [0.1, 0.9]},
    )


def test_barren_and_separated_variables_are_dropped():
    net = _chain()
    # no evidence: D, E, F are barren for P(B)
    assert bn.prune(net, ["B"]).net.names == ("A", "B")
    # B observed separates A from C; D and E are barren
    sub = bn.prune(net, ["C"], observed=["B"])
    assert sub.net.names == ("B", "C") and sub.net.parents == ((), (0,))
    np.testing.assert_allclose(np.asarray(sub.net.cpt("B")), [0.5, 0.5])  # observed, now a uniform root
    # D observed: C's posterior needs E (a co-parent) and the chain above
    assert set(bn.prune(net, ["C"], observed=["D"]).net.names) == set("ABCDE")


def test_pruned_query_jits_vmaps_and_checks_the_observed_set():
    net = _chain()
    evs = np.array([[-1, 0, -1, 1, -1, -1], [-1, 1, -1, 0, -1, -1]], np.int32)
    f = jax.jit(jax.vmap(lambda e: bn.pruned_query(net, ["C"], e, observed=["B", "D"])))
    want = jax.vmap(lambda e: bn.query(net, ["C"], e))(evs)
    np.testing.assert_allclose(np.asarray(f(evs)), np.asarray(want), atol=1e-6)
    with pytest.raises(ValueError, match="'D' is observed"):
        bn.pruned_query(net, ["C"], evs[0], observed=["B"], check=True)
    with pytest.raises(ValueError, match="cannot be observed"):
        bn.prune(net, ["B"], observed=["B"])
    with pytest.raises(ValueError, match="Nope"):
        bn.prune(net, ["Nope"])


def test_pruning_shrinks_a_large_network():
    net = load_network("munin1")
    # greedy paths only (max_time=0): munin1's full plan would otherwise search for up to 120 s
    full = bn.plan(net.structure.families, (), net.structure.cards, max_time=0)
    sub = bn.prune(net, [net.names[0]], observed=[net.names[5], net.names[40]])
    assert len(sub.indices) < net.n_vars
    s = sub.net.structure
    assert bn.plan(s.families, (), s.cards, max_time=0).flops < full.flops
