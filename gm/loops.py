"""``lax.fori_loop`` and ``lax.scan`` that also run inside ``jax.shard_map``.

Inside ``shard_map`` every value's type records the mesh axes it varies over, and a loop's carry must
have the same type going in and coming out. A carry started from a constant (a zero buffer, a zero
running sum) does not vary, while the body's result does as soon as it touches per-device data (the
sharded evidence): ``lax.fori_loop`` then raises a TypeError. These wrappers trace the body once to
learn the types of its results and mark the initial carry as varying over the same axes
(``lax.pcast(..., to="varying")``). Outside ``shard_map`` (no manual mesh axes) they are the plain
``lax`` functions, at no cost.
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
    """``lax.fori_loop`` whose initial carry takes the varying mesh axes of the body's result."""
    if _manual_axes():
        init_val = _match(init_val, lambda c: body_fun(lower, c))
    return lax.fori_loop(lower, upper, body_fun, init_val, **kwargs)


def scan(f, init, xs=None, length=None, **kwargs):
    """``lax.scan`` whose initial carry takes the varying mesh axes of the step's new carry."""
    leaves = jax.tree_util.tree_leaves(xs)
    if _manual_axes() and all(x.shape[0] > 0 for x in leaves) and (leaves or (length or 0) > 0):
        x0 = None if xs is None else jax.tree_util.tree_map(lambda x: x[0], xs)
        init = _match(init, lambda c: f(c, x0)[0])
    return lax.scan(f, init, xs, length=length, **kwargs)
