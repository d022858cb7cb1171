"""Offline sample metrics built on a small digit classifier trained on the training split.

No downloaded weights: :func:`train_classifier` fits a small CNN on the training digits in well under a
minute on CPU (>= 97% test accuracy on the held-out MNIST digits of :func:`gm.data.mnist`), and the
experiments cache it on disk (:func:`load_or_train_classifier`). On top of it:

* :func:`classifier_confidence`: mean of ``max_y p(y | x)`` over samples (sharp, digit-like samples score
  high);
* :func:`conditional_accuracy`: fraction of class-conditional samples classified as their conditioning
  label;
* :func:`frechet_distance`: the Frechet distance between Gaussians fitted to classifier features of two
  sets (the FID recipe of Heusel et al., 2017, with this classifier in place of Inception);
* :func:`mode_coverage`: how many classes appear among the samples' predicted labels;
* :func:`matched_accuracy`: accuracy of discrete codes under the best one-to-one matching to classes.

The classifier is trained on grey images, half of them binarised on the fly, and with random shifts of up
to 2 pixels, so it reads both mean images and binary samples.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import NamedTuple

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gm.data.images import binarize, random_shift
from gm.deep.train import latest_checkpoint_step, restore_checkpoint, save_checkpoint

__all__ = [
    "ClassifierConfig",
    "DigitClassifier",
    "Classifier",
    "init_classifier",
    "train_classifier",
    "classify",
    "accuracy",
    "load_or_train_classifier",
    "classifier_confidence",
    "conditional_accuracy",
    "frechet_distance",
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


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Architecture and training settings of the digit classifier.

    Attributes:
        image_shape: ``(H, W, C)`` of the inputs.
        n_classes: number of classes.
        features: channels of the two 3x3 conv + 2x2 max-pool stages.
        hidden: width of the penultimate dense layer (the feature space of the Frechet distance).
        dropout: dropout before the output layer during training.
        epochs, batch_size, learning_rate: training loop (Adam with cosine decay).
        max_shift: random shifts (pixels) as augmentation.
        binarize_fraction: fraction of each training batch that is dynamically binarised.
    """

    image_shape: tuple[int, int, int] = (28, 28, 1)
    n_classes: int = 10
    features: tuple[int, ...] = (32, 64)
    hidden: int = 128
    dropout: float = 0.3
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 2e-3
    max_shift: int = 2
    binarize_fraction: float = 0.5


class DigitClassifier(nn.Module):
    """``f32[B, H, W, C] -> (logits f32[B, n_classes], features f32[B, hidden])``."""

    config: ClassifierConfig

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        h = x
        for f in self.config.features:
            h = nn.relu(nn.Conv(f, (3, 3), padding="SAME")(h))
            h = nn.max_pool(h, (2, 2), strides=(2, 2))
        h = h.reshape(h.shape[0], -1)
        features = nn.relu(nn.Dense(self.config.hidden)(h))
        h = nn.Dropout(self.config.dropout, deterministic=not train)(features)
        return nn.Dense(self.config.n_classes)(h), features


@flax.struct.dataclass
class Classifier:
    """Trained classifier: parameters (leaves) and config (static)."""

    params: dict
    config: ClassifierConfig = flax.struct.field(pytree_node=False)


def init_classifier(key: jax.Array, config: ClassifierConfig = ClassifierConfig()) -> Classifier:
    """Randomly initialised classifier (also the template for restoring a cached one)."""
    x = jnp.zeros((1, *config.image_shape), jnp.float32)
    return Classifier(jax.jit(DigitClassifier(config).init)(key, x)["params"], config)


@jax.jit
def _logits_and_features(classifier: Classifier, images):
    return DigitClassifier(classifier.config).apply({"params": classifier.params}, images)


