"""Image translation: every loss against a hand computation from the networks' outputs, the BicycleGAN
update rule, purity and compilation of the steps, and the translation metrics against numpy."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm.deep import metrics, translate
from gm.deep.translate_networks import LatentEncoder, PatchDiscriminator, UNetGenerator, tile_latent

SIZE = 8


def small_config(model, **kw):
    return translate.TranslationConfig(
        model=model, in_channels=1, out_channels=3, image_size=SIZE, latent_dim=3,
        generator_features=(4, 8), encoder_features=(4,), discriminator_features=(4,), **kw,
    )


def small_batch(b=4, seed=0):
    rng = np.random.default_rng(seed)
    return {"input": jnp.asarray(rng.uniform(size=(b, SIZE, SIZE, 1)), jnp.float32),
            "target": jnp.asarray(rng.uniform(size=(b, SIZE, SIZE, 3)), jnp.float32)}


def small_noise(b=4, latent=3, seed=1):
    rng = np.random.default_rng(seed)
    return translate.Noise(jnp.asarray(rng.normal(size=(b, latent)), jnp.float32),
                           jnp.asarray(rng.normal(size=(b, latent)), jnp.float32))


# ------------------------------------------------------------------------- hand-computed references


def np_l1(a, b):
    return float(np.mean(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def np_ls_generator(scores):
    return 0.5 * float(np.mean((np.asarray(scores, np.float64) - 1) ** 2))


def np_ls_discriminator(real, fake):
    return 0.5 * float(np.mean((np.asarray(real, np.float64) - 1) ** 2)) + 0.5 * float(
        np.mean(np.asarray(fake, np.float64) ** 2))


# Tests call jitted versions of everything (one compilation per function instead of one per operation).
generator_loss = jax.jit(translate.generator_loss, static_argnums=4)
discriminator_loss = jax.jit(translate.discriminator_loss, static_argnums=4)


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
    """Direct calls of the flax modules (not through gm.deep.translate's helpers)."""

    def __init__(self, config, gen_params, disc_params):
        self.c, self.gp, self.dp = config, gen_params, disc_params

    def g(self, x, z):
        return _apply_g(self.c, self.gp["generator"], x, z)

    def e(self, y):
        return _apply_e(self.c, self.gp["encoder"], y)

    def d(self, name, x, y):
        return _apply_d(self.c.discriminator_features, self.dp[name], jnp.concatenate([x, y], -1))


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


# bicyclegan (which contains every cVAE-GAN and cLR-GAN term) runs by default; the rest are slow.
@pytest.mark.parametrize("model", [
    pytest.param(m, marks=() if m == "bicyclegan" else pytest.mark.slow) for m in translate.PAIRED_MODELS
])
def test_paired_losses_match_hand_computation(model):
    config = small_config(model)
    batch, noise = small_batch(), small_noise()
    state = translate.create_state(jax.random.key(0), config, batch)
    gp, dp = state.gen.params, state.disc.params
    nets = Nets(config, gp, dp)
    x, y = batch["input"], batch["target"]
    loss, terms = generator_loss(gp, dp, batch, noise, config)
    d_loss = discriminator_loss(dp, gp, batch, noise, config)
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
    state = translate.create_state(jax.random.key(0), config, batch)
    nets = Nets(config, state.gen.params, state.disc.params)
    fake = nets.g(batch["input"], None)
    logits = np.asarray(nets.d("d", batch["input"], fake), np.float64)
    expected = np.mean(np.log1p(np.exp(-logits))) + 3.0 * np_l1(fake, batch["target"])
    loss, _ = generator_loss(state.gen.params, state.disc.params, batch, noise, config)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    z = jax.random.normal(jax.random.key(1), (4, 3))
    np.testing.assert_array_equal(translate.translate(state, batch["input"], z), translate.translate(state, batch["input"]))


def test_cyclegan_losses_match_hand_computation():
    config = translate.CycleGANConfig(image_size=SIZE, generator_features=(4, 8), discriminator_features=(4,))
    rng = np.random.default_rng(2)
    batch = {"a": jnp.asarray(rng.uniform(size=(3, SIZE, SIZE, 1)), jnp.float32),
             "b": jnp.asarray(rng.uniform(size=(3, SIZE, SIZE, 1)), jnp.float32)}
    state = translate.create_cyclegan_state(jax.random.key(0), config, batch)
    gp, dp = state.gen.params, state.disc.params

    generator = jax.jit(lambda p, x: UNetGenerator((4, 8), 1, "input").apply({"params": p}, x))

    def g(name, x):
        return generator(gp[name], x)

    def d(name, x):
        return _apply_d((4,), dp[name], x)

    a, b = batch["a"], batch["b"]
    fake_b, fake_a = g("g_ab", a), g("g_ba", b)
    expect = {
        "gan_ab": np_ls_generator(d("d_b", fake_b)), "gan_ba": np_ls_generator(d("d_a", fake_a)),
        "cycle_a": np_l1(g("g_ba", fake_b), a), "cycle_b": np_l1(g("g_ab", fake_a), b),
        "identity_a": np_l1(g("g_ba", a), a), "identity_b": np_l1(g("g_ab", b), b),
    }
    total = (expect["gan_ab"] + expect["gan_ba"] + 10 * (expect["cycle_a"] + expect["cycle_b"])
             + 5 * (expect["identity_a"] + expect["identity_b"]))
    loss, terms = jax.jit(translate.cyclegan_generator_loss, static_argnums=3)(gp, dp, batch, config)
    for k, v in expect.items():
        assert float(terms[k]) == pytest.approx(v, rel=2e-5), k
    assert float(loss) == pytest.approx(total, rel=2e-5)
    d_expect = np_ls_discriminator(d("d_a", a), d("d_a", fake_a)) + np_ls_discriminator(d("d_b", b), d("d_b", fake_b))
    d_loss = jax.jit(translate.cyclegan_discriminator_loss, static_argnums=3)(dp, gp, batch, config)
    assert float(d_loss) == pytest.approx(d_expect, rel=2e-5)
    no_identity = translate.CycleGANConfig(image_size=SIZE, generator_features=(4, 8), discriminator_features=(4,),
                                           lambda_identity=0.0)
    loss0, terms0 = jax.jit(translate.cyclegan_generator_loss, static_argnums=3)(gp, dp, batch, no_identity)
    assert "identity_a" not in terms0
    assert float(loss0) == pytest.approx(total - 5 * (expect["identity_a"] + expect["identity_b"]), rel=2e-5)


# ------------------------------------------------------------------------ the BicycleGAN update rule


def _norm(tree):
    return float(sum(jnp.sum(jnp.abs(leaf)) for leaf in jax.tree.leaves(tree)))


def test_latent_regression_updates_only_the_generator_in_bicyclegan():
    config = small_config("bicyclegan")
    batch, noise = small_batch(), small_noise()
    state = translate.create_state(jax.random.key(0), config, batch)
    gp = state.gen.params
    grads = jax.jit(jax.grad(translate.bicyclegan_latent_term), static_argnums=3)(gp, batch["input"], noise.z_random,
                                                                                 config)
    # Exactly zero: the term cannot move the encoder, so the encoder's gradient of the whole BicycleGAN loss
    # is that of the loss without it; the generator's gradient does include it.
    assert _norm(grads["encoder"]) == 0.0
    assert _norm(grads["generator"]) > 0.0
    # cLR-GAN on its own trains the encoder with the latent term.
    clr = small_config("clr_gan")
    clr_state = translate.create_state(jax.random.key(0), clr, batch)
    g = jax.jit(jax.grad(lambda p: translate.clr_gan_loss(p, clr_state.disc.params, batch, noise, clr)[1]["latent"]))(
        clr_state.gen.params)
    assert _norm(g["encoder"]) > 0.0


@pytest.mark.slow
def test_bicyclegan_encoder_step_is_the_same_with_any_latent_weight():
    """Through the jitted step: the encoder's new parameters do not depend on lambda_latent."""
    batch = small_batch()
    results = []
    for weight in (0.0, 0.5, 50.0):
        config = small_config("bicyclegan", lambda_latent=weight)
        state = translate.create_state(jax.random.key(0), config, batch)
        new, _ = translate.train_step(state, batch, jax.random.key(3))
        results.append(new.gen.params)
    for other in results[1:]:
        for got, want in zip(jax.tree.leaves(other["encoder"]), jax.tree.leaves(results[0]["encoder"])):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert _norm(jax.tree.map(lambda u, v: u - v, results[2]["generator"], results[0]["generator"])) > 0


# ------------------------------------------------------------------- purity, compilation, shapes


def test_train_steps_are_pure_and_compile_once():
    config = small_config("pix2pix_noise")
    batch = small_batch()
    state = translate.create_state(jax.random.key(0), config, batch)
    before = jax.tree.map(np.array, state)
    new1, m1 = translate.train_step(state, batch, jax.random.key(5))
    new2, m2 = translate.train_step(state, batch, jax.random.key(5))
    for u, v in zip(jax.tree.leaves((new1, m1)), jax.tree.leaves((new2, m2))):
        np.testing.assert_array_equal(u, v)
    for u, v in zip(jax.tree.leaves(state), jax.tree.leaves(before)):
        np.testing.assert_array_equal(u, v)  # the input state is untouched
    assert int(new1.step) == 1 and int(new1.disc.step) == 1
    size = translate.train_step._cache_size()
    translate.train_step(new1, small_batch(seed=9), jax.random.key(6))
    assert translate.train_step._cache_size() == size



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
    tx = translate._adam(config)
    params, grads = {"w": jnp.ones(3)}, {"w": jnp.asarray([1.0, -2.0, 3.0])}
    opt = tx.init(params)
    first, opt = tx.update(grads, opt, params)
    np.testing.assert_allclose(first["w"], [-1e-3, 1e-3, -1e-3], rtol=1e-5)
    second, _ = tx.update(grads, opt, params)
    np.testing.assert_array_equal(second["w"], 0.0)
    # equal configs share one optimiser object (a static field of the state: no recompilation)
    assert translate._adam(small_config("pix2pix_noise", learning_rate=1e-3, total_steps=1, decay_steps=1)) is tx


@pytest.mark.slow
def test_cyclegan_step_is_pure_and_compiles_once():
    batch = small_batch()
    cyc = translate.CycleGANConfig(image_size=SIZE, generator_features=(4, 8), discriminator_features=(4,))
    ub = {"a": batch["input"], "b": batch["target"][..., :1]}
    cstate = translate.create_cyclegan_state(jax.random.key(0), cyc, ub)
    c1, _ = translate.cyclegan_train_step(cstate, ub, None)
    c2, _ = translate.cyclegan_train_step(cstate, ub, None)
    for u, v in zip(jax.tree.leaves(c1), jax.tree.leaves(c2)):
        np.testing.assert_array_equal(u, v)
    size = translate.cyclegan_train_step._cache_size()
    translate.cyclegan_train_step(c1, {"a": ub["b"], "b": ub["a"]}, None)
    assert translate.cyclegan_train_step._cache_size() == size


def test_configs_and_shapes_are_checked():
    config = small_config("bicyclegan")
    batch = small_batch()
    with pytest.raises(ValueError, match="model"):
        translate.TranslationConfig(model="pix3pix")
    with pytest.raises(ValueError, match="gan_kind"):
        translate.TranslationConfig(gan_kind="wasserstein")
    with pytest.raises(ValueError, match="image_size"):
        translate.TranslationConfig(image_size=12)
    with pytest.raises(ValueError, match="channels_a"):
        translate.CycleGANConfig(channels_a=1, channels_b=3)
    with pytest.raises(ValueError, match=r"batch\['target'\]"):
        translate.create_state(jax.random.key(0), config, {"input": batch["input"], "target": batch["input"]})
    with pytest.raises(ValueError, match=r"batch\['input'\]"):
        translate.create_state(jax.random.key(0), config, {"input": batch["target"], "target": batch["target"]})
    with pytest.raises(ValueError, match="direction"):
        translate.cyclegan_translate(None, batch["input"], direction="ac")
    # z is tiled: every pixel of the extra channels holds the code.
    h = tile_latent(jnp.zeros((2, 3, 3, 1)), jnp.asarray([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(h[1, 2, 0], [0.0, 3.0, 4.0])


@pytest.mark.slow
def test_sampling_shapes_and_encoder():
    config = small_config("bicyclegan")
    batch = small_batch()
    state = translate.create_state(jax.random.key(0), config, batch)
    s = translate.sample(jax.random.key(1), state, batch["input"], 5)
    assert s.shape == (4, 5, SIZE, SIZE, 3) and float(s.min()) >= 0 and float(s.max()) <= 1
    assert translate.encode(state, batch["target"]).shape == (4, 3)
    with pytest.raises(ValueError, match="no encoder"):
        translate.encode(translate.create_state(jax.random.key(0), small_config("pix2pix"), batch), batch["target"])


@pytest.mark.slow
def test_injected_z_changes_the_output_at_initialisation():
    for inject in ("input", "all"):
        config = small_config("pix2pix_noise", inject=inject)
        state = translate.create_state(jax.random.key(0), config, small_batch())
        s = translate.sample(jax.random.key(1), state, small_batch()["input"], 3)
        assert metrics.pairwise_diversity(s) > 0


# ------------------------------------------------------------------------------------------ metrics


def test_translation_metrics_match_hand_computation():
    rng = np.random.default_rng(0)
    samples = rng.uniform(size=(3, 4, 2, 2, 3)).astype(np.float32)
    pairs = [np.abs(samples[n, i] - samples[n, j]).mean() for n in range(3)
             for i, j in itertools.combinations(range(4), 2)]
    assert metrics.pairwise_diversity(samples) == pytest.approx(np.mean(pairs), rel=1e-6)
    assert metrics.pairwise_diversity(np.repeat(samples[:, :1], 4, axis=1)) == 0.0
    with pytest.raises(ValueError, match="S >= 2"):
        metrics.pairwise_diversity(samples[:, :1])
    z, zh = rng.normal(size=(2, 5, 3))
    assert metrics.latent_recovery_error(zh, z) == pytest.approx(np.abs(zh - z).mean())
    x, xc = rng.uniform(size=(2, 4, 2, 2, 1))
    assert metrics.cycle_reconstruction_error(x, xc) == pytest.approx(np.abs(x - xc).mean())
    with pytest.raises(ValueError, match="cycled"):
        metrics.cycle_reconstruction_error(x, xc[:2])


def test_class_preservation_and_channel_features_use_the_classifier():
    config = metrics.ClassifierConfig(image_shape=(8, 8, 1), features=(4,), hidden=6)
    params = jax.jit(metrics.DigitClassifier(config).init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))["params"]
    classifier = metrics.Classifier(params, config)
    rng = np.random.default_rng(0)
    grey = rng.uniform(size=(10, 8, 8, 1)).astype(np.float32)
    logits, feats = metrics.classify(classifier, grey)
    labels = logits.argmax(-1)
    assert metrics.class_preservation(classifier, grey, labels) == 1.0
    # Colour images are read in grey (the maximum over channels).
    colour = np.concatenate([grey, 0.5 * grey, 0.1 * grey], -1)
    assert metrics.class_preservation(classifier, colour, labels) == 1.0
    assert metrics.class_preservation(classifier, grey, (labels + 1) % 10) == 0.0
    cf = metrics.channel_features(classifier, colour)
    assert cf.shape == (10, 18)
    np.testing.assert_allclose(cf[:, :6], feats, rtol=1e-6)
    np.testing.assert_allclose(cf[:, 6:12], metrics.classify(classifier, 0.5 * grey)[1], rtol=1e-6)
    assert metrics.translation_frechet_distance(classifier, colour, colour) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="source_labels"):
        metrics.class_preservation(classifier, grey, labels[:3])
