"""The translation networks: tiling of the latent code, output shapes."""

import jax
import jax.numpy as jnp
import numpy as np

from gm.deep.translate_networks import LatentEncoder, PatchDiscriminator, UNetGenerator, tile_latent


def test_tile_latent_puts_the_code_at_every_pixel():
    # z is tiled: every pixel of the extra channels holds the code.
    h = tile_latent(jnp.zeros((2, 3, 3, 1)), jnp.asarray([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(h[1, 2, 0], [0.0, 3.0, 4.0])


def test_network_shapes():
    x, z = jnp.zeros((2, 8, 8, 1)), jnp.zeros((2, 3))
    out, _ = UNetGenerator((4, 8), 3, "all").init_with_output(jax.random.key(0), x, z)
    assert out.shape == (2, 8, 8, 3)
    (mean, log_var), _ = LatentEncoder((4,), 3).init_with_output(jax.random.key(0), x)
    assert mean.shape == log_var.shape == (2, 3)
    scores, _ = PatchDiscriminator((4, 4)).init_with_output(jax.random.key(0), x)
    assert scores.shape == (2, 2, 2, 1)
