"""What the HMM passes share: result types, shape checks, masks and the per-step likelihood form.

`gm.temporal.hmm` (sequential passes), `gm.temporal.associative` (passes parallel over time) and
`gm.temporal.model` (passes from observations and an emission family) all build on this module.

* Result types: `Filtered`, `Smoothed`, `ExpectedCounts`, `BatchExpectedCounts` (most probable paths are
  `gm.types.MPE`).
* `check_shapes`: trace-time validation of ``(initial, transition, log_lik, mask)``, naming the argument.
* Values (issue 18, through `gm.validation`): `check_inputs` casts int/bool arrays to float, checks shapes,
  and (eager, or compiled under `gm.validation.checked`) checks the values: `check_probabilities` (initial
  and transition rows non-negative, finite, summing to one) and `check_log_lik` (no NaN, no +inf).
  Unchecked under ``jax.jit``, an invalid input gives the documented marker instead: `poison_invalid`
  makes ``initial`` NaN for an invalid model (the passes propagate it), and `mark_invalid` turns a NaN
  or +inf log-evidence into NaN, so an invalid input never returns plausible numbers.
* Masks: `length_mask` builds one from lengths; `valid_steps` and `chain_started` are what the passes
  read; `zero_masked` zeroes per-step outputs at masked steps.
* The per-step likelihood form every pass reads, a `StepLikelihood` ``t -> ScaledLikelihood(lik,
  log_scale)`` with p(x_t | z_t = k) = lik[k] exp(log_scale): `array_likelihood` for an f32[T, K] array of
  log-likelihoods, ``gm.temporal.emissions.step_likelihood`` for an emission family and its observations;
  for the batch-minor passes a `BatchStepLikelihood` (``lik`` f32[K, B]): `batch_array_likelihood`.
* `per_sequence_or_batch`: the dispatch that runs a batch-minor pass once on the whole batch when a
  per-sequence function is vmapped over sequences with one model (``smoother``, ``filter``, ``posterior``).

Length: about 560 lines. The small pieces that the sequential, associative and from-observations passes
all read (types, checks, masks, likelihood forms, the batch dispatch); split further, each piece would be a
module of a few dozen lines.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gm.validation import is_concrete, require

__all__ = [
    "BatchExpectedCounts",
    "BatchStepLikelihood",
    "ExpectedCounts",
    "Filtered",
    "Inputs",
    "ScaledLikelihood",
    "Shapes",
    "Smoothed",
    "StepLikelihood",
    "array_likelihood",
    "batch_array_likelihood",
    "chain_started",
    "check_inputs",
    "check_log_lik",
    "check_probabilities",
    "check_shapes",
    "float_array",
    "mark_invalid",
    "model_is_valid",
    "per_sequence_or_batch",
    "poison_invalid",
    "length_mask",
    "ROW_SUM_ATOL",
    "rows_valid",
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


class BatchExpectedCounts(NamedTuple):
    """Result of the batch E-step (``gm.temporal.model.batch_expected_counts``): B sequences, counts summed.

    Attributes:
        log_evidence: f32[B] log p(x^b) of each sequence.
        marginals: f32[B, T, K] p(z_t | x^b); zero rows at masked steps.
        initial: f32[K] Σ_b w_b p(z_first = k | x^b) at each sequence's first valid step.
        transitions: f32[K, K] Σ_b w_b Σ_t p(z_t = i, z_{t+1} = j | x^b) over valid pairs of steps.
        emission: the emission family's expected sufficient statistics summed over the batch (weighted), or
            None where no family was given.
    """

    log_evidence: jax.Array
    marginals: jax.Array
    initial: jax.Array
    transitions: jax.Array
    emission: object


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

BatchStepLikelihood = Callable[[jax.Array], ScaledLikelihood]
"""A batch's evidence as the batch-minor passes read it: ``t -> ScaledLikelihood(lik f32[K, B], log_scale
f32[B])``, sequence b in column b."""


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

    Every length must be an integer in ``[0, T]``. Eager, a length outside it raises ``ValueError``
    naming the sequence (its index in ``length``) and the value; a float or bool ``length`` is a
    ``TypeError``. Under ``jax.jit`` the values are unchecked (a mask has no room for a marker: a negative
    length masks every step, one above T none); `gm.validation.checked` raises there instead.

    Args:
        length: int or int[...] valid lengths; num_steps: T, the padded length (a positive int).

    Returns:
        bool[..., T], True on the first ``length`` steps.

    Raises:
        ValueError: ``num_steps`` is not a positive int, or (eager) a length is negative or above T.
        TypeError: ``length`` is not an integer array.

    Examples:
        >>> length_mask(jnp.array([3, 1]), 4).tolist()
        [[True, True, True, False], [True, False, False, False]]
        >>> length_mask(jnp.array([3, 5]), 4)
        Traceback (most recent call last):
        ...
        ValueError: length[1] = 5 (sequence 1) is out of range: every length must be in [0, num_steps] = [0, 4]
    """
    if not isinstance(num_steps, (int, np.integer)) or isinstance(num_steps, bool) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive int; got {num_steps!r}")
    length = np.asarray(length) if is_concrete(length) else length
    if not jnp.issubdtype(jnp.result_type(length), jnp.integer):
        raise TypeError(f"length must be an integer array (sequence lengths); got dtype {jnp.result_type(length)}")

    def describe(at):
        if at is None:
            return f"length out of range: every length must be in [0, num_steps] = [0, {num_steps}]"
        index = ", ".join(str(i) for i in at)
        where, sequence = (f"[{index}]", f" (sequence {index})") if at else ("", "")
        return (f"length{where} = {int(length[at])}{sequence} is out of range: every length must be in "
                f"[0, num_steps] = [0, {num_steps}]")

    require((length >= 0) & (length <= num_steps), describe)
    return jnp.arange(num_steps) < jnp.asarray(length)[..., None]


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
    # a +inf entry stays inf here (its step's message becomes inf / inf = NaN, the marker): a select per
    # step to turn the row into NaN cost 40-60% of the smoother on CPU (K = 4, B = 256, T = 1000)
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


