import subprocess
import sys

import jax
import numpy as np
import pytest

from gm import data


def test_import_is_light():
    code = "import sys, gm.data; print(any(m in sys.modules for m in ('jax', 'mlxtend', 'sklearn')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_mnist_split_is_stratified_fixed_and_disjoint():
    ds = data.mnist(n_validation=500)
    assert ds.train.images.shape == (3500, 28, 28, 1) and ds.train.images.dtype == np.float32
    assert ds.validation.images.shape == (500, 28, 28, 1)
    assert ds.test.images.shape == (1000, 28, 28, 1)
    assert ds.test.labels.dtype == np.int32
    assert 0.0 <= ds.train.images.min() and ds.train.images.max() <= 1.0 and ds.train.images.max() > 0.99
    np.testing.assert_array_equal(np.bincount(ds.test.labels), [100] * 10)
    np.testing.assert_array_equal(np.bincount(ds.validation.labels), [50] * 10)
    # The test split does not depend on the validation size, and the splits do not overlap.
    default = data.mnist()
    assert len(default.train) == 4000 and len(default.validation) == 0
    np.testing.assert_array_equal(default.test.images, ds.test.images)
    flat = lambda s: {img.tobytes() for img in s.images}  # noqa: E731
    assert not flat(ds.test) & flat(ds.train) and not flat(ds.validation) & flat(ds.train)
    # Another seed gives another test split.
    assert not np.array_equal(data.mnist(seed=1).test.images, ds.test.images)


def test_digits():
    ds = data.digits()
    assert ds.train.images.shape[1:] == (8, 8, 1) and len(ds.test) == 297
    assert len(ds.train) + len(ds.test) == 1797
    assert ds.train.images.max() == 1.0


def test_stratified_split_partitions_and_rejects_bad_sizes():
    labels = np.repeat(np.arange(3), [10, 20, 30])
    parts = data.stratified_split(labels, (12, 6), seed=3)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(60))
    assert [len(p) for p in parts] == [12, 6, 42]
    np.testing.assert_array_equal(np.bincount(labels[parts[0]]), [2, 4, 6])
    with pytest.raises(ValueError, match="sizes"):
        data.stratified_split(labels, (61,))


def test_binarize_mean_and_purity():
    x = np.full((2000, 4, 4, 1), 0.3, np.float32)
    b = data.binarize(jax.random.key(0), x)
    assert set(np.unique(np.asarray(b))) <= {0.0, 1.0}
    assert abs(float(b.mean()) - 0.3) < 0.01
    np.testing.assert_array_equal(b, data.binarize(jax.random.key(0), x))


def test_random_shift_moves_content_within_bounds():
    img = np.zeros((64, 9, 9, 1), np.float32)
    img[:, 4, 4, 0] = 1.0
    out = np.asarray(data.random_shift(jax.random.key(1), img, 2))
    assert np.all(out.sum((1, 2, 3)) == 1.0)  # a shift of <= 2 keeps the centre pixel inside
    rows, cols = np.nonzero(out[..., 0])[1:]
    assert rows.min() >= 2 and rows.max() <= 6 and cols.min() >= 2 and cols.max() <= 6
    assert len(set(zip(rows, cols))) > 10
    np.testing.assert_array_equal(data.random_shift(jax.random.key(1), img, 0), img)
    with pytest.raises(ValueError, match="images"):
        data.random_shift(jax.random.key(1), img[0], 1)


def test_image_grid_places_images_row_by_row():
    images = np.arange(5, dtype=np.float32)[:, None, None, None] * np.ones((5, 2, 3, 1), np.float32)
    grid = data.image_grid(images, 2, padding=1, fill=-1.0)  # 3 columns, the last slot empty
    assert grid.shape == (2 * 3 - 1, 3 * 4 - 1, 1)
    np.testing.assert_array_equal(grid[0:2, 4:7, 0], 1.0)  # image 1: row 0, column 1
    np.testing.assert_array_equal(grid[3:5, 0:3, 0], 3.0)  # image 3: row 1, column 0
    np.testing.assert_array_equal(grid[3:5, 8:11, 0], -1.0)  # empty slot
    np.testing.assert_array_equal(grid[2, :, 0], -1.0)  # padding between the rows
    colour = data.image_grid(np.zeros((4, 2, 2, 3)), 1, padding=0)
    assert colour.shape == (2, 8, 3)
    with pytest.raises(ValueError, match="must be \\[N, H, W, C\\]"):
        data.image_grid(np.zeros((2, 2, 2)), 1)
