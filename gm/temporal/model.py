"""An HMM as one value, and inference straight from observations.

`HMM` holds an HMM's parameters: the initial distribution, the transition matrix and the emission
family's parameters. The functions here take ``(family, model, obs)`` for one sequence and compute each
step's likelihood inside the loops (``emissions.step_likelihood``), so no [T, K] array of
log-likelihoods is written and read back; for ``Categorical`` no exponentials are taken either:

* `posterior`: smoothed marginals and log p(x_{1:T}) (``smoother`` from observations);
* `log_likelihood`: log p(x_{1:T}) alone (the forward pass);
* `expected_counts`: the Baum-Welch E-step's marginals and expected transition counts;
* `batch_expected_counts`: the same E-step on a whole batch, with the transition counts summed over it.

``jax.vmap`` them over a batch (``in_axes=(None, None, 0)``, masks for lengths). Vmapped over sequences
with one model (and one transition matrix) and K <= ``POSTERIOR_BATCH_MINOR_MAX_K``, `posterior` runs the
batch-minor passes of ``gm.temporal.hmm`` on the whole batch at once ([K, B] per step;
``common.per_sequence_or_batch``), as ``smoother`` does; `batch_expected_counts` runs them from a few
sequences on (``BATCH_MINOR_MIN_B``). Eager calls check the model's rows and the observations (``family.check_observations``) and raise ``ValueError`` naming the
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
    BatchExpectedCounts,
    ExpectedCounts,
    Smoothed,
    check_probabilities,
    check_shapes,
    float_array,
    mark_invalid,
    per_sequence_or_batch,
    poison_invalid,
    valid_steps,
)
from gm.temporal.emissions import batch_step_likelihood, step_likelihood
from gm.validation import is_concrete
from gm.temporal.hmm import (
    batch_expected_counts_from_likelihood,
    batch_smoother_from_likelihood,
    chunked_min_steps,
    expected_counts_from_likelihood,
    log_evidence_from_likelihood,
    smoother,
    smoother_from_likelihood,
)

__all__ = ["BATCH_MINOR_MIN_B", "BATCH_MINOR_SMALL_K_MIN_B", "HMM", "IN_SWEEP_MIN_KB", "POSTERIOR_BATCH_MINOR_MAX_K",
           "batch_expected_counts", "expected_counts", "log_likelihood", "posterior"]


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


def _inputs(family, model: HMM, obs, mask, *, batch: bool = False) -> _Inputs:
    """The arrays and per-step likelihood function of one sequence (``batch``: of B sequences [B, T, ...],
    the batch-minor `batch_step_likelihood`), shapes checked at trace time."""
    obs = jnp.asarray(obs)
    initial = float_array(model.initial, "model.initial")
    transition = float_array(model.transition, "model.transition")
    lead = 1 + batch
    event = tuple(getattr(family, "event_shape", obs.shape[lead:]))
    if obs.ndim != lead + len(event) or obs.shape[lead:] != event or obs.shape[batch] < 1:
        what = "a batch of sequences of shape [B, T" if batch else "one sequence of shape [T"
        raise ValueError(f"obs must be {what}{''.join(f', {d}' for d in event)}] with T >= 1 "
                         f"for {family}; got shape {obs.shape}" + ("" if batch else " (vmap over a batch)"))
    if initial.ndim != 1:
        raise ValueError(f"model.initial must have shape [K]; got {initial.shape}")
    T, K = obs.shape[batch], initial.shape[0]
    if batch and mask is not None and jnp.shape(mask) != obs.shape[:2]:
        raise ValueError(f"mask must have shape [B, T] = {obs.shape[:2]} to match obs; got {jnp.shape(mask)}")
    check_shapes(initial, transition, jax.ShapeDtypeStruct((T, K), initial.dtype),
                 mask=None if batch else mask, name="obs")
    check_probabilities(initial, "model.initial")
    check_probabilities(transition, "model.transition")
    if hasattr(family, "check_params"):
        family.check_params(model.emission, "model.emission")
    lik_at = (batch_step_likelihood if batch else step_likelihood)(family, model.emission, obs)
    if hasattr(family, "check_observations"):
        family.check_observations(obs)
    row = jax.eval_shape(lambda: lik_at(0)[0])
    if row.shape[:1] != (K,):
        raise ValueError(f"model.emission gives likelihoods for {row.shape[0] if row.shape else 0} states; "
                         f"model.initial has K = {K}")
    initial = poison_invalid(initial, transition)  # the NaN marker under jit, for the emission parameters too
    if hasattr(family, "params_valid") and not is_concrete(model.emission):
        initial = jnp.where(family.params_valid(model.emission), initial, jnp.nan)
    return _Inputs(initial, transition, lik_at, T)


def posterior(family, model: HMM, obs, *, mask=None) -> Smoothed:
    """Smoothing from observations: p(z_t | x_{1:T}) for every t and log p(x_{1:T}) of one sequence.

    Equal to ``smoother(model.initial, model.transition, family.log_likelihood(model.emission, obs))``,
    but each step's likelihood is computed inside the loops, so no [T, K] array of log-likelihoods is
    written and read back; except for one sequence (unbatched, or a vmap of size one) of at least
    ``chunked_min_steps(K)`` steps without a mask, which runs exactly that ``smoother`` call and so its
    chunked passes (`gm.temporal.chunked`; K = 16, T = 10^4 / 10^5: 2.2x / 4.4x faster than the
    per-sequence passes).

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
    if inputs.transition.ndim == 3:
        out = smoother_from_likelihood(inputs.initial, inputs.transition, inputs.lik_at, inputs.num_steps, mask=mask)
    else:
        out = Smoothed(*_jit_posterior_shared(family, inputs.initial, inputs.transition, model.emission, obs, mask))
    return out._replace(log_evidence=mark_invalid(out.log_evidence))


