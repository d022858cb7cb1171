"""Issue 18 in gm.deep: training never silently diverges, bad inputs and settings are rejected."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm.deep import gan, train, vae

SHAPE = (4, 4, 1)
GAUSSIAN = vae.VAEConfig(likelihood="gaussian", binarize=False, image_shape=SHAPE, hidden=(8,), latent_dim=2)
BERNOULLI = vae.VAEConfig(image_shape=SHAPE, hidden=(8,), latent_dim=2)
IMAGES = jnp.asarray(np.random.default_rng(0).uniform(size=(3,) + SHAPE), jnp.float32)


@pytest.fixture(scope="module")
def gaussian_state():
    return vae.create_state(jax.random.key(0), GAUSSIAN, {"image": IMAGES})


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_non_finite_pixel_skips_the_step_and_flags_it(gaussian_state, value):
    """The jitted step is unchecked: a NaN/inf pixel leaves the state as it was (no NaN parameters) and the
    metrics carry the marker (finite = 0, loss NaN)."""
    bad = {"image": IMAGES.at[1, 2, 3, 0].set(value)}
    state, metrics = vae.train_step(jax.random.key(1), GAUSSIAN, gaussian_state, bad)
    assert float(metrics["finite"]) == 0.0 and np.isnan(float(metrics["loss"]))
    assert int(state.step) == int(gaussian_state.step)
    for new, old in zip(jax.tree.leaves(state), jax.tree.leaves(gaussian_state)):
        np.testing.assert_array_equal(np.asarray(new), np.asarray(old))
    good, metrics = vae.train_step(jax.random.key(1), GAUSSIAN, gaussian_state, {"image": IMAGES})
    assert float(metrics["finite"]) == 1.0 and np.isfinite(float(metrics["loss"])) and int(good.step) == 1
    assert bool(train.all_finite(good.params))


def test_bernoulli_inputs_outside_unit_interval_are_rejected_not_binarised():
    state = vae.create_state(jax.random.key(0), BERNOULLI, {"image": IMAGES})
    with pytest.raises(ValueError, match=r"batch\['image'\]\[0, 0, 0, 0\] = 255.0: every pixel must be finite "
                                         r"and in \[0, 1\]"):
        vae.check_batch(BERNOULLI, {"image": np.full((2,) + SHAPE, 255.0, np.float32)})
    with pytest.raises(ValueError, match=r"\[1, 0, 0, 0\] = nan"):
        vae.check_batch(BERNOULLI, {"image": np.asarray(IMAGES.at[1, 0, 0, 0].set(np.nan))})
    vae.check_batch(BERNOULLI, {"image": np.asarray(IMAGES)})  # valid: nothing happens
    _, metrics = vae.train_step(jax.random.key(1), BERNOULLI, state, {"image": IMAGES * 255})
    assert float(metrics["finite"]) == 0.0  # inside jit: skipped and flagged, never trained on
    vae.check_batch(GAUSSIAN, {"image": np.asarray(IMAGES * 255)})  # grey values beyond 1 are fine for Gaussian


@pytest.mark.parametrize("rate", [np.nan, np.inf, 0.0, -1e-3])
def test_learning_rate_rejected_at_config_time(rate):
    with pytest.raises(ValueError, match=r"VAEConfig.learning_rate must be a finite positive number"):
        vae.VAEConfig(learning_rate=rate)
    with pytest.raises(ValueError, match=r"GANConfig.generator_learning_rate must be a finite positive"):
        gan.GANConfig(generator_learning_rate=rate)
    with pytest.raises(ValueError, match="learning_rate must be a finite positive number"):
        train.make_optimizer(rate)


def test_create_state_on_an_empty_batch():
    with pytest.raises(ValueError, match=r"example_batch\['image'\] is empty"):
        vae.create_state(jax.random.key(0), GAUSSIAN, {"image": IMAGES[:0]})


def test_keep_if_finite_and_all_finite():
    old, new = {"w": jnp.zeros(2)}, {"w": jnp.ones(2)}
    assert float(train.keep_if_finite(jnp.asarray(False), new, old)["w"][0]) == 0.0
    assert float(train.keep_if_finite(jnp.asarray(True), new, old)["w"][0]) == 1.0
    assert bool(train.all_finite(new, jnp.int32(3))) and not bool(train.all_finite(new, jnp.asarray(-jnp.inf)))
