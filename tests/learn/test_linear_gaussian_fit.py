"""gm.learn.linear_gaussian.fit in float32 against float64 numpy least squares and the true parameters."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm.data import GAUSSIAN_NETWORKS, load_network
from gm.learn import linear_gaussian as lg


def numpy_fit(x, parents):
    """Float64 oracle: per node, np.linalg.lstsq of the centred child on the centred parents."""
    x = np.asarray(x, np.float64)
    n = x.shape[1]
    w, b, v = np.zeros((n, n)), np.zeros(n), np.zeros(n)
    m = x.mean(0)
    z = x - m
    for i, pa in enumerate(parents):
        pa = list(pa)
        if pa:
            w[i, pa] = np.linalg.lstsq(z[:, pa], z[:, i], rcond=None)[0]
        r = z[:, i] - z[:, pa] @ w[i, pa]
        v[i], b[i] = np.mean(r**2), m[i] - w[i, pa] @ m[pa]
    return w, b, v


def _one_parent_data(n):
    kx, ky = jax.random.split(jax.random.key(n))
    x = 20.0 + jax.random.normal(kx, (n,), jnp.float32)
    y = 1.0 + 0.5 * x + 0.1 * jax.random.normal(ky, (n,), jnp.float32)
    return jnp.stack([x, y], axis=1)


@pytest.mark.parametrize("n", [100_000, 1_000_000])
def test_one_parent_far_from_zero_in_float32(n):
    # the case: the uncentred fit returned weight 0.5485 and bias 0.027 at N = 100,000
    data = _one_parent_data(n)
    assert data.dtype == jnp.float32
    fitted = jax.jit(lg.fit, static_argnums=1)(data, ((), (0,)))
    assert abs(float(fitted.weights[1, 0]) - 0.5) < 0.01
    assert abs(float(fitted.bias[1]) - 1.0) < 0.2
    w, b, v = numpy_fit(data, ((), (0,)))
    np.testing.assert_allclose(fitted.weights[1, 0], w[1, 0], rtol=1e-4)
    np.testing.assert_allclose(fitted.bias, b, rtol=1e-4, atol=2e-3)
    np.testing.assert_allclose(fitted.variance, v, rtol=1e-3)


def _errors(params, truth):
    w, _, v = (np.asarray(a, np.float64) for a in params)
    tw, _, tv = (np.asarray(a, np.float64) for a in truth)
    return np.abs(w - tw).max(), np.abs(v / tv - 1).max()


def _refit_within_numpy_error(name, n):
    net = load_network(name)
    x = jax.jit(lg.sample, static_argnums=2)(jax.random.key(1), net, n)
    fitted = jax.jit(lg.fit, static_argnums=1)(x, net.structure)
    gm_w, gm_v = _errors(fitted, net.params)
    np_w, np_v = _errors(numpy_fit(x, net.parents), net.params)
    assert gm_w <= 1.5 * np_w, (name, n, gm_w, np_w)
    assert gm_v <= 1.5 * np_v, (name, n, gm_v, np_v)
    # and in fact float32 reproduces the float64 solution to about float32 precision
    np.testing.assert_allclose(fitted.weights, numpy_fit(x, net.parents)[0], atol=2e-5)


def test_refit_magic_irri_within_numpy_error():
    # the worst case (uncentred fit: weight error 26.5 against numpy's 0.19)
    _refit_within_numpy_error("magic-irri", 20_000)


@pytest.mark.slow
@pytest.mark.parametrize("name", GAUSSIAN_NETWORKS)
@pytest.mark.parametrize("n", [20_000, 100_000])
def test_refit_every_shipped_network_within_numpy_error(name, n):
    _refit_within_numpy_error(name, n)


def test_weights_equal_replicated_records_and_vmap_over_bootstrap():
    parents = ((), (0,), (0, 1))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype(np.float32) + np.float32(50.0)
    x[:, 2] += 0.3 * x[:, 0] - 0.7 * x[:, 1]
    counts = rng.integers(0, 4, size=200)
    weighted = lg.fit(x, parents, weights=counts.astype(np.float32))
    replicated = lg.fit(np.repeat(x, counts, axis=0), parents)
    for a, b in zip(weighted, replicated):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
    boot = rng.multinomial(200, np.full(200, 1 / 200), size=5).astype(np.float32)
    batched = jax.jit(jax.vmap(lambda w: lg.fit(x, parents, weights=w)))(boot)
    for k in range(5):
        one = lg.fit(x, parents, weights=boot[k])
        for a, b in zip(batched, one):
            np.testing.assert_allclose(a[k], b, rtol=1e-5, atol=1e-5)


def test_singular_design_names_child_and_parents():
    rng = np.random.default_rng(1)
    a = rng.normal(size=50)
    data = np.column_stack([a, 2 * a + 1, rng.normal(size=50), rng.normal(size=50)]).astype(np.float32)
    names = ("a", "b", "c", "d")
    with pytest.raises(ValueError, match=r"child 'd' with parents \['a', 'b', 'c'\].*'a', 'b'"):
        lg.fit(data, ((), (), (), (0, 1, 2)), names=names)
    const = data.copy()
    const[:, 2] = 3.0
    with pytest.raises(ValueError, match=r"child 'd'.*rank 2 of 3.*'c'"):
        lg.fit(const, ((), (), (), (2, 0)), names=names)
    # under jit: no exception; rank reported, the minimum-norm coefficients are finite
    params, diag = jax.jit(lg.fit_with_diagnostics, static_argnums=1)(data, ((), (), (), (0, 1, 2)))
    assert diag.rank.tolist() == [1, 1, 1, 3]
    assert np.all(np.isfinite(np.asarray(params.weights)))
    # the fitted values are the projection on the span without the dropped direction: the residual
    # variance of numpy's lstsq on [1, a, c] (b = 2a + 1 adds nothing but float32 rounding)
    design = np.column_stack([np.ones(50), data[:, [0, 2]]]).astype(np.float64)
    resid = data[:, 3] - design @ np.linalg.lstsq(design, data[:, 3].astype(np.float64), rcond=None)[0]
    np.testing.assert_allclose(params.variance[3], np.mean(resid**2), rtol=1e-4)


def test_fit_errors():
    with pytest.raises(ValueError, match="cycle"):
        lg.fit(np.zeros((4, 2)), ((1,), (0,)))
    with pytest.raises(ValueError, match=r"weights must have shape \(4,\)"):
        lg.fit(np.zeros((4, 2)), ((), (0,)), weights=np.ones(3))
