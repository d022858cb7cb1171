"""The bnlearn Bayesian networks bundled with pgmpy (as .bif.gz files; no download)."""

from __future__ import annotations

import os

NETWORKS = (
    "asia", "cancer", "earthquake", "sachs", "survey", "alarm", "barley", "child", "insurance",
    "mildew", "water", "hailfinder", "hepar2", "win95pts", "andes", "diabetes", "pathfinder", "pigs",
    "link", "munin1", "munin2", "munin3", "munin4", "munin",
)


def network_dir() -> str:
    """Folder of pgmpy's bundled ``<name>.bif.gz`` files; ImportError naming pgmpy if it is absent."""
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
    """Path of the bundled network ``name`` (e.g. "alarm"); ValueError for an unknown name."""
    path = os.path.join(network_dir(), f"{name}.bif.gz")
    if not os.path.exists(path):
        available = sorted(f[: -len(".bif.gz")] for f in os.listdir(network_dir()) if f.endswith(".bif.gz"))
        raise ValueError(f"unknown network {name!r}; available: {available}")
    return path


def load_network(name: str, **kwargs):
    """`gm.bn.read_bif` of the bundled network ``name``."""
    from gm.bn import read_bif

    return read_bif(bif_path(name), **kwargs)
