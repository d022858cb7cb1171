"""The contraction engine against numpy's einsum (sum-product) and brute force (max-product)."""

import itertools
import os
from unittest import mock
import string

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gm import bn
from gm.bn import tensornet


@st.composite
def networks(draw):
    """Random tensor networks: 2-6 tensors over up to 7 labels of size 1-3, and an output subset."""
    n_labels = draw(st.integers(1, 7))
    sizes = tuple(draw(st.lists(st.integers(1, 3), min_size=n_labels, max_size=n_labels)))
    n_tensors = draw(st.integers(1, 6))
    inputs = tuple(
        tuple(draw(st.lists(st.integers(0, n_labels - 1), min_size=1, max_size=4, unique=True)))
        for _ in range(n_tensors)
    )
    present = sorted({l for t in inputs for l in t})
    output = tuple(draw(st.lists(st.sampled_from(present), max_size=3, unique=True)))
    seed = draw(st.integers(0, 2**31 - 1))
    return inputs, output, sizes, seed


def _arrays(inputs, sizes, seed, zeros=False):
    rng = np.random.default_rng(seed)
    arrays = []
    for t in inputs:
        a = rng.random([sizes[l] for l in t])
        if zeros:
            a = np.where(rng.random(a.shape) < 0.2, 0.0, a)
        arrays.append(a)
    return arrays


def _np_eq(inputs, output):
    letters = string.ascii_letters
    return ",".join("".join(letters[l] for l in t) for t in inputs) + "->" + "".join(letters[l] for l in output)


@settings(max_examples=15, deadline=None)
@given(networks())
def test_contract_matches_einsum(net):
    inputs, output, sizes, seed = net
    arrays = _arrays(inputs, sizes, seed)
    plan = tensornet.plan(inputs, output, sizes)
    mantissa, log_scale = tensornet.contract(plan, [jnp.asarray(a, jnp.float32) for a in arrays])
    got = np.asarray(mantissa, np.float64) * np.exp(float(log_scale))
    want = np.einsum(_np_eq(inputs, output), *arrays)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-30)


@settings(max_examples=15, deadline=None)
@given(networks())
def test_contract_max_value_and_decoding(net):
    inputs, output, sizes, seed = net
    arrays = _arrays(inputs, sizes, seed, zeros=True)
    plan = tensornet.plan(inputs, (), sizes)
    with np.errstate(divide="ignore"):
        logs = [np.log(a) for a in arrays]
    best, decode = tensornet.contract_max(plan, [jnp.asarray(l, jnp.float32) for l in logs])
    labels = sorted({l for t in inputs for l in t})

    def score(assign):
        return sum(float(l[tuple(assign[x] for x in t)]) for l, t in zip(logs, inputs))

    brute = max(score(dict(zip(labels, v))) for v in itertools.product(*(range(sizes[l]) for l in labels)))
    if np.isfinite(brute):
        np.testing.assert_allclose(float(best), brute, rtol=1e-5, atol=1e-5)
        values = decode({})
        assign = {l: int(values[l]) for l in labels}
        np.testing.assert_allclose(score(assign), brute, rtol=1e-5, atol=1e-5)
    else:
        assert float(best) == -np.inf


@settings(max_examples=8, deadline=None)
@given(networks())
def test_searched_paths_contract_correctly(net):
    """The search's randomised elimination orders and their subtree reconfiguration are valid paths:
    each contracts to numpy's einsum (the search keeps whichever moves least, so each must be right)."""
    inputs, output, sizes, seed = net
    if len(inputs) < 2:
        return
    arrays = [jnp.asarray(a, jnp.float32) for a in _arrays(inputs, sizes, seed)]
    want = np.einsum(_np_eq(inputs, output), *_arrays(inputs, sizes, seed))
    random_order = tensornet.elimination_path(inputs, output, sizes, np.random.default_rng(seed))
    for ssa in (random_order, tensornet.reconfigured_path(inputs, output, sizes, random_order)):
        mantissa, log_scale = tensornet.contract(tensornet.plan_from_path(inputs, output, sizes, ssa), arrays)
        got = np.asarray(mantissa, np.float64) * np.exp(float(log_scale))
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-30)


def test_plan_is_cached_and_reports_cost():
    inputs = ((0, 1), (1, 2), (2, 3))
    p1 = tensornet.plan(inputs, (), (2, 3, 4, 5))
    p2 = tensornet.plan(inputs, (), (2, 3, 4, 5))
    assert p1 is p2
    assert p1.flops > 0 and p1.largest >= 1
    assert sum(s.b >= 0 for s in p1.steps) == 2  # two pairwise steps (plus any unary pre-reductions)