def batch_array_likelihood(log_lik, *, precompute: bool = False) -> BatchStepLikelihood:
    """The `BatchStepLikelihood` of an f32[B, T, K] array of log-likelihoods: transposed once to [T, K, B],
    then step t's [K, B] slice exponentiated inside the loop that asks for it, each column shifted by its
    max (as ``shifted_exp``); with ``precompute`` all steps exponentiated at once before the loops (for
    passes that read each step more than twice: the chunked passes of one long sequence read it four
    times, and there it was 1.15x faster at K = 16, T = 10^6).

    Examples:
        >>> batch_array_likelihood(jnp.zeros((4, 3, 2)))(1).lik.shape
        (2, 4)
    """
    lls = jnp.transpose(jnp.asarray(log_lik), (1, 2, 0))  # [T, K, B]: a step's row contiguous over the batch
    if precompute:
        shifts = jnp.max(lls, axis=1)
        shifts = jnp.where(jnp.isfinite(shifts), shifts, 0.0)
        liks = jnp.exp(lls - shifts[:, None, :])
        return lambda t: ScaledLikelihood(lax.dynamic_index_in_dim(liks, t, keepdims=False),
                                          lax.dynamic_index_in_dim(shifts, t, keepdims=False))

    def at(t):
        row = lax.dynamic_index_in_dim(lls, t, keepdims=False)
        s = jnp.max(row, axis=0)
        s = jnp.where(jnp.isfinite(s), s, 0.0)
        return ScaledLikelihood(jnp.exp(row - s), s)

    return at


def per_sequence_or_batch(per_sequence, batch, model, data, *, num_states: int, max_states: int | None = None,
                          single=None):
    """``per_sequence(model, data)`` on one sequence; under ``jax.vmap`` over ``data`` (pytrees of arrays)
    with ``model`` unbatched, ``batch(model, data)`` once on the whole batch (every leaf of ``data`` with a
    leading [B] axis; `jax.custom_batching.custom_vmap`): the batch-minor passes of ``gm.temporal.hmm``.

    A vmap over any leaf of ``model`` (a batch of models), of size one with ``num_states`` > 8 (the
    batch-minor passes were 0.8x there), or with ``num_states`` above ``max_states``, runs ``per_sequence``
    vmapped. Differentiated, ``per_sequence``
    runs (``custom_jvp`` whose rule is its ``jvp``), so ``grad``, ``jvp`` and ``vmap`` compose as before;
    ``batch`` must return what ``per_sequence`` vmapped would. With ``single`` (same signature and results
    as ``per_sequence``), an unbatched call and a vmap of size one over ``data`` run it instead (the
    chunked passes of one long sequence); derivatives still come from ``per_sequence``.

    Examples:
        >>> out = jax.vmap(lambda x: per_sequence_or_batch(f, f_batch, (initial, transition), (x,), num_states=K))(xs)
    """

    @jax.custom_batching.custom_vmap
    def one(model, data):
        return (per_sequence if single is None else single)(model, data)

    @one.def_vmap
    def _batched(axis_size, in_batched, model, data):
        model_batched, data_batched = in_batched
        if axis_size == 1 and single is not None and not any(jax.tree.leaves(model_batched)):
            data = jax.tree.map(lambda x, b: x[0] if b else x, data, data_batched)
            out = jax.tree.map(lambda x: x[None], single(model, data))
        elif (any(jax.tree.leaves(model_batched)) or (axis_size == 1 and num_states > 8)
                or (max_states is not None and num_states > max_states)):
            axes = jax.tree.map(lambda b: 0 if b else None, (model_batched, data_batched))
            out = jax.vmap(per_sequence, in_axes=axes)(model, data)
        else:
            data = jax.tree.map(lambda x, b: x if b else jnp.broadcast_to(x, (axis_size,) + jnp.shape(x)),
                                data, data_batched)
            out = batch(model, data)
        return out, jax.tree.map(lambda _: True, out)

    @jax.custom_jvp
    def run(model, data):
        return one(model, data)

    @run.defjvp
    def _run_jvp(primals, tangents):  # a custom_vmap function has no derivative rule of its own
        return jax.tree.map(lambda x: x, jax.jvp(per_sequence, primals, tangents))

    return run(model, data)


