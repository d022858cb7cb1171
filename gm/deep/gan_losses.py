"""Adversarial losses as named, pure functions of discriminator logits, and the GAN family's other losses.

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

The GAN family's own losses follow: InfoGAN's code losses and mutual-information bound
(:func:`mutual_information_loss`) and BiGAN's losses on pairs (:func:`bigan_generator_loss`).

Example:
    >>> import jax.numpy as jnp
    >>> from gm.deep import gan_losses
    >>> float(gan_losses.minimax_discriminator_loss(jnp.zeros(4), jnp.zeros(4)))  # 2 log 2
    1.386...
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp

from gm.deep.densities import LOG_2PI

if TYPE_CHECKING:  # the types of the GAN family (gm.deep.gan_networks imports this module)
    from gm.deep.gan_networks import DiscriminatorOutput, Latent

__all__ = [
    "KINDS",
    "minimax_discriminator_loss",
    "minimax_generator_loss",
    "non_saturating_generator_loss",
    "least_squares_discriminator_loss",
    "least_squares_generator_loss",
    "discriminator_loss",
    "generator_loss",
    "categorical_code_loss",
    "continuous_code_loss",
    "mutual_information_loss",
    "bigan_discriminator_loss",
    "bigan_generator_loss",
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


# ------------------------------------------------------------------------------- InfoGAN and BiGAN


def categorical_code_loss(logits: jax.Array, codes: jax.Array) -> jax.Array:
    """``-E log Q(c | x)`` for a categorical code: mean cross-entropy of ``f32[B, K]`` logits and ``int[B]`` codes."""
    if logits.ndim != 2 or codes.shape != logits.shape[:1]:
        raise ValueError(f"logits must be [B, K] and codes [B], got {logits.shape} and {codes.shape}")
    log_q = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return -jnp.mean(jnp.take_along_axis(log_q, codes[:, None].astype(jnp.int32), axis=-1))


def continuous_code_loss(mean: jax.Array, log_std: jax.Array, codes: jax.Array) -> jax.Array:
    """``-E log Q(c | x)`` for continuous codes under a diagonal Gaussian ``Q``, summed over codes.

    ``-log N(c; m, s^2) = 1/2 log 2 pi + log s + (c - m)^2 / (2 s^2)`` per code; mean over the batch.

    Args:
        mean: ``f32[B, n_continuous]`` means of ``Q``.
        log_std: ``f32[B, n_continuous]`` log standard deviations of ``Q``.
        codes: ``f32[B, n_continuous]`` the codes the fakes were generated with.
    """
    if not mean.shape == log_std.shape == codes.shape:
        raise ValueError(f"mean, log_std and codes must share a shape, got {mean.shape}, {log_std.shape}, "
                         f"{codes.shape}")
    nll = 0.5 * LOG_2PI + log_std + 0.5 * jnp.square(codes - mean) * jnp.exp(-2.0 * log_std)
    return jnp.mean(jnp.sum(nll, axis=-1))


def mutual_information_loss(output: DiscriminatorOutput, latent: Latent, *, continuous_weight: float = 1.0
                            ) -> jax.Array:
    """InfoGAN's negative mutual-information lower bound, up to the constant ``H(c)``.

    ``I(c; G(z, c)) >= H(c) + E log Q(c | G(z, c))`` (Chen et al., 2016, Lemma 5.1); this returns
    ``-E log Q(c_1 | x) - continuous_weight * E log Q(c_2 | x)`` evaluated on the fakes ``x = G(z, c)``
    (:func:`categorical_code_loss` plus weighted :func:`continuous_code_loss`). The bound itself is
    ``log n_categories + E log Q(c_1 | x)`` for the uniform categorical code.

    Args:
        output: the discriminator's output on ``G(z, c)`` (with Q's heads).
        latent: the codes ``c`` the fakes were generated with.
        continuous_weight: weight of the continuous codes' term.

    Returns:
        ``f32[]``.
    """
    loss = categorical_code_loss(output.categorical_logits, latent.categorical)
    if latent.continuous is not None and latent.continuous.shape[-1] > 0:
        loss = loss + continuous_weight * continuous_code_loss(
            output.continuous_mean, output.continuous_log_std, latent.continuous)
    return loss


def bigan_discriminator_loss(real_logits, fake_logits, *, kind: str = "non_saturating"):
    """BiGAN's discriminator loss: pairs ``(x, E(x))`` are real, ``(G(z), z)`` fake (:func:`discriminator_loss`)."""
    return discriminator_loss(real_logits, fake_logits, kind=kind)


def bigan_generator_loss(real_logits, fake_logits, *, kind: str = "non_saturating"):
    """The loss of BiGAN's generator and encoder together, from D's logits on both kinds of pairs.

    G and E play the same game against D from the other side: ``(G(z), z)`` should look real and
    ``(x, E(x))`` fake.

    * minimax: ``V = E log D(x, E(x)) + E log(1 - D(G(z), z))``, the negated discriminator loss;
    * non-saturating: ``-E log D(G(z), z) - E log(1 - D(x, E(x)))``, the discriminator loss with real and
      fake swapped (strong gradients for both);
    * least squares: ``1/2 E (D(G(z), z) - 1)^2 + 1/2 E D(x, E(x))^2``, again with the targets swapped.

    Args:
        real_logits: ``f32[B]`` D's logits (scores) on ``(x, E(x))``.
        fake_logits: ``f32[B]`` D's logits on ``(G(z), z)``.
        kind: one of :data:`KINDS`.
    """
    if kind == "minimax":
        return -minimax_discriminator_loss(real_logits, fake_logits)
    return discriminator_loss(fake_logits, real_logits, kind=kind)