def test_plans_of_different_budgets_are_cached_apart_on_disk(tmp_path, monkeypatch):
    """A greedy-only plan (``max_time=0``) written to the disk cache is not read back by a default
    search of the same contraction in a later process (it once was: munin1's batched marginals ran 10x
    slower on the greedy path a test had cached)."""
    monkeypatch.setenv("GM_CACHE_DIR", str(tmp_path))
    inputs, sizes = ((0, 1), (1, 2), (2, 3), (3, 0)), (3, 4, 5, 6)
    tensornet.plan.cache_clear()  # as a new process would: only the disk cache is shared
    tensornet.plan(inputs, (), sizes, max_time=0)
    tensornet.plan(inputs, (), sizes, max_time=0.5)
    tensornet.plan(inputs, (), sizes)
    tensornet.plan.cache_clear()
    assert len(os.listdir(tmp_path / "plans")) == 3


def test_plan_rejects_bad_output():
    with pytest.raises(ValueError, match="output label 9"):
        tensornet.plan(((0, 1),), (9,), (2, 2))


def _chain(n, card=2, seed=0):
    rng = np.random.default_rng(seed)
    names = [f"X{i}" for i in range(n)]
    cpts = {"X0": rng.dirichlet(np.ones(card))}
    for i in range(1, n):
        cpts[names[i]] = rng.dirichlet(np.ones(card) * 0.5, size=card)
    return bn.BayesNet.from_dict(
        states={n_: card for n_ in names},
        parents={names[i]: [names[i - 1]] for i in range(1, n)},
        cpts=cpts,
    )


def _chain_log_evidence_float64(net, ev):
    """Scaled forward algorithm in float64 along the chain."""
    alpha = np.asarray(net.cpts[0], np.float64)
    total = 0.0
    for i in range(net.n_vars):
        if i > 0:
            alpha = alpha @ np.asarray(net.cpts[i], np.float64)
        if ev[i] >= 0:
            mask = np.zeros_like(alpha)
            mask[ev[i]] = 1.0
            alpha = alpha * mask
        s = alpha.sum()
        total += np.log(s)
        alpha = alpha / s
    return total


def test_float32_does_not_underflow_on_long_evidence():
    net = _chain(60, card=4)
    ev = np.random.default_rng(1).integers(0, 4, size=60).astype(np.int32)  # unlikely evidence
    ev[::7] = -1
    want = _chain_log_evidence_float64(net, ev)
    assert want < -88  # P(e) below float32's smallest normal number
    got = float(jax.jit(bn.log_evidence)(net, ev))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    post = jax.jit(bn.marginals)(net, ev)
    assert all(np.isfinite(np.asarray(v)).all() for v in post.values())


@settings(max_examples=15, deadline=None)
@given(networks(), st.booleans())
def test_matrix_product_steps_with_pending_vectors_match_einsum(net, with_grad):
    """Every pairwise step as one dot_general (the large-step path, forced by a zero threshold), with each
    input's vector along its last axis kept apart until used: the value under jax.vmap over the vectors
    and its gradient in them against numpy's einsum on the weighted inputs."""
    inputs, output, sizes, seed = net
    arrays = _arrays(inputs, sizes, seed)
    rng = np.random.default_rng(seed + 1)
    vecs = [rng.random((2, sizes[t[-1]])) + 0.1 for t in inputs]  # a batch of 2 vector sets
    plan = tensornet.plan(inputs, output, sizes)

    def total(vs):
        mantissa, log_scale = tensornet.contract(plan, [jnp.asarray(a, jnp.float32) for a in arrays], vectors=vs)
        return jnp.sum(mantissa) * jnp.exp(log_scale)

    def weighted(b):
        return [a * v[b].reshape((1,) * (a.ndim - 1) + (-1,)) for a, v in zip(arrays, vecs)]

    batched = [jnp.asarray(v, jnp.float32) for v in vecs]
    with mock.patch.object(tensornet, "_SMALL_STEP", 0):
        if with_grad:
            got = jax.jit(jax.vmap(jax.grad(total)))(batched)
        else:
            got = jax.jit(jax.vmap(total))(batched)
    eq = _np_eq(inputs, ())
    for b in range(2):
        if not with_grad:
            np.testing.assert_allclose(float(got[b]), np.einsum(eq, *weighted(b)), rtol=2e-5)
            continue
        for i, t in enumerate(inputs):  # d total / d v_i = the einsum with input i's vector left out
            w = weighted(b)
            w[i] = arrays[i]
            want = np.einsum(_np_eq(inputs, (t[-1],)), *w)
            np.testing.assert_allclose(np.asarray(got[i][b]), want, rtol=2e-4, atol=1e-6)


