"""Image-to-image translation: CycleGAN (unpaired) and the pix2pix / BicycleGAN family (paired, multimodal).

Every model is a pair of :class:`gm.deep.train.TrainState` objects in a :class:`TranslationState`: the
generator side (generator, and the latent encoder where the model has one) and the discriminator side.
One :func:`train_step` (paired family) or :func:`cyclegan_train_step` updates the discriminators with the
generators fixed, then the generators (and encoder) with the updated discriminators fixed; both are pure
and jitted, traced once per config. Every loss is a named function of parameters, a batch and explicit
noise (:class:`Noise`), so a test can recompute it by hand from the networks' outputs.

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

CycleGAN (Zhu et al., 2017; ``batch = {"a": a, "b": b}``, unpaired): two U-Net generators ``G_AB``,
``G_BA``, two unconditional PatchGANs ``D_A``, ``D_B``, least-squares GAN loss, cycle loss weight 10 and
identity loss weight ``0.5 * 10``. Differences from the reference: U-Net rather than ResNet generators, no
image pool for the discriminators, no normalisation layers (small images, small batches).

Example:
    >>> import jax, numpy as np
    >>> from gm.deep import translate
    >>> config = translate.TranslationConfig(model="bicyclegan", in_channels=1, out_channels=3)
    >>> batch = {"input": np.zeros((4, 16, 16, 1), np.float32), "target": np.zeros((4, 16, 16, 3), np.float32)}
    >>> state = translate.create_state(jax.random.key(0), config, batch)
    >>> state, metrics = translate.train_step(state, batch, jax.random.key(1))
    >>> translate.sample(jax.random.key(2), state, batch["input"], 5).shape
    (4, 5, 16, 16, 3)
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp

from gm.deep import gan_losses
from gm.deep.train import TrainState, make_optimizer
from gm.deep.translate_networks import LatentEncoder, PatchDiscriminator, UNetGenerator

__all__ = [
    "PAIRED_MODELS",
    "TranslationConfig",
    "CycleGANConfig",
    "TranslationState",
    "Noise",
    "l1_loss",
    "kl_divergence_loss",
    "latent_regression_loss",
    "cycle_consistency_loss",
    "identity_loss",
    "pix2pix_loss",
    "cae_gan_loss",
    "cvae_gan_loss",
    "clr_gan_loss",
    "bicyclegan_latent_term",
    "bicyclegan_loss",
    "generator_loss",
    "discriminator_loss",
    "cyclegan_generator_loss",
    "cyclegan_discriminator_loss",
    "draw_noise",
    "learning_rate_schedule",
    "create_state",
    "create_cyclegan_state",
    "train_step",
    "cyclegan_train_step",
    "translate",
    "encode",
    "sample",
    "cyclegan_translate",
]

PAIRED_MODELS = ("pix2pix", "pix2pix_noise", "cae_gan", "cvae_gan", "clr_gan", "bicyclegan")


def _tuple(x):
    return tuple(int(v) for v in x)


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
            object.__setattr__(self, name, _tuple(getattr(self, name)))

    @property
    def uses_noise(self) -> bool:
        """Whether the generator takes a latent code."""
        return self.model != "pix2pix"

    @property
    def has_encoder(self) -> bool:
        return self.model in ("cae_gan", "cvae_gan", "clr_gan", "bicyclegan")

    @property
    def image_weight(self) -> float:
        """Weight of the L1 image term (the published default unless ``lambda_l1`` is set)."""
        if self.lambda_l1 is not None:
            return float(self.lambda_l1)
        return 100.0 if self.model in ("pix2pix", "pix2pix_noise") else 10.0


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
        if self.gan_kind not in gan_losses.KINDS:
            raise ValueError(f"gan_kind must be one of {gan_losses.KINDS}, got {self.gan_kind!r}")
        if self.lambda_identity > 0 and self.channels_a != self.channels_b:
            raise ValueError(
                f"lambda_identity > 0 needs channels_a == channels_b, got {self.channels_a} and {self.channels_b}"
            )
        if self.image_size % 2 ** len(self.generator_features):
            raise ValueError(f"image_size {self.image_size} is not divisible by 2^{len(self.generator_features)}")
        for name in ("generator_features", "discriminator_features"):
            object.__setattr__(self, name, _tuple(getattr(self, name)))


@flax.struct.dataclass
class TranslationState:
    """Generator side (``gen``: generator(s) and encoder) and discriminator side (``disc``) of a model."""

    gen: TrainState
    disc: TrainState

    @property
    def config(self):
        return self.gen.config

    @property
    def step(self):
        return self.gen.step


class Noise(NamedTuple):
    """The randomness of one paired step, drawn once and shared by the two updates.

    Attributes:
        z_random: ``f32[B, L]`` prior draw ``z ~ N(0, I)`` (cLR path, pix2pix_noise).
        eps: ``f32[B, L]`` standard normal for the reparameterised encoder sample (cVAE path).
    """

    z_random: jax.Array
    eps: jax.Array


# -------------------------------------------------------------------------------------- basic losses


def l1_loss(prediction, target):
    """Mean absolute difference ``mean |prediction - target|`` over every element."""
    if prediction.shape != target.shape:
        raise ValueError(f"prediction shape {prediction.shape} differs from target shape {target.shape}")
    return jnp.mean(jnp.abs(prediction - target))


def kl_divergence_loss(mean, log_var):
    """``KL(N(mean, exp(log_var)) || N(0, I))``, summed over latent dimensions, mean over the batch.

    ``KL = 1/2 sum_j (mean_j^2 + exp(log_var_j) - 1 - log_var_j)``; ``mean``, ``log_var``: ``f32[B, L]``.
    """
    if mean.shape != log_var.shape:
        raise ValueError(f"mean shape {mean.shape} differs from log_var shape {log_var.shape}")
    kl = 0.5 * jnp.sum(jnp.square(mean) + jnp.exp(log_var) - 1.0 - log_var, axis=-1)
    return jnp.mean(kl)


def latent_regression_loss(recovered, z):
    """``mean |E(G(x, z)) - z|``: how far the encoder's mean is from the code that made the image."""
    return l1_loss(recovered, z)


