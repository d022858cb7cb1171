"""Translation datasets: downscaling and morphology against brute force, determinism, pairing, no leaks."""

import numpy as np
import pytest

from gm import data
from gm.data import translation


def brute_filter(image, op):
    """3x3 max/min filter of a [H, W] image, borders treated by nearest-edge reflection like scipy's default."""
    padded = np.pad(image, 1, mode="symmetric")
    out = np.empty_like(image)
    for i in range(image.shape[0]):
        for j in range(image.shape[1]):
            out[i, j] = op(padded[i: i + 3, j: j + 3])
    return out


def test_downscale_is_a_padded_block_mean():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(2, 28, 28, 1)).astype(np.float32)
    got = translation.downscale(x, size=16)
    padded = np.zeros((2, 32, 32, 1), np.float32)
    padded[:, 2:30, 2:30] = x
    for i, j in [(0, 0), (5, 7), (15, 15), (8, 3)]:
        np.testing.assert_allclose(got[:, i, j, 0], padded[:, 2 * i: 2 * i + 2, 2 * j: 2 * j + 2, 0].mean((1, 2)),
                                   rtol=1e-6)
    assert translation.downscale(x, size=32).shape == (2, 32, 32, 1)
    with pytest.raises(ValueError, match="size"):
        translation.downscale(x, size=12)
    with pytest.raises(ValueError, match="images"):
        translation.downscale(x[0], size=16)


def test_outline_and_bold_match_brute_force_morphology():
    rng = np.random.default_rng(1)
    x = (rng.uniform(size=(2, 28, 28, 1)) < 0.2).astype(np.float32) * rng.uniform(size=(2, 28, 28, 1))
    x = x.astype(np.float32)
    padded = np.zeros((2, 32, 32), np.float32)
    padded[:, 2:30, 2:30] = x[..., 0]
    gradient = np.stack([brute_filter(p, np.max) - brute_filter(p, np.min) for p in padded])[..., None]
    np.testing.assert_allclose(translation.outline(x), _block_mean(gradient, 16), atol=1e-6)
    dilated = np.stack([brute_filter(p, np.max) for p in padded])[..., None]
    np.testing.assert_allclose(translation.bold(x, width=3), _block_mean(dilated, 16), atol=1e-6)
    np.testing.assert_allclose(translation.bold(x, width=1), translation.downscale(x), atol=1e-6)
    with pytest.raises(ValueError, match="width"):
        translation.bold(x, width=2)
    with pytest.raises(ValueError, match="grey"):
        translation.outline(np.zeros((2, 28, 28, 3), np.float32))


def _block_mean(images32, size):
    f = 32 // size
    n = images32.shape[0]
    return images32.reshape(n, size, f, size, f, 1).mean((2, 4))


@pytest.fixture(scope="module")
def coloured():
    return data.edges_to_coloured_digits(seed=0)


def test_coloured_set_hides_the_colour_and_keeps_the_digit(coloured):
    plain = data.edges_to_digits()
    assert coloured.train.inputs.shape == (4000, 16, 16, 1) and coloured.train.targets.shape == (4000, 16, 16, 3)
    assert coloured.test.targets.shape == (1000, 16, 16, 3) and coloured.n_modes == 4
    # The inputs are the same outlines as in the unimodal set: no trace of the colour.
    np.testing.assert_array_equal(coloured.train.inputs, plain.train.inputs)
    # The grey version of every target is the digit, and its colour is the palette row of its mode.
    np.testing.assert_allclose(translation.to_grey(coloured.test.targets), plain.test.targets, atol=1e-6)
    i = int(np.argmax(plain.test.targets[5].reshape(-1)))
    pixel = coloured.test.targets[5].reshape(-1, 3)[i]
    np.testing.assert_allclose(pixel / pixel.max(), data.PALETTE[coloured.test.modes[5]], atol=1e-6)
    counts = np.bincount(coloured.train.modes, minlength=4)
    assert counts.min() > 900  # uniform draws: about 1,000 each
    np.testing.assert_array_equal(coloured.train.labels, plain.train.labels)
    for split in (coloured.train, coloured.test, plain.train):
        for arr in (split.inputs, split.targets):
            assert arr.dtype == np.float32 and arr.min() >= 0 and arr.max() <= 1


def test_coloured_set_is_deterministic_in_the_seed(coloured):
    again = data.edges_to_coloured_digits(seed=0)
    np.testing.assert_array_equal(again.train.modes, coloured.train.modes)
    other = data.edges_to_coloured_digits(seed=1)
    assert np.mean(other.train.modes == coloured.train.modes) < 0.5
    with pytest.raises(ValueError, match="n_colours"):
        data.edges_to_coloured_digits(n_colours=5)


def test_unpaired_domains_hold_disjoint_digits_and_the_test_pairs_are_true_translations():
    ds = data.thin_thick_digits(seed=0)
    mnist = data.mnist()
    originals = translation.downscale(mnist.train.images)
    bolds = translation.bold(mnist.train.images)
    index_of_original = {o.tobytes(): i for i, o in enumerate(originals)}
    index_of_bold = {b.tobytes(): i for i, b in enumerate(bolds)}
    ia = [index_of_original[a.tobytes()] for a in ds.train_a.images]
    ib = [index_of_bold[b.tobytes()] for b in ds.train_b.images]
    assert len(ia) == len(ib) == 2000
    assert not set(ia) & set(ib)  # no digit in both domains: no pair exists
    assert sorted(ia + ib) == list(range(4000))
    np.testing.assert_array_equal(ds.train_a.labels, mnist.train.labels[ia])
    np.testing.assert_array_equal(ds.test_a.labels, ds.test_b.labels)
    np.testing.assert_allclose(ds.test_b.images, translation.bold(mnist.test.images), atol=0)
    assert ds.train_b.images.mean() > 1.5 * ds.train_a.images.mean()  # bold strokes cover more pixels
    other = data.thin_thick_digits(seed=1)
    assert not np.array_equal(other.train_a.labels, ds.train_a.labels)


def test_classifier_digits_hold_both_styles():
    digits = translation.classifier_digits()
    assert isinstance(digits, translation.ClassifierDigits)
    train, test = digits
    assert train.images.shape == (8000, 16, 16, 1) and test.images.shape == (2000, 16, 16, 1)
    np.testing.assert_array_equal(train.labels[:4000], train.labels[4000:])
