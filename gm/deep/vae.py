"""Autoencoder, variational autoencoder and conditional VAE as flax modules plus pure functions.

The generative model is ``p(z) = N(0, I)``, ``p(x | z) = Bernoulli(sigmoid(f(z)))`` (or
``N(f(z), sigma^2 I)``); the recognition model is ``q(z | x) = N(mu(x), diag(exp(log_var(x))))``. Training
maximises the evidence lower bound (ELBO)

    log p(x) >= E_q[log p(x | z)] - KL(q(z | x) || p(z)),

with the KL in closed form and the expectation estimated by one reparameterised sample
``z = mu + exp(log_var / 2) * eps``, ``eps ~ N(0, I)`` (Kingma and Welling, 2014). For evaluation the
importance-weighted bound (Burda et al., 2016)

    log p(x) >= E[log (1/k) sum_i p(x, z_i) / q(z_i | x)],   z_i ~ q(z | x),

tightens with ``k`` and approaches ``log p(x)``; :func:`iwae_bound` computes it in chunks so ``k = 1000``
fits in memory. The conditional VAE (Sohn et al., 2015) feeds a one-hot label to the encoder and decoder:
``q(z | x, y)``, ``p(x | z, y)``. The plain autoencoder uses the same networks, takes ``z = mu(x)`` and
minimises the reconstruction negative log-likelihood alone.

Everything is a pure function of ``(params, config, data, key)``; :func:`train_step` is jitted once per
config and reused (the config is a static field of :class:`~gm.deep.train.TrainState`).

Example:
    >>> import jax
    >>> from gm import data
    >>> from gm.deep import vae
    >>> ds = data.mnist()
    >>> batch = {"image": ds.train.images[:64], "label": ds.train.labels[:64]}
    >>> config = vae.VAEConfig(latent_dim=16)
    >>> state = vae.create_state(jax.random.key(0), config, batch)
    >>> state, metrics = vae.train_step(state, batch, jax.random.key(1))
    >>> samples = vae.sample(state, jax.random.key(2), 16)   # f32[16, 28, 28, 1] pixel means
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gm import loops
from gm.data.images import binarize, random_shift
from gm.deep import networks
from gm.deep.train import TrainState, make_optimizer

__all__ = [
    "VAEConfig",
    "VAEModel",
    "ElboTerms",
    "gaussian_kl",
    "diagonal_gaussian_log_density",
    "standard_normal_log_density",
    "bernoulli_log_likelihood",
    "gaussian_log_likelihood",
    "reparameterize",
    "encode",
    "decode",
    "elbo",
    "negative_elbo_loss",
    "autoencoder_loss",
    "iwae_bound",
    "create_state",
    "train_step",
    "eval_step",
    "prepare_batch",
    "sample",
    "reconstruct",
    "interpolate",
]

_LOG_2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Model, likelihood and optimiser settings (frozen and hashable: a static field of the train state).

    Attributes:
        model: ``"vae"``, ``"ae"`` (plain autoencoder, deterministic ``z = mu(x)``) or ``"cvae"``
            (encoder and decoder conditioned on a one-hot label).
        encoder: ``"mlp"`` or ``"conv"``.
        decoder: ``"mlp"`` or ``"conv"``.
        latent_dim: dimension ``L`` of ``z``.
        hidden: dense layer widths of the MLP encoder/decoder (the decoder uses them reversed).
        conv_features: channels of the conv encoder stages (the conv decoder uses them reversed).
        upsample: conv decoder upsampling, ``"resize"`` or ``"pixel_shuffle"``.
        act: activation name (see :func:`gm.deep.networks.activation`).
        dropout: dropout rate in the dense layers during training.
        likelihood: ``"bernoulli"`` (decoder outputs logits) or ``"gaussian"`` (decoder outputs means; one
            learned log standard deviation shared by all pixels).
        n_classes: number of labels for the conditional VAE.
        condition_every_layer: feed the cVAE's one-hot label to every dense layer of the MLP encoder and
            decoder, not only to the first (the decoder then cannot easily ignore it).
        image_shape: ``(H, W, C)``; filled in by :func:`create_state` from the example batch.
        beta: weight of the KL term (1 gives the ELBO).
        kl_warmup_steps: the KL weight rises linearly from 0 to ``beta`` over this many steps.
        learning_rate, schedule, total_steps, warmup_steps, weight_decay, grad_clip: see
            :func:`gm.deep.train.make_optimizer`.
        binarize: draw a fresh binarisation ``x ~ Bernoulli(x)`` of every training batch (dynamic
            binarisation; only with the Bernoulli likelihood).
        max_shift: random translations of up to this many pixels as training augmentation.
    """

    model: str = "vae"
    encoder: str = "mlp"
    decoder: str = "mlp"
    latent_dim: int = 32
    hidden: tuple[int, ...] = (512, 256)
    conv_features: tuple[int, ...] = (32, 64)
    upsample: str = "resize"
    act: str = "relu"
    dropout: float = 0.0
    likelihood: str = "bernoulli"
    n_classes: int = 10
    condition_every_layer: bool = False
    image_shape: tuple[int, int, int] | None = None
    beta: float = 1.0
    kl_warmup_steps: int = 0
    learning_rate: float = 1e-3
    schedule: str = "constant"
    total_steps: int = 0
    warmup_steps: int = 0
    weight_decay: float = 0.0
    grad_clip: float | None = None
    binarize: bool = True
    max_shift: int = 0

    def __post_init__(self):
        checks = {
            "model": (self.model, ("vae", "ae", "cvae")),
            "encoder": (self.encoder, ("mlp", "conv")),
            "decoder": (self.decoder, ("mlp", "conv")),
            "likelihood": (self.likelihood, ("bernoulli", "gaussian")),
            "upsample": (self.upsample, ("resize", "pixel_shuffle")),
        }
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"VAEConfig.{name} must be one of {allowed}, got {value!r}")
        if self.latent_dim < 1:
            raise ValueError(f"VAEConfig.latent_dim must be positive, got {self.latent_dim}")
        if self.binarize and self.likelihood != "bernoulli":
            raise ValueError("VAEConfig.binarize=True needs likelihood='bernoulli'")
        networks.activation(self.act)

    @property
    def conditional(self) -> bool:
        return self.model == "cvae"


