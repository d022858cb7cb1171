"""Value checks, written once for every room: eager calls raise, compiled calls check when asked.

Shapes and dtypes are static, so every public function checks them while tracing, always. Values are
data: outside `jax.jit` / `jax.vmap` (every input concrete) they are checked on the host and a bad one
raises `ValueError` naming the argument, the variable or state, the position and the value. Inside a
transformation a value cannot raise, so the fast path stays unchecked and each function documents the
marker it returns for invalid values (impossible evidence: ``log P(e) = -inf`` and all-zero marginals;
an invalid HMM input: NaN log-evidence); wrap a function with `checked` to run the same checks compiled,
through `jax.experimental.checkify`:

    >>> from gm.bn import BayesNet, log_evidence
    >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
    ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
    >>> print(jax.jit(log_evidence)(net, jnp.array([-1, 2])))   # 2 is no state of Wet: the marker, -inf
    -inf
    >>> safe = checked(log_evidence)            # jit-compiled, raises ValueError on a bad value
    >>> print(safe(net, jnp.array([-1, 1])))    # == log_evidence(net, evidence) when every check holds
    -1.4271
    >>> safe(net, jnp.array([-1, 2]))
    Traceback (most recent call last):
    ...
    ValueError: evidence out of range: each entry must be a state index of its variable or -1 (unobserved)

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

__all__ = ["checked", "checks_enabled", "is_concrete", "require", "require_finite", "require_weights"]

_CHECKS = contextvars.ContextVar("gm_value_checks", default=False)


def is_concrete(*trees) -> bool:
    """True when no leaf of ``trees`` is a tracer (the call is eager: values can be read on the host).

    Args:
      *trees: pytrees of arrays (any number).

    Returns:
      ``bool``.

    Examples:
      >>> is_concrete(jnp.ones(2), {"w": np.zeros(3)})
      True
      >>> jax.jit(lambda x: jnp.asarray(is_concrete(x)))(jnp.ones(2)).item()
      False
    """
    return not any(isinstance(x, jax.core.Tracer) for t in trees for x in jax.tree_util.tree_leaves(t))


def checks_enabled() -> bool:
    """Whether the function being traced runs under `checked` (its value checks are compiled in).

    Returns:
      ``bool``.

    Examples:
      >>> checks_enabled()
      False
      >>> checked(lambda x: jnp.asarray(checks_enabled()))(jnp.ones(1)).item()
      True
    """
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

    Args:
      ok: a bool array (any shape), True where the value is valid.
      describe: ``position -> message``; called with the index tuple of the first False entry (eager) or
        with None (compiled under `checked`).

    Returns:
      None.

    Raises:
      ValueError: (eager) some entry of ``ok`` is False.

    Examples:
      >>> require(np.array([True, False]), lambda at: f"weights[{at[0]}] is negative")
      Traceback (most recent call last):
      ...
      ValueError: weights[1] is negative
      >>> require(np.array([True, True]), lambda at: "never raised")       # all valid: nothing happens
    """
    if is_concrete(ok):
        ok = np.asarray(ok)
        if not ok.all():
            position = tuple(int(i) for i in np.argwhere(~ok)[0])
            raise ValueError(describe(position))
    elif checks_enabled():
        checkify.check(jnp.all(ok), describe(None).replace("{", "{{").replace("}", "}}"))


def require_weights(values, *, unit: str = "record") -> None:
    """`require` that every weight in ``values`` (f[N]) is finite and non-negative, naming the ``unit``
    (record, sequence, ...) and its weight.

    Args:
      values: f[N] weights (concrete or traced).
      unit: what one weight belongs to, for the message.

    Returns:
      None.

    Raises:
      ValueError: (eager) a negative, NaN or infinite weight.

    Examples:
      >>> require_weights(np.array([1.0, -2.0]), unit="sequence")
      Traceback (most recent call last):
      ...
      ValueError: weights must be finite and non-negative: sequence 1 has weight -2.0
    """
    values = np.asarray(values) if is_concrete(values) else values

    def describe(at):
        if at is None:
            return "weights must be finite and non-negative"
        return f"weights must be finite and non-negative: {unit} {at[0]} has weight {float(values[at[0]])}"

    require((values >= 0) & (values < np.inf), describe)


def require_finite(values, name: str, *, unit: str = "row") -> None:
    """`require` that every entry of ``values`` is finite (no NaN, no inf), naming ``name``, the position,
    the value and the ``unit`` (row, image, sample, ...) its first index counts.

    Args:
      values: an array of any shape (concrete or traced).
      name: the argument in the message.
      unit: what the first axis indexes, for the message.

    Returns:
      None.

    Raises:
      ValueError: (eager) a NaN or infinite entry.

    Examples:
      >>> require_finite(np.array([[0.5, 1.0], [np.nan, 2.0]]), "features")
      Traceback (most recent call last):
      ...
      ValueError: features[1, 0] = nan: every entry must be finite (row 1)
    """
    values = np.asarray(values) if is_concrete(values) else jnp.asarray(values)

    def describe(at):
        if at is None:
            return f"{name} has a NaN or infinite entry: every entry must be finite"
        where = f"[{', '.join(str(i) for i in at)}]" if at else ""
        return f"{name}{where} = {float(values[at])}: every entry must be finite" + (f" ({unit} {at[0]})" if at else "")

    require((values > -np.inf) & (values < np.inf), describe)


def checked(fn: Callable, **jit_kwargs) -> Callable:
    """``fn`` compiled with its value checks on: a failed check raises `ValueError` with its message.

    ``jit_kwargs`` go to `jax.jit` (``static_argnums``, ``static_argnames``). The checks are the ones the
    eager call runs (evidence and data in range, soft evidence and weights finite and non-negative,
    probability rows valid, ...); the result equals ``fn``'s when they all hold. Batches work:
    ``checked(jax.vmap(bn.marginals, in_axes=(None, 0)))``.

    Args:
      fn: a function of ``gm`` (or one calling them) whose value checks go through `require`.
      **jit_kwargs: passed to `jax.jit`.

    Returns:
      The compiled function; it raises ValueError with the failed check's message.

    Examples:
      >>> from gm.bn import BayesNet, log_evidence
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> safe = checked(jax.vmap(log_evidence, in_axes=(None, 0)))
      >>> print(safe(net, jnp.array([[-1, 1], [1, -1]])))        # log 0.24, log 0.2
      [-1.4271 -1.6094]
      >>> safe(net, jnp.array([[-1, 1], [3, -1]]))
      Traceback (most recent call last):
      ...
      ValueError: evidence out of range: each entry must be a state index of its variable or -1 (unobserved)
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
