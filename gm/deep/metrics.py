"""Offline sample metrics, judged by the digit classifier of :mod:`gm.deep.classifier`.

* :func:`classifier_confidence`: mean of ``max_y p(y | x)`` over samples (sharp, digit-like samples score
  high);
* :func:`conditional_accuracy`: fraction of class-conditional samples classified as their conditioning
  label;
* :func:`frechet_distance`: the Frechet distance between Gaussians fitted to classifier features of two
  sets (the FID recipe of Heusel et al., 2017, with this classifier in place of Inception);
* :func:`mode_coverage`: how many classes appear among the samples' predicted labels;
* :func:`matched_accuracy`: accuracy of discrete codes under the best one-to-one matching to classes;
* :func:`linear_probe_accuracy`: a linear classifier on frozen features (BiGAN's encoder);
* image translation: :func:`class_preservation`, :func:`translation_frechet_distance`,
  :func:`cycle_reconstruction_error`, :func:`pairwise_diversity`, :func:`latent_recovery_error`.

Example:
    >>> from gm.deep import classifier, metrics
    >>> logits, features = classifier.classify(clf, samples)
    >>> metrics.frechet_distance(test_features, features)

Every metric checks its inputs on the host (they are numpy functions, called eagerly): a NaN or infinite
logit, feature or pixel, a label or code outside its range, an empty set or mismatched shapes raise
``ValueError`` (``TypeError`` for float labels) naming the argument, the position and the value, so a
diverged model's NaN samples never turn into a plausible finite score.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gm.deep.classifier import Classifier, accuracy, classify
from gm.deep.train import check_labels
from gm.validation import require_finite

__all__ = [
    "classifier_confidence",
    "conditional_accuracy",
    "frechet_distance",
    "GaussianStatistics",
    "gaussian_statistics",
    "mode_coverage",
    "matched_accuracy",
    "linear_probe_accuracy",
    # image translation
    "class_preservation",
    "channel_features",
    "translation_frechet_distance",
    "cycle_reconstruction_error",
    "pairwise_diversity",
    "latent_recovery_error",
]


def _matrix(values, name: str, *, min_rows: int = 1, unit: str = "row") -> np.ndarray:
    """``values`` as f64[N, D] with N >= ``min_rows`` and every entry finite, or ``ValueError`` naming ``name``."""
    x = np.asarray(values, np.float64)
    if x.ndim != 2 or x.shape[0] < min_rows:
        raise ValueError(f"{name} must have shape [N, D] with N >= {min_rows}; got {x.shape}")
    require_finite(x, name, unit=unit)
    return x


def _same_shape_finite(a, b, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    """Two non-empty f64 arrays of one shape with finite entries, or ``ValueError`` naming the culprit."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"{name_a} shape {a.shape} differs from {name_b} shape {b.shape}")
    if a.size == 0:
        raise ValueError(f"{name_a} and {name_b} are empty (shape {a.shape})")
    require_finite(a, name_a, unit="example")
    require_finite(b, name_b, unit="example")
    return a, b


def classifier_confidence(logits) -> float:
    """Mean over samples of ``max_y softmax(logits)_y``: ``f32[N, K] -> float`` in [1/K, 1].

    Raises:
        ValueError: ``logits`` is not [N, K] with N >= 1, or has a NaN or infinite entry.
    """
    logits = _matrix(logits, "logits", unit="sample")
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return float(p.max(-1).mean())


def conditional_accuracy(logits, labels) -> float:
    """Fraction of samples whose predicted class equals the class they were generated for.

    Args:
        logits: ``f32[N, K]`` classifier logits of the samples.
        labels: ``int[N]`` conditioning labels in ``[0, K)``.

    Raises:
        ValueError: non-finite logits, a label outside ``[0, K)``, no samples, or mismatched lengths.
    """
    logits, labels = _matrix(logits, "logits", unit="sample"), np.asarray(labels)
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"labels must have shape ({logits.shape[0]},) (one per row of logits); got {labels.shape}")
    check_labels(labels, logits.shape[1], "labels")
    return float(np.mean(logits.argmax(-1) == labels))


class GaussianStatistics(NamedTuple):
    """Mean ``f64[D]`` and covariance ``f64[D, D]`` of a feature set."""

    mean: np.ndarray
    cov: np.ndarray