def _posterior_shared(family, initial, transition, emission, obs, mask):
    """(log_evidence f32[], marginals f32[T, K]) of checked inputs with one f32[K, K] transition: the
    per-sequence passes, or under ``jax.vmap`` over ``obs`` (and ``mask``) with one model the batch-minor
    passes on the whole batch (``common.per_sequence_or_batch``)."""
    has_mask = mask is not None
    T, K = jnp.shape(obs)[0], jnp.shape(initial)[0]

    def per_sequence(model, data):
        (initial, transition, emission), (obs, valid) = model, data
        out = smoother_from_likelihood(initial, transition, step_likelihood(family, emission, obs), T,
                                       mask=valid if has_mask else None)
        return out.log_evidence, out.marginals

    def batch(model, data):
        (initial, transition, emission), (obs, valid) = model, data
        out = batch_smoother_from_likelihood(initial, transition, batch_step_likelihood(family, emission, obs), T,
                                             mask=valid if has_mask else None)
        return out.log_evidence, out.marginals

    # One long sequence without a mask: its [T, K] log-likelihoods, then `smoother`'s automatic choice (the
    # chunked passes of `gm.temporal.chunked` from `chunked_min_steps(K)` steps).
    def single(model, data):
        (initial, transition, emission), (obs, _) = model, data
        out = smoother(initial, transition, family.log_likelihood(emission, obs))
        return out.log_evidence, out.marginals

    long_one = not has_mask and T >= chunked_min_steps(K)
    return per_sequence_or_batch(per_sequence, batch, (initial, transition, emission),
                                 (jnp.asarray(obs), valid_steps(T, mask=mask)), num_states=K,
                                 max_states=POSTERIOR_BATCH_MINOR_MAX_K, single=single if long_one else None)


# `posterior` vmapped over sequences runs the batch-minor passes up to this many states. Above, the per-sequence
# passes vmapped (a [B, K] x [K, K] product a step, batch-major) were faster: K = 64, jitted vmap, ms,
# batch-minor / per-sequence, load 3 to 5: B = 64, T = 100: 2.7-3.0 / 1.8-2.6; B = 256, T = 1000: 135-183 /
# 102-129 (the [K, B] likelihood columns gathered from the table, as a product with one-hot columns, or all
# gathered before the loops: 183 / 166 / 264). K = 16: 0.8 / 0.7-0.8 (B = 64, T = 100), 18-23 / 26-30
# (B = 256, T = 1000).
POSTERIOR_BATCH_MINOR_MAX_K = 16


# compiled once per (family, shapes), as ``gm.temporal.hmm``'s passes: an eager call runs one program
_jit_posterior_shared = jax.jit(_posterior_shared, static_argnums=0)


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


# From how many sequences `batch_expected_counts` runs the batch-minor passes (below: the per-sequence passes
# vmapped): BATCH_MINOR_MIN_B, or BATCH_MINOR_SMALL_K_MIN_B with K <= 8. One jitted EM update, T = 200, same
# process, load 5 to 6, batch-minor over per-sequence time: K = 2 and 4: 0.23x to 0.36x at B = 1, 1.15x to
# 2.9x from B = 2; K = 16: 0.86x to 1.0x up to B = 16, then ahead; K = 64: 0.3x to 0.7x up to B = 8, 1.0x at
# B = 16, 4x at B = 64 (see gm/temporal/README.md, "EM, batch-minor").
BATCH_MINOR_MIN_B = 16
BATCH_MINOR_SMALL_K_MIN_B = 2
# From K B = IN_SWEEP_MIN_KB the batch-minor E-step adds up a family's ``batch_step_features`` (the categorical
# emission counts) inside its backward sweep (one [K, B] x [B, V] product a step); below, the family's
# ``sufficient_stats`` run on the marginals after it. Jitted EM update, ms, in the sweep / after, load 3.5:
# K = 2, B = 64, T = 100: 0.53-0.56 / 0.37-0.48; K = 4, B = 64, T = 1000: 4.5 / 4.0-4.2; K = 2, B = 256,
# T = 100: 0.82 / 0.72-0.78; K = 4, B = 256, T = 1000: 9.5-10.2 / 15-16; K = 16, B = 64, T = 1000: 9.5-9.7 /
# 15.7-16.3; K = 16, B = 256, T = 1000: 27-28 / 73 (XLA:CPU's segment sum of [B T, K] rows, 150 ns a row).
IN_SWEEP_MIN_KB = 1024


