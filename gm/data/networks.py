"""The bnlearn Bayesian networks bundled with pgmpy (no download).

Discrete networks ship as ``<name>.bif.gz`` (read by `gm.bn.read_bif`); the four linear-Gaussian ones
(`GAUSSIAN_NETWORKS`: ecoli70, magic-niab, magic-irri, arth150) as pgmpy's ``<name>.json`` (read by
`gm.learn.linear_gaussian.read_json` into a `GaussianBayesNet`). `load_network` takes either kind.

Examples:
    >>> load_network("asia")                                   # a gm.bn.BayesNet
    BayesNet(8 variables, 8 edges)
    >>> load_network("ecoli70")                                # a linear-Gaussian network
    GaussianBayesNet(46 variables, 70 edges)
"""

from __future__ import annotations

import os

NETWORKS = (
    "asia", "cancer", "earthquake", "sachs", "survey", "alarm", "barley", "child", "insurance",
    "mildew", "water", "hailfinder", "hepar2", "win95pts", "andes", "diabetes", "pathfinder", "pigs",
    "link", "munin1", "munin2", "munin3", "munin4", "munin",
)
GAUSSIAN_NETWORKS = ("ecoli70", "magic-niab", "magic-irri", "arth150")


def network_dir() -> str:
    """Folder of pgmpy's bundled ``<name>.bif.gz`` files; ImportError naming pgmpy if it is absent.

    Returns:
      The folder's path (pgmpy's ``utils/example_models``).

    Raises:
      ImportError: pgmpy is absent, or a version that does not ship the networks.

    Examples:
      >>> os.path.exists(os.path.join(network_dir(), "alarm.bif.gz"))
      True
    """
    try:
        import importlib.util

        spec = importlib.util.find_spec("pgmpy")
    except ImportError:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the bundled BIF networks come with the package 'pgmpy' (pip install 'pgmpy==1.1.0')"
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "utils", "example_models")
    if not os.path.isdir(path):
        raise ImportError(f"this pgmpy ({path}) does not ship the BIF networks; install pgmpy==1.1.0")
    return path


def bif_path(name: str) -> str:
    """Path of the bundled discrete network ``name`` (e.g. "alarm"); ValueError for an unknown name.

    Args:
      name: one of `NETWORKS`.

    Returns:
      The path of ``<name>.bif.gz``.

    Raises:
      ValueError: an unknown name (listing the available ones) or a linear-Gaussian network's name.

    Examples:
      >>> os.path.basename(bif_path("alarm"))
      'alarm.bif.gz'
    """
    if name in GAUSSIAN_NETWORKS:
        raise ValueError(
            f"{name!r} is a linear-Gaussian (continuous) network, not a discrete BIF one; load it with "
            f"gm.data.load_network({name!r}) (a GaussianBayesNet) or gm.learn.linear_gaussian.read_json("
            f"gm.data.gaussian_json_path({name!r}))"
        )
    path = os.path.join(network_dir(), f"{name}.bif.gz")
    if not os.path.exists(path):
        available = sorted(f[: -len(".bif.gz")] for f in os.listdir(network_dir()) if f.endswith(".bif.gz"))
        raise ValueError(f"unknown network {name!r}; available: {available} and the linear-Gaussian "
                         f"{list(GAUSSIAN_NETWORKS)}")
    return path


def gaussian_json_path(name: str) -> str:
    """Path of pgmpy's JSON file of the linear-Gaussian network ``name`` (one of `GAUSSIAN_NETWORKS`).

    Args:
      name: one of `GAUSSIAN_NETWORKS`.

    Returns:
      The path of ``<name>.json``.

    Raises:
      ValueError: a discrete or unknown network's name.
      ImportError: a pgmpy that does not ship the file.

    Examples:
      >>> os.path.basename(gaussian_json_path("magic-niab"))
      'magic-niab.json'
    """
    if name not in GAUSSIAN_NETWORKS:
        kind = "a discrete network (use bif_path)" if name in NETWORKS else "unknown"
        raise ValueError(f"{name!r} is {kind}; the linear-Gaussian networks are {list(GAUSSIAN_NETWORKS)}")
    path = os.path.join(network_dir(), f"{name}.json")
    if not os.path.exists(path):
        raise ImportError(f"this pgmpy ({path}) does not ship {name}.json; install pgmpy==1.1.0")
    return path


def load_network(name: str, **kwargs):
    """The bundled network ``name``: a `gm.bn.BayesNet` (`gm.bn.read_bif`) for the discrete ones, a
    `gm.learn.linear_gaussian.GaussianBayesNet` (`read_json`) for `GAUSSIAN_NETWORKS`.

    Args:
      name: one of `NETWORKS` or `GAUSSIAN_NETWORKS`.
      **kwargs: passed to the reader (``dtype``; ``atol`` for BIF).

    Returns:
      A `gm.bn.BayesNet` or a `gm.learn.linear_gaussian.GaussianBayesNet`.

    Raises:
      ValueError: an unknown name.

    Examples:
      >>> net = load_network("alarm")
      >>> net.n_vars, net.cards[net.index("HRBP")]
      (37, 3)
    """
    if name in GAUSSIAN_NETWORKS:
        from gm.learn.linear_gaussian.io import read_json

        return read_json(gaussian_json_path(name), **kwargs)
    from gm.bn import read_bif

    return read_bif(bif_path(name), **kwargs)
