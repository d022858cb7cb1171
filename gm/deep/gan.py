"""The GAN family as pure, jitted train steps: GAN, conditional GAN, InfoGAN and BiGAN.

A generator ``G(z)`` and a discriminator ``D(x)`` play ``max_D min_G V(G, D)`` with
``V = E_x log D(x) + E_z log(1 - D(G(z)))`` (Goodfellow et al., 2014). Training alternates two steps, each
a pure function of the state that changes only one player:

* :func:`discriminator_step`: G fixed, one optimiser step of D on real images and fresh fakes;
* :func:`generator_step`: D fixed, one optimiser step of G (and of BiGAN's encoder);
* :func:`train_step`: ``config.d_steps`` discriminator steps, then one generator step; jitted once per
  config (a static pytree: every function here takes it first, or right after the key).

The adversarial losses are the named functions of :mod:`gm.deep.gan_losses` (``config.loss`` picks minimax,
non-saturating or least squares); the config, the latent inputs and the networks are in
:mod:`gm.deep.gan_networks` (the config and latent types are re-exported here). The models:

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
  the constant ``H(c)``; :func:`gm.deep.gan_losses.mutual_information_loss`) to their loss, so D's step trains
  Q with the trunk and G's step makes the codes readable.
* ``"bigan"`` (Donahue et al., 2017; ALI, Dumoulin et al., 2017): an encoder ``E(x)``; D sees pairs and
  tells ``(x, E(x))`` (real) from ``(G(z), z)`` (fake); G and E minimise
  :func:`gm.deep.gan_losses.bigan_generator_loss`.

Images are ``f32[B, H, W, C]`` in [0, 1]; G ends in a sigmoid and D and E read ``2 x - 1``.

Values (issue 18): :func:`check_batch` is the training loop's check of the data (pixels finite in [0, 1],
cGAN labels in range); the jitted steps skip and flag an update whose batch, loss or gradients are bad
(``finite`` 0.0, the player's loss NaN), so the shared runner stops there.

Length: about 530 lines. The four models share every step, loss and state helper here; their networks
and losses already live apart (:mod:`gm.deep.gan_networks`, :mod:`gm.deep.gan_losses`).

Example:
    >>> import jax
    >>> from gm import data
    >>> from gm.deep import gan
    >>> ds = data.mnist()
    >>> batch = {"image": ds.train.images[:64], "label": ds.train.labels[:64]}
    >>> config = gan.GANConfig(model="cgan")   # image_shape (28, 28, 1)
    >>> state = gan.create_state(jax.random.key(0), config, batch)
    >>> state, metrics = gan.train_step(jax.random.key(1), config, state, batch)
    >>> images = gan.generate(jax.random.key(2), config, state, 10, labels=jax.numpy.arange(10))  # f32[10, 28, 28, 1]
"""

from __future__ import annotations

from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp

from gm.deep import gan_losses
from gm.deep.gan_losses import bigan_generator_loss, mutual_information_loss
from gm.deep.gan_networks import (
    MODELS,
    DiscriminatorOutput,
    Discriminator,
    Encoder,
    GANConfig,
    Generator,
    Latent,
    discriminate,
    encode_images,
    generate_images,
    generate_inference,
    generator_condition,
    sample_latent,
)
from gm.deep.train import (LossAndMetrics, TrainState, TrainStep, apply_if_finite, check_images, check_labels,
                           make_optimizer, mark_skipped, valid_images)

__all__ = [
    # re-exported from gm.deep.gan_networks
    "MODELS",
    "GANConfig",
    "Latent",
    "DiscriminatorOutput",
    "sample_latent",
    # defined here
    "DiscriminatorPair",
    "discriminate_pair",
    "discriminator_loss_fn",
    "generator_loss_fn",
    "GANState",
    "check_batch",
    "create_state",
    "discriminator_step",
    "generator_step",
    "train_step",
    "generate",
    "generate_from_latent",
    "encode",
    "reconstruct",
    "predict_codes",
]