class VAEModel(nn.Module):
    """Encoder ``x (, y) -> (mu, log_var)`` and decoder ``z (, y) -> logits or means`` of one config."""

    config: VAEConfig

    def setup(self):
        c = self.config
        if c.image_shape is None:
            raise ValueError("VAEConfig.image_shape is None; build the state with create_state")
        out_dim = 2 * c.latent_dim
        if c.encoder == "mlp":
            self.encoder = networks.MLPEncoder(c.hidden, out_dim, c.act, c.dropout, c.condition_every_layer)
        else:
            self.encoder = networks.ConvEncoder(c.conv_features, c.hidden[-1:], out_dim, c.act, c.dropout)
        if c.decoder == "mlp":
            self.decoder = networks.MLPDecoder(
                tuple(reversed(c.hidden)), c.image_shape, c.act, c.dropout, c.condition_every_layer
            )
        else:
            self.decoder = networks.ConvDecoder(
                tuple(reversed(c.conv_features)), c.image_shape, c.hidden[-1:], c.upsample, c.act, c.dropout
            )
        if c.likelihood == "gaussian":
            self.log_scale = self.param("log_scale", nn.initializers.zeros, ())

    def _condition(self, labels):
        if not self.config.conditional:
            return None
        if labels is None:
            raise ValueError("a conditional VAE (model='cvae') needs labels")
        return jax.nn.one_hot(labels, self.config.n_classes)

    def encode(self, x, labels=None, *, train: bool = False):
        """``f32[B, H, W, C] -> (mean f32[B, L], log_var f32[B, L])``."""
        out = self.encoder(x, self._condition(labels), train=train)
        mean, log_var = jnp.split(out, 2, axis=-1)
        return mean, log_var

    def decode(self, z, labels=None, *, train: bool = False):
        """``f32[B, L] -> f32[B, H, W, C]``: Bernoulli logits or Gaussian means."""
        return self.decoder(z, self._condition(labels), train=train)

    def output_log_scale(self):
        """Log standard deviation of the Gaussian likelihood (``f32[]``)."""
        return self.log_scale

    def __call__(self, x, labels=None, *, train: bool = False):
        mean, _ = self.encode(x, labels, train=train)
        return self.decode(mean, labels, train=train)


