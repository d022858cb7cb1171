"""The VAE family's config and flax network: encoder ``x (, y) -> (mu, log_var)``, decoder ``z (, y) -> x``.

:class:`VAEConfig` holds every static setting of an autoencoder, VAE or conditional VAE (model,
networks, likelihood, optimiser, augmentation); :class:`VAEModel` builds the encoder and decoder of one
config from the shared layers of :mod:`gm.deep.networks`. The functions that train and use them are in
:mod:`gm.deep.vae`, which re-exports both classes.

Example:
    >>> from gm.deep import vae
    >>> config = vae.VAEConfig(model="cvae", latent_dim=16, condition_every_layer=True)
    >>> model = vae.VAEModel(config)   # flax module; vae.create_state initialises it
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from gm.deep import networks
from gm.deep.train import check_choices, check_learning_rates, static_config

__all__ = ["VAEConfig", "VAEModel"]


@static_config
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
        image_shape: ``(H, W, C)`` of the images (default: MNIST's); :func:`create_state` checks the example
            batch against it.
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
    image_shape: tuple[int, int, int] = (28, 28, 1)
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
        object.__setattr__(self, "image_shape", tuple(int(d) for d in self.image_shape))
        check_choices(self, {"model": ("vae", "ae", "cvae"), "encoder": ("mlp", "conv"), "decoder": ("mlp", "conv"),
                             "likelihood": ("bernoulli", "gaussian"), "upsample": ("resize", "pixel_shuffle")})
        if self.latent_dim < 1:
            raise ValueError(f"VAEConfig.latent_dim must be positive, got {self.latent_dim}")
        if self.binarize and self.likelihood != "bernoulli":
            raise ValueError("VAEConfig.binarize=True needs likelihood='bernoulli'")
        check_learning_rates(self, "learning_rate")
        networks.activation(self.act)

    @property
    def conditional(self) -> bool:
        """Whether the model is conditioned on a label (the cVAE)."""
        return self.model == "cvae"


class VAEModel(nn.Module):
    """Encoder ``x (, y) -> (mu, log_var)`` and decoder ``z (, y) -> logits or means`` of one config."""

    config: VAEConfig

    def setup(self):
        c = self.config
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