def cycle_consistency_loss(original, cycled):
    """``mean |F(G(x)) - x|`` (CycleGAN's cycle loss for one direction)."""
    return l1_loss(cycled, original)


def identity_loss(image, mapped):
    """``mean |G(y) - y|`` for ``y`` already in ``G``'s output domain (CycleGAN's identity loss)."""
    return l1_loss(mapped, image)


# ----------------------------------------------------------------------------------- network calls


def _generator(config: TranslationConfig):
    return UNetGenerator(config.generator_features, config.out_channels, config.inject)


def _encoder(config: TranslationConfig):
    return LatentEncoder(config.encoder_features, config.latent_dim)


def _discriminator(features):
    return PatchDiscriminator(features)


def _g(gen_params, config, x, z):
    return _generator(config).apply({"params": gen_params["generator"]}, x, z if config.uses_noise else None)


def _e(encoder_params, config, y):
    return _encoder(config).apply({"params": encoder_params}, y)


def _d(disc_params, name, config, x, y):
    """Conditional PatchGAN score map of the pair ``(x, y)``."""
    return _discriminator(config.discriminator_features).apply(
        {"params": disc_params[name]}, jnp.concatenate([x, y], axis=-1)
    )


def _adv_g(scores, config):
    return gan_losses.generator_loss(scores, kind=config.gan_kind)


def _adv_d(real, fake, config):
    return gan_losses.discriminator_loss(real, fake, kind=config.gan_kind)


def _check_batch(batch, config: TranslationConfig):
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


# ----------------------------------------------------------------------- paired generator-side losses


def pix2pix_loss(gen_params, disc_params, batch, noise: Noise, config: TranslationConfig):
    """pix2pix: ``GAN(D(x, G(x, z))) + lambda_l1 |G(x, z) - y|_1`` (``z`` only for ``pix2pix_noise``).

    Returns:
        ``(loss, terms)`` with ``terms = {"gan", "l1"}`` (scalars).
    """
    x, y = _check_batch(batch, config)
    fake = _g(gen_params, config, x, noise.z_random)
    gan = _adv_g(_d(disc_params, "d", config, x, fake), config)
    l1 = l1_loss(fake, y)
    return gan + config.image_weight * l1, {"gan": gan, "l1": l1}


def cae_gan_loss(gen_params, disc_params, batch, noise: Noise, config: TranslationConfig):
    """cAE-GAN: ``z = mean(E(y))`` (deterministic); ``GAN(D(x, G(x, z))) + lambda_l1 |G(x, z) - y|_1``."""
    x, y = _check_batch(batch, config)
    z, _ = _e(gen_params["encoder"], config, y)
    fake = _g(gen_params, config, x, z)
    gan = _adv_g(_d(disc_params, "d", config, x, fake), config)
    l1 = l1_loss(fake, y)
    return gan + config.image_weight * l1, {"gan": gan, "l1": l1}