# ------------------------------------------------------------------------------------------- densities


def gaussian_kl(mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """``KL(N(mean, diag exp(log_var)) || N(0, I))`` summed over the last axis.

    ``KL = 1/2 sum_j (exp(log_var_j) + mean_j^2 - 1 - log_var_j)``.

    Args:
        mean: ``f32[..., L]``.
        log_var: ``f32[..., L]``.

    Returns:
        ``f32[...]``.
    """
    if mean.shape != log_var.shape:
        raise ValueError(f"mean and log_var must have the same shape, got {mean.shape} and {log_var.shape}")
    return 0.5 * jnp.sum(jnp.exp(log_var) + mean**2 - 1.0 - log_var, axis=-1)


def diagonal_gaussian_log_density(z: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """``log N(z; mean, diag exp(log_var))`` summed over the last axis; broadcasts ``f32[..., L] -> f32[...]``.

    ``log N = -1/2 sum_j (log 2 pi + log_var_j + (z_j - mean_j)^2 / exp(log_var_j))``.
    """
    return -0.5 * jnp.sum(_LOG_2PI + log_var + (z - mean) ** 2 * jnp.exp(-log_var), axis=-1)


def standard_normal_log_density(z: jax.Array) -> jax.Array:
    """``log N(z; 0, I)`` summed over the last axis: ``f32[..., L] -> f32[...]``."""
    return -0.5 * jnp.sum(_LOG_2PI + z**2, axis=-1)


def bernoulli_log_likelihood(logits: jax.Array, x: jax.Array) -> jax.Array:
    """``log Bernoulli(x; sigmoid(logits))`` summed over all but the leading axis.

    ``sum_d x_d * logits_d - softplus(logits_d)`` (numerically stable; ``x`` may be grey values in [0, 1],
    which gives the negative binary cross-entropy).

    Args:
        logits: ``f32[B, ...]``.
        x: ``f32[B, ...]`` of the same shape.

    Returns:
        ``f32[B]``.
    """
    if logits.shape != x.shape:
        raise ValueError(f"logits and x must have the same shape, got {logits.shape} and {x.shape}")
    ll = x * logits - jax.nn.softplus(logits)
    return ll.reshape(ll.shape[0], -1).sum(-1)


def gaussian_log_likelihood(mean: jax.Array, log_scale: jax.Array, x: jax.Array) -> jax.Array:
    """``log N(x; mean, sigma^2 I)`` with ``log sigma = log_scale`` (scalar or broadcastable), per example.

    ``sum_d -1/2 log 2 pi - log sigma - (x_d - mean_d)^2 / (2 sigma^2)``: ``f32[B, ...] -> f32[B]``.
    """
    if mean.shape != x.shape:
        raise ValueError(f"mean and x must have the same shape, got {mean.shape} and {x.shape}")
    ll = -0.5 * _LOG_2PI - log_scale - 0.5 * (x - mean) ** 2 * jnp.exp(-2.0 * log_scale)
    return ll.reshape(ll.shape[0], -1).sum(-1)


def reparameterize(key: jax.Array, mean: jax.Array, log_var: jax.Array, n_samples: int | None = None):
    """``z = mean + exp(log_var / 2) * eps`` with ``eps ~ N(0, I)``.

    Args:
        key: a ``jax.random`` key.
        mean, log_var: ``f32[B, L]``.
        n_samples: ``None`` for one sample ``f32[B, L]``; an int ``k`` for ``f32[k, B, L]``.
    """
    shape = mean.shape if n_samples is None else (n_samples, *mean.shape)
    eps = jax.random.normal(key, shape, mean.dtype)
    return mean + jnp.exp(0.5 * log_var) * eps


# ------------------------------------------------------------------------------------- model functions


def _model(config: VAEConfig) -> VAEModel:
    return VAEModel(config)


def _check_images(config: VAEConfig, x, name="x"):
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(config.image_shape):
        raise ValueError(f"{name} must have shape [B, {', '.join(map(str, config.image_shape))}], got {x.shape}")


def _rngs(dropout_key):
    return {} if dropout_key is None else {"dropout": dropout_key}


def encode(params, config: VAEConfig, x, labels=None, *, dropout_key=None):
    """Posterior parameters ``(mean f32[B, L], log_var f32[B, L])`` of ``q(z | x (, y))``.

    With ``dropout_key`` the networks run in training mode (dropout on).
    """
    _check_images(config, x)
    return _model(config).apply(
        {"params": params}, x, labels, train=dropout_key is not None, rngs=_rngs(dropout_key),
        method=VAEModel.encode,
    )


def decode(params, config: VAEConfig, z, labels=None, *, dropout_key=None):
    """Decoder output ``f32[B, H, W, C]`` for ``z f32[B, L]``: Bernoulli logits or Gaussian means."""
    if z.ndim != 2 or z.shape[-1] != config.latent_dim:
        raise ValueError(f"z must have shape [B, {config.latent_dim}], got {z.shape}")
    return _model(config).apply(
        {"params": params}, z, labels, train=dropout_key is not None, rngs=_rngs(dropout_key),
        method=VAEModel.decode,
    )


def _log_likelihood(params, config: VAEConfig, decoded, x):
    if config.likelihood == "bernoulli":
        return bernoulli_log_likelihood(decoded, x)
    return gaussian_log_likelihood(decoded, params["log_scale"], x)


def _mean_image(params, config: VAEConfig, decoded):
    return jax.nn.sigmoid(decoded) if config.likelihood == "bernoulli" else decoded


class ElboTerms(NamedTuple):
    """Per-example terms of the ELBO: ``elbo = log_likelihood - kl``, each ``f32[B]``."""

    elbo: jax.Array
    log_likelihood: jax.Array
    kl: jax.Array


def elbo(params, config: VAEConfig, x, labels, key, *, dropout_key=None) -> ElboTerms:
    """Single-sample ELBO with analytic KL, per example.

    ``ELBO(x) = log p(x | z) - KL(q(z | x) || N(0, I))`` with ``z = mu + sigma * eps`` (one draw from
    ``key``). For ``model="ae"`` the KL is zero and ``z = mu(x)`` (the autoencoder is not a density model;
    its "ELBO" is the reconstruction log-likelihood).

    Args:
        params: model parameters.
        config: the model config.
        x: ``f32[B, H, W, C]`` data (binary for the Bernoulli likelihood, grey values give the negative
            cross-entropy).
        labels: ``int32[B]`` for the conditional VAE, else ``None`` (ignored).
        key: key of the reparameterisation noise.
        dropout_key: dropout key (training mode) or ``None`` (evaluation mode).

    Returns:
        :class:`ElboTerms` of ``f32[B]`` arrays, in nats.
    """
    k_enc, k_dec = (None, None) if dropout_key is None else jax.random.split(dropout_key)
    mean, log_var = encode(params, config, x, labels, dropout_key=k_enc)
    if config.model == "ae":
        z, kl = mean, jnp.zeros(mean.shape[:1], mean.dtype)
    else:
        z, kl = reparameterize(key, mean, log_var), gaussian_kl(mean, log_var)
    ll = _log_likelihood(params, config, decode(params, config, z, labels, dropout_key=k_dec), x)
    return ElboTerms(ll - kl, ll, kl)


def negative_elbo_loss(params, config: VAEConfig, x, labels, key, *, beta=1.0, dropout_key=None):
    """The VAE training loss: batch mean of ``-log p(x | z) + beta * KL`` (``beta = 1``: the negative ELBO).

    Returns:
        ``(loss f32[], metrics)`` with metrics ``{"loss", "nelbo", "reconstruction", "kl"}`` (batch means, nats).
    """
    terms = elbo(params, config, x, labels, key, dropout_key=dropout_key)
    loss = jnp.mean(-terms.log_likelihood + beta * terms.kl)
    metrics = {
        "loss": loss,
        "nelbo": -jnp.mean(terms.elbo),
        "reconstruction": -jnp.mean(terms.log_likelihood),
        "kl": jnp.mean(terms.kl),
    }
    return loss, metrics


def autoencoder_loss(params, config: VAEConfig, x, labels=None, *, dropout_key=None):
    """Plain autoencoder loss: batch mean of ``-log p(x | z = mu(x))`` (binary cross-entropy for Bernoulli).

    Returns:
        ``(loss f32[], metrics)`` with metrics ``{"loss", "reconstruction"}``.
    """
    k_enc, k_dec = (None, None) if dropout_key is None else jax.random.split(dropout_key)
    mean, _ = encode(params, config, x, labels, dropout_key=k_enc)
    ll = _log_likelihood(params, config, decode(params, config, mean, labels, dropout_key=k_dec), x)
    loss = -jnp.mean(ll)
    return loss, {"loss": loss, "reconstruction": loss}


def iwae_bound(params, config: VAEConfig, x, labels, key, *, k: int, chunk_size: int | None = None):
    """Importance-weighted lower bound on ``log p(x)`` with ``k`` samples, per example.

    ``L_k(x) = log (1/k) sum_{i=1..k} p(x | z_i) p(z_i) / q(z_i | x)``, ``z_i ~ q(z | x)`` i.i.d.;
    ``L_1`` is the ELBO (in expectation) and ``E[L_k]`` increases with ``k`` to ``log p(x)`` (Burda et al.,
    2016, Theorem 1). The samples are drawn ``chunk_size`` at a time inside ``lax.scan``, and the
    log-mean-exp is accumulated with ``logaddexp``, so memory grows with ``chunk_size * B``, not ``k * B``.

    Args:
        params, config: the model (``model`` must be ``"vae"`` or ``"cvae"``; for a cVAE this bounds
            ``log p(x | y)``).
        x: ``f32[B, H, W, C]`` (binary data for the Bernoulli likelihood).
        labels: ``int32[B]`` for the cVAE, else ``None``.
        key: a ``jax.random`` key.
        k: number of importance samples.
        chunk_size: samples per chunk, must divide ``k`` (default ``min(k, 100)``).

    Returns:
        ``f32[B]`` bound in nats (negate for the IWAE negative log-likelihood estimate).
    """
    if config.model == "ae":
        raise ValueError("iwae_bound needs a VAE or cVAE config; an autoencoder has no density")
    chunk_size = min(k, 100) if chunk_size is None else chunk_size
    if k < 1 or chunk_size < 1 or k % chunk_size:
        raise ValueError(f"chunk_size ({chunk_size}) must be positive and divide k ({k})")
    mean, log_var = encode(params, config, x, labels)
    b = x.shape[0]
    tiled_labels = None if labels is None else jnp.tile(labels, chunk_size)
    tiled_x = jnp.tile(x, (chunk_size, 1, 1, 1))

    def chunk(acc, chunk_key):
        z = reparameterize(chunk_key, mean, log_var, chunk_size)  # [c, B, L]
        log_q = diagonal_gaussian_log_density(z, mean, log_var)  # [c, B]
        log_prior = standard_normal_log_density(z)
        decoded = decode(params, config, z.reshape(chunk_size * b, -1), tiled_labels)
        ll = _log_likelihood(params, config, decoded, tiled_x).reshape(chunk_size, b)
        log_w = ll + log_prior - log_q
        return jnp.logaddexp(acc, jax.nn.logsumexp(log_w, axis=0)), None

    init = jnp.full((b,), -jnp.inf, mean.dtype)
    total, _ = loops.scan(chunk, init, jax.random.split(key, k // chunk_size))  # shard_map-safe
    return total - math.log(k)


# --------------------------------------------------------------------------------------------- training


def create_state(key: jax.Array, config: VAEConfig, example_batch) -> TrainState:
    """Initialise parameters and the optimiser for ``config`` from an example batch.

    Args:
        key: initialisation key.
        config: the model config; ``image_shape`` is taken from the batch when ``None``.
        example_batch: ``{"image": f32[B, H, W, C], "label": int32[B]}`` (labels needed for the cVAE).

    Returns:
        A :class:`~gm.deep.train.TrainState` whose ``config`` has ``image_shape`` set.
    """
    images = jnp.asarray(example_batch["image"])
    if images.ndim != 4:
        raise ValueError(f"example_batch['image'] must be [B, H, W, C], got shape {images.shape}")
    if config.image_shape is None:
        config = dataclasses.replace(config, image_shape=tuple(int(s) for s in images.shape[1:]))
    _check_images(config, images, "example_batch['image']")
    labels = example_batch.get("label") if config.conditional else None
    if config.conditional and labels is None:
        raise ValueError("example_batch needs 'label' for a conditional VAE")
    params = _model(config).init(key, images[:1], None if labels is None else jnp.asarray(labels)[:1])["params"]
    tx = make_optimizer(
        config.learning_rate,
        schedule=config.schedule,
        total_steps=config.total_steps,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        grad_clip=config.grad_clip,
    )
    return TrainState.create(params, tx, config)


def prepare_batch(config: VAEConfig, images, key, *, train: bool = True):
    """Training-time input pipeline: random shifts (``max_shift``), then dynamic binarisation.

    Args:
        config: the model config.
        images: ``f32[B, H, W, C]`` grey values in [0, 1].
        key: a ``jax.random`` key.
        train: ``False`` skips the shifts (binarisation still applies when ``config.binarize``).

    Returns:
        ``f32[B, H, W, C]``.
    """
    k_shift, k_bin = jax.random.split(key)
    x = jnp.asarray(images)
    if train and config.max_shift:
        x = random_shift(k_shift, x, config.max_shift)
    if config.binarize:
        x = binarize(k_bin, x)
    return x


def _kl_weight(config: VAEConfig, step):
    if config.kl_warmup_steps <= 0:
        return jnp.asarray(config.beta, jnp.float32)
    return config.beta * jnp.minimum(1.0, (step.astype(jnp.float32) + 1.0) / config.kl_warmup_steps)


@jax.jit
def train_step(state: TrainState, batch, key: jax.Array):
    """One optimiser step on one batch: augment and binarise, then a gradient step on the loss.

    The loss is :func:`negative_elbo_loss` (VAE, cVAE; KL weight warmed up over ``kl_warmup_steps``) or
    :func:`autoencoder_loss` (AE). Pure: the same ``(state, batch, key)`` gives the same result. Jitted; the
    config is static, so one compilation serves every later call with batches of the same shape.

    Args:
        state: the train state from :func:`create_state`.
        batch: ``{"image": f32[B, H, W, C] in [0, 1], "label": int32[B]}``.
        key: randomness of this step (augmentation, binarisation, reparameterisation, dropout).

    Returns:
        ``(new_state, metrics)``; metrics are batch means in nats (``loss``, ``reconstruction``, and for
        VAEs ``nelbo``, ``kl``, ``kl_weight``).
    """
    config = state.config
    k_data, k_z, k_drop = jax.random.split(key, 3)
    x = prepare_batch(config, batch["image"], k_data)
    labels = batch.get("label") if config.conditional else None

    if config.model == "ae":

        def loss_fn(params):
            return autoencoder_loss(params, config, x, labels, dropout_key=k_drop)

        kl_weight = None
    else:
        kl_weight = _kl_weight(config, state.step)

        def loss_fn(params):
            return negative_elbo_loss(params, config, x, labels, k_z, beta=kl_weight, dropout_key=k_drop)

    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    if kl_weight is not None:
        metrics["kl_weight"] = kl_weight
    return state.apply_gradients(grads), metrics


@jax.jit
def eval_step(state: TrainState, batch, key: jax.Array):
    """Evaluation metrics of one batch (no augmentation, no dropout; binarised with ``key`` if configured).

    Returns:
        ``{"nelbo" f32[B], "reconstruction" f32[B], "kl" f32[B]}``: per-example values in nats (for an AE,
        ``nelbo`` equals the reconstruction loss and ``kl`` is zero).
    """
    config = state.config
    k_data, k_z = jax.random.split(key)
    x = prepare_batch(config, batch["image"], k_data, train=False)
    labels = batch.get("label") if config.conditional else None
    terms = elbo(state.params, config, x, labels, k_z)
    return {"nelbo": -terms.elbo, "reconstruction": -terms.log_likelihood, "kl": terms.kl}


# ------------------------------------------------------------------------------------------- inference


def sample(state: TrainState, key: jax.Array, n: int, labels=None, *, mean_image: bool = True):
    """Draw ``n`` images from the prior: ``z ~ N(0, I)``, ``x ~ p(x | z (, y))``.

    Args:
        state: a trained state (any of AE, VAE, cVAE; for the AE this is the lecture's question "can I
            feed any z to the decoder?").
        key: a ``jax.random`` key.
        n: number of samples.
        labels: ``int32[n]`` conditioning labels for the cVAE.
        mean_image: return the decoder's mean image ``E[x | z]`` (default); ``False`` draws binary pixels.

    Returns:
        ``f32[n, H, W, C]``.
    """
    config = state.config
    k_z, k_x = jax.random.split(key)
    if config.conditional:
        if labels is None or jnp.shape(labels) != (n,):
            raise ValueError(f"labels must be int32[{n}] for a conditional VAE, got {None if labels is None else jnp.shape(labels)}")
        labels = jnp.asarray(labels)
    z = jax.random.normal(k_z, (n, config.latent_dim))
    decoded = decode(state.params, config, z, labels)
    means = _mean_image(state.params, config, decoded)
    if mean_image:
        return means
    if config.likelihood == "bernoulli":
        return jax.random.bernoulli(k_x, means).astype(means.dtype)
    return means + jnp.exp(state.params["log_scale"]) * jax.random.normal(k_x, means.shape)


def reconstruct(state: TrainState, images, labels=None):
    """Mean reconstruction ``E[x | z = mu(x)]`` of ``f32[B, H, W, C]`` images (posterior mean latent)."""
    config = state.config
    images = jnp.asarray(images)
    mean, _ = encode(state.params, config, images, labels)
    return _mean_image(state.params, config, decode(state.params, config, mean, labels))


def interpolate(state: TrainState, image_a, image_b, n_steps: int, labels=None):
    """Decode the straight line between the posterior means of two images.

    Args:
        state: a trained state.
        image_a, image_b: ``f32[H, W, C]``.
        n_steps: number of points, endpoints included.
        labels: ``int32[n_steps]`` for the cVAE (e.g. the same label repeated).

    Returns:
        ``f32[n_steps, H, W, C]`` mean images along ``z_t = (1 - t) mu(a) + t mu(b)``.
    """
    config = state.config
    pair = jnp.stack([jnp.asarray(image_a), jnp.asarray(image_b)])
    pair_labels = None if labels is None else jnp.asarray(labels)[jnp.array([0, -1])]
    mean, _ = encode(state.params, config, pair, pair_labels)
    t = jnp.linspace(0.0, 1.0, n_steps)[:, None]
    z = (1.0 - t) * mean[0] + t * mean[1]
    return _mean_image(state.params, config, decode(state.params, config, z, labels))