# ----------------------------------------------------------------------------------- losses of the players


class DiscriminatorPair(NamedTuple):
    """The discriminator's outputs on a real and a fake batch (:func:`discriminate_pair`)."""

    real: DiscriminatorOutput
    fake: DiscriminatorOutput


def _concat(a, b):
    return None if a is None else jnp.concatenate([a, b], axis=0)


def discriminate_pair(config: GANConfig, params, real, fake, *, real_labels=None, fake_labels=None, real_z=None,
                      fake_z=None, dropout_key=None) -> DiscriminatorPair:
    """D on a real and a fake batch in one call (one dispatch): :func:`~gm.deep.gan_networks.discriminate` of
    both, concatenated along the batch axis and split again.

    With batch normalisation the two batches go through D separately, each normalised by its own statistics
    (D must not tell real from fake by batch statistics shared between them).

    Args:
        config: the model config.
        params: discriminator parameters.
        real: ``f32[B, H, W, C]`` real images.
        fake: ``f32[B, H, W, C]`` generated images.
        real_labels: ``int32[B]`` labels of the real images (cGAN).
        fake_labels: ``int32[B]`` labels the fakes were generated for (cGAN).
        real_z: ``f32[B, latent_dim]`` the latent half of the real pairs, ``E(x)`` (BiGAN).
        fake_z: ``f32[B, latent_dim]`` the latent half of the fake pairs, ``z`` (BiGAN).
        dropout_key: a key to train with dropout; ``None`` evaluates deterministically.

    Returns:
        A :class:`DiscriminatorPair` ``(real, fake)`` of :class:`DiscriminatorOutput`.

    Examples:
        >>> out = gan.discriminate_pair(config, state.discriminator.params, images, fakes)
        >>> out.real.logits.shape == out.fake.logits.shape
        True
    """
    if config.normalization == "batch":
        real_out = discriminate(config, params, real, labels=real_labels, z=real_z, dropout_key=dropout_key)
        fake_out = discriminate(config, params, fake, labels=fake_labels, z=fake_z, dropout_key=dropout_key)
        return DiscriminatorPair(real_out, fake_out)
    n = real.shape[0]
    out = discriminate(config, params, jnp.concatenate([real, fake], axis=0),
                       labels=_concat(real_labels, fake_labels), z=_concat(real_z, fake_z), dropout_key=dropout_key)
    real_out = jax.tree.map(lambda a: a[:n], out)
    fake_out = jax.tree.map(lambda a: a[n:], out)
    return DiscriminatorPair(real_out, fake_out)


def _decision_threshold(config):
    return 0.5 if config.loss == "least_squares" else 0.0


def _check_batch(config: GANConfig, batch, name="batch"):
    images = batch["image"]
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(config.image_shape):
        raise ValueError(f"{name}['image'] must be [B, {', '.join(map(str, config.image_shape))}] "
                         f"(GANConfig.image_shape), got shape {images.shape}")
    if config.model == "cgan" and "label" not in batch:
        raise ValueError(f"a conditional GAN needs {name}['label']")


def check_batch(config: GANConfig, batch) -> None:
    """The training loop's check of a batch (or the whole training set), once per epoch or run: the images
    have ``config.image_shape`` and every pixel is finite and in [0, 1]; a cGAN's labels are class indices
    in ``[0, n_classes)``. ``ValueError`` naming the pixel (or label), its value and the image; eager, or
    compiled under `gm.validation.checked`. :func:`train_step` itself skips an invalid batch (see there).

    Args:
        config: the model config.
        batch: ``{"image": f32[B, H, W, C], "label": int32[B]}`` (labels only for the cGAN).

    Returns:
        None.

    Examples:
        >>> gan.check_batch(config, {"image": images * 255})   # ValueError: ... must be finite and in [0, 1] ...
    """
    _check_batch(config, {**batch, "image": jnp.asarray(batch["image"])})
    check_images(batch["image"], "batch['image']")
    if config.model == "cgan":
        check_labels(batch["label"], config.n_classes, "batch['label']")


