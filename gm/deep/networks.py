"""Encoders, decoders and layers shared by the VAE and GAN families (flax linen).

Images are channels-last ``f32[B, H, W, C]``. A conditioning vector (a one-hot label, a code) is an optional
``f32[B, D]`` that encoders concatenate to their flattened features and decoders to their input.

Decoders upsample by nearest-neighbour resize or by pixel shuffle (depth-to-space), each followed by a 3x3
convolution, never by transposed convolutions: on XLA's CPU backend a transposed convolution ran about
4 times slower than pixel shuffle for the same output.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = [
    "activation",
    "MLP",
    "BatchNorm",
    "MLPEncoder",
    "ConvEncoder",
    "MLPDecoder",
    "ConvDecoder",
    "pixel_shuffle",
    "upsample_resize",
]

_ACTIVATIONS = {
    "relu": nn.relu,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "swish": nn.swish,
    "leaky_relu": lambda x: nn.leaky_relu(x, 0.2),
    "softplus": nn.softplus,
    "tanh": jnp.tanh,
}


def activation(name: str):
    """The activation function called ``name`` (relu, elu, gelu, swish, leaky_relu, softplus, tanh)."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}")
    return _ACTIVATIONS[name]


def pixel_shuffle(x: jax.Array, factor: int) -> jax.Array:
    """Depth-to-space: ``f32[B, H, W, C * r^2] -> f32[B, H * r, W * r, C]`` with ``r = factor``."""
    b, h, w, c = x.shape
    if c % (factor * factor):
        raise ValueError(f"x has {c} channels, not a multiple of factor^2 = {factor * factor}")
    out_c = c // (factor * factor)
    x = x.reshape(b, h, w, factor, factor, out_c)
    x = x.transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h * factor, w * factor, out_c)


def upsample_resize(x: jax.Array, factor: int) -> jax.Array:
    """Nearest-neighbour upsampling ``f32[B, H, W, C] -> f32[B, H * r, W * r, C]``."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def _with_condition(h: jax.Array, condition: jax.Array | None) -> jax.Array:
    if condition is None:
        return h
    if condition.ndim != 2 or condition.shape[0] != h.shape[0]:
        raise ValueError(f"condition must be [B, D] with B = {h.shape[0]}, got shape {condition.shape}")
    return jnp.concatenate([h, condition.astype(h.dtype)], axis=-1)


class MLP(nn.Module):
    """Dense layers with an activation (and dropout) between them; no activation after the last.

    A ``condition`` ``f32[B, D]`` is concatenated to the input, and with ``condition_every_layer`` to the
    input of every layer (which makes the condition hard to ignore).
    """

    features: Sequence[int]
    act: str = "relu"
    dropout: float = 0.0
    condition_every_layer: bool = False

    @nn.compact
    def __call__(self, x, condition=None, *, train: bool = False):
        act = activation(self.act)
        for i, f in enumerate(self.features):
            if condition is not None and (i == 0 or self.condition_every_layer):
                x = _with_condition(x, condition)
            x = nn.Dense(f)(x)
            if i < len(self.features) - 1:
                x = act(x)
                if self.dropout > 0:
                    x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return x


class BatchNorm(nn.Module):
    """Batch normalisation with batch statistics, ``f32[B, ..., F] -> f32[B, ..., F]``.

    ``y = (x - mean) / sqrt(var + eps) * scale + bias`` with the mean and variance over every axis but the
    last, taken over the first ``reference`` rows only when ``reference > 0`` (reference batch
    normalisation, Salimans et al., 2016: rows after the reference are normalised with its statistics and
    do not influence each other) and over the whole batch otherwise. No running averages: training and
    inference both normalise with the statistics of the batch (or its reference rows).

    Examples:
        >>> y, _ = BatchNorm().init_with_output(jax.random.key(0), jnp.arange(6.0).reshape(3, 2))
        >>> y.mean(0)  # ~ [0, 0]
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


