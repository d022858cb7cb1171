"""Every exact query of gm.bn against float64 brute-force enumeration of the joint.

Random networks (hypothesis): DAGs of 1-7 variables with 2-4 states, Dirichlet / near-deterministic
/ exact-zero CPTs, variables listed in an order that is not topological, parent lists in random
order. Each example checks several evidence sets against one structure, so the structure's compiled
contraction is reused.
"""

from __future__ import annotations

import math
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gm import bn
from tests.bn import oracle as O
from tests.bn.util import assert_log_close, assert_marginals_close, assert_same_structure, build
from tests.bn.strategies import (
    POSITIVE_KINDS,
    bn_settings,
    evidence_batches,
    evidences,
    make_spec,
    soft_evidences,
    specs,
)

ATOL = 1e-5  # float32 engine vs float64 oracle, probabilities
MAP_LOG_TOL = 1e-4  # tie-aware MPE/MAP: log value of the returned assignment vs the maximum


def f32(spec: O.Spec) -> O.Spec:
    return spec._replace(cpts=tuple(np.asarray(c, np.float32).astype(np.float64) for c in spec.cpts))


@st.composite
def net_and_evidence(draw, *, possible=True, kinds=("dirichlet", "peaked", "zeros"), max_batch=4):
    spec = draw(specs(kinds=kinds))
    evs = draw(evidence_batches(spec, possible=possible, max_size=max_batch))
    return spec, evs


def random_subset(data, spec: O.Spec, *, min_size=1, max_size=3):
    k = data.draw(st.integers(min_size, min(max_size, spec.n)))
    return data.draw(st.permutations(list(range(spec.n))))[:k]


def check_all_queries(spec, P, ev, idx, out, ctx):
    """Compare one evidence set's answers (dict of log_evidence, marginals, query, mpe, map) with the oracle."""
    names = [spec.names[i] for i in idx]
    assert_log_close(out["log_evidence"], O.log_evidence(spec, ev, P=P), context=ctx)
    got = out["marginals"]
    assert_marginals_close(got, O.marginals(spec, ev, P=P), atol=ATOL, context=ctx)
    for i, v in enumerate(ev):
        if v >= 0:  # observed variables: the one-hot of their value
            np.testing.assert_array_equal(np.asarray(got[spec.names[i]]), np.eye(spec.cards[i])[v], err_msg=ctx)
    q = np.asarray(out["query"])
    exact_q = O.query(spec, idx, ev, P=P)
    assert q.shape == exact_q.shape, (names, q.shape, exact_q.shape)
    np.testing.assert_allclose(q, exact_q, atol=ATOL, err_msg=f"query {names} {ctx}")
    x = np.asarray(out["mpe"].states)
    assert x.shape == (spec.n,) and x.dtype == np.int32, (x.shape, x.dtype)
    assert O.consistent(x, ev), f"MPE {x.tolist()} contradicts the evidence {ctx}"
    best, val = O.mpe_log_value(spec, ev, P=P), O.assignment_log_value(spec, x, ev, P=P)
    assert val >= best - MAP_LOG_TOL, f"MPE {x.tolist()} has log P(x, e) = {val}, the maximum is {best}; {ctx}"
    assert_log_close(out["mpe"].log_prob, best, context=f"MPE log_prob {ctx}")
    y = np.asarray(out["map"])
    assert y.shape == (len(idx),) and y.dtype == np.int32, (y.shape, y.dtype)
    T = O.map_values(spec, idx, ev, P=P)
    assert T[tuple(y)] > 0 and np.log(T[tuple(y)]) >= np.log(T.max()) - MAP_LOG_TOL, (
        f"MAP {names} = {y.tolist()} has P = {T[tuple(y)]}, the maximum is {T.max()}; {ctx}"
    )


def all_queries(net, ev, names, soft=None):
    return dict(
        log_evidence=bn.log_evidence(net, ev, soft=soft),
        marginals=bn.marginals(net, ev, soft=soft),
        query=bn.query(net, names, ev, soft=soft),
        mpe=bn.mpe(net, ev),
        map=bn.map_query(net, names, ev),
    )


# ------------------------------------------------------------------------------------------------
# structure
# ------------------------------------------------------------------------------------------------


@bn_settings(15)
@given(spec=specs(), int_states=st.booleans())
def test_structure_matches_dicts(spec, int_states):
    net = build(spec, int_states=int_states)
    assert_same_structure(net, spec)
    if int_states:
        assert tuple(tuple(s) for s in net.states) == tuple(tuple(str(j) for j in range(c)) for c in spec.cards)
    else:
        assert tuple(tuple(s) for s in net.states) == spec.states
    assert len(net.cpts) == spec.n
    for name, c, exact in zip(spec.names, net.cpts, spec.cpts):
        assert c.dtype == jnp.float32, (name, c.dtype)
        assert c.shape == exact.shape, (name, c.shape, exact.shape)
        np.testing.assert_allclose(np.asarray(c), exact, rtol=1e-6, atol=1e-7, err_msg=name)
    for i, name in enumerate(spec.names):
        assert net.index(name) == i
    # the CPTs are the pytree leaves
    leaves = jax.tree_util.tree_leaves(net)
    assert len(leaves) == spec.n
    assert sorted(leaf.shape for leaf in leaves) == sorted(c.shape for c in net.cpts)