def classify(classifier: Classifier, images, *, batch_size: int = 500):
    """Logits ``f32[N, n_classes]`` and features ``f32[N, hidden]`` of ``f32[N, H, W, C]`` images.

    Runs in batches of ``batch_size`` (one compilation per distinct batch shape). Returns numpy arrays.
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[1:] != tuple(classifier.config.image_shape):
        raise ValueError(
            f"images must have shape [N, {', '.join(map(str, classifier.config.image_shape))}], got {images.shape}"
        )
    logits, feats = [], []
    for i in range(0, images.shape[0], batch_size):
        lg, ft = _logits_and_features(classifier, jnp.asarray(images[i : i + batch_size]))
        logits.append(np.asarray(lg))
        feats.append(np.asarray(ft))
    return np.concatenate(logits), np.concatenate(feats)


def accuracy(classifier: Classifier, images, labels) -> float:
    """Fraction of ``images`` whose arg-max prediction equals ``labels``."""
    logits, _ = classify(classifier, images)
    return float(np.mean(logits.argmax(-1) == np.asarray(labels)))


def train_classifier(
    key: jax.Array, images, labels, config: ClassifierConfig = ClassifierConfig(), *, progress: bool = False
) -> Classifier:
    """Train the digit classifier with cross-entropy, Adam and cosine learning-rate decay.

    Args:
        key: randomness of initialisation, shuffling, augmentation and dropout.
        images: ``f32[N, H, W, C]`` training images in [0, 1].
        labels: ``int32[N]``.
        config: architecture and training settings.
        progress: show a tqdm progress bar (needs tqdm).

    Returns:
        The trained :class:`Classifier`.
    """
    images = jnp.asarray(images, jnp.float32)
    labels = jnp.asarray(labels, jnp.int32)
    if images.ndim != 4 or images.shape[1:] != tuple(config.image_shape):
        raise ValueError(f"images must be [N, {config.image_shape}], got shape {images.shape}")
    n = images.shape[0]
    steps_per_epoch = n // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"need at least batch_size = {config.batch_size} images, got {n}")
    k_init, k_train = jax.random.split(key)
    classifier = init_classifier(k_init, config)
    tx = optax.adam(optax.cosine_decay_schedule(config.learning_rate, config.epochs * steps_per_epoch))
    model = DigitClassifier(config)

    @jax.jit
    def step(params, opt_state, x, y, k):
        k_shift, k_bin, k_mask, k_drop = jax.random.split(k, 4)
        x = random_shift(k_shift, x, config.max_shift)
        use_binary = jax.random.uniform(k_mask, (x.shape[0], 1, 1, 1)) < config.binarize_fraction
        x = jnp.where(use_binary, binarize(k_bin, x), x)

        def loss_fn(p):
            logits, _ = model.apply({"params": p}, x, train=True, rngs={"dropout": k_drop})
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    params, opt_state = classifier.params, tx.init(classifier.params)
    total = config.epochs * steps_per_epoch
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="classifier", leave=False)
    for epoch in range(config.epochs):
        k_epoch = jax.random.fold_in(k_train, epoch)
        perm = jax.random.permutation(k_epoch, n)
        for s in range(steps_per_epoch):
            idx = perm[s * config.batch_size : (s + 1) * config.batch_size]
            params, opt_state, loss = step(params, opt_state, images[idx], labels[idx], jax.random.fold_in(k_epoch, s + 1))
            if bar is not None:
                bar.update(1)
                if s % 20 == 0:
                    bar.set_postfix(loss=f"{float(loss):.3f}")
    if bar is not None:
        bar.close()
    return Classifier(params, config)


def load_or_train_classifier(
    directory: str,
    key: jax.Array,
    train_split,
    test_split,
    config: ClassifierConfig = ClassifierConfig(),
    *,
    min_accuracy: float = 0.0,
    progress: bool = False,
) -> tuple[Classifier, dict]:
    """Restore the classifier cached in ``directory``, or train it on ``train_split`` and cache it.

    The cache stores the config and the test accuracy; a cache written with another config is retrained.

    Args:
        directory: cache directory (an orbax checkpoint).
        key: training key (used only when training).
        train_split, test_split: objects with ``images`` and ``labels`` (e.g. :class:`gm.data.Split`).
        config: classifier settings.
        min_accuracy: raise ``RuntimeError`` if the test accuracy is lower.
        progress: tqdm progress bar while training.

    Returns:
        ``(classifier, info)`` with ``info = {"test_accuracy", "train_seconds", "cached", "config"}``.
    """
    config_dict = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
    template = init_classifier(jax.random.key(0), config)
    info = None
    if os.path.isdir(directory):
        try:
            restored, meta = restore_checkpoint(directory, template)
            if meta.get("config") == config_dict:
                classifier, info = restored, {**meta, "cached": True}
        except (FileNotFoundError, ValueError):
            info = None
    if info is None:
        start = time.time()
        classifier = train_classifier(key, train_split.images, train_split.labels, config, progress=progress)
        seconds = time.time() - start
        acc = accuracy(classifier, test_split.images, test_split.labels)
        meta = {"test_accuracy": acc, "train_seconds": round(seconds, 1), "config": config_dict}
        # a cache written with another config is replaced: the next step number (orbax refuses to
        # overwrite a step) and keep only the newest
        last = latest_checkpoint_step(directory)
        save_checkpoint(directory, 0 if last is None else last + 1, classifier, meta, max_to_keep=1)
        info = {**meta, "cached": False}
    if info["test_accuracy"] < min_accuracy:
        raise RuntimeError(f"classifier test accuracy {info['test_accuracy']:.4f} < required {min_accuracy}")
    return classifier, info


# ------------------------------------------------------------------------------------------- metrics


def classifier_confidence(logits) -> float:
    """Mean over samples of ``max_y softmax(logits)_y``: ``f32[N, K] -> float`` in [1/K, 1]."""
    logits = np.asarray(logits, np.float64)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return float(p.max(-1).mean())


def conditional_accuracy(logits, labels) -> float:
    """Fraction of samples whose predicted class equals the class they were generated for.

    Args:
        logits: ``f32[N, K]`` classifier logits of the samples.
        labels: ``int[N]`` conditioning labels.
    """
    logits, labels = np.asarray(logits), np.asarray(labels)
    if logits.shape[0] != labels.shape[0]:
        raise ValueError(f"logits has {logits.shape[0]} rows, labels {labels.shape[0]}")
    return float(np.mean(logits.argmax(-1) == labels))


class GaussianStatistics(NamedTuple):
    """Mean ``f64[D]`` and covariance ``f64[D, D]`` of a feature set."""

    mean: np.ndarray
    cov: np.ndarray


def gaussian_statistics(features) -> GaussianStatistics:
    """Sample mean and (unbiased) covariance of ``f32[N, D]`` features, in float64."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be [N, D] with N >= 2, got shape {f.shape}")
    return GaussianStatistics(f.mean(0), np.cov(f, rowvar=False))


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((matrix + matrix.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


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
    """
    a = features_a if isinstance(features_a, GaussianStatistics) else gaussian_statistics(features_a)
    b = features_b if isinstance(features_b, GaussianStatistics) else gaussian_statistics(features_b)
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
    """
    pred = np.asarray(logits).argmax(-1)
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
    """
    from scipy.optimize import linear_sum_assignment

    codes, labels = np.asarray(codes), np.asarray(labels)
    k = int(max(codes.max(), labels.max()) + 1) if n_classes is None else n_classes
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
    from sklearn.linear_model import LogisticRegression

    train_x, test_x = np.asarray(train_features, np.float64), np.asarray(test_features, np.float64)
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_features and test_features must be [N, D] and [M, D], got {train_x.shape} "
                         f"and {test_x.shape}")
    train_y, test_y = np.asarray(train_labels), np.asarray(test_labels)
    if train_y.shape != train_x.shape[:1] or test_y.shape != test_x.shape[:1]:
        raise ValueError(f"labels must have one entry per feature row, got {train_y.shape} for {train_x.shape} "
                         f"and {test_y.shape} for {test_x.shape}")
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
    if translated.shape[-1] != classifier.config.image_shape[-1]:
        translated = translated.max(axis=-1, keepdims=True)
    labels = np.asarray(source_labels)
    if labels.shape != translated.shape[:1]:
        raise ValueError(f"source_labels must have shape ({translated.shape[0]},), got {labels.shape}")
    return accuracy(classifier, translated, labels)


def channel_features(classifier: Classifier, images) -> np.ndarray:
    """Classifier features of every channel read as a grey image, concatenated: ``f32[N, C * hidden]``.

    For one-channel images these are the classifier's features; for colour images the Frechet distance on
    them compares both shape (each channel is a scaled digit) and colour (how bright each channel is).
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must be [N, H, W, C], got shape {images.shape}")
    return np.concatenate([classify(classifier, images[..., c : c + 1])[1] for c in range(images.shape[-1])], -1)


def translation_frechet_distance(classifier: Classifier, translated, target_images) -> float:
    """Frechet distance between translated images and real target-domain images in :func:`channel_features`."""
    return frechet_distance(channel_features(classifier, target_images), channel_features(classifier, translated))


def cycle_reconstruction_error(originals, cycled) -> float:
    """Mean absolute pixel error ``mean |F(G(x)) - x|`` between images and their round trips."""
    originals, cycled = np.asarray(originals, np.float64), np.asarray(cycled, np.float64)
    if originals.shape != cycled.shape:
        raise ValueError(f"originals shape {originals.shape} differs from cycled shape {cycled.shape}")
    return float(np.mean(np.abs(originals - cycled)))


def pairwise_diversity(samples) -> float:
    """Mean pairwise L1 distance between the outputs for one input, averaged over inputs.

    ``mean_n [ 2 / (S (S - 1)) sum_{i < j} mean_pixels |s_{n,i} - s_{n,j}| ]`` (the BicycleGAN paper's
    diversity, with L1 in place of LPIPS).

    Args:
        samples: ``f32[N, S, H, W, C]``, ``S >= 2`` outputs (different ``z``) for each of ``N`` inputs.
    """
    s = np.asarray(samples, np.float32)
    if s.ndim < 3 or s.shape[1] < 2:
        raise ValueError(f"samples must be [N, S, ...] with S >= 2, got shape {s.shape}")
    n, k = s.shape[:2]
    flat = s.reshape(n, k, -1)
    i, j = np.triu_indices(k, 1)
    return float(np.mean(np.abs(flat[:, i] - flat[:, j]).mean(-1)))


def latent_recovery_error(recovered, z) -> float:
    """Mean absolute error ``mean |E(G(x, z)) - z|`` between codes and the encoder's recovery of them."""
    recovered, z = np.asarray(recovered, np.float64), np.asarray(z, np.float64)
    if recovered.shape != z.shape:
        raise ValueError(f"recovered shape {recovered.shape} differs from z shape {z.shape}")
    return float(np.mean(np.abs(recovered - z)))
