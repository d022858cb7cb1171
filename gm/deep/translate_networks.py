"""Networks of the image-translation models (flax linen): U-Net generator, latent encoder, PatchGAN.

Images are channels-last ``f32[B, H, W, C]`` with ``H = W`` divisible by ``2^len(features)``.

* :class:`UNetGenerator`: strided 3x3 convolutions down, nearest-neighbour resize + 3x3 convolution up
  (never transposed convolutions: about 4x slower on XLA's CPU backend), skip connections at every scale
  and a last full-resolution convolution that also sees the input; leaky ReLU everywhere (with ReLU in the
  up-sampling path a pix2pix generator's units all died within a few hundred steps, leaving a constant
  black output). A latent code ``z`` ``f32[B, L]`` is
  tiled over the image and concatenated to the input (BicycleGAN's "add_to_input") and, with
  ``inject="all"``, to the input of every down-sampling layer and of the last convolution as well
  (BicycleGAN's "add_all"), which makes ``z`` hard for the generator to ignore. The output is linear
  (callers clip to [0, 1] at inference): with a sigmoid the generators saturated at black on these mostly
  black images within a few hundred steps and stopped learning.
* :class:`LatentEncoder`: strided convolutions, then one dense layer to ``f32[B, 2 L]`` (mean and log
  variance of ``q(z | y)``; a deterministic encoder uses the mean only).
* :class:`PatchDiscriminator`: strided 4x4 convolutions with leaky ReLU, then a 3x3 convolution to one
  score per patch, ``f32[B, H / 2^S, W / 2^S, 1]`` (PatchGAN, Isola et al., 2017): each score judges one
  receptive field, and the losses average them like a batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gm.deep.networks import upsample_resize

__all__ = ["tile_latent", "UNetGenerator", "LatentEncoder", "PatchDiscriminator"]

_INJECT = ("input", "all")


def tile_latent(h: jax.Array, z: jax.Array | None) -> jax.Array:
    """Concatenate ``z`` ``f32[B, L]``, tiled over the image, to ``h`` ``f32[B, H, W, C]`` -> ``[B, H, W, C + L]``."""
    if z is None:
        return h
    if z.ndim != 2 or z.shape[0] != h.shape[0]:
        raise ValueError(f"z must be [B, L] with B = {h.shape[0]}, got shape {z.shape}")
    tiled = jnp.broadcast_to(z[:, None, None, :].astype(h.dtype), (*h.shape[:3], z.shape[1]))
    return jnp.concatenate([h, tiled], axis=-1)


def _leaky(x):
    return nn.leaky_relu(x, 0.2)


class UNetGenerator(nn.Module):
    """``(x f32[B, H, W, C_in], z f32[B, L] | None) -> f32[B, H, W, out_channels]`` (linear output).

    Attributes:
        features: channels of the down-sampling stages (one stride-2 convolution each).
        out_channels: output channels.
        inject: ``"input"`` (z concatenated to the input only) or ``"all"`` (also to every down-sampling
            layer and to the last convolution).
    """

    features: Sequence[int] = (32, 64, 128)
    out_channels: int = 1
    inject: str = "all"

    @nn.compact
    def __call__(self, x, z=None):
        if self.inject not in _INJECT:
            raise ValueError(f"inject must be one of {_INJECT}, got {self.inject!r}")
        stages = len(self.features)
        if x.ndim != 4 or x.shape[1] % 2**stages or x.shape[2] % 2**stages:
            raise ValueError(f"x must be [B, H, W, C] with H, W divisible by 2^{stages}, got shape {x.shape}")
        every = self.inject == "all"
        skips = []
        h = x
        for i, f in enumerate(self.features):
            if i == 0 or every:
                h = tile_latent(h, z)
            h = _leaky(nn.Conv(f, (3, 3), strides=(2, 2), padding="SAME")(h))
            skips.append(h)
        for i in reversed(range(stages - 1)):
            h = _leaky(nn.Conv(self.features[i], (3, 3), padding="SAME")(upsample_resize(h, 2)))
            h = jnp.concatenate([h, skips[i]], axis=-1)
        h = _leaky(nn.Conv(self.features[0], (3, 3), padding="SAME")(upsample_resize(h, 2)))
        h = jnp.concatenate([h, tile_latent(x, z) if every else x], axis=-1)
        h = _leaky(nn.Conv(self.features[0], (3, 3), padding="SAME")(h))
        return nn.Conv(self.out_channels, (3, 3), padding="SAME")(h)


class LatentEncoder(nn.Module):
    """``y f32[B, H, W, C] -> (mean f32[B, L], log_var f32[B, L])`` through strided 3x3 convolutions."""

    features: Sequence[int] = (32, 64)
    latent_dim: int = 8

    @nn.compact
    def __call__(self, y):
        h = y
        for f in self.features:
            h = _leaky(nn.Conv(f, (3, 3), strides=(2, 2), padding="SAME")(h))
        out = nn.Dense(2 * self.latent_dim)(h.reshape(h.shape[0], -1))
        return out[:, : self.latent_dim], out[:, self.latent_dim :]


class PatchDiscriminator(nn.Module):
    """``f32[B, H, W, C] -> f32[B, H / 2^S, W / 2^S, 1]`` patch scores (logits or least-squares scores).

    A conditional discriminator is called on the input and the output concatenated along channels.
    """

    features: Sequence[int] = (32, 64)

    @nn.compact
    def __call__(self, x):
        h = x
        for f in self.features:
            h = _leaky(nn.Conv(f, (4, 4), strides=(2, 2), padding="SAME")(h))
        return nn.Conv(1, (3, 3), padding="SAME")(h)
