"""VAE family: densities and bounds against closed forms, purity, compilation, training, checkpoints."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gm import data
from gm.deep import train, vae

# ------------------------------------- a linear-Gaussian VAE: the ELBO and log p(x) in closed form

D_SHAPE = (2, 2, 1)
LATENT = 2


def linear_gaussian_vae():
    """Encoder and decoder are single dense layers (hidden=()), the likelihood Gaussian: probabilistic PCA.

    log p(x) = log N(x; b, W W^T + sigma^2 I) and
    ELBO(x) = log N(x; W mu + b, sigma^2 I) - tr(W diag(s^2) W^T) / (2 sigma^2) - KL(q || p).
    """
    config = vae.VAEConfig(
        latent_dim=LATENT, hidden=(), likelihood="gaussian", binarize=False, image_shape=D_SHAPE
    )
    x = jax.random.normal(jax.random.key(3), (3, *D_SHAPE))
    state = vae.create_state(jax.random.key(0), config, {"image": x})
    assert float(state.params["log_scale"]) == 0.0  # the Gaussian likelihood learns one log sigma, init 0
    params = jax.tree.map(lambda p: p, state.params)
    sigma = 0.6
    params["log_scale"] = jnp.asarray(math.log(sigma), jnp.float32)
    # Encoder: the exact posterior mean M^-1 W^T (x - b) with M = W^T W + sigma^2 I, and twice the exact
    # posterior variances, so q is close to but not equal to p(z | x) and importance sampling converges.
    w = np.asarray(params["decoder"]["MLP_0"]["Dense_0"]["kernel"], np.float64).T  # [D, L]
    b = np.asarray(params["decoder"]["MLP_0"]["Dense_0"]["bias"], np.float64)
    m_inv = np.linalg.inv(w.T @ w + sigma**2 * np.eye(LATENT))
    gain = m_inv @ w.T  # [L, D]
    kernel = np.concatenate([gain.T, np.zeros_like(gain.T)], axis=1)
    bias = np.concatenate([-gain @ b, np.log(2 * sigma**2 * np.diag(m_inv))])
    params["encoder"] = {"MLP_0": {"Dense_0": {"kernel": jnp.asarray(kernel, jnp.float32), "bias": jnp.asarray(bias, jnp.float32)}}}
    return config, params, x


def closed_forms(config, params, x):
    x = np.asarray(x, np.float64).reshape(x.shape[0], -1)
    w = np.asarray(params["decoder"]["MLP_0"]["Dense_0"]["kernel"], np.float64).T  # [D, L]
    b = np.asarray(params["decoder"]["MLP_0"]["Dense_0"]["bias"], np.float64)
    sigma = 0.6
    mean, log_var = (np.asarray(a, np.float64) for a in vae.encode(config, params, jnp.asarray(x).reshape(-1, *D_SHAPE).astype(jnp.float32)))
    s2 = np.exp(log_var)
    kl = 0.5 * (s2 + mean**2 - 1 - log_var).sum(-1)
    recon = stats.norm(mean @ w.T + b, sigma).logpdf(x).sum(-1) - (s2 @ (w**2).sum(0)[:, None]).ravel() / (2 * sigma**2)
    log_px = stats.multivariate_normal(b, w @ w.T + sigma**2 * np.eye(len(b))).logpdf(x)
    return recon - kl, log_px


def test_elbo_expectation_matches_closed_form_and_is_below_log_evidence():
    config, params, x = linear_gaussian_vae()
    expected_elbo, log_px = closed_forms(config, params, x)
    keys = jax.random.split(jax.random.key(1), 20_000)
    draws = jax.jit(jax.vmap(lambda k: vae.elbo(k, config, params, x).elbo))(keys)
    np.testing.assert_allclose(np.asarray(draws.mean(0)), expected_elbo, atol=0.05)
    assert np.all(expected_elbo < log_px)


def test_iwae_increases_with_k_towards_log_evidence():
    config, params, x = linear_gaussian_vae()
    expected_elbo, log_px = closed_forms(config, params, x)

    def bound(k, reps, chunk=None):
        f = jax.jit(jax.vmap(lambda key: vae.iwae_bound(key, config, params, x, num_samples=k, chunk_size=chunk)))
        draws = np.asarray(f(jax.random.split(jax.random.key(k), reps)), np.float64)
        return draws.mean(0), draws.std(0) / np.sqrt(reps)  # mean and its standard error, per example

    (l1, se1), (l10, se10), (l100, se100), (l1000, se1000) = (
        bound(1, 20_000), bound(10, 1000), bound(100, 100), bound(1000, 10, 100)
    )
    # IWAE-1 is an unbiased estimate of the ELBO (with a Monte Carlo KL instead of the analytic one).
    assert np.all(np.abs(l1 - expected_elbo) < 5 * se1 + 1e-3), (l1, expected_elbo, se1)
    # Increasing in k, by margins far beyond the standard errors, and below log p(x).
    # (A later step may add little once the bound is nearly tight, so those steps only must not decrease.)
    assert np.all(l10 - l1 > 5 * (se1 + se10))
    assert np.all(l100 - l10 > -4 * (se10 + se100)) and np.all(l1000 - l100 > -4 * (se100 + se1000))
    assert np.all(l1000 - l1 > 0.2)
    assert np.all(l1000 <= log_px + 5 * se1000 + 1e-3)
    np.testing.assert_allclose(l1000, log_px, atol=0.05)
    with pytest.raises(ValueError, match="chunk_size"):
        vae.iwae_bound(jax.random.key(0), config, params, x, num_samples=10, chunk_size=3)


# --------------------------------------------------------------------------- networks and shapes


@pytest.mark.parametrize(
    "model,encoder,decoder,upsample,every_layer",
    [
        ("vae", "conv", "conv", "resize", False),
        ("cvae", "conv", "conv", "pixel_shuffle", False),
        ("ae", "mlp", "mlp", "resize", False),
        ("cvae", "mlp", "mlp", "resize", True),
    ],
)
def test_models_shapes_and_functions(model, encoder, decoder, upsample, every_layer):
    config = vae.VAEConfig(
        model=model, encoder=encoder, decoder=decoder, upsample=upsample, latent_dim=3, hidden=(16, 8),
        conv_features=(4, 8), condition_every_layer=every_layer, image_shape=(8, 8, 1),
    )
    images = jnp.asarray(np.random.default_rng(0).uniform(size=(5, 8, 8, 1)), jnp.float32)
    labels = jnp.arange(5) % 10
    state = vae.create_state(jax.random.key(0), config, {"image": images, "label": labels})
    cond = model == "cvae"
    if every_layer:  # the one-hot label enters every dense layer: 10 extra input rows in each kernel
        assert state.params["decoder"]["MLP_0"]["Dense_1"]["kernel"].shape == (8 + 10, 16)
        assert state.params["encoder"]["MLP_0"]["Dense_1"]["kernel"].shape == (16 + 10, 8)
    lab = labels if cond else None

    @jax.jit  # one compilation for all the functions (eager flax would compile op by op)
    def everything(state):
        mean, log_var = vae.encode(config, state.params, images, lab)
        recon = vae.reconstruct(config, state, images, lab)
        samples = vae.sample(jax.random.key(1), config, state, 4, labels=jnp.arange(4) if cond else None)
        path = vae.interpolate(config, state, images[0], images[1], 6, labels=jnp.full(6, 2) if cond else None)
        first = vae.reconstruct(config, state, images[:1], jnp.full(1, 2) if cond else None)
        return mean, log_var, recon, samples, path, first

    mean, log_var, recon, samples, path, first = everything(state)
    assert mean.shape == log_var.shape == (5, 3)
    assert recon.shape == (5, 8, 8, 1)
    assert samples.shape == (4, 8, 8, 1) and float(samples.min()) >= 0 and float(samples.max()) <= 1
    assert path.shape == (6, 8, 8, 1)
    np.testing.assert_allclose(path[0], first[0], atol=1e-5)  # the path starts at image 0's reconstruction
    new_state, metrics = vae.train_step(jax.random.key(2), config, state, {"image": images, "label": labels})
    assert np.isfinite(float(metrics["loss"])) and int(new_state.step) == 1
    if model == "ae":
        assert "kl" not in metrics
        with pytest.raises(ValueError, match="autoencoder"):
            vae.iwae_bound(jax.random.key(0), config, state.params, images, num_samples=2)
    if cond:
        with pytest.raises(ValueError, match="labels"):
            vae.sample(jax.random.key(1), config, state, 4)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="example_batch"):
        vae.create_state(jax.random.key(0), vae.VAEConfig(), {"image": jnp.zeros((2, 28, 28))})
    with pytest.raises(ValueError, match=r"example_batch\['image'\] must have shape \[B, 28, 28, 1\].*\(2, 8, 8, 1\)"):
        vae.create_state(jax.random.key(0), vae.VAEConfig(), {"image": jnp.zeros((2, 8, 8, 1))})
    config = vae.VAEConfig(latent_dim=2, hidden=(8,), image_shape=(8, 8, 1))
    state = vae.create_state(jax.random.key(0), config, {"image": jnp.zeros((2, 8, 8, 1))})
    with pytest.raises(ValueError, match=r"x must have shape \[B, 8, 8, 1\]"):
        vae.encode(config, state.params, jnp.zeros((2, 9, 8, 1)))
    with pytest.raises(ValueError, match="z must have shape"):
        vae.decode(config, state.params, jnp.zeros((2, 3)))


# ----------------------------------------------------------------------------- training behaviour


@pytest.fixture(scope="module")
def digits_data():
    ds = data.digits()
    return jnp.asarray(ds.train.images), jnp.asarray(ds.train.labels), ds


def tiny_state(images, **overrides):
    """``(config, state)`` of a small VAE on the 8x8 digits."""
    config = vae.VAEConfig(latent_dim=4, hidden=(64,), image_shape=(8, 8, 1), **overrides)
    return config, vae.create_state(jax.random.key(0), config, {"image": images[:32]})


def test_train_step_is_pure_and_compiles_once(digits_data):
    images, labels, _ = digits_data
    config, state = tiny_state(images, dropout=0.1, max_shift=1, kl_warmup_steps=10)
    batch = {"image": images[:32], "label": labels[:32]}
    s1, m1 = vae.train_step(jax.random.key(5), config, state, batch)
    s2, m2 = vae.train_step(jax.random.key(5), config, state, batch)
    for a, b in zip(jax.tree.leaves((s1, m1)), jax.tree.leaves((s2, m2))):
        np.testing.assert_array_equal(a, b)
    s3, m3 = vae.train_step(jax.random.key(6), config, state, batch)  # another key: another step
    assert float(m3["loss"]) != float(m1["loss"])
    size = vae.train_step._cache_size()
    equal = vae.VAEConfig(**{f.name: getattr(config, f.name) for f in dataclasses.fields(config)})
    assert equal is not config and equal == config
    for i in range(3):  # an equal config (another object) reuses the compilation
        s1, m1 = vae.train_step(jax.random.key(i), equal, s1,
                                {"image": images[32 * i : 32 * i + 32], "label": labels[:32]})
    assert vae.train_step._cache_size() == size
    # The KL weight warms up with the traced step counter, without retracing.
    assert 0 < float(m1["kl_weight"]) < 1


def _eval_nelbo(config, state, images):
    return float(vae.eval_step(jax.random.key(99), config, state, {"image": images})["nelbo"].mean())


def test_short_training_run_lowers_the_loss(digits_data):
    images, _, ds = digits_data
    config, state = tiny_state(images, learning_rate=3e-3)
    test_images = jnp.asarray(ds.test.images)
    before = _eval_nelbo(config, state, test_images)
    for i in range(150):
        idx = jax.random.choice(jax.random.key(i), images.shape[0], (64,), replace=False)
        state, _ = vae.train_step(jax.random.key(1000 + i), config, state, {"image": images[idx]})
    after = _eval_nelbo(config, state, test_images)
    assert after < before - 10, (before, after)


def test_checkpoint_resume_reproduces_uninterrupted_training(digits_data, tmp_path):
    images, _, _ = digits_data
    config, start = tiny_state(images, dropout=0.1)

    def run(state, steps):
        for i in steps:
            state, m = vae.train_step(jax.random.key(i), config, state, {"image": images[32 * i : 32 * i + 32]})
        return state, m

    straight, m_straight = run(start, range(6))
    half, _ = run(start, range(3))
    train.save_checkpoint(str(tmp_path / "ckpt"), 3, half, {"epoch": 3})
    assert train.latest_checkpoint_step(str(tmp_path / "ckpt")) == 3
    _, template = tiny_state(images, dropout=0.1)  # fresh state, different values, same structure
    restored, meta = train.restore_checkpoint(str(tmp_path / "ckpt"), template)
    assert meta == {"epoch": 3} and int(restored.step) == 3
    resumed, m_resumed = run(restored, range(3, 6))
    for a, b in zip(jax.tree.leaves((straight, m_straight)), jax.tree.leaves((resumed, m_resumed))):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(FileNotFoundError):
        train.restore_checkpoint(str(tmp_path / "nothing"), template)
