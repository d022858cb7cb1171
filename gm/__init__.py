"""gm: generative models in JAX.

Rooms (drawn with their one-way import arrows in the README's "Architecture" section):
``gm.bn`` discrete Bayesian networks, ``gm.temporal`` HMMs and dynamic Bayesian networks, ``gm.learn``
parameter estimation for every family, ``gm.deep`` VAEs and GANs, ``gm.data`` datasets that ship with
packages, ``gm.parallel`` the batched paths and training steps sharded over devices and hosts,
``gm.types`` the result types shared by the rooms (`gm.types.MPE`). Every room follows the API
convention of the README's "One API convention" section (key first, config next, the same names for the
same things, keyword-only options, NamedTuple results). Submodules are imported on first use so that
``import gm`` stays cheap and the deep-learning dependencies stay optional.
"""

import importlib

from gm import xla
from gm.xla import enable_compilation_cache

xla.configure()

__version__ = "0.1.0"
__all__ = ["bn", "temporal", "learn", "deep", "data", "parallel", "types"]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f"gm.{name}")
    raise AttributeError(f"module 'gm' has no attribute {name!r}")