def _random_contraction(n_tensors=24, n_labels=20, seed=6):
    """Tensors of two to four labels over a random graph of labels of 2 to 7 states."""
    rng = np.random.default_rng(seed)
    sizes = tuple(int(s) for s in rng.integers(2, 8, n_labels))
    inputs = tuple(
        tuple(int(l) for l in rng.choice(n_labels, int(rng.integers(2, 5)), replace=False)) for _ in range(n_tensors)
    )
    return inputs, sizes


def test_path_search_is_reproducible(tmp_path, monkeypatch):
    """Two searches of the same contraction from empty caches (as two fresh processes, or two machines,
    would run them) find the same plan, and leave Python's and NumPy's global generators as they were. The
    budget lets every stage run, cotengra's hyper-optimiser included (it was unseeded and timed, so every
    process got its own plan: water and barley in the benchmark)."""
    import random

    inputs, sizes = _random_contraction()
    plans = []
    for k in range(2):
        monkeypatch.setenv("GM_CACHE_DIR", str(tmp_path / str(k)))
        tensornet.plan.cache_clear()
        random.seed(123 + k)  # the processes' global generators in different states
        np.random.seed(123 + k)
        plans.append(tensornet.plan(inputs, (), sizes, max_time=2.5))
        assert random.random() == random.Random(123 + k).random()
        assert np.random.random() == np.random.RandomState(123 + k).random_sample()
    greedy = tensornet.plan(inputs, (), sizes, max_time=0)
    tensornet.plan.cache_clear()
    assert greedy.flops > 1e6  # large enough to be searched
    assert plans[0].steps == plans[1].steps


def test_large_intermediate_enters_its_product_untransposed():
    """The coupled HMM's step (M = 4 chains of K = 8 states, neighbour coupling, a batch label): the
    message times the first two chains' tables gives an intermediate laid out (summed labels, kept
    labels) for the next product; it enters that product as the right operand as it is, and the
    transpose falls on the smaller table. (The intermediate was transposed, 56 of the general engine's
    260 ms; the rule also has to give the same numbers, checked against einsum.)"""
    K, B = 8, 4
    sizes = (K,) * 8 + (B,)
    inputs = ((0, 1, 2, 3, 8), (4, 5, 0, 1, 2), (6, 7, 1, 2, 3))  # message, tables of chains 1-2 and 3-4
    p = tensornet.plan_from_path(inputs, (4, 5, 6, 7, 8), sizes, [(0, 1), (3, 2)])
    shapes = [tuple(sizes[l] for l in t) for t in inputs]
    intermediate = K**5 * B
    jaxpr = jax.make_jaxpr(lambda *xs: tensornet.contract(p, xs, rescale=False))(
        *(jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes))
    moved = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "transpose"
             and np.prod(e.invars[0].aval.shape) >= intermediate]
    assert not moved
    rng = np.random.default_rng(0)
    xs = [rng.random(s, dtype=np.float32) for s in shapes]
    mantissa, log_scale = tensornet.contract(p, [jnp.asarray(x) for x in xs], rescale=False)
    want = np.einsum("abcdB,xyabc,zwbcd->xyzwB", *[x.astype(np.float64) for x in xs])
    np.testing.assert_allclose(np.asarray(mantissa, np.float64) * np.exp(float(log_scale)), want, rtol=2e-5)


def test_vector_left_pending_on_a_product_is_applied_later():
    """A CPT's evidence vector on a label its matrix product keeps stays pending on the product and is
    applied where the label next meets a smaller tensor (the path of mildew's largest product). The
    total and its gradient with respect to every vector (what the marginals are) equal einsum's."""
    sizes = (30, 40, 20, 25)
    inputs = ((0, 1, 2), (1, 3), (2, 3))  # A[i, j, k] B[j, l] C[k, l], vectors on k, l, l
    p = tensornet.plan_from_path(inputs, (), sizes, [(0, 1), (3, 2)])
    rng = np.random.default_rng(2)
    arrays = [jnp.asarray(rng.random([sizes[l] for l in t], dtype=np.float32)) for t in inputs]
    vectors = [jnp.asarray(rng.random(sizes[t[-1]], dtype=np.float32)) for t in inputs]

    def total(vs):
        mantissa, log_scale = tensornet.contract(p, arrays, vectors=vs)
        return jnp.log(mantissa) + log_scale

    def reference(vs):
        a, b, c = (x * v for x, v in zip(arrays, vs))
        return jnp.log(jnp.einsum("ijk,jl,kl->", a, b, c, precision=jax.lax.Precision.HIGHEST))

    np.testing.assert_allclose(total(vectors), reference(vectors), rtol=1e-5)
    for got, want in zip(jax.grad(total)(vectors), jax.grad(reference)(vectors)):
        np.testing.assert_allclose(got, want, rtol=1e-4)
