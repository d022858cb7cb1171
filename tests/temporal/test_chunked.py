"""The chunked passes of one long sequence (``method="chunked"``, gm.temporal.chunked) against a float64
forward-backward, the sequential passes and enumeration; masks and time-varying transitions refused."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm import temporal as tm
from oracles import brute_force, float64_log_evidence, random_hmm


def float64_smoother(pi, A, ll):
    """(log-evidence, filtered [T, K], marginals [T, K]) by scaled forward-backward in float64."""
    pi, A, ll = (np.asarray(x, np.float64) for x in (pi, A, ll))
    T, K = ll.shape
    shift = ll.max(1)
    lik = np.exp(ll - shift[:, None])
    alphas, cs = np.zeros((T, K)), np.zeros(T)
    alpha = pi
    for t in range(T):
        alpha = (alpha @ A if t else alpha) * lik[t]
        cs[t] = alpha.sum()
        alpha = alpha / cs[t]
        alphas[t] = alpha
    beta, marg = np.ones(K), np.zeros((T, K))
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            beta = A @ (lik[t + 1] * beta)
            beta /= beta.sum()
        m = alphas[t] * beta
        marg[t] = m / m.sum()
    return np.sum(np.log(cs)) + shift.sum(), alphas, marg


@pytest.mark.parametrize("K,T,sharp", [(2, 1, 1.0), (3, 7, 1.0), (2, 1000, 0.3), (4, 513, 1.0), (5, 2000, 0.2),
                                       (16, 1500, 1.0), (12, 300, 0.1)])
def test_chunked_matches_float64_and_sequential(K, T, sharp):
    rng = np.random.default_rng(K * 100 + T)
    pi, A, ll = random_hmm(rng, K, T, sharp=sharp)
    log_z, filtered, marg = float64_smoother(pi, A, ll)
    s = tm.smoother(pi, A, ll, method="chunked")
    f = tm.filter(pi, A, ll, method="chunked")
    seq = tm.smoother(pi, A, ll, method="sequential")
    seq_f = tm.filter(pi, A, ll, method="sequential")
    np.testing.assert_allclose(s.marginals, marg, atol=1e-5)
    np.testing.assert_allclose(f.filtered, filtered, atol=1e-5)
    np.testing.assert_allclose(s.marginals, seq.marginals, atol=1e-5)
    np.testing.assert_allclose(f.log_normalizers, seq_f.log_normalizers, atol=1e-5)
    # log-evidence within float32 rounding of the float64 value, as the sequential pass
    tol = 4 * np.spacing(np.float32(abs(log_z))) + 1e-5
    assert abs(float(s.log_evidence) - log_z) <= tol
    assert float(f.log_evidence) == float(s.log_evidence)
    assert abs(float(seq.log_evidence) - float(s.log_evidence)) <= tol


@pytest.mark.parametrize("T,K,chunk_length", [(7, 3, 1), (7, 3, 2), (7, 3, 5), (7, 3, 64), (10**6, 16, None),
                                               (513, 4, None), (1, 2, None)])
def test_chunk_plan_covers_the_steps(T, K, chunk_length):
    plan = tm.chunked.chunk_plan(T, K, chunk_length=chunk_length)
    assert plan.num_chunks * plan.chunk_length >= T > (plan.num_chunks - 1) * plan.chunk_length
    if chunk_length is None and T >= 64:
        assert plan.chunk_length >= (16 if K <= 4 else 64)
        assert plan.num_chunks * K * K <= 2**17 and plan.num_chunks <= 1024


def test_chunked_matches_enumeration():
    rng = np.random.default_rng(1)
    pi, A, ll = random_hmm(rng, 3, 7)
    exact = brute_force(pi, A, ll)
    post = tm.smoother(pi, A, ll, method="chunked")
    np.testing.assert_allclose(post.marginals, exact["marginals"], atol=1e-5)
    np.testing.assert_allclose(post.log_evidence, exact["log_evidence"], rtol=1e-5)


def test_transfer_operators_are_the_chunk_products():
    """Each chunk's operator, weights times columns, is the product of its steps' A diag(lik) up to one
    factor per chunk (float64 products as the oracle)."""
    rng = np.random.default_rng(3)
    K, C, L = 3, 4, 5
    pi, A, ll = random_hmm(rng, K, C * L)
    lik_at = tm.common.batch_array_likelihood(jnp.asarray(ll).reshape(C, L, K))
    ops = tm.chunked.transfer_operators(jnp.asarray(pi), jnp.asarray(A), lik_at, L)
    A64, lik = np.asarray(A, np.float64), np.exp(np.asarray(ll, np.float64))
    for c in range(1, C):
        M = np.eye(K)
        for t in range(c * L, (c + 1) * L):
            M = M @ A64 @ np.diag(lik[t])
        got = np.exp(np.asarray(ops.log_weight[c], np.float64))[:, None] * np.asarray(ops.columns[:, c, :]).T
        np.testing.assert_allclose(got / got.sum(), M / M.sum(), rtol=1e-4, atol=1e-7)


def test_sparse_model_and_impossible_states():
    """Zeros in the transition matrix and steps where some states are impossible (-inf log-likelihood):
    lanes that die inside a chunk (weight -inf) must not disturb the others."""
    rng = np.random.default_rng(5)
    K, T = 4, 3000
    A = np.array([[0.9, 0.1, 0, 0], [0, 0.9, 0.1, 0], [0, 0, 0.9, 0.1], [0.1, 0, 0, 0.9]], np.float32)
    pi = np.full(K, 0.25, np.float32)
    ll = (rng.normal(size=(T, K)) * 2).astype(np.float32)
    ll[rng.random((T, K)) < 0.3] = -np.inf
    ll[np.arange(T), rng.integers(0, K, T)] = 0.0  # every step possible for some state
    seq = tm.smoother(pi, A, ll, method="sequential")
    out = tm.smoother(pi, A, ll, method="chunked")
    if np.isfinite(float(seq.log_evidence)):
        np.testing.assert_allclose(out.marginals, seq.marginals, atol=1e-5)
        np.testing.assert_allclose(out.log_evidence, seq.log_evidence, rtol=1e-6)
    else:
        assert not np.isfinite(float(out.log_evidence))


def test_impossible_evidence_and_invalid_model_markers():
    rng = np.random.default_rng(6)
    pi, A, ll = random_hmm(rng, 3, 400)
    A = np.eye(3, dtype=np.float32)  # no moves: a step possible only in a state never visited is impossible
    pi = np.array([1, 0, 0], np.float32)
    ll[250] = [-np.inf, 0.0, 0.0]
    post = tm.smoother(pi, A, ll, method="chunked")
    assert float(post.log_evidence) == -np.inf
    assert np.all(np.isfinite(post.marginals))
    bad = jax.jit(lambda a: tm.smoother(pi, a, ll, method="chunked"))(A * 1.5)
    assert np.isnan(float(bad.log_evidence)) and np.all(np.isnan(bad.marginals))


def test_jit_vmap_grad_and_automatic_choice():
    rng = np.random.default_rng(7)
    K = 16
    T = tm.hmm.chunked_min_steps(K)
    pi, A, ll = random_hmm(rng, K, T)
    seq = tm.smoother(pi, A, ll, method="sequential")
    auto = jax.jit(lambda l: tm.smoother(pi, A, l))(ll)  # T at the threshold: chunked
    np.testing.assert_allclose(auto.marginals, seq.marginals, atol=1e-5)
    one = jax.jit(jax.vmap(lambda l: tm.smoother(pi, A, l)))(ll[None])  # a vmap of size one: chunked too
    np.testing.assert_allclose(one.marginals[0], seq.marginals, atol=1e-5)
    two = jax.vmap(lambda l: tm.filter(pi, A, l, method="chunked"))(jnp.stack([ll, ll[::-1]]))  # batch-minor
    np.testing.assert_allclose(two.filtered[0], tm.filter(pi, A, ll, method="sequential").filtered, atol=1e-5)
    g_chunk = jax.grad(lambda l: tm.smoother(pi, A, l, method="chunked").log_evidence)(ll)
    g_seq = jax.grad(lambda l: tm.smoother(pi, A, l, method="sequential").log_evidence)(ll)
    np.testing.assert_allclose(g_chunk, g_seq, atol=1e-5)
    np.testing.assert_allclose(g_chunk, seq.marginals, atol=1e-5)  # d log p / d log_lik = marginals


def test_method_errors_name_the_culprit():
    pi, A, ll = random_hmm(np.random.default_rng(8), 3, 20)
    with pytest.raises(ValueError, match="method"):
        tm.smoother(pi, A, ll, method="blocked")
    with pytest.raises(ValueError, match="mask"):
        tm.filter(pi, A, ll, mask=jnp.ones(20, bool), method="chunked")
    _, A_tv, _ = random_hmm(np.random.default_rng(8), 3, 20, time_varying=True)
    with pytest.raises(ValueError, match="time-varying"):
        tm.smoother(pi, A_tv, ll, method="chunked")
    masked = tm.smoother(pi, A, ll, mask=jnp.arange(20) < 15)  # auto with a mask: the sequential pass
    np.testing.assert_allclose(masked.marginals[:15], tm.smoother(pi, A, ll[:15]).marginals, atol=1e-6)


def test_long_sequence_float32_log_evidence():
    """T = 200,000 in float32: the log-evidence within a few roundings of the float64 value."""
    rng = np.random.default_rng(9)
    pi, A, ll = random_hmm(rng, 4, 200_000)
    exact = float64_log_evidence(pi, A, ll)
    got = float(tm.filter(pi, A, ll, method="chunked").log_evidence)
    assert abs(got - exact) <= 4 * np.spacing(np.float32(abs(exact)))


def test_sticky_chain_keeps_float64_accuracy():
    """A nearly reducible chain (A = 0.999999 I + ...), where the lanes of a chunk never forget their start
    and their weights drift apart over 100,000 steps: marginals within 1e-5 of float64 (the sequential
    pass's error there was 1.9e-5 with another seed)."""
    rng = np.random.default_rng(10)
    K, T, eps = 4, 100_000, 1e-6
    A = (np.eye(K) * (1 - eps) + eps / K).astype(np.float32)
    pi = rng.dirichlet(np.ones(K)).astype(np.float32)
    ll = (rng.normal(size=(T, K)) * 0.05).astype(np.float32)
    log_z, _, marg = float64_smoother(pi, A, ll)
    post = tm.smoother(pi, A, ll, method="chunked")
    np.testing.assert_allclose(post.marginals, marg, atol=1e-5)
    # the per-step normalisers' own float32 rounding (each log c_t near 0) dominates here, as sequentially
    seq_error = abs(float(tm.smoother(pi, A, ll, method="sequential").log_evidence) - log_z)
    assert abs(float(post.log_evidence) - log_z) <= 2 * seq_error + 1e-4


def test_coalesced_lanes_give_the_chunk_products():
    """On a mixing chain the K lanes of every chunk coalesce well before the chunk's end and one lane per
    chunk carries on: the operators still equal the float64 products of the chunks' steps (normalised per
    step), and the filtered and smoothed passes equal the float64 forward-backward."""
    rng = np.random.default_rng(11)
    K, C, L = 5, 6, 300
    pi, A, ll = random_hmm(rng, K, C * L)
    lik_at = tm.common.batch_array_likelihood(jnp.asarray(ll).reshape(C, L, K))
    ops = tm.chunked.transfer_operators(jnp.asarray(pi), jnp.asarray(A), lik_at, L)
    assert bool(ops.exact) and 1 < int(ops.lane_steps) < L // 4  # the K lanes stopped early
    full = tm.chunked.transfer_operators(jnp.asarray(pi), jnp.asarray(A), lik_at, L, coalesce_tol=None)
    assert int(full.lane_steps) == L
    A64, lik = np.asarray(A, np.float64), np.exp(np.asarray(ll, np.float64))
    for c in range(1, C):
        M = np.eye(K)
        for t in range(c * L, (c + 1) * L):
            M = M @ A64 @ np.diag(lik[t])
            M /= M.sum()
        got = np.exp(np.asarray(ops.log_weight[c], np.float64))[:, None] * np.asarray(ops.columns[:, c, :]).T
        np.testing.assert_allclose(got / got.sum(), M, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(ops.columns[:, c, :], full.columns[:, c, :], atol=1e-6)
    log_z, alphas, marg = float64_smoother(pi, A, ll)
    post = tm.smoother(pi, A, ll, method="chunked")
    np.testing.assert_allclose(post.marginals, marg, atol=1e-5)
    np.testing.assert_allclose(tm.filter(pi, A, ll, method="chunked").filtered, alphas, atol=1e-5)
    assert abs(float(post.log_evidence) - log_z) <= 1e-5 * abs(log_z)


def test_auto_falls_back_where_the_lanes_do_not_coalesce():
    """``method="auto"`` gives the K lanes `chunked.lane_budget` steps: a chain that forgets slowly (sticky,
    uninformative evidence) does not coalesce within them and runs the sequential pass; a mixing chain runs
    the chunks. Either way the results are the sequential pass's. (The filter's automatic choice stops at
    K = 16, where the lanes may always run to the chunks' end.)"""
    rng = np.random.default_rng(12)
    K = 32  # up to 16 states the lanes may run to the chunks' end (`lane_budget`)
    T = tm.hmm.chunked_min_steps(K)
    plan = tm.chunked.chunk_plan(T, K)
    budget = tm.chunked.lane_budget(plan, K)
    sticky = (np.eye(K) * 0.999 + 0.001 / K).astype(np.float32)
    _, mixing, ll = random_hmm(rng, K, T)
    pi = np.full(K, 1 / K, np.float32)
    for A, scale, coalesces in [(sticky, 0.01, False), (mixing, 1.0, True)]:
        lls = (ll * scale).astype(np.float32)
        lik_at = tm.common.batch_array_likelihood(
            jnp.asarray(np.concatenate([lls, np.zeros((plan.num_chunks * plan.chunk_length - T, K),
                                                      np.float32)]).reshape(plan.num_chunks, -1, K)))
        ops = tm.chunked.transfer_operators(jnp.asarray(pi), jnp.asarray(A), lik_at, plan.chunk_length,
                                            max_lane_steps=budget)
        assert bool(ops.exact) == coalesces
        seq_s = tm.smoother(pi, A, lls, method="sequential")
        for f in (jax.jit(lambda l: tm.smoother(pi, A, l)), lambda l: tm.smoother(pi, A, l)):
            auto = f(lls)
            np.testing.assert_allclose(auto.marginals, seq_s.marginals, atol=1e-5)
            np.testing.assert_allclose(auto.log_evidence, seq_s.log_evidence, rtol=1e-5)


@pytest.mark.parametrize("stay", [None, 0.99999])
def test_coalescing_plan_matches_float64(stay):
    """T >= 8,192 at K > 4: the plan lets the lanes stop once they coalesce (a mixing chain) or run them to the
    end (a sticky chain with weak evidence, which never coalesces): both equal the float64 forward-backward."""
    rng = np.random.default_rng(13)
    K, T = 6, 9000
    pi, A, ll = random_hmm(rng, K, T)
    if stay is not None:
        A = (np.eye(K) * stay + (1 - stay) / K).astype(np.float32)
        ll = (ll * 0.05).astype(np.float32)
    plan = tm.chunked.chunk_plan(T, K)
    assert plan.coalesce
    log_z, alphas, marg = float64_smoother(pi, A, ll)
    post = tm.smoother(pi, A, ll, method="chunked")
    np.testing.assert_allclose(post.marginals, marg, atol=1e-5)
    np.testing.assert_allclose(tm.filter(pi, A, ll, method="chunked").filtered, alphas, atol=1e-5)
    assert abs(float(post.log_evidence) - log_z) <= 1e-5 * abs(log_z) + 1e-3


def test_posterior_of_one_long_sequence_runs_the_chunks():
    """`tm.posterior` on one sequence of at least `chunked_min_steps(K)` steps (no mask) takes the chunked
    passes through its log-likelihoods: equal to the sequential smoother, eager, jitted, as a vmap of size
    one, with a mask (the sequential pass), and its gradient is the sequential pass's."""
    from gm.temporal.emissions import CategoricalParams

    rng = np.random.default_rng(14)
    K, V = 16, 8
    T = tm.hmm.chunked_min_steps(K) * 3
    pi, A, _ = random_hmm(rng, K, T)
    fam = tm.Categorical(V)
    model = tm.HMM(jnp.asarray(pi), jnp.asarray(A), CategoricalParams(jnp.asarray(rng.dirichlet(np.ones(V), K),
                                                                                  jnp.float32)))
    obs = jnp.asarray(rng.integers(0, V, T), jnp.int32)
    ll = fam.log_likelihood(model.emission, obs)
    seq = tm.smoother(pi, A, ll, method="sequential")
    for out in (tm.posterior(fam, model, obs), jax.jit(lambda o: tm.posterior(fam, model, o))(obs)):
        np.testing.assert_allclose(out.marginals, seq.marginals, atol=1e-5)
        np.testing.assert_allclose(out.log_evidence, seq.log_evidence, rtol=1e-6)
    plan = tm.chunked.chunk_plan(T, K)  # the chunks' [L, K, C] messages are in the program
    assert f"f32[{plan.chunk_length},{K},{plan.num_chunks}]" in str(jax.make_jaxpr(
        lambda o: tm.posterior(fam, model, o))(obs))
    one = jax.vmap(lambda o: tm.posterior(fam, model, o))(obs[None])
    np.testing.assert_allclose(one.marginals[0], seq.marginals, atol=1e-5)
    mask = jnp.arange(T) < T - 5
    masked = tm.posterior(fam, model, obs, mask=mask)
    np.testing.assert_allclose(masked.marginals[:T - 5], tm.smoother(pi, A, ll[:T - 5]).marginals, atol=1e-5)
    g = jax.grad(lambda m: tm.posterior(fam, m, obs).log_evidence)(model)
    g_seq = jax.grad(lambda m: tm.smoother(m.initial, m.transition, fam.log_likelihood(m.emission, obs),
                                           method="sequential").log_evidence)(model)
    np.testing.assert_allclose(g.transition, g_seq.transition, rtol=1e-4, atol=1e-3)
