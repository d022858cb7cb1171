"""What both translation families share: the L1 and KL losses against numpy, the learning-rate schedule and
the optimiser of both sides."""

import jax.numpy as jnp
import numpy as np
import pytest

from gm.deep import translate, translate_paired
from tests.deep.translation_oracles import np_l1


def small_config(model, **kw):
    return translate_paired.TranslationConfig(
        model=model, in_channels=1, out_channels=3, image_size=8, latent_dim=3,
        generator_features=(4, 8), encoder_features=(4,), discriminator_features=(4,), **kw,
    )


def test_basic_losses_match_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3, 5)).astype(np.float32)
    assert float(translate.l1_loss(jnp.asarray(a), jnp.asarray(b))) == pytest.approx(np_l1(a, b), rel=1e-6)
    assert float(translate.latent_regression_loss(jnp.asarray(a), jnp.asarray(b))) == pytest.approx(np_l1(a, b))
    assert float(translate.cycle_consistency_loss(jnp.asarray(a), jnp.asarray(b))) == pytest.approx(np_l1(a, b))
    assert float(translate.identity_loss(jnp.asarray(a), jnp.asarray(b))) == pytest.approx(np_l1(a, b))
    mean, log_var = a.astype(np.float64), 0.3 * b.astype(np.float64)
    # KL(N(m, s^2) || N(0, 1)) = log(1 / s) + (s^2 + m^2) / 2 - 1/2 per coordinate; summed, then batch mean.
    s = np.exp(0.5 * log_var)
    expected = (np.log(1 / s) + (s**2 + mean**2) / 2 - 0.5).sum(-1).mean()
    got = translate.kl_divergence_loss(jnp.asarray(mean, jnp.float32), jnp.asarray(log_var, jnp.float32))
    assert float(got) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="target shape"):
        translate.l1_loss(jnp.zeros((2, 3)), jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match="log_var"):
        translate.kl_divergence_loss(jnp.zeros((2, 3)), jnp.zeros((2, 4)))


def test_learning_rate_is_constant_then_decays_linearly_to_zero():
    config = small_config("pix2pix_noise", learning_rate=1e-3, total_steps=4, decay_steps=2)
    schedule = translate.learning_rate_schedule(config)
    # hand: constant for total - decay = 2 steps (and at step 2, the start of the ramp), then 1/2, then 0
    np.testing.assert_allclose([float(schedule(t)) for t in range(6)], [1e-3, 1e-3, 1e-3, 5e-4, 0.0, 0.0])
    assert translate.learning_rate_schedule(small_config("pix2pix_noise", learning_rate=1e-3)) == 1e-3
    with pytest.raises(ValueError, match="decay_steps"):
        small_config("pix2pix_noise", total_steps=2, decay_steps=3)
    # the optimiser follows it: Adam's first update is -lr * sign(g) (to eps), and 0 once the rate is 0
    config = small_config("pix2pix_noise", learning_rate=1e-3, total_steps=1, decay_steps=1)
    tx = translate.translation_optimizer(config)
    params, grads = {"w": jnp.ones(3)}, {"w": jnp.asarray([1.0, -2.0, 3.0])}
    opt = tx.init(params)
    first, opt = tx.update(grads, opt, params)
    np.testing.assert_allclose(first["w"], [-1e-3, 1e-3, -1e-3], rtol=1e-5)
    second, _ = tx.update(grads, opt, params)
    np.testing.assert_array_equal(second["w"], 0.0)
    # equal configs share one optimiser object (a static field of the state: no recompilation)
    assert translate.translation_optimizer(small_config("pix2pix_noise", learning_rate=1e-3, total_steps=1, decay_steps=1)) is tx
