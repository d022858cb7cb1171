"""Sample metrics against closed forms and hand computations."""

import itertools

import jax
import numpy as np
import pytest
from scipy import linalg

from gm.deep import classifier as classifier_module
from gm.deep import metrics


def test_frechet_distance_matches_sqrtm_formula():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 5)) @ rng.normal(size=(5, 5))
    b = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5)) + 0.5
    ma, mb = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = np.sum((ma - mb) ** 2) + np.trace(sa + sb - 2 * linalg.sqrtm(sa @ sb).real)
    np.testing.assert_allclose(metrics.frechet_distance(a, b), expected, rtol=1e-6)
    np.testing.assert_allclose(metrics.frechet_distance(b, a), expected, rtol=1e-6)
    assert metrics.frechet_distance(a, a) < 1e-8
    stats_a = metrics.gaussian_statistics(a)
    np.testing.assert_allclose(metrics.frechet_distance(stats_a, b), expected, rtol=1e-6)
    # One dimension: (m1 - m2)^2 + (s1 - s2)^2.
    one = metrics.frechet_distance(
        metrics.GaussianStatistics(np.array([1.0]), np.array([[4.0]])),
        metrics.GaussianStatistics(np.array([-1.0]), np.array([[1.0]])),
    )
    np.testing.assert_allclose(one, 4.0 + 1.0)
    with pytest.raises(ValueError, match="dimensions"):
        metrics.frechet_distance(a, b[:, :3])


def test_simple_sample_metrics():
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]))
    np.testing.assert_allclose(metrics.classifier_confidence(logits), np.mean([0.7, 0.8, 0.6, 0.6]))
    assert metrics.conditional_accuracy(logits, [0, 1, 1, 2]) == 0.75
    cover = metrics.mode_coverage(logits, 4, min_fraction=0.25)
    assert cover["covered"] == 3 and cover["histogram"] == [0.5, 0.25, 0.25, 0.0]
    labels = np.arange(100) % 10
    perm = np.random.default_rng(0).permutation(10)
    assert metrics.matched_accuracy(perm[labels], labels) == 1.0
    noisy = perm[labels].copy()
    noisy[:10] = (noisy[:10] + 1) % 10
    assert metrics.matched_accuracy(noisy, labels) == 0.9


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
    config = classifier_module.ClassifierConfig(image_shape=(8, 8, 1), features=(4,), hidden=6)
    classifier = classifier_module.init_classifier(jax.random.key(0), config)
    rng = np.random.default_rng(0)
    grey = rng.uniform(size=(10, 8, 8, 1)).astype(np.float32)
    logits, feats = classifier_module.classify(classifier, grey)
    labels = logits.argmax(-1)
    assert metrics.class_preservation(classifier, grey, labels) == 1.0
    # Colour images are read in grey (the maximum over channels).
    colour = np.concatenate([grey, 0.5 * grey, 0.1 * grey], -1)
    assert metrics.class_preservation(classifier, colour, labels) == 1.0
    assert metrics.class_preservation(classifier, grey, (labels + 1) % 10) == 0.0
    cf = metrics.channel_features(classifier, colour)
    assert cf.shape == (10, 18)
    np.testing.assert_allclose(cf[:, :6], feats, rtol=1e-6)
    np.testing.assert_allclose(cf[:, 6:12], classifier_module.classify(classifier, 0.5 * grey).features, rtol=1e-6)
    assert metrics.translation_frechet_distance(classifier, colour, colour) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="source_labels"):
        metrics.class_preservation(classifier, grey, labels[:3])
