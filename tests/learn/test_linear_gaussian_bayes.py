"""Normal-inverse-gamma MAP, exact posterior draws and NUTS against the float64 textbook conjugate update."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm.learn import linear_gaussian as lg
from gm.learn.linear_gaussian import bayes

PARENTS = ((), (0,), (0, 1))
PRIOR = bayes.NIGPrior(precision=2.0, intercept_precision=0.5, mean=0.3, intercept_mean=-1.0, shape=3.0, scale=2.0)


def _data(n=60, seed=0, shift=0.0):
    rng = np.random.default_rng(seed)
    x0 = rng.normal(shift, 1.0, n)
    x1 = 0.5 + 0.8 * x0 + rng.normal(0, 0.5, n)
    x2 = -1.0 + 0.4 * x0 - 0.6 * x1 + rng.normal(0, 0.3, n)
    return np.column_stack([x0, x1, x2])


def textbook(x, parents, prior, w=None):
    """Uncentred float64 conjugate update per node: (β_n, P_n, a_n, b_n, MAP variance)."""
    x = np.asarray(x, np.float64)
    w = np.ones(len(x)) if w is None else np.asarray(w, np.float64)
    out = []
    for i, pa in enumerate(parents):
        u = np.column_stack([np.ones(len(x)), x[:, list(pa)]])
        lam = np.array([prior.intercept_precision] + [prior.precision] * len(pa))
        beta0 = np.array([prior.intercept_mean] + [prior.mean] * len(pa))
        p0 = np.diag(lam)
        pn = p0 + u.T @ (w[:, None] * u)
        bn = np.linalg.solve(pn, p0 @ beta0 + u.T @ (w * x[:, i]))
        an = prior.shape + w.sum() / 2
        resid = x[:, i] - u @ bn
        scale = prior.scale + 0.5 * (w @ resid**2 + (bn - beta0) @ p0 @ (bn - beta0))
        k_plus = np.sum(lam > 0)
        out.append((bn, pn, an, scale, scale / (an + 1 + k_plus / 2)))
    return out


@pytest.mark.parametrize("shift", [0.0, 40.0])
def test_map_matches_the_textbook_update(shift):
    x = _data(shift=shift)
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(x))
    got = jax.jit(bayes.fit_map, static_argnums=1)(jnp.asarray(x, jnp.float32), PARENTS, prior=PRIOR,
                                                   weights=jnp.asarray(w, jnp.float32))
    for i, (bn, _, _, _, v) in enumerate(textbook(x.astype(np.float32), PARENTS, PRIOR, w.astype(np.float32))):
        pa = list(PARENTS[i])
        np.testing.assert_allclose(got.bias[i], bn[0], rtol=2e-4, atol=2e-4)
        np.testing.assert_allclose(got.weights[i, pa], bn[1:], rtol=2e-4, atol=2e-5)
        np.testing.assert_allclose(got.variance[i], v, rtol=2e-4)


def test_weak_prior_tends_to_maximum_likelihood():
    x = jnp.asarray(_data(2000, shift=20.0), jnp.float32)
    weak = bayes.NIGPrior(precision=1e-8, intercept_precision=0.0, shape=1e-8, scale=1e-8)
    got, ml = bayes.fit_map(x, PARENTS, prior=weak), lg.fit(x, PARENTS)
    np.testing.assert_allclose(got.weights, ml.weights, atol=1e-5)
    np.testing.assert_allclose(got.bias, ml.bias, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got.variance, ml.variance * 2000 / (2000 + 2 + np.array([0, 1, 2])), rtol=1e-4)


def test_exact_draws_match_posterior_moments():
    x = _data(40, seed=3, shift=5.0)
    draws = bayes.sample_nig_posterior(jax.random.key(0), jnp.asarray(x, jnp.float32), PARENTS, 20_000, prior=PRIOR)
    node = textbook(x.astype(np.float32), PARENTS, PRIOR)[2]
    bn, pn, an, scale, _ = node
    beta = np.column_stack([draws.bias[:, 2], draws.weights[:, 2, 0], draws.weights[:, 2, 1]])
    # β marginal: multivariate t with 2a_n dof, mean β_n, covariance b_n/(a_n − 1) P_n⁻¹
    cov = scale / (an - 1) * np.linalg.inv(pn)
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(beta.mean(0), bn, atol=float(5 * sd.max() / np.sqrt(20_000)))
    np.testing.assert_allclose(beta.std(0), sd, rtol=0.03)
    np.testing.assert_allclose(np.mean(draws.variance[:, 2]), scale / (an - 1), rtol=0.03)


def test_numpyro_model_density_is_the_conjugate_posterior():
    """The numpyro model's joint log density differs from the NIG posterior's only by a constant."""
    pytest.importorskip("numpyro")
    from numpyro.infer.util import log_density

    from gm.learn.linear_gaussian.fitting import centred_problem
    from gm.learn.linear_gaussian.model import as_structure

    with jax.enable_x64(True):
        x = jnp.asarray(_data(25, seed=2, shift=10.0))
        structure = as_structure(PARENTS)
        problem = centred_problem(structure, x)
        node = textbook(np.asarray(x), PARENTS, PRIOR)
        rng = np.random.default_rng(0)
        diffs = []
        for _ in range(3):
            params, analytic = {}, 0.0
            for i, name in enumerate(structure.names):
                bn, pn, an, scale, _ = node[i]
                beta = bn + rng.normal(0, 0.1, bn.shape)
                v = scale / an * rng.uniform(0.7, 1.3)
                pa = list(PARENTS[i])
                gamma = beta.copy()  # centred coordinates: γ₀ = β₀ + m_pa·β_pa − m_child
                gamma[0] = beta[0] + np.asarray(problem.mean)[pa] @ beta[1:] - float(problem.mean[i])
                params[f"coef_{name}"], params[f"variance_{name}"] = jnp.asarray(gamma), jnp.asarray(v)
                # log NIG(β, v | β_n, P_n, a_n, b_n) up to a constant
                d = beta - bn
                analytic += (-(an + 1 + len(bn) / 2) * np.log(v) - (scale + 0.5 * d @ pn @ d) / v)
            model_ld, _ = log_density(bayes.nig_model, (problem,), dict(prior=PRIOR, names=structure.names), params)
            diffs.append(float(model_ld) - analytic)
        np.testing.assert_allclose(diffs, diffs[0], atol=1e-8)


@pytest.mark.slow
def test_nuts_agrees_with_the_conjugate_posterior():
    pytest.importorskip("numpyro")
    x = _data(30, seed=5, shift=30.0)  # far from zero: the centred parametrisation keeps NUTS easy
    _, draws = bayes.nuts(jax.random.key(1), jnp.asarray(x[:, :2], jnp.float32), ((), (0,)), prior=PRIOR, num_warmup=200,
                          num_samples=1000)
    bn, pn, an, scale, _ = textbook(x.astype(np.float32), ((), (0,)), PRIOR)[1]
    cov = scale / (an - 1) * np.linalg.inv(pn)
    beta = np.column_stack([draws.bias[:, 1], draws.weights[:, 1, 0]])
    np.testing.assert_allclose(beta.mean(0), bn, atol=float(0.15 * np.sqrt(np.diag(cov)).max()) + 1e-6)
    np.testing.assert_allclose(beta.std(0), np.sqrt(np.diag(cov)), rtol=0.15)
    np.testing.assert_allclose(np.mean(draws.variance[:, 1]), scale / (an - 1), rtol=0.1)


def test_prior_errors():
    with pytest.raises(ValueError, match="prior.shape must be positive"):
        bayes.fit_map(np.zeros((5, 3)), PARENTS, prior=bayes.NIGPrior(shape=0.0))
    with pytest.raises(ValueError, match=r"prior.precision must be a scalar or have shape \(3,\)"):
        bayes.fit_map(np.zeros((5, 3)), PARENTS, prior=bayes.NIGPrior(precision=np.ones(2)))
