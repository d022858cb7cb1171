"""Issue 18 in gm.deep: training never silently diverges, bad inputs and settings are rejected."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import _common
from gm.deep import classifier, gan, metrics, train, translate_cyclegan, translate_paired, vae

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


# ------------------------------------------------------------------ the GAN and the translation families

GAN = gan.GANConfig(model="cgan", image_shape=SHAPE, latent_dim=2, generator_hidden=(8,), discriminator_hidden=(8,))
LABELS = jnp.array([0, 3, 9], jnp.int32)


@pytest.fixture(scope="module")
def gan_state():
    return gan.create_state(jax.random.key(0), GAN, {"image": IMAGES, "label": LABELS})


def _unchanged(new, old):
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(old)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("bad", ["nan_pixel", "inf_pixel", "pixel_255", "label_10", "label_negative"])
def test_gan_step_skips_an_invalid_batch_and_flags_it(gan_state, bad):
    """Inside jit nothing raises: both players' updates are skipped (state unchanged, no NaN parameters)
    and the metrics carry the marker (finite 0, d_loss and g_loss NaN); eager check_batch names the culprit."""
    images, labels = IMAGES, LABELS
    if bad.endswith("pixel"):
        images = IMAGES.at[2, 1, 0, 0].set(np.nan if bad == "nan_pixel" else np.inf)
    elif bad == "pixel_255":
        images = IMAGES.at[2, 1, 0, 0].set(255.0)
    else:
        labels = LABELS.at[1].set(10 if bad == "label_10" else -1)
    batch = {"image": images, "label": labels}
    state, metrics = gan.train_step(jax.random.key(1), GAN, gan_state, batch)
    assert float(metrics["finite"]) == 0.0
    assert np.isnan(float(metrics["d_loss"])) and np.isnan(float(metrics["g_loss"]))
    _unchanged(state, gan_state)
    message = r"batch\['image'\]\[2, 1, 0, 0\] = (nan|inf|255.0): every pixel must be finite and in \[0, 1\] \(image 2\)"
    if bad.startswith("label"):
        message = rf"batch\['label'\]\[1\] = {10 if bad == 'label_10' else -1} is not a class index in \[0, 10\)"
    with pytest.raises(ValueError, match=message):
        gan.check_batch(GAN, {k: np.asarray(v) for k, v in batch.items()})
    good, metrics = gan.train_step(jax.random.key(1), GAN, gan_state, {"image": IMAGES, "label": LABELS})
    assert float(metrics["finite"]) == 1.0 and np.isfinite(float(metrics["d_loss"])) and int(good.step) == 1
    gan.check_batch(GAN, {"image": np.asarray(IMAGES), "label": np.asarray(LABELS)})  # valid: nothing happens


def test_a_nan_batch_stops_a_gan_run_with_training_diverged(tmp_path, gan_state):
    """The shared runner on the GAN step: a NaN pixel at global step 3 (of 6, logging every 2) ends the run
    with TrainingDiverged naming the step and the last good checkpoint (step 2), which restores finite."""
    folder = str(tmp_path / "gan")

    def step_fn(state, step):
        images = IMAGES.at[0, 0, 0, 0].set(jnp.nan) if step == 2 else IMAGES
        return gan.train_step(jax.random.key(step), GAN, state, {"image": images, "label": LABELS})

    with pytest.raises(_common.TrainingDiverged, match=r"diverged at step 4: metric 'd_loss' is nan at step 3; the "
                                                       r"last good checkpoint is step 2"):
        _common.train_loop(gan_state, step_fn, num_steps=6, log_every=2, checkpoint_dir=folder, progress=False,
                           raise_on_divergence=True)
    restored = train.restore_checkpoint(folder, gan_state).tree
    assert int(restored.step) == 2 and bool(train.all_finite(restored))


PAIRED = translate_paired.TranslationConfig(model="pix2pix", out_channels=1, image_size=4, generator_features=(4,),
                                            discriminator_features=(4,))
CYCLE = translate_cyclegan.CycleGANConfig(image_size=4, generator_features=(4,), discriminator_features=(4,))


@pytest.mark.parametrize("family", ["paired", "cyclegan"])
def test_translation_steps_skip_an_invalid_batch_and_flag_it(family):
    config, module, keys = ((PAIRED, translate_paired, ("input", "target")) if family == "paired"
                            else (CYCLE, translate_cyclegan, ("a", "b")))
    batch = {keys[0]: IMAGES, keys[1]: IMAGES[::-1]}
    state = module.create_state(jax.random.key(0), config, batch)

    def step(b):
        if family == "paired":
            return module.train_step(jax.random.key(1), config, state, b)
        return module.train_step(config, state, b)

    good, metrics = step(batch)
    assert float(metrics["finite"]) == 1.0 and int(good.step) == 1
    for value in (np.nan, 2.0):
        bad = {**batch, keys[1]: IMAGES.at[1, 2, 3, 0].set(value)}
        new, metrics = step(bad)
        assert float(metrics["finite"]) == 0.0 and np.isnan(float(metrics["g_loss"])), metrics
        _unchanged(new, state)
        with pytest.raises(ValueError, match=rf"batch\['{keys[1]}'\]\[1, 2, 3, 0\] = {value}: every pixel must be "
                                             r"finite and in \[0, 1\] \(image 1\)"):
            module.check_batch(config, {k: np.asarray(v) for k, v in bad.items()})
    module.check_batch(config, {k: np.asarray(v) for k, v in batch.items()})


# ------------------------------------------------------------------------------------------- metrics

_RNG = np.random.default_rng(1)
_LOGITS = _RNG.normal(size=(6, 3))
_FEATS = _RNG.normal(size=(6, 2))
_NAN_LOGITS = _LOGITS.copy()
_NAN_LOGITS[2, 1] = np.nan
_INF_FEATS = _FEATS.copy()
_INF_FEATS[4, 0] = np.inf
_PAIRS = _RNG.uniform(size=(2, 3, 4))
_PAIRS_NAN = _PAIRS.copy()
_PAIRS_NAN[1, 0, 2] = np.nan

BAD_METRICS = [  # (call, error, message): each used to return a plausible finite score (or a bare crash)
    (lambda: metrics.classifier_confidence(_NAN_LOGITS), ValueError, r"logits\[2, 1\] = nan.*\(sample 2\)"),
    (lambda: metrics.classifier_confidence(np.zeros((0, 3))), ValueError, r"logits must have shape \[N, D\] with N >= 1"),
    (lambda: metrics.conditional_accuracy(_LOGITS, [0, 1, 2, 3, 0, 1]), ValueError,
     r"labels\[3\] = 3 is not a class index in \[0, 3\)"),
    (lambda: metrics.conditional_accuracy(_LOGITS, [0, -1, 2, 0, 0, 1]), ValueError, r"labels\[1\] = -1"),
    (lambda: metrics.conditional_accuracy(_NAN_LOGITS, [0] * 6), ValueError, r"logits\[2, 1\] = nan"),
    (lambda: metrics.frechet_distance(_FEATS, _INF_FEATS), ValueError, r"features_b\[4, 0\] = inf"),
    (lambda: metrics.frechet_distance(metrics.GaussianStatistics(np.array([np.nan, 0.0]), np.eye(2)), _FEATS),
     ValueError, r"features_a.mean\[0\] = nan"),
    (lambda: metrics.gaussian_statistics(_INF_FEATS), ValueError, r"features\[4, 0\] = inf"),
    (lambda: metrics.mode_coverage(_NAN_LOGITS, 3), ValueError, r"logits\[2, 1\] = nan"),
    (lambda: metrics.mode_coverage(_LOGITS, 2), ValueError, "at most n_classes = 2 columns"),
    (lambda: metrics.matched_accuracy(np.array([0, -1, 1]), np.array([0, 1, 1])), ValueError, r"codes\[1\] = -1"),
    (lambda: metrics.matched_accuracy(np.array([0, 1, 2]), np.array([0, 1, 1]), 2), ValueError, r"codes\[2\] = 2"),
    (lambda: metrics.matched_accuracy(np.array([], int), np.array([], int)), ValueError, "non-empty"),
    (lambda: metrics.matched_accuracy(np.array([0.0, 1.0]), np.array([0, 1])), TypeError, "codes must be an integer"),
    (lambda: metrics.linear_probe_accuracy(_INF_FEATS, [0, 1] * 3, _FEATS, [0, 1] * 3), ValueError,
     r"train_features\[4, 0\] = inf"),
    (lambda: metrics.cycle_reconstruction_error(_PAIRS, _PAIRS_NAN), ValueError, r"cycled\[1, 0, 2\] = nan"),
    (lambda: metrics.cycle_reconstruction_error(np.zeros((0, 2)), np.zeros((0, 2))), ValueError, "empty"),
    (lambda: metrics.latent_recovery_error(_PAIRS_NAN, _PAIRS), ValueError, r"recovered\[1, 0, 2\] = nan"),
    (lambda: metrics.pairwise_diversity(_PAIRS_NAN[None]), ValueError, r"samples\[0, 1, 0, 2\] = nan"),
]


@pytest.mark.parametrize("index", range(len(BAD_METRICS)))
def test_metrics_reject_bad_inputs(index):
    call, error, message = BAD_METRICS[index]
    with pytest.raises(error, match=message):
        call()


def test_classifier_metrics_reject_nan_images_and_bad_labels():
    """A NaN image used to classify as 0 (arg-max of NaN logits): accuracy and class preservation were
    plausible numbers; the features of a NaN image made the Frechet distance NaN."""
    config = classifier.ClassifierConfig(image_shape=SHAPE, features=(2,), hidden=4)
    clf = classifier.init_classifier(jax.random.key(0), config)
    images = np.asarray(IMAGES).copy()
    assert classifier.classify(clf, images).logits.shape == (3, 10)
    images[2, 1, 0, 0] = np.nan
    for call in (lambda: classifier.classify(clf, images), lambda: classifier.accuracy(clf, images, [0, 1, 2]),
                 lambda: metrics.channel_features(clf, images)):
        with pytest.raises(ValueError, match=r"images\[2, 1, 0, 0\] = nan"):
            call()
    with pytest.raises(ValueError, match=r"translated\[2, 1, 0, 0\] = nan"):
        metrics.class_preservation(clf, images, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"source_labels\[1\] = 10 is not a class index"):
        metrics.class_preservation(clf, np.asarray(IMAGES), np.array([0, 10, 2]))
    with pytest.raises(ValueError, match=r"labels\[0\] = -1"):
        classifier.accuracy(clf, np.asarray(IMAGES), np.array([-1, 1, 2]))
    with pytest.raises(ValueError, match="with N >= 1"):
        classifier.classify(clf, np.zeros((0,) + SHAPE, np.float32))