def _cvae_terms(gen_params, disc_params, x, y, noise, config):
    mean, log_var = _e(gen_params["encoder"], config, y)
    z = mean + jnp.exp(0.5 * log_var) * noise.eps
    fake = _g(gen_params, config, x, z)
    return {
        "gan": _adv_g(_d(disc_params, "d", config, x, fake), config),
        "l1": l1_loss(fake, y),
        "kl": kl_divergence_loss(mean, log_var),
    }


def cvae_gan_loss(gen_params, disc_params, batch, noise: Noise, config: TranslationConfig):
    """cVAE-GAN: ``z = mu(y) + sigma(y) eps``; ``GAN + lambda_l1 |G(x, z) - y|_1 + lambda_kl KL(q(z|y) || p(z))``.

    Returns:
        ``(loss, {"gan", "l1", "kl"})``.
    """
    x, y = _check_batch(batch, config)
    t = _cvae_terms(gen_params, disc_params, x, y, noise, config)
    return t["gan"] + config.image_weight * t["l1"] + config.lambda_kl * t["kl"], t


def clr_gan_loss(gen_params, disc_params, batch, noise: Noise, config: TranslationConfig):
    """cLR-GAN: ``y_hat = G(x, z)``, ``z ~ N(0, I)``; ``GAN(D(x, y_hat)) + lambda_latent |mu(y_hat) - z|_1``.

    Both the generator and the encoder are trained by the latent term here (the model on its own).

    Returns:
        ``(loss, {"gan", "latent"})``.
    """
    x, _ = _check_batch(batch, config)
    fake = _g(gen_params, config, x, noise.z_random)
    recovered, _ = _e(gen_params["encoder"], config, fake)
    gan = _adv_g(_d(disc_params, "d", config, x, fake), config)
    latent = latent_regression_loss(recovered, noise.z_random)
    return gan + config.lambda_latent * latent, {"gan": gan, "latent": latent}


def bicyclegan_latent_term(gen_params, x, z_random, config: TranslationConfig):
    """The latent-regression term of BicycleGAN, ``|mu(G(x, z)) - z|_1``, a function of the generator only.

    The encoder's parameters pass through ``stop_gradient``: the gradient of this term with respect to them
    is exactly zero, so it updates the generator alone (as in the reference implementation).
    """
    fake = _g(gen_params, config, x, z_random)
    recovered, _ = _e(jax.lax.stop_gradient(gen_params["encoder"]), config, fake)
    return latent_regression_loss(recovered, z_random)


def bicyclegan_loss(gen_params, disc_params, batch, noise: Noise, config: TranslationConfig):
    """BicycleGAN: cVAE-GAN terms (discriminator ``d``) + cLR-GAN terms (discriminator ``d2``).

    ``GAN_vae + GAN_lr + lambda_l1 L1 + lambda_kl KL + lambda_latent |mu(G(x, z)) - z|_1`` with the last term
    flowing into the generator only (:func:`bicyclegan_latent_term`).

    Returns:
        ``(loss, {"gan", "l1", "kl", "gan_lr", "latent"})``.
    """
    x, y = _check_batch(batch, config)
    t = _cvae_terms(gen_params, disc_params, x, y, noise, config)
    fake_lr = _g(gen_params, config, x, noise.z_random)
    t["gan_lr"] = _adv_g(_d(disc_params, "d2", config, x, fake_lr), config)
    t["latent"] = bicyclegan_latent_term(gen_params, x, noise.z_random, config)
    loss = (t["gan"] + t["gan_lr"] + config.image_weight * t["l1"] + config.lambda_kl * t["kl"]
            + config.lambda_latent * t["latent"])
    return loss, t


_GENERATOR_LOSSES = {
    "pix2pix": pix2pix_loss,
    "pix2pix_noise": pix2pix_loss,
    "cae_gan": cae_gan_loss,
    "cvae_gan": cvae_gan_loss,
    "clr_gan": clr_gan_loss,
    "bicyclegan": bicyclegan_loss,
}


def generator_loss(gen_params, disc_params, batch, noise: Noise, config: TranslationConfig):
    """The generator-side loss of ``config.model`` (one of the named losses above): ``(loss, terms)``."""
    return _GENERATOR_LOSSES[config.model](gen_params, disc_params, batch, noise, config)