# ------------------------------------------------------------------------------------------ values

ROW_SUM_ATOL = 1e-3
"""How far from one a probability row's sum may be (as for a Bayesian network's CPT rows)."""


def float_array(x, name: str) -> jax.Array:
    """``x`` as a floating array: int and bool arrays are cast to the default float dtype, anything else
    that is not floating raises ``TypeError`` naming the argument.

    Examples:
        >>> float_array(np.array([1, 0]), "initial").dtype
        dtype('float32')
    """
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.floating):
        return x
    if jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == jnp.bool_:
        return x.astype(jnp.result_type(float))
    raise TypeError(f"{name} must be a real (float, int or bool) array; got dtype {x.dtype}")


def _host(x):
    return np.asarray(x) if is_concrete(x) else x


def _position(at) -> str:
    return "[" + ", ".join(str(i) for i in at) + "]"


def check_probabilities(probs, name: str, *, atol: float = ROW_SUM_ATOL, over: str = "the K states") -> None:
    """Every entry of ``probs`` finite and non-negative and every row (last axis) summing to one.

    Eager: ``ValueError`` naming ``name``, the position and the value (or the row and its sum). Under
    `gm.validation.checked` the same checks are compiled; otherwise traced calls are unchecked.

    Args:
        probs: f32[..., K] probability rows (``initial`` f32[K], ``transition`` f32[K, K] or f32[T-1, K, K]).
        name: the argument's name in the message.
        atol: tolerance on each row's sum.
        over: what a row is a distribution over, for the message.

    Returns:
        None; the check raises instead.

    Examples:
        >>> check_probabilities(jnp.array([[0.9, 0.1], [1.2, -0.2]]), "transition")
        Traceback (most recent call last):
        ...
        ValueError: transition[1, 1] = -0.2 is negative or not finite: every entry must be a probability in [0, 1]
    """
    values = _host(probs)

    def bad_entry(at):
        if at is None:
            return f"{name} has a negative or non-finite entry: every entry must be a probability in [0, 1]"
        return (f"{name}{_position(at)} = {float(values[at]):.6g} is negative or not finite: every entry must "
                f"be a probability in [0, 1]")

    require((values >= 0) & (values < np.inf), bad_entry)
    sums = values.sum(-1)

    def bad_row(at):
        if at is None:
            return f"{name} has a row that does not sum to 1"
        row = f"{name}{_position(at)}" if values.ndim > 1 else name
        return f"{row} does not sum to 1: sum = {float(sums[at]):.6g} (rows are distributions over {over})"

    require(abs(sums - 1.0) <= atol, bad_row)


def check_log_lik(log_lik, name: str = "log_lik") -> None:
    """No NaN and no +inf in ``log_lik`` (-inf, an impossible state, is valid).

    Eager: ``ValueError`` naming ``name``, the step, the state and the value; compiled under
    `gm.validation.checked`; unchecked otherwise (a NaN gives NaN log-evidence, the marker).

    Examples:
        >>> check_log_lik(jnp.array([[0.0, jnp.nan]]))
        Traceback (most recent call last):
        ...
        ValueError: log_lik[0, 1] = nan: log-likelihoods must be finite or -inf (step 0, state 1)
    """
    values = _host(log_lik)

    def describe(at):
        if at is None:
            return f"{name} has a NaN or +inf entry: log-likelihoods must be finite or -inf"
        where = f" (step {at[0]}, state {at[1]})" if len(at) == 2 else ""
        return f"{name}{_position(at)} = {float(values[at])}: log-likelihoods must be finite or -inf{where}"

    require(values < np.inf, describe)  # False for NaN and +inf


