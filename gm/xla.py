"""Process-wide XLA settings that gm needs on CPU, applied before JAX starts its backends.

jaxlib 0.10's CPU backend rewrites fusions through its experimental YNN path by default. With it, the
batched gradient contractions of `gm.bn.marginals` crashed the process (segfault in
``jit(vmap(value_and_grad(...)))`` on pathfinder and andes) and ran about 2x slower on alarm. We switch
that path off by adding ``--xla_cpu_experimental_ynn_fusion_type=`` to ``XLA_FLAGS`` when gm is imported
before JAX has initialised a backend, unless the user already chose a value or sets
``GM_KEEP_XLA_FLAGS=1``. The flag touches only the CPU backend.

Examples:
    >>> import os
    >>> import gm                                  # importing gm calls configure() before JAX starts
    >>> "--xla_cpu_experimental_ynn_fusion_type" in os.environ.get("XLA_FLAGS", "") or bool(os.environ.get("GM_KEEP_XLA_FLAGS"))
    True
"""

import os

_FLAG = "--xla_cpu_experimental_ynn_fusion_type"


def configure() -> bool:
    """Add the flag if it is still possible; returns whether XLA_FLAGS now carries it.

    Returns:
      True when ``XLA_FLAGS`` carries ``--xla_cpu_experimental_ynn_fusion_type``; False when the user
      set ``GM_KEEP_XLA_FLAGS`` or a backend was already running (then the flag cannot take effect).

    Examples:
      >>> isinstance(configure(), bool)            # safe to call again: it adds the flag at most once
      True
    """
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


def enable_compilation_cache(directory: str | None = None, *, min_compile_seconds: float = 1.0) -> str:
    """Turn on JAX's persistent compilation cache so compiled programs survive the process.

    Large networks compile for tens of seconds to minutes on CPU (one kernel per contraction step); with
    the cache, the second process that jits the same function on the same structure and shapes loads it
    from disk in about a second. This sets process-wide JAX options, so gm never calls it on import:
    experiments and notebooks opt in.

    Args:
      directory: where to keep compiled programs (default ``$GM_CACHE_DIR/xla``, else
        ``~/.cache/gm/xla``).
      min_compile_seconds: only programs that took at least this long to compile are stored.

    Returns:
      The cache directory.

    Examples:
      >>> import tempfile
      >>> path = enable_compilation_cache(tempfile.mkdtemp(), min_compile_seconds=5.0)   # process-wide
      >>> os.path.isdir(path)
      True
    """
    import jax

    if directory is None:
        root = os.environ.get("GM_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "gm")
        directory = os.path.join(root, "xla")
    os.makedirs(directory, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_seconds))
    return directory
