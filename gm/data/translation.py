"""Image-translation datasets built from the real MNIST digits of :func:`gm.data.mnist`: no download.

Three sets, all deterministic given ``seed`` and all built on the stratified 4,000 train / 1,000 test split
of :func:`gm.data.mnist` (``seed=0``):

* :func:`edges_to_digits` (paired): the outline of a digit -> the digit (grey).
* :func:`edges_to_coloured_digits` (multimodal paired): the outline of a digit -> the digit drawn in one of
  ``n_colours`` clearly distinct colours (:data:`PALETTE`). The colour of each example is drawn at random
  and hidden from the input, so one input has ``n_colours`` equally valid outputs.
* :func:`thin_thick_digits` (unpaired): domain A holds the digits with their original strokes, domain B
  bold digits (3x3 grey dilation at 32x32). The training digits are shuffled and dealt to *disjoint* halves, so no digit
  appears in both domains and no pair exists; the test split holds every test digit in both domains
  (``test_a[i]`` and ``test_b[i]`` are the same digit), so the true translation is known for evaluation.
  Dilation is not a per-pixel function of the image (it depends on a neighbourhood).

Images are downscaled from 28x28 to ``size`` x ``size`` (default 16) so that full training runs of the
translation models fit on 2 CPU cores: each digit is zero-padded to 32x32 (2 background pixels per side),
the morphological operations run at 32x32, and the result is averaged over ``32 / size`` blocks. All
images are ``f32[N, size, size, C]`` in [0, 1].

Outlines are the morphological gradient ``dilate(x) - erode(x)`` (3x3 grey morphology at 32x32): a
two-pixel-wide band around each stroke, so the input shows the shape but not the stroke's own pixels.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gm.data.images import Split, mnist

__all__ = [
    "PALETTE",
    "PairedSplit",
    "PairedDataset",
    "UnpairedDataset",
    "downscale",
    "outline",
    "bold",
    "colourize",
    "to_grey",
    "edges_to_digits",
    "edges_to_coloured_digits",
    "thin_thick_digits",
    "ClassifierDigits",
    "classifier_digits",
]

#: Target colours of :func:`edges_to_coloured_digits` (RGB, each with a channel at 1, so the grey digit is
#: recovered exactly as the maximum over channels): red, green, blue, yellow.
PALETTE = np.array(
    [[1.0, 0.1, 0.1], [0.1, 1.0, 0.1], [0.1, 0.3, 1.0], [1.0, 0.9, 0.1]], np.float32
)

_PAD_SIZE = 32


class PairedSplit(NamedTuple):
    """One split of a paired translation set.

    Attributes:
        inputs: ``f32[N, H, W, C_in]`` source images in [0, 1].
        targets: ``f32[N, H, W, C_out]`` target images in [0, 1].
        labels: ``int32[N]`` digit class of each pair.
        modes: ``int32[N]`` hidden mode of each target (the colour index; zeros for a unimodal set).
    """

    inputs: np.ndarray
    targets: np.ndarray
    labels: np.ndarray
    modes: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


class PairedDataset(NamedTuple):
    """Train and test splits of a paired set; ``n_modes`` valid outputs per input."""

    train: PairedSplit
    test: PairedSplit
    n_modes: int
    name: str


class UnpairedDataset(NamedTuple):
    """Two unpaired training domains and a paired test split (the known translation).

    Attributes:
        train_a, train_b: :class:`gm.data.Split` of disjoint digits in domain A and domain B.
        test_a, test_b: the same test digits in domain A and in domain B (``test_a.labels == test_b.labels``).
        name: dataset name.
    """

    train_a: Split
    train_b: Split
    test_a: Split
    test_b: Split
    name: str


def _check_images(images, name="images") -> np.ndarray:
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != 1:
        raise ValueError(f"{name} must be grey images [N, H, W, 1], got shape {images.shape}")
    return images


def _pad32(images: np.ndarray) -> np.ndarray:
    h, w = images.shape[1:3]
    if h > _PAD_SIZE or w > _PAD_SIZE:
        raise ValueError(f"images larger than {_PAD_SIZE}x{_PAD_SIZE} are not supported, got {h}x{w}")
    top, left = (_PAD_SIZE - h) // 2, (_PAD_SIZE - w) // 2
    return np.pad(images, ((0, 0), (top, _PAD_SIZE - h - top), (left, _PAD_SIZE - w - left), (0, 0)))


def downscale(images, *, size: int = 16) -> np.ndarray:
    """Zero-pad to 32x32 (centred), then average over ``32 / size`` pixel blocks.

    Args:
        images: ``f32[N, H, W, C]`` with ``H, W <= 32``.
        size: output side; must divide 32 (8, 16 or 32).

    Returns:
        ``f32[N, size, size, C]``.
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must be [N, H, W, C], got shape {images.shape}")
    if size <= 0 or _PAD_SIZE % size:
        raise ValueError(f"size must divide {_PAD_SIZE}, got {size}")
    x = _pad32(images)
    f = _PAD_SIZE // size
    n, c = x.shape[0], x.shape[-1]
    return x.reshape(n, size, f, size, f, c).mean(axis=(2, 4)).astype(np.float32)


