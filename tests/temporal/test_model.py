"""gm.temporal.model: tm.posterior, tm.log_likelihood, model.expected_counts (likelihoods computed inside the
loops) against path enumeration and dynamax."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from gm import temporal as tm
from oracles import brute_force, float64_log_evidence


def _categorical_case(seed, K, T, V, time_varying, with_mask):
    rng = np.random.default_rng(seed)
    pi = rng.dirichlet(np.ones(K)).astype(np.float32)
    shape = (T - 1, K) if time_varying else (K,)
    A = rng.dirichlet(np.ones(K), size=shape).astype(np.float32)
    probs = rng.dirichlet(np.ones(V), size=K).astype(np.float32)
    obs = rng.integers(0, V, T)
    obs[rng.random(T) < 0.25] = -1  # missing symbols
    mask = None
    if with_mask:
        mask = rng.random(T) < 0.7
        mask[rng.integers(T)] = True
    # the oracle's log-likelihoods, in float64 numpy: 0 for a missing symbol
    ll = np.where(obs[:, None] >= 0, np.log(probs.T[np.clip(obs, 0, V - 1)].astype(np.float64)), 0.0)
    return pi, A, probs, obs.astype(np.int32), mask, ll


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("time_varying", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
def test_categorical_posterior_matches_enumeration(seed, time_varying, with_mask):
    K, T, V = 3, 6, 4
    pi, A, probs, obs, mask, ll = _categorical_case(seed, K, T, V, time_varying, with_mask)
    want = brute_force(pi, A, ll, mask)
    params = tm.HMM(jnp.asarray(pi), jnp.asarray(A), tm.CategoricalParams(jnp.asarray(probs)))
    post = jax.jit(lambda o, m: tm.posterior(tm.Categorical(V), params, o, mask=m))(obs, mask)
    np.testing.assert_allclose(post.marginals, want["marginals"], atol=1e-5)
    np.testing.assert_allclose(post.log_evidence, want["log_evidence"], rtol=1e-5)
    total = tm.log_likelihood(tm.Categorical(V), params, obs, mask=mask)
    np.testing.assert_allclose(total, want["log_evidence"], rtol=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_gaussian_posterior_matches_enumeration(seed):
    """The generic per-step path (a family without its own ``step_likelihood``), NaN = missing."""
    rng = np.random.default_rng(100 + seed)
    K, T, D = 3, 5, 2
    pi = rng.dirichlet(np.ones(K)).astype(np.float32)
    A = rng.dirichlet(np.ones(K), size=K).astype(np.float32)
    means = rng.normal(size=(K, D)).astype(np.float32) * 2
    covars = rng.uniform(0.5, 2.0, size=(K, D)).astype(np.float32)
    x = rng.normal(size=(T, D)).astype(np.float32) * 2
    x[rng.random((T, D)) < 0.2] = np.nan
    ll = np.zeros((T, K))
    for k in range(K):
        lp = scipy.stats.norm.logpdf(x, means[k], np.sqrt(covars[k]))
        ll[:, k] = np.where(np.isnan(x), 0.0, lp).sum(1)
    want = brute_force(pi, A, ll)
    params = tm.HMM(jnp.asarray(pi), jnp.asarray(A), tm.GaussianParams(jnp.asarray(means), jnp.asarray(covars)))
    post = tm.posterior(tm.Gaussian(D, covariance="diag"), params, jnp.asarray(x))
    np.testing.assert_allclose(post.marginals, want["marginals"], atol=1e-5)
    np.testing.assert_allclose(post.log_evidence, want["log_evidence"], rtol=1e-5)


def test_batched_posterior_equals_smoother_and_dynamax():
    dynamax = pytest.importorskip("dynamax.hidden_markov_model")
    rng = np.random.default_rng(3)
    B, T, K, V = 16, 300, 8, 5
    pi = jnp.asarray(rng.dirichlet(np.ones(K)), jnp.float32)
    A = jnp.asarray(0.6 * np.eye(K) + 0.4 * rng.dirichlet(np.ones(K), size=K), jnp.float32)
    probs = jnp.asarray(rng.dirichlet(np.ones(V) * 0.5, size=K), jnp.float32)
    obs = jnp.asarray(rng.integers(0, V, (B, T)), jnp.int32)
    fam = tm.Categorical(V)
    params = tm.HMM(pi, A, tm.CategoricalParams(probs))
    post = jax.jit(jax.vmap(lambda o: tm.posterior(fam, params, o)))(obs)
    ref = jax.vmap(lambda o: dynamax.hmm_smoother(pi, A, fam.log_likelihood(params.emission, o)))(obs)
    np.testing.assert_allclose(post.marginals, ref.smoothed_probs, atol=1e-5)
    np.testing.assert_allclose(post.log_evidence, ref.marginal_loglik, rtol=1e-5)
    # padding at the end leaves every valid step and the log-evidence unchanged
    lengths = jnp.asarray(rng.integers(1, T + 1, B))
    mask = tm.length_mask(lengths, T)
    padded = jax.vmap(lambda o, m: tm.posterior(fam, params, o, mask=m))(obs, mask)
    for b in range(3):
        n = int(lengths[b])
        one = tm.posterior(fam, params, obs[b, :n])
        np.testing.assert_allclose(padded.marginals[b, :n], one.marginals, atol=1e-5)
        np.testing.assert_allclose(padded.log_evidence[b], one.log_evidence, rtol=1e-5)
        assert float(jnp.abs(padded.marginals[b, n:]).max(initial=0.0)) == 0.0


def test_long_sequence_log_evidence_stays_accurate():
    rng = np.random.default_rng(5)
    T, K, V = 50_000, 8, 6
    pi = rng.dirichlet(np.ones(K))
    A = 0.8 * np.eye(K) + 0.2 * rng.dirichlet(np.ones(K), size=K)
    probs = rng.dirichlet(np.ones(V), size=K)
    obs = rng.integers(0, V, T)
    total = float64_log_evidence(pi, A, np.log(probs.T[obs]))
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    params = tm.HMM(f32(pi), f32(A), tm.CategoricalParams(f32(probs)))
    post = jax.jit(lambda o: tm.posterior(tm.Categorical(V), params, o))(jnp.asarray(obs, jnp.int32))
    assert abs(float(post.log_evidence) - total) < 1e-2
    assert np.all(np.isfinite(np.asarray(post.marginals)))


def test_impossible_evidence_gives_minus_inf_not_nan():
    probs = jnp.asarray([[1.0, 0.0], [1.0, 0.0]])  # symbol 1 cannot be emitted
    params = tm.HMM(jnp.asarray([0.5, 0.5]), jnp.full((2, 2), 0.5), tm.CategoricalParams(probs))
    post = tm.posterior(tm.Categorical(2), params, jnp.asarray([0, 1, 0]))
    assert float(post.log_evidence) == -np.inf
    assert np.all(np.isfinite(np.asarray(post.marginals)))


def test_bad_inputs_name_the_argument():
    params = tm.HMM(jnp.ones(3) / 3, jnp.full((3, 3), 1 / 3), tm.CategoricalParams(jnp.full((2, 4), 0.25)))
    with pytest.raises(ValueError, match="model.emission"):
        tm.posterior(tm.Categorical(4), params, jnp.zeros(5, jnp.int32))
    good = params._replace(emission=tm.CategoricalParams(jnp.full((3, 4), 0.25)))
    with pytest.raises(ValueError, match="obs"):
        tm.posterior(tm.Categorical(4), good, jnp.zeros((5, 2), jnp.int32))
    with pytest.raises(ValueError, match="transition"):
        tm.posterior(tm.Categorical(4), good._replace(transition=jnp.ones((2, 2))), jnp.zeros(5, jnp.int32))
    with pytest.raises(ValueError, match="mask"):
        tm.posterior(tm.Categorical(4), good, jnp.zeros(5, jnp.int32), mask=jnp.ones(4, bool))


@pytest.mark.parametrize("seed", range(4))
def test_expected_counts_match_enumeration(seed):
    """model.expected_counts (likelihoods in the loop), and the emission counts that Baum-Welch's E-step
    (gm.learn.hmm) derives from its marginals: marginals, expected transition counts, emission counts."""
    K, T, V = 3, 6, 4
    pi, A, probs, obs, mask, ll = _categorical_case(seed, K, T, V, False, seed % 2 == 1)
    want = brute_force(pi, A, ll, mask)
    params = tm.HMM(jnp.asarray(pi), jnp.asarray(A), tm.CategoricalParams(jnp.asarray(probs)))
    counts = tm.model.expected_counts(tm.Categorical(V), params, obs, mask=mask)
    stats = tm.Categorical(V).sufficient_stats(params.emission, obs, counts.marginals)
    np.testing.assert_allclose(counts.log_evidence, want["log_evidence"], rtol=1e-5)
    np.testing.assert_allclose(counts.marginals, want["marginals"], atol=1e-5)
    np.testing.assert_allclose(counts.transitions, want["two_slice"].sum(0), atol=1e-5)
    onehot = (obs[:, None] == np.arange(V)[None]).astype(np.float64)  # a missing symbol counts nowhere
    np.testing.assert_allclose(stats, want["marginals"].T @ onehot, atol=1e-5)


def _batch_case(rng, K, T, V, B):
    """A random categorical HMM, B sequences with missing symbols, and ragged masks with gaps: sequence 1
    empty, sequence 2 of length one, an impossible step in sequence 0 (a symbol state 0..K-1 never emits)."""
    pi = jnp.asarray(rng.dirichlet(np.ones(K)), jnp.float32)
    A = jnp.asarray(rng.dirichlet(np.ones(K), size=K), jnp.float32)
    probs = rng.dirichlet(np.ones(V), size=K)
    probs[:, V - 1] = 0.0  # symbol V - 1 is impossible
    probs = jnp.asarray(probs / probs.sum(1, keepdims=True), jnp.float32)
    obs = rng.integers(-1, V - 1, (B, T))
    obs[0, T // 2] = V - 1
    lengths = rng.integers(T // 2, T + 1, B)
    lengths[1], lengths[2] = 0, 1
    mask = (np.arange(T)[None] < lengths[:, None]) & (rng.random((B, T)) > 0.2)  # gaps inside
    mask[0, T // 2] = True
    return tm.HMM(pi, A, tm.CategoricalParams(probs)), jnp.asarray(obs, jnp.int32), jnp.asarray(mask)


def test_batch_minor_posterior_matches_the_per_sequence_passes():
    """`tm.posterior` vmapped over sequences with one model runs the batch-minor passes (likelihoods from
    the observations inside the loops); it gives the per-sequence passes' log-evidence and marginals (the
    reference: the same model with the transition given per step, which always runs them) with ragged masks
    with gaps, an empty sequence, an impossible step (log-evidence -inf, no NaN), K = 2 and K = 12 (the
    matrix-product form) and a Gaussian family at K = 2 (the generic likelihood path, NaN = missing); the
    derivative of the summed log-evidence (initial, transition, emission, along one direction) is the
    per-sequence passes'."""
    rng = np.random.default_rng(21)
    fam, gauss = tm.Categorical(5), tm.Gaussian(2, covariance="diag")
    cases = []
    for K, T, B in ((2, 9, 6), (12, 5, 4)):
        model, obs, mask = _batch_case(rng, K, T, 5, B)
        x = rng.normal(size=(B, T, 2)).astype(np.float32)
        x[rng.random((B, T, 2)) < 0.2] = np.nan
        gmodel = tm.HMM(model.initial, model.transition,
                        tm.GaussianParams(jnp.asarray(rng.normal(size=(K, 2)), jnp.float32), jnp.ones((K, 2))))
        cases += [(fam, model, obs, mask)] + ([(gauss, gmodel, jnp.asarray(x), mask)] if K == 2 else [])

    def outputs(f, m, o, v):
        return jax.vmap(lambda o, v: tuple(tm.posterior(f, m, o, mask=v)))(o, v)

    def per_step(m, T):  # the transition given per step: always the per-sequence passes
        return m._replace(transition=jnp.broadcast_to(m.transition, (T - 1,) + m.transition.shape))

    def total(m, o, v):  # the possible sequences' summed log-evidence
        return jnp.sum(outputs(fam, m, o[1:], v[1:])[0])

    @jax.jit
    def run(arrays):
        out = [(outputs(f, m, o, v), outputs(f, per_step(m, o.shape[1]), o, v))
               for f, (m, o, v) in zip((fam, gauss, fam), arrays)]
        m, o, v = arrays[0]
        direction = jax.tree.map(lambda x: jnp.cos(jnp.arange(x.size, dtype=x.dtype).reshape(x.shape)), m)
        derivatives = (jax.jvp(lambda m: total(m, o, v), (m,), (direction,))[1],
                       jax.jvp(lambda m: total(per_step(m, o.shape[1]), o, v), (m,), (direction,))[1])
        return out, derivatives

    out, grads = run([(m, o, v) for _, m, o, v in cases])
    for got, want in out:
        for g, w in zip(got, want):
            assert not np.any(np.isnan(np.asarray(g)))
            np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)
        assert float(got[0][1]) == 0.0  # the empty sequence
    assert float(out[0][0][0][0]) == -np.inf  # the impossible step
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5)
    assert float(grads[0]) != 0.0


