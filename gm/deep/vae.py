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
minimises the reconstruction negative log-likelihood alone. The config and the networks live in
:mod:`gm.deep.vae_networks` (re-exported here), the densities and the KL in :mod:`gm.deep.densities`.

Everything is a pure function of ``(key, config, params or state, data)``, in that order (README: "One API
convention"); :func:`train_step` is jitted and the config, a static pytree, is part of its cache key, so
one compilation serves every later call with an equal config and batch shape.

Example:
    >>> import jax
    >>> from gm import data
    >>> from gm.deep import vae
    >>> ds = data.mnist()
    >>> batch = {"image": ds.train.images[:64], "label": ds.train.labels[:64]}
    >>> config = vae.VAEConfig(latent_dim=16)   # image_shape (28, 28, 1)
    >>> state = vae.create_state(jax.random.key(0), config, batch)
    >>> state, metrics = vae.train_step(jax.random.key(1), config, state, batch)
    >>> samples = vae.sample(jax.random.key(2), config, state, 16)   # f32[16, 28, 28, 1] pixel means

Length: about 530 lines. The family's model functions, losses, training step with its input checks
(``check_batch``; the step skips a non-finite update) and inference functions read the same private
helpers; the config and networks already live in ``gm.deep.vae_networks``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gm import loops
from gm.data.images import binarize, random_shift
from gm.deep.densities import (
    DiagonalGaussian,
    bernoulli_log_likelihood,
    diagonal_gaussian_log_density,
    gaussian_kl,
    gaussian_log_likelihood,
    reparameterize,
    standard_normal_log_density,
)
from gm.deep.train import (LossAndMetrics, TrainState, TrainStep, apply_if_finite, check_images, make_optimizer,
                           mark_skipped, valid_images)
from gm.deep.vae_networks import VAEConfig, VAEModel

__all__ = [
    "VAEConfig",
    "VAEModel",
    "ElboTerms",
    "encode",
    "decode",
    "elbo",
    "negative_elbo_loss",
    "autoencoder_loss",
    "iwae_bound",
    "create_state",
    "check_batch",
    "train_step",
    "eval_step",
    "prepare_batch",
    "sample",
    "reconstruct",
    "interpolate",
]


# ------------------------------------------------------------------------------------- model functions


def _check_images(config: VAEConfig, x, name="x"):
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(config.image_shape):
        raise ValueError(f"{name} must have shape [B, {', '.join(map(str, config.image_shape))}] "
                         f"(VAEConfig.image_shape), got {x.shape}")


def _rngs(dropout_key):
    return {} if dropout_key is None else {"dropout": dropout_key}


def encode(config: VAEConfig, params, x, labels=None, *, dropout_key=None) -> DiagonalGaussian:
    """Posterior parameters ``(mean f32[B, L], log_var f32[B, L])`` of ``q(z | x (, y))``.

    Args:
        config: the model config.
        params: the model's parameters (``state.params``).
        x: ``f32[B, H, W, C]`` images.
        labels: ``int32[B]`` for the cVAE, else ``None``.
        dropout_key: with a key the networks run in training mode (dropout on).

    Returns:
        A :class:`~gm.deep.densities.DiagonalGaussian` ``(mean, log_var)``.

    Examples:
        >>> mean, log_var = vae.encode(config, state.params, images)
    """
    _check_images(config, x)
    mean, log_var = VAEModel(config).apply(
        {"params": params}, x, labels, train=dropout_key is not None, rngs=_rngs(dropout_key),
        method=VAEModel.encode,
    )
    return DiagonalGaussian(mean, log_var)


def decode(config: VAEConfig, params, z, labels=None, *, dropout_key=None) -> jax.Array:
    """Decoder output ``f32[B, H, W, C]`` for ``z f32[B, L]``: Bernoulli logits or Gaussian means.

    Examples:
        >>> logits = vae.decode(config, state.params, jnp.zeros((4, config.latent_dim)))
    """
    if z.ndim != 2 or z.shape[-1] != config.latent_dim:
        raise ValueError(f"z must have shape [B, {config.latent_dim}], got {z.shape}")
    return VAEModel(config).apply(
        {"params": params}, z, labels, train=dropout_key is not None, rngs=_rngs(dropout_key),
        method=VAEModel.decode,
    )


def _log_likelihood(config: VAEConfig, params, decoded, x):
    if config.likelihood == "bernoulli":
        return bernoulli_log_likelihood(decoded, x)
    return gaussian_log_likelihood(decoded, params["log_scale"], x)


def _mean_image(config: VAEConfig, decoded):
    return jax.nn.sigmoid(decoded) if config.likelihood == "bernoulli" else decoded


class ElboTerms(NamedTuple):
    """Per-example terms of the ELBO: ``elbo = log_likelihood - kl``, each ``f32[B]``."""

    elbo: jax.Array
    log_likelihood: jax.Array
    kl: jax.Array


def elbo(key: jax.Array, config: VAEConfig, params, x, labels=None, *, dropout_key=None) -> ElboTerms:
    """Single-sample ELBO with analytic KL, per example.

    ``ELBO(x) = log p(x | z) - KL(q(z | x) || N(0, I))`` with ``z = mu + sigma * eps`` (one draw from
    ``key``). For ``model="ae"`` the KL is zero and ``z = mu(x)`` (the autoencoder is not a density model;
    its "ELBO" is the reconstruction log-likelihood).

    Args:
        key: key of the reparameterisation noise.
        config: the model config.
        params: model parameters.
        x: ``f32[B, H, W, C]`` data (binary for the Bernoulli likelihood, grey values give the negative
            cross-entropy).
        labels: ``int32[B]`` for the conditional VAE, else ``None`` (ignored).
        dropout_key: dropout key (training mode) or ``None`` (evaluation mode).

    Returns:
        :class:`ElboTerms` of ``f32[B]`` arrays, in nats.

    Examples:
        >>> terms = vae.elbo(jax.random.key(0), config, state.params, binary_images)
    """
    k_enc, k_dec = (None, None) if dropout_key is None else jax.random.split(dropout_key)
    mean, log_var = encode(config, params, x, labels, dropout_key=k_enc)
    if config.model == "ae":
        z, kl = mean, jnp.zeros(mean.shape[:1], mean.dtype)
    else:
        z, kl = reparameterize(key, mean, log_var), gaussian_kl(mean, log_var)
    ll = _log_likelihood(config, params, decode(config, params, z, labels, dropout_key=k_dec), x)
    return ElboTerms(ll - kl, ll, kl)


def negative_elbo_loss(key: jax.Array, config: VAEConfig, params, x, labels=None, *, beta=1.0,
                       dropout_key=None) -> LossAndMetrics:
    """The VAE training loss: batch mean of ``-log p(x | z) + beta * KL`` (``beta = 1``: the negative ELBO).

    Args:
        key: key of the reparameterisation noise.
        config: the model config.
        params: model parameters.
        x: ``f32[B, H, W, C]`` data.
        labels: ``int32[B]`` for the conditional VAE, else ``None``.
        beta: weight of the KL term.
        dropout_key: dropout key (training mode) or ``None``.

    Returns:
        :class:`~gm.deep.train.LossAndMetrics` ``(loss f32[], metrics)`` with metrics ``{"loss", "nelbo",
        "reconstruction", "kl"}`` (batch means, nats).
    """
    terms = elbo(key, config, params, x, labels, dropout_key=dropout_key)
    loss = jnp.mean(-terms.log_likelihood + beta * terms.kl)
    metrics = {
        "loss": loss,
        "nelbo": -jnp.mean(terms.elbo),
        "reconstruction": -jnp.mean(terms.log_likelihood),
        "kl": jnp.mean(terms.kl),
    }
    return LossAndMetrics(loss, metrics)


def autoencoder_loss(config: VAEConfig, params, x, labels=None, *, dropout_key=None) -> LossAndMetrics:
    """Plain autoencoder loss: batch mean of ``-log p(x | z = mu(x))`` (binary cross-entropy for Bernoulli).

    Returns:
        :class:`~gm.deep.train.LossAndMetrics` ``(loss f32[], metrics)`` with metrics ``{"loss",
        "reconstruction"}``.
    """
    k_enc, k_dec = (None, None) if dropout_key is None else jax.random.split(dropout_key)
    mean, _ = encode(config, params, x, labels, dropout_key=k_enc)
    ll = _log_likelihood(config, params, decode(config, params, mean, labels, dropout_key=k_dec), x)
    loss = -jnp.mean(ll)
    return LossAndMetrics(loss, {"loss": loss, "reconstruction": loss})


def iwae_bound(key: jax.Array, config: VAEConfig, params, x, labels=None, *, num_samples: int,
               chunk_size: int | None = None) -> jax.Array:
    """Importance-weighted lower bound on ``log p(x)`` with ``k = num_samples`` samples, per example.

    ``L_k(x) = log (1/k) sum_{i=1..k} p(x | z_i) p(z_i) / q(z_i | x)``, ``z_i ~ q(z | x)`` i.i.d.;
    ``L_1`` is the ELBO (in expectation) and ``E[L_k]`` increases with ``k`` to ``log p(x)`` (Burda et al.,
    2016, Theorem 1). The samples are drawn ``chunk_size`` at a time inside ``lax.scan``, and the
    log-mean-exp is accumulated with ``logaddexp``, so memory grows with ``chunk_size * B``, not ``k * B``.

    Args:
        key: a ``jax.random`` key.
        config: the model config (``model`` must be ``"vae"`` or ``"cvae"``; for a cVAE this bounds
            ``log p(x | y)``).
        params: the model's parameters.
        x: ``f32[B, H, W, C]`` (binary data for the Bernoulli likelihood).
        labels: ``int32[B]`` for the cVAE, else ``None``.
        num_samples: number ``k`` of importance samples.
        chunk_size: samples per chunk, must divide ``k`` (default ``min(k, 100)``).

    Returns:
        ``f32[B]`` bound in nats (negate for the IWAE negative log-likelihood estimate).

    Examples:
        >>> nll = -vae.iwae_bound(jax.random.key(0), config, state.params, x, num_samples=1000).mean()
    """
    k = num_samples
    if config.model == "ae":
        raise ValueError("iwae_bound needs a VAE or cVAE config; an autoencoder has no density")
    chunk_size = min(k, 100) if chunk_size is None else chunk_size
    if k < 1 or chunk_size < 1 or k % chunk_size:
        raise ValueError(f"chunk_size ({chunk_size}) must be positive and divide num_samples ({k})")
    mean, log_var = encode(config, params, x, labels)
    b = x.shape[0]
    tiled_labels = None if labels is None else jnp.tile(labels, chunk_size)
    tiled_x = jnp.tile(x, (chunk_size, 1, 1, 1))

    def chunk(acc, chunk_key):
        z = reparameterize(chunk_key, mean, log_var, num_samples=chunk_size)  # [c, B, L]
        log_q = diagonal_gaussian_log_density(z, mean, log_var)  # [c, B]
        log_prior = standard_normal_log_density(z)
        decoded = decode(config, params, z.reshape(chunk_size * b, -1), tiled_labels)
        ll = _log_likelihood(config, params, decoded, tiled_x).reshape(chunk_size, b)
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
        config: the model config.
        example_batch: ``{"image": f32[B, H, W, C], "label": int32[B]}`` (labels needed for the cVAE); the
            images must have ``config.image_shape``.

    Returns:
        A :class:`~gm.deep.train.TrainState` (its optimiser is the config's).

    Examples:
        >>> state = vae.create_state(jax.random.key(0), vae.VAEConfig(), {"image": images[:8]})
    """
    images = jnp.asarray(example_batch["image"])
    _check_images(config, images, "example_batch['image']")
    if images.shape[0] < 1:
        raise ValueError(f"example_batch['image'] is empty (shape {images.shape}): create_state needs at least "
                         "one example image to initialise the parameters")
    labels = example_batch.get("label") if config.conditional else None
    if config.conditional and labels is None:
        raise ValueError("example_batch needs 'label' for a conditional VAE")
    params = VAEModel(config).init(key, images[:1], None if labels is None else jnp.asarray(labels)[:1])["params"]
    tx = make_optimizer(
        config.learning_rate,
        schedule=config.schedule,
        total_steps=config.total_steps,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        grad_clip=config.grad_clip,
    )
    return TrainState.create(params, tx)


def prepare_batch(key: jax.Array, config: VAEConfig, images, *, train: bool = True) -> jax.Array:
    """Training-time input pipeline: random shifts (``max_shift``), then dynamic binarisation.

    Args:
        key: a ``jax.random`` key.
        config: the model config.
        images: ``f32[B, H, W, C]`` grey values in [0, 1].
        train: ``False`` skips the shifts (binarisation still applies when ``config.binarize``).

    Returns:
        ``f32[B, H, W, C]``.

    Examples:
        >>> x = vae.prepare_batch(jax.random.key(0), config, images)   # binary, shifted digits
    """
    k_shift, k_bin = jax.random.split(key)
    x = jnp.asarray(images)
    if train and config.max_shift:
        x = random_shift(k_shift, x, config.max_shift)
    if config.binarize:
        x = binarize(k_bin, x)
    return x


def _valid_pixels(config: VAEConfig, x):
    """bool array: finite pixels, and in [0, 1] for the Bernoulli likelihood (probabilities or binary)."""
    return valid_images(x, unit_interval=config.likelihood == "bernoulli")


def check_batch(config: VAEConfig, batch) -> None:
    """The training loop's check of a batch (or a whole data set), once per epoch or run: the images have
    ``config.image_shape``, every pixel is finite, and for the Bernoulli likelihood in [0, 1] (never
    silently binarised); ``ValueError`` naming the image, the pixel and the value. Eager, or compiled
    under `gm.validation.checked`; :func:`train_step` itself skips an invalid batch (see there).

    Args:
        config: the model config.
        batch: ``{"image": f32[B, H, W, C], ...}``.

    Returns:
        None.

    Examples:
        >>> vae.check_batch(config, {"image": images * 255})   # ValueError: ... must be in [0, 1] ...
    """
    x = batch["image"]
    _check_images(config, x, "batch['image']")
    bernoulli = config.likelihood == "bernoulli"
    check_images(x, "batch['image']", unit_interval=bernoulli, why=" (Bernoulli likelihood)" if bernoulli else "")


def _kl_weight(config: VAEConfig, step):
    if config.kl_warmup_steps <= 0:
        return jnp.asarray(config.beta, jnp.float32)
    return config.beta * jnp.minimum(1.0, (step.astype(jnp.float32) + 1.0) / config.kl_warmup_steps)


@jax.jit
def train_step(key: jax.Array, config: VAEConfig, state: TrainState, batch) -> TrainStep:
    """One optimiser step on one batch: augment and binarise, then a gradient step on the loss.

    The loss is :func:`negative_elbo_loss` (VAE, cVAE; KL weight warmed up over ``kl_warmup_steps``) or
    :func:`autoencoder_loss` (AE). Pure: the same ``(key, config, state, batch)`` gives the same result.
    Jitted; the config is static, so one compilation serves every later call with an equal config and
    batches of the same shape.

    Args:
        key: randomness of this step (augmentation, binarisation, reparameterisation, dropout).
        config: the model config the state was created with.
        state: the train state from :func:`create_state`.
        batch: ``{"image": f32[B, H, W, C] in [0, 1], "label": int32[B]}``.

    Values are not checked inside the (jitted) step; instead a step whose batch has a non-finite pixel
    (or, for the Bernoulli likelihood, one outside [0, 1]), or whose loss or gradients are not finite,
    is skipped: the returned state is the state passed in, unchanged (parameters, optimiser state and
    step), and the marker is in the metrics: ``finite`` is 0.0 and ``loss`` is NaN (1.0 and the loss
    otherwise). The training loop stops at such a step (``experiments._common.train_loop``); check
    the data once with :func:`check_batch`.

    Returns:
        :class:`~gm.deep.train.TrainStep` ``(new_state, metrics)``; metrics are batch means in nats
        (``loss``, ``reconstruction``, and for VAEs ``nelbo``, ``kl``, ``kl_weight``) and ``finite``.

    Examples:
        >>> state, metrics = vae.train_step(jax.random.key(1), config, state, batch)
    """
    k_data, k_z, k_drop = jax.random.split(key, 3)
    x = prepare_batch(k_data, config, batch["image"])
    labels = batch.get("label") if config.conditional else None

    if config.model == "ae":

        def loss_fn(params):
            return autoencoder_loss(config, params, x, labels, dropout_key=k_drop)

        kl_weight = None
    else:
        kl_weight = _kl_weight(config, state.step)

        def loss_fn(params):
            return negative_elbo_loss(k_z, config, params, x, labels, beta=kl_weight, dropout_key=k_drop)

    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    if kl_weight is not None:
        metrics["kl_weight"] = kl_weight
    new, ok = apply_if_finite(state, grads, loss, valid=jnp.all(_valid_pixels(config, jnp.asarray(batch["image"]))))
    return TrainStep(new, mark_skipped(metrics, ok, "loss"))


@jax.jit
def eval_step(key: jax.Array, config: VAEConfig, state: TrainState, batch) -> dict:
    """Evaluation metrics of one batch (no augmentation, no dropout; binarised with ``key`` if configured).

    Returns:
        ``{"nelbo" f32[B], "reconstruction" f32[B], "kl" f32[B]}``: per-example values in nats (for an AE,
        ``nelbo`` equals the reconstruction loss and ``kl`` is zero).

    Examples:
        >>> nelbo = vae.eval_step(jax.random.key(0), config, state, test_batch)["nelbo"].mean()
    """
    k_data, k_z = jax.random.split(key)
    x = prepare_batch(k_data, config, batch["image"], train=False)
    labels = batch.get("label") if config.conditional else None
    terms = elbo(k_z, config, state.params, x, labels)
    return {"nelbo": -terms.elbo, "reconstruction": -terms.log_likelihood, "kl": terms.kl}


# ------------------------------------------------------------------------------------------- inference


def sample(key: jax.Array, config: VAEConfig, state: TrainState, num_samples: int, labels=None, *,
           mean_image: bool = True) -> jax.Array:
    """Draw ``num_samples`` images from the prior: ``z ~ N(0, I)``, ``x ~ p(x | z (, y))``.

    Args:
        key: a ``jax.random`` key.
        config: the model config.
        state: a trained state (any of AE, VAE, cVAE; for the AE this is the lecture's question "can I
            feed any z to the decoder?").
        num_samples: number of samples ``N``.
        labels: ``int32[N]`` conditioning labels for the cVAE.
        mean_image: return the decoder's mean image ``E[x | z]`` (default); ``False`` draws binary pixels.

    Returns:
        ``f32[N, H, W, C]``.

    Examples:
        >>> images = vae.sample(jax.random.key(2), config, state, 16)
    """
    n = num_samples
    k_z, k_x = jax.random.split(key)
    if config.conditional:
        if labels is None or jnp.shape(labels) != (n,):
            raise ValueError(f"labels must be int32[{n}] for a conditional VAE, got "
                             f"{None if labels is None else jnp.shape(labels)}")
        labels = jnp.asarray(labels)
    z = jax.random.normal(k_z, (n, config.latent_dim))
    decoded = decode(config, state.params, z, labels)
    means = _mean_image(config, decoded)
    if mean_image:
        return means
    if config.likelihood == "bernoulli":
        return jax.random.bernoulli(k_x, means).astype(means.dtype)
    return means + jnp.exp(state.params["log_scale"]) * jax.random.normal(k_x, means.shape)


def reconstruct(config: VAEConfig, state: TrainState, images, labels=None) -> jax.Array:
    """Mean reconstruction ``E[x | z = mu(x)]`` of ``f32[B, H, W, C]`` images (posterior mean latent).

    Examples:
        >>> recon = vae.reconstruct(config, state, test_images[:8])
    """
    images = jnp.asarray(images)
    mean, _ = encode(config, state.params, images, labels)
    return _mean_image(config, decode(config, state.params, mean, labels))


def interpolate(config: VAEConfig, state: TrainState, image_a, image_b, num_steps: int, labels=None
                ) -> jax.Array:
    """Decode the straight line between the posterior means of two images.

    ``z_t = (1 - t) mu(a) + t mu(b)`` for ``t`` in ``linspace(0, 1, num_steps)``.

    Args:
        config: the model config.
        state: a trained state.
        image_a: ``f32[H, W, C]`` the start.
        image_b: ``f32[H, W, C]`` the end.
        num_steps: number of points, endpoints included.
        labels: ``int32[num_steps]`` for the cVAE (e.g. the same label repeated).

    Returns:
        ``f32[num_steps, H, W, C]`` mean images along the line.

    Examples:
        >>> row = vae.interpolate(config, state, images[0], images[1], 10)
    """
    pair = jnp.stack([jnp.asarray(image_a), jnp.asarray(image_b)])
    pair_labels = None if labels is None else jnp.asarray(labels)[jnp.array([0, -1])]
    mean, _ = encode(config, state.params, pair, pair_labels)
    t = jnp.linspace(0.0, 1.0, num_steps)[:, None]
    z = (1.0 - t) * mean[0] + t * mean[1]
    return _mean_image(config, decode(config, state.params, z, labels))
