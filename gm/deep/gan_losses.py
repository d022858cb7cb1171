"""Adversarial losses as named, pure functions of discriminator logits.

Every loss takes raw discriminator outputs (logits, or scores for the least-squares loss) and returns the
scalar mean over the batch. Shapes are ``f32[B, ...]``; every element counts as one decision (a PatchGAN
discriminator's map of decisions is averaged like a batch).

With ``D(x) = sigmoid(logit)``:

* minimax (Goodfellow et al., 2014): ``V(G, D) = E log D(x) + E log(1 - D(G(z)))``; the discriminator
  minimises ``-V``, the generator minimises ``E log(1 - D(G(z)))``, which saturates when D wins early.
* non-saturating: the generator instead minimises ``-E log D(G(z))`` (same fixed point, strong gradients
  early in training); the discriminator loss is the minimax one.
* least squares (Mao et al., 2017; the CycleGAN/BicycleGAN default): ``D`` minimises
  ``1/2 E (D(x) - 1)^2 + 1/2 E D(G(z))^2`` and ``G`` minimises ``1/2 E (D(G(z)) - 1)^2`` on raw scores.

``log sigmoid`` and ``log(1 - sigmoid)`` are computed as ``-softplus(-l)`` and ``-softplus(l)``, exact and
finite for any logit.

Example:
    >>> import jax.numpy as jnp
    >>> from gm.deep import gan_losses
    >>> float(gan_losses.minimax_discriminator_loss(jnp.zeros(4), jnp.zeros(4)))  # 2 log 2
    1.386...
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "KINDS",
    "minimax_discriminator_loss",
    "minimax_generator_loss",
    "non_saturating_generator_loss",
    "least_squares_discriminator_loss",
    "least_squares_generator_loss",
    "discriminator_loss",
    "generator_loss",
]

KINDS = ("minimax", "non_saturating", "least_squares")


def _mean(x):
    return jnp.mean(jnp.asarray(x, jnp.float32))


def minimax_discriminator_loss(real_logits, fake_logits):
    """``-E log D(x) - E log(1 - D(G(z)))`` from logits (binary cross-entropy, real = 1, fake = 0)."""
    return _mean(jax.nn.softplus(-real_logits)) + _mean(jax.nn.softplus(fake_logits))


def minimax_generator_loss(fake_logits):
    """``E log(1 - D(G(z)))``: the generator's side of the minimax game (saturates when D is confident)."""
    return -_mean(jax.nn.softplus(fake_logits))


def non_saturating_generator_loss(fake_logits):
    """``-E log D(G(z))``: the generator's non-saturating loss."""
    return _mean(jax.nn.softplus(-fake_logits))


def least_squares_discriminator_loss(real_scores, fake_scores):
    """``1/2 E (D(x) - 1)^2 + 1/2 E D(G(z))^2`` on raw scores (LSGAN with targets a=0, b=1)."""
    return 0.5 * _mean(jnp.square(real_scores - 1.0)) + 0.5 * _mean(jnp.square(fake_scores))


def least_squares_generator_loss(fake_scores):
    """``1/2 E (D(G(z)) - 1)^2`` on raw scores (LSGAN with target c=1)."""
    return 0.5 * _mean(jnp.square(fake_scores - 1.0))


def _check_kind(kind: str):
    if kind not in KINDS:
        raise ValueError(f"loss kind must be one of {KINDS}, got {kind!r}")


def discriminator_loss(real_logits, fake_logits, *, kind: str = "non_saturating"):
    """The discriminator's loss for ``kind`` in :data:`KINDS` (minimax and non-saturating share it)."""
    _check_kind(kind)
    if kind == "least_squares":
        return least_squares_discriminator_loss(real_logits, fake_logits)
    return minimax_discriminator_loss(real_logits, fake_logits)


def generator_loss(fake_logits, *, kind: str = "non_saturating"):
    """The generator's loss for ``kind`` in :data:`KINDS`."""
    _check_kind(kind)
    if kind == "least_squares":
        return least_squares_generator_loss(fake_logits)
    if kind == "minimax":
        return minimax_generator_loss(fake_logits)
    return non_saturating_generator_loss(fake_logits)