def _fakes(gen_params, x, y, noise, config):
    """The generated images each discriminator sees: ``{discriminator name: f32[B, H, W, C_out]}``."""
    if config.model in ("pix2pix", "pix2pix_noise", "clr_gan"):
        return {"d": _g(gen_params, config, x, noise.z_random)}
    mean, log_var = _e(gen_params["encoder"], config, y)
    z = mean if config.model == "cae_gan" else mean + jnp.exp(0.5 * log_var) * noise.eps
    fakes = {"d": _g(gen_params, config, x, z)}
    if config.model == "bicyclegan":
        fakes["d2"] = _g(gen_params, config, x, noise.z_random)
    return fakes


def discriminator_loss(disc_params, gen_params, batch, noise: Noise, config: TranslationConfig):
    """Sum over the model's discriminators of ``GAN_D(D(x, y), D(x, y_fake))`` with the generator fixed.

    Returns:
        The scalar loss (``d`` for every model; plus ``d2`` on the cLR path for BicycleGAN).
    """
    x, y = _check_batch(batch, config)
    fakes = jax.lax.stop_gradient(_fakes(gen_params, x, y, noise, config))
    total = 0.0
    for name, fake in fakes.items():
        total = total + _adv_d(_d(disc_params, name, config, x, y), _d(disc_params, name, config, x, fake), config)
    return total


# ------------------------------------------------------------------------------- paired state, steps


def draw_noise(key: jax.Array, config: TranslationConfig, batch_size: int) -> Noise:
    """Draw the prior code and the reparameterisation noise of one step."""
    k1, k2 = jax.random.split(key)
    shape = (batch_size, config.latent_dim)
    return Noise(jax.random.normal(k1, shape), jax.random.normal(k2, shape))


