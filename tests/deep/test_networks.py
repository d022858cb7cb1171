"""Shared layers: pixel shuffle's block layout, batch normalisation's statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm.deep import networks


def test_pixel_shuffle_places_channels_in_blocks():
    x = jnp.arange(1 * 2 * 2 * 4, dtype=jnp.float32).reshape(1, 2, 2, 4)
    y = np.asarray(networks.pixel_shuffle(x, 2))[0, :, :, 0]
    # Output pixel (2i + a, 2j + b) holds input channel 2a + b of pixel (i, j).
    for i in range(2):
        for j in range(2):
            np.testing.assert_array_equal(y[2 * i : 2 * i + 2, 2 * j : 2 * j + 2].ravel(), np.asarray(x[0, i, j]))
    with pytest.raises(ValueError, match="channels"):
        networks.pixel_shuffle(jnp.zeros((1, 2, 2, 3)), 2)


def test_batch_norm_uses_batch_or_reference_statistics():
    x = jax.random.normal(jax.random.key(0), (6, 3)) * 3.0 + 1.0
    y, variables = networks.BatchNorm().init_with_output(jax.random.key(1), x)
    np.testing.assert_allclose(y.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(0), 1.0, atol=1e-3)
    # Reference rows set the statistics; the rows after them do not influence each other.
    ref = networks.BatchNorm(reference=4)
    full = ref.apply(variables, x)
    np.testing.assert_allclose(full[:4].mean(0), 0.0, atol=1e-5)
    alone = ref.apply(variables, jnp.concatenate([x[:4], x[5:]]))
    np.testing.assert_allclose(alone[-1], full[-1], rtol=1e-6)


def test_batch_norm_matches_hand_computation_and_reference_rows_fix_the_statistics():
    x = np.random.default_rng(0).normal(loc=3.0, scale=2.0, size=(6, 2, 2, 3))
    scale, bias = np.array([1.0, 2.0, 0.5]), np.array([0.0, -1.0, 1.0])
    params = {"params": {"scale": jnp.asarray(scale, jnp.float32), "bias": jnp.asarray(bias, jnp.float32)}}

    def by_hand(ref):
        mean, var = ref.mean(axis=(0, 1, 2)), ref.var(axis=(0, 1, 2))
        return (x - mean) / np.sqrt(var + 1e-5) * scale + bias

    np.testing.assert_allclose(networks.BatchNorm().apply(params, jnp.asarray(x, jnp.float32)), by_hand(x),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(networks.BatchNorm(reference=4).apply(params, jnp.asarray(x, jnp.float32)),
                               by_hand(x[:4]), rtol=1e-4, atol=1e-4)
