"""What the HMM passes share: result types, shape checks, masks and the per-step likelihood form.

`gm.temporal.hmm` (sequential passes), `gm.temporal.associative` (passes parallel over time) and
`gm.temporal.model` (passes from observations and an emission family) all build on this module.

* Result types: `Filtered`, `Smoothed`, `ExpectedCounts` (most probable paths are `gm.types.MPE`).
* `check_shapes`: trace-time validation of ``(initial, transition, log_lik, mask)``, naming the argument.
* Masks: `length_mask` builds one from lengths; `valid_steps` and `chain_started` are what the passes
  read; `zero_masked` zeroes per-step outputs at masked steps.
* The per-step likelihood form every pass reads, a `StepLikelihood` ``t -> ScaledLikelihood(lik,
  log_scale)`` with p(x_t | z_t = k) = lik[k] exp(log_scale): `array_likelihood` for an f32[T, K] array of
  log-likelihoods, ``gm.temporal.emissions.step_likelihood`` for an emission family and its observations.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

__all__ = [
    "ExpectedCounts",
    "Filtered",
    "ScaledLikelihood",
    "Shapes",
    "Smoothed",
    "StepLikelihood",
    "array_likelihood",
    "chain_started",
    "check_shapes",
    "length_mask",
    "shifted_exp",
    "valid_steps",
    "zero_masked",
]


class Filtered(NamedTuple):
    """Result of ``filter``: the forward pass.

    Attributes:
        log_evidence: f32[] log p(x_{1:T}).
        filtered: f32[T, K] p(z_t | x_{1:t}); zero rows at masked steps.
        log_normalizers: f32[T] log p(x_t | x_{1:t-1}); zero at masked steps.
    """

    log_evidence: jax.Array
    filtered: jax.Array
    log_normalizers: jax.Array


class Smoothed(NamedTuple):
    """Result of ``smoother`` and ``posterior``: the forward-backward pass.

    Attributes:
        log_evidence: f32[] log p(x_{1:T}).
        marginals: f32[T, K] p(z_t | x_{1:T}); zero rows at masked steps.
    """

    log_evidence: jax.Array
    marginals: jax.Array


class ExpectedCounts(NamedTuple):
    """Result of ``expected_counts``: the E-step of Baum-Welch.

    Attributes:
        log_evidence: f32[] log p(x_{1:T}).
        marginals: f32[T, K] p(z_t | x_{1:T}); zero rows at masked steps.
        transitions: f32[K, K] sum_t p(z_t = i, z_{t+1} = j | x_{1:T}) over valid pairs of steps.
    """

    log_evidence: jax.Array
    marginals: jax.Array
    transitions: jax.Array


class ScaledLikelihood(NamedTuple):
    """One step's emission likelihoods in scaled form: p(x_t | z_t = k) = lik[k] exp(log_scale).

    Attributes:
        lik: f32[K], at most 1 (the largest entry is 1 unless every entry is 0).
        log_scale: f32[], finite (0 where the step's log-likelihoods have no finite maximum).
    """

    lik: jax.Array
    log_scale: jax.Array


StepLikelihood = Callable[[jax.Array], ScaledLikelihood]
"""A sequence's evidence as the passes read it: ``t -> ScaledLikelihood`` for a traced step index ``t``."""


class Shapes(NamedTuple):
    """What `check_shapes` learns from the arrays: ``num_steps`` T, ``num_states`` K, and whether the
    transition is time-varying (f32[T-1, K, K] rather than f32[K, K])."""

    num_steps: int
    num_states: int
    time_varying: bool


def _shape(x) -> tuple[int, ...]:
    return tuple(jnp.shape(x))


def check_shapes(initial, transition, log_lik, *, mask=None, name: str = "log_lik") -> Shapes:
    """Validates an HMM's arrays at trace time and returns their sizes.

    Args:
        initial: f32[K]; transition: f32[K, K] or f32[T-1, K, K]; log_lik: f32[T, K] (or anything with
            that ``.shape``, e.g. a ``jax.ShapeDtypeStruct``); mask: optional bool[T].
        name: what to call ``log_lik`` in the error message.

    Returns:
        ``Shapes(num_steps, num_states, time_varying)``.

    Raises:
        ValueError naming the argument and both shapes.

    Examples:
        >>> check_shapes(jnp.ones(2) / 2, jnp.eye(2), jnp.zeros((5, 2)))
        Shapes(num_steps=5, num_states=2, time_varying=False)
    """
    ls = _shape(log_lik)
    if len(ls) != 2:
        raise ValueError(f"{name} must have shape [T, K]; got shape {ls}")
    T, K = ls
    if T < 1:
        raise ValueError(f"{name} must have at least one time step; got shape {ls}")
    if _shape(initial) != (K,):
        raise ValueError(f"initial must have shape [K] = ({K},) to match {name} {ls}; got {_shape(initial)}")
    ts = _shape(transition)
    if ts == (K, K):
        time_varying = False
    elif ts == (T - 1, K, K):
        time_varying = True
    else:
        raise ValueError(
            f"transition must have shape [K, K] = ({K}, {K}) or [T-1, K, K] = ({T - 1}, {K}, {K}) "
            f"to match {name} {ls}; got {ts}"
        )
    if mask is not None and _shape(mask) != (T,):
        raise ValueError(f"mask must have shape [T] = ({T},) to match {name} {ls}; got {_shape(mask)}")
    return Shapes(T, K, time_varying)


def length_mask(length, num_steps: int) -> jax.Array:
    """bool[T] mask (or bool[..., T] for a batch of lengths): ``t < length``.

    Args:
        length: int or int[...] valid lengths; num_steps: T, the padded length.

    Returns:
        bool[..., T], True on the first ``length`` steps.

    Examples:
        >>> length_mask(jnp.array([3, 1]), 4).tolist()
        [[True, True, True, False], [True, False, False, False]]
    """
    length = jnp.asarray(length)
    return jnp.arange(num_steps) < length[..., None]


def valid_steps(num_steps: int, *, mask=None) -> jax.Array:
    """bool[T]: the mask as booleans, or all True when ``mask`` is None.

    Examples:
        >>> valid_steps(3).tolist()
        [True, True, True]
    """
    return jnp.ones((num_steps,), bool) if mask is None else jnp.asarray(mask, bool)


def chain_started(valid) -> jax.Array:
    """bool[T-1]: for step t >= 1, whether some step before t is valid (otherwise step t, if valid,
    starts the chain and draws from the initial distribution).

    Examples:
        >>> chain_started(jnp.array([False, True, False, True])).tolist()
        [False, True, True]
    """
    return jnp.cumsum(valid.astype(jnp.int32))[:-1] > 0


def zero_masked(x, *, mask=None) -> jax.Array:
    """``x`` (leading axis T) with the rows of masked steps set to zero; ``x`` itself when mask is None.

    Examples:
        >>> zero_masked(jnp.ones((3, 2)), mask=jnp.array([True, False, True])).tolist()
        [[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]
    """
    if mask is None:
        return x
    return jnp.where(mask.reshape(mask.shape + (1,) * (x.ndim - 1)), x, 0)


def shifted_exp(log_lik_row) -> ScaledLikelihood:
    """One step's f32[K] log-likelihoods in scaled form: (exp(row - max), max), the max replaced by 0
    where it is not finite (every state impossible, or a NaN).

    Examples:
        >>> shifted_exp(jnp.log(jnp.array([0.5, 0.25]))).lik.tolist()
        [1.0, 0.5]
    """
    s = jnp.max(log_lik_row)
    s = jnp.where(jnp.isfinite(s), s, 0.0)
    return ScaledLikelihood(jnp.exp(log_lik_row - s), s)


def array_likelihood(log_lik) -> StepLikelihood:
    """The `StepLikelihood` of an f32[T, K] array of log-likelihoods: step t's row, exponentiated inside
    the loop that asks for it (``shifted_exp``).

    Examples:
        >>> array_likelihood(jnp.zeros((3, 2)))(1).lik.tolist()
        [1.0, 1.0]
    """
    log_lik = jnp.asarray(log_lik)
    return lambda t: shifted_exp(lax.dynamic_index_in_dim(log_lik, t, keepdims=False))
