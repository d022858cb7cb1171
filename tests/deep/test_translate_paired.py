"""Paired translation (pix2pix ... BicycleGAN): every loss against a hand computation from the networks'
outputs, the BicycleGAN update rule, purity and compilation of the step, checks and shapes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm.deep import metrics, translate_paired
from gm.deep.translate_networks import LatentEncoder, PatchDiscriminator, UNetGenerator
from tests.deep.translation_oracles import np_l1, np_ls_discriminator, np_ls_generator

SIZE = 8


def small_config(model, **kw):
    return translate_paired.TranslationConfig(
        model=model, in_channels=1, out_channels=3, image_size=SIZE, latent_dim=3,
        generator_features=(4, 8), encoder_features=(4,), discriminator_features=(4,), **kw,
    )


def small_batch(b=4, seed=0):
    rng = np.random.default_rng(seed)
    return {"input": jnp.asarray(rng.uniform(size=(b, SIZE, SIZE, 1)), jnp.float32),
            "target": jnp.asarray(rng.uniform(size=(b, SIZE, SIZE, 3)), jnp.float32)}


def small_noise(b=4, latent=3, seed=1):
    rng = np.random.default_rng(seed)
    return translate_paired.Noise(jnp.asarray(rng.normal(size=(b, latent)), jnp.float32),
                                  jnp.asarray(rng.normal(size=(b, latent)), jnp.float32))


# Tests call jitted versions of everything (one compilation per function instead of one per operation).
generator_loss = jax.jit(translate_paired.generator_loss)
discriminator_loss = jax.jit(translate_paired.discriminator_loss)


@functools.partial(jax.jit, static_argnums=0)
def _apply_g(config, params, x, z):
    module = UNetGenerator(config.generator_features, config.out_channels, config.inject)
    return module.apply({"params": params}, x, z if config.model != "pix2pix" else None)


@functools.partial(jax.jit, static_argnums=0)
def _apply_e(config, params, y):
    return LatentEncoder(config.encoder_features, config.latent_dim).apply({"params": params}, y)


@functools.partial(jax.jit, static_argnums=0)
def _apply_d(features, params, x):
    return PatchDiscriminator(features).apply({"params": params}, x)


class Nets:
    """Direct calls of the flax modules (not through gm.deep.translate_paired's helpers)."""

    def __init__(self, config, gen_params, disc_params):
        self.c, self.gp, self.dp = config, gen_params, disc_params

    def g(self, x, z):
        return _apply_g(self.c, self.gp["generator"], x, z)

    def e(self, y):
        return _apply_e(self.c, self.gp["encoder"], y)

    def d(self, name, x, y):
        return _apply_d(self.c.discriminator_features, self.dp[name], jnp.concatenate([x, y], -1))


# bicyclegan (which contains every cVAE-GAN and cLR-GAN term) runs by default; the rest are slow.
@pytest.mark.parametrize("model", [
    pytest.param(m, marks=() if m == "bicyclegan" else pytest.mark.slow) for m in translate_paired.PAIRED_MODELS
])
def test_paired_losses_match_hand_computation(model):
    config = small_config(model)
    batch, noise = small_batch(), small_noise()
    state = translate_paired.create_state(jax.random.key(0), config, batch)
    gp, dp = state.gen.params, state.disc.params
    nets = Nets(config, gp, dp)
    x, y = batch["input"], batch["target"]
    loss, terms = generator_loss(config, gp, dp, batch, noise)
    d_loss = discriminator_loss(config, dp, gp, batch, noise)
    if model in ("pix2pix", "pix2pix_noise"):
        fake = nets.g(x, noise.z_random)
        expect = {"gan": np_ls_generator(nets.d("d", x, fake)), "l1": np_l1(fake, y)}
        total = expect["gan"] + 100 * expect["l1"]
        d_expect = np_ls_discriminator(nets.d("d", x, y), nets.d("d", x, fake))
    elif model == "cae_gan":
        fake = nets.g(x, nets.e(y)[0])
        expect = {"gan": np_ls_generator(nets.d("d", x, fake)), "l1": np_l1(fake, y)}
        total = expect["gan"] + 10 * expect["l1"]
        d_expect = np_ls_discriminator(nets.d("d", x, y), nets.d("d", x, fake))
    elif model == "clr_gan":
        fake = nets.g(x, noise.z_random)
        expect = {"gan": np_ls_generator(nets.d("d", x, fake)), "latent": np_l1(nets.e(fake)[0], noise.z_random)}
        total = expect["gan"] + 0.5 * expect["latent"]
        d_expect = np_ls_discriminator(nets.d("d", x, y), nets.d("d", x, fake))
    else:
        mean, log_var = (np.asarray(v, np.float64) for v in nets.e(y))
        z = mean + np.exp(0.5 * log_var) * np.asarray(noise.eps)
        fake = nets.g(x, jnp.asarray(z, jnp.float32))
        kl = float((0.5 * (mean**2 + np.exp(log_var) - 1 - log_var)).sum(-1).mean())
        expect = {"gan": np_ls_generator(nets.d("d", x, fake)), "l1": np_l1(fake, y), "kl": kl}
        total = expect["gan"] + 10 * expect["l1"] + 0.01 * kl
        d_expect = np_ls_discriminator(nets.d("d", x, y), nets.d("d", x, fake))
        if model == "bicyclegan":
            fake_lr = nets.g(x, noise.z_random)
            expect["gan_lr"] = np_ls_generator(nets.d("d2", x, fake_lr))
            expect["latent"] = np_l1(nets.e(fake_lr)[0], noise.z_random)
            total += expect["gan_lr"] + 0.5 * expect["latent"]
            d_expect += np_ls_discriminator(nets.d("d2", x, y), nets.d("d2", x, fake_lr))
    assert set(terms) == set(expect)
    for k, v in expect.items():
        assert float(terms[k]) == pytest.approx(v, rel=2e-5), k
    assert float(loss) == pytest.approx(total, rel=2e-5)
    assert float(d_loss) == pytest.approx(d_expect, rel=2e-5)


@pytest.mark.slow
def test_pix2pix_ignores_z_and_uses_the_minimax_loss_when_asked():
    config = small_config("pix2pix", gan_kind="non_saturating", lambda_l1=3.0)
    batch, noise = small_batch(), small_noise()
    state = translate_paired.create_state(jax.random.key(0), config, batch)
    nets = Nets(config, state.gen.params, state.disc.params)
    fake = nets.g(batch["input"], None)
    logits = np.asarray(nets.d("d", batch["input"], fake), np.float64)
    expected = np.mean(np.log1p(np.exp(-logits))) + 3.0 * np_l1(fake, batch["target"])
    loss, _ = generator_loss(config, state.gen.params, state.disc.params, batch, noise)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    z = jax.random.normal(jax.random.key(1), (4, 3))
    np.testing.assert_array_equal(translate_paired.translate(config, state, batch["input"], z),
                                  translate_paired.translate(config, state, batch["input"]))


# ------------------------------------------------------------------------ the BicycleGAN update rule


def _norm(tree):
    return float(sum(jnp.sum(jnp.abs(leaf)) for leaf in jax.tree.leaves(tree)))


def test_latent_regression_updates_only_the_generator_in_bicyclegan():
    config = small_config("bicyclegan")
    batch, noise = small_batch(), small_noise()
    state = translate_paired.create_state(jax.random.key(0), config, batch)
    gp = state.gen.params
    grads = jax.jit(jax.grad(translate_paired.bicyclegan_latent_term, argnums=1))(config, gp, batch["input"],
                                                                               noise.z_random)
    # Exactly zero: the term cannot move the encoder, so the encoder's gradient of the whole BicycleGAN loss
    # is that of the loss without it; the generator's gradient does include it.
    assert _norm(grads["encoder"]) == 0.0
    assert _norm(grads["generator"]) > 0.0
    # cLR-GAN on its own trains the encoder with the latent term.
    clr = small_config("clr_gan")
    clr_state = translate_paired.create_state(jax.random.key(0), clr, batch)
    g = jax.jit(jax.grad(lambda p: translate_paired.clr_gan_loss(clr, p, clr_state.disc.params, batch,
                                                              noise).metrics["latent"]))(clr_state.gen.params)
    assert _norm(g["encoder"]) > 0.0


@pytest.mark.slow
def test_bicyclegan_encoder_step_is_the_same_with_any_latent_weight():
    """Through the jitted step: the encoder's new parameters do not depend on lambda_latent."""
    batch = small_batch()
    results = []
    for weight in (0.0, 0.5, 50.0):
        config = small_config("bicyclegan", lambda_latent=weight)
        state = translate_paired.create_state(jax.random.key(0), config, batch)
        new, _ = translate_paired.train_step(jax.random.key(3), config, state, batch)
        results.append(new.gen.params)
    for other in results[1:]:
        for got, want in zip(jax.tree.leaves(other["encoder"]), jax.tree.leaves(results[0]["encoder"])):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert _norm(jax.tree.map(lambda u, v: u - v, results[2]["generator"], results[0]["generator"])) > 0


# ------------------------------------------------------------------- purity, compilation, shapes


def test_train_steps_are_pure_and_compile_once():
    config = small_config("pix2pix_noise")
    batch = small_batch()
    state = translate_paired.create_state(jax.random.key(0), config, batch)
    before = jax.tree.map(np.array, state)
    new1, m1 = translate_paired.train_step(jax.random.key(5), config, state, batch)
    new2, m2 = translate_paired.train_step(jax.random.key(5), config, state, batch)
    for u, v in zip(jax.tree.leaves((new1, m1)), jax.tree.leaves((new2, m2))):
        np.testing.assert_array_equal(u, v)
    for u, v in zip(jax.tree.leaves(state), jax.tree.leaves(before)):
        np.testing.assert_array_equal(u, v)  # the input state is untouched
    assert int(new1.step) == 1 and int(new1.disc.step) == 1
    size = translate_paired.train_step._cache_size()
    translate_paired.train_step(jax.random.key(6), small_config("pix2pix_noise"), new1, small_batch(seed=9))
    assert translate_paired.train_step._cache_size() == size  # an equal config reuses the compilation


def test_config_and_shapes_are_checked():
    config = small_config("bicyclegan")
    batch = small_batch()
    with pytest.raises(ValueError, match="model"):
        translate_paired.TranslationConfig(model="pix3pix")
    with pytest.raises(ValueError, match="gan_kind"):
        translate_paired.TranslationConfig(gan_kind="wasserstein")
    with pytest.raises(ValueError, match="image_size"):
        translate_paired.TranslationConfig(image_size=12)
    with pytest.raises(ValueError, match=r"batch\['target'\]"):
        translate_paired.create_state(jax.random.key(0), config, {"input": batch["input"], "target": batch["input"]})
    with pytest.raises(ValueError, match=r"batch\['input'\]"):
        translate_paired.create_state(jax.random.key(0), config, {"input": batch["target"], "target": batch["target"]})


@pytest.mark.slow
def test_sampling_shapes_and_encoder():
    config = small_config("bicyclegan")
    batch = small_batch()
    state = translate_paired.create_state(jax.random.key(0), config, batch)
    s = translate_paired.sample(jax.random.key(1), config, state, batch["input"], 5)
    assert s.shape == (4, 5, SIZE, SIZE, 3) and float(s.min()) >= 0 and float(s.max()) <= 1
    assert translate_paired.encode(config, state, batch["target"]).shape == (4, 3)
    with pytest.raises(ValueError, match="no encoder"):
        pix2pix = small_config("pix2pix")
        translate_paired.encode(pix2pix, translate_paired.create_state(jax.random.key(0), pix2pix, batch),
                                batch["target"])


@pytest.mark.slow
def test_injected_z_changes_the_output_at_initialisation():
    for inject in ("input", "all"):
        config = small_config("pix2pix_noise", inject=inject)
        state = translate_paired.create_state(jax.random.key(0), config, small_batch())
        s = translate_paired.sample(jax.random.key(1), config, state, small_batch()["input"], 3)
        assert metrics.pairwise_diversity(s) > 0
