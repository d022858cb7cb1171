"""CycleGAN: unpaired image-to-image translation between domains A and B.

CycleGAN (Zhu et al., 2017; ``batch = {"a": a, "b": b}``, unpaired): two U-Net generators ``G_AB``,
``G_BA``, two unconditional PatchGANs ``D_A``, ``D_B``, least-squares GAN loss, cycle loss weight 10 and
identity loss weight ``0.5 * 10``. Differences from the reference: U-Net rather than ResNet generators, no
image pool for the discriminators, no normalisation layers (small images, small batches).

The generator side holds ``G_AB`` and ``G_BA``, the discriminator side ``D_A`` and ``D_B``, in a
:class:`gm.deep.translate.TranslationState`. :func:`train_step` updates the generators with the
discriminators fixed, then the discriminators on the new fakes (the reference implementation's order); it
draws no random numbers, so it takes no key. Jitted, traced once per config.

Example:
    >>> import jax, numpy as np
    >>> from gm.deep import translate_cyclegan
    >>> config = translate_cyclegan.CycleGANConfig(channels_a=1, channels_b=1, image_size=16)
    >>> batch = {"a": np.zeros((4, 16, 16, 1), np.float32), "b": np.zeros((4, 16, 16, 1), np.float32)}
    >>> state = translate_cyclegan.create_state(jax.random.key(0), config, batch)
    >>> state, metrics = translate_cyclegan.train_step(config, state, batch)
    >>> translate_cyclegan.translate(config, state, batch["a"], direction="ab").shape
    (4, 16, 16, 1)
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from gm.deep import gan_losses
from gm.deep.train import (LossAndMetrics, TrainStep, apply_if_finite, check_images, check_learning_rates,
                           mark_skipped, static_config, valid_images)
from gm.deep.translate import TranslationState, cycle_consistency_loss, features_tuple, identity_loss
from gm.deep.translate_networks import PatchDiscriminator, UNetGenerator

__all__ = [
    "CycleGANConfig",
    "check_batch",
    "generator_loss",
    "discriminator_loss",
    "create_state",
    "train_step",
    "translate",
]


@static_config
@dataclasses.dataclass(frozen=True)
class CycleGANConfig:
    """CycleGAN between domains A and B.

    Attributes:
        channels_a, channels_b: channels of the two domains (equal when ``lambda_identity > 0``).
        image_size: side of the square images.
        generator_features, discriminator_features: channels per stride-2 stage.
        gan_kind: adversarial loss (published: least squares).
        lambda_cycle: weight of each cycle-consistency L1 term (published: 10).
        lambda_identity: identity-loss weight relative to ``lambda_cycle`` (published: 0.5, i.e. 5).
        learning_rate, b1, b2: Adam settings (published: 2e-4, 0.5, 0.999).
    """

    channels_a: int = 1
    channels_b: int = 1
    image_size: int = 16
    generator_features: tuple[int, ...] = (32, 64, 128)
    discriminator_features: tuple[int, ...] = (32, 64)
    gan_kind: str = "least_squares"
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    learning_rate: float = 2e-4
    b1: float = 0.5
    b2: float = 0.999

    def __post_init__(self):
        check_learning_rates(self, "learning_rate")
        if self.gan_kind not in gan_losses.KINDS:
            raise ValueError(f"gan_kind must be one of {gan_losses.KINDS}, got {self.gan_kind!r}")
        if self.lambda_identity > 0 and self.channels_a != self.channels_b:
            raise ValueError(
                f"lambda_identity > 0 needs channels_a == channels_b, got {self.channels_a} and {self.channels_b}"
            )
        if self.image_size % 2 ** len(self.generator_features):
            raise ValueError(f"image_size {self.image_size} is not divisible by 2^{len(self.generator_features)}")
        for name in ("generator_features", "discriminator_features"):
            object.__setattr__(self, name, features_tuple(getattr(self, name)))


def _generator(config: CycleGANConfig, name: str) -> UNetGenerator:
    """``G_AB`` (``name="g_ab"``) or ``G_BA`` (``"g_ba"``): a U-Net to the target domain's channels."""
    out = config.channels_b if name == "g_ab" else config.channels_a
    return UNetGenerator(config.generator_features, out, "input")


def _mapped(config: CycleGANConfig, gen_params, name, x):
    """``G_AB(x)`` or ``G_BA(x)``, linear output."""
    return _generator(config, name).apply({"params": gen_params[name]}, x)