@pytest.mark.parametrize("K", [2, 12])
def test_batch_expected_counts_match_the_per_sequence_counts(K, monkeypatch):
    """`tm.model.batch_expected_counts` (the Baum-Welch E-step on a batch: batch-minor passes, the transition
    and emission counts summed inside the backward sweep) equals the per-sequence `expected_counts` with
    the counts summed by weight (initial: each sequence's first valid step; emission: the family's
    ``sufficient_stats`` of the weighted marginals), with ragged masks with gaps, an empty sequence and a
    sequence of one step; below ``BATCH_MINOR_MIN_B`` the per-sequence passes run and give the same; the
    derivative (along one direction of the model) is the per-sequence passes'. (The per-sequence counts
    equal enumeration above; the EM step built on this equals hmmlearn's in tests/learn/test_hmm.py.)"""
    rng = np.random.default_rng(22 + K)
    T, B, V = 7, 9, 5
    model, obs, mask = _batch_case(rng, K, T, V, B)
    obs, mask = obs[1:], mask[1:]  # no impossible sequence: its counts are meaningless
    weights = jnp.asarray(rng.uniform(0.5, 2.0, B - 1), jnp.float32)
    fam = tm.Categorical(V)
    monkeypatch.setattr(tm.model, "BATCH_MINOR_MIN_B", 4)
    monkeypatch.setattr(tm.model, "BATCH_MINOR_SMALL_K_MIN_B", 4)
    monkeypatch.setattr(tm.model, "IN_SWEEP_MIN_KB", 0 if K == 2 else 10**9)  # emission counts both ways

    def batch(m, o, v, w):
        return tuple(tm.model.batch_expected_counts(fam, m, o, mask=v, weights=w))

    def reference(m, o, v, w):
        c = jax.vmap(lambda o, v: tm.model.expected_counts(fam, m, o, mask=v))(o, v)
        first = jnp.argmax(v, axis=1)
        start = jnp.take_along_axis(c.marginals, first[:, None, None], axis=1)[:, 0]
        stats = jax.vmap(lambda o, g: fam.sufficient_stats(m.emission, o, g))(o, c.marginals)
        return (c.log_evidence, c.marginals, w @ start, jnp.einsum("b,bij->ij", w, c.transitions),
                jnp.einsum("b,bkv->kv", w, stats))

    def derivative(f, m):  # of every output along one direction of the model
        direction = jax.tree.map(lambda x: jnp.cos(jnp.arange(x.size, dtype=x.dtype).reshape(x.shape)), m)
        return jax.jvp(lambda m: f(m, obs, mask, weights), (m,), (direction,))[1]

    @jax.jit
    def run(model, obs, mask, weights):
        derivatives = (derivative(batch, model), derivative(reference, model)) if K == 2 else ((), ())
        return (batch(model, obs, mask, weights), reference(model, obs, mask, weights),
                batch(model, obs[:3], mask[:3], weights[:3]), reference(model, obs[:3], mask[:3], weights[:3]),
                derivatives)

    got, want, small, small_want, (fast, slow) = run(model, obs, mask, weights)
    for g, w in zip(got + small + fast, want + small_want + slow):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5)
    assert float(got[0][0]) == 0.0 and float(jnp.sum(got[1][0])) == 0.0  # the empty sequence
    np.testing.assert_allclose(jnp.sum(got[4]), jnp.sum(weights[:, None] * jnp.sum(got[1], -1) * (obs >= 0)),
                               rtol=1e-5)  # every observed symbol counted once, by weight
