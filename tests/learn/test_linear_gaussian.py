"""gm.learn.linear_gaussian: least squares, the joint Gaussian and conditioning vs numpy closed forms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm.learn import linear_gaussian as lg

PARENTS = ((), (0,), (0, 1), (2,), (1, 3))


def _model(dtype=np.float64):
    w = np.zeros((5, 5))
    w[1, 0], w[2, 0], w[2, 1], w[3, 2], w[4, 1], w[4, 3] = 0.8, -0.5, 1.2, 0.7, 0.3, -1.1
    return lg.LinearGaussian(jnp.asarray(w, dtype), jnp.asarray([1.0, -2.0, 0.5, 0.0, 3.0], dtype),
                             jnp.asarray([1.0, 0.5, 2.0, 0.3, 1.5], dtype))


def _closed_form_joint(model):
    w, b, v = (np.asarray(a, np.float64) for a in model)
    a = np.linalg.inv(np.eye(len(b)) - w)  # x = (I - W)^-1 (b + eps)
    return a @ b, a @ np.diag(v) @ a.T


def test_joint_matches_the_matrix_form(x64):
    model = _model()
    g = jax.jit(lg.joint, static_argnums=1)(model, PARENTS)
    mean, cov = _closed_form_joint(model)
    np.testing.assert_allclose(g.mean, mean, atol=1e-10)
    np.testing.assert_allclose(g.covariance, cov, atol=1e-10)


def test_condition_matches_the_precision_form(x64):
    mean, cov = _closed_form_joint(_model())
    g = lg.Gaussian(jnp.asarray(mean), jnp.asarray(cov))
    obs, values = [4, 1], np.array([2.5, -1.0])
    post = lg.condition(g, obs, values)
    # independent route: the conditional from the precision matrix, Λ_aa^-1 and μ_a - Λ_aa^-1 Λ_ab (x_b - μ_b)
    rest = [0, 2, 3]
    prec = np.linalg.inv(cov)
    laa_inv = np.linalg.inv(prec[np.ix_(rest, rest)])
    exp_mean = mean[rest] - laa_inv @ prec[np.ix_(rest, obs)] @ (values - mean[obs])
    np.testing.assert_allclose(post.covariance, laa_inv, atol=1e-10)
    np.testing.assert_allclose(post.mean, exp_mean, atol=1e-10)


def test_fit_recovers_parameters_and_matches_numpy_lstsq():
    model = _model(np.float32)
    x = jax.jit(lg.sample, static_argnums=(2, 3))(jax.random.key(0), model, PARENTS, 50_000)
    fitted = jax.jit(lg.fit, static_argnums=1)(x, PARENTS)
    np.testing.assert_allclose(fitted.weights, model.weights, atol=0.03)
    np.testing.assert_allclose(fitted.bias, model.bias, atol=0.05)
    np.testing.assert_allclose(fitted.variance, model.variance, rtol=0.05)
    xn = np.asarray(x, np.float64)
    design = np.column_stack([np.ones(len(xn)), xn[:, [0, 1]]])
    beta, *_ = np.linalg.lstsq(design, xn[:, 2], rcond=None)
    np.testing.assert_allclose(fitted.bias[2], beta[0], atol=1e-3)
    np.testing.assert_allclose(fitted.weights[2, [0, 1]], beta[1:], atol=1e-3)
    # sample moments agree with the joint of the fitted model (exactly on the families, up to sampling
    # error where the graph imposes independences)
    g = lg.joint(fitted, PARENTS)
    np.testing.assert_allclose(g.mean, xn.mean(0), atol=1e-3)
    np.testing.assert_allclose(g.covariance, np.cov(xn.T, bias=True), atol=0.05)


def test_errors():
    with pytest.raises(ValueError, match="cycle"):
        lg.fit(np.zeros((4, 2)), ((1,), (0,)))
    with pytest.raises(ValueError, match=r"data must have shape \(N, 5\)"):
        lg.fit(np.zeros((4, 2)), PARENTS)
    g = lg.joint(_model(np.float32), PARENTS)
    with pytest.raises(ValueError, match="values must have shape"):
        lg.condition(g, [0, 1], np.zeros(3))
    with pytest.raises(ValueError, match="distinct variable indices"):
        lg.condition(g, [0, 0], np.zeros(2))
