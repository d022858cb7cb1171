"""Image-to-image translation: what CycleGAN (unpaired) and the pix2pix / BicycleGAN family (paired,
multimodal) share, and where each family lives.

* :mod:`gm.deep.translate_paired`: pix2pix, pix2pix + noise, cAE-GAN, cVAE-GAN, cLR-GAN and BicycleGAN on
  pairs ``batch = {"input": x, "target": y}`` (a U-Net ``G(x, z)``, a latent encoder ``E(y)``, conditional
  PatchGANs ``D(x, y)``).
* :mod:`gm.deep.translate_cyclegan`: CycleGAN on unpaired batches ``{"a": a, "b": b}`` (two U-Nets, two
  PatchGANs, cycle and identity losses).
* :mod:`gm.deep.translate_networks`: the flax networks both use.

This module holds the pieces both families use: :class:`TranslationState` (a generator side and a
discriminator side, each a :class:`gm.deep.train.TrainState`), the Adam optimiser of both sides with its
linear-decay schedule (:func:`translation_optimizer`, :func:`learning_rate_schedule`) and the L1 and KL
losses (:func:`l1_loss`, :func:`kl_divergence_loss`, :func:`latent_regression_loss`,
:func:`cycle_consistency_loss`, :func:`identity_loss`). Every family's step updates the discriminators
with the generators fixed and the generators with the discriminators fixed; both steps are pure and jitted,
traced once per config (a static pytree, taken first or right after the key).

Example:
    >>> import jax.numpy as jnp
    >>> from gm.deep import translate
    >>> float(translate.l1_loss(jnp.zeros(4), jnp.ones(4)))           # mean |prediction - target|
    1.0
    >>> float(translate.kl_divergence_loss(jnp.zeros((2, 3)), jnp.zeros((2, 3))))   # q = p
    0.0
"""

from __future__ import annotations

import functools

import flax.struct
import jax
import jax.numpy as jnp
import optax

from gm.deep.densities import gaussian_kl
from gm.deep.train import TrainState, make_optimizer

__all__ = [
    "features_tuple",
    "TranslationState",
    "learning_rate_schedule",
    "translation_optimizer",
    "l1_loss",
    "kl_divergence_loss",
    "latent_regression_loss",
    "cycle_consistency_loss",
    "identity_loss",
]


def features_tuple(values) -> tuple[int, ...]:
    """A config's channel list as a tuple of ints (hashable), whatever sequence was given."""
    return tuple(int(v) for v in values)


@flax.struct.dataclass
class TranslationState:
    """Generator side (``gen``: generator(s) and encoder) and discriminator side (``disc``) of a model."""

    gen: TrainState
    disc: TrainState

    @property
    def step(self) -> jax.Array:
        """Number of steps taken (of the generator side)."""
        return self.gen.step

    @classmethod
    def create(cls, config, gen_params, disc_params) -> "TranslationState":
        """Both sides at step 0, each with :func:`translation_optimizer` of ``config``.

        Args:
            config: a :class:`gm.deep.translate_paired.TranslationConfig` or
                :class:`gm.deep.translate_cyclegan.CycleGANConfig`.
            gen_params: ``{network name: parameters}`` of the generator side.
            disc_params: ``{network name: parameters}`` of the discriminator side.
        """
        tx = translation_optimizer(config)
        return cls(TrainState.create(gen_params, tx), TrainState.create(disc_params, tx))


# ------------------------------------------------------------------------------------------ optimiser


def learning_rate_schedule(config):
    """The learning rate of both sides: a float, or a schedule ``step -> rate`` when ``config.decay_steps > 0``.

    Constant ``learning_rate`` for the first ``total_steps - decay_steps`` steps, then linear to 0 at
    ``total_steps`` (and 0 after).

    Examples:
        >>> learning_rate_schedule(config)(config.total_steps)   # 0.0 at the end of the decay
    """
    lr = config.learning_rate
    if not getattr(config, "decay_steps", 0):  # CycleGANConfig has no schedule
        return lr
    return _linear_decay(float(lr), int(config.total_steps), int(config.decay_steps))


@functools.lru_cache(maxsize=64)
def _linear_decay(lr: float, total: int, decay: int):
    # one function object per setting, so that make_optimizer's cache (keyed by it) is hit by equal configs
    def schedule(step):
        return lr * jnp.clip((total - step) / decay, 0.0, 1.0)

    return schedule


def translation_optimizer(config) -> optax.GradientTransformation:
    """Adam with ``config.learning_rate`` (or its :func:`learning_rate_schedule`), ``b1`` and ``b2``: the
    optimiser of both sides of every translation model. Equal configs get the same (cached) object, so
    their states share every compiled step.

    Examples:
        >>> translation_optimizer(config) is translation_optimizer(dataclasses.replace(config))
        True
    """
    return make_optimizer(learning_rate_schedule(config), b1=config.b1, b2=config.b2)


# -------------------------------------------------------------------------------------- basic losses


def l1_loss(prediction, target):
    """Mean absolute difference ``mean |prediction - target|`` over every element."""
    if prediction.shape != target.shape:
        raise ValueError(f"prediction shape {prediction.shape} differs from target shape {target.shape}")
    return jnp.mean(jnp.abs(prediction - target))


def kl_divergence_loss(mean, log_var):
    """``KL(N(mean, exp(log_var)) || N(0, I))``, summed over latent dimensions, mean over the batch.

    ``KL = 1/2 sum_j (mean_j^2 + exp(log_var_j) - 1 - log_var_j)``
    (:func:`gm.deep.densities.gaussian_kl`); ``mean``, ``log_var``: ``f32[B, L]``.
    """
    return jnp.mean(gaussian_kl(mean, log_var))


def latent_regression_loss(recovered, z):
    """``mean |E(G(x, z)) - z|``: how far the encoder's mean is from the code that made the image."""
    return l1_loss(recovered, z)


def cycle_consistency_loss(original, cycled):
    """``mean |F(G(x)) - x|`` (CycleGAN's cycle loss for one direction)."""
    return l1_loss(cycled, original)


def identity_loss(image, mapped):
    """``mean |G(y) - y|`` for ``y`` already in ``G``'s output domain (CycleGAN's identity loss)."""
    return l1_loss(mapped, image)
