"""Paired image-to-image translation: pix2pix and the BicycleGAN family (multimodal outputs).

The generator side is a U-Net ``G(x, z)`` (with the latent encoder ``E(y)`` where the model has one), the
discriminator side one conditional PatchGAN ``D(x, y)`` (two for BicycleGAN), in a
:class:`gm.deep.translate.TranslationState`. :func:`train_step` updates the discriminators with the
generator fixed, then the generator (and encoder) with the updated discriminators fixed; it is pure and
jitted, traced once per config. Every loss is a named function of the config, parameters, a batch and
explicit noise (:class:`Noise`), so a test can recompute it by hand from the networks' outputs.

Paired models (``batch = {"input": x, "target": y}``; ``G(x, z)`` a U-Net with ``z`` tiled onto its
inputs, ``E(y)`` a latent encoder, ``D(x, y)`` a conditional PatchGAN; weights as published):

* ``pix2pix`` (Isola et al., 2017): ``GAN(D(x, G(x))) + 100 |G(x) - y|_1``.
* ``pix2pix_noise``: the same with a random ``z`` injected into ``G``; the L1 term rewards the mean output,
  so ``G`` learns to ignore ``z`` (the failure the BicycleGAN paper starts from).
* ``cae_gan``: a deterministic encoder ``z = E(y)``; ``GAN(D(x, G(x, E(y)))) + 10 |G(x, E(y)) - y|_1``.
  Nothing ties ``E(y)`` to the prior, so prior samples at test time land where ``G`` was never trained.
* ``cvae_gan``: ``z ~ q(z | y) = N(mu(y), sigma(y)^2)``; ``GAN + 10 L1 + 0.01 KL(q || N(0, I))``.
* ``clr_gan``: ``z ~ N(0, I)``, ``y_hat = G(x, z)``; ``GAN(D(x, y_hat)) + 0.5 |mu(y_hat) - z|_1``; the
  ground truth enters only through ``D``.
* ``bicyclegan`` (Zhu et al., 2017): both, with a second discriminator for the cLR path, published
  ``lambda_image = 10``, ``lambda_latent = 0.5``, ``lambda_KL = 0.01``; the latent-regression term updates
  only the generator (the encoder's parameters enter it through ``stop_gradient``), as in the reference
  implementation, so the encoder cannot make the term small by hiding information in ``z``.

The adversarial loss is least squares for every model here (the BicycleGAN and CycleGAN default; the
pix2pix paper used the minimax/non-saturating loss, available through ``gan_kind``).

Example:
    >>> import jax, numpy as np
    >>> from gm.deep import translate_paired
    >>> config = translate_paired.TranslationConfig(model="bicyclegan", in_channels=1, out_channels=3)
    >>> batch = {"input": np.zeros((4, 16, 16, 1), np.float32), "target": np.zeros((4, 16, 16, 3), np.float32)}
    >>> state = translate_paired.create_state(jax.random.key(0), config, batch)
    >>> state, metrics = translate_paired.train_step(jax.random.key(1), config, state, batch)
    >>> translate_paired.sample(jax.random.key(2), config, state, batch["input"], 5).shape
    (4, 5, 16, 16, 3)

Length: about 500 lines. Six models that differ only in their generator-side loss, each a short named
function beside the others, sharing the config, the steps and the sampling.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gm.deep import gan_losses
from gm.deep.train import (LossAndMetrics, TrainStep, apply_if_finite, check_images, check_learning_rates,
                           mark_skipped, static_config, valid_images)
from gm.deep.translate import (
    TranslationState,
    features_tuple,
    kl_divergence_loss,
    l1_loss,
    latent_regression_loss,
)
from gm.deep.translate_networks import LatentEncoder, PatchDiscriminator, UNetGenerator

__all__ = [
    "PAIRED_MODELS",
    "TranslationConfig",
    "Noise",
    "pix2pix_loss",
    "cae_gan_loss",
    "cvae_gan_loss",
    "clr_gan_loss",
    "bicyclegan_latent_term",
    "bicyclegan_loss",
    "generator_loss",
    "discriminator_loss",
    "draw_noise",
    "check_batch",
    "create_state",
    "train_step",
    "translate",
    "encode",
    "sample",
]

PAIRED_MODELS = ("pix2pix", "pix2pix_noise", "cae_gan", "cvae_gan", "clr_gan", "bicyclegan")


@static_config
@dataclasses.dataclass(frozen=True)
class TranslationConfig:
    """Architecture, loss weights and optimiser of one paired translation model.

    Attributes:
        model: one of :data:`PAIRED_MODELS`.
        in_channels, out_channels: channels of the input and the target images.
        image_size: side of the (square) images; divisible by ``2^len(generator_features)``.
        latent_dim: dimension of ``z`` (unused by ``pix2pix``).
        generator_features, encoder_features, discriminator_features: channels per stride-2 stage.
        inject: ``"all"`` (z tiled onto every down-sampling layer's input) or ``"input"`` (input only).
        gan_kind: adversarial loss, a kind of :mod:`gm.deep.gan_losses`.
        lambda_l1: weight of the L1 image term; ``None`` for the published default (100 for pix2pix and
            pix2pix_noise, 10 for the encoder models).
        lambda_latent: weight of the latent-regression L1 term (cLR-GAN, BicycleGAN).
        lambda_kl: weight of the KL term (cVAE-GAN, BicycleGAN).
        learning_rate, b1, b2: Adam settings of both sides (published: 2e-4, 0.5, 0.999).
        total_steps, decay_steps: with ``decay_steps > 0`` the learning rate stays constant for
            ``total_steps - decay_steps`` steps and then decays linearly to 0 at ``total_steps`` (the published
            ``niter`` / ``niter_decay`` schedule); ``decay_steps = 0`` (default) keeps it constant.
    """

    model: str = "bicyclegan"
    in_channels: int = 1
    out_channels: int = 3
    image_size: int = 16
    latent_dim: int = 8
    generator_features: tuple[int, ...] = (32, 64, 128)
    encoder_features: tuple[int, ...] = (32, 64)
    discriminator_features: tuple[int, ...] = (32, 64)
    inject: str = "all"
    gan_kind: str = "least_squares"
    lambda_l1: float | None = None
    lambda_latent: float = 0.5
    lambda_kl: float = 0.01
    learning_rate: float = 2e-4
    b1: float = 0.5
    b2: float = 0.999
    total_steps: int = 0
    decay_steps: int = 0

    def __post_init__(self):
        check_learning_rates(self, "learning_rate")
        if self.model not in PAIRED_MODELS:
            raise ValueError(f"model must be one of {PAIRED_MODELS}, got {self.model!r}")
        if self.gan_kind not in gan_losses.KINDS:
            raise ValueError(f"gan_kind must be one of {gan_losses.KINDS}, got {self.gan_kind!r}")
        if self.inject not in ("input", "all"):
            raise ValueError(f"inject must be 'input' or 'all', got {self.inject!r}")
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")
        if not 0 <= self.decay_steps <= self.total_steps:
            raise ValueError(f"decay_steps must be in 0..total_steps ({self.total_steps}), got {self.decay_steps}")
        if self.image_size % 2 ** len(self.generator_features):
            raise ValueError(
                f"image_size {self.image_size} is not divisible by 2^{len(self.generator_features)} "
                "(len(generator_features))"
            )
        for name in ("generator_features", "encoder_features", "discriminator_features"):
            object.__setattr__(self, name, features_tuple(getattr(self, name)))

    @property
    def uses_noise(self) -> bool:
        """Whether the generator takes a latent code."""
        return self.model != "pix2pix"

    @property
    def has_encoder(self) -> bool:
        """Whether the model has a latent encoder ``E(y)``."""
        return self.model in ("cae_gan", "cvae_gan", "clr_gan", "bicyclegan")

    @property
    def image_weight(self) -> float:
        """Weight of the L1 image term (the published default unless ``lambda_l1`` is set)."""
        if self.lambda_l1 is not None:
            return float(self.lambda_l1)
        return 100.0 if self.model in ("pix2pix", "pix2pix_noise") else 10.0


class Noise(NamedTuple):
    """The randomness of one paired step, drawn once and shared by the two updates.

    Attributes:
        z_random: ``f32[B, L]`` prior draw ``z ~ N(0, I)`` (cLR path, pix2pix_noise).
        eps: ``f32[B, L]`` standard normal for the reparameterised encoder sample (cVAE path).
    """

    z_random: jax.Array
    eps: jax.Array


# ----------------------------------------------------------------------------------- network calls


def _generated(config: TranslationConfig, gen_params, x, z):
    """``G(x, z)`` (``z`` ignored by pix2pix), linear output."""
    module = UNetGenerator(config.generator_features, config.out_channels, config.inject)
    return module.apply({"params": gen_params["generator"]}, x, z if config.uses_noise else None)


def _encoded(config: TranslationConfig, encoder_params, y):
    """``(mean, log_var)`` of ``q(z | y)``."""
    return LatentEncoder(config.encoder_features, config.latent_dim).apply({"params": encoder_params}, y)


def _patch_scores(config: TranslationConfig, disc_params, name, x, y):
    """Conditional PatchGAN score map of the pair ``(x, y)`` from discriminator ``name``."""
    return PatchDiscriminator(config.discriminator_features).apply(
        {"params": disc_params[name]}, jnp.concatenate([x, y], axis=-1)
    )


def _generator_adversarial(config: TranslationConfig, scores):
    return gan_losses.generator_loss(scores, kind=config.gan_kind)


def _check_batch(config: TranslationConfig, batch):
    x, y = batch["input"], batch["target"]
    if x.ndim != 4 or x.shape[1:] != (config.image_size, config.image_size, config.in_channels):
        raise ValueError(
            f"batch['input'] must be [B, {config.image_size}, {config.image_size}, {config.in_channels}], "
            f"got shape {x.shape}"
        )
    if y.shape != (x.shape[0], config.image_size, config.image_size, config.out_channels):
        raise ValueError(
            f"batch['target'] must be [{x.shape[0]}, {config.image_size}, {config.image_size}, "
            f"{config.out_channels}], got shape {y.shape}"
        )
    return x, y


def check_batch(config: TranslationConfig, batch) -> None:
    """The training loop's check of a batch (or the whole training set), once per epoch or run: shapes as
    the config says, every pixel of ``input`` and ``target`` finite and in [0, 1]; ``ValueError`` naming
    the array, the pixel, its value and the image (eager, or compiled under `gm.validation.checked`).
    :func:`train_step` itself skips an invalid batch (see there).

    Examples:
        >>> translate_paired.check_batch(config, {"input": x, "target": y * 255})   # ValueError: ...
    """
    _check_batch(config, {k: jnp.asarray(batch[k]) for k in ("input", "target")})
    for name in ("input", "target"):
        check_images(batch[name], f"batch[{name!r}]")


# ----------------------------------------------------------------------- paired generator-side losses


def pix2pix_loss(config: TranslationConfig, gen_params, disc_params, batch, noise: Noise) -> LossAndMetrics:
    """pix2pix: ``GAN(D(x, G(x, z))) + lambda_l1 |G(x, z) - y|_1`` (``z`` only for ``pix2pix_noise``).

    Args:
        config: the model config.
        gen_params: ``{"generator": ...}`` (and ``"encoder"``) parameters.
        disc_params: ``{"d": ...}`` (and ``"d2"``) parameters.
        batch: ``{"input": f32[B, H, W, C_in], "target": f32[B, H, W, C_out]}``.
        noise: the step's :class:`Noise`.

    Returns:
        :class:`~gm.deep.train.LossAndMetrics` ``(loss, terms)`` with ``terms = {"gan", "l1"}`` (scalars).
    """
    x, y = _check_batch(config, batch)
    fake = _generated(config, gen_params, x, noise.z_random)
    gan = _generator_adversarial(config, _patch_scores(config, disc_params, "d", x, fake))
    l1 = l1_loss(fake, y)
    return LossAndMetrics(gan + config.image_weight * l1, {"gan": gan, "l1": l1})


def cae_gan_loss(config: TranslationConfig, gen_params, disc_params, batch, noise: Noise) -> LossAndMetrics:
    """cAE-GAN: ``z = mean(E(y))`` (deterministic); ``GAN(D(x, G(x, z))) + lambda_l1 |G(x, z) - y|_1``.

    Arguments as in :func:`pix2pix_loss`; returns ``(loss, {"gan", "l1"})``.
    """
    x, y = _check_batch(config, batch)
    z, _ = _encoded(config, gen_params["encoder"], y)
    fake = _generated(config, gen_params, x, z)
    gan = _generator_adversarial(config, _patch_scores(config, disc_params, "d", x, fake))
    l1 = l1_loss(fake, y)
    return LossAndMetrics(gan + config.image_weight * l1, {"gan": gan, "l1": l1})


def _cvae_terms(config, gen_params, disc_params, x, y, noise):
    mean, log_var = _encoded(config, gen_params["encoder"], y)
    z = mean + jnp.exp(0.5 * log_var) * noise.eps
    fake = _generated(config, gen_params, x, z)
    return {
        "gan": _generator_adversarial(config, _patch_scores(config, disc_params, "d", x, fake)),
        "l1": l1_loss(fake, y),
        "kl": kl_divergence_loss(mean, log_var),
    }


def cvae_gan_loss(config: TranslationConfig, gen_params, disc_params, batch, noise: Noise) -> LossAndMetrics:
    """cVAE-GAN: ``z = mu(y) + sigma(y) eps``; ``GAN + lambda_l1 |G(x, z) - y|_1 + lambda_kl KL(q(z|y) || p(z))``.

    Arguments as in :func:`pix2pix_loss`; returns ``(loss, {"gan", "l1", "kl"})``.
    """
    x, y = _check_batch(config, batch)
    t = _cvae_terms(config, gen_params, disc_params, x, y, noise)
    return LossAndMetrics(t["gan"] + config.image_weight * t["l1"] + config.lambda_kl * t["kl"], t)


def clr_gan_loss(config: TranslationConfig, gen_params, disc_params, batch, noise: Noise) -> LossAndMetrics:
    """cLR-GAN: ``y_hat = G(x, z)``, ``z ~ N(0, I)``; ``GAN(D(x, y_hat)) + lambda_latent |mu(y_hat) - z|_1``.

    Both the generator and the encoder are trained by the latent term here (the model on its own).
    Arguments as in :func:`pix2pix_loss`; returns ``(loss, {"gan", "latent"})``.
    """
    x, _ = _check_batch(config, batch)
    fake = _generated(config, gen_params, x, noise.z_random)
    recovered, _ = _encoded(config, gen_params["encoder"], fake)
    gan = _generator_adversarial(config, _patch_scores(config, disc_params, "d", x, fake))
    latent = latent_regression_loss(recovered, noise.z_random)
    return LossAndMetrics(gan + config.lambda_latent * latent, {"gan": gan, "latent": latent})


def bicyclegan_latent_term(config: TranslationConfig, gen_params, x, z_random) -> jax.Array:
    """The latent-regression term of BicycleGAN, ``|mu(G(x, z)) - z|_1``, a function of the generator only.

    The encoder's parameters pass through ``stop_gradient``: the gradient of this term with respect to them
    is exactly zero, so it updates the generator alone (as in the reference implementation).

    Examples:
        >>> term = bicyclegan_latent_term(config, state.gen.params, x, noise.z_random)
    """
    fake = _generated(config, gen_params, x, z_random)
    recovered, _ = _encoded(config, jax.lax.stop_gradient(gen_params["encoder"]), fake)
    return latent_regression_loss(recovered, z_random)


def bicyclegan_loss(config: TranslationConfig, gen_params, disc_params, batch, noise: Noise) -> LossAndMetrics:
    """BicycleGAN: cVAE-GAN terms (discriminator ``d``) + cLR-GAN terms (discriminator ``d2``).

    ``GAN_vae + GAN_lr + lambda_l1 L1 + lambda_kl KL + lambda_latent |mu(G(x, z)) - z|_1`` with the last term
    flowing into the generator only (:func:`bicyclegan_latent_term`). Arguments as in :func:`pix2pix_loss`.

    Returns:
        ``(loss, {"gan", "l1", "kl", "gan_lr", "latent"})``.
    """
    x, y = _check_batch(config, batch)
    t = _cvae_terms(config, gen_params, disc_params, x, y, noise)
    fake_lr = _generated(config, gen_params, x, noise.z_random)
    t["gan_lr"] = _generator_adversarial(config, _patch_scores(config, disc_params, "d2", x, fake_lr))
    t["latent"] = bicyclegan_latent_term(config, gen_params, x, noise.z_random)
    loss = (t["gan"] + t["gan_lr"] + config.image_weight * t["l1"] + config.lambda_kl * t["kl"]
            + config.lambda_latent * t["latent"])
    return LossAndMetrics(loss, t)


_GENERATOR_LOSSES = {
    "pix2pix": pix2pix_loss,
    "pix2pix_noise": pix2pix_loss,
    "cae_gan": cae_gan_loss,
    "cvae_gan": cvae_gan_loss,
    "clr_gan": clr_gan_loss,
    "bicyclegan": bicyclegan_loss,
}


def generator_loss(config: TranslationConfig, gen_params, disc_params, batch, noise: Noise) -> LossAndMetrics:
    """The generator-side loss of ``config.model`` (one of the named losses above): ``(loss, terms)``.

    Examples:
        >>> loss, terms = generator_loss(config, state.gen.params, state.disc.params, batch, noise)
    """
    return _GENERATOR_LOSSES[config.model](config, gen_params, disc_params, batch, noise)


def _fakes(config, gen_params, x, y, noise):
    """The generated images each discriminator sees: ``{discriminator name: f32[B, H, W, C_out]}``."""
    if config.model in ("pix2pix", "pix2pix_noise", "clr_gan"):
        return {"d": _generated(config, gen_params, x, noise.z_random)}
    mean, log_var = _encoded(config, gen_params["encoder"], y)
    z = mean if config.model == "cae_gan" else mean + jnp.exp(0.5 * log_var) * noise.eps
    fakes = {"d": _generated(config, gen_params, x, z)}
    if config.model == "bicyclegan":
        fakes["d2"] = _generated(config, gen_params, x, noise.z_random)
    return fakes


def discriminator_loss(config: TranslationConfig, disc_params, gen_params, batch, noise: Noise) -> jax.Array:
    """Sum over the model's discriminators of ``GAN_D(D(x, y), D(x, y_fake))`` with the generator fixed.

    Returns:
        The scalar loss (``d`` for every model; plus ``d2`` on the cLR path for BicycleGAN).

    Examples:
        >>> d_loss = discriminator_loss(config, state.disc.params, state.gen.params, batch, noise)
    """
    x, y = _check_batch(config, batch)
    fakes = jax.lax.stop_gradient(_fakes(config, gen_params, x, y, noise))
    total = 0.0
    for name, fake in fakes.items():
        real_scores = _patch_scores(config, disc_params, name, x, y)
        fake_scores = _patch_scores(config, disc_params, name, x, fake)
        total = total + gan_losses.discriminator_loss(real_scores, fake_scores, kind=config.gan_kind)
    return total


# ------------------------------------------------------------------------------------- state, steps


def draw_noise(key: jax.Array, config: TranslationConfig, batch_size: int) -> Noise:
    """Draw the prior code and the reparameterisation noise of one step.

    Examples:
        >>> noise = draw_noise(jax.random.key(0), config, 32)   # Noise(z_random f32[32, L], eps f32[32, L])
    """
    k1, k2 = jax.random.split(key)
    shape = (batch_size, config.latent_dim)
    return Noise(jax.random.normal(k1, shape), jax.random.normal(k2, shape))


def create_state(key: jax.Array, config: TranslationConfig, example_batch) -> TranslationState:
    """Initialise generator (+ encoder) and discriminator(s) of ``config.model`` from an example batch.

    Args:
        key: initialisation key.
        config: the model.
        example_batch: ``{"input": f32[B, H, W, C_in], "target": f32[B, H, W, C_out]}``.

    Returns:
        A :class:`~gm.deep.translate.TranslationState`: ``gen.params = {"generator", "encoder"}``,
        ``disc.params = {"d", "d2"}`` (the networks the model has).
    """
    x, y = _check_batch(config, {k: jnp.asarray(v) for k, v in example_batch.items()})

    def init(key, x, y):  # one compilation instead of one per parameter initialiser
        kg, ke, kd, kd2 = jax.random.split(key, 4)
        z = jnp.zeros((x.shape[0], config.latent_dim)) if config.uses_noise else None
        gen = {"generator": UNetGenerator(config.generator_features, config.out_channels, config.inject)
               .init(kg, x, z)["params"]}
        if config.has_encoder:
            gen["encoder"] = LatentEncoder(config.encoder_features, config.latent_dim).init(ke, y)["params"]
        pair = jnp.concatenate([x, y], axis=-1)
        disc = {"d": PatchDiscriminator(config.discriminator_features).init(kd, pair)["params"]}
        if config.model == "bicyclegan":
            disc["d2"] = PatchDiscriminator(config.discriminator_features).init(kd2, pair)["params"]
        return gen, disc

    gen, disc = jax.jit(init)(key, x[:1], y[:1])
    return TranslationState.create(config, gen, disc)


@jax.jit
def train_step(key: jax.Array, config: TranslationConfig, state: TranslationState, batch) -> TrainStep:
    """One step: discriminator(s) with the generator fixed, then generator (+ encoder) with them fixed.

    Args:
        key: randomness of this step (prior draw and reparameterisation noise).
        config: the model config.
        state: :class:`~gm.deep.translate.TranslationState` of a paired model.
        batch: ``{"input": f32[B, H, W, C_in], "target": f32[B, H, W, C_out]}``.

    Values are not checked inside the (jitted) step; instead a side's update whose batch has a pixel that
    is not finite or not in [0, 1], or whose loss or gradients are not finite, is skipped (that side's
    state is returned unchanged), and the marker is in the metrics: ``finite`` is 0.0 and ``d_loss`` and
    ``g_loss`` are NaN. The training loop stops at such a step (``experiments._common.train_loop``); check
    the data once with :func:`check_batch`.

    Returns:
        :class:`~gm.deep.train.TrainStep` ``(new state, metrics)`` with ``d_loss``, ``g_loss``, the
        generator-side terms and ``finite``.
    """
    batch = {"input": batch["input"], "target": batch["target"]}
    noise = draw_noise(key, config, batch["input"].shape[0])
    valid = jnp.all(valid_images(batch["input"])) & jnp.all(valid_images(batch["target"]))
    d_loss, d_grads = jax.value_and_grad(discriminator_loss, argnums=1)(
        config, state.disc.params, state.gen.params, batch, noise)
    disc, d_ok = apply_if_finite(state.disc, d_grads, d_loss, valid=valid)
    (g_loss, terms), g_grads = jax.value_and_grad(generator_loss, argnums=1, has_aux=True)(
        config, state.gen.params, disc.params, batch, noise
    )
    gen, g_ok = apply_if_finite(state.gen, g_grads, g_loss, valid=valid)
    metrics = mark_skipped({"d_loss": d_loss, "g_loss": g_loss, **terms}, d_ok & g_ok, "d_loss", "g_loss")
    return TrainStep(TranslationState(gen, disc), metrics)


# ------------------------------------------------------------------------------------------- inference


@jax.jit
def translate(config: TranslationConfig, state: TranslationState, x, z=None) -> jax.Array:
    """``G(x, z)`` clipped to [0, 1]: ``f32[B, H, W, C_in]``, ``f32[B, L]`` (ignored by pix2pix) -> ``f32[B, H, W, C_out]``.

    The generator's output is linear; training losses see it unclipped, images for evaluation are clipped.
    ``z = None`` means ``z = 0`` (the prior's mean).

    Examples:
        >>> y_hat = translate_paired.translate(config, state, x, z)
    """
    if z is None:
        z = jnp.zeros((x.shape[0], config.latent_dim))
    return jnp.clip(_generated(config, state.gen.params, x, z), 0.0, 1.0)


@jax.jit
def encode(config: TranslationConfig, state: TranslationState, y) -> jax.Array:
    """Encoder mean ``mu(y)``: ``f32[B, H, W, C_out] -> f32[B, L]`` (models with an encoder).

    Examples:
        >>> z = translate_paired.encode(config, state, targets)
    """
    if not config.has_encoder:
        raise ValueError(f"model {config.model!r} has no encoder")
    return _encoded(config, state.gen.params["encoder"], y)[0]


def sample(key: jax.Array, config: TranslationConfig, state: TranslationState, x, num_samples: int
           ) -> jax.Array:
    """``num_samples`` outputs per input with ``z ~ N(0, I)``: ``f32[B, H, W, C_in] -> f32[B, S, H, W, C_out]``.

    Examples:
        >>> outputs = translate_paired.sample(jax.random.key(0), config, state, x, 10)
    """
    x = jnp.asarray(x)
    zs = jax.random.normal(key, (num_samples, x.shape[0], config.latent_dim))
    return jnp.stack([translate(config, state, x, zs[s]) for s in range(num_samples)], axis=1)
