"""The GAN family's config, latent inputs and flax networks, and the functions that apply them.

* :class:`GANConfig`: every static setting of a GAN, conditional GAN, InfoGAN or BiGAN (model,
  architecture, loss, optimisers); :class:`Latent`: the generator's inputs; :func:`sample_latent` draws
  them from the prior.
* :class:`Generator` ``G(z, condition)``, :class:`Discriminator` ``D(x (, y) (, z))`` (with InfoGAN's
  ``Q`` head on its trunk; a :class:`DiscriminatorOutput`), :class:`Encoder` ``E(x)`` (BiGAN): MLPs from
  :mod:`gm.deep.networks`, or the DCGAN layout with optional batch normalisation
  (:class:`gm.deep.networks.BatchNorm`).
* :func:`generate_images`, :func:`generate_inference`, :func:`discriminate`, :func:`encode_images`: the
  networks as pure functions of ``(config, params, inputs)``.

The training steps and the trained model's use are in :mod:`gm.deep.gan`, which re-exports the config and
the latent types.

Example:
    >>> import jax
    >>> from gm.deep import gan_networks
    >>> config = gan_networks.GANConfig(model="infogan")
    >>> latent = gan_networks.sample_latent(jax.random.key(0), config, 8)   # z, categorical, continuous
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gm.deep import gan_losses, networks
from gm.deep.train import check_choices, check_learning_rates, static_config

__all__ = [
    "MODELS",
    "GANConfig",
    "Latent",
    "DiscriminatorOutput",
    "generator_condition",
    "Generator",
    "Discriminator",
    "Encoder",
    "sample_latent",
    "generate_images",
    "generate_inference",
    "discriminate",
    "encode_images",
]

MODELS = ("gan", "cgan", "infogan", "bigan")


@static_config
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
        image_shape: ``(H, W, C)`` of the images (default: MNIST's); :func:`gm.deep.gan.create_state` checks
            the example batch against it.
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
    image_shape: tuple[int, int, int] = (28, 28, 1)

    def __post_init__(self):
        check_learning_rates(self, "generator_learning_rate", "discriminator_learning_rate")
        object.__setattr__(self, "image_shape", tuple(int(d) for d in self.image_shape))
        check_choices(self, {"model": MODELS, "architecture": ("mlp", "dcgan"), "loss": gan_losses.KINDS,
                             "conditioning": ("concat", "projection"), "upsample": ("resize", "pixel_shuffle"),
                             "normalization": ("none", "batch")})
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


def generator_condition(config: GANConfig, latent: Latent) -> jax.Array | None:
    """The generator's condition vector ``f32[B, D]`` from a latent: the cGAN's one-hot label, InfoGAN's
    one-hot categorical code joined to its continuous codes; ``None`` for the GAN and the BiGAN.

    Examples:
        >>> condition = generator_condition(config, sample_latent(jax.random.key(0), config, 4))
    """
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


def _normalize(config, reference=0, name=None):
    """A batch-norm layer when ``config.normalization == "batch"``, else the identity."""
    if config.normalization == "batch":
        return networks.BatchNorm(reference, name=name)
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



# ----------------------------------------------------------------------------------- applying the networks


def sample_latent(key: jax.Array, config: GANConfig, num_samples: int, *, labels=None, categorical=None,
                  continuous=None) -> Latent:
    """Draw the generator's inputs: ``z ~ N(0, I)`` and the model's labels or codes.

    Args:
        key: a ``jax.random`` key.
        config: the model config.
        num_samples: batch size ``n``.
        labels: ``int32[n]`` cGAN labels (default: uniform over ``n_classes``).
        categorical: ``int32[n]`` InfoGAN categorical codes (default: uniform).
        continuous: ``f32[n, n_continuous]`` InfoGAN continuous codes (default: ``U(-1, 1)``).

    Returns:
        A :class:`Latent`; fields the model does not use are ``None``.

    Examples:
        >>> latent = sample_latent(jax.random.key(0), config, 10, labels=jnp.arange(10))   # cGAN
    """
    n = num_samples
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


def generate_images(config: GANConfig, params, latent: Latent) -> jax.Array:
    """``G(z, condition)``: ``f32[B, H, W, C]`` images in (0, 1) from generator parameters (as in training:
    with batch normalisation, the batch's own statistics; :func:`generate_inference` for inference).

    Examples:
        >>> fakes = generate_images(config, state.generator.params, latent)
    """
    return Generator(config).apply({"params": params}, latent.z, generator_condition(config, latent))


_REFERENCE_SIZE = 256


def _reference_latent(config: GANConfig) -> Latent:
    """A fixed batch of latents drawn from the prior; its statistics normalise G's layers at inference."""
    return sample_latent(jax.random.key(20160612), config, _REFERENCE_SIZE)


def generate_inference(config: GANConfig, params, latent: Latent) -> jax.Array:
    """``G(z, condition)`` for inference: like :func:`generate_images`, but with batch normalisation G's
    layers are normalised with the statistics of a fixed reference batch of latents, so each image depends
    only on its own latent. Without normalisation the two functions agree.

    Examples:
        >>> images = generate_inference(config, state.generator.params, latent)
    """
    if config.normalization != "batch":
        return generate_images(config, params, latent)
    ref = _reference_latent(config)
    both = jax.tree.map(lambda a, b: jnp.concatenate([a, b.astype(a.dtype)], axis=0), ref, latent)
    images = Generator(config, reference=_REFERENCE_SIZE).apply(
        {"params": params}, both.z, generator_condition(config, both))
    return images[_REFERENCE_SIZE:]


def discriminate(config: GANConfig, params, images, *, labels=None, z=None, dropout_key=None
                 ) -> DiscriminatorOutput:
    """Run the discriminator (with dropout when ``dropout_key`` is given and the config has some).

    Args:
        config: the model config.
        params: discriminator parameters.
        images: ``f32[B, H, W, C]`` in [0, 1].
        labels: ``int32[B]`` (cGAN).
        z: ``f32[B, latent_dim]`` (BiGAN: the latent half of each pair).
        dropout_key: a key to train with dropout; ``None`` evaluates deterministically.
    """
    train = dropout_key is not None
    rngs = {"dropout": dropout_key} if train else {}
    return Discriminator(config).apply({"params": params}, images, labels, z, train=train, rngs=rngs)


def encode_images(config: GANConfig, params, images) -> jax.Array:
    """BiGAN's ``E(x)``: ``f32[B, H, W, C] -> f32[B, latent_dim]`` from encoder parameters.

    Examples:
        >>> z = encode_images(config, state.encoder.params, images)
    """
    return Encoder(config).apply({"params": params}, images)
