"""gm.temporal.emissions: per-step log-likelihoods against scipy's densities and closed forms."""

import jax.numpy as jnp
import numpy as np
import scipy.stats

from gm import temporal as tm


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
