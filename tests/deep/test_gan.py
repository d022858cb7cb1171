"""GAN family: the players' losses against hand computations, alternation, purity, compilation, short
training runs.

Every test uses the same tiny configs and batch shape, so a model's jitted steps compile once for the whole
module; the default suite checks the alternation for InfoGAN (Q's head in D) and BiGAN (G and E together),
the other models under ``-m slow``.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm.deep import gan, gan_networks

IMAGE_SHAPE = (8, 8, 1)
TINY = dict(latent_dim=4, generator_hidden=(16,), discriminator_hidden=(16,), encoder_hidden=(16,), q_hidden=8,
            n_continuous=2, generator_features=(4,), discriminator_features=(4,), discriminator_learning_rate=3e-3,
            generator_learning_rate=1e-3, image_shape=IMAGE_SHAPE)


def _tiny(model, **overrides):
    return gan.GANConfig(model=model, **{**TINY, **overrides})


@functools.cache
def _setup(model, architecture="mlp", normalization="none"):
    """``(config, initial state)`` per tiny config: the state's optax transformation is a static field of the
    jitted steps, so sharing the state (steps are pure) lets every test reuse the steps compiled for that
    model."""
    extra = dict(discriminator_features=(4, 4)) if normalization == "batch" else {}  # a normalised conv layer
    config = _tiny(model, architecture=architecture, normalization=normalization,
                   conditioning="concat" if architecture == "dcgan" else "projection", **extra)
    return config, gan.create_state(jax.random.key(0), config, _batch())


def _batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": jnp.asarray(rng.uniform(size=(n, *IMAGE_SHAPE)), jnp.float32),
            "label": jnp.asarray(rng.integers(0, 10, n), jnp.int32)}


def _trees_equal(a, b):
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(np.array_equal(x, y)), a, b)))


def _trees_differ(a, b):
    return not _trees_equal(a, b)


# --------------------------------------------------------------------------- losses by hand (float64)


def test_discriminator_loss_fn_is_the_named_adversarial_loss_on_d_outputs():
    config = _tiny("gan", loss="least_squares")
    batch = _batch()
    state = gan.create_state(jax.random.key(0), config, batch)
    latent = gan.sample_latent(jax.random.key(1), config, 16)

    @jax.jit
    def compute(d, g):
        loss, m = gan.discriminator_loss_fn(config, d, g, None, batch, latent)
        g_loss, _ = gan.generator_loss_fn(config, g, None, d, batch, latent)
        real = gan_networks.discriminate(config, d, batch["image"]).logits
        fake = gan_networks.discriminate(config, d, gan_networks.generate_images(config, g, latent)).logits
        return loss, m["d_real_accuracy"], g_loss, real, fake

    loss, real_accuracy, g_loss, real, fake = compute(state.discriminator.params, state.generator.params)
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    np.testing.assert_allclose(loss, 0.5 * np.mean((real - 1) ** 2) + 0.5 * np.mean(fake**2), rtol=1e-5)
    np.testing.assert_allclose(real_accuracy, np.mean(real > 0.5))
    np.testing.assert_allclose(g_loss, 0.5 * np.mean((fake - 1) ** 2), rtol=1e-5)


@pytest.mark.parametrize("info_trains_trunk", [True, False])
def test_info_trains_trunk_decides_whether_the_mi_term_reaches_the_trunk(info_trains_trunk):
    batch = _batch()
    base, state = _setup("infogan")
    latent = gan.sample_latent(jax.random.key(1), base, 16)

    def trunk_grad(weight):
        config = dataclasses.replace(base, info_weight=weight, info_trains_trunk=info_trains_trunk)
        grads, _ = jax.grad(gan.discriminator_loss_fn, argnums=1, has_aux=True)(
            config, state.discriminator.params, state.generator.params, None, batch, latent)
        return grads

    without, with_info = jax.jit(lambda: (trunk_grad(0.0), trunk_grad(5.0)))()
    assert _trees_equal(without["trunk"], with_info["trunk"]) != info_trains_trunk
    assert _trees_differ(without["q_categorical"], with_info["q_categorical"])  # Q's head always learns
    out = gan_networks.discriminate(base, state.discriminator.params, batch["image"])
    assert not base.learn_continuous_std and np.all(np.asarray(out.continuous_log_std) == 0.0)


def test_inputs_are_checked():
    config, state = _setup("cgan")
    with pytest.raises(ValueError, match="labels"):
        gan.generate(jax.random.key(0), config, state, 4, labels=jnp.zeros(3, jnp.int32))
    with pytest.raises(ValueError, match=r"batch\['image'\]"):
        gan.train_step(jax.random.key(0), config, state,
                       {"image": jnp.zeros((4, 9, 9, 1)), "label": jnp.zeros(4, jnp.int32)})
    with pytest.raises(ValueError, match=r"example_batch\['image'\] must be \[B, 28, 28, 1\]"):
        gan.create_state(jax.random.key(0), gan.GANConfig(), {"image": jnp.zeros((4, 8, 8, 1))})
    with pytest.raises(ValueError, match="encoder"):
        gan.encode(config, state, _batch()["image"])


# ------------------------------------------------------------------------ alternation, purity, compilation


@pytest.mark.parametrize("model,architecture", [
    pytest.param("gan", "mlp", marks=pytest.mark.slow), pytest.param("cgan", "mlp", marks=pytest.mark.slow),
    ("infogan", "mlp"), ("bigan", "mlp"), pytest.param("cgan", "dcgan", marks=pytest.mark.slow),
    pytest.param("infogan", "dcgan_bn", marks=pytest.mark.slow)])
def test_each_step_updates_only_its_own_players(model, architecture):
    batch = _batch()
    config, state = _setup(model, "dcgan", "batch") if architecture == "dcgan_bn" else _setup(model, architecture)
    after_d, d_metrics = gan.discriminator_step(jax.random.key(1), config, state, batch)
    assert _trees_equal(after_d.generator, state.generator)
    assert _trees_equal(after_d.encoder, state.encoder)
    assert _trees_differ(after_d.discriminator.params, state.discriminator.params)
    assert int(after_d.discriminator.step) == 1 and int(after_d.generator.step) == 0
    after_g, g_metrics = gan.generator_step(jax.random.key(2), config, state, batch)
    assert _trees_equal(after_g.discriminator, state.discriminator)
    assert _trees_differ(after_g.generator.params, state.generator.params)
    if model == "bigan":
        assert _trees_differ(after_g.encoder.params, state.encoder.params)
    if model == "infogan":  # Q's head lives in D: trained by D's step (with the MI term), fixed in G's
        assert _trees_differ(after_d.discriminator.params["q_categorical"], state.discriminator.params["q_categorical"])
        assert {"d_info", "g_info", "q_categorical_accuracy"} <= set(d_metrics) | set(g_metrics)
    for v in {**d_metrics, **g_metrics}.values():
        assert np.isfinite(float(v))


@pytest.mark.slow
def test_train_step_takes_d_steps_discriminator_steps_per_generator_step():
    config = _tiny("gan", d_steps=3)
    batch = _batch()
    state = gan.create_state(jax.random.key(0), config, batch)
    new, _ = gan.train_step(jax.random.key(1), config, state, batch)
    assert int(new.discriminator.step) == 3 and int(new.generator.step) == 1 and int(new.step) == 1
    # The same as calling the two steps by hand with the keys train_step splits off.
    keys = jax.random.split(jax.random.key(1), 4)
    manual = state
    for k in keys[:3]:
        manual, _ = gan.discriminator_step(k, config, manual, batch)
    manual, _ = gan.generator_step(keys[3], config, manual, batch)
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(manual)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_train_step_is_pure_and_compiles_once():
    batch = _batch()
    config, state = _setup("infogan")
    before = jax.tree.map(np.array, state)
    a, ma = gan.train_step(jax.random.key(5), config, state, batch)
    b, mb = gan.train_step(jax.random.key(5), config, state, batch)
    assert _trees_equal(a, b) and _trees_equal(ma, mb)  # same inputs, same outputs
    assert _trees_equal(state, before)  # the input state is untouched
    c, _ = gan.train_step(jax.random.key(6), config, state, batch)
    assert _trees_differ(a.generator.params, c.generator.params)  # the key is the only randomness
    size = gan.train_step._cache_size()
    for k in range(3):
        a, _ = gan.train_step(jax.random.key(k), config, a, _batch(seed=k + 1))
    assert gan.train_step._cache_size() == size  # later calls reuse the compiled step
    # A second state created from an equal config (other key) shares the compiled steps: the optimiser, a
    # static field of the state, comes from a cache keyed by its settings.
    equal = _tiny("infogan", conditioning="projection")
    assert equal == config and equal is not config
    again = gan.create_state(jax.random.key(7), equal, batch)
    assert again.generator.tx is state.generator.tx and again.discriminator.tx is state.discriminator.tx
    gan.train_step(jax.random.key(8), equal, again, batch)
    assert gan.train_step._cache_size() == size


@pytest.mark.parametrize("model", [pytest.param("gan", marks=pytest.mark.slow),
                                   pytest.param("cgan", marks=pytest.mark.slow), "infogan", "bigan"])
def test_short_run_on_tiny_data_moves_the_losses(model):
    """Forty steps on 16 fixed images: the discriminator learns to tell them from early fakes."""
    batch = _batch(seed=7)
    config, state = _setup(model)
    history = []
    for step in range(40):
        state, m = gan.train_step(jax.random.key(step), config, state, batch)
        history.append(m)
    last = {k: float(np.mean([h[k] for h in history[-5:]])) for k in history[0]}
    assert last["d_adversarial"] < float(history[0]["d_adversarial"]) - 0.2  # D's loss moved down
    assert last["g_adversarial"] > float(history[0]["g_adversarial"]) + 0.1  # and G's up: D is winning
    assert all(np.isfinite(v) for v in last.values())
    if model == "infogan":  # Q learns to read the codes back from the fakes (G and Q both improve it)
        assert last["g_info"] < float(history[0]["g_info"]) - 0.2


def test_generate_encode_reconstruct_and_predict_codes_shapes():
    batch = _batch()
    bigan_config, bigan = _setup("bigan")
    images = gan.generate(jax.random.key(1), bigan_config, bigan, 5)
    assert images.shape == (5, *IMAGE_SHAPE) and float(images.min()) >= 0 and float(images.max()) <= 1
    assert gan.encode(bigan_config, bigan, batch["image"]).shape == (16, TINY["latent_dim"])
    assert gan.reconstruct(bigan_config, bigan, batch["image"]).shape == (16, *IMAGE_SHAPE)
    infogan_config, infogan = _setup("infogan")
    assert gan.predict_codes(infogan_config, infogan, batch["image"]).shape == (16, 10)
    swept = gan.generate(jax.random.key(1), infogan_config, infogan, 3, categorical=jnp.array([0, 1, 2]),
                         continuous=jnp.zeros((3, 2)))
    assert swept.shape == (3, *IMAGE_SHAPE)


def test_batch_norm_models_normalise_real_and_fake_apart_and_generate_per_sample():
    config, state = _setup("infogan", "dcgan", "batch")
    batch = _batch()
    latent = gan.sample_latent(jax.random.key(3), config, 16)

    @jax.jit
    def run(d_params, g_params):
        fake = gan_networks.generate_images(config, g_params, latent)
        pair = gan.discriminate_pair(config, d_params, batch["image"], fake)
        apart = (gan_networks.discriminate(config, d_params, batch["image"]),
                 gan_networks.discriminate(config, d_params, fake))
        # Inference normalises G with a fixed reference batch: a sample does not depend on the rest of its batch.
        whole = gan_networks.generate_inference(config, g_params, latent)
        first = gan_networks.generate_inference(config, g_params, jax.tree.map(lambda a: a[:3], latent))
        return pair, apart, whole, first

    pair, apart, whole, first = run(state.discriminator.params, state.generator.params)
    for got, want in zip(pair, apart):
        np.testing.assert_allclose(got.logits, want.logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(first, whole[:3], rtol=1e-5, atol=1e-6)
    assert whole.shape == (16, *IMAGE_SHAPE)