def model_is_valid(initial, transition, *, atol: float = ROW_SUM_ATOL) -> jax.Array:
    """bool[]: the traced flag of `check_probabilities` on ``initial`` and ``transition`` (O(K^2) work, or
    O(T K^2) for a time-varying transition).

    Examples:
        >>> bool(model_is_valid(jnp.ones(2) / 2, jnp.array([[1.5, -0.5], [0.5, 0.5]])))
        False
    """
    return rows_valid(initial, transition, atol=atol)


def rows_valid(*probabilities, atol: float = ROW_SUM_ATOL) -> jax.Array:
    """bool[]: the traced flag of `check_probabilities` on every array given (entries finite and
    non-negative, rows over the last axis summing to one); O(total size) work.

    Examples:
        >>> bool(rows_valid(jnp.ones(2) / 2, jnp.eye(2), jnp.array([[0.5, 0.6]])))
        False
    """
    ok = jnp.asarray(True)
    for p in probabilities:
        ok = ok & jnp.all((p >= 0) & (p < jnp.inf)) & jnp.all(jnp.abs(jnp.sum(p, -1) - 1.0) <= atol)
    return ok


def mark_invalid(log_evidence, *arrays):
    """The documented marker on the small outputs: a log-evidence (or log-probability) that is NaN or
    +inf becomes NaN, and so do the ``arrays`` given (e.g. f32[K, K] expected counts). The per-step rows
    need no select: the passes propagate the NaN (see ``gm.temporal.hmm``).

    Returns:
        ``log_evidence`` alone when no ``arrays`` are given, else ``(log_evidence, *arrays)``.

    Examples:
        >>> mark_invalid(jnp.asarray(jnp.inf)).item()
        nan
        >>> mark_invalid(jnp.asarray(jnp.nan), jnp.ones(2))[1].tolist()
        [nan, nan]
    """
    ok = (log_evidence < jnp.inf) & ~jnp.isnan(log_evidence)
    marked = jnp.where(ok, log_evidence, jnp.asarray(jnp.nan, log_evidence.dtype))
    if not arrays:
        return marked
    return (marked,) + tuple(jnp.where(ok, a, jnp.asarray(jnp.nan, a.dtype)) for a in arrays)


def poison_invalid(initial, transition) -> jax.Array:
    """``initial``, or NaN everywhere when the model is invalid (`model_is_valid`; O(K^2) work): the
    passes then propagate the NaN into every output, the marker of an invalid model under ``jax.jit``.

    Examples:
        >>> poison_invalid(jnp.ones(2) / 2, jnp.array([[1.5, -0.5], [0.5, 0.5]])).tolist()
        [nan, nan]
    """
    return jnp.where(model_is_valid(initial, transition), initial, jnp.asarray(jnp.nan, initial.dtype))


class Inputs(NamedTuple):
    """What `check_inputs` returns: the arrays (floating) and their `Shapes`."""

    initial: jax.Array
    transition: jax.Array
    log_lik: jax.Array
    shapes: Shapes


def check_inputs(initial, transition, log_lik, *, mask=None) -> Inputs:
    """The entry check of every HMM pass on arrays: dtypes (int/bool cast to float), shapes (`check_shapes`)
    and values (`check_probabilities`, `check_log_lik`; eager or under `gm.validation.checked`).

    Args:
        initial: f32[K]; transition: f32[K, K] or f32[T-1, K, K]; log_lik: f32[T, K]; mask: optional bool[T].

    Returns:
        ``Inputs(initial, transition, log_lik, shapes)``; ``initial`` is NaN where the model is invalid
        (`poison_invalid`: the marker under ``jax.jit``; eager calls have raised).

    Raises:
        TypeError: a complex or non-numeric array; ValueError: a wrong shape or (eager) a bad value,
        naming the argument and the position.

    Examples:
        >>> check_inputs(jnp.ones(2) / 2, jnp.eye(2), jnp.zeros((5, 2))).shapes
        Shapes(num_steps=5, num_states=2, time_varying=False)
    """
    initial = float_array(initial, "initial")
    transition = float_array(transition, "transition")
    log_lik = float_array(log_lik, "log_lik")
    shapes = check_shapes(initial, transition, log_lik, mask=mask)
    check_probabilities(initial, "initial")
    check_probabilities(transition, "transition")
    check_log_lik(log_lik)
    return Inputs(poison_invalid(initial, transition), transition, log_lik, shapes)