class MLPEncoder(nn.Module):
    """``f32[B, H, W, C]`` (+ condition ``f32[B, D]``) -> ``f32[B, out_dim]`` through dense layers."""

    hidden: Sequence[int]
    out_dim: int
    act: str = "relu"
    dropout: float = 0.0
    condition_every_layer: bool = False

    @nn.compact
    def __call__(self, x, condition=None, *, train: bool = False):
        h = x.reshape(x.shape[0], -1)
        mlp = MLP((*self.hidden, self.out_dim), self.act, self.dropout, self.condition_every_layer)
        return mlp(h, condition, train=train)


class ConvEncoder(nn.Module):
    """Strided 3x3 convolutions (stride 2 each), then dense layers to ``f32[B, out_dim]``.

    ``f32[B, H, W, C]`` -> conv(features[0], stride 2) -> ... -> flatten (+ condition) -> hidden -> out_dim.
    """

    features: Sequence[int]
    hidden: Sequence[int]
    out_dim: int
    act: str = "relu"
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, condition=None, *, train: bool = False):
        act = activation(self.act)
        h = x
        for f in self.features:
            h = act(nn.Conv(f, (3, 3), strides=(2, 2), padding="SAME")(h))
        h = _with_condition(h.reshape(h.shape[0], -1), condition)
        if self.dropout > 0:
            h = nn.Dropout(self.dropout, deterministic=not train)(h)
        return MLP((*self.hidden, self.out_dim), self.act, self.dropout)(h, train=train)


class MLPDecoder(nn.Module):
    """``f32[B, L]`` (+ condition ``f32[B, D]``) -> ``f32[B, *out_shape]`` through dense layers."""

    hidden: Sequence[int]
    out_shape: tuple[int, int, int]
    act: str = "relu"
    dropout: float = 0.0
    condition_every_layer: bool = False

    @nn.compact
    def __call__(self, z, condition=None, *, train: bool = False):
        size = self.out_shape[0] * self.out_shape[1] * self.out_shape[2]
        mlp = MLP((*self.hidden, size), self.act, self.dropout, self.condition_every_layer)
        return mlp(z, condition, train=train).reshape(z.shape[0], *self.out_shape)


class ConvDecoder(nn.Module):
    """Dense to a small feature map, then (upsample x2, 3x3 conv) per stage, then a 3x3 conv to the output.

    ``f32[B, L]`` -> dense -> ``[B, H / 2^S, W / 2^S, features[0]]`` -> S stages -> ``f32[B, *out_shape]``
    with ``S = len(features)``. ``upsample`` is ``"resize"`` (nearest neighbour, then conv) or
    ``"pixel_shuffle"`` (conv to 4x channels, then depth-to-space).
    """

    features: Sequence[int]
    out_shape: tuple[int, int, int]
    hidden: Sequence[int] = ()
    upsample: str = "resize"
    act: str = "relu"
    dropout: float = 0.0

    @nn.compact
    def __call__(self, z, condition=None, *, train: bool = False):
        act = activation(self.act)
        if self.upsample not in ("resize", "pixel_shuffle"):
            raise ValueError(f"upsample must be 'resize' or 'pixel_shuffle', got {self.upsample!r}")
        height, width, channels = self.out_shape
        stages = len(self.features)
        if height % 2**stages or width % 2**stages:
            raise ValueError(
                f"out_shape {self.out_shape} is not divisible by 2^{stages} (len(features) = {stages})"
            )
        h0, w0 = height // 2**stages, width // 2**stages
        h = _with_condition(z, condition)
        if self.hidden:
            h = act(MLP(self.hidden, self.act, self.dropout)(h, train=train))
        h = act(nn.Dense(h0 * w0 * self.features[0])(h)).reshape(z.shape[0], h0, w0, self.features[0])
        for i, f in enumerate(self.features):
            out_f = self.features[i + 1] if i + 1 < stages else f
            if self.upsample == "resize":
                h = nn.Conv(out_f, (3, 3), padding="SAME")(upsample_resize(h, 2))
            else:
                h = pixel_shuffle(nn.Conv(4 * out_f, (3, 3), padding="SAME")(h), 2)
            h = act(h)
        return nn.Conv(channels, (3, 3), padding="SAME")(h)
