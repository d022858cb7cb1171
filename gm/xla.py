"""Process-wide XLA settings that gm needs on CPU, applied before JAX starts its backends; and the typing
helpers that keep gm's loops and gradients valid inside `jax.shard_map` (`varying_axes`, `vary_like`).

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


def varying_axes(x) -> frozenset:
    """The mesh axes along which ``x`` varies inside `jax.shard_map` (empty outside it).

    Inside ``shard_map`` JAX types every value with the manual axes it varies along: a replicated CPT
    does not vary, a device's own evidence does. Loop carries and custom VJPs must keep those types.

    Args:
      x: an array or tracer.

    Returns:
      A frozenset of axis names.

    Examples:
      >>> import jax.numpy as jnp
      >>> varying_axes(jnp.ones(3))                # outside shard_map nothing varies
      frozenset()
    """
    import jax

    t = jax.typeof(x)
    manual = getattr(t, "manual_axis_type", None)  # jax >= 0.10; older versions call it ``vma``
    return frozenset(manual.varying) if manual is not None else frozenset(getattr(t, "vma", ()))


def vary_like(x, *like):
    """``x`` (an array or a pytree of them) typed as varying along every mesh axis that any of ``like``
    varies along (a no-op outside `jax.shard_map`): for a loop carry initialised from a constant that the
    loop's body mixes with per-device data.

    Args:
      x: an array, tracer or pytree of them.
      *like: arrays (or pytrees) whose varying axes ``x`` takes on.

    Returns:
      ``x``, unchanged in value.

    Examples:
      >>> import jax.numpy as jnp
      >>> vary_like(jnp.zeros(2), jnp.ones(3)).tolist()
      [0.0, 0.0]
    """
    import jax

    axes = frozenset().union(*(varying_axes(leaf) for leaf in jax.tree.leaves(like)))

    def one(leaf):
        extra = axes - varying_axes(leaf)
        return jax.lax.pcast(leaf, tuple(sorted(extra)), to="varying") if extra else leaf

    return jax.tree.map(one, x)

