"""The GAN family as pure, jitted train steps: GAN, conditional GAN, InfoGAN and BiGAN.

A generator ``G(z)`` and a discriminator ``D(x)`` play ``max_D min_G V(G, D)`` with
``V = E_x log D(x) + E_z log(1 - D(G(z)))`` (Goodfellow et al., 2014). Training alternates two steps, each
a pure function of the state that changes only one player:

* :func:`discriminator_step`: G fixed, one optimiser step of D on real images and fresh fakes;
* :func:`generator_step`: D fixed, one optimiser step of G (and of BiGAN's encoder);
* :func:`train_step`: ``config.d_steps`` discriminator steps, then one generator step; jitted once per
  config (the config is a static field of the state).

The adversarial losses are the named functions of :mod:`gm.deep.gan_losses` (``config.loss`` picks minimax,
non-saturating or least squares). The models:

* ``"gan"``: ``G(z)``, ``D(x)``; an MLP or a small DCGAN (strided-conv D; a G that upsamples by resize or
  pixel shuffle, then convolves), optionally with batch normalisation (``normalization="batch"``).
* ``"cgan"`` (Mirza and Osindero, 2014): ``G(z, y)`` sees the one-hot label (in every dense layer with
  ``condition_every_layer``); ``D(x, y)`` either concatenates the one-hot label to its input
  (``conditioning="concat"``) or is a projection discriminator (Miyato and Koyama, 2018):
  ``logit = psi(phi(x)) + <embed(y), phi(x)>``.
* ``"infogan"`` (Chen et al., 2016): ``G(z, c)`` with a categorical code ``c_1`` of ``n_categories`` values
  and ``n_continuous`` codes ``c_2 ~ U(-1, 1)``; a head ``Q(c | x)`` on the discriminator's trunk (a
  categorical distribution and a diagonal Gaussian). The mutual information ``I(c; G(z, c))`` is bounded
  below by ``H(c) + E log Q(c | G(z, c))``; both players add ``info_weight`` times the negative bound (up to
  the constant ``H(c)``; :func:`mutual_information_loss`) to their loss, so D's step trains Q with the trunk
  and G's step makes the codes readable.
* ``"bigan"`` (Donahue et al., 2017; ALI, Dumoulin et al., 2017): an encoder ``E(x)``; D sees pairs and
  tells ``(x, E(x))`` (real) from ``(G(z), z)`` (fake); G and E minimise :func:`bigan_generator_loss`.

Images are ``f32[B, H, W, C]`` in [0, 1]; G ends in a sigmoid and D and E read ``2 x - 1``.

Example:
    >>> import jax
    >>> from gm import data
    >>> from gm.deep import gan
    >>> ds = data.mnist()
    >>> batch = {"image": ds.train.images[:64], "label": ds.train.labels[:64]}
    >>> config = gan.GANConfig(model="cgan")
    >>> state = gan.create_state(jax.random.key(0), config, batch)
    >>> state, metrics = gan.train_step(state, batch, jax.random.key(1))
    >>> images = gan.generate(state, jax.random.key(2), 10, labels=jax.numpy.arange(10))  # f32[10, 28, 28, 1]
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from gm.deep import gan_losses, networks
from gm.deep.train import TrainState, make_optimizer

__all__ = [
    "MODELS",
    "GANConfig",
    "Latent",
    "DiscriminatorOutput",
    "Generator",
    "Discriminator",
    "Encoder",
    "GANState",
    "categorical_code_loss",
    "continuous_code_loss",
    "mutual_information_loss",
    "bigan_discriminator_loss",
    "bigan_generator_loss",
    "sample_latent",
    "generate_images",
    "generate_inference",
    "generate_from_latent",
    "BatchNorm",
    "discriminate",
    "encode_images",
    "discriminator_loss_fn",
    "generator_loss_fn",
    "create_state",
    "discriminator_step",
    "generator_step",
    "train_step",
    "generate",
    "encode",
    "reconstruct",
    "predict_codes",
]

MODELS = ("gan", "cgan", "infogan", "bigan")
_LOG_2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True)
class GANConfig:
    """Model, loss and optimiser settings (frozen and hashable: a static field of the train states).

    Attributes:
        model: ``"gan"``, ``"cgan"``, ``"infogan"`` or ``"bigan"``.
        architecture: ``"mlp"`` (dense G, D, E) or ``"dcgan"`` (4x4 stride-2 convolutions in D, 3x3 stride-2
            in BiGAN's E; a G that upsamples by ``upsample`` + 3x3 conv), the InfoGAN paper's MNIST layout:
            G = dense ``generator_hidden`` -> dense to a ``generator_features[0]``-channel map -> one
            (upsample x2, conv) stage per further ``generator_features`` entry -> (upsample x2, conv) to the
            image; D = convolutions ``discriminator_features`` -> dense ``discriminator_hidden[-1]``.
        latent_dim: dimension of the noise ``z`` (for InfoGAN the incompressible noise, codes excluded).
        generator_hidden: dense widths of the MLP generator (DCGAN: the dense layers before the first
            feature map).
        discriminator_hidden: dense widths of the MLP discriminator trunk; the last is the feature
            dimension of ``phi(x)`` (DCGAN: only the last is used, after the convolutions).
        encoder_hidden: dense widths of BiGAN's MLP encoder (DCGAN: the last, after the convolutions).
        generator_features: channels of the DCGAN generator's feature maps (coarse to fine); the image is
            ``2^len(generator_features)`` times the first map's size.
        upsample: DCGAN generator's upsampling, ``"resize"`` (nearest neighbour, then a 3x3 conv) or
            ``"pixel_shuffle"`` (a 3x3 conv to 4x the channels, then depth-to-space).
        normalization: ``"none"`` or ``"batch"``: DCGAN batch normalisation after every G layer but the last,
            after D's convolutions but the first and its dense layer, and in Q's hidden layer (as in the
            InfoGAN paper). It always normalises with batch statistics (no running averages): D sees real
            and fake batches in separate calls, and inference (:func:`generate`, :func:`generate_from_latent`)
            normalises G's layers with the statistics of a fixed reference batch of latents, so a sample does
            not depend on the others generated with it. ``predict_codes`` and ``discriminate`` use the
            statistics of the images given (pass tens of images or more).
        discriminator_features: channels of the stride-2 conv stages of the DCGAN discriminator/encoder.
        generator_act, discriminator_act: activation names (:func:`gm.deep.networks.activation`).
        discriminator_dropout: dropout in the discriminator's dense layers during training.
        loss: adversarial loss, one of :data:`gm.deep.gan_losses.KINDS`.
        d_steps: discriminator steps per generator step in :func:`train_step`.
        n_classes: number of labels of the conditional GAN.
        conditioning: cGAN discriminator: ``"concat"`` (one-hot label joins the input) or ``"projection"``.
        condition_every_layer: feed the generator's condition (label or codes; BiGAN's ``z`` and the
            concat cGAN's label in D) to every dense layer of the MLPs, not only the first.
        n_categories: values of InfoGAN's categorical code.
        n_continuous: number of InfoGAN's continuous codes ``U(-1, 1)``.
        info_weight: weight ``lambda`` of InfoGAN's mutual-information term.
        continuous_weight: relative weight of the continuous codes' Gaussian term inside it.
        learn_continuous_std: Q's Gaussian for the continuous codes learns its standard deviation; the
            default fixes it at 1 (the term is then a squared error, whose gradient stays bounded).
        info_trains_trunk: in D's step, the mutual-information term trains the shared trunk as well as Q's
            head; ``False`` lets it train only the head, so the trunk's features stay those that tell real
            from fake and G must put the codes into features D finds realistic.
        q_hidden: width of the dense layer of Q's head on the discriminator trunk.
        generator_learning_rate, discriminator_learning_rate, b1, b2: Adam settings (BiGAN's encoder uses
            the generator's).
        image_shape: ``(H, W, C)``; filled in by :func:`create_state` from the example batch.
    """

    model: str = "gan"
    architecture: str = "mlp"
    latent_dim: int = 64
    generator_hidden: tuple[int, ...] = (256, 512)
    discriminator_hidden: tuple[int, ...] = (512, 256)
    encoder_hidden: tuple[int, ...] = (512, 256)
    generator_features: tuple[int, ...] = (64, 32)
    discriminator_features: tuple[int, ...] = (32, 64)
    upsample: str = "resize"
    normalization: str = "none"
    generator_act: str = "relu"
    discriminator_act: str = "leaky_relu"
    discriminator_dropout: float = 0.0
    loss: str = "non_saturating"
    d_steps: int = 1
    n_classes: int = 10
    conditioning: str = "projection"
    condition_every_layer: bool = True
    n_categories: int = 10
    n_continuous: int = 2
    info_weight: float = 1.0
    continuous_weight: float = 1.0
    learn_continuous_std: bool = False
    info_trains_trunk: bool = True
    q_hidden: int = 128
    generator_learning_rate: float = 2e-4
    discriminator_learning_rate: float = 2e-4
    b1: float = 0.5
    b2: float = 0.999
    image_shape: tuple[int, int, int] | None = None

    def __post_init__(self):
        checks = {
            "model": (self.model, MODELS),
            "architecture": (self.architecture, ("mlp", "dcgan")),
            "loss": (self.loss, gan_losses.KINDS),
            "conditioning": (self.conditioning, ("concat", "projection")),
            "upsample": (self.upsample, ("resize", "pixel_shuffle")),
            "normalization": (self.normalization, ("none", "batch")),
        }
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"GANConfig.{name} must be one of {allowed}, got {value!r}")
        positive = {"latent_dim": self.latent_dim, "d_steps": self.d_steps, "n_classes": self.n_classes,
                    "n_categories": self.n_categories, "q_hidden": self.q_hidden}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"GANConfig.{name} must be positive, got {value}")
        if self.n_continuous < 0:
            raise ValueError(f"GANConfig.n_continuous must be >= 0, got {self.n_continuous}")
        if not self.discriminator_hidden:
            raise ValueError("GANConfig.discriminator_hidden must name at least one width (the feature size)")
        if self.architecture == "dcgan" and not self.generator_features:
            raise ValueError("GANConfig.generator_features must name at least one width for architecture='dcgan'")
        if self.normalization == "batch" and self.architecture != "dcgan":
            raise ValueError("GANConfig.normalization='batch' needs architecture='dcgan', "
                             f"got architecture={self.architecture!r}")
        networks.activation(self.generator_act)
        networks.activation(self.discriminator_act)


class Latent(NamedTuple):
    """The generator's inputs for a batch of ``B`` samples (fields a model does not use are ``None``).

    Attributes:
        z: ``f32[B, latent_dim]`` noise, ``N(0, I)``.
        labels: ``int32[B]`` cGAN labels.
        categorical: ``int32[B]`` InfoGAN categorical code.
        continuous: ``f32[B, n_continuous]`` InfoGAN continuous codes, ``U(-1, 1)``.
    """

    z: jax.Array
    labels: jax.Array | None = None
    categorical: jax.Array | None = None
    continuous: jax.Array | None = None


class DiscriminatorOutput(NamedTuple):
    """What the discriminator computes for a batch of ``B`` images.

    Attributes:
        logits: ``f32[B]`` real-vs-fake logits (scores for the least-squares loss).
        features: ``f32[B, F]`` the trunk's features ``phi(x)``.
        categorical_logits: ``f32[B, n_categories]`` InfoGAN's ``Q(c_1 | x)`` logits (else ``None``).
        continuous_mean: ``f32[B, n_continuous]`` mean of InfoGAN's Gaussian ``Q(c_2 | x)``.
        continuous_log_std: ``f32[B, n_continuous]`` its log standard deviation.
    """

    logits: jax.Array
    features: jax.Array
    categorical_logits: jax.Array | None = None
    continuous_mean: jax.Array | None = None
    continuous_log_std: jax.Array | None = None


# -------------------------------------------------------------------------------------------- networks


def _generator_condition(config: GANConfig, latent: Latent):
    if config.model == "cgan":
        if latent.labels is None:
            raise ValueError("a conditional GAN (model='cgan') needs latent.labels")
        return jax.nn.one_hot(latent.labels, config.n_classes)
    if config.model == "infogan":
        if latent.categorical is None:
            raise ValueError("an InfoGAN needs latent.categorical")
        parts = [jax.nn.one_hot(latent.categorical, config.n_categories)]
        if config.n_continuous:
            parts.append(latent.continuous)
        return jnp.concatenate(parts, axis=-1)
    return None


class BatchNorm(nn.Module):
    """Batch normalisation with batch statistics, ``f32[B, ..., F] -> f32[B, ..., F]``.

    ``y = (x - mean) / sqrt(var + eps) * scale + bias`` with the mean and variance over every axis but the
    last, taken over the first ``reference`` rows only when ``reference > 0`` (reference batch
    normalisation, Salimans et al., 2016: rows after the reference are normalised with its statistics and
    do not influence each other) and over the whole batch otherwise.
    """

    reference: int = 0
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x):
        axes = tuple(range(x.ndim - 1))
        ref = x[: self.reference] if self.reference else x
        mean = jnp.mean(ref, axis=axes)
        var = jnp.mean(jnp.square(ref - mean), axis=axes)
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
        return (x - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias


def _normalize(config, reference=0, name=None):
    """A batch-norm layer when ``config.normalization == "batch"``, else the identity."""
    if config.normalization == "batch":
        return BatchNorm(reference, name=name)
    return lambda h: h


class _ConvGenerator(nn.Module):
    """The DCGAN generator: dense layers, a coarse map, (upsample x2, 3x3 conv) stages; logits of the image."""

    config: GANConfig
    reference: int = 0

    @nn.compact
    def __call__(self, z, condition=None):
        c = self.config
        act = networks.activation(c.generator_act)
        height, width, channels = c.image_shape
        stages = len(c.generator_features)
        if height % 2**stages or width % 2**stages:
            raise ValueError(f"image_shape {c.image_shape} is not divisible by 2^{stages} "
                             f"(len(GANConfig.generator_features) = {stages})")
        h = z if condition is None else jnp.concatenate([z, condition.astype(z.dtype)], axis=-1)
        for f in c.generator_hidden:
            h = act(_normalize(c, self.reference)(nn.Dense(f)(h)))
        h0, w0, f0 = height // 2**stages, width // 2**stages, c.generator_features[0]
        h = act(_normalize(c, self.reference)(nn.Dense(h0 * w0 * f0)(h)))
        h = h.reshape(z.shape[0], h0, w0, f0)
        outs = (*c.generator_features[1:], channels)
        for i, f in enumerate(outs):
            if c.upsample == "resize":
                h = nn.Conv(f, (3, 3), padding="SAME")(networks.upsample_resize(h, 2))
            else:
                h = networks.pixel_shuffle(nn.Conv(4 * f, (3, 3), padding="SAME")(h), 2)
            if i < len(outs) - 1:
                h = act(_normalize(c, self.reference)(h))
        return h


class _ConvTrunk(nn.Module):
    """The DCGAN discriminator's trunk ``phi(x)``: 4x4 stride-2 convolutions, then a dense layer (activated)."""

    config: GANConfig

    @nn.compact
    def __call__(self, x, condition=None, *, train: bool = False):
        c = self.config
        act = networks.activation(c.discriminator_act)
        h = x
        for i, f in enumerate(c.discriminator_features):
            h = nn.Conv(f, (4, 4), strides=(2, 2), padding="SAME")(h)
            h = act(h if i == 0 else _normalize(c)(h))  # no normalisation on the image layer (DCGAN)
        h = h.reshape(h.shape[0], -1)
        if condition is not None:
            h = jnp.concatenate([h, condition.astype(h.dtype)], axis=-1)
        if c.discriminator_dropout > 0:
            h = nn.Dropout(c.discriminator_dropout, deterministic=not train)(h)
        return act(_normalize(c)(nn.Dense(c.discriminator_hidden[-1])(h)))


class Generator(nn.Module):
    """``z f32[B, L]`` (+ condition ``f32[B, D]``) -> images ``f32[B, H, W, C]`` in (0, 1).

    ``reference``: with batch normalisation, the number of leading rows whose statistics normalise the
    whole batch (0: the whole batch's own statistics, as in training).
    """

    config: GANConfig
    reference: int = 0

    @nn.compact
    def __call__(self, z, condition=None):
        c = self.config
        if c.architecture == "mlp":
            net = networks.MLPDecoder(c.generator_hidden, c.image_shape, c.generator_act, 0.0,
                                      c.condition_every_layer)
        else:
            net = _ConvGenerator(c, self.reference)
        return nn.sigmoid(net(z, condition))


class Discriminator(nn.Module):
    """``x f32[B, H, W, C]`` (+ cGAN labels ``int32[B]``, BiGAN ``z f32[B, L]``) -> :class:`DiscriminatorOutput`."""

    config: GANConfig

    @nn.compact
    def __call__(self, x, labels=None, z=None, *, train: bool = False):
        c = self.config
        act = networks.activation(c.discriminator_act)
        extra = []
        if c.model == "cgan":
            if labels is None:
                raise ValueError("a conditional GAN's discriminator needs labels")
            if c.conditioning == "concat":
                extra.append(jax.nn.one_hot(labels, c.n_classes))
        if c.model == "bigan":
            if z is None:
                raise ValueError("a BiGAN's discriminator needs z (pairs (x, z))")
            extra.append(z)
        condition = jnp.concatenate(extra, axis=-1) if extra else None
        h = 2.0 * x - 1.0
        width = c.discriminator_hidden[-1]
        if c.architecture == "mlp":
            trunk = networks.MLPEncoder(c.discriminator_hidden[:-1], width, c.discriminator_act,
                                        c.discriminator_dropout, c.condition_every_layer, name="trunk")
            phi = act(trunk(h, condition, train=train))
        else:
            phi = _ConvTrunk(c, name="trunk")(h, condition, train=train)
        logits = nn.Dense(1, name="logit")(phi)[:, 0]
        if c.model == "cgan" and c.conditioning == "projection":
            embedding = nn.Embed(c.n_classes, width, name="label_embedding")(labels)
            logits = logits + jnp.sum(embedding * phi, axis=-1)
        if c.model != "infogan":
            return DiscriminatorOutput(logits, phi)
        q = act(_normalize(c, name="q_norm")(nn.Dense(c.q_hidden, name="q_hidden")(phi)))
        categorical = nn.Dense(c.n_categories, name="q_categorical")(q)
        mean = log_std = None
        if c.n_continuous:
            mean = nn.Dense(c.n_continuous, name="q_mean")(q)
            if c.learn_continuous_std:
                log_std = jnp.clip(nn.Dense(c.n_continuous, name="q_log_std")(q), -5.0, 2.0)
            else:
                log_std = jnp.zeros_like(mean)
        return DiscriminatorOutput(logits, phi, categorical, mean, log_std)


class Encoder(nn.Module):
    """BiGAN's encoder ``x f32[B, H, W, C] -> z f32[B, latent_dim]`` (deterministic)."""

    config: GANConfig

    @nn.compact
    def __call__(self, x):
        c = self.config
        h = 2.0 * x - 1.0
        if c.architecture == "mlp":
            return networks.MLPEncoder(c.encoder_hidden, c.latent_dim, c.discriminator_act)(h)
        return networks.ConvEncoder(c.discriminator_features, c.encoder_hidden[-1:], c.latent_dim,
                                    c.discriminator_act)(h)


# ---------------------------------------------------------------------------------------------- losses


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
        mean, log_std, codes: ``f32[B, n_continuous]``.
    """
    if not mean.shape == log_std.shape == codes.shape:
        raise ValueError(f"mean, log_std and codes must share a shape, got {mean.shape}, {log_std.shape}, "
                         f"{codes.shape}")
    nll = 0.5 * _LOG_2PI + log_std + 0.5 * jnp.square(codes - mean) * jnp.exp(-2.0 * log_std)
    return jnp.mean(jnp.sum(nll, axis=-1))


def mutual_information_loss(output: DiscriminatorOutput, latent: Latent, *, continuous_weight: float = 1.0):
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
    """BiGAN's discriminator loss: pairs ``(x, E(x))`` are real, ``(G(z), z)`` fake (:func:`gan_losses.discriminator_loss`)."""
    return gan_losses.discriminator_loss(real_logits, fake_logits, kind=kind)


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
        kind: one of :data:`gm.deep.gan_losses.KINDS`.
    """
    if kind == "minimax":
        return -gan_losses.minimax_discriminator_loss(real_logits, fake_logits)
    return gan_losses.discriminator_loss(fake_logits, real_logits, kind=kind)


# ----------------------------------------------------------------------------------- pure model functions


def sample_latent(key: jax.Array, config: GANConfig, n: int, *, labels=None, categorical=None,
                  continuous=None) -> Latent:
    """Draw the generator's inputs: ``z ~ N(0, I)`` and the model's labels or codes.

    Args:
        key: a ``jax.random`` key.
        config: the model config.
        n: batch size.
        labels: ``int32[n]`` cGAN labels (default: uniform over ``n_classes``).
        categorical: ``int32[n]`` InfoGAN categorical codes (default: uniform).
        continuous: ``f32[n, n_continuous]`` InfoGAN continuous codes (default: ``U(-1, 1)``).

    Returns:
        A :class:`Latent`; fields the model does not use are ``None``.
    """
    k_z, k_y, k_c, k_u = jax.random.split(key, 4)
    z = jax.random.normal(k_z, (n, config.latent_dim))
    if config.model == "cgan":
        labels = jax.random.randint(k_y, (n,), 0, config.n_classes) if labels is None else jnp.asarray(labels)
        if labels.shape != (n,):
            raise ValueError(f"labels must be int32[{n}], got shape {labels.shape}")
        return Latent(z, labels=labels)
    if config.model == "infogan":
        if categorical is None:
            categorical = jax.random.randint(k_c, (n,), 0, config.n_categories)
        if continuous is None:
            continuous = jax.random.uniform(k_u, (n, config.n_continuous), minval=-1.0, maxval=1.0)
        categorical, continuous = jnp.asarray(categorical), jnp.asarray(continuous, jnp.float32)
        if categorical.shape != (n,) or continuous.shape != (n, config.n_continuous):
            raise ValueError(f"categorical must be [{n}] and continuous [{n}, {config.n_continuous}], got "
                             f"{categorical.shape} and {continuous.shape}")
        return Latent(z, categorical=categorical, continuous=continuous)
    return Latent(z)


def generate_images(params, config: GANConfig, latent: Latent) -> jax.Array:
    """``G(z, condition)``: ``f32[B, H, W, C]`` images in (0, 1) from generator parameters (as in training:
    with batch normalisation, the batch's own statistics; :func:`generate_from_latent` for inference)."""
    return Generator(config).apply({"params": params}, latent.z, _generator_condition(config, latent))


_REFERENCE_SIZE = 256


def _reference_latent(config: GANConfig) -> Latent:
    """A fixed batch of latents drawn from the prior; its statistics normalise G's layers at inference."""
    return sample_latent(jax.random.key(20160612), config, _REFERENCE_SIZE)


def generate_inference(params, config: GANConfig, latent: Latent) -> jax.Array:
    """``G(z, condition)`` for inference: like :func:`generate_images`, but with batch normalisation G's
    layers are normalised with the statistics of a fixed reference batch of latents, so each image depends
    only on its own latent. Without normalisation the two functions agree."""
    if config.normalization != "batch":
        return generate_images(params, config, latent)
    ref = _reference_latent(config)
    both = jax.tree.map(lambda a, b: jnp.concatenate([a, b.astype(a.dtype)], axis=0), ref, latent)
    images = Generator(config, reference=_REFERENCE_SIZE).apply(
        {"params": params}, both.z, _generator_condition(config, both))
    return images[_REFERENCE_SIZE:]


def discriminate(params, config: GANConfig, images, *, labels=None, z=None, dropout_key=None
                 ) -> DiscriminatorOutput:
    """Run the discriminator (with dropout when ``dropout_key`` is given and the config has some).

    Args:
        params: discriminator parameters.
        config: the model config.
        images: ``f32[B, H, W, C]`` in [0, 1].
        labels: ``int32[B]`` (cGAN).
        z: ``f32[B, latent_dim]`` (BiGAN: the latent half of each pair).
        dropout_key: a key to train with dropout; ``None`` evaluates deterministically.
    """
    train = dropout_key is not None
    rngs = {"dropout": dropout_key} if train else {}
    return Discriminator(config).apply({"params": params}, images, labels, z, train=train, rngs=rngs)


def encode_images(params, config: GANConfig, images) -> jax.Array:
    """BiGAN's ``E(x)``: ``f32[B, H, W, C] -> f32[B, latent_dim]`` from encoder parameters."""
    return Encoder(config).apply({"params": params}, images)


def _concat(a, b):
    return None if a is None else jnp.concatenate([a, b], axis=0)


def _discriminate_pair(params, config, real, fake, *, real_labels=None, fake_labels=None, real_z=None,
                       fake_z=None, dropout_key=None):
    """D on real and fake batches in one call (one dispatch); returns ``(real_output, fake_output)``.

    With batch normalisation the two batches go through D separately, each normalised by its own statistics.
    """
    if config.normalization == "batch":
        real_out = discriminate(params, config, real, labels=real_labels, z=real_z, dropout_key=dropout_key)
        fake_out = discriminate(params, config, fake, labels=fake_labels, z=fake_z, dropout_key=dropout_key)
        return real_out, fake_out
    n = real.shape[0]
    out = discriminate(params, config, jnp.concatenate([real, fake], axis=0),
                       labels=_concat(real_labels, fake_labels), z=_concat(real_z, fake_z), dropout_key=dropout_key)
    real_out = jax.tree.map(lambda a: a[:n], out)
    fake_out = jax.tree.map(lambda a: a[n:], out)
    return real_out, fake_out


def _decision_threshold(config):
    return 0.5 if config.loss == "least_squares" else 0.0


def _check_batch(config: GANConfig, batch):
    images = batch["image"]
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(config.image_shape):
        raise ValueError(f"batch['image'] must be [B, {', '.join(map(str, config.image_shape))}], "
                         f"got shape {images.shape}")
    if config.model == "cgan" and "label" not in batch:
        raise ValueError("a conditional GAN needs batch['label']")


def _batch_latent(key, config, batch):
    """Latent inputs for a training step: the cGAN's fakes take the real batch's labels (same class mix)."""
    labels = batch["label"] if config.model == "cgan" else None
    return sample_latent(key, config, batch["image"].shape[0], labels=labels)


def discriminator_loss_fn(d_params, g_params, e_params, config: GANConfig, batch, latent: Latent,
                          dropout_key=None):
    """The discriminator's loss as a function of its parameters, G (and E) held fixed.

    GAN and cGAN: ``gan_losses.discriminator_loss(D(x), D(G(z)))``; BiGAN: the same on the pairs
    ``(x, E(x))`` and ``(G(z), z)``; InfoGAN adds ``info_weight *`` :func:`mutual_information_loss` on
    the fakes (trains Q's head and the shared trunk).

    Returns:
        ``(loss f32[], metrics dict)``.
    """
    x = batch["image"]
    fake = jax.lax.stop_gradient(generate_images(g_params, config, latent))
    real_z = None
    if config.model == "bigan":
        real_z = jax.lax.stop_gradient(encode_images(e_params, config, x))
    real_labels = batch["label"] if config.model == "cgan" else None
    real_out, fake_out = _discriminate_pair(d_params, config, x, fake, real_labels=real_labels,
                                            fake_labels=latent.labels, real_z=real_z, fake_z=latent.z,
                                            dropout_key=dropout_key)
    adversarial = gan_losses.discriminator_loss(real_out.logits, fake_out.logits, kind=config.loss)
    loss = adversarial
    threshold = _decision_threshold(config)
    metrics = {
        "d_adversarial": adversarial,
        "d_real_accuracy": jnp.mean(real_out.logits > threshold),
        "d_fake_accuracy": jnp.mean(fake_out.logits < threshold),
    }
    if config.model == "infogan":
        q_out = fake_out
        if not config.info_trains_trunk:  # Q's head reads the trunk's features without training them
            head_only = {**d_params, "trunk": jax.lax.stop_gradient(d_params["trunk"])}
            q_out = discriminate(head_only, config, fake, dropout_key=dropout_key)
        info = mutual_information_loss(q_out, latent, continuous_weight=config.continuous_weight)
        loss = loss + config.info_weight * info
        metrics["d_info"] = info
    metrics["d_loss"] = loss
    return loss, metrics


def generator_loss_fn(g_params, e_params, d_params, config: GANConfig, batch, latent: Latent, dropout_key=None):
    """The generator's (and BiGAN's encoder's) loss as a function of their parameters, D held fixed.

    GAN and cGAN: ``gan_losses.generator_loss(D(G(z)))``; InfoGAN adds ``info_weight *``
    :func:`mutual_information_loss`; BiGAN: :func:`bigan_generator_loss` on both kinds of pairs.

    Returns:
        ``(loss f32[], metrics dict)``.
    """
    d_params = jax.lax.stop_gradient(d_params)
    fake = generate_images(g_params, config, latent)
    metrics = {}
    if config.model == "bigan":
        x = batch["image"]
        real_out, fake_out = _discriminate_pair(d_params, config, x, fake, real_z=encode_images(e_params, config, x),
                                                fake_z=latent.z, dropout_key=dropout_key)
        loss = bigan_generator_loss(real_out.logits, fake_out.logits, kind=config.loss)
        metrics["g_adversarial"] = loss
    else:
        fake_out = discriminate(d_params, config, fake, labels=latent.labels, dropout_key=dropout_key)
        loss = gan_losses.generator_loss(fake_out.logits, kind=config.loss)
        metrics["g_adversarial"] = loss
        if config.model == "infogan":
            info = mutual_information_loss(fake_out, latent, continuous_weight=config.continuous_weight)
            loss = loss + config.info_weight * info
            metrics["g_info"] = info
            metrics["q_categorical_accuracy"] = jnp.mean(
                jnp.argmax(fake_out.categorical_logits, -1) == latent.categorical)
    metrics["g_loss"] = loss
    return loss, metrics


# ------------------------------------------------------------------------------------------ train state


@flax.struct.dataclass
class GANState:
    """The players' train states in one pytree.

    Attributes:
        generator: :class:`~gm.deep.train.TrainState` of G (its ``config`` is the :class:`GANConfig`).
        discriminator: train state of D (for InfoGAN including Q's head).
        encoder: train state of BiGAN's E (``None`` for the other models).
    """

    generator: TrainState
    discriminator: TrainState
    encoder: TrainState | None = None

    @property
    def config(self) -> GANConfig:
        return self.generator.config

    @property
    def step(self) -> jax.Array:
        """Number of generator steps taken."""
        return self.generator.step


def create_state(key: jax.Array, config: GANConfig, example_batch) -> GANState:
    """Initialise the players' parameters and Adam optimisers from an example batch.

    Args:
        key: initialisation key.
        config: the model config; ``image_shape`` is taken from the batch when ``None``.
        example_batch: ``{"image": f32[B, H, W, C], "label": int32[B]}`` (labels only for the cGAN).

    Returns:
        A :class:`GANState` whose config has ``image_shape`` set.
    """
    images = jnp.asarray(example_batch["image"])
    if images.ndim != 4:
        raise ValueError(f"example_batch['image'] must be [B, H, W, C], got shape {images.shape}")
    if config.image_shape is None:
        config = dataclasses.replace(config, image_shape=tuple(int(s) for s in images.shape[1:]))
    _check_batch(config, example_batch)
    g_params, d_params, e_params = _init_params(config, key, images[:1])

    def optimizer(lr):
        return make_optimizer(lr, b1=config.b1, b2=config.b2)

    g_tx, d_tx = optimizer(config.generator_learning_rate), optimizer(config.discriminator_learning_rate)
    encoder = None if e_params is None else TrainState.create(e_params, g_tx, config)
    return GANState(TrainState.create(g_params, g_tx, config), TrainState.create(d_params, d_tx, config), encoder)


@functools.partial(jax.jit, static_argnums=0)
def _init_params(config: GANConfig, key, x):
    """All players' initial parameters in one compiled program (eager flax init compiles op by op)."""
    k_g, k_d, k_e, k_latent = jax.random.split(key, 4)
    latent = sample_latent(k_latent, config, 1)
    g_params = Generator(config).init(k_g, latent.z, _generator_condition(config, latent))["params"]
    d_params = Discriminator(config).init(k_d, x, latent.labels, latent.z if config.model == "bigan" else None)
    e_params = Encoder(config).init(k_e, x)["params"] if config.model == "bigan" else None
    return g_params, d_params["params"], e_params


def _step_inputs(state: GANState, batch, key):
    """Checks the batch; draws the step's latent inputs and dropout key; BiGAN's encoder parameters."""
    config = state.config
    _check_batch(config, batch)
    k_latent, k_drop = jax.random.split(key)
    latent = _batch_latent(k_latent, config, batch)
    dropout_key = k_drop if config.discriminator_dropout > 0 else None
    e_params = None if state.encoder is None else state.encoder.params
    return config, latent, dropout_key, e_params


def _discriminator_step(state: GANState, batch, key):
    config, latent, dropout_key, e_params = _step_inputs(state, batch, key)
    grads, metrics = jax.grad(discriminator_loss_fn, has_aux=True)(
        state.discriminator.params, state.generator.params, e_params, config, batch, latent, dropout_key)
    return state.replace(discriminator=state.discriminator.apply_gradients(grads)), metrics


def _generator_step(state: GANState, batch, key):
    config, latent, dropout_key, e_params = _step_inputs(state, batch, key)
    grad_fn = jax.grad(generator_loss_fn, argnums=(0, 1), has_aux=True)
    (g_grads, e_grads), metrics = grad_fn(state.generator.params, e_params, state.discriminator.params, config,
                                          batch, latent, dropout_key)
    new = state.replace(generator=state.generator.apply_gradients(g_grads))
    if state.encoder is not None:
        new = new.replace(encoder=state.encoder.apply_gradients(e_grads))
    return new, metrics


@jax.jit
def discriminator_step(state: GANState, batch, key: jax.Array):
    """One optimiser step of the discriminator (and InfoGAN's Q head) with G and E fixed.

    Draws fresh noise (and for the cGAN gives the fakes the batch's labels), generates fakes with the
    current G and descends :func:`discriminator_loss_fn`. Pure and jitted; G's and E's states are returned
    unchanged (the same arrays).

    Args:
        state: a :class:`GANState`.
        batch: ``{"image": f32[B, H, W, C] in [0, 1], "label": int32[B]}`` (labels only for the cGAN).
        key: randomness of this step (noise, codes, dropout).

    Returns:
        ``(new_state, metrics)``: ``d_loss``, ``d_adversarial``, ``d_real_accuracy``, ``d_fake_accuracy``
        (fractions of real / fake examples on the right side of the decision threshold), ``d_info``.
    """
    return _discriminator_step(state, batch, key)


@jax.jit
def generator_step(state: GANState, batch, key: jax.Array):
    """One optimiser step of the generator (and BiGAN's encoder) with D fixed.

    Args:
        state: a :class:`GANState`.
        batch: as in :func:`discriminator_step` (the BiGAN encodes its images; the cGAN uses its labels).
        key: randomness of this step.

    Returns:
        ``(new_state, metrics)``: ``g_loss``, ``g_adversarial``, for InfoGAN ``g_info`` and
        ``q_categorical_accuracy`` (Q recovers the code of a fake).
    """
    return _generator_step(state, batch, key)


@jax.jit
def train_step(state: GANState, batch, key: jax.Array):
    """``config.d_steps`` discriminator steps, then one generator step; pure and jitted once per config.

    Every discriminator step sees the same real batch with fresh noise; the generator step draws fresh
    noise again. Metrics are those of the last discriminator step and of the generator step.
    """
    keys = jax.random.split(key, state.config.d_steps + 1)
    metrics = {}
    for i in range(state.config.d_steps):
        state, metrics = _discriminator_step(state, batch, keys[i])
    state, g_metrics = _generator_step(state, batch, keys[-1])
    return state, {**metrics, **g_metrics}


# ------------------------------------------------------------------------------------------- inference


@functools.partial(jax.jit, static_argnums=1)
def _generate(params, config, latent):
    return generate_inference(params, config, latent)


def generate_from_latent(state: GANState, latent: Latent) -> jax.Array:
    """Images ``f32[B, H, W, C]`` for given latent inputs (e.g. one code swept with the others fixed), with
    inference-time normalisation (:func:`generate_inference`)."""
    return _generate(state.generator.params, state.config, latent)


def generate(state: GANState, key: jax.Array, n: int, *, labels=None, categorical=None, continuous=None):
    """``n`` samples ``G(z, ...)`` with ``z ~ N(0, I)``: ``f32[n, H, W, C]`` in (0, 1).

    Args:
        state: a (trained) :class:`GANState`.
        key: a ``jax.random`` key.
        n: number of samples.
        labels, categorical, continuous: fixed labels (cGAN) or codes (InfoGAN); see :func:`sample_latent`.
    """
    latent = sample_latent(key, state.config, n, labels=labels, categorical=categorical, continuous=continuous)
    return _generate(state.generator.params, state.config, latent)


@functools.partial(jax.jit, static_argnums=1)
def _encode(params, config, images):
    return encode_images(params, config, images)


def encode(state: GANState, images) -> jax.Array:
    """BiGAN's ``E(x)``: ``f32[N, H, W, C] -> f32[N, latent_dim]``."""
    if state.encoder is None:
        raise ValueError(f"only a BiGAN has an encoder, this state's model is {state.config.model!r}")
    return _encode(state.encoder.params, state.config, jnp.asarray(images))


def reconstruct(state: GANState, images) -> jax.Array:
    """BiGAN's ``G(E(x))``: ``f32[N, H, W, C]`` images."""
    z = encode(state, images)
    return _generate(state.generator.params, state.config, Latent(z))


@functools.partial(jax.jit, static_argnums=1)
def _q_logits(params, config, images):
    return discriminate(params, config, images).categorical_logits


def predict_codes(state: GANState, images) -> jax.Array:
    """InfoGAN's ``Q(c_1 | x)`` logits ``f32[N, n_categories]`` of images (real or generated)."""
    if state.config.model != "infogan":
        raise ValueError(f"only an InfoGAN has a Q head, this state's model is {state.config.model!r}")
    return _q_logits(state.discriminator.params, state.config, jnp.asarray(images))
