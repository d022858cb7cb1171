"""Linear-Gaussian Bayesian networks (continuous BN): least-squares fit, joint Gaussian, conditioning.

Each variable is a linear function of its parents plus independent Gaussian noise:

    X_i = b_i + Σ_{j ∈ pa(i)} W_ij X_j + ε_i,   ε_i ~ N(0, v_i).

Maximum likelihood is ordinary least squares of X_i on [1, X_pa(i)] per node, with v_i the mean squared
residual (the ML, not the unbiased, variance). The joint is Gaussian; visiting the nodes in topological
order, μ_i = b_i + W_i·μ and Σ_i· = W_i Σ (the row of earlier variables), Σ_ii = v_i + W_i Σ W_iᵀ
(Koller & Friedman 2009, §7.2). Conditioning a Gaussian on observed coordinates is closed form:
μ_a|b = μ_a + Σ_ab Σ_bb⁻¹ (x_b − μ_b), Σ_a|b = Σ_aa − Σ_ab Σ_bb⁻¹ Σ_ba.

Example:
  >>> parents = ((), (0,), (0, 1))
  >>> model = fit(x, parents)                     # x: f32[N, 3]
  >>> g = joint(model, parents)
  >>> post = condition(g, [2], jnp.array([1.5]))  # Gaussian over variables (0, 1) given X_2 = 1.5
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gm.bn.network import _topological_order

__all__ = ["LinearGaussian", "Gaussian", "fit", "joint", "condition", "sample", "log_prob"]

Parents = Sequence[Sequence[int]]


class LinearGaussian(NamedTuple):
    """Parameters: ``weights f32[n, n]`` (row i: coefficients of X_i on its parents, 0 elsewhere),
    ``bias f32[n]``, ``variance f32[n]`` (noise variance of each node)."""

    weights: jax.Array
    bias: jax.Array
    variance: jax.Array


class Gaussian(NamedTuple):
    """A multivariate normal: ``mean f32[n]``, ``covariance f32[n, n]``."""

    mean: jax.Array
    covariance: jax.Array


def _order(parents: Parents) -> tuple[int, ...]:
    n = len(parents)
    for i, pa in enumerate(parents):
        for p in pa:
            if not 0 <= p < n or p == i:
                raise ValueError(f"parents[{i}] contains {p}, not another variable index in [0, {n})")
    order = _topological_order(list(range(n)), [tuple(pa) for pa in parents])
    if order is None:
        raise ValueError("parents describe a graph with a cycle")
    return order


def fit(data, parents: Parents, *, weights=None) -> LinearGaussian:
    """Maximum-likelihood linear-Gaussian CPDs by (weighted) least squares per node.

    Args:
      data: ``f32[N, n]`` complete records.
      parents: ``parents[i]`` the parent indices of variable i (static).
      weights: optional ``f32[N]`` record weights.
    """
    data = jnp.asarray(data)
    n = len(parents)
    if data.ndim != 2 or data.shape[1] != n:
        raise ValueError(f"data must have shape (N, {n}) (one column per entry of parents), got {data.shape}")
    _order(parents)
    w = jnp.ones(data.shape[0], data.dtype) if weights is None else jnp.asarray(weights, data.dtype)
    sw = jnp.sqrt(w)
    coef = jnp.zeros((n, n), data.dtype)
    bias, var = [], []
    for i, pa in enumerate(parents):
        design = jnp.concatenate([jnp.ones((data.shape[0], 1), data.dtype), data[:, list(pa)]], axis=1)
        beta = jnp.linalg.lstsq(design * sw[:, None], data[:, i] * sw)[0]
        resid = data[:, i] - design @ beta
        bias.append(beta[0])
        var.append(jnp.sum(w * resid**2) / jnp.sum(w))
        if pa:
            coef = coef.at[i, jnp.asarray(pa)].set(beta[1:])
    return LinearGaussian(coef, jnp.stack(bias), jnp.stack(var))


def joint(model: LinearGaussian, parents: Parents) -> Gaussian:
    """The joint Gaussian N(μ, Σ) of all variables, by the topological-order recursion."""
    n = model.bias.shape[0]
    if len(parents) != n:
        raise ValueError(f"parents has {len(parents)} entries for a model of {n} variables")
    mean = jnp.zeros(n, model.bias.dtype)
    cov = jnp.zeros((n, n), model.bias.dtype)
    for i in _order(parents):
        w = model.weights[i]  # zero except on parents, which come earlier in the order
        mean = mean.at[i].set(model.bias[i] + w @ mean)
        row = w @ cov  # Cov(X_i, X_j) for the variables already visited
        cov = cov.at[i, :].set(row).at[:, i].set(row)
        cov = cov.at[i, i].set(model.variance[i] + row @ w)
    return Gaussian(mean, cov)


def condition(gaussian: Gaussian, index: Sequence[int], values) -> Gaussian:
    """The Gaussian of the other variables given X_index = values (closed form).

    Args:
      gaussian: the joint `Gaussian` over n variables.
      index: observed variable indices (static, distinct).
      values: ``f32[len(index)]`` observed values.

    Returns:
      A `Gaussian` over the unobserved variables, in increasing index order.
    """
    n = gaussian.mean.shape[0]
    index = [int(i) for i in index]
    if len(set(index)) != len(index) or any(not 0 <= i < n for i in index):
        raise ValueError(f"index must hold distinct variable indices in [0, {n}), got {index}")
    values = jnp.asarray(values, gaussian.mean.dtype)
    if values.shape != (len(index),):
        raise ValueError(f"values must have shape ({len(index)},) (one per index), got {values.shape}")
    rest = [i for i in range(n) if i not in set(index)]
    a, b = np.asarray(rest, int), np.asarray(index, int)
    s = gaussian.covariance
    s_ab, s_bb = s[np.ix_(a, b)], s[np.ix_(b, b)]
    chol = jax.scipy.linalg.cho_factor(s_bb)
    gain = jax.scipy.linalg.cho_solve(chol, s_ab.T).T  # Σ_ab Σ_bb⁻¹
    mean = gaussian.mean[a] + gain @ (values - gaussian.mean[b])
    cov = s[np.ix_(a, a)] - gain @ s_ab.T
    return Gaussian(mean, 0.5 * (cov + cov.T))


def sample(key, model: LinearGaussian, parents: Parents, n: int) -> jax.Array:
    """Ancestral samples ``f32[n, n_vars]``."""
    noise = jax.random.normal(key, (n, model.bias.shape[0]), model.bias.dtype) * jnp.sqrt(model.variance)
    x = jnp.zeros_like(noise)
    for i in _order(parents):
        x = x.at[:, i].set(model.bias[i] + x @ model.weights[i] + noise[:, i])
    return x


def log_prob(gaussian: Gaussian, x) -> jax.Array:
    """log N(x; μ, Σ) for ``x: f32[n]``."""
    return jax.scipy.stats.multivariate_normal.logpdf(x, gaussian.mean, gaussian.covariance)