def _patch_scores(config: CycleGANConfig, disc_params, name, x):
    """PatchGAN score map of ``x`` from ``D_A`` (``name="d_a"``) or ``D_B`` (``"d_b"``)."""
    return PatchDiscriminator(config.discriminator_features).apply({"params": disc_params[name]}, x)


def _check_unpaired(config: CycleGANConfig, batch):
    a, b = batch["a"], batch["b"]
    s = config.image_size
    if a.ndim != 4 or a.shape[1:] != (s, s, config.channels_a):
        raise ValueError(f"batch['a'] must be [B, {s}, {s}, {config.channels_a}], got shape {a.shape}")
    if b.ndim != 4 or b.shape[1:] != (s, s, config.channels_b):
        raise ValueError(f"batch['b'] must be [B, {s}, {s}, {config.channels_b}], got shape {b.shape}")
    return a, b


def check_batch(config: CycleGANConfig, batch) -> None:
    """The training loop's check of a batch (or the whole training set), once per epoch or run: shapes as
    the config says, every pixel of ``a`` and ``b`` finite and in [0, 1]; ``ValueError`` naming the array,
    the pixel, its value and the image (eager, or compiled under `gm.validation.checked`).
    :func:`train_step` itself skips an invalid batch (see there).

    Examples:
        >>> translate_cyclegan.check_batch(config, {"a": a, "b": b})
    """
    _check_unpaired(config, {k: jnp.asarray(batch[k]) for k in ("a", "b")})
    for name in ("a", "b"):
        check_images(batch[name], f"batch[{name!r}]")


def generator_loss(config: CycleGANConfig, gen_params, disc_params, batch) -> LossAndMetrics:
    """CycleGAN's generator loss with the discriminators fixed.

    ``GAN(D_B(G_AB(a))) + GAN(D_A(G_BA(b))) + lambda_cycle (|G_BA(G_AB(a)) - a|_1 + |G_AB(G_BA(b)) - b|_1)
    + lambda_identity lambda_cycle (|G_BA(a) - a|_1 + |G_AB(b) - b|_1)``.

    Args:
        config: the model config.
        gen_params: ``{"g_ab": ..., "g_ba": ...}``.
        disc_params: ``{"d_a": ..., "d_b": ...}``.
        batch: ``{"a": f32[B, H, W, C_a], "b": f32[B, H, W, C_b]}`` (unpaired).

    Returns:
        :class:`~gm.deep.train.LossAndMetrics` ``(loss, {"gan_ab", "gan_ba", "cycle_a", "cycle_b",
        "identity_a", "identity_b"})``.
    """
    a, b = _check_unpaired(config, batch)
    fake_b = _mapped(config, gen_params, "g_ab", a)
    fake_a = _mapped(config, gen_params, "g_ba", b)
    t = {
        "gan_ab": gan_losses.generator_loss(_patch_scores(config, disc_params, "d_b", fake_b), kind=config.gan_kind),
        "gan_ba": gan_losses.generator_loss(_patch_scores(config, disc_params, "d_a", fake_a), kind=config.gan_kind),
        "cycle_a": cycle_consistency_loss(a, _mapped(config, gen_params, "g_ba", fake_b)),
        "cycle_b": cycle_consistency_loss(b, _mapped(config, gen_params, "g_ab", fake_a)),
    }
    loss = t["gan_ab"] + t["gan_ba"] + config.lambda_cycle * (t["cycle_a"] + t["cycle_b"])
    if config.lambda_identity > 0:
        t["identity_a"] = identity_loss(a, _mapped(config, gen_params, "g_ba", a))
        t["identity_b"] = identity_loss(b, _mapped(config, gen_params, "g_ab", b))
        loss = loss + config.lambda_identity * config.lambda_cycle * (t["identity_a"] + t["identity_b"])
    return LossAndMetrics(loss, t)


def discriminator_loss(config: CycleGANConfig, disc_params, gen_params, batch) -> jax.Array:
    """``GAN_D(D_A(a), D_A(G_BA(b))) + GAN_D(D_B(b), D_B(G_AB(a)))`` with the generators fixed.

    Examples:
        >>> d_loss = discriminator_loss(config, state.disc.params, state.gen.params, batch)
    """
    a, b = _check_unpaired(config, batch)
    fake_b = jax.lax.stop_gradient(_mapped(config, gen_params, "g_ab", a))
    fake_a = jax.lax.stop_gradient(_mapped(config, gen_params, "g_ba", b))
    d_a = gan_losses.discriminator_loss(_patch_scores(config, disc_params, "d_a", a),
                                        _patch_scores(config, disc_params, "d_a", fake_a), kind=config.gan_kind)
    d_b = gan_losses.discriminator_loss(_patch_scores(config, disc_params, "d_b", b),
                                        _patch_scores(config, disc_params, "d_b", fake_b), kind=config.gan_kind)
    return d_a + d_b


