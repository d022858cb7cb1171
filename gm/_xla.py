"""Process-wide XLA settings that gm needs on CPU, applied before JAX starts its backends.

jaxlib 0.10's CPU backend rewrites fusions through its experimental YNN path by default. With it, the
batched gradient contractions of `gm.bn.marginals` crashed the process (segfault in
``jit(vmap(value_and_grad(...)))`` on pathfinder and andes) and ran about 2x slower on alarm. We switch
that path off by adding ``--xla_cpu_experimental_ynn_fusion_type=`` to ``XLA_FLAGS`` when gm is imported
before JAX has initialised a backend, unless the user already chose a value or sets
``GM_KEEP_XLA_FLAGS=1``. The flag touches only the CPU backend.
"""

import os

_FLAG = "--xla_cpu_experimental_ynn_fusion_type"


def configure() -> bool:
    """Add the flag if it is still possible; returns whether XLA_FLAGS now carries it."""
    flags = os.environ.get("XLA_FLAGS", "")
    if _FLAG in flags:
        return True
    if os.environ.get("GM_KEEP_XLA_FLAGS"):
        return False
    try:
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():
            return False
    except Exception:  # private API moved: setting the variable is still harmless
        pass
    os.environ["XLA_FLAGS"] = (flags + " " + _FLAG + "=").strip()
    return True