def test_structure_is_static_and_hashable():
    spec = make_spec([2, 3, 2], [(), (0,), (1, 0)], ["dirichlet"] * 3, seed=0)
    other = make_spec([2, 3, 2], [(), (0,), (1, 0)], ["dirichlet"] * 3, seed=1)
    a, b = build(spec), build(other)
    ta, tb = jax.tree_util.tree_structure(a), jax.tree_util.tree_structure(b)
    assert ta == tb and hash(ta) == hash(tb)
    # a different structure gives a different treedef
    c = build(make_spec([2, 3, 2], [(), (0,), (0,)], ["dirichlet"] * 3, seed=0))
    assert jax.tree_util.tree_structure(c) != ta
    # tree_map keeps the structure and the static attributes
    d = jax.tree_util.tree_map(lambda x: x * 1.0, a)
    assert d.names == a.names and d.states == a.states and d.parents == a.parents


def test_evidence_by_name_and_index():
    net = bn.BayesNet.from_dict(**O.burglary_dicts())
    ev = np.asarray(net.evidence({"JohnCalls": "yes", "MaryCalls": 0}))
    assert ev.dtype == np.int32
    assert ev.tolist() == [-1, -1, -1, 1, 0]
    assert np.asarray(net.evidence({})).tolist() == [-1] * 5
    assert np.asarray(net.evidence({"Alarm": 1, "Burglary": "no"})).tolist() == [0, -1, 1, -1, -1]


# ------------------------------------------------------------------------------------------------
# log_prob
# ------------------------------------------------------------------------------------------------


@bn_settings(5)
@given(spec=specs(), data=st.data())
def test_log_prob_matches_enumeration(spec, data):
    net = build(spec)
    spec = f32(spec)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    xs = np.concatenate(
        [
            O.ancestral_sample(spec, rng, 3),  # probable assignments
            np.stack([rng.integers(0, c, size=3) for c in spec.cards], axis=1),  # arbitrary (maybe P = 0)
        ]
    ).astype(np.int32)
    both = jax.jit(
        jax.vmap(lambda n, x: (bn.log_prob(n, x), bn.log_evidence(n, x), bn.mpe(n, x)), in_axes=(None, 0))
    )(net, jnp.asarray(xs))
    plain = bn.log_prob(net, jnp.asarray(xs[0]))
    assert_log_close(plain, O.log_prob(spec, xs[0]), context="plain")
    P = O.joint(spec)
    for k, x in enumerate(xs):
        exact = O.log_prob(spec, x)
        assert exact == -np.inf or abs(np.exp(exact) - P[tuple(x)]) <= 1e-12  # the oracle agrees with itself
        assert_log_close(both[0][k], exact, context=f"log_prob x={x.tolist()}")
        # full evidence: log P(e) = log P(x), and the MPE is x itself
        assert_log_close(both[1][k], exact, context=f"log_evidence of full evidence x={x.tolist()}")
        assert np.asarray(both[2].states[k]).tolist() == x.tolist()
        assert_log_close(both[2].log_prob[k], exact, context=f"MPE log_prob of full evidence x={x.tolist()}")


# ------------------------------------------------------------------------------------------------
# every query vs the oracle: jit(vmap) over a batch of evidence sets, and the plain call
# ------------------------------------------------------------------------------------------------


@bn_settings(10)
@given(case=net_and_evidence(max_batch=4), data=st.data())
def test_queries_match_enumeration_jit_vmap(case, data):
    """log_evidence, marginals, query, mpe, map_query under jit(vmap) vs the float64 oracle."""
    spec, evs = case
    net = build(spec)
    spec = f32(spec)
    P = O.joint(spec)
    idx = random_subset(data, spec)
    names = tuple(spec.names[i] for i in idx)
    out = jax.jit(jax.vmap(lambda n, e: all_queries(n, e, names), in_axes=(None, 0)))(net, jnp.asarray(evs))
    assert np.asarray(out["log_evidence"]).shape == (len(evs),)
    for b, ev in enumerate(evs):
        row = jax.tree_util.tree_map(lambda v: v[b], out)
        check_all_queries(spec, P, ev, idx, row, f"jit(vmap) row {b}, ev={ev.tolist()}, names={names}")


