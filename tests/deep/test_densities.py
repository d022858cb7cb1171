"""Log densities and the Gaussian KL against closed forms, scipy and Monte Carlo."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gm.deep import densities

def test_gaussian_kl_matches_univariate_formula_and_monte_carlo():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(3, 4)).astype(np.float32)
    log_var = rng.normal(scale=0.5, size=(3, 4)).astype(np.float32)
    got = np.asarray(densities.gaussian_kl(jnp.asarray(mean), jnp.asarray(log_var)))
    # KL(N(m, s^2) || N(0, 1)) = -log s + (s^2 + m^2) / 2 - 1/2, summed over independent coordinates.
    s = np.exp(0.5 * log_var.astype(np.float64))
    expected = (-np.log(s) + (s**2 + mean.astype(np.float64) ** 2) / 2 - 0.5).sum(-1)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Monte Carlo: E_q[log q(z) - log p(z)].
    z = densities.reparameterize(jax.random.key(0), jnp.asarray(mean), jnp.asarray(log_var), num_samples=200_000)
    mc = densities.diagonal_gaussian_log_density(z, mean, log_var) - densities.standard_normal_log_density(z)
    np.testing.assert_allclose(np.asarray(mc.mean(0)), expected, atol=0.03)
    with pytest.raises(ValueError, match="log_var"):
        densities.gaussian_kl(jnp.zeros((2, 3)), jnp.zeros((2, 4)))


def test_log_densities_match_scipy():
    rng = np.random.default_rng(1)
    z, mean = rng.normal(size=(2, 5, 3))
    log_var = rng.normal(size=(5, 3))
    got = densities.diagonal_gaussian_log_density(jnp.asarray(z, jnp.float32), mean, log_var)
    expected = [stats.multivariate_normal(mean[i], np.diag(np.exp(log_var[i]))).logpdf(z[i]) for i in range(5)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(
        densities.standard_normal_log_density(jnp.asarray(z, jnp.float32)), stats.norm.logpdf(z).sum(-1), rtol=1e-5
    )
    logits = rng.normal(scale=3, size=(4, 2, 2, 1))
    x = (rng.uniform(size=logits.shape) < 0.5).astype(np.float64)
    p = 1 / (1 + np.exp(-logits))
    expected = (x * np.log(p) + (1 - x) * np.log1p(-p)).reshape(4, -1).sum(-1)
    np.testing.assert_allclose(densities.bernoulli_log_likelihood(jnp.asarray(logits, jnp.float32), x), expected, rtol=1e-5)
    mu = rng.normal(size=(4, 2, 2, 1))
    np.testing.assert_allclose(
        densities.gaussian_log_likelihood(jnp.asarray(mu, jnp.float32), math.log(0.7), x),
        stats.norm(mu, 0.7).logpdf(x).reshape(4, -1).sum(-1),
        rtol=1e-5,
    )
