"""Log densities, the Gaussian KL and the reparameterised sample shared by the deep latent-variable models.

Everything is a pure function of arrays, summed over the event axes and vectorised over the leading ones:

* :func:`gaussian_kl`: ``KL(N(mean, diag exp(log_var)) || N(0, I))`` in closed form (the VAE's and the
  BicycleGAN encoder's regulariser);
* :func:`diagonal_gaussian_log_density`, :func:`standard_normal_log_density`: ``log q(z | x)`` and
  ``log p(z)`` of the importance-weighted bound;
* :func:`bernoulli_log_likelihood`, :func:`gaussian_log_likelihood`: the decoders' ``log p(x | z)``;
* :func:`reparameterize`: ``z = mean + exp(log_var / 2) * eps``, ``eps ~ N(0, I)`` (Kingma and Welling, 2014).

Example:
    >>> import jax.numpy as jnp
    >>> from gm.deep import densities
    >>> float(densities.gaussian_kl(jnp.zeros(3), jnp.zeros(3)))  # q = p
    0.0
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "DiagonalGaussian",
    "gaussian_kl",
    "diagonal_gaussian_log_density",
    "standard_normal_log_density",
    "bernoulli_log_likelihood",
    "gaussian_log_likelihood",
    "reparameterize",
]

LOG_2PI = math.log(2.0 * math.pi)


class DiagonalGaussian(NamedTuple):
    """``N(mean, diag exp(log_var))``: an encoder's posterior ``q(z | x)``.

    Attributes:
        mean: ``f32[B, L]``.
        log_var: ``f32[B, L]`` log variances.
    """

    mean: jax.Array
    log_var: jax.Array


def gaussian_kl(mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """``KL(N(mean, diag exp(log_var)) || N(0, I))`` summed over the last axis.

    ``KL = 1/2 sum_j (exp(log_var_j) + mean_j^2 - 1 - log_var_j)``.

    Args:
        mean: ``f32[..., L]``.
        log_var: ``f32[..., L]``.

    Returns:
        ``f32[...]``.

    Examples:
        >>> gaussian_kl(jnp.ones((2, 3)), jnp.zeros((2, 3)))  # 1/2 |mean|^2 = 1.5 per row
    """
    if mean.shape != log_var.shape:
        raise ValueError(f"mean and log_var must have the same shape, got {mean.shape} and {log_var.shape}")
    return 0.5 * jnp.sum(jnp.exp(log_var) + mean**2 - 1.0 - log_var, axis=-1)


def diagonal_gaussian_log_density(z: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """``log N(z; mean, diag exp(log_var))`` summed over the last axis; broadcasts ``f32[..., L] -> f32[...]``.

    ``log N = -1/2 sum_j (log 2 pi + log_var_j + (z_j - mean_j)^2 / exp(log_var_j))``.

    Examples:
        >>> diagonal_gaussian_log_density(jnp.zeros(2), jnp.zeros(2), jnp.zeros(2))  # -log 2 pi
    """
    return -0.5 * jnp.sum(LOG_2PI + log_var + (z - mean) ** 2 * jnp.exp(-log_var), axis=-1)


def standard_normal_log_density(z: jax.Array) -> jax.Array:
    """``log N(z; 0, I)`` summed over the last axis: ``f32[..., L] -> f32[...]``.

    ``log N = -1/2 sum_j (log 2 pi + z_j^2)``.

    Examples:
        >>> standard_normal_log_density(jnp.zeros((4, 2)))  # f32[4], each -log 2 pi
    """
    return -0.5 * jnp.sum(LOG_2PI + z**2, axis=-1)


def bernoulli_log_likelihood(logits: jax.Array, x: jax.Array) -> jax.Array:
    """``log Bernoulli(x; sigmoid(logits))`` summed over all but the leading axis.

    ``sum_d x_d * logits_d - softplus(logits_d)`` (numerically stable; ``x`` may be grey values in [0, 1],
    which gives the negative binary cross-entropy).

    Args:
        logits: ``f32[B, ...]``.
        x: ``f32[B, ...]`` of the same shape.

    Returns:
        ``f32[B]``.

    Examples:
        >>> bernoulli_log_likelihood(jnp.zeros((2, 4)), jnp.ones((2, 4)))  # 4 log(1/2) per row
    """
    if logits.shape != x.shape:
        raise ValueError(f"logits and x must have the same shape, got {logits.shape} and {x.shape}")
    ll = x * logits - jax.nn.softplus(logits)
    return ll.reshape(ll.shape[0], -1).sum(-1)


def gaussian_log_likelihood(mean: jax.Array, log_scale: jax.Array, x: jax.Array) -> jax.Array:
    """``log N(x; mean, sigma^2 I)`` with ``log sigma = log_scale`` (scalar or broadcastable), per example.

    ``sum_d -1/2 log 2 pi - log sigma - (x_d - mean_d)^2 / (2 sigma^2)``: ``f32[B, ...] -> f32[B]``.

    Args:
        mean: ``f32[B, ...]`` the decoder's means.
        log_scale: ``f32[]`` (or broadcastable to ``mean``) log standard deviation.
        x: ``f32[B, ...]`` data of the same shape as ``mean``.

    Examples:
        >>> gaussian_log_likelihood(jnp.zeros((2, 3)), 0.0, jnp.zeros((2, 3)))  # -3/2 log 2 pi per row
    """
    if mean.shape != x.shape:
        raise ValueError(f"mean and x must have the same shape, got {mean.shape} and {x.shape}")
    ll = -0.5 * LOG_2PI - log_scale - 0.5 * (x - mean) ** 2 * jnp.exp(-2.0 * log_scale)
    return ll.reshape(ll.shape[0], -1).sum(-1)


def reparameterize(key: jax.Array, mean: jax.Array, log_var: jax.Array, *, num_samples: int | None = None
                   ) -> jax.Array:
    """``z = mean + exp(log_var / 2) * eps`` with ``eps ~ N(0, I)``.

    Args:
        key: a ``jax.random`` key.
        mean: ``f32[B, L]`` the Gaussian's means.
        log_var: ``f32[B, L]`` its log variances.
        num_samples: ``None`` for one sample ``f32[B, L]``; an int ``k`` for ``f32[k, B, L]``.

    Examples:
        >>> z = reparameterize(jax.random.key(0), jnp.zeros((2, 3)), jnp.zeros((2, 3)), num_samples=5)
        >>> z.shape
        (5, 2, 3)
    """
    shape = mean.shape if num_samples is None else (num_samples, *mean.shape)
    eps = jax.random.normal(key, shape, mean.dtype)
    return mean + jnp.exp(0.5 * log_var) * eps