@bn_settings(3)
@given(case=net_and_evidence(max_batch=1), data=st.data())
def test_queries_match_enumeration_plain_and_jit(case, data):
    """The same queries called plainly (no jit) and under jit without vmap."""
    spec, evs = case
    net = build(spec)
    spec = f32(spec)
    P = O.joint(spec)
    idx = random_subset(data, spec)
    names = [spec.names[i] for i in idx]
    ev = evs[0]
    plain = all_queries(net, jnp.asarray(ev), names)
    check_all_queries(spec, P, ev, idx, plain, f"plain, ev={ev.tolist()}, names={names}")
    jitted = jax.jit(all_queries, static_argnums=2)(net, jnp.asarray(ev), tuple(names))
    check_all_queries(spec, P, ev, idx, jitted, f"jit, ev={ev.tolist()}, names={names}")
    # numpy evidence is accepted too
    m = bn.marginals(net, ev)
    assert_marginals_close(m, O.marginals(spec, ev, P=P), context="numpy evidence")


def test_query_axis_order_and_tuple_names():
    net = bn.BayesNet.from_dict(**O.burglary_dicts())
    spec = O.spec_from_net(net)
    ev = net.evidence({"JohnCalls": "yes"})
    be = np.asarray(bn.query(net, ["Burglary", "Earthquake"], ev))
    eb = np.asarray(bn.query(net, ("Earthquake", "Burglary"), ev))
    np.testing.assert_allclose(be, eb.T, atol=1e-7)
    np.testing.assert_allclose(be, O.query(spec, [0, 1], np.asarray(ev)), atol=ATOL)
    # three variables, unsorted
    got = np.asarray(bn.query(net, ["MaryCalls", "Burglary", "Alarm"], ev))
    np.testing.assert_allclose(got, O.query(spec, [4, 0, 2], np.asarray(ev)), atol=ATOL)


# ------------------------------------------------------------------------------------------------
# MPE and MAP (tie-aware: compare the value of the returned assignment with the maximum)
# ------------------------------------------------------------------------------------------------


def test_map_differs_from_mpe_projection():
    """A case where MAP over one variable is not the MPE's value of it (summing matters)."""
    # A: two states; B | A. P(A=0)=0.4, B|A=0 concentrated on one state, B|A=1 spread over three.
    net = bn.BayesNet.from_dict(
        states={"A": 2, "B": 3},
        parents={"B": ["A"]},
        cpts={"A": [0.4, 0.6], "B": [[1.0, 0.0, 0.0], [0.34, 0.33, 0.33]]},
    )
    ev = net.evidence({})
    assert np.asarray(bn.mpe(net, ev).states).tolist() == [0, 0]  # P(A=0,B=0)=0.4 > 0.204
    assert np.asarray(bn.map_query(net, ["A"], ev)).tolist() == [1]  # P(A=1)=0.6


# ------------------------------------------------------------------------------------------------
# soft evidence
# ------------------------------------------------------------------------------------------------