def gaussian_statistics(features) -> GaussianStatistics:
    """Sample mean and (unbiased) covariance of ``f32[N, D]`` features, in float64.

    Raises:
        ValueError: ``features`` is not [N, D] with N >= 2, or has a NaN or infinite entry (named).
    """
    f = _matrix(features, "features", min_rows=2)
    return GaussianStatistics(f.mean(0), np.cov(f, rowvar=False))


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((matrix + matrix.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _statistics(features, name: str) -> GaussianStatistics:
    if not isinstance(features, GaussianStatistics):
        return gaussian_statistics(_matrix(features, name, min_rows=2))
    require_finite(features.mean, f"{name}.mean", unit="dimension")
    require_finite(features.cov, f"{name}.cov", unit="dimension")
    return features


def frechet_distance(features_a, features_b) -> float:
    """Frechet distance between Gaussians fitted to two feature sets.

    ``d^2 = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2})``. The matrix square roots
    come from symmetric eigendecompositions (eigenvalues clipped at zero), which is exact for the
    positive semi-definite matrices here and avoids the complex round-off of a general ``sqrtm``; note
    ``tr((S_a S_b)^{1/2}) = tr((S_a^{1/2} S_b S_a^{1/2})^{1/2})``.

    Args:
        features_a: ``f32[N, D]`` (e.g. classifier features of held-out digits) or a
            :class:`GaussianStatistics`.
        features_b: ``f32[M, D]`` (e.g. features of model samples) or a :class:`GaussianStatistics`.

    Returns:
        The squared Frechet distance (the quantity called FID), a float >= 0.

    Raises:
        ValueError: a feature set (or statistic) with a NaN or infinite entry, fewer than two rows, or
            differing dimensions; the message names ``features_a`` or ``features_b``.
    """
    a, b = (_statistics(f, name) for f, name in ((features_a, "features_a"), (features_b, "features_b")))
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"feature dimensions differ: {a.mean.shape[0]} and {b.mean.shape[0]}")
    root_a = _sqrt_psd(a.cov)
    cross = root_a @ b.cov @ root_a
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((cross + cross.T) / 2), 0, None)).sum()
    diff = a.mean - b.mean
    return float(max(diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2.0 * trace_sqrt, 0.0))


def mode_coverage(logits, n_classes: int, *, min_fraction: float = 0.01) -> dict:
    """Which classes the samples cover.

    A class is covered when at least ``min_fraction`` of the samples are predicted as it.

    Args:
        logits: ``f32[N, K]`` classifier logits of the samples.
        n_classes: number of classes ``K``.
        min_fraction: coverage threshold.

    Returns:
        ``{"covered": int, "histogram": list[float]}`` (fractions of samples per predicted class).

    Raises:
        ValueError: non-finite logits, no samples, or ``logits`` with more than ``n_classes`` columns.
    """
    logits = _matrix(logits, "logits", unit="sample")
    if logits.shape[1] > n_classes:  # a predicted class >= n_classes would lengthen the histogram
        raise ValueError(f"logits must have at most n_classes = {n_classes} columns; got shape {logits.shape}")
    pred = logits.argmax(-1)
    hist = np.bincount(pred, minlength=n_classes) / max(len(pred), 1)
    return {"covered": int((hist >= min_fraction).sum()), "histogram": [float(h) for h in hist]}


def matched_accuracy(codes, labels, n_classes: int | None = None) -> float:
    """Accuracy of discrete codes as class predictions under the best one-to-one code-to-class matching.

    Solves the assignment problem on the code/class contingency table (Hungarian algorithm,
    ``scipy.optimize.linear_sum_assignment``), as for InfoGAN's categorical code or clustering accuracy.

    Args:
        codes: ``int[N]`` code of each sample (e.g. the categorical code it was generated with).
        labels: ``int[N]`` class of each sample (e.g. the classifier's prediction).
        n_classes: number of codes/classes (default: the largest value + 1).

    Raises:
        ValueError: empty or mismatched ``codes`` and ``labels``, or a negative value (or one >=
            ``n_classes``), named with its position; TypeError: non-integer codes or labels.
    """
    codes, labels = np.asarray(codes), np.asarray(labels)
    if codes.ndim != 1 or codes.shape != labels.shape or codes.size == 0:
        raise ValueError(f"codes and labels must be non-empty int[N] of one length; got {codes.shape} and "
                         f"{labels.shape}")
    k = int(max(codes.max(), labels.max()) + 1) if n_classes is None else n_classes
    check_labels(codes, k, "codes")
    check_labels(labels, k, "labels")
    from scipy.optimize import linear_sum_assignment

    table = np.zeros((k, k), np.int64)
    np.add.at(table, (codes, labels), 1)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / len(codes))


# --- GAN metrics ---


