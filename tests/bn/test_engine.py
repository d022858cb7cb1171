"""The three engines of gm.bn (host, program, unrolled) against float64 enumeration, and the program
engine's compile cost.

The enumeration file (test_inference_enumeration.py) runs the public functions the way users call them:
eagerly (the host engine) and under jit / vmap (the program engine). Here each engine is forced with
``method=`` on the same random networks, the program is lowered with every segment kind (flat and dense
steps, one segment or many), and the compile-cost regression check counts the compiled program's loops
and instructions, which must not grow with the number of variables.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gm import bn
from gm.bn import engine, program, tensornet
from tests.bn import oracle as O
from gm.bn.evidence import evidence_matrix_host
from gm.types import MPE
from tests.bn.util import assert_log_close, assert_marginals_close, build
from tests.bn.strategies import bn_settings, evidence_batches, specs

ATOL = 1e-5
MAP_LOG_TOL = 1e-4


def _check(spec, ev, post, log_z, best, ctx):
    P = O.joint(spec)
    assert_log_close(log_z, O.log_evidence(spec, ev, P=P), context=ctx)
    assert isinstance(best, MPE), (type(best), ctx)
    if O.log_evidence(spec, ev, P=P) > -np.inf:
        assert_marginals_close(post, O.marginals(spec, ev, P=P), atol=ATOL, context=ctx)
        x = np.asarray(best.states)
        assert O.consistent(x, ev), (x, ev, ctx)
        assert O.assignment_log_value(spec, x, ev, P=P) >= O.mpe_log_value(spec, ev, P=P) - MAP_LOG_TOL, ctx
        assert_log_close(best.log_prob, O.mpe_log_value(spec, ev, P=P), context=f"MPE log_prob, {ctx}")
    else:  # impossible evidence: all-zero marginals, never NaN; the MPE's log probability is -inf
        for name, p in post.items():
            assert np.all(np.asarray(p) == 0), (name, p, ctx)
        assert float(best.log_prob) == -np.inf, (best.log_prob, ctx)


@bn_settings(4)
@given(data=st.data())
def test_every_engine_matches_enumeration(data):
    spec = data.draw(specs())
    evs = data.draw(evidence_batches(spec, possible=False, max_size=3))
    net = build(spec)
    for method in ("host", "unrolled"):
        for ev in evs:
            post, log_z = bn.marginals_and_log_evidence(net, ev, method=method)
            _check(spec, ev, post, log_z, bn.mpe(net, ev, method=method), method)
    # the program engine, jitted one set at a time and vmapped over the batch
    one = jax.jit(lambda n, e: (bn.marginals_and_log_evidence(n, e, method="program"), bn.mpe(n, e, method="program")))
    many = jax.jit(jax.vmap(
        lambda n, e: (bn.marginals_and_log_evidence(n, e, method="program"), bn.mpe(n, e, method="program")),
        in_axes=(None, 0)))
    (post_b, log_z_b), x_b = many(net, jnp.asarray(evs))
    for b, ev in enumerate(evs):
        (post, log_z), x = one(net, ev)
        _check(spec, ev, post, log_z, x, "program")
        _check(spec, ev, {k: v[b] for k, v in post_b.items()}, log_z_b[b], jax.tree.map(lambda a: a[b], x_b),
               "program vmap")


@bn_settings(3)
@given(data=st.data())
def test_query_and_map_query_every_engine(data):
    spec = data.draw(specs())
    (ev,) = data.draw(evidence_batches(spec, possible=True, max_size=1))
    k = data.draw(st.integers(1, min(3, spec.n)))
    idx = data.draw(st.permutations(list(range(spec.n))))[:k]
    names = [spec.names[i] for i in idx]
    net = build(spec)
    P = O.joint(spec)
    exact = O.query(spec, idx, ev, P=P)
    T = O.map_values(spec, idx, ev, P=P)
    for method in ("host", "program", "unrolled"):
        fn = jax.jit(lambda n, e: bn.query(n, names, e, method=method)) if method == "program" else (
            lambda n, e: bn.query(n, names, e, method=method))
        np.testing.assert_allclose(np.asarray(fn(net, ev)), exact, atol=ATOL, err_msg=method)
        y = np.asarray(bn.map_query(net, names, ev, method=method))
        assert np.log(T[tuple(y)]) >= np.log(T.max()) - MAP_LOG_TOL, (method, y, T)


@bn_settings(3)
@given(data=st.data())
def test_program_segments_of_every_kind(data):
    """Flat and dense steps, padded into one segment or kept apart, give the same contraction."""
    spec = data.draw(specs())
    (ev,) = data.draw(evidence_batches(spec, possible=True, max_size=1))
    net = build(spec)
    flat = np.concatenate([np.ravel(c) for c in spec.cpts])
    evm = evidence_matrix_host(net, ev)
    inputs = flat * evm.reshape(-1)[engine.entry_index(net.structure)]
    p = tensornet.plan(net.structure.families, (), net.structure.cards)
    exact = O.log_evidence(spec, ev)
    xin = jnp.asarray(inputs, jnp.float32)[:, None]
    grads = []
    configs = [(1, 1e12, 0, 2), (1, 1e12, 1 << 14, 0), (64, 0, 0, 1), (64, 0, 8, 0)]
    for max_segments, free, flat_limit, max_direct in configs:  # max_direct: steps run as `Direct`
        prog = program.lower(p, max_segments, free, flat_limit, direct_flops=0, max_direct=max_direct)
        mem, scales, root, ls = program.forward(prog, xin)
        assert_log_close(np.log(float(root[0])) + float(ls[0]), exact, context=str((max_segments, flat_limit)))
        grads.append(program.backward(prog, mem, scales, 1.0 / root) * xin)  # d log P(e) / d log input
        val, arg = program.forward_max(prog, jnp.log(jnp.asarray(inputs, jnp.float32))[:, None])
        x = np.asarray(program.decode(prog, arg, jnp.zeros((0, 1), jnp.int32)))[:, 0]
        assert abs(O.assignment_log_value(spec, x, ev) - O.mpe_log_value(spec, ev)) < MAP_LOG_TOL
    # every step direct: the reverse pass agrees with the padded ones (checked against autodiff below)
    prog = program.lower(p, direct_flops=0, max_direct=10**6)
    assert all(isinstance(seg, program.Direct) for seg in prog.segments)
    mem, scales, root, _ = program.forward(prog, xin)
    grads.append(program.backward(prog, mem, scales, 1.0 / root) * xin)
    for g in grads[1:]:
        np.testing.assert_allclose(np.asarray(g), np.asarray(grads[0]), rtol=1e-4, atol=1e-5)
    val, arg = program.forward_max(prog, jnp.log(xin))
    y = np.asarray(program.decode(prog, arg, jnp.zeros((0, 1), jnp.int32)))[:, 0]
    assert abs(O.assignment_log_value(spec, y, ev) - O.mpe_log_value(spec, ev)) < MAP_LOG_TOL
    # the host max-product in blocks of every size (down to one entry of the sum at a time) is the same
    prog = program.lower(p)
    with np.errstate(divide="ignore"):
        log_inputs = np.log(inputs)
    whole, whole_arg = program.forward_max_host(prog, log_inputs)
    assert abs(float(whole) - O.mpe_log_value(spec, ev)) < MAP_LOG_TOL
    for block in (1, 7, 64):
        root, arg = program.forward_max_host(prog, log_inputs, block_entries=block)
        np.testing.assert_array_equal(root, whole)
        np.testing.assert_array_equal(arg, whole_arg)


def test_program_gradient_equals_unrolled_gradient():
    """d log P(e) / d CPTs through the hand-written reverse pass equals JAX's autodiff of the unrolled
    contraction (learning with EM uses it)."""
    net = bn.BayesNet.from_dict(**O.burglary_dicts())
    ev = net.evidence({"JohnCalls": "yes", "MaryCalls": "no"})
    g_prog = jax.grad(lambda n: bn.log_evidence(n, ev, method="program"))(net)
    g_unrolled = jax.grad(lambda n: bn.log_evidence(n, ev, method="unrolled"))(net)
    for a, b in zip(g_prog.cpts, g_unrolled.cpts):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    # and inside map_batched (batch-minor program)
    evs = jnp.stack([ev, net.evidence({"JohnCalls": "no"})])
    g_batch = jax.grad(lambda n: jnp.sum(bn.map_batched(bn.log_evidence, n, evs, method="program")))(net)
    g_sum = jax.tree.map(lambda *x: sum(x), *[jax.grad(lambda n: bn.log_evidence(n, e, method="unrolled"))(net) for e in evs])
    for a, b in zip(g_batch.cpts, g_sum.cpts):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def _chain(n: int) -> bn.BayesNet:
    return bn.BayesNet.from_dict(
        states={f"x{i}": ["a", "b", "c"] for i in range(n)},
        parents={f"x{i}": [f"x{i - 1}"] for i in range(1, n)},
        cpts={"x0": [0.5, 0.3, 0.2], **{f"x{i}": [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]] for i in range(1, n)}},
    )


@pytest.mark.parametrize("unroll", [program.UNROLL, 1])
def test_direct_runs_of_one_signature(unroll, monkeypatch):
    """Steps of one signature run as one `Direct` run (a scan over their slot offsets): on a chain most
    steps share one, and the run's forward, reverse and max-sum passes equal the padded program's, both
    unrolled over the summed states and (``UNROLL = 1``) as einsums."""
    monkeypatch.setattr(program, "UNROLL", unroll)
    net = _chain(40)
    p = tensornet.plan(net.structure.families, (), net.structure.cards)
    rng = np.random.default_rng(0)
    evs = np.where(rng.random((3, 40)) < 0.3, rng.integers(0, 3, (3, 40)), -1).astype(np.int32)
    flat = np.concatenate([np.ravel(c) for c in net.cpts])
    idx = engine.entry_index(net.structure)
    xin = jnp.asarray(np.stack([flat * evidence_matrix_host(net, e).reshape(-1)[idx] for e in evs], -1), jnp.float32)
    padded = program.lower(p, direct_flops=1e12)
    runs = program.lower(p, direct_flops=0, max_direct=10**6)
    assert max(seg.count for seg in runs.segments if isinstance(seg, program.Direct)) > 10
    out = []
    for prog in (padded, runs):
        mem, scales, root, ls = program.forward(prog, xin)
        grad = program.backward(prog, mem, scales, 1.0 / root) * xin
        best, arg = program.forward_max(prog, jnp.log(xin))
        out.append((np.log(np.asarray(root)) + np.asarray(ls), np.asarray(grad), np.asarray(best), np.asarray(program.decode(prog, arg, jnp.zeros((0, 3), jnp.int32)))))
    for i, e in enumerate(evs):
        host = float(engine.log_evidence_host(net.structure, flat, evidence_matrix_host(net, e)))
        np.testing.assert_allclose(out[1][0][i], host, rtol=1e-5)
    np.testing.assert_allclose(out[1][0], out[0][0], rtol=1e-5)
    np.testing.assert_allclose(out[1][1], out[0][1], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out[1][2], out[0][2], rtol=1e-5)
    np.testing.assert_array_equal(out[1][3], out[0][3])


def _compiled_size(fn, *args) -> tuple[int, int]:
    text = jax.jit(fn).lower(*args).compile().as_text()
    return len(re.findall(r" while\(", text)), text.count("\n")


def test_compile_cost_does_not_grow_with_the_network():
    """The compiled all-marginals and MPE programs of a 1,000-variable chain have as many loops and
    about as many instructions as those of a 100-variable chain (the unrolled engine's grow 10x)."""
    sizes = {}
    for n in (100, 1000):
        net = _chain(n)
        ev = np.full(n, -1, np.int32)
        ev[::7] = 1
        evm = bn.inference.evidence_matrix(net, ev)
        flat = engine.flat_cpts(net)
        sizes[n] = (
            _compiled_size(engine.single(engine.marginals, net.structure), flat, evm),
            _compiled_size(engine.single(engine.mpe, net.structure), flat, evm),
        )
    for (loops_small, ops_small), (loops_big, ops_big) in zip(sizes[100], sizes[1000]):
        assert loops_big == loops_small, sizes
        assert ops_big <= 1.5 * ops_small, sizes


def test_host_and_program_agree_on_a_long_chain():
    """A 600-variable chain (log P(e) about -250: float32 underflows without the per-step scales)."""
    net = _chain(600)
    ev = np.full(600, -1, np.int32)
    ev[::3] = 2
    host_post, host_z = bn.marginals_and_log_evidence(net, ev)
    (prog_post, prog_z) = jax.jit(lambda n, e: bn.marginals_and_log_evidence(n, e, method="program"))(net, ev)
    assert np.isfinite(float(host_z)) and float(host_z) < -100
    np.testing.assert_allclose(float(prog_z), float(host_z), rtol=1e-5)
    for name in ("x1", "x300", "x599"):
        np.testing.assert_allclose(np.asarray(prog_post[name]), np.asarray(host_post[name]), atol=1e-5)
    x = bn.mpe(net, ev)
    y = jax.jit(lambda n, e: bn.mpe(n, e, method="program"))(net, ev)
    np.testing.assert_allclose(float(bn.log_prob(net, x.states)), float(bn.log_prob(net, y.states)), rtol=1e-5)
    np.testing.assert_allclose(float(y.log_prob), float(bn.log_prob(net, x.states)), rtol=1e-5)


def test_method_argument_is_checked():
    net = bn.BayesNet.from_dict(**O.burglary_dicts())
    ev = net.evidence({})
    with pytest.raises(ValueError, match="method"):
        bn.marginals(net, ev, method="fast")
    with pytest.raises(ValueError, match="concrete"):
        jax.jit(lambda e: bn.log_evidence(net, e, method="host"))(ev)