@bn_settings(6)
@given(spec=specs(), data=st.data())
def test_soft_evidence_jit_vmap(spec, data):
    """Soft (virtual) evidence batched with hard evidence: log_evidence, marginals, query."""
    net = build(spec)
    spec = f32(spec)
    P = O.joint(spec)
    evs = data.draw(evidence_batches(spec, min_size=1, max_size=3))
    keys = sorted(data.draw(soft_evidences(spec)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    batch = {}
    for k in keys:
        v = rng.uniform(0.05, 2.0, size=(len(evs), spec.cards[spec.index(k)]))
        v[rng.random(v.shape) < 0.2] = 0.0  # some zero likelihoods (sometimes making P(e) = 0)
        batch[k] = v.astype(np.float32)
    idx = random_subset(data, spec, max_size=2)
    names = tuple(spec.names[i] for i in idx)

    def f(n, e, s):
        return (
            bn.log_evidence(n, e, soft=s),
            bn.marginals(n, e, soft=s),
            bn.query(n, names, e, soft=s),
        )

    le, mg, q = jax.jit(jax.vmap(f, in_axes=(None, 0, 0)))(
        net, jnp.asarray(evs), {k: jnp.asarray(v) for k, v in batch.items()}
    )
    for b, ev in enumerate(evs):
        s64 = {k: batch[k][b].astype(np.float64) for k in keys}
        ctx = f"row {b} ev={ev.tolist()} soft={ {k: v.tolist() for k, v in s64.items()} }"
        assert_log_close(le[b], O.log_evidence(spec, ev, s64, P=P), context=ctx)
        assert_marginals_close({k: v[b] for k, v in mg.items()}, O.marginals(spec, ev, s64, P=P), context=ctx)
        np.testing.assert_allclose(np.asarray(q[b]), O.query(spec, idx, ev, s64, P=P), atol=ATOL, err_msg=ctx)


def test_soft_evidence_plain_call_and_indicator():
    net = bn.BayesNet.from_dict(**O.burglary_dicts())
    spec = O.spec_from_net(net)
    ev = net.evidence({"MaryCalls": "yes"})
    soft = {"JohnCalls": jnp.array([0.3, 0.9]), "Earthquake": jnp.array([1.0, 0.5])}
    soft64 = {k: np.asarray(v, np.float64) for k, v in soft.items()}
    assert_log_close(bn.log_evidence(net, ev, soft=soft), O.log_evidence(spec, np.asarray(ev), soft64))
    assert_marginals_close(bn.marginals(net, ev, soft=soft), O.marginals(spec, np.asarray(ev), soft64))
    np.testing.assert_allclose(
        np.asarray(bn.query(net, ["Burglary", "Alarm"], ev, soft=soft)),
        O.query(spec, [0, 2], np.asarray(ev), soft64),
        atol=ATOL,
    )
    # an indicator likelihood is hard evidence
    a = bn.marginals(net, ev, soft={"JohnCalls": jnp.array([0.0, 1.0])})
    b = bn.marginals(net, net.evidence({"MaryCalls": "yes", "JohnCalls": "yes"}))
    for k in a:
        np.testing.assert_allclose(np.asarray(a[k]), np.asarray(b[k]), atol=1e-6, err_msg=k)


def test_soft_evidence_scale_invariance_of_posterior():
    net = bn.BayesNet.from_dict(**O.burglary_dicts())
    ev = net.evidence({})
    s1 = {"JohnCalls": jnp.array([0.2, 0.8])}
    s2 = {"JohnCalls": jnp.array([2.0, 8.0])}
    m1, m2 = bn.marginals(net, ev, soft=s1), bn.marginals(net, ev, soft=s2)
    for k in m1:
        np.testing.assert_allclose(np.asarray(m1[k]), np.asarray(m2[k]), atol=1e-6)
    # log P(e) shifts by log 10
    d = float(bn.log_evidence(net, ev, soft=s2)) - float(bn.log_evidence(net, ev, soft=s1))
    assert abs(d - np.log(10.0)) < 1e-5


# ------------------------------------------------------------------------------------------------
# impossible evidence
# ------------------------------------------------------------------------------------------------


def impossible_net():
    """A -> B with P(A=1) = 0 and P(B=1 | A=0) = 0: B=1 is impossible; C is an unrelated root."""
    return bn.BayesNet.from_dict(
        states={"A": ["a0", "a1"], "B": ["b0", "b1", "b2"], "C": ["c0", "c1"]},
        parents={"B": ["A"]},
        cpts={"A": [1.0, 0.0], "B": [[0.5, 0.0, 0.5], [0.2, 0.3, 0.5]], "C": [0.3, 0.7]},
    )


def _assert_impossible_outputs(net, ev, soft=None, *, jit=False):
    le = jax.jit(bn.log_evidence) if jit else bn.log_evidence
    mg = jax.jit(bn.marginals) if jit else bn.marginals
    assert float(le(net, ev, soft=soft)) == -np.inf
    m = mg(net, ev, soft=soft)
    for name, p in m.items():
        p = np.asarray(p)
        assert not np.isnan(p).any(), f"NaN marginal for {name} under impossible evidence"
        np.testing.assert_array_equal(p, np.zeros_like(p), err_msg=f"marginal of {name} under impossible evidence")


@pytest.mark.parametrize("jit", [False, True])
def test_impossible_hard_evidence(jit):
    net = impossible_net()
    _assert_impossible_outputs(net, net.evidence({"B": "b1"}), jit=jit)
    _assert_impossible_outputs(net, net.evidence({"A": "a1"}), jit=jit)
    _assert_impossible_outputs(net, net.evidence({"A": "a1", "C": "c0"}), jit=jit)


@pytest.mark.parametrize("jit", [False, True])
def test_impossible_soft_evidence(jit):
    net = impossible_net()
    ev = net.evidence({})
    _assert_impossible_outputs(net, ev, soft={"C": jnp.zeros(2)}, jit=jit)
    _assert_impossible_outputs(net, ev, soft={"B": jnp.array([0.0, 1.0, 0.0])}, jit=jit)


def test_impossible_evidence_query_has_no_nan():
    net = impossible_net()
    q = np.asarray(bn.query(net, ["A", "C"], net.evidence({"B": "b1"})))
    assert not np.isnan(q).any(), q


def test_check_raises_on_impossible_evidence():
    net = impossible_net()
    with pytest.raises(ValueError):
        bn.marginals(net, net.evidence({"B": "b1"}), check=True)
    with pytest.raises(ValueError):
        bn.marginals(net, net.evidence({}), soft={"C": jnp.zeros(2)}, check=True)
    # possible evidence passes the check and gives the same answer
    ev = net.evidence({"B": "b2"})
    a, b = bn.marginals(net, ev, check=True), bn.marginals(net, ev)
    for k in a:
        np.testing.assert_allclose(np.asarray(a[k]), np.asarray(b[k]), atol=0)


@bn_settings(4)
@given(case=net_and_evidence(possible=False, kinds=("zeros",), max_batch=4))
def test_arbitrary_evidence_possible_or_not(case):
    """Arbitrary evidence on exact-zero CPTs: the oracle's answer when P(e) > 0; -inf and all-zero
    marginals when P(e) = 0 (and check=True raises outside jit)."""
    spec, evs = case
    net = build(spec)
    spec = f32(spec)
    P = O.joint(spec)
    le, mg = jax.jit(jax.vmap(lambda n, e: (bn.log_evidence(n, e), bn.marginals(n, e)), in_axes=(None, 0)))(
        net, jnp.asarray(evs)
    )
    for b, ev in enumerate(evs):
        exact_le = O.log_evidence(spec, ev, P=P)
        ctx = f"ev={ev.tolist()}"
        assert_log_close(le[b], exact_le, context=ctx)
        assert_marginals_close({k: v[b] for k, v in mg.items()}, O.marginals(spec, ev, P=P), atol=ATOL, context=ctx)
    impossible = [ev for ev in evs if O.log_evidence(spec, ev, P=P) == -np.inf]
    if impossible:
        with pytest.raises(ValueError):
            bn.marginals(net, jnp.asarray(impossible[0]), check=True)


# ------------------------------------------------------------------------------------------------
# one compiled function for every evidence pattern
# ------------------------------------------------------------------------------------------------


def _alarm_like():
    spec = make_spec(
        [2, 3, 2, 4, 2, 3],
        [(), (0,), (0, 1), (2,), (3, 1), (2, 4)],
        ["dirichlet", "peaked", "zeros", "dirichlet", "dirichlet", "peaked"],
        seed=7,
    )
    return spec, build(spec)


@pytest.mark.parametrize("fn", ["log_evidence", "marginals", "query", "mpe", "map_query"])
def test_no_retrace_across_evidence_patterns(fn):
    spec, net = _alarm_like()
    traces = []

    def f(net, ev):
        traces.append(1)  # runs only while tracing
        if fn == "query":
            return bn.query(net, ["X1", "X4"], ev)
        if fn == "map_query":
            return bn.map_query(net, ["X3", "X0"], ev)
        return getattr(bn, fn)(net, ev)

    jf = jax.jit(f)
    patterns = [
        {},
        {"X0": "s1"},
        {"X3": "s2", "X5": "s0"},
        {"X1": 0, "X2": 1, "X4": 1},
        {"X0": 0, "X1": 1, "X2": 0, "X3": 3, "X4": 0, "X5": 2},
    ]
    for p in patterns:
        jax.block_until_ready(jf(net, net.evidence(p)))
    assert len(traces) == 1, f"{fn} traced {len(traces)} times for {len(patterns)} evidence patterns"
    # new CPT values with the same structure: still no retrace
    net2 = build(make_spec(list(spec.cards), list(spec.parents), ["dirichlet"] * spec.n, seed=99))
    jax.block_until_ready(jf(net2, net2.evidence({"X2": 1})))
    assert len(traces) == 1, f"{fn} retraced for a network with the same structure and new CPTs"
    assert jf._cache_size() == 1


def test_no_retrace_vmap_and_soft():
    spec, net = _alarm_like()
    traces = []

    def f(net, evs, soft):
        traces.append(1)
        return jax.vmap(lambda e, s: bn.marginals(net, e, soft=s))(evs, soft)

    jf = jax.jit(f)
    rng = np.random.default_rng(3)
    for _ in range(3):
        evs = np.full((8, spec.n), -1, np.int32)
        for b in range(8):
            x = O.ancestral_sample(spec, rng, 1)[0]
            mask = rng.random(spec.n) < 0.4
            evs[b] = np.where(mask, x, -1)
        soft = {"X3": jnp.asarray(rng.uniform(0.1, 1.0, size=(8, 4)), jnp.float32)}
        jax.block_until_ready(jf(net, jnp.asarray(evs), soft))
    assert len(traces) == 1


# ------------------------------------------------------------------------------------------------
# gradients
# ------------------------------------------------------------------------------------------------


def _compare_grad(spec, g, ev, soft=None):
    exact = O.grad_log_evidence(spec, ev, None if soft is None else {k: np.asarray(v, np.float64) for k, v in soft.items()})
    for name, gi, ei in zip(spec.names, g.cpts, exact):
        gi = np.asarray(gi)
        assert gi.shape == ei.shape, (name, gi.shape, ei.shape)
        assert np.isfinite(gi).all(), f"non-finite gradient for the CPT of {name}: {gi.tolist()}, ev={ev.tolist()}"
        scale = max(1.0, float(np.abs(ei).max()))
        np.testing.assert_allclose(
            gi, ei, rtol=2e-3, atol=1e-4 * scale, err_msg=f"d log P(e) / d cpt[{name}], ev={ev.tolist()}"
        )


@bn_settings(5)
@given(spec=specs(kinds=POSITIVE_KINDS), data=st.data())
def test_grad_log_evidence_closed_form(spec, data):
    """d log P(e) / d cpt_i[u, x] = P(X_i = x, U_i = u | e) / cpt_i[u, x] (entries as free parameters)."""
    net = build(spec)
    spec = f32(spec)
    evs = data.draw(evidence_batches(spec, max_size=3))
    grads = jax.jit(jax.vmap(jax.grad(bn.log_evidence), in_axes=(None, 0)))(net, jnp.asarray(evs))
    for b, ev in enumerate(evs):
        _compare_grad(spec, jax.tree_util.tree_map(lambda g: g[b], grads), ev)


@bn_settings(4)
@given(spec=specs(kinds=("zeros",)), data=st.data())
def test_grad_log_evidence_at_zero_entries(spec, data):
    """The derivative at an exact-zero CPT entry is finite (the contraction of the other factors)."""
    net = build(spec)
    spec = f32(spec)
    ev = data.draw(evidences(spec))
    _compare_grad(spec, jax.grad(bn.log_evidence)(net, jnp.asarray(ev)), ev)


def test_grad_with_soft_evidence():
    spec = make_spec([2, 3, 2, 2], [(), (0,), (0, 1), (1,)], ["dirichlet", "peaked", "zeros", "dirichlet"], seed=11)
    net = build(spec)
    ev = np.array([-1, -1, -1, 1], np.int32)
    soft = {"X1": np.array([0.2, 1.0, 0.7], np.float32), "X2": np.array([1.0, 0.4], np.float32)}
    g = jax.jit(jax.grad(lambda n, e, s: bn.log_evidence(n, e, soft=s)))(
        net, jnp.asarray(ev), {k: jnp.asarray(v) for k, v in soft.items()})
    _compare_grad(spec, g, ev, soft)


def test_grad_closed_form_burglary():
    net = bn.BayesNet.from_dict(**O.burglary_dicts())
    spec = O.spec_from_net(net)
    ev = np.asarray(net.evidence({"JohnCalls": "yes", "MaryCalls": "yes"}))
    g = jax.grad(bn.log_evidence)(net, jnp.asarray(ev))
    # d log P(e) / d P(B=yes) = P(B=yes | e) / P(B=yes)
    post_b = O.marginals(spec, ev)["Burglary"]
    assert type(g) is type(net)
    np.testing.assert_allclose(np.asarray(g.cpts[0]), post_b / spec.cpts[0], rtol=1e-3)
    _compare_grad(spec, g, ev)


def test_check_grads_float64(x64):
    from jax.test_util import check_grads

    spec = make_spec([2, 3, 2, 2], [(), (0,), (0, 1), (1,)], ["dirichlet"] * 4, seed=5)
    net = build(spec)
    net64 = jax.tree_util.tree_map(lambda c: jnp.asarray(c, jnp.float64), net)
    ev = jnp.asarray(np.array([-1, -1, 1, 0], np.int32))

    def f(n):
        return bn.log_evidence(n, ev)

    assert f(net64).dtype == jnp.float64, "log_evidence does not keep float64 CPTs in float64"
    check_grads(f, (net64,), order=1, modes=("rev",), eps=1e-4, atol=1e-5, rtol=1e-5)
    exact = O.grad_log_evidence(spec, np.asarray(ev))
    g = jax.grad(f)(net64)
    for gi, ei in zip(g.cpts, exact):
        np.testing.assert_allclose(np.asarray(gi), ei, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["unrolled", "program"])
def test_forward_mode_autodiff_against_enumeration(method):
    """`jax.jvp`, `jax.jacfwd` and `jax.hessian` of log P(e) in the CPTs. A 10^4-entry CPT makes the
    unrolled engine run a matrix product; both engines once had custom VJPs, which forward mode rejects.
    The JVP must equal the enumerated gradient dotted with the tangent, the forward-mode Jacobian the
    reverse-mode one, and the Hessian (forward over reverse) the Jacobian of the reverse-mode gradient
    taken in reverse mode."""
    k = 10 if method == "unrolled" else 3  # the program has no matrix-product path to reach
    spec = make_spec([k, k, k, k, 3], [(), (0,), (0, 1), (0, 1, 2), (3,)], ["dirichlet"] * 5, seed=11)
    net = build(spec)
    ev = jnp.asarray(np.array([-1, 2, -1, -1, 2], np.int32))
    f = lambda cpts: bn.log_evidence(net.replace(cpts=cpts), ev, method=method)  # noqa: E731
    cpts = list(net.cpts)
    tangents = [jnp.asarray(np.random.default_rng(i).normal(size=c.shape), c.dtype) for i, c in enumerate(cpts)]
    value, jvp = jax.jit(lambda c, t: jax.jvp(f, (c,), (t,)))(cpts, tangents)
    exact = O.grad_log_evidence(spec, np.asarray(ev))
    expected = sum(float(np.sum(e * np.asarray(t, np.float64))) for e, t in zip(exact, tangents))
    np.testing.assert_allclose(float(value), O.log_evidence(spec, np.asarray(ev)), rtol=1e-5)
    np.testing.assert_allclose(float(jvp), expected, rtol=1e-4, atol=1e-4)
    small = lambda c4: f(cpts[:4] + [c4])  # noqa: E731   the last CPT, 30 entries
    np.testing.assert_allclose(jax.jacfwd(small)(cpts[4]), jax.jacrev(small)(cpts[4]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(jax.jit(jax.hessian(small))(cpts[4]), jax.jacrev(jax.jacrev(small))(cpts[4]),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["program", "unrolled"])
def test_derivatives_of_marginals_query_and_mpe_in_the_cpts(x64, method):
    """Reverse and forward mode of all marginals, a two-variable query and the MPE's log-probability,
    against finite differences in float64. On the step program these once raised ("Linearization
    failed"): their batch rule is a custom_vmap, which JAX cannot linearize."""
    from jax.test_util import check_grads

    spec = make_spec([2, 3, 2, 2], [(), (0,), (0, 1), (1,)], ["dirichlet"] * 4, seed=5)
    net = jax.tree_util.tree_map(lambda c: jnp.asarray(c, jnp.float64), build(spec))
    ev = jnp.asarray(np.array([-1, -1, 1, -1], np.int32))
    names = list(net.names)

    def marginals(n):
        return jnp.concatenate([v for v in bn.marginals(n, ev, method=method).values()])

    def query(n):
        return bn.query(n, names[:2], ev, method=method).ravel()

    def mpe_log_prob(n):
        return bn.mpe(n, ev, method=method).log_prob

    for f in (marginals, query, mpe_log_prob):
        check_grads(jax.jit(f), (net,), order=1, modes=("rev", "fwd"), eps=1e-5, atol=1e-6, rtol=1e-6)


def test_burglary_posterior():
    net = bn.BayesNet.from_dict(**O.burglary_dicts())
    ev = net.evidence({"JohnCalls": "yes", "MaryCalls": "yes"})
    p = np.asarray(bn.marginals(net, ev)["Burglary"])
    assert abs(p[1] - 0.284) < 5e-4, p
    spec = O.spec_from_net(net)
    np.testing.assert_allclose(p, O.marginals(spec, np.asarray(ev))["Burglary"], atol=1e-6)


# ------------------------------------------------------------------------------------------------
# map_batched: the batch-minor contraction against enumeration (and chunked)
# ------------------------------------------------------------------------------------------------


@bn_settings(6)
@given(case=net_and_evidence(possible=False, kinds=("dirichlet", "zeros"), max_batch=5), data=st.data())
def test_map_batched_batch_minor_matches_enumeration(case, data):
    """map_batched's batch-minor path: marginals and log P(e) of every set (possible or not, chunked or
    not, with soft evidence) equal the oracle's."""
    spec, evs = case
    net = build(spec)
    spec = f32(spec)
    soft = None
    if data.draw(st.booleans()):
        i = data.draw(st.integers(0, spec.n - 1))
        soft = {spec.names[i]: np.linspace(0.2, 1.0, spec.cards[i])}
    chunk = data.draw(st.sampled_from([None, 2]))
    evs = jnp.asarray(evs)
    mg, le = jax.jit(lambda n, e: bn.map_batched(bn.marginals_and_log_evidence, n, e, chunk_size=chunk, soft=soft))(net, evs)
    le2 = bn.map_batched(bn.log_evidence, net, evs, soft=soft)
    mg2 = bn.map_batched(bn.marginals, net, evs, soft=soft)
    P = O.joint(spec)
    for b, ev in enumerate(np.asarray(evs)):
        ctx = f"ev={ev.tolist()} soft={soft}"
        exact_le = O.log_evidence(spec, ev, soft, P=P)
        assert_log_close(le[b], exact_le, context=ctx)
        assert_log_close(le2[b], exact_le, context=ctx)
        exact = O.marginals(spec, ev, soft, P=P)
        assert_marginals_close({k: v[b] for k, v in mg.items()}, exact, atol=ATOL, context=ctx)
        assert_marginals_close({k: v[b] for k, v in mg2.items()}, exact, atol=ATOL, context=ctx)


def test_big_cpt_network_batched_on_matrix_products():
    """A network whose CPTs are big enough that its plan has matrix-product steps (not all small), so
    map_batched runs the jax.vmap'ed unrolled engine with the CPTs unbatched in those products (and in
    small chunks): marginals and log P(e) of every evidence set against variable elimination in float64."""
    cards = (6, 7, 6, 7, 6)
    parents = ((), (0,), (0, 1), (1, 2), (0, 1, 2, 3))  # X4's family: a step of 6 * 7 * 6 * 7 * 6 entries
    spec = f32(make_spec(cards, parents, ("dirichlet",) * 5, seed=3))
    net = build(spec)
    assert not bn.tensornet.all_steps_small(bn.network_plan(net.structure))
    check_map_batched_against_ve(spec, net, seed=0, fraction=0.4)


def check_map_batched_against_ve(spec, net, *, seed: int, fraction: float) -> np.ndarray:
    """map_batched's marginals and log P(e) (jit, chunks of 5) for 12 forward-sampled evidence sets with
    ``fraction`` of the variables observed, against float64 variable elimination; returns the sets."""
    rng = np.random.default_rng(seed)
    x = O.ancestral_sample(spec, rng, 12)
    evs = np.where(rng.random(x.shape) < fraction, x, -1).astype(np.int32)
    post, log_z = jax.jit(lambda n, e: bn.map_batched(bn.marginals_and_log_evidence, n, e, chunk_size=5))(net, evs)
    for b, ev in enumerate(evs):
        assert_marginals_close({k: v[b] for k, v in post.items()}, O.marginals_ve(spec, ev), context=f"ev={ev}")
        assert_log_close(log_z[b], O.log_evidence_ve(spec, ev), context=f"ev={ev}")
    return evs


def _large_step_kinds(net) -> set[str]:
    """The kinds of the plan's large pairwise steps under the unrolled engine: "product" (a matrix product
    of two intermediates), "cpt product" (an intermediate times a CPT) and "memory-bound" (under 8
    multiply-adds per entry of its largest intermediate or result: a fused multiply and sum)."""
    p = bn.network_plan(net.structure)
    n_in, kinds = len(p.inputs), set()
    for step in p.steps:
        if step.b < 0:
            continue
        la, lb = p.labels[step.a], p.labels[step.b]
        grid = math.prod(p.sizes[l] for l in set(la) | set(lb) | set(step.out))
        if grid <= 4096:
            continue
        size = {i: math.prod(p.sizes[l] for l in x) for i, x in ((step.a, la), (step.b, lb))}
        batched = max([math.prod(p.sizes[l] for l in step.out)] + [e for i, e in size.items() if i >= n_in])
        cpt = max([0] + [e for i, e in size.items() if i < n_in])
        if cpt <= batched and grid < 8 * batched:
            kinds.add("memory-bound")
        else:
            kinds.add("product" if min(step.a, step.b) >= n_in else "cpt product")
    return kinds


@pytest.mark.parametrize(
    "cards, parents, kinds",
    [
        # all three kinds
        (
            (6, 6, 6, 6, 6, 6, 4, 7, 6, 4, 6),
            ((), (0,), (0, 1), (1, 2), (1,), (0, 1, 3), (2, 5), (0, 4), (2, 5), (4, 7, 8), (0, 6, 9)),
            {"product", "cpt product", "memory-bound"},
        ),
        # a CPT as the left operand of a product (the intermediate goes first)
        (
            (4, 5, 6, 5, 6, 7, 5, 4, 5, 6),
            ((), (0,), (1,), (1,), (0, 1, 2, 3), (0, 1, 2, 4), (1, 2, 3, 5), (4,), (2, 4, 7), (1,)),
            {"cpt product"},
        ),
    ],
)
def test_large_steps_of_every_kind_batched_and_differentiated(cards, parents, kinds):
    """Networks whose plans have the kinds of large steps (two intermediates multiplied; an intermediate
    times a CPT; a memory-bound multiply-and-sum) under map_batched: marginals and log P(e) against
    variable elimination in float64, and the gradient of log P(e) in the CPTs through those steps'
    reverse passes against the step program's hand-written reverse pass."""
    spec = f32(make_spec(cards, parents, ("dirichlet",) * len(cards), seed=3))
    net = build(spec)
    assert kinds <= _large_step_kinds(net)
    evs = check_map_batched_against_ve(spec, net, seed=1, fraction=0.3)

    def total(n, method):
        return jnp.sum(jax.vmap(lambda e: bn.log_evidence(n, e, method=method))(jnp.asarray(evs)))

    g_unrolled = jax.jit(jax.grad(lambda n: total(n, "unrolled")))(net)
    g_program = jax.jit(jax.grad(lambda n: total(n, "program")))(net)
    for i, (a, b) in enumerate(zip(g_unrolled.cpts, g_program.cpts)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-4, err_msg=net.names[i])
