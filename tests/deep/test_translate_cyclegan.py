"""CycleGAN: its losses against a hand computation from the networks' outputs, the step's purity and
compilation, checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm.deep import translate_cyclegan
from gm.deep.translate_networks import PatchDiscriminator, UNetGenerator
from tests.deep.translation_oracles import np_l1, np_ls_discriminator, np_ls_generator

SIZE = 8


def test_cyclegan_losses_match_hand_computation():
    config = translate_cyclegan.CycleGANConfig(image_size=SIZE, generator_features=(4, 8), discriminator_features=(4,))
    rng = np.random.default_rng(2)
    batch = {"a": jnp.asarray(rng.uniform(size=(3, SIZE, SIZE, 1)), jnp.float32),
             "b": jnp.asarray(rng.uniform(size=(3, SIZE, SIZE, 1)), jnp.float32)}
    state = translate_cyclegan.create_state(jax.random.key(0), config, batch)
    gp, dp = state.gen.params, state.disc.params

    generator = jax.jit(lambda p, x: UNetGenerator((4, 8), 1, "input").apply({"params": p}, x))
    discriminator = jax.jit(lambda p, x: PatchDiscriminator((4,)).apply({"params": p}, x))

    def g(name, x):
        return generator(gp[name], x)

    def d(name, x):
        return discriminator(dp[name], x)

    a, b = batch["a"], batch["b"]
    fake_b, fake_a = g("g_ab", a), g("g_ba", b)
    expect = {
        "gan_ab": np_ls_generator(d("d_b", fake_b)), "gan_ba": np_ls_generator(d("d_a", fake_a)),
        "cycle_a": np_l1(g("g_ba", fake_b), a), "cycle_b": np_l1(g("g_ab", fake_a), b),
        "identity_a": np_l1(g("g_ba", a), a), "identity_b": np_l1(g("g_ab", b), b),
    }
    total = (expect["gan_ab"] + expect["gan_ba"] + 10 * (expect["cycle_a"] + expect["cycle_b"])
             + 5 * (expect["identity_a"] + expect["identity_b"]))
    loss, terms = jax.jit(translate_cyclegan.generator_loss)(config, gp, dp, batch)
    for k, v in expect.items():
        assert float(terms[k]) == pytest.approx(v, rel=2e-5), k
    assert float(loss) == pytest.approx(total, rel=2e-5)
    d_expect = np_ls_discriminator(d("d_a", a), d("d_a", fake_a)) + np_ls_discriminator(d("d_b", b), d("d_b", fake_b))
    d_loss = jax.jit(translate_cyclegan.discriminator_loss)(config, dp, gp, batch)
    assert float(d_loss) == pytest.approx(d_expect, rel=2e-5)
    no_identity = translate_cyclegan.CycleGANConfig(image_size=SIZE, generator_features=(4, 8),
                                                  discriminator_features=(4,), lambda_identity=0.0)
    loss0, terms0 = jax.jit(translate_cyclegan.generator_loss)(no_identity, gp, dp, batch)
    assert "identity_a" not in terms0
    assert float(loss0) == pytest.approx(total - 5 * (expect["identity_a"] + expect["identity_b"]), rel=2e-5)


@pytest.mark.slow
def test_cyclegan_step_is_pure_and_compiles_once():
    rng = np.random.default_rng(0)
    cyc = translate_cyclegan.CycleGANConfig(image_size=SIZE, generator_features=(4, 8), discriminator_features=(4,))
    ub = {"a": jnp.asarray(rng.uniform(size=(4, SIZE, SIZE, 1)), jnp.float32),
          "b": jnp.asarray(rng.uniform(size=(4, SIZE, SIZE, 1)), jnp.float32)}
    cstate = translate_cyclegan.create_state(jax.random.key(0), cyc, ub)
    c1, _ = translate_cyclegan.train_step(cyc, cstate, ub)
    c2, _ = translate_cyclegan.train_step(cyc, cstate, ub)
    for u, v in zip(jax.tree.leaves(c1), jax.tree.leaves(c2)):
        np.testing.assert_array_equal(u, v)
    size = translate_cyclegan.train_step._cache_size()
    translate_cyclegan.train_step(cyc, c1, {"a": ub["b"], "b": ub["a"]})
    assert translate_cyclegan.train_step._cache_size() == size
    assert int(c1.step) == 1 and int(c1.disc.step) == 1


def test_config_and_inputs_are_checked():
    with pytest.raises(ValueError, match="channels_a"):
        translate_cyclegan.CycleGANConfig(channels_a=1, channels_b=3)
    with pytest.raises(ValueError, match="image_size"):
        translate_cyclegan.CycleGANConfig(image_size=12)
    config = translate_cyclegan.CycleGANConfig(image_size=SIZE, generator_features=(4, 8), discriminator_features=(4,))
    with pytest.raises(ValueError, match=r"batch\['b'\]"):
        translate_cyclegan.create_state(jax.random.key(0), config, {"a": jnp.zeros((2, SIZE, SIZE, 1)),
                                                                     "b": jnp.zeros((2, SIZE, SIZE, 3))})
    with pytest.raises(ValueError, match="direction"):
        translate_cyclegan.translate(config, None, jnp.zeros((2, SIZE, SIZE, 1)), direction="ac")