def learning_rate_schedule(config: TranslationConfig):
    """The learning rate of both sides: a float, or a schedule ``step -> rate`` when ``config.decay_steps > 0``.

    Constant ``learning_rate`` for the first ``total_steps - decay_steps`` steps, then linear to 0 at
    ``total_steps`` (and 0 after).
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


def _adam(config):
    return make_optimizer(learning_rate_schedule(config), b1=config.b1, b2=config.b2)


def create_state(key: jax.Array, config: TranslationConfig, example_batch) -> TranslationState:
    """Initialise generator (+ encoder) and discriminator(s) of ``config.model`` from an example batch.

    Args:
        key: initialisation key.
        config: the model.
        example_batch: ``{"input": f32[B, H, W, C_in], "target": f32[B, H, W, C_out]}``.
    """
    x, y = _check_batch({k: jnp.asarray(v) for k, v in example_batch.items()}, config)

    def init(key, x, y):  # one compilation instead of one per parameter initialiser
        kg, ke, kd, kd2 = jax.random.split(key, 4)
        z = jnp.zeros((x.shape[0], config.latent_dim)) if config.uses_noise else None
        gen = {"generator": _generator(config).init(kg, x, z)["params"]}
        if config.has_encoder:
            gen["encoder"] = _encoder(config).init(ke, y)["params"]
        pair = jnp.concatenate([x, y], axis=-1)
        disc = {"d": _discriminator(config.discriminator_features).init(kd, pair)["params"]}
        if config.model == "bicyclegan":
            disc["d2"] = _discriminator(config.discriminator_features).init(kd2, pair)["params"]
        return gen, disc

    gen, disc = jax.jit(init)(key, x[:1], y[:1])
    return _new_state(gen, disc, config)


def _new_state(gen, disc, config) -> TranslationState:
    return TranslationState(TrainState.create(gen, _adam(config), config), TrainState.create(disc, _adam(config), config))


@jax.jit
def train_step(state: TranslationState, batch, key: jax.Array):
    """One step: discriminator(s) with the generator fixed, then generator (+ encoder) with them fixed.

    Args:
        state: :class:`TranslationState` of a paired model.
        batch: ``{"input": f32[B, H, W, C_in], "target": f32[B, H, W, C_out]}``.
        key: randomness of this step (prior draw and reparameterisation noise).

    Returns:
        ``(new state, metrics)`` with ``d_loss``, ``g_loss`` and the generator-side terms.
    """
    config = state.gen.config
    batch = {"input": batch["input"], "target": batch["target"]}
    noise = draw_noise(key, config, batch["input"].shape[0])
    d_loss, d_grads = jax.value_and_grad(discriminator_loss)(state.disc.params, state.gen.params, batch, noise, config)
    disc = state.disc.apply_gradients(d_grads)
    (g_loss, terms), g_grads = jax.value_and_grad(generator_loss, has_aux=True)(
        state.gen.params, disc.params, batch, noise, config
    )
    gen = state.gen.apply_gradients(g_grads)
    return TranslationState(gen, disc), {"d_loss": d_loss, "g_loss": g_loss, **terms}


@jax.jit
def translate(state: TranslationState, x, z=None):
    """``G(x, z)`` clipped to [0, 1]: ``f32[B, H, W, C_in]``, ``f32[B, L]`` (ignored by pix2pix) -> ``f32[B, H, W, C_out]``.

    The generator's output is linear; training losses see it unclipped, images for evaluation are clipped.
    """
    config = state.gen.config
    if z is None:
        z = jnp.zeros((x.shape[0], config.latent_dim))
    return jnp.clip(_g(state.gen.params, config, x, z), 0.0, 1.0)


@jax.jit
def encode(state: TranslationState, y):
    """Encoder mean ``mu(y)``: ``f32[B, H, W, C_out] -> f32[B, L]`` (models with an encoder)."""
    config = state.gen.config
    if not config.has_encoder:
        raise ValueError(f"model {config.model!r} has no encoder")
    return _e(state.gen.params["encoder"], config, y)[0]


def sample(key: jax.Array, state: TranslationState, x, n_samples: int):
    """``n_samples`` outputs per input with ``z ~ N(0, I)``: ``f32[B, H, W, C_in] -> f32[B, S, H, W, C_out]``."""
    config = state.gen.config
    x = jnp.asarray(x)
    zs = jax.random.normal(key, (n_samples, x.shape[0], config.latent_dim))
    return jnp.stack([translate(state, x, zs[s]) for s in range(n_samples)], axis=1)


# ------------------------------------------------------------------------------------------ CycleGAN


def _cycle_g(gen_params, name, config: CycleGANConfig, x):
    out = config.channels_b if name == "g_ab" else config.channels_a
    return UNetGenerator(config.generator_features, out, "input").apply({"params": gen_params[name]}, x)


def _cycle_d(disc_params, name, config: CycleGANConfig, x):
    return _discriminator(config.discriminator_features).apply({"params": disc_params[name]}, x)


def _check_unpaired(batch, config: CycleGANConfig):
    a, b = batch["a"], batch["b"]
    s = config.image_size
    if a.ndim != 4 or a.shape[1:] != (s, s, config.channels_a):
        raise ValueError(f"batch['a'] must be [B, {s}, {s}, {config.channels_a}], got shape {a.shape}")
    if b.ndim != 4 or b.shape[1:] != (s, s, config.channels_b):
        raise ValueError(f"batch['b'] must be [B, {s}, {s}, {config.channels_b}], got shape {b.shape}")
    return a, b


def cyclegan_generator_loss(gen_params, disc_params, batch, config: CycleGANConfig):
    """CycleGAN's generator loss with the discriminators fixed.

    ``GAN(D_B(G_AB(a))) + GAN(D_A(G_BA(b))) + lambda_cycle (|G_BA(G_AB(a)) - a|_1 + |G_AB(G_BA(b)) - b|_1)
    + lambda_identity lambda_cycle (|G_BA(a) - a|_1 + |G_AB(b) - b|_1)``.

    Returns:
        ``(loss, {"gan_ab", "gan_ba", "cycle_a", "cycle_b", "identity_a", "identity_b"})``.
    """
    a, b = _check_unpaired(batch, config)
    fake_b = _cycle_g(gen_params, "g_ab", config, a)
    fake_a = _cycle_g(gen_params, "g_ba", config, b)
    t = {
        "gan_ab": gan_losses.generator_loss(_cycle_d(disc_params, "d_b", config, fake_b), kind=config.gan_kind),
        "gan_ba": gan_losses.generator_loss(_cycle_d(disc_params, "d_a", config, fake_a), kind=config.gan_kind),
        "cycle_a": cycle_consistency_loss(a, _cycle_g(gen_params, "g_ba", config, fake_b)),
        "cycle_b": cycle_consistency_loss(b, _cycle_g(gen_params, "g_ab", config, fake_a)),
    }
    loss = t["gan_ab"] + t["gan_ba"] + config.lambda_cycle * (t["cycle_a"] + t["cycle_b"])
    if config.lambda_identity > 0:
        t["identity_a"] = identity_loss(a, _cycle_g(gen_params, "g_ba", config, a))
        t["identity_b"] = identity_loss(b, _cycle_g(gen_params, "g_ab", config, b))
        loss = loss + config.lambda_identity * config.lambda_cycle * (t["identity_a"] + t["identity_b"])
    return loss, t


def cyclegan_discriminator_loss(disc_params, gen_params, batch, config: CycleGANConfig):
    """``GAN_D(D_A(a), D_A(G_BA(b))) + GAN_D(D_B(b), D_B(G_AB(a)))`` with the generators fixed."""
    a, b = _check_unpaired(batch, config)
    fake_b = jax.lax.stop_gradient(_cycle_g(gen_params, "g_ab", config, a))
    fake_a = jax.lax.stop_gradient(_cycle_g(gen_params, "g_ba", config, b))
    d_a = gan_losses.discriminator_loss(_cycle_d(disc_params, "d_a", config, a),
                                        _cycle_d(disc_params, "d_a", config, fake_a), kind=config.gan_kind)
    d_b = gan_losses.discriminator_loss(_cycle_d(disc_params, "d_b", config, b),
                                        _cycle_d(disc_params, "d_b", config, fake_b), kind=config.gan_kind)
    return d_a + d_b


def create_cyclegan_state(key: jax.Array, config: CycleGANConfig, example_batch) -> TranslationState:
    """Initialise ``G_AB``, ``G_BA`` (generator side) and ``D_A``, ``D_B`` from ``{"a": ..., "b": ...}``."""
    a, b = _check_unpaired({k: jnp.asarray(v) for k, v in example_batch.items()}, config)

    def init(key, a, b):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        gen = {
            "g_ab": UNetGenerator(config.generator_features, config.channels_b, "input").init(k1, a)["params"],
            "g_ba": UNetGenerator(config.generator_features, config.channels_a, "input").init(k2, b)["params"],
        }
        disc = {
            "d_a": _discriminator(config.discriminator_features).init(k3, a)["params"],
            "d_b": _discriminator(config.discriminator_features).init(k4, b)["params"],
        }
        return gen, disc

    gen, disc = jax.jit(init)(key, a[:1], b[:1])
    return _new_state(gen, disc, config)


@jax.jit
def cyclegan_train_step(state: TranslationState, batch, key: Any = None):
    """One CycleGAN step: generators with the discriminators fixed, then discriminators on the new fakes.

    The order is the reference implementation's (G, then D); there is no image pool. ``key`` is accepted
    for a uniform step signature and unused (the step is deterministic).

    Returns:
        ``(new state, metrics)`` with ``g_loss``, ``d_loss`` and the generator terms.
    """
    del key
    config = state.gen.config
    batch = {"a": batch["a"], "b": batch["b"]}
    (g_loss, terms), g_grads = jax.value_and_grad(cyclegan_generator_loss, has_aux=True)(
        state.gen.params, state.disc.params, batch, config
    )
    gen = state.gen.apply_gradients(g_grads)
    d_loss, d_grads = jax.value_and_grad(cyclegan_discriminator_loss)(state.disc.params, gen.params, batch, config)
    disc = state.disc.apply_gradients(d_grads)
    return TranslationState(gen, disc), {"g_loss": g_loss, "d_loss": d_loss, **terms}


def cyclegan_translate(state: TranslationState, images, *, direction: str = "ab"):
    """``G_AB(a)`` (``direction="ab"``) or ``G_BA(b)`` (``"ba"``) for ``f32[B, H, W, C]`` images, clipped to [0, 1]."""
    if direction not in ("ab", "ba"):
        raise ValueError(f"direction must be 'ab' or 'ba', got {direction!r}")
    return _cyclegan_apply(state, jnp.asarray(images), "g_" + direction)


@jax.jit
def _cyclegan_apply_ab(state, images):
    return _cycle_g(state.gen.params, "g_ab", state.gen.config, images)


@jax.jit
def _cyclegan_apply_ba(state, images):
    return _cycle_g(state.gen.params, "g_ba", state.gen.config, images)


def _cyclegan_apply(state, images, name):
    out = (_cyclegan_apply_ab if name == "g_ab" else _cyclegan_apply_ba)(state, images)
    return jnp.clip(out, 0.0, 1.0)
