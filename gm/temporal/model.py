"""An HMM as one value, and inference straight from observations.

`HMM` holds an HMM's parameters: the initial distribution, the transition matrix and the emission
family's parameters. The functions here take ``(family, model, obs)`` for one sequence and compute each
step's likelihood inside the loops (``emissions.step_likelihood``), so no [T, K] array of
log-likelihoods is written and read back; for ``Categorical`` no exponentials are taken either:

* `posterior`: smoothed marginals and log p(x_{1:T}) (``smoother`` from observations);
* `log_likelihood`: log p(x_{1:T}) alone (the forward pass);
* `expected_counts`: the Baum-Welch E-step's marginals and expected transition counts.

``jax.vmap`` them over a batch (``in_axes=(None, None, 0)``, masks for lengths). Eager calls check the
model's rows and the observations (``family.check_observations``) and raise ``ValueError`` naming the
culprit; under ``jax.jit`` an invalid model or observation gives NaN log-evidence and NaN rows. Estimation (Baum-Welch,
priors, restarts) is in ``gm.learn.hmm``.

Example:
    >>> family = Categorical(3)
    >>> model = HMM(jnp.ones(2) / 2, jnp.eye(2) * 0.8 + 0.1, CategoricalParams(jnp.ones((2, 3)) / 3))
    >>> posterior(family, model, jnp.array([0, 2, 1])).marginals.shape
    (3, 2)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gm.temporal.common import (
    ExpectedCounts,
    Smoothed,
    check_probabilities,
    check_shapes,
    float_array,
    mark_invalid,
    poison_invalid,
)
from gm.temporal.emissions import step_likelihood
from gm.validation import is_concrete
from gm.temporal.hmm import (
    expected_counts_from_likelihood,
    log_evidence_from_likelihood,
    smoother_from_likelihood,
)

__all__ = ["HMM", "expected_counts", "log_likelihood", "posterior"]


class HMM(NamedTuple):
    """An HMM's parameters (a pytree: ``jax.vmap`` over a batch of models, ``jax.tree.map`` over arrays).

    Attributes:
        initial: f32[K] p(z_1 = k).
        transition: f32[K, K] p(z_{t+1} = j | z_t = i) in row i (or f32[T-1, K, K], time-varying).
        emission: the emission family's parameter NamedTuple (``CategoricalParams``, ``GaussianParams``, ...).

    Examples:
        >>> model = HMM(jnp.ones(2) / 2, jnp.eye(2) * 0.8 + 0.1, CategoricalParams(jnp.ones((2, 3)) / 3))
    """

    initial: jax.Array
    transition: jax.Array
    emission: Any


class _Inputs(NamedTuple):
    initial: jax.Array
    transition: jax.Array
    lik_at: Any
    num_steps: int


def _inputs(family, model: HMM, obs, mask) -> _Inputs:
    """The arrays and per-step likelihood function of one sequence, shapes checked at trace time."""
    obs = jnp.asarray(obs)
    initial = float_array(model.initial, "model.initial")
    transition = float_array(model.transition, "model.transition")
    event = tuple(getattr(family, "event_shape", obs.shape[1:]))
    if obs.ndim != 1 + len(event) or obs.shape[1:] != event or obs.shape[0] < 1:
        raise ValueError(f"obs must be one sequence of shape [T{''.join(f', {d}' for d in event)}] with T >= 1 "
                         f"for {family}; got shape {obs.shape} (vmap over a batch)")
    if initial.ndim != 1:
        raise ValueError(f"model.initial must have shape [K]; got {initial.shape}")
    T, K = obs.shape[0], initial.shape[0]
    check_shapes(initial, transition, jax.ShapeDtypeStruct((T, K), initial.dtype), mask=mask, name="obs")
    check_probabilities(initial, "model.initial")
    check_probabilities(transition, "model.transition")
    if hasattr(family, "check_params"):
        family.check_params(model.emission, "model.emission")
    lik_at = step_likelihood(family, model.emission, obs)
    if hasattr(family, "check_observations"):
        family.check_observations(obs)
    row = jax.eval_shape(lambda: lik_at(0)[0])
    if row.shape != (K,):
        raise ValueError(f"model.emission gives likelihoods for {row.shape[-1] if row.shape else 0} states; "
                         f"model.initial has K = {K}")
    initial = poison_invalid(initial, transition)  # the NaN marker under jit, for the emission parameters too
    if hasattr(family, "params_valid") and not is_concrete(model.emission):
        initial = jnp.where(family.params_valid(model.emission), initial, jnp.nan)
    return _Inputs(initial, transition, lik_at, T)


def posterior(family, model: HMM, obs, *, mask=None) -> Smoothed:
    """Smoothing from observations: p(z_t | x_{1:T}) for every t and log p(x_{1:T}) of one sequence.

    Equal to ``smoother(model.initial, model.transition, family.log_likelihood(model.emission, obs))``,
    but each step's likelihood is computed inside the loops, so no [T, K] array of log-likelihoods is
    written and read back.

    Args:
        family: an emission family (``Categorical(V)``, ``Gaussian(D)``, ...).
        model: ``HMM``.
        obs: one sequence (int32[T] symbols, f32[T, D] vectors; -1 / NaN missing).
        mask: optional bool[T] (False = padding).

    Returns:
        ``Smoothed(log_evidence f32[], marginals f32[T, K])``.

    Examples:
        >>> post = jax.vmap(lambda o, m: posterior(family, model, o, mask=m))(obs, mask)   # a batch
    """
    inputs = _inputs(family, model, obs, mask)
    out = smoother_from_likelihood(inputs.initial, inputs.transition, inputs.lik_at, inputs.num_steps, mask=mask)
    return out._replace(log_evidence=mark_invalid(out.log_evidence))


def log_likelihood(family, model: HMM, obs, *, mask=None) -> jax.Array:
    """f32[]: log p(x_{1:T} | model) of one sequence (padded steps excluded), by the forward pass alone.

    Args:
        family: an emission family; model: ``HMM``; obs: one sequence; mask: optional bool[T].

    Examples:
        >>> total = jnp.sum(jax.vmap(lambda o: log_likelihood(family, model, o))(obs))   # a batch
    """
    inputs = _inputs(family, model, obs, mask)
    total = log_evidence_from_likelihood(inputs.initial, inputs.transition, inputs.lik_at, inputs.num_steps,
                                         mask=mask)
    return mark_invalid(total)


def expected_counts(family, model: HMM, obs, *, mask=None) -> ExpectedCounts:
    """``gm.temporal.expected_counts`` from observations: the Baum-Welch E-step of one sequence.

    N_ij = Σ_t p(z_t = i, z_{t+1} = j | x_{1:T}); the emission family's expected sufficient statistics
    follow from the marginals (``family.sufficient_stats(model.emission, obs, counts.marginals)``).

    Args:
        family: an emission family; model: ``HMM``; obs: one sequence; mask: optional bool[T].

    Returns:
        ``ExpectedCounts(log_evidence f32[], marginals f32[T, K], transitions f32[K, K])``.

    Examples:
        >>> counts = expected_counts(family, model, jnp.array([0, 2, 1]))
    """
    inputs = _inputs(family, model, obs, mask)
    out = expected_counts_from_likelihood(inputs.initial, inputs.transition, inputs.lik_at, inputs.num_steps,
                                          mask=mask)
    return out._replace(log_evidence=mark_invalid(out.log_evidence))
