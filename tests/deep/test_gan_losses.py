"""Adversarial losses against hand computations in float64 numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm.deep import gan_losses as L


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture
def logits():
    rng = np.random.default_rng(0)
    return rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 3)).astype(np.float32)


def test_minimax_and_non_saturating_match_hand_computation(logits):
    real, fake = logits
    d_real, d_fake = _sigmoid(real.astype(np.float64)), _sigmoid(fake.astype(np.float64))
    np.testing.assert_allclose(L.minimax_discriminator_loss(real, fake),
                               -np.mean(np.log(d_real)) - np.mean(np.log(1 - d_fake)), rtol=1e-5)
    np.testing.assert_allclose(L.minimax_generator_loss(fake), np.mean(np.log(1 - d_fake)), rtol=1e-5)
    np.testing.assert_allclose(L.non_saturating_generator_loss(fake), -np.mean(np.log(d_fake)), rtol=1e-5)


def test_least_squares_matches_hand_computation(logits):
    real, fake = logits
    np.testing.assert_allclose(L.least_squares_discriminator_loss(real, fake),
                               0.5 * np.mean((real - 1.0) ** 2) + 0.5 * np.mean(fake**2), rtol=1e-5)
    np.testing.assert_allclose(L.least_squares_generator_loss(fake), 0.5 * np.mean((fake - 1.0) ** 2), rtol=1e-5)


def test_dispatch_and_unknown_kind(logits):
    real, fake = logits
    assert L.discriminator_loss(real, fake, kind="least_squares") == L.least_squares_discriminator_loss(real, fake)
    assert L.generator_loss(fake, kind="minimax") == L.minimax_generator_loss(fake)
    assert L.generator_loss(fake) == L.non_saturating_generator_loss(fake)
    with pytest.raises(ValueError, match="hinge"):
        L.generator_loss(fake, kind="hinge")


def test_losses_finite_for_extreme_logits():
    big = jnp.array([-1e4, 1e4], jnp.float32)
    for value in (L.minimax_discriminator_loss(big, big), L.non_saturating_generator_loss(big),
                  jax.grad(L.non_saturating_generator_loss)(big)):
        assert np.all(np.isfinite(value))


def test_optimal_discriminator_value():
    # At D = 1/2 everywhere the minimax discriminator loss is 2 log 2 (the Jensen-Shannon optimum).
    np.testing.assert_allclose(L.minimax_discriminator_loss(jnp.zeros(5), jnp.zeros(5)), 2 * np.log(2), rtol=1e-6)
