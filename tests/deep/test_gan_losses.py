"""Adversarial losses, InfoGAN's code losses and BiGAN's pair losses against hand computations in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm.deep import gan_losses as L
from gm.deep.gan_networks import DiscriminatorOutput, Latent


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


# ------------------------------------------------------------------------------- InfoGAN and BiGAN


def test_categorical_code_loss_is_the_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 5))
    codes = rng.integers(0, 5, 6)
    log_q = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.mean(log_q[np.arange(6), codes])
    np.testing.assert_allclose(L.categorical_code_loss(jnp.asarray(logits, jnp.float32), jnp.asarray(codes)),
                               expected, rtol=1e-5)
    with pytest.raises(ValueError, match="codes"):
        L.categorical_code_loss(jnp.zeros((6, 5)), jnp.zeros((5,), jnp.int32))


def test_continuous_code_loss_is_the_gaussian_negative_log_likelihood():
    from scipy import stats

    rng = np.random.default_rng(1)
    mean, log_std, codes = rng.normal(size=(3, 7, 2))
    expected = -np.mean(stats.norm(mean, np.exp(log_std)).logpdf(codes).sum(-1))
    got = L.continuous_code_loss(*(jnp.asarray(a, jnp.float32) for a in (mean, log_std, codes)))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    with pytest.raises(ValueError, match="log_std"):
        L.continuous_code_loss(jnp.zeros((7, 2)), jnp.zeros((7, 3)), jnp.zeros((7, 2)))


def test_mutual_information_loss_weights_its_two_terms():
    rng = np.random.default_rng(2)
    logits, mean, log_std, cont = (jnp.asarray(rng.normal(size=s), jnp.float32)
                                   for s in ((5, 10), (5, 2), (5, 2), (5, 2)))
    cat = jnp.asarray(rng.integers(0, 10, 5))
    out = DiscriminatorOutput(jnp.zeros(5), jnp.zeros((5, 3)), logits, mean, log_std)
    latent = Latent(jnp.zeros((5, 4)), categorical=cat, continuous=cont)
    expected = L.categorical_code_loss(logits, cat) + 0.3 * L.continuous_code_loss(mean, log_std, cont)
    np.testing.assert_allclose(L.mutual_information_loss(out, latent, continuous_weight=0.3), expected, rtol=1e-6)
    # The bound log K + E log Q(c | x) is at most H(c) = log K and reaches it when Q is certain and right.
    certain = DiscriminatorOutput(jnp.zeros(5), jnp.zeros((5, 3)), 50.0 * jax.nn.one_hot(cat, 10))
    assert float(L.mutual_information_loss(certain, Latent(jnp.zeros((5, 4)), categorical=cat))) < 1e-6


@pytest.mark.parametrize("kind", L.KINDS)
def test_bigan_losses_match_hand_computation(kind):
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(2, 9))  # D's logits on (x, E(x)) and on (G(z), z)
    d_real, d_fake = _sigmoid(real), _sigmoid(fake)
    if kind == "least_squares":
        d_expected = 0.5 * np.mean((real - 1) ** 2) + 0.5 * np.mean(fake**2)
        g_expected = 0.5 * np.mean((fake - 1) ** 2) + 0.5 * np.mean(real**2)
    else:
        d_expected = -np.mean(np.log(d_real)) - np.mean(np.log(1 - d_fake))
        if kind == "minimax":  # G and E minimise V = E log D(x, E(x)) + E log(1 - D(G(z), z))
            g_expected = np.mean(np.log(d_real)) + np.mean(np.log(1 - d_fake))
        else:  # labels swapped: -E log D(G(z), z) - E log(1 - D(x, E(x)))
            g_expected = -np.mean(np.log(d_fake)) - np.mean(np.log(1 - d_real))
    r, f = jnp.asarray(real, jnp.float32), jnp.asarray(fake, jnp.float32)
    np.testing.assert_allclose(L.bigan_discriminator_loss(r, f, kind=kind), d_expected, rtol=1e-5)
    np.testing.assert_allclose(L.bigan_generator_loss(r, f, kind=kind), g_expected, rtol=1e-5)
