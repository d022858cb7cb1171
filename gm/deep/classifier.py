"""A small digit classifier trained here (no downloaded weights) and cached on disk: the judge of the sample
metrics in :mod:`gm.deep.metrics`.

:func:`train_classifier` fits a small CNN on the training digits in well under a minute on CPU (>= 97% test
accuracy on the held-out MNIST digits of :func:`gm.data.mnist`); the experiments cache it on disk
(:func:`load_or_train_classifier`). It is trained on grey images, half of them binarised on the fly, and
with random shifts of up to 2 pixels, so it reads both mean images and binary samples.

Example:
    >>> import jax
    >>> from gm import data
    >>> from gm.deep import classifier
    >>> ds = data.mnist()
    >>> clf, info = classifier.load_or_train_classifier(jax.random.key(0), classifier.ClassifierConfig(),
    ...                                                 "runs/classifier", ds.train, ds.test)
    >>> logits, features = classifier.classify(clf, ds.test.images)
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
from gm.deep.train import (check_images, check_labels, latest_checkpoint_step, restore_checkpoint,
                           save_checkpoint, static_config)

__all__ = [
    "ClassifierConfig",
    "DigitClassifier",
    "Classifier",
    "Classification",
    "CachedClassifier",
    "init_classifier",
    "train_classifier",
    "classify",
    "accuracy",
    "load_or_train_classifier",
]


@static_config
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
    """Randomly initialised classifier (also the template for restoring a cached one).

    Examples:
        >>> template = init_classifier(jax.random.key(0), ClassifierConfig(image_shape=(16, 16, 1)))
    """
    x = jnp.zeros((1, *config.image_shape), jnp.float32)
    return Classifier(jax.jit(DigitClassifier(config).init)(key, x)["params"], config)


@jax.jit
def _logits_and_features(classifier: Classifier, images):
    return DigitClassifier(classifier.config).apply({"params": classifier.params}, images)


class Classification(NamedTuple):
    """What the classifier computes for ``N`` images (numpy arrays).

    Attributes:
        logits: ``f32[N, n_classes]``.
        features: ``f32[N, hidden]`` the penultimate layer (the feature space of the Frechet distance).
    """

    logits: np.ndarray
    features: np.ndarray


def classify(classifier: Classifier, images, *, batch_size: int = 500) -> Classification:
    """Logits ``f32[N, n_classes]`` and features ``f32[N, hidden]`` of ``f32[N, H, W, C]`` images.

    Runs in batches of ``batch_size`` (one compilation per distinct batch shape). The images are checked
    on the host first: a NaN or infinite pixel raises (its logits would be NaN, and their arg-max a
    plausible class 0).

    Returns:
        A :class:`Classification` ``(logits, features)`` of numpy arrays.

    Raises:
        ValueError: ``images`` is not [N, H, W, C] of the classifier's image shape with N >= 1, or has a
            NaN or infinite pixel (named with its position and image).

    Examples:
        >>> logits, features = classify(classifier, test_images)
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[1:] != tuple(classifier.config.image_shape) or images.shape[0] < 1:
        raise ValueError(
            f"images must have shape [N, {', '.join(map(str, classifier.config.image_shape))}] with N >= 1, "
            f"got {images.shape}"
        )
    check_images(images, "images", unit_interval=False)
    logits, feats = [], []
    for i in range(0, images.shape[0], batch_size):
        lg, ft = _logits_and_features(classifier, jnp.asarray(images[i : i + batch_size]))
        logits.append(np.asarray(lg))
        feats.append(np.asarray(ft))
    return Classification(np.concatenate(logits), np.concatenate(feats))


def accuracy(classifier: Classifier, images, labels) -> float:
    """Fraction of ``images`` whose arg-max prediction equals ``labels``.

    Examples:
        >>> accuracy(classifier, ds.test.images, ds.test.labels)   # about 0.98 on MNIST
    """
    logits, _ = classify(classifier, images)
    labels = np.asarray(labels)
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"labels must have shape ({logits.shape[0]},) (one per image); got {labels.shape}")
    check_labels(labels, classifier.config.n_classes, "labels")
    return float(np.mean(logits.argmax(-1) == labels))


def train_classifier(key: jax.Array, config: ClassifierConfig, images, labels, *, progress: bool = False
                     ) -> Classifier:
    """Train the digit classifier with cross-entropy, Adam and cosine learning-rate decay.

    Args:
        key: randomness of initialisation, shuffling, augmentation and dropout.
        config: architecture and training settings.
        images: ``f32[N, H, W, C]`` training images in [0, 1].
        labels: ``int32[N]``.
        progress: show a tqdm progress bar (needs tqdm).

    Returns:
        The trained :class:`Classifier`.

    Examples:
        >>> classifier = train_classifier(jax.random.key(0), ClassifierConfig(), ds.train.images, ds.train.labels)
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


class CachedClassifier(NamedTuple):
    """A classifier restored from its cache or trained and cached (:func:`load_or_train_classifier`).

    Attributes:
        classifier: the :class:`Classifier`.
        info: ``{"test_accuracy", "train_seconds", "cached", "config"}``.
    """

    classifier: Classifier
    info: dict


def load_or_train_classifier(key: jax.Array, config: ClassifierConfig, directory: str, train_split, test_split, *,
                             min_accuracy: float = 0.0, progress: bool = False) -> CachedClassifier:
    """Restore the classifier cached in ``directory``, or train it on ``train_split`` and cache it.

    The cache stores the config and the test accuracy; a cache written with another config is retrained.

    Args:
        key: training key (used only when training).
        config: classifier settings.
        directory: cache directory (an orbax checkpoint).
        train_split: the training digits, with ``images`` and ``labels`` (e.g. a :class:`gm.data.Split`).
        test_split: the held-out digits that measure the test accuracy.
        min_accuracy: raise ``RuntimeError`` if the test accuracy is lower.
        progress: tqdm progress bar while training.

    Returns:
        A :class:`CachedClassifier` ``(classifier, info)``.

    Examples:
        >>> classifier, info = load_or_train_classifier(jax.random.key(0), ClassifierConfig(), "runs/classifier",
        ...                                             ds.train, ds.test, min_accuracy=0.97)
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
        classifier = train_classifier(key, config, train_split.images, train_split.labels, progress=progress)
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
    return CachedClassifier(classifier, info)