def batch_expected_counts(family, model: HMM, obs, *, mask=None, weights=None) -> BatchExpectedCounts:
    """The Baum-Welch E-step of a batch of sequences that share ``model``: each sequence's log-evidence and
    marginals, and the expected counts summed over the batch (initial state, transitions, the emission
    family's sufficient statistics).

    Equal to ``expected_counts`` vmapped over the sequences with the counts summed (weighted); with one
    transition matrix and at least ``BATCH_MINOR_MIN_B`` sequences (``BATCH_MINOR_SMALL_K_MIN_B`` for
    K <= 8) it runs the batch-minor passes (``gm.temporal.hmm.batch_expected_counts_from_likelihood``:
    [K, B] per step, the transition counts, and from K B = ``IN_SWEEP_MIN_KB`` for a family with
    ``batch_step_features`` (``Categorical``) the emission counts, accumulated inside the backward sweep). Differentiated, the per-sequence passes run.

    Args:
        family: an emission family; model: ``HMM``; obs: B sequences ([B, T] symbols, [B, T, D] vectors);
        mask: optional bool[B, T] (False = padding); weights: optional f32[B], each sequence's weight in
        the summed counts (the log-evidence and marginals are returned unweighted).

    Returns:
        ``BatchExpectedCounts(log_evidence f32[B], marginals f32[B, T, K], initial f32[K], transitions
        f32[K, K], emission)`` (``emission``: ``family.sufficient_stats`` summed over the batch); NaN
        log-evidence (and counts) for an invalid input under jit.

    Examples:
        >>> counts = batch_expected_counts(family, model, obs, mask=mask)   # obs [B, T]
        >>> counts.transitions.shape
        (2, 2)
    """
    obs = jnp.asarray(obs)
    if obs.ndim < 2:
        raise ValueError(f"obs must have shape [B, T, ...] (a batch of sequences); got shape {obs.shape}")
    B, T = obs.shape[:2]
    dtype = jnp.result_type(float)
    w = jnp.ones((B,), dtype) if weights is None else jnp.asarray(weights, dtype)
    if weights is not None and w.shape != (B,):
        raise ValueError(f"weights must have shape [B] = ({B},); got {w.shape}")
    valid = jnp.ones((B, T), bool) if mask is None else jnp.asarray(mask, bool)
    has_mask = mask is not None

    def statistics(emission, obs, marginals, w):  # the family's statistics of the weighted marginals
        flat = obs.reshape((B * T,) + obs.shape[2:])
        return family.sufficient_stats(emission, flat, (marginals * w[:, None, None]).reshape(B * T, -1))

    def per_sequence(initial, transition, emission, obs, valid, w):
        counts = jax.vmap(lambda o, v: expected_counts(family, HMM(initial, transition, emission), o,
                                                       mask=v if has_mask else None))(obs, valid)
        first = jnp.argmax(valid, axis=1)  # the first valid step (an empty sequence's marginals are zero)
        start = jnp.take_along_axis(counts.marginals, first[:, None, None], axis=1)[:, 0]
        return (counts.log_evidence, counts.marginals, w @ start, jnp.einsum("b,bij->ij", w, counts.transitions),
                statistics(emission, obs, counts.marginals, w))

    K = jnp.shape(model.initial)[-1]
    if jnp.ndim(model.transition) == 3 or B < (BATCH_MINOR_SMALL_K_MIN_B if K <= 8 else BATCH_MINOR_MIN_B):
        return BatchExpectedCounts(*per_sequence(model.initial, model.transition, model.emission, obs, valid, w))
    inputs = _inputs(family, model, obs, mask, batch=True)
    in_sweep = hasattr(family, "batch_step_features") and K * B >= IN_SWEEP_MIN_KB

    @jax.custom_jvp
    def run(initial, transition, emission, obs, valid, w):
        out = batch_expected_counts_from_likelihood(
            initial, transition, batch_step_likelihood(family, emission, obs), T, mask=valid if has_mask else None,
            weights=w, features=family.batch_step_features(obs) if in_sweep else None)
        return out._replace(emission=out.emission if in_sweep else statistics(emission, obs, out.marginals, w))

    @run.defjvp
    def _run_jvp(primals, tangents):  # the per-sequence passes' derivative
        out, d_out = jax.jvp(per_sequence, primals, tangents)
        return BatchExpectedCounts(*out), BatchExpectedCounts(*d_out)

    out = run(inputs.initial, inputs.transition, model.emission, obs, valid, w)
    return out._replace(log_evidence=mark_invalid(out.log_evidence))  # the rest is NaN by propagation
