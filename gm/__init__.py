"""gm: generative models in JAX.

Rooms (see DESIGN.md): ``gm.bn`` discrete Bayesian networks, ``gm.temporal`` HMMs and dynamic Bayesian
networks, ``gm.learn`` parameter estimation, ``gm.deep`` VAEs and GANs, ``gm.data`` datasets that ship with
packages, ``gm.parallel`` the batched paths and training steps sharded over devices and hosts. Submodules
are imported on first use so that ``import gm`` stays cheap and the deep-learning dependencies stay optional.
"""

import importlib

from gm import xla
from gm.xla import enable_compilation_cache

xla.configure()

__version__ = "0.1.0"
__all__ = ["bn", "temporal", "learn", "deep", "data", "parallel"]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f"gm.{name}")
    raise AttributeError(f"module 'gm' has no attribute {name!r}")