def create_state(key: jax.Array, config: CycleGANConfig, example_batch) -> TranslationState:
    """Initialise ``G_AB``, ``G_BA`` (generator side) and ``D_A``, ``D_B`` from ``{"a": ..., "b": ...}``.

    Examples:
        >>> state = translate_cyclegan.create_state(jax.random.key(0), config, {"a": a[:8], "b": b[:8]})
    """
    a, b = _check_unpaired(config, {k: jnp.asarray(v) for k, v in example_batch.items()})

    def init(key, a, b):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        gen = {"g_ab": _generator(config, "g_ab").init(k1, a)["params"],
               "g_ba": _generator(config, "g_ba").init(k2, b)["params"]}
        disc = {
            "d_a": PatchDiscriminator(config.discriminator_features).init(k3, a)["params"],
            "d_b": PatchDiscriminator(config.discriminator_features).init(k4, b)["params"],
        }
        return gen, disc

    gen, disc = jax.jit(init)(key, a[:1], b[:1])
    return TranslationState.create(config, gen, disc)


@jax.jit
def train_step(config: CycleGANConfig, state: TranslationState, batch) -> TrainStep:
    """One CycleGAN step: generators with the discriminators fixed, then discriminators on the new fakes.

    The order is the reference implementation's (G, then D); there is no image pool. Deterministic: no key.

    Args:
        config: the model config.
        state: the :class:`~gm.deep.translate.TranslationState` from :func:`create_state`.
        batch: ``{"a": f32[B, H, W, C_a], "b": f32[B, H, W, C_b]}`` (unpaired).

    Values are not checked inside the (jitted) step; instead a side's update whose batch has a pixel that
    is not finite or not in [0, 1], or whose loss or gradients are not finite, is skipped (that side's
    state is returned unchanged), and the marker is in the metrics: ``finite`` is 0.0 and ``g_loss`` and
    ``d_loss`` are NaN. The training loop stops at such a step (``experiments._common.train_loop``); check
    the data once with :func:`check_batch`.

    Returns:
        :class:`~gm.deep.train.TrainStep` ``(new state, metrics)`` with ``g_loss``, ``d_loss``, the
        generator terms and ``finite``.
    """
    batch = {"a": batch["a"], "b": batch["b"]}
    (g_loss, terms), g_grads = jax.value_and_grad(generator_loss, argnums=1, has_aux=True)(
        config, state.gen.params, state.disc.params, batch
    )
    valid = jnp.all(valid_images(batch["a"])) & jnp.all(valid_images(batch["b"]))
    gen, g_ok = apply_if_finite(state.gen, g_grads, g_loss, valid=valid)
    d_loss, d_grads = jax.value_and_grad(discriminator_loss, argnums=1)(config, state.disc.params, gen.params, batch)
    disc, d_ok = apply_if_finite(state.disc, d_grads, d_loss, valid=valid)
    metrics = mark_skipped({"g_loss": g_loss, "d_loss": d_loss, **terms}, g_ok & d_ok, "g_loss", "d_loss")
    return TrainStep(TranslationState(gen, disc), metrics)


@functools.partial(jax.jit, static_argnames="name")
def _translated(config: CycleGANConfig, state: TranslationState, images, name: str):
    return jnp.clip(_mapped(config, state.gen.params, name, images), 0.0, 1.0)


def translate(config: CycleGANConfig, state: TranslationState, images, *, direction: str = "ab") -> jax.Array:
    """``G_AB(a)`` (``direction="ab"``) or ``G_BA(b)`` (``"ba"``) for ``f32[B, H, W, C]`` images, clipped to [0, 1].

    Examples:
        >>> bold = translate_cyclegan.translate(config, state, thin_digits, direction="ab")
    """
    if direction not in ("ab", "ba"):
        raise ValueError(f"direction must be 'ab' or 'ba', got {direction!r}")
    return _translated(config, state, jnp.asarray(images), "g_" + direction)