def linear_probe_accuracy(train_features, train_labels, test_features, test_labels, *, max_iter: int = 2000,
                          regularization: float = 1.0) -> float:
    """Test accuracy of a linear classifier fitted on frozen features (a linear probe of a representation).

    Standardises the features with the training split's mean and standard deviation, fits multinomial
    logistic regression (``sklearn.linear_model.LogisticRegression``, L2 penalty ``1 / regularization``
    as ``C``) on the training features and returns its accuracy on the test features. Used for BiGAN's
    encoder: the probe on ``E(x)`` against the same probe on a randomly initialised encoder.

    Args:
        train_features: ``f32[N, D]``.
        train_labels: ``int[N]``.
        test_features: ``f32[M, D]``.
        test_labels: ``int[M]``.
        max_iter: iterations of the L-BFGS solver.
        regularization: inverse of sklearn's ``C``.
    """
    train_x, test_x = _matrix(train_features, "train_features"), _matrix(test_features, "test_features")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_features and test_features must be [N, D] and [M, D], got {train_x.shape} "
                         f"and {test_x.shape}")
    train_y, test_y = np.asarray(train_labels), np.asarray(test_labels)
    if train_y.shape != train_x.shape[:1] or test_y.shape != test_x.shape[:1]:
        raise ValueError(f"labels must have one entry per feature row, got {train_y.shape} for {train_x.shape} "
                         f"and {test_y.shape} for {test_x.shape}")
    check_labels(train_y, np.iinfo(np.int64).max, "train_labels")  # integer class indices >= 0
    check_labels(test_y, np.iinfo(np.int64).max, "test_labels")
    from sklearn.linear_model import LogisticRegression

    mean, std = train_x.mean(0), train_x.std(0) + 1e-8
    probe = LogisticRegression(C=1.0 / regularization, max_iter=max_iter)
    probe.fit((train_x - mean) / std, train_y)
    return float(np.mean(probe.predict((test_x - mean) / std) == test_y))


# --- image-translation metrics ---


def class_preservation(classifier: Classifier, translated, source_labels) -> float:
    """Fraction of translated images that the digit classifier reads as the class of their source.

    Colour images are read in grey (the maximum over channels) when the classifier takes one channel.

    Args:
        classifier: a digit classifier for ``translated``'s image size.
        translated: ``f32[N, H, W, C]`` translations of ``N`` source digits.
        source_labels: ``int[N]`` the classes of the sources.
    """
    translated = np.asarray(translated, np.float32)
    require_finite(translated, "translated", unit="image")
    if translated.shape[-1] != classifier.config.image_shape[-1]:
        translated = translated.max(axis=-1, keepdims=True)
    labels = np.asarray(source_labels)
    if labels.shape != translated.shape[:1]:
        raise ValueError(f"source_labels must have shape ({translated.shape[0]},), got {labels.shape}")
    check_labels(labels, classifier.config.n_classes, "source_labels")
    return accuracy(classifier, translated, labels)


def channel_features(classifier: Classifier, images) -> np.ndarray:
    """Classifier features of every channel read as a grey image, concatenated: ``f32[N, C * hidden]``.

    For one-channel images these are the classifier's features; for colour images the Frechet distance on
    them compares both shape (each channel is a scaled digit) and colour (how bright each channel is).
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must be [N, H, W, C], got shape {images.shape}")
    require_finite(images, "images", unit="image")
    return np.concatenate([classify(classifier, images[..., c : c + 1]).features for c in range(images.shape[-1])], -1)


def translation_frechet_distance(classifier: Classifier, translated, target_images) -> float:
    """Frechet distance between translated images and real target-domain images in :func:`channel_features`."""
    require_finite(np.asarray(translated, np.float32), "translated", unit="image")
    require_finite(np.asarray(target_images, np.float32), "target_images", unit="image")
    return frechet_distance(channel_features(classifier, target_images), channel_features(classifier, translated))


def cycle_reconstruction_error(originals, cycled) -> float:
    """Mean absolute pixel error ``mean |F(G(x)) - x|`` between images and their round trips."""
    originals, cycled = _same_shape_finite(originals, cycled, "originals", "cycled")
    return float(np.mean(np.abs(originals - cycled)))


def pairwise_diversity(samples) -> float:
    """Mean pairwise L1 distance between the outputs for one input, averaged over inputs.

    ``mean_n [ 2 / (S (S - 1)) sum_{i < j} mean_pixels |s_{n,i} - s_{n,j}| ]`` (the BicycleGAN paper's
    diversity, with L1 in place of LPIPS).

    Args:
        samples: ``f32[N, S, H, W, C]``, ``S >= 2`` outputs (different ``z``) for each of ``N`` inputs.
    """
    s = np.asarray(samples, np.float32)
    if s.ndim < 3 or s.shape[1] < 2 or s.shape[0] < 1:
        raise ValueError(f"samples must be [N, S, ...] with N >= 1 and S >= 2, got shape {s.shape}")
    require_finite(s, "samples", unit="input")
    n, k = s.shape[:2]
    flat = s.reshape(n, k, -1)
    i, j = np.triu_indices(k, 1)
    return float(np.mean(np.abs(flat[:, i] - flat[:, j]).mean(-1)))


def latent_recovery_error(recovered, z) -> float:
    """Mean absolute error ``mean |E(G(x, z)) - z|`` between codes and the encoder's recovery of them."""
    recovered, z = _same_shape_finite(recovered, z, "recovered", "z")
    return float(np.mean(np.abs(recovered - z)))
