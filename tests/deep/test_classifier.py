"""The digit classifier: it trains, reaches its accuracy, and its on-disk cache is reused or replaced."""

import dataclasses

import jax
import numpy as np
import pytest

from gm import data
from gm.deep import classifier


def test_classifier_trains_and_caches(tmp_path):
    ds = data.digits()
    config = classifier.ClassifierConfig(image_shape=(8, 8, 1), features=(8, 16), hidden=32, epochs=10,
                                      batch_size=32, max_shift=0, dropout=0.1, binarize_fraction=0.0)
    clf, info = classifier.load_or_train_classifier(jax.random.key(0), config, str(tmp_path / "clf"), ds.train, ds.test)
    assert not info["cached"] and info["test_accuracy"] > 0.85
    assert info["test_accuracy"] == classifier.accuracy(clf, ds.test.images, ds.test.labels)
    again, info2 = classifier.load_or_train_classifier(jax.random.key(1), config, str(tmp_path / "clf"), ds.train, ds.test)
    assert info2["cached"] and info2["test_accuracy"] == info["test_accuracy"]
    logits, feats = classifier.classify(clf, ds.test.images[:7])
    assert logits.shape == (7, 10) and feats.shape == (7, 32)
    assert classifier.classify(clf, ds.test.images[:7]).features.shape == (7, 32)
    np.testing.assert_array_equal(classifier.classify(again, ds.test.images[:7])[0], logits)
    with pytest.raises(RuntimeError, match="accuracy"):
        classifier.load_or_train_classifier(jax.random.key(0), config, str(tmp_path / "clf"), ds.train, ds.test,
                                            min_accuracy=1.01)
    # another config in the same folder replaces the cache (it used to raise orbax's StepAlreadyExistsError)
    other = dataclasses.replace(config, epochs=1)
    _, info3 = classifier.load_or_train_classifier(jax.random.key(0), other, str(tmp_path / "clf"), ds.train, ds.test)
    assert not info3["cached"]
    _, info4 = classifier.load_or_train_classifier(jax.random.key(0), other, str(tmp_path / "clf"), ds.train, ds.test)
    assert info4["cached"] and info4["test_accuracy"] == info3["test_accuracy"]
    with pytest.raises(ValueError, match="images"):
        classifier.classify(clf, np.zeros((2, 28, 28, 1)))