def _grey_morphology(images: np.ndarray, op: str, footprint_size: int) -> np.ndarray:
    from scipy import ndimage

    fn = {"dilation": ndimage.grey_dilation, "erosion": ndimage.grey_erosion}[op]
    return fn(images, size=(1, footprint_size, footprint_size, 1))


def outline(images, *, size: int = 16) -> np.ndarray:
    """Outline of each digit: the morphological gradient ``dilate_3x3(x) - erode_3x3(x)`` at 32x32, downscaled.

    Args:
        images: ``f32[N, 28, 28, 1]`` grey digits in [0, 1].
        size: output side (see :func:`downscale`).

    Returns:
        ``f32[N, size, size, 1]`` in [0, 1].
    """
    x = _pad32(_check_images(images))
    edge = _grey_morphology(x, "dilation", 3) - _grey_morphology(x, "erosion", 3)
    return downscale(np.clip(edge, 0.0, 1.0), size=size)


def bold(images, *, size: int = 16, width: int = 3) -> np.ndarray:
    """Bold strokes: grey dilation with a ``width`` x ``width`` square at 32x32, downscaled.

    Args:
        images: ``f32[N, 28, 28, 1]`` grey digits in [0, 1].
        size: output side (see :func:`downscale`).
        width: side of the dilation footprint in 32x32 pixels (odd, >= 1; 1 leaves strokes unchanged).

    Returns:
        ``f32[N, size, size, 1]`` in [0, 1].
    """
    if width < 1 or width % 2 == 0:
        raise ValueError(f"width must be an odd positive integer, got {width}")
    x = _pad32(_check_images(images))
    return downscale(_grey_morphology(x, "dilation", width), size=size)


def colourize(images, colours) -> np.ndarray:
    """Draw grey digits in colour: ``out[n, h, w, :] = images[n, h, w, 0] * colours[n]``.

    Args:
        images: ``f32[N, H, W, 1]`` grey values in [0, 1].
        colours: ``f32[N, 3]`` RGB colour of each image (e.g. ``PALETTE[modes]``).

    Returns:
        ``f32[N, H, W, 3]``.
    """
    images = _check_images(images)
    colours = np.asarray(colours, np.float32)
    if colours.shape != (images.shape[0], 3):
        raise ValueError(f"colours must have shape ({images.shape[0]}, 3), got {colours.shape}")
    return images * colours[:, None, None, :]


def to_grey(images) -> np.ndarray:
    """Grey version of ``f32[..., C]`` images: the maximum over channels (exact for :data:`PALETTE` colours)."""
    return np.asarray(images, np.float32).max(axis=-1, keepdims=True)


def _base_splits(seed: int):
    ds = mnist(seed=0)
    return ds.train, ds.test, np.random.default_rng(seed)


def edges_to_digits(*, size: int = 16, seed: int = 0) -> PairedDataset:
    """Paired set: digit outline (:func:`outline`) -> the grey digit, both ``size`` x ``size``.

    Args:
        size: image side (16 by default; see the module docstring).
        seed: accepted for a uniform signature; this set draws no randomness (the split is fixed).

    Returns:
        :class:`PairedDataset` with 4,000 train and 1,000 test pairs, ``f32[N, size, size, 1]`` both ways.
    """
    train, test, _ = _base_splits(seed)

    def make(split):
        n = len(split)
        return PairedSplit(outline(split.images, size=size), downscale(split.images, size=size),
                           split.labels.copy(), np.zeros(n, np.int32))

    return PairedDataset(make(train), make(test), 1, "edges_to_digits")