def _valid_batch(config: GANConfig, batch) -> jax.Array:
    """bool[]: every pixel finite and in [0, 1], and (cGAN) every label in ``[0, n_classes)``."""
    ok = jnp.all(valid_images(batch["image"]))
    if config.model == "cgan":
        ok = ok & jnp.all((batch["label"] >= 0) & (batch["label"] < config.n_classes))
    return ok


def _batch_latent(key, config, batch):
    """Latent inputs for a training step: the cGAN's fakes take the real batch's labels (same class mix)."""
    labels = batch["label"] if config.model == "cgan" else None
    return sample_latent(key, config, batch["image"].shape[0], labels=labels)


def discriminator_loss_fn(config: GANConfig, d_params, g_params, e_params, batch, latent: Latent, *,
                          dropout_key=None) -> LossAndMetrics:
    """The discriminator's loss as a function of its parameters, G (and E) held fixed.

    GAN and cGAN: ``gan_losses.discriminator_loss(D(x), D(G(z)))``; BiGAN: the same on the pairs
    ``(x, E(x))`` and ``(G(z), z)``; InfoGAN adds ``info_weight *``
    :func:`~gm.deep.gan_losses.mutual_information_loss` on the fakes (trains Q's head and the shared trunk).

    Args:
        config: the model config.
        d_params: the discriminator's parameters (differentiated).
        g_params: the generator's parameters.
        e_params: BiGAN's encoder parameters (``None`` for the other models).
        batch: ``{"image": f32[B, H, W, C], "label": int32[B]}``.
        latent: the fakes' :class:`Latent` inputs.
        dropout_key: a key to train with dropout.

    Returns:
        :class:`~gm.deep.train.LossAndMetrics` ``(loss f32[], metrics dict)``.
    """
    x = batch["image"]
    fake = jax.lax.stop_gradient(generate_images(config, g_params, latent))
    real_z = None
    if config.model == "bigan":
        real_z = jax.lax.stop_gradient(encode_images(config, e_params, x))
    real_labels = batch["label"] if config.model == "cgan" else None
    real_out, fake_out = discriminate_pair(config, d_params, x, fake, real_labels=real_labels,
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
            q_out = discriminate(config, head_only, fake, dropout_key=dropout_key)
        info = mutual_information_loss(q_out, latent, continuous_weight=config.continuous_weight)
        loss = loss + config.info_weight * info
        metrics["d_info"] = info
    metrics["d_loss"] = loss
    return LossAndMetrics(loss, metrics)


def generator_loss_fn(config: GANConfig, g_params, e_params, d_params, batch, latent: Latent, *,
                      dropout_key=None) -> LossAndMetrics:
    """The generator's (and BiGAN's encoder's) loss as a function of their parameters, D held fixed.

    GAN and cGAN: ``gan_losses.generator_loss(D(G(z)))``; InfoGAN adds ``info_weight *``
    :func:`~gm.deep.gan_losses.mutual_information_loss`; BiGAN:
    :func:`~gm.deep.gan_losses.bigan_generator_loss` on both kinds of pairs.

    Args:
        config: the model config.
        g_params: the generator's parameters (differentiated).
        e_params: BiGAN's encoder parameters (differentiated; ``None`` for the other models).
        d_params: the discriminator's parameters.
        batch: ``{"image": f32[B, H, W, C], "label": int32[B]}``.
        latent: the fakes' :class:`Latent` inputs.
        dropout_key: a key to train with dropout.

    Returns:
        :class:`~gm.deep.train.LossAndMetrics` ``(loss f32[], metrics dict)``.
    """
    d_params = jax.lax.stop_gradient(d_params)
    fake = generate_images(config, g_params, latent)
    metrics = {}
    if config.model == "bigan":
        x = batch["image"]
        real_out, fake_out = discriminate_pair(config, d_params, x, fake, real_z=encode_images(config, e_params, x),
                                               fake_z=latent.z, dropout_key=dropout_key)
        loss = bigan_generator_loss(real_out.logits, fake_out.logits, kind=config.loss)
        metrics["g_adversarial"] = loss
    else:
        fake_out = discriminate(config, d_params, fake, labels=latent.labels, dropout_key=dropout_key)
        loss = gan_losses.generator_loss(fake_out.logits, kind=config.loss)
        metrics["g_adversarial"] = loss
        if config.model == "infogan":
            info = mutual_information_loss(fake_out, latent, continuous_weight=config.continuous_weight)
            loss = loss + config.info_weight * info
            metrics["g_info"] = info
            metrics["q_categorical_accuracy"] = jnp.mean(
                jnp.argmax(fake_out.categorical_logits, -1) == latent.categorical)
    metrics["g_loss"] = loss
    return LossAndMetrics(loss, metrics)


# ------------------------------------------------------------------------------------------ train state


@flax.struct.dataclass
class GANState:
    """The players' train states in one pytree.

    Attributes:
        generator: :class:`~gm.deep.train.TrainState` of G.
        discriminator: train state of D (for InfoGAN including Q's head).
        encoder: train state of BiGAN's E (``None`` for the other models).
    """

    generator: TrainState
    discriminator: TrainState
    encoder: TrainState | None = None

    @property
    def step(self) -> jax.Array:
        """Number of generator steps taken."""
        return self.generator.step


def create_state(key: jax.Array, config: GANConfig, example_batch) -> GANState:
    """Initialise the players' parameters and Adam optimisers from an example batch.

    Args:
        key: initialisation key.
        config: the model config.
        example_batch: ``{"image": f32[B, H, W, C], "label": int32[B]}`` (labels only for the cGAN); the
            images must have ``config.image_shape``.

    Returns:
        A :class:`GANState`.

    Examples:
        >>> state = gan.create_state(jax.random.key(0), gan.GANConfig(), {"image": images[:8]})
    """
    images = jnp.asarray(example_batch["image"])
    _check_batch(config, {**example_batch, "image": images}, "example_batch")
    g_params, d_params, e_params = _init_params(key, config, images[:1])

    def optimizer(lr):
        return make_optimizer(lr, b1=config.b1, b2=config.b2)

    g_tx, d_tx = optimizer(config.generator_learning_rate), optimizer(config.discriminator_learning_rate)
    encoder = None if e_params is None else TrainState.create(e_params, g_tx)
    return GANState(TrainState.create(g_params, g_tx), TrainState.create(d_params, d_tx), encoder)


@jax.jit
def _init_params(key, config: GANConfig, x):
    """All players' initial parameters in one compiled program (eager flax init compiles op by op)."""
    k_g, k_d, k_e, k_latent = jax.random.split(key, 4)
    latent = sample_latent(k_latent, config, 1)
    g_params = Generator(config).init(k_g, latent.z, generator_condition(config, latent))["params"]
    d_params = Discriminator(config).init(k_d, x, latent.labels, latent.z if config.model == "bigan" else None)
    e_params = Encoder(config).init(k_e, x)["params"] if config.model == "bigan" else None
    return g_params, d_params["params"], e_params


def _step_inputs(key, config: GANConfig, state: GANState, batch):
    """Checks the batch; draws the step's latent inputs and dropout key; BiGAN's encoder parameters."""
    _check_batch(config, batch)
    k_latent, k_drop = jax.random.split(key)
    latent = _batch_latent(k_latent, config, batch)
    dropout_key = k_drop if config.discriminator_dropout > 0 else None
    e_params = None if state.encoder is None else state.encoder.params
    return latent, dropout_key, e_params


def _discriminator_step(key, config: GANConfig, state: GANState, batch) -> TrainStep:
    latent, dropout_key, e_params = _step_inputs(key, config, state, batch)
    grads, metrics = jax.grad(discriminator_loss_fn, argnums=1, has_aux=True)(
        config, state.discriminator.params, state.generator.params, e_params, batch, latent,
        dropout_key=dropout_key)
    loss = metrics["d_loss"]
    discriminator, ok = apply_if_finite(state.discriminator, grads, loss, valid=_valid_batch(config, batch))
    return TrainStep(state.replace(discriminator=discriminator), mark_skipped(metrics, ok, "d_loss"))


def _generator_step(key, config: GANConfig, state: GANState, batch) -> TrainStep:
    latent, dropout_key, e_params = _step_inputs(key, config, state, batch)
    grad_fn = jax.grad(generator_loss_fn, argnums=(1, 2), has_aux=True)
    (g_grads, e_grads), metrics = grad_fn(config, state.generator.params, e_params, state.discriminator.params,
                                          batch, latent, dropout_key=dropout_key)
    valid = _valid_batch(config, batch)
    generator, ok = apply_if_finite(state.generator, g_grads, metrics["g_loss"], e_grads, valid=valid)
    new = state.replace(generator=generator)
    if state.encoder is not None:  # updated together with G, or skipped together
        new = new.replace(encoder=apply_if_finite(state.encoder, e_grads, metrics["g_loss"], g_grads, valid=valid)[0])
    return TrainStep(new, mark_skipped(metrics, ok, "g_loss"))


@jax.jit
def discriminator_step(key: jax.Array, config: GANConfig, state: GANState, batch) -> TrainStep:
    """One optimiser step of the discriminator (and InfoGAN's Q head) with G and E fixed.

    Draws fresh noise (and for the cGAN gives the fakes the batch's labels), generates fakes with the
    current G and descends :func:`discriminator_loss_fn`. Pure and jitted; G's and E's states are returned
    unchanged (the same arrays).

    Args:
        key: randomness of this step (noise, codes, dropout).
        config: the model config.
        state: a :class:`GANState`.
        batch: ``{"image": f32[B, H, W, C] in [0, 1], "label": int32[B]}`` (labels only for the cGAN).

    Returns:
        :class:`~gm.deep.train.TrainStep` ``(new_state, metrics)``: ``d_loss``, ``d_adversarial``,
        ``d_real_accuracy``, ``d_fake_accuracy`` (fractions of real / fake examples on the right side of the
        decision threshold), ``d_info``, and ``finite`` (0.0 with ``d_loss`` NaN when the update was skipped,
        as in :func:`train_step`).
    """
    return _discriminator_step(key, config, state, batch)


@jax.jit
def generator_step(key: jax.Array, config: GANConfig, state: GANState, batch) -> TrainStep:
    """One optimiser step of the generator (and BiGAN's encoder) with D fixed.

    Args:
        key: randomness of this step.
        config: the model config.
        state: a :class:`GANState`.
        batch: as in :func:`discriminator_step` (the BiGAN encodes its images; the cGAN uses its labels).

    Returns:
        :class:`~gm.deep.train.TrainStep` ``(new_state, metrics)``: ``g_loss``, ``g_adversarial``, for
        InfoGAN ``g_info`` and ``q_categorical_accuracy`` (Q recovers the code of a fake), and ``finite``
        (0.0 with ``g_loss`` NaN when the update was skipped, as in :func:`train_step`).
    """
    return _generator_step(key, config, state, batch)


@jax.jit
def train_step(key: jax.Array, config: GANConfig, state: GANState, batch) -> TrainStep:
    """``config.d_steps`` discriminator steps, then one generator step; pure and jitted once per config.

    Every discriminator step sees the same real batch with fresh noise; the generator step draws fresh
    noise again. Metrics are those of the last discriminator step and of the generator step.

    Values are not checked inside the (jitted) step; instead a player's update whose batch has a pixel
    that is not finite or not in [0, 1] (or, for the cGAN, a label outside ``[0, n_classes)``), or whose
    loss or gradients are not finite, is skipped: that player's state is returned unchanged, and the
    marker is in the metrics: ``finite`` is 0.0 and the skipped player's loss (``d_loss`` / ``g_loss``)
    is NaN (``finite`` 1.0 otherwise). The training loop stops at such a step
    (``experiments._common.train_loop``); check the data once with :func:`check_batch`.

    Examples:
        >>> state, metrics = gan.train_step(jax.random.key(1), config, state, batch)
    """
    keys = jax.random.split(key, config.d_steps + 1)
    metrics = {}
    finite = jnp.asarray(1.0)
    for i in range(config.d_steps):
        state, metrics = _discriminator_step(keys[i], config, state, batch)
        finite = jnp.minimum(finite, metrics["finite"])
    state, g_metrics = _generator_step(keys[-1], config, state, batch)
    return TrainStep(state, {**metrics, **g_metrics, "finite": jnp.minimum(finite, g_metrics["finite"])})


# ------------------------------------------------------------------------------------------- inference


_generate = jax.jit(generate_inference)


def generate_from_latent(config: GANConfig, state: GANState, latent: Latent) -> jax.Array:
    """Images ``f32[B, H, W, C]`` for given latent inputs (e.g. one code swept with the others fixed), with
    inference-time normalisation (:func:`~gm.deep.gan_networks.generate_inference`).

    Examples:
        >>> images = gan.generate_from_latent(config, state, gan.Latent(z, categorical=codes, continuous=c))
    """
    return _generate(config, state.generator.params, latent)


def generate(key: jax.Array, config: GANConfig, state: GANState, num_samples: int, *, labels=None,
             categorical=None, continuous=None) -> jax.Array:
    """``num_samples`` samples ``G(z, ...)`` with ``z ~ N(0, I)``: ``f32[N, H, W, C]`` in (0, 1).

    Args:
        key: a ``jax.random`` key.
        config: the model config.
        state: a (trained) :class:`GANState`.
        num_samples: number of samples ``N``.
        labels: fixed ``int32[N]`` labels (cGAN); see :func:`sample_latent`.
        categorical: fixed ``int32[N]`` categorical codes (InfoGAN).
        continuous: fixed ``f32[N, n_continuous]`` continuous codes (InfoGAN).

    Examples:
        >>> images = gan.generate(jax.random.key(2), config, state, 64)
    """
    latent = sample_latent(key, config, num_samples, labels=labels, categorical=categorical, continuous=continuous)
    return _generate(config, state.generator.params, latent)


_encode = jax.jit(encode_images)


def encode(config: GANConfig, state: GANState, images) -> jax.Array:
    """BiGAN's ``E(x)``: ``f32[N, H, W, C] -> f32[N, latent_dim]``.

    Examples:
        >>> z = gan.encode(config, state, test_images)
    """
    if state.encoder is None:
        raise ValueError(f"only a BiGAN has an encoder, this config's model is {config.model!r}")
    return _encode(config, state.encoder.params, jnp.asarray(images))


def reconstruct(config: GANConfig, state: GANState, images) -> jax.Array:
    """BiGAN's ``G(E(x))``: ``f32[N, H, W, C]`` images.

    Examples:
        >>> recon = gan.reconstruct(config, state, test_images)
    """
    z = encode(config, state, images)
    return _generate(config, state.generator.params, Latent(z))


@jax.jit
def _q_logits(config, params, images):
    return discriminate(config, params, images).categorical_logits


def predict_codes(config: GANConfig, state: GANState, images) -> jax.Array:
    """InfoGAN's ``Q(c_1 | x)`` logits ``f32[N, n_categories]`` of images (real or generated).

    Examples:
        >>> codes = gan.predict_codes(config, state, test_images).argmax(-1)
    """
    if config.model != "infogan":
        raise ValueError(f"only an InfoGAN has a Q head, this config's model is {config.model!r}")
    return _q_logits(config, state.discriminator.params, jnp.asarray(images))
