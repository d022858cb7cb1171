"""``lax.fori_loop`` and ``lax.scan`` that also run inside ``jax.shard_map``.

Inside ``shard_map`` every value's type records the mesh axes it varies over, and a loop's carry must
have the same type going in and coming out. A carry started from a constant (a zero buffer, a zero
running sum) does not vary, while the body's result does as soon as it touches per-device data (the
sharded evidence): ``lax.fori_loop`` then raises a TypeError. These wrappers trace the body once to
learn the types of its results and mark the initial carry as varying over the same axes
(``lax.pcast(..., to="varying")``). Outside ``shard_map`` (no manual mesh axes) they are the plain
``lax`` functions, at no cost.

Examples:
    >>> from jax.sharding import Mesh, PartitionSpec as P
    >>> mesh = Mesh(np.array(jax.devices()), ("batch",))
    >>> def per_device(x):                       # a carry started from zeros, which do not vary
    ...     return fori_loop(0, 3, lambda i, c: c + x, jnp.zeros(x.shape))
    >>> x = jnp.arange(2.0 * jax.device_count())
    >>> print(jax.shard_map(per_device, mesh=mesh, in_specs=P("batch"), out_specs=P("batch"))(x)[:2])
    [0. 3.]
"""

from __future__ import annotations

import jax
from jax import lax

__all__ = ["fori_loop", "scan"]


def _manual_axes() -> tuple:
    get = getattr(jax.sharding, "get_abstract_mesh", None)
    if get is None:
        return ()
    try:
        return tuple(getattr(get(), "manual_axes", ()) or ())
    except Exception:  # no mesh in context
        return ()


def _varying(aval) -> frozenset:
    mat = getattr(aval, "manual_axis_type", None)
    if mat is not None:
        return frozenset(getattr(mat, "varying", ()))
    return frozenset(getattr(aval, "vma", ()))


def _to_varying(x, axes: tuple):
    pcast = getattr(lax, "pcast", None)
    if pcast is not None:
        return pcast(x, axes, to="varying")
    return lax.pvary(x, axes)  # older JAX


def _match(init, result_of):
    """``init`` with each leaf marked varying over every axis its counterpart in ``result_of(init)``
    varies over (repeated until stable: marking one carry can make another vary)."""
    for _ in range(len(jax.tree_util.tree_leaves(init)) + 1):
        out = jax.eval_shape(result_of, init)
        changed = False

        def cast(x, o):
            nonlocal changed
            missing = tuple(sorted(_varying(o) - _varying(jax.typeof(x))))
            if not missing:
                return x
            changed = True
            return _to_varying(x, missing)

        init = jax.tree_util.tree_map(cast, init, out)
        if not changed:
            break
    return init


def fori_loop(lower, upper, body_fun, init_val, **kwargs):
    """``lax.fori_loop`` whose initial carry takes the varying mesh axes of the body's result.

    Args:
      lower: the first index.
      upper: one past the last index.
      body_fun: ``(i, carry) -> carry``.
      init_val: the initial carry (a pytree).
      **kwargs: passed to `jax.lax.fori_loop` (``unroll``).

    Returns:
      The final carry, as `jax.lax.fori_loop`: body_fun(upper - 1, ... body_fun(lower, init_val)).

    Examples:
      >>> int(fori_loop(0, 4, lambda i, total: total + i, 0))     # outside shard_map: lax.fori_loop
      6
    """
    if _manual_axes():
        init_val = _match(init_val, lambda c: body_fun(lower, c))
    return lax.fori_loop(lower, upper, body_fun, init_val, **kwargs)


def scan(f, init, xs=None, length=None, **kwargs):
    """``lax.scan`` whose initial carry takes the varying mesh axes of the step's new carry.

    Args:
      f: ``(carry, x) -> (carry, y)``.
      init: the initial carry.
      xs: the scanned inputs (a pytree with a shared leading axis), or None.
      length: the number of steps when ``xs`` is None.
      **kwargs: passed to `jax.lax.scan` (``reverse``, ``unroll``).

    Returns:
      ``(final carry, stacked ys)``, as `jax.lax.scan`.

    Examples:
      >>> from jax.sharding import Mesh, PartitionSpec as P
      >>> mesh = Mesh(np.array(jax.devices()), ("batch",))
      >>> def running_sum(rows):                   # rows: this device's f32[1, 3]
      ...     return scan(lambda c, x: (c + x, c + x), jnp.zeros(()), rows[0])[1][None]
      >>> x = jnp.tile(jnp.arange(3.0), (jax.device_count(), 1))
      >>> print(jax.shard_map(running_sum, mesh=mesh, in_specs=P("batch"), out_specs=P("batch"))(x)[0])
      [0. 1. 3.]
    """
    leaves = jax.tree_util.tree_leaves(xs)
    if _manual_axes() and all(x.shape[0] > 0 for x in leaves) and (leaves or (length or 0) > 0):
        x0 = None if xs is None else jax.tree_util.tree_map(lambda x: x[0], xs)
        init = _match(init, lambda c: f(c, x0)[0])
    return lax.scan(f, init, xs, length=length, **kwargs)