def edges_to_coloured_digits(*, size: int = 16, n_colours: int = 4, seed: int = 0) -> PairedDataset:
    """Multimodal paired set: digit outline -> the digit in one of ``n_colours`` colours, the choice hidden.

    Each pair's colour index is drawn uniformly with ``numpy.random.default_rng(seed)`` (train first, then
    test) and stored in ``modes``; the input (the outline, grey) carries no trace of it.

    Args:
        size: image side.
        n_colours: number of modes, the first ``n_colours`` rows of :data:`PALETTE` (1 to 4).
        seed: seed of the colour draws.

    Returns:
        :class:`PairedDataset`: inputs ``f32[N, size, size, 1]``, targets ``f32[N, size, size, 3]``.

    Examples:
        >>> ds = edges_to_coloured_digits()
        >>> ds.train.inputs.shape, ds.train.targets.shape, ds.n_modes
        ((4000, 16, 16, 1), (4000, 16, 16, 3), 4)
    """
    if not 1 <= n_colours <= len(PALETTE):
        raise ValueError(f"n_colours must be in 1..{len(PALETTE)}, got {n_colours}")
    train, test, rng = _base_splits(seed)

    def make(split):
        modes = rng.integers(0, n_colours, len(split)).astype(np.int32)
        grey = downscale(split.images, size=size)
        return PairedSplit(outline(split.images, size=size), colourize(grey, PALETTE[modes]),
                           split.labels.copy(), modes)

    return PairedDataset(make(train), make(test), n_colours, "edges_to_coloured_digits")


def thin_thick_digits(*, size: int = 16, width: int = 3, seed: int = 0) -> UnpairedDataset:
    """Unpaired set: original strokes (domain A) and bold strokes (domain B, :func:`bold`), no pairs.

    The 4,000 training digits are shuffled with ``numpy.random.default_rng(seed)``; the first half goes to
    domain A, the second half (other digits) to domain B. The 1,000 test digits appear in both domains in
    the same order, which gives the true translation of every test image.

    Args:
        size: image side.
        width: dilation footprint of the bold domain (32x32 pixels).
        seed: seed of the shuffle.

    Returns:
        :class:`UnpairedDataset` with 2,000 + 2,000 training and 1,000 test images per domain.
    """
    train, test, rng = _base_splits(seed)
    perm = rng.permutation(len(train))
    half = len(train) // 2
    ia, ib = perm[:half], perm[half:]
    return UnpairedDataset(
        train_a=Split(downscale(train.images[ia], size=size), train.labels[ia].copy()),
        train_b=Split(bold(train.images[ib], size=size, width=width), train.labels[ib].copy()),
        test_a=Split(downscale(test.images, size=size), test.labels.copy()),
        test_b=Split(bold(test.images, size=size, width=width), test.labels.copy()),
        name="thin_thick_digits",
    )


class ClassifierDigits(NamedTuple):
    """The splits of :func:`classifier_digits`.

    Attributes:
        train: :class:`gm.data.Split` of 8,000 ``f32[N, size, size, 1]`` images.
        test: :class:`gm.data.Split` of 2,000 images.
    """

    train: Split
    test: Split


def classifier_digits(*, size: int = 16, width: int = 3) -> ClassifierDigits:
    """Train and test digits for a translation classifier: every digit twice, original and bold strokes.

    A classifier that reads the generated images of every set here must know both stroke styles; colour
    images are read in grey (:func:`to_grey`), outlines are never classified.

    Returns:
        :class:`ClassifierDigits` ``(train, test)``.

    Examples:
        >>> train, test = classifier_digits(size=16)
        >>> len(train), len(test)
        (8000, 2000)
    """
    train, test, _ = _base_splits(0)

    def both(split):
        images = np.concatenate([downscale(split.images, size=size), bold(split.images, size=size, width=width)])
        return Split(images, np.concatenate([split.labels, split.labels]))

    return ClassifierDigits(both(train), both(test))
