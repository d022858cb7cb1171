"""Emission families and Baum-Welch against hmmlearn, scipy and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from gm import temporal as tm

hmm = pytest.importorskip("hmmlearn.hmm")


def _cat_model(rng, K=3, V=5):
    pi = rng.dirichlet(np.ones(K))
    A = rng.dirichlet(np.ones(K) * 2, size=K)
    B = rng.dirichlet(np.ones(V), size=K)
    return pi, A, B


def _pad(seqs, fill):
    T = max(len(s) for s in seqs)
    shape = (len(seqs), T) + np.shape(seqs[0])[1:]
    out = np.full(shape, fill, dtype=np.asarray(seqs[0]).dtype)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    mask = np.arange(T)[None] < np.array([len(s) for s in seqs])[:, None]
    return out, mask


@pytest.mark.parametrize("implementation", ["log", "scaling"])
def test_categorical_matches_hmmlearn(implementation):
    rng = np.random.default_rng(0)
    K, V = 3, 5
    pi, A, B = _cat_model(rng, K, V)
    lengths = [40, 25, 33]
    seqs = [rng.integers(0, V, size=n) for n in lengths]
    ref = hmm.CategoricalHMM(K, n_features=V, implementation=implementation, init_params="", params="ste",
                             n_iter=1)
    ref.startprob_, ref.transmat_, ref.emissionprob_ = pi, A, B
    X = np.concatenate(seqs)[:, None]
    obs, mask = _pad(seqs, -1)
    fam = tm.Categorical(V)
    params = tm.HMMParams(jnp.asarray(pi, jnp.float32), jnp.asarray(A, jnp.float32),
                          tm.CategoricalParams(jnp.asarray(B, jnp.float32)))
    # score, predict_proba, decode: sequence by sequence
    for s, m, o in zip(seqs, mask, obs):
        ll = fam.log_likelihood(params.emission, o)
        post = tm.smoother(params.initial, params.transition, ll, mask=jnp.asarray(m))
        np.testing.assert_allclose(post.log_evidence, ref.score(s[:, None]), rtol=1e-5)
        np.testing.assert_allclose(post.marginals[: len(s)], ref.predict_proba(s[:, None]), atol=1e-5)
        logp, states = ref.decode(s[:, None], algorithm="viterbi")
        path = tm.viterbi(params.initial, params.transition, ll, mask=jnp.asarray(m))
        np.testing.assert_array_equal(path.states[: len(s)], states)
        np.testing.assert_allclose(path.log_prob, logp, rtol=1e-5)
    # one EM iteration over the padded batch
    new, loglik, _ = tm.em_step(fam, params, jnp.asarray(obs), jnp.asarray(mask))
    np.testing.assert_allclose(loglik, ref.score(X, lengths), rtol=1e-5)
    ref.fit(X, lengths)
    np.testing.assert_allclose(new.initial, ref.startprob_, atol=1e-5)
    np.testing.assert_allclose(new.transition, ref.transmat_, atol=1e-5)
    np.testing.assert_allclose(new.emission.probs, ref.emissionprob_, atol=1e-5)


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_gaussian_matches_hmmlearn(covariance):
    rng = np.random.default_rng(1)
    K, D = 3, 2
    pi = rng.dirichlet(np.ones(K))
    A = rng.dirichlet(np.ones(K) * 3, size=K)
    means = rng.normal(size=(K, D)) * 2
    if covariance == "diag":
        covars = rng.uniform(0.5, 2.0, size=(K, D))
    else:
        L = rng.normal(size=(K, D, D)) * 0.5
        covars = L @ np.swapaxes(L, 1, 2) + np.eye(D)
    lengths = [50, 30]
    seqs = [rng.normal(size=(n, D)) * 2 for n in lengths]
    prior = 1e-2 * (np.eye(D)[None].repeat(K, 0) if covariance == "full" else 1.0)
    ref = hmm.GaussianHMM(K, covariance_type=covariance, init_params="", params="stmc", n_iter=1,
                          covars_prior=prior)
    ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = pi, A, means, covars
    fam = tm.Gaussian(D, covariance=covariance)
    params = tm.HMMParams(*(jnp.asarray(x, jnp.float32) for x in (pi, A)),
                          tm.GaussianParams(jnp.asarray(means, jnp.float32), jnp.asarray(covars, jnp.float32)))
    scores = []
    for s in seqs:
        ll = fam.log_likelihood(params.emission, s)
        post = tm.smoother(params.initial, params.transition, ll)
        scores.append(ref.score(s))
        np.testing.assert_allclose(post.log_evidence, scores[-1], rtol=1e-5)
        np.testing.assert_allclose(post.marginals, ref.predict_proba(s), atol=1e-5)
        logp, states = ref.decode(s)
        path = tm.viterbi(params.initial, params.transition, ll)
        np.testing.assert_array_equal(path.states, states)
        np.testing.assert_allclose(path.log_prob, logp, rtol=1e-5)
    obs, mask = _pad(seqs, np.nan)
    new, loglik, _ = tm.em_step(fam, params, jnp.asarray(obs, jnp.float32), jnp.asarray(mask))
    np.testing.assert_allclose(loglik, sum(scores), rtol=1e-5)
    ref.fit(np.concatenate(seqs), lengths)
    np.testing.assert_allclose(new.initial, ref.startprob_, atol=1e-5)
    np.testing.assert_allclose(new.transition, ref.transmat_, atol=1e-5)
    np.testing.assert_allclose(new.emission.means, ref.means_, atol=1e-4)
    ref_covars = ref._covars_ if covariance == "diag" else ref.covars_  # covars_ is always full
    np.testing.assert_allclose(new.emission.covars, ref_covars, atol=1e-4, rtol=1e-4)


def test_emission_log_likelihoods_closed_forms():
    rng = np.random.default_rng(2)
    K, D, T = 3, 3, 6
    x = rng.normal(size=(T, D)).astype(np.float32)
    x[1, 0] = np.nan  # partially observed
    x[2] = np.nan  # missing entirely
    means = rng.normal(size=(K, D))
    L = rng.normal(size=(K, D, D)) * 0.5
    covars = L @ np.swapaxes(L, 1, 2) + np.eye(D)
    got = tm.Gaussian(D, "full").log_likelihood(tm.GaussianParams(jnp.asarray(means, jnp.float32),
                                                                   jnp.asarray(covars, jnp.float32)), x)
    diag = rng.uniform(0.5, 2, size=(K, D))
    got_diag = tm.Gaussian(D, "diag").log_likelihood(tm.GaussianParams(jnp.asarray(means, jnp.float32),
                                                                        jnp.asarray(diag, jnp.float32)), x)
    for t in range(T):
        o = ~np.isnan(x[t])
        for k in range(K):
            if o.any():
                want = scipy.stats.multivariate_normal(means[k, o], covars[k][np.ix_(o, o)]).logpdf(x[t, o])
                want_d = scipy.stats.norm(means[k, o], np.sqrt(diag[k, o])).logpdf(x[t, o]).sum()
            else:
                want = want_d = 0.0
            np.testing.assert_allclose(got[t, k], want, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(got_diag[t, k], want_d, rtol=1e-5, atol=1e-5)
    counts = rng.poisson(3.0, size=(T, D)).astype(np.float32)
    counts[0, 1] = np.nan
    rates = rng.uniform(1, 5, size=(K, D))
    got_p = tm.Poisson(D).log_likelihood(tm.PoissonParams(jnp.asarray(rates, jnp.float32)), counts)
    o = ~np.isnan(counts)
    want_p = np.array([[np.sum(scipy.stats.poisson(rates[k]).logpmf(np.nan_to_num(counts[t])) * o[t])
                        for k in range(K)] for t in range(T)])
    np.testing.assert_allclose(got_p, want_p, rtol=1e-5, atol=1e-5)
    M = 2
    w = rng.dirichlet(np.ones(M), size=K)
    mm = rng.normal(size=(K, M, D))
    vv = rng.uniform(0.5, 2, size=(K, M, D))
    gp = tm.GaussianMixtureParams(*(jnp.asarray(a, jnp.float32) for a in (w, mm, vv)))
    got_m = tm.GaussianMixture(D, M).log_likelihood(gp, x)
    for t in range(T):
        o = ~np.isnan(x[t])
        for k in range(K):
            comps = [np.log(w[k, m]) + scipy.stats.norm(mm[k, m, o], np.sqrt(vv[k, m, o])).logpdf(x[t, o]).sum()
                     for m in range(M)]
            np.testing.assert_allclose(got_m[t, k], scipy.special.logsumexp(comps), rtol=1e-5, atol=1e-5)
    sym = np.array([0, -1, 2, 1])
    probs = rng.dirichlet(np.ones(3), size=K)
    got_c = tm.Categorical(3).log_likelihood(tm.CategoricalParams(jnp.asarray(probs, jnp.float32)), sym)
    want_c = np.where(sym[:, None] >= 0, np.log(probs[:, np.maximum(sym, 0)]).T, 0.0)
    np.testing.assert_allclose(got_c, want_c, rtol=1e-6)


def _simulate(key, family, params, B, T):
    keys = jax.random.split(key, B)
    sampler = lambda k, z: family.sample(k, params.emission, z)  # noqa: E731
    return jax.vmap(lambda k: tm.sample(k, params.initial, params.transition, T, sampler))(keys)


FAMILIES = [
    (tm.Categorical(4), tm.CategoricalParams(jnp.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]]))),
    (tm.Gaussian(2), tm.GaussianParams(jnp.array([[0.0, 0.0], [2.0, -1.0]]), jnp.ones((2, 2)))),
    (tm.Gaussian(2, "full"), tm.GaussianParams(jnp.array([[0.0, 0.0], [2.0, -1.0]]),
                                               jnp.array([[[1.0, 0.3], [0.3, 1.0]], [[1.0, -0.2], [-0.2, 0.5]]]))),
    (tm.Poisson(2), tm.PoissonParams(jnp.array([[1.0, 5.0], [4.0, 0.5]]))),
    (tm.GaussianMixture(1, 2), tm.GaussianMixtureParams(jnp.array([[0.5, 0.5], [0.3, 0.7]]),
                                                        jnp.array([[[-2.0], [2.0]], [[0.0], [5.0]]]),
                                                        jnp.ones((2, 2, 1)))),
]


@pytest.mark.parametrize("family, emission", FAMILIES, ids=lambda f: type(f).__name__)
def test_em_never_decreases_and_recovers(family, emission):
    truth = tm.HMMParams(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.2, 0.8]]), emission)
    states, obs = _simulate(jax.random.key(0), family, truth, 6, 60)
    lengths = jnp.array([60, 45, 60, 30, 52, 60])
    mask = tm.length_mask(lengths, 60)
    prior = tm.Prior(initial=1.5, transition=2.0)
    params = tm.init_params(jax.random.key(1), family, 2, obs, mask)
    for pr in (tm.Prior(), prior):
        fitted, hist = tm.fit(family, params, obs, mask, num_iters=8, prior=pr)
        hist = np.asarray(hist)
        assert np.all(np.diff(hist) >= -1e-5 * np.abs(hist).max()), hist
        assert hist[-1] > hist[0]


def test_em_step_compiles_once():
    family, emission = FAMILIES[0]
    truth = tm.HMMParams(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.2, 0.8]]), emission)
    _, obs = _simulate(jax.random.key(2), family, truth, 4, 20)
    mask = tm.length_mask(jnp.array([20, 10, 15, 20]), 20)
    p = tm.init_params(jax.random.key(3), family, 2, obs)
    tm.em_step(family, p, obs, mask)  # compile (may already be cached by other tests)
    before = tm.em_step._cache_size()
    for i in range(3):
        p, _, _ = tm.em_step(family, p, obs + 0 * i, mask)
    p2 = tm.init_params(jax.random.key(4), family, 2, obs)
    tm.em_step(family, p2, obs, mask)
    assert tm.em_step._cache_size() == before


def test_padding_does_not_change_em():
    family, emission = FAMILIES[1]
    truth = tm.HMMParams(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.2, 0.8]]), emission)
    _, obs = _simulate(jax.random.key(5), family, truth, 2, 30)
    p = tm.init_params(jax.random.key(6), family, 2, obs)
    padded = jnp.concatenate([obs, jnp.full((2, 10, 2), 7.0)], axis=1)  # finite garbage
    mask = tm.length_mask(jnp.array([30, 30]), 40)
    a, lla, _ = tm.em_step(family, p, obs)
    b, llb, _ = tm.em_step(family, p, padded, mask)
    np.testing.assert_allclose(lla, llb, rtol=1e-6)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_restarts_pick_the_best():
    family, emission = FAMILIES[0]
    truth = tm.HMMParams(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.2, 0.8]]), emission)
    _, obs = _simulate(jax.random.key(7), family, truth, 4, 50)
    best, hist, final = tm.fit_restarts(jax.random.key(8), family, 2, obs, num_restarts=3, num_iters=5)
    assert hist.shape == (3, 5)
    assert np.all(np.diff(np.asarray(hist), axis=1) >= -1e-3)
    ll = tm.em.log_likelihood(family, best, obs)
    np.testing.assert_allclose(ll, np.max(final), rtol=1e-5)
