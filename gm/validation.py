"""Value checks, written once for every room: eager calls raise, compiled calls check when asked.

Shapes and dtypes are static, so every public function checks them while tracing, always. Values are
data: outside `jax.jit` / `jax.vmap` (every input concrete) they are checked on the host and a bad one
raises `ValueError` naming the argument, the variable or state, the position and the value. Inside a
transformation a value cannot raise, so the fast path stays unchecked and each function documents the
marker it returns for invalid values (impossible evidence: ``log P(e) = -inf`` and all-zero marginals;
an invalid HMM input: NaN log-evidence); wrap a function with `checked` to run the same checks compiled,
through `jax.experimental.checkify`:

    >>> safe = checked(bn.marginals)            # jit-compiled, raises ValueError on a bad value
    >>> safe(net, evidence)                     # == bn.marginals(net, evidence) when every check holds

The room modules call `require` with a boolean array and a message: eager it finds the first failing
position and raises; under `checked` it becomes a `checkify.check`; otherwise it costs nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

__all__ = ["checked", "checks_enabled", "is_concrete", "require"]

_CHECKS = contextvars.ContextVar("gm_value_checks", default=False)


def is_concrete(*trees) -> bool:
    """True when no leaf of ``trees`` is a tracer (the call is eager: values can be read on the host)."""
    return not any(isinstance(x, jax.core.Tracer) for t in trees for x in jax.tree_util.tree_leaves(t))


def checks_enabled() -> bool:
    """Whether the function being traced runs under `checked` (its value checks are compiled in)."""
    return _CHECKS.get()


@contextlib.contextmanager
def _enabled():
    token = _CHECKS.set(True)
    try:
        yield
    finally:
        _CHECKS.reset(token)


def require(ok, describe: Callable[[tuple[int, ...] | None], str]) -> None:
    """Raise ``ValueError(describe(position))`` where ``ok`` (a bool array) is False.

    Eager (``ok`` concrete): ``position`` is the index of the first False entry. Traced under `checked`:
    a ``checkify.check`` with ``describe(None)`` (no position: the message says what was wrong). Traced
    otherwise: nothing (the unchecked fast path).

    >>> require(np.array([True, False]), lambda at: f"weights[{at[0]}] is negative")
    Traceback (most recent call last):
    ...
    ValueError: weights[1] is negative
    """
    if is_concrete(ok):
        ok = np.asarray(ok)
        if not ok.all():
            position = tuple(int(i) for i in np.argwhere(~ok)[0])
            raise ValueError(describe(position))
    elif checks_enabled():
        checkify.check(jnp.all(ok), describe(None).replace("{", "{{").replace("}", "}}"))


def checked(fn: Callable, **jit_kwargs) -> Callable:
    """``fn`` compiled with its value checks on: a failed check raises `ValueError` with its message.

    ``jit_kwargs`` go to `jax.jit` (``static_argnums``, ``static_argnames``). The checks are the ones the
    eager call runs (evidence and data in range, soft evidence and weights finite and non-negative,
    probability rows valid, ...); the result equals ``fn``'s when they all hold. Batches work:
    ``checked(jax.vmap(bn.marginals, in_axes=(None, 0)))``.

    Example:
      >>> safe = checked(bn.log_evidence)
      >>> safe(net, jnp.array([-1, 2, -1]))    # ValueError: evidence 2 of 'Sprinkler' is out of range
    """

    def with_checks(*args, **kwargs):
        with _enabled():
            return fn(*args, **kwargs)

    compiled = jax.jit(checkify.checkify(with_checks, errors=checkify.user_checks), **jit_kwargs)

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with _enabled():  # traced here on the first call (and on every retrace)
            error, out = compiled(*args, **kwargs)
        message = error.get()
        if message is not None:
            raise ValueError(message.split(" (`check` failed)")[0])
        return out

    return run
