"""GAN family: losses against hand computations, alternation, purity, compilation, short training runs.

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

from gm.deep import gan, gan_losses, metrics

IMAGE_SHAPE = (8, 8, 1)
TINY = dict(latent_dim=4, generator_hidden=(16,), discriminator_hidden=(16,), encoder_hidden=(16,), q_hidden=8,
            n_continuous=2, generator_features=(4,), discriminator_features=(4,), discriminator_learning_rate=3e-3,
            generator_learning_rate=1e-3)


def _tiny(model, **overrides):
    return gan.GANConfig(model=model, **{**TINY, **overrides})


@functools.cache
def _state(model, architecture="mlp", normalization="none"):
    """One initial state per tiny config: its optax transformation is a static field of the jitted steps, so
    sharing the state (steps are pure) lets every test reuse the steps compiled for that model."""
    extra = dict(discriminator_features=(4, 4)) if normalization == "batch" else {}  # a normalised conv layer
    config = _tiny(model, architecture=architecture, normalization=normalization,
                   conditioning="concat" if architecture == "dcgan" else "projection", **extra)
    return gan.create_state(jax.random.key(0), config, _batch())


def _batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": jnp.asarray(rng.uniform(size=(n, *IMAGE_SHAPE)), jnp.float32),
            "label": jnp.asarray(rng.integers(0, 10, n), jnp.int32)}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _trees_equal(a, b):
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(np.array_equal(x, y)), a, b)))


def _trees_differ(a, b):
    return not _trees_equal(a, b)


# --------------------------------------------------------------------------- losses by hand (float64)


def test_categorical_code_loss_is_the_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 5))
    codes = rng.integers(0, 5, 6)
    log_q = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.mean(log_q[np.arange(6), codes])
    np.testing.assert_allclose(gan.categorical_code_loss(jnp.asarray(logits, jnp.float32), jnp.asarray(codes)),
                               expected, rtol=1e-5)
    with pytest.raises(ValueError, match="codes"):
        gan.categorical_code_loss(jnp.zeros((6, 5)), jnp.zeros((5,), jnp.int32))


def test_continuous_code_loss_is_the_gaussian_negative_log_likelihood():
    from scipy import stats

    rng = np.random.default_rng(1)
    mean, log_std, codes = rng.normal(size=(3, 7, 2))
    expected = -np.mean(stats.norm(mean, np.exp(log_std)).logpdf(codes).sum(-1))
    got = gan.continuous_code_loss(*(jnp.asarray(a, jnp.float32) for a in (mean, log_std, codes)))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    with pytest.raises(ValueError, match="log_std"):
        gan.continuous_code_loss(jnp.zeros((7, 2)), jnp.zeros((7, 3)), jnp.zeros((7, 2)))


def test_mutual_information_loss_weights_its_two_terms():
    rng = np.random.default_rng(2)
    logits, mean, log_std, cont = (jnp.asarray(rng.normal(size=s), jnp.float32)
                                   for s in ((5, 10), (5, 2), (5, 2), (5, 2)))
    cat = jnp.asarray(rng.integers(0, 10, 5))
    out = gan.DiscriminatorOutput(jnp.zeros(5), jnp.zeros((5, 3)), logits, mean, log_std)
    latent = gan.Latent(jnp.zeros((5, 4)), categorical=cat, continuous=cont)
    expected = gan.categorical_code_loss(logits, cat) + 0.3 * gan.continuous_code_loss(mean, log_std, cont)
    np.testing.assert_allclose(gan.mutual_information_loss(out, latent, continuous_weight=0.3), expected, rtol=1e-6)
    # The bound log K + E log Q(c | x) is at most H(c) = log K and reaches it when Q is certain and right.
    certain = gan.DiscriminatorOutput(jnp.zeros(5), jnp.zeros((5, 3)), 50.0 * jax.nn.one_hot(cat, 10))
    assert float(gan.mutual_information_loss(certain, gan.Latent(jnp.zeros((5, 4)), categorical=cat))) < 1e-6


@pytest.mark.parametrize("kind", gan_losses.KINDS)
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
    np.testing.assert_allclose(gan.bigan_discriminator_loss(r, f, kind=kind), d_expected, rtol=1e-5)
    np.testing.assert_allclose(gan.bigan_generator_loss(r, f, kind=kind), g_expected, rtol=1e-5)


def test_discriminator_loss_fn_is_the_named_adversarial_loss_on_d_outputs():
    config = dataclasses.replace(_tiny("gan", loss="least_squares"), image_shape=IMAGE_SHAPE)
    batch = _batch()
    state = gan.create_state(jax.random.key(0), config, batch)
    latent = gan.sample_latent(jax.random.key(1), state.config, 16)

    @jax.jit
    def compute(d, g):
        loss, m = gan.discriminator_loss_fn(d, g, None, config, batch, latent)
        g_loss, _ = gan.generator_loss_fn(g, None, d, config, batch, latent)
        real = gan.discriminate(d, config, batch["image"]).logits
        fake = gan.discriminate(d, config, gan.generate_images(g, config, latent)).logits
        return loss, m["d_real_accuracy"], g_loss, real, fake

    loss, real_accuracy, g_loss, real, fake = compute(state.discriminator.params, state.generator.params)
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    np.testing.assert_allclose(loss, 0.5 * np.mean((real - 1) ** 2) + 0.5 * np.mean(fake**2), rtol=1e-5)
    np.testing.assert_allclose(real_accuracy, np.mean(real > 0.5))
    np.testing.assert_allclose(g_loss, 0.5 * np.mean((fake - 1) ** 2), rtol=1e-5)


def test_projection_discriminator_adds_the_label_embedding_inner_product():
    batch = _batch()
    state = _state("cgan")  # the cGAN's default discriminator is the projection one
    params = state.discriminator.params
    out = jax.jit(gan.discriminate, static_argnums=1)(params, state.config, batch["image"], labels=batch["label"])
    psi = np.asarray(out.features) @ np.asarray(params["logit"]["kernel"])[:, 0] + np.asarray(params["logit"]["bias"])
    embed = np.asarray(params["label_embedding"]["embedding"])[np.asarray(batch["label"])]
    np.testing.assert_allclose(out.logits, psi + (embed * np.asarray(out.features)).sum(-1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("info_trains_trunk", [True, False])
def test_info_trains_trunk_decides_whether_the_mi_term_reaches_the_trunk(info_trains_trunk):
    batch = _batch()
    state = _state("infogan")
    latent = gan.sample_latent(jax.random.key(1), state.config, 16)

    def trunk_grad(weight):
        config = dataclasses.replace(state.config, info_weight=weight, info_trains_trunk=info_trains_trunk)
        grads, _ = jax.grad(gan.discriminator_loss_fn, has_aux=True)(
            state.discriminator.params, state.generator.params, None, config, batch, latent)
        return grads

    without, with_info = jax.jit(lambda: (trunk_grad(0.0), trunk_grad(5.0)))()
    assert _trees_equal(without["trunk"], with_info["trunk"]) != info_trains_trunk
    assert _trees_differ(without["q_categorical"], with_info["q_categorical"])  # Q's head always learns
    out = gan.discriminate(state.discriminator.params, state.config, batch["image"])
    assert not state.config.learn_continuous_std and np.all(np.asarray(out.continuous_log_std) == 0.0)


def test_config_and_inputs_are_checked():
    with pytest.raises(ValueError, match="model"):
        gan.GANConfig(model="wgan")
    with pytest.raises(ValueError, match="loss"):
        gan.GANConfig(loss="hinge")
    with pytest.raises(ValueError, match="d_steps"):
        gan.GANConfig(d_steps=0)
    with pytest.raises(ValueError, match="normalization"):
        gan.GANConfig(normalization="batch")  # batch norm is for the DCGAN networks
    with pytest.raises(ValueError, match="upsample"):
        gan.GANConfig(architecture="dcgan", upsample="transposed")
    state = _state("cgan")
    with pytest.raises(ValueError, match="labels"):
        gan.generate(state, jax.random.key(0), 4, labels=jnp.zeros(3, jnp.int32))
    with pytest.raises(ValueError, match=r"batch\['image'\]"):
        gan.train_step(state, {"image": jnp.zeros((4, 9, 9, 1)), "label": jnp.zeros(4, jnp.int32)}, jax.random.key(0))
    with pytest.raises(ValueError, match="encoder"):
        gan.encode(state, _batch()["image"])


# ------------------------------------------------------------------------ alternation, purity, compilation


@pytest.mark.parametrize("model,architecture", [
    pytest.param("gan", "mlp", marks=pytest.mark.slow), pytest.param("cgan", "mlp", marks=pytest.mark.slow),
    ("infogan", "mlp"), ("bigan", "mlp"), pytest.param("cgan", "dcgan", marks=pytest.mark.slow),
    pytest.param("infogan", "dcgan_bn", marks=pytest.mark.slow)])
def test_each_step_updates_only_its_own_players(model, architecture):
    batch = _batch()
    state = _state(model, "dcgan", "batch") if architecture == "dcgan_bn" else _state(model, architecture)
    after_d, d_metrics = gan.discriminator_step(state, batch, jax.random.key(1))
    assert _trees_equal(after_d.generator, state.generator)
    assert _trees_equal(after_d.encoder, state.encoder)
    assert _trees_differ(after_d.discriminator.params, state.discriminator.params)
    assert int(after_d.discriminator.step) == 1 and int(after_d.generator.step) == 0
    after_g, g_metrics = gan.generator_step(state, batch, jax.random.key(2))
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
    new, _ = gan.train_step(state, batch, jax.random.key(1))
    assert int(new.discriminator.step) == 3 and int(new.generator.step) == 1 and int(new.step) == 1
    # The same as calling the two steps by hand with the keys train_step splits off.
    keys = jax.random.split(jax.random.key(1), 4)
    manual = state
    for k in keys[:3]:
        manual, _ = gan.discriminator_step(manual, batch, k)
    manual, _ = gan.generator_step(manual, batch, keys[3])
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(manual)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_train_step_is_pure_and_compiles_once():
    batch = _batch()
    state = _state("infogan")
    before = jax.tree.map(np.array, state)
    a, ma = gan.train_step(state, batch, jax.random.key(5))
    b, mb = gan.train_step(state, batch, jax.random.key(5))
    assert _trees_equal(a, b) and _trees_equal(ma, mb)  # same inputs, same outputs
    assert _trees_equal(state, before)  # the input state is untouched
    c, _ = gan.train_step(state, batch, jax.random.key(6))
    assert _trees_differ(a.generator.params, c.generator.params)  # the key is the only randomness
    size = gan.train_step._cache_size()
    for k in range(3):
        a, _ = gan.train_step(a, _batch(seed=k + 1), jax.random.key(k))
    assert gan.train_step._cache_size() == size  # later calls reuse the compiled step
    # A second state created from an equal config (other key) shares the compiled steps: the optimiser, a
    # static field of the state, comes from a cache keyed by its settings.
    again = gan.create_state(jax.random.key(7), _tiny("infogan", conditioning="projection"), batch)
    assert again.generator.tx is state.generator.tx and again.discriminator.tx is state.discriminator.tx
    gan.train_step(again, batch, jax.random.key(8))
    assert gan.train_step._cache_size() == size


@pytest.mark.parametrize("model", [pytest.param("gan", marks=pytest.mark.slow),
                                   pytest.param("cgan", marks=pytest.mark.slow), "infogan", "bigan"])
def test_short_run_on_tiny_data_moves_the_losses(model):
    """Forty steps on 16 fixed images: the discriminator learns to tell them from early fakes."""
    batch = _batch(seed=7)
    state = _state(model)
    history = []
    for step in range(40):
        state, m = gan.train_step(state, batch, jax.random.key(step))
        history.append(m)
    last = {k: float(np.mean([h[k] for h in history[-5:]])) for k in history[0]}
    assert last["d_adversarial"] < float(history[0]["d_adversarial"]) - 0.2  # D's loss moved down
    assert last["g_adversarial"] > float(history[0]["g_adversarial"]) + 0.1  # and G's up: D is winning
    assert all(np.isfinite(v) for v in last.values())
    if model == "infogan":  # Q learns to read the codes back from the fakes (G and Q both improve it)
        assert last["g_info"] < float(history[0]["g_info"]) - 0.2


def test_generate_encode_reconstruct_and_predict_codes_shapes():
    batch = _batch()
    bigan = _state("bigan")
    images = gan.generate(bigan, jax.random.key(1), 5)
    assert images.shape == (5, *IMAGE_SHAPE) and float(images.min()) >= 0 and float(images.max()) <= 1
    assert gan.encode(bigan, batch["image"]).shape == (16, TINY["latent_dim"])
    assert gan.reconstruct(bigan, batch["image"]).shape == (16, *IMAGE_SHAPE)
    infogan = _state("infogan")
    assert gan.predict_codes(infogan, batch["image"]).shape == (16, 10)
    swept = gan.generate(infogan, jax.random.key(1), 3, categorical=jnp.array([0, 1, 2]),
                         continuous=jnp.zeros((3, 2)))
    assert swept.shape == (3, *IMAGE_SHAPE)


def test_batch_norm_matches_hand_computation_and_reference_rows_fix_the_statistics():
    x = np.random.default_rng(0).normal(loc=3.0, scale=2.0, size=(6, 2, 2, 3))
    scale, bias = np.array([1.0, 2.0, 0.5]), np.array([0.0, -1.0, 1.0])
    params = {"params": {"scale": jnp.asarray(scale, jnp.float32), "bias": jnp.asarray(bias, jnp.float32)}}

    def by_hand(ref):
        mean, var = ref.mean(axis=(0, 1, 2)), ref.var(axis=(0, 1, 2))
        return (x - mean) / np.sqrt(var + 1e-5) * scale + bias

    np.testing.assert_allclose(gan.BatchNorm().apply(params, jnp.asarray(x, jnp.float32)), by_hand(x),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gan.BatchNorm(reference=4).apply(params, jnp.asarray(x, jnp.float32)),
                               by_hand(x[:4]), rtol=1e-4, atol=1e-4)


def test_batch_norm_models_normalise_real_and_fake_apart_and_generate_per_sample():
    state = _state("infogan", "dcgan", "batch")
    config, batch = state.config, _batch()
    latent = gan.sample_latent(jax.random.key(3), config, 16)

    @jax.jit
    def run(d_params, g_params):
        fake = gan.generate_images(g_params, config, latent)
        pair = gan._discriminate_pair(d_params, config, batch["image"], fake)
        apart = (gan.discriminate(d_params, config, batch["image"]), gan.discriminate(d_params, config, fake))
        # Inference normalises G with a fixed reference batch: a sample does not depend on the rest of its batch.
        whole = gan.generate_inference(g_params, config, latent)
        first = gan.generate_inference(g_params, config, jax.tree.map(lambda a: a[:3], latent))
        return pair, apart, whole, first

    pair, apart, whole, first = run(state.discriminator.params, state.generator.params)
    for got, want in zip(pair, apart):
        np.testing.assert_allclose(got.logits, want.logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(first, whole[:3], rtol=1e-5, atol=1e-6)
    assert whole.shape == (16, *IMAGE_SHAPE)


# ------------------------------------------------------------------------------------- GAN metrics


def test_linear_probe_separates_informative_from_random_features():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    centres = rng.normal(scale=4.0, size=(3, 5))
    informative = centres[labels] + rng.normal(size=(300, 5))
    noise = rng.normal(size=(300, 5))
    good = metrics.linear_probe_accuracy(informative[:200], labels[:200], informative[200:], labels[200:])
    bad = metrics.linear_probe_accuracy(noise[:200], labels[:200], noise[200:], labels[200:])
    assert good > 0.95 and bad < 0.6
    with pytest.raises(ValueError, match="test_features"):
        metrics.linear_probe_accuracy(informative[:200], labels[:200], informative[200:, :3], labels[200:])
