"""Exact inference in hidden Markov models, on per-step log-likelihoods: the sequential passes.

Every function takes the model as three arrays and works for any emission family:

* ``initial``    f32[K]                 p(z_0 = k)
* ``transition`` f32[K, K] or f32[T-1, K, K]   p(z_{t+1} = j | z_t = i) in row i, column j
                                        (time-varying: ``transition[t]`` maps step t to step t+1)
* ``log_lik``    f32[T, K]              log p(x_t | z_t = k)

and an optional ``mask`` bool[T] for padded batches of variable-length sequences. A masked step is
removed from the chain: its likelihood is one and the transition into it is the identity, so for
padding at the end every quantity on the valid steps (and the log-evidence) equals that of the
unpadded sequence exactly. Per-step outputs at masked steps are zero (marginals) or -1 (states).
``length_mask(length, T)`` builds the mask from a length.

Numerics: scaled forward-backward in float32 (each message is normalised; the log normalisers are
summed after the loops, pairwise with each rounding error kept (TwoSum), so the log-evidence keeps
float32 accuracy for T = 100,000).
Impossible evidence (p(x) = 0) gives ``log_evidence = -inf``, the flag to check; the marginals are
then finite but meaningless, never NaN.

Invalid inputs: every public function starts with ``common.check_inputs`` (int/bool arrays cast to
float, shapes, and through `gm.validation` the values: rows of ``initial`` and ``transition`` finite,
non-negative and summing to one, no NaN or +inf in ``log_lik``). Eager calls raise ``ValueError`` naming
the argument and position; under ``jax.jit`` the check is skipped and the result carries the marker:
NaN log-evidence and NaN rows (``viterbi``: NaN ``log_prob``; ``sample_posterior``: every state -1),
never plausible numbers; ``gm.validation.checked`` compiles the checks in. The marker costs no pass
over the outputs: an invalid model replaces ``initial`` by NaN (an O(K^2) test), and the passes let a
NaN propagate (their guards test ``c <= 0``, false for NaN, to keep a message; ``c > 0`` would swallow
it), so a NaN or +inf log-likelihood at step t puts a NaN in every smoothed row and in every filtered
row from step t on (the filtered rows before t are correct: they do not depend on x_t).

The functions are pure and undecorated: ``jax.jit`` and ``jax.vmap`` them (``in_axes=(None, None, 0)``
for a batch of sequences that share parameters). The same passes over a per-step likelihood function
instead of an array (`smoother_from_likelihood`, `log_evidence_from_likelihood`,
`expected_counts_from_likelihood`) serve ``gm.temporal.model``, which computes each step's likelihood
from the observations inside the loop. ``batch_smoother_from_likelihood`` and
``batch_expected_counts_from_likelihood`` run the same passes on B sequences that share one model with
[K, B] per step (batch-minor): ``smoother``, ``filter`` and ``gm.temporal.posterior`` switch to them under
``jax.vmap`` over sequences, and Baum-Welch's E-step calls the second directly (its transition counts
summed over the batch inside the backward sweep). Parallel-in-time versions are in ``gm.temporal.associative``.
One long sequence: ``filter`` and ``smoother`` (``method="auto"`` from a measured length, or
``"chunked"``) cut it into chunks run as a batch (``gm.temporal.chunked``, the orchestration below).

Length: about 1,250 lines. The forward pass, the backward pass and the in-place smoothing pass (per
sequence and batch-minor) are the private core that every function here reads; keeping them in one module with their users (the array
API and the per-step-likelihood API) keeps them private, where a split would make that plumbing public.

Reference: L. R. Rabiner (1989), A tutorial on hidden Markov models.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gm import loops
from gm.temporal import chunked
from gm.temporal.common import (
    BatchExpectedCounts,
    BatchStepLikelihood,
    ExpectedCounts,
    Filtered,
    Smoothed,
    StepLikelihood,
    array_likelihood,
    batch_array_likelihood,
    chain_started,
    check_inputs,
    check_probabilities,
    float_array,
    mark_invalid,
    per_sequence_or_batch,
    valid_steps,
    zero_masked,
)
from gm.types import MPE

__all__ = [
    "Sampled",
    "filter",
    "smoother",
    "expected_counts",
    "two_slice_marginals",
    "viterbi",
    "sample_posterior",
    "sample",
    "smoother_from_likelihood",
    "log_evidence_from_likelihood",
    "expected_counts_from_likelihood",
    "batch_smoother_from_likelihood",
    "batch_expected_counts_from_likelihood",
    "chunked_min_steps",
]


class Sampled(NamedTuple):
    """Result of ``sample``.

    Attributes:
        states: int32[T] the sampled hidden states.
        observations: the emission sampler's draws stacked over steps (``[T, ...]``), or None when no
            sampler was given.
    """

    states: jax.Array
    observations: jax.Array | None


def _on_arrays(pass_from_likelihood, initial, transition, log_lik, mask):
    """A ``*_from_likelihood`` pass run on an f32[T, K] array of log-likelihoods, inputs checked
    (``check_inputs``); an invalid input gives NaN log-evidence and NaN rows (propagated, see above)."""
    initial, transition, log_lik, (T, _, _) = check_inputs(initial, transition, log_lik, mask=mask)
    out = pass_from_likelihood(initial, transition, array_likelihood(log_lik), T, mask=mask)
    return out._replace(log_evidence=mark_invalid(out.log_evidence))  # the rows are NaN by propagation


# ------------------------------------------------------------------------------------- internals


@jax.custom_jvp
def _compensated_sum(x):
    """f32[]: Σ_t x_t of an f32[T] array with every addition's rounding error kept (TwoSum) and added
    back: accurate to about one rounding of the result, like Kahan's sum, but one reduction after the
    loops instead of a scalar chain inside them. -inf stays -inf."""

    def add(left, right):
        (s1, c1), (s2, c2) = left, right
        s = s1 + s2
        bb = s - s1
        e = (s1 - (s - bb)) + (s2 - bb)  # exact: s1 + s2 = s + e
        return s, c1 + c2 + jnp.where(jnp.isfinite(s), e, 0.0)

    zero = jnp.zeros((), x.dtype)
    total, comp = lax.reduce((x, jnp.zeros_like(x)), (zero, zero), add, (0,))
    return total + comp


@_compensated_sum.defjvp
def _compensated_sum_jvp(primals, tangents):  # a variadic reduce has no derivative rule; a sum's is a sum
    return _compensated_sum(primals[0]), jnp.sum(tangents[0])


def _compensated_sums(x):
    """f32[B]: the column sums Σ_t x[t, b] of an f32[T, B] array, each accurate like `_compensated_sum`,
    by pairwise TwoSum over halves (log2 T elementwise levels across the B lanes: no variadic reduce, which
    XLA:CPU runs a lane at a time). -inf stays -inf."""
    s, c = x, jnp.zeros_like(x)
    while s.shape[0] > 1:
        if s.shape[0] % 2:
            pad = jnp.zeros((1,) + s.shape[1:], s.dtype)
            s, c = jnp.concatenate([s, pad]), jnp.concatenate([c, pad])
        h = s.shape[0] // 2
        s1, s2 = s[:h], s[h:]
        t = s1 + s2
        bb = t - s1
        e = (s1 - (t - bb)) + (s2 - bb)  # exact: s1 + s2 = t + e
        c = c[:h] + c[h:] + jnp.where(jnp.isfinite(t), e, 0.0)
        s = t
    return s[0] + c[0]


def _loop_unroll(K: int) -> int:
    """Steps per loop iteration. XLA:CPU compiles a ``while`` loop whose body touches under 1 KiB per
    iteration into one function (``SmallWhileLoopHoistingPass``, about 30 ns a step for K = 4) and
    otherwise runs each of the body's kernels through its runtime (about 0.5 µs a step and more): a
    second unrolled step would push small-K bodies over that line, so they run one step per iteration."""
    return 1 if K <= 8 else 2


def _row(x, t):
    return lax.dynamic_index_in_dim(x, t, keepdims=False)


def _put(buf, x, t):
    return lax.dynamic_update_index_in_dim(buf, x, t, 0)


# The loops below index the time axis with dynamic slices inside ``fori_loop`` rather than feeding
# ``lax.scan`` its xs: under ``vmap`` a scan moves the batch axis of every [B, T, K] input and output
# behind the time axis (two full transposes), while a dynamic slice of a [B, T, K] array stays in place.
#
# Every pass reads the evidence through a `StepLikelihood` ``lik_at(t) -> ScaledLikelihood(lik f32[K],
# log_scale f32[])`` with p(x_t | z_t = k) = lik[k] exp(log_scale). For a [T, K] array of log-likelihoods
# it exponentiates one row inside the loop; an emission family can instead compute the row from the
# observations (``gm.temporal.posterior``), so no [T, K] array of log-likelihoods is ever stored.


def _forward(initial, transition, lik_at, T, mask, time_varying, *, keep_normalizers=False, store_pred=False,
             unroll=None):
    """Scaled forward pass.

    Returns (messages f32[T, K], log_normalizers f32[T] or None, log_evidence f32[], last alpha f32[K]).
    The messages are the filtered distributions alpha_t (frozen, not zeroed, at masked steps), or with
    ``store_pred`` the one-step predictions pred_t = alpha_{t-1} A_{t-1} (pred_0 = initial) from which
    alpha_t = normalise(pred_t ⊙ lik_t) is recovered; at a masked step pred_t = alpha_{t-1}.
    """
    K = initial.shape[0]
    valid = None if mask is None else jnp.asarray(mask, bool)
    started = None if mask is None else jnp.concatenate([jnp.zeros((1,), bool), chain_started(valid)])
    lik0, s0 = lik_at(0)
    dtype = lik0.dtype
    a0 = initial * lik0
    c0 = jnp.sum(a0)
    a0 = jnp.where(c0 <= 0, initial, a0 / jnp.where(c0 <= 0, 1.0, c0))  # NaN propagates (the marker)
    l0 = jnp.log(c0) + s0
    if valid is not None:
        a0 = jnp.where(valid[0], a0, initial)
        l0 = jnp.where(valid[0], l0, 0.0)
    msgs = _put(jnp.zeros((T, K), dtype), initial if store_pred else a0, 0)
    # the log normalisers go to a buffer and are summed after the loop (`_compensated_sum`): a Kahan
    # sum in the loop would put its scalar chain in every step and small-K bodies over XLA's
    # small-loop line (`_loop_unroll`)
    log_cs = _put(jnp.zeros((T,), dtype), l0, 0)

    def step(t, carry):
        alpha, msgs, log_cs = carry
        trans_t = _row(transition, t - 1) if time_varying else transition
        lik_t, s_t = lik_at(t)
        pred = jnp.dot(alpha, trans_t)
        if valid is not None:  # the first valid step after masked ones draws from the initial distribution
            pred = jnp.where(started[t], pred, alpha)
        a = pred * lik_t
        c = jnp.sum(a)
        a = jnp.where(c <= 0, alpha, a / jnp.where(c <= 0, 1.0, c))  # c = 0: impossible evidence; NaN propagates
        log_c = jnp.log(c) + s_t
        if valid is not None:
            a = jnp.where(valid[t], a, alpha)
            pred = jnp.where(valid[t], pred, alpha)
            log_c = jnp.where(valid[t], log_c, 0.0)
        msgs = _put(msgs, pred if store_pred else a, t)
        return a, msgs, _put(log_cs, log_c, t)

    unroll = _loop_unroll(K) if unroll is None else unroll
    carry = (a0, msgs, log_cs)
    if T > 1:
        carry = loops.fori_loop(1, T, step, carry, unroll=min(unroll, T - 1))
    last, msgs, log_cs = carry
    return msgs, log_cs if keep_normalizers else None, _compensated_sum(log_cs), last


def _backward(transition, lik_at, T, alphas, mask, time_varying, *, keep_messages=False, unroll=None):
    """Scaled backward pass, combined on the fly with the forward messages.

    Returns (marginals f32[T, K] (zero at masked steps), messages f32[T-1, K] or None) where the
    message for step t is p(x_{t+1} | ·) ⊙ beta_{t+1} (the ingredient of the two-slice marginals).
    """
    K = alphas.shape[1]
    dtype = alphas.dtype
    valid = None if mask is None else jnp.asarray(mask, bool)
    trans_T = jnp.swapaxes(transition, -1, -2)
    ones = jnp.ones((K,), dtype)
    last = _row(alphas, T - 1)
    if valid is not None:
        last = jnp.where(valid[T - 1], last, 0.0)
    marg = _put(jnp.zeros((T, K), dtype), last, T - 1)
    msgs = jnp.zeros((max(T - 1, 1), K), dtype) if keep_messages else None

    def step(i, carry):
        beta, marg, msgs = carry
        t = T - 2 - i
        transT_t = _row(trans_T, t) if time_varying else trans_T
        lik_n, _ = lik_at(t + 1)
        v = lik_n * beta
        b = jnp.dot(v, transT_t)
        sb = jnp.sum(b)
        b = jnp.where(sb <= 0, beta, b / jnp.where(sb <= 0, 1.0, sb))  # NaN propagates (the marker)
        if valid is not None:
            b = jnp.where(valid[t + 1], b, beta)
            v = jnp.where(valid[t + 1], v, 0.0)
        m = _row(alphas, t) * b
        sm = jnp.sum(m)
        m = m / jnp.where(sm <= 0, 1.0, sm)  # NaN propagates
        if valid is not None:
            m = jnp.where(valid[t], m, 0.0)
        marg = _put(marg, m, t)
        if msgs is not None:
            msgs = _put(msgs, v, t)
        return b, marg, msgs

    carry = (ones, marg, msgs)
    unroll = _loop_unroll(K) if unroll is None else unroll
    if T > 1:
        carry = loops.fori_loop(0, T - 1, step, carry, unroll=min(unroll, T - 1))
    _, marg, msgs = carry
    return marg, msgs


def _smooth_from_pred(transition, preds, last, lik_at, mask, time_varying, *, unroll=None):
    """Backward pass over the stored one-step predictions, in place.

    p(z_t | x_{1:T}) ∝ pred_t ⊙ lik_t ⊙ (A_t (gamma_{t+1} ⊘ pred_{t+1})): the smoothed marginal of step
    t+1 divided by its prediction from step t, mapped back through the transition, times the filtered
    message of step t (recovered from its prediction and likelihood; its normaliser cancels). One
    matrix-vector product per step, as in a beta recursion, but the backward messages are never
    stored: each marginal overwrites the prediction of step t+1 once that has been read, so the
    [T, K] buffer of ``_forward(..., store_pred=True)`` becomes the output. A masked step t+1 is the
    identity (gamma_t = gamma_{t+1}).

    Args:
        last: f32[K] the last filtered message alpha_{T-1} (= gamma_{T-1}).

    Returns marginals f32[T, K], zero at masked steps.
    """
    T = preds.shape[0]
    valid = None if mask is None else jnp.asarray(mask, bool)
    trans_T = jnp.swapaxes(transition, -1, -2)

    def step(i, carry):
        g, out = carry  # g = gamma_{t+1}, not yet written: row t+1 still holds pred_{t+1}
        t = T - 2 - i
        p_next = _row(out, t + 1)
        p_t = _row(out, t)
        lik_t, _ = lik_at(t)
        if valid is not None:
            lik_t = jnp.where(valid[t], lik_t, 1.0)
        ratio = jnp.where(p_next > 0, g / jnp.where(p_next > 0, p_next, 1.0), 0.0)
        gt = p_t * lik_t * jnp.dot(ratio, _row(trans_T, t) if time_varying else trans_T)
        s = jnp.sum(gt)
        gt = gt / jnp.where(s <= 0, 1.0, s)  # NaN propagates
        # ``~(s < 0)`` (always true, NaN included: the marker propagates) makes the write wait for both
        # reads of ``out``; without it XLA may schedule the write first and then copy the whole buffer at
        # every step
        keep = ~(s < 0)
        if valid is not None:
            out = _put(out, jnp.where(keep & valid[t + 1], g, 0.0), t + 1)
            gt = jnp.where(valid[t + 1], gt, g)
        else:
            out = _put(out, jnp.where(keep, g, 0.0), t + 1)
        return gt, out

    g, out = last, preds
    unroll = _loop_unroll(preds.shape[1]) if unroll is None else unroll
    if T > 1:
        g, out = loops.fori_loop(0, T - 1, step, (g, out), unroll=min(unroll, T - 1))
    return _put(out, g if valid is None else jnp.where(valid[0], g, 0.0), 0)



# ------------------------------------------------------------------------------------- public API


def filter(initial, transition, log_lik, *, mask=None, method: str = "auto") -> Filtered:  # noqa: A001 (the HMM verb)
    """Forward filtering: p(z_t | x_{1:t}) for every t and log p(x_{1:T}).

    alpha_t ∝ (alpha_{t-1} A) ⊙ p(x_t | ·), normalised by c_t = p(x_t | x_{1:t-1}); log p(x) = Σ_t log c_t.

    Args:
        initial: f32[K] initial distribution.
        transition: f32[K, K] (or f32[T-1, K, K]) row-stochastic transition matrix.
        log_lik: f32[T, K] per-step emission log-likelihoods.
        mask: optional bool[T]; False marks padded steps (see module docstring).
        method: ``"sequential"`` (one step at a time), ``"chunked"`` (one sequence as a batch of chunks,
            `gm.temporal.chunked`; one transition matrix, no mask) or ``"auto"``: chunked for an unbatched call
            (or a vmap of size one) with one transition matrix, no mask and T >= `chunked_min_steps(K)`
            (K = 1-4, 9-16; the smoother 17-32 too), unless the chunks' lanes do not coalesce within
            `chunked.lane_budget` steps (then sequential).
            The same results either way, to float32 rounding.

    Returns:
        ``Filtered(log_evidence f32[], filtered f32[T, K], log_normalizers f32[T])``; for an invalid
        input under jit NaN log-evidence and NaN rows from the first invalid step on (all of them for an
        invalid model); eager: ValueError naming it.

    Examples:
        >>> post = filter(jnp.ones(2) / 2, jnp.eye(2) * 0.8 + 0.1, jnp.zeros((5, 2)))
    """
    initial, transition, log_lik, (T, K, tv) = check_inputs(initial, transition, log_lik, mask=mask)
    use_chunks = _use_chunked(method, T, K, mask=mask, time_varying=tv, task="filter")
    if tv:
        alphas, log_cs, total, _ = _forward(initial, transition, array_likelihood(log_lik), T, mask, tv,
                                            keep_normalizers=True)
        return Filtered(mark_invalid(total), zero_masked(alphas, mask=mask), log_cs)
    total, filtered, log_cs = _jit_filter_shared(initial, transition, log_lik, mask, use_chunks)
    return Filtered(mark_invalid(total), filtered, log_cs)


def smoother(initial, transition, log_lik, *, mask=None, method: str = "auto") -> Smoothed:
    """Forward-backward smoothing: p(z_t | x_{1:T}) for every t and log p(x_{1:T}).

    p(z_t | x_{1:T}) ∝ alpha_t ⊙ beta_t with beta_t = A (p(x_{t+1} | ·) ⊙ beta_{t+1}), computed in the
    equivalent form gamma_t ∝ pred_t ⊙ p(x_t | ·) ⊙ (A (gamma_{t+1} ⊘ pred_{t+1})) from the forward pass's
    one-step predictions pred_t = alpha_{t-1} A: one matrix-vector product per step each way, and the
    marginals overwrite the predictions in place, so a batch needs one [B, T, K] buffer, not two.
    ``gm.temporal.posterior`` runs the same passes on observations and an emission family without
    a [T, K] array of log-likelihoods.

    Args:
        initial: f32[K]; transition: f32[K, K] or f32[T-1, K, K]; log_lik: f32[T, K];
        mask: optional bool[T] (False = padding);
        method: ``"sequential"``, ``"chunked"`` or ``"auto"`` (as ``filter``; chunked: the blocked passes of
            `gm.temporal.chunked`, forward and backward).

    Returns:
        ``Smoothed(log_evidence f32[], marginals f32[T, K])``; all NaN for an invalid input under jit
        (eager: ValueError naming it).

    Examples:
        >>> post = smoother(jnp.ones(2) / 2, jnp.eye(2) * 0.8 + 0.1, jnp.zeros((5, 2)))
        >>> post.marginals.shape
        (5, 2)
    """
    initial, transition, log_lik, (T, K, tv) = check_inputs(initial, transition, log_lik, mask=mask)
    use_chunks = _use_chunked(method, T, K, mask=mask, time_varying=tv, task="smoother")
    if tv:
        out = smoother_from_likelihood(initial, transition, array_likelihood(log_lik), T, mask=mask)
    else:
        out = Smoothed(*_jit_smoother_shared(initial, transition, log_lik, mask, use_chunks))
    return out._replace(log_evidence=mark_invalid(out.log_evidence))  # the rows are NaN by propagation


def _smoother_shared(initial, transition, log_lik, mask, use_chunks=None):
    """(log_evidence f32[], marginals f32[T, K]) of checked inputs with one f32[K, K] transition (see
    ``common.per_sequence_or_batch``); one sequence by the chunked passes with ``use_chunks`` (`_use_chunked`)."""
    has_mask = mask is not None

    def per_sequence(model, data):
        (initial, transition), (log_lik, valid) = model, data
        out = smoother_from_likelihood(initial, transition, array_likelihood(log_lik), log_lik.shape[0],
                                       mask=valid if has_mask else None)
        return out.log_evidence, out.marginals

    def batch(model, data):
        (initial, transition), (log_lik, valid) = model, data
        out = batch_smoother_from_likelihood(initial, transition, batch_array_likelihood(log_lik),
                                             log_lik.shape[1], mask=valid if has_mask else None)
        return out.log_evidence, out.marginals

    def single(model, data):  # with ``method="auto"`` the sequential pass where the chunks' lanes do not coalesce
        fallback = (lambda: per_sequence(model, data)) if use_chunks == "auto" else None
        return _chunked_smoother(*model, data[0], fallback=fallback)

    return per_sequence_or_batch(per_sequence, batch, (initial, transition), (log_lik, valid_steps(
        log_lik.shape[0], mask=mask)), num_states=log_lik.shape[1], single=single if use_chunks else None)


def _filter_shared(initial, transition, log_lik, mask, use_chunks=None):
    """(log_evidence f32[], filtered f32[T, K], log_normalizers f32[T]) of checked inputs with one f32[K, K]
    transition (see ``common.per_sequence_or_batch``); one sequence by the chunked pass with ``use_chunks``."""
    has_mask = mask is not None

    def per_sequence(model, data):
        (initial, transition), (log_lik, valid) = model, data
        m = valid if has_mask else None
        alphas, log_cs, total, _ = _forward(initial, transition, array_likelihood(log_lik), log_lik.shape[0], m,
                                            False, keep_normalizers=True)
        return total, zero_masked(alphas, mask=m), log_cs

    def batch(model, data):  # `filter` on B sequences (see `_forward_batch_minor`)
        (initial, transition), (log_lik, valid) = model, data
        valid = valid if has_mask else None
        alphas, log_cs, total, _ = _forward_batch_minor(initial, transition, batch_array_likelihood(log_lik),
                                                        log_lik.shape[1], valid, store_pred=False)
        if valid is not None:
            alphas = jnp.where(valid.T[:, None, :], alphas, 0.0)
        return total, jnp.transpose(alphas, (2, 0, 1)), log_cs.T

    def single(model, data):
        fallback = (lambda: per_sequence(model, data)) if use_chunks == "auto" else None
        return _chunked_filter(*model, data[0], fallback=fallback)

    return per_sequence_or_batch(per_sequence, batch, (initial, transition), (log_lik, valid_steps(
        log_lik.shape[0], mask=mask)), num_states=log_lik.shape[1], single=single if use_chunks else None)


# Compiled once per shape: an eager call (a notebook's) runs one program instead of dispatching the passes'
# many small operations one by one (first call 3x faster, later calls 0.2 s -> milliseconds); inside an
# outer jit, vmap or grad the inner jit is inlined, batched or differentiated like any other function.
_jit_smoother_shared = jax.jit(_smoother_shared, static_argnums=4)
_jit_filter_shared = jax.jit(_filter_shared, static_argnums=4)
_jit_viterbi_shared = jax.jit(lambda initial, transition, log_lik, mask: _viterbi_shared(initial, transition,
                                                                                        log_lik, mask))


# The batch-minor passes: B sequences sharing (initial f32[K], transition f32[K, K]), every per-step array
# [K, B] (the batch the contiguous axis), the evidence read through a `BatchStepLikelihood` ``t ->
# ScaledLikelihood(lik f32[K, B], log_scale f32[B])``, the mask bool[B, T] or None. The same passes and
# masking rules as `_forward` and `_smooth_from_pred`, lane by lane. K <= 8: each matrix product as a
# broadcast sum (a small fused loop body, see `_loop_unroll`); above, as a matrix product.


def _chain_started_batch_minor(valid_t):
    """bool[T, B]: for each step, whether some earlier step of the lane is valid (False at step 0)."""
    B = valid_t.shape[1]
    return jnp.concatenate([jnp.zeros((1, B), bool), jnp.cumsum(valid_t, axis=0)[:-1] > 0])


def _forward_batch_minor(initial, transition, lik_at, T, valid, *, store_pred):
    """`_forward` on B sequences at once (see above); ``initial`` f32[K] shared or f32[K, B] one per lane.

    Returns:
        (messages f32[T, K, B]: the filtered distributions, or with ``store_pred`` the one-step predictions;
        log_normalizers f32[T, B]; log_evidence f32[B]; last filtered message f32[K, B]).
    """
    K = initial.shape[0]
    lik0, s0 = lik_at(0)
    B, dtype = lik0.shape[1], lik0.dtype
    if valid is not None:
        valid_t = valid.T  # [T, B]
        started = _chain_started_batch_minor(valid_t)

    def forward_product(alpha):  # pred[j, b] = Σ_i alpha[i, b] A[i, j]
        if K > 8:
            return jnp.einsum("ij,ib->jb", transition, alpha)
        return jnp.sum(transition[:, :, None] * alpha[:, None, :], axis=0)

    # one initial distribution f32[K] for every lane, or one per lane f32[K, B] (the chunked passes' incoming
    # predictions)
    init = initial if initial.ndim == 2 else jnp.broadcast_to(initial[:, None], (K, B))
    a0 = init * lik0
    c0 = jnp.sum(a0, axis=0)
    a0 = jnp.where(c0 <= 0, init, a0 / jnp.where(c0 <= 0, 1.0, c0))  # NaN propagates (the marker)
    l0 = jnp.log(c0) + s0
    if valid is not None:
        a0 = jnp.where(valid_t[0], a0, init)
        l0 = jnp.where(valid_t[0], l0, 0.0)
    msgs = _put(jnp.zeros((T, K, B), dtype), init if store_pred else a0, 0)
    log_cs = _put(jnp.zeros((T, B), dtype), l0, 0)

    def forward(t, carry):
        alpha, msgs, log_cs = carry
        lik_t, s_t = lik_at(t)
        pred = forward_product(alpha)
        if valid is not None:
            pred = jnp.where(started[t], pred, alpha)
        a = pred * lik_t
        c = jnp.sum(a, axis=0)
        a = jnp.where(c <= 0, alpha, a / jnp.where(c <= 0, 1.0, c))
        log_c = jnp.log(c) + s_t
        if valid is not None:
            a = jnp.where(valid_t[t], a, alpha)
            pred = jnp.where(valid_t[t], pred, alpha)
            log_c = jnp.where(valid_t[t], log_c, 0.0)
        return a, _put(msgs, pred if store_pred else a, t), _put(log_cs, log_c, t)

    carry = (a0, msgs, log_cs)
    if T > 1:
        carry = loops.fori_loop(1, T, forward, carry)
    last, msgs, log_cs = carry
    return msgs, log_cs, _compensated_sums(log_cs), last


def _smooth_batch_minor(transition, preds, last, lik_at, valid, *, weights=None, features=None):
    """`_smooth_from_pred` on B sequences at once (see above): the in-place backward pass over the stored
    one-step predictions f32[T, K, B], from the last filtered message f32[K, B].

    With ``weights`` f32[B], the weighted expected transition counts Σ_b w_b Σ_t xi_t^b are summed
    inside the same sweep: xi_t(i, j) = alpha_t(i) A_ij gamma_{t+1}(j) / pred_{t+1}(j) (the backward
    kernel p(z_t | z_{t+1}, x_{1:t}) times the next marginal), so each step adds the [K, B] x [B, K]
    product of alpha_t with the ratio gamma_{t+1} ⊘ pred_{t+1} that the marginal already needs, and
    multiplies by A once at the end; no [T, K, K] two-slice array is formed. alpha_t is the step's
    un-normalised message pred_t ⊙ lik_t over the marginal's normaliser, which equals alpha_t's own (both
    are Σ_i pred_t(i) lik_t(i) (A ratio)(i) = c_t Σ_j gamma_{t+1}(j)), so each pair's xi sums to one.
    A pair counts where step t+1 is valid and some step before it is (after a gap, the pair is the
    last valid step's frozen message and step t+1). With ``features`` (``t -> f32[B, F]``, needs
    ``weights``) also Σ_b w_b Σ_t gamma_t^b ⊗ features_t^b f32[K, F], one [K, B] x [B, F] product a step
    (a categorical family's emission counts, with one-hot features).

    Returns:
        (marginals f32[T, K, B], zero at masked steps; transition counts f32[K, K] or None; feature sums
        f32[K, F] or None).
    """
    T, K, _ = preds.shape
    valid_t = None if valid is None else valid.T
    counting = weights is not None
    if counting and valid is not None:
        pair_ok = valid_t & _chain_started_batch_minor(valid_t)  # [T, B]: the pair (t - 1, t) counts

    def backward_product(ratio):  # out[i, b] = Σ_j A[i, j] ratio[j, b]
        if K > 8:
            return jnp.einsum("ij,jb->ib", transition, ratio)
        return jnp.sum(transition[:, :, None] * ratio[None, :, :], axis=1)

    # The sums over the batch are matrix products at every K: as a broadcast sum (or per-lane [K, K, B] sums)
    # for K <= 8, XLA fused them with the reads of ``out`` and copied the whole [T, K, B] buffer at every step
    # (K = 4, B = 256, T = 1000: 0.9 s instead of 9 ms).
    def feature_sum(gamma, t):  # Σ_b w_b gamma[k, b] features_t[b, f], gamma zero at masked steps
        return jnp.dot(gamma * weights, features(t))

    def backward(i, carry):  # as `_smooth_from_pred`: row t+1 still holds pred_{t+1} until written
        g, out, acc, acc_f = carry
        t = T - 2 - i
        p_next = _row(out, t + 1)
        p_t = _row(out, t)
        lik_t, _ = lik_at(t)
        if valid is not None:
            lik_t = jnp.where(valid_t[t], lik_t, 1.0)
        ratio = jnp.where(p_next > 0, g / jnp.where(p_next > 0, p_next, 1.0), 0.0)
        a_t = p_t * lik_t
        gt = a_t * backward_product(ratio)
        sg = jnp.sum(gt, axis=0)
        inv = 1.0 / jnp.where(sg <= 0, 1.0, sg)
        gt = gt * inv
        if counting:
            w = weights * inv
            w = w if valid is None else jnp.where(pair_ok[t + 1], w, 0.0)
            acc = acc + jnp.einsum("ib,jb->ij", a_t * w, ratio)
        keep = ~(sg < 0)  # the write waits for both reads of ``out`` (see `_smooth_from_pred`)
        written = jnp.where(keep if valid is None else keep & valid_t[t + 1], g, 0.0)
        out = _put(out, written, t + 1)
        if features is not None:
            acc_f = acc_f + feature_sum(written, t + 1)
        if valid is not None:
            gt = jnp.where(valid_t[t + 1], gt, g)
        return gt, out, acc, acc_f

    acc = jnp.zeros((K, K), preds.dtype) if counting else None
    acc_f = None
    if features is not None:
        acc_f = jnp.zeros((K, jax.eval_shape(features, 0).shape[1]), preds.dtype)
    g, out = last, preds
    if T > 1:
        g, out, acc, acc_f = loops.fori_loop(0, T - 1, backward, (g, out, acc, acc_f))
    g = g if valid is None else jnp.where(valid_t[0], g, 0.0)
    out = _put(out, g, 0)
    if features is not None:
        acc_f = acc_f + feature_sum(g, 0)
    return out, (transition * acc if counting else None), acc_f


def batch_smoother_from_likelihood(initial, transition, lik_at: BatchStepLikelihood, num_steps: int, *,
                                   mask=None) -> Smoothed:
    """``smoother_from_likelihood`` on B sequences sharing one model, batch-minor: every per-step array is
    [K, B], so each step is one [K, K] x [K, B] product for the whole batch instead of B matrix-vector
    products. What ``smoother`` and ``gm.temporal.posterior`` run under ``jax.vmap`` over sequences.

    Args:
        initial: f32[K]; transition: f32[K, K] (one matrix for every step);
        lik_at: ``t -> ScaledLikelihood(lik f32[K, B], log_scale f32[B])`` (`batch_array_likelihood`,
            ``gm.temporal.emissions.batch_step_likelihood``); num_steps: T (static);
        mask: optional bool[B, T] (False = padding).

    Returns:
        ``Smoothed(log_evidence f32[B], marginals f32[B, T, K])``, equal to the per-sequence passes'.

    Examples:
        >>> post = batch_smoother_from_likelihood(jnp.ones(2) / 2, jnp.eye(2), batch_array_likelihood(
        ...     jnp.zeros((4, 3, 2))), 3)
        >>> post.marginals.shape
        (4, 3, 2)
    """
    valid = None if mask is None else jnp.asarray(mask, bool)
    preds, _, total, last = _forward_batch_minor(initial, transition, lik_at, num_steps, valid, store_pred=True)
    marginals, _, _ = _smooth_batch_minor(transition, preds, last, lik_at, valid)
    return Smoothed(total, jnp.transpose(marginals, (2, 0, 1)))


def batch_expected_counts_from_likelihood(initial, transition, lik_at: BatchStepLikelihood, num_steps: int, *,
                                          mask=None, weights=None, features=None) -> BatchExpectedCounts:
    """The Baum-Welch E-step on B sequences sharing one model, batch-minor (as
    `batch_smoother_from_likelihood`), with the expected counts summed over the batch: the transitions
    inside the backward sweep (one [K, B] x [B, K] product a step; no [T, B, K, K] array), the first
    valid steps' marginals after it, and optionally per-step features (see `_smooth_batch_minor`).

    Args:
        initial: f32[K]; transition: f32[K, K]; lik_at: ``t -> ScaledLikelihood(lik f32[K, B], log_scale
            f32[B])``; num_steps: T (static); mask: optional bool[B, T]; weights: optional f32[B], each
            sequence's weight in the summed counts; features: optional ``t -> f32[B, F]``.

    Returns:
        ``BatchExpectedCounts(log_evidence f32[B], marginals f32[B, T, K], initial f32[K], transitions
        f32[K, K], emission f32[K, F] or None)``: transitions = Σ_b weights_b Σ_t p(z_t = i, z_{t+1} = j |
        x^b) (the weighted sum of the per-sequence ``expected_counts_from_likelihood``'s), initial = Σ_b
        weights_b p(z_first valid = k | x^b), emission = Σ_b weights_b Σ_t p(z_t = k | x^b) features_t^b.

    Examples:
        >>> counts = batch_expected_counts_from_likelihood(jnp.ones(2) / 2, jnp.eye(2) * 0.8 + 0.1,
        ...                                                batch_array_likelihood(jnp.zeros((4, 3, 2))), 3)
        >>> float(counts.transitions.sum())
        8.0
    """
    valid = None if mask is None else jnp.asarray(mask, bool)
    preds, _, total, last = _forward_batch_minor(initial, transition, lik_at, num_steps, valid, store_pred=True)
    weights = jnp.ones(total.shape, preds.dtype) if weights is None else jnp.asarray(weights, preds.dtype)
    marginals, counts, emission = _smooth_batch_minor(transition, preds, last, lik_at, valid, weights=weights,
                                                      features=features)
    if valid is None:
        first = marginals[0] @ weights
    else:  # the first valid step of each sequence (none for an empty one)
        valid_t = valid.T
        is_first = valid_t & ~_chain_started_batch_minor(valid_t)
        first = jnp.einsum("tkb,tb->k", marginals, jnp.where(is_first, weights, 0.0))
    return BatchExpectedCounts(total, jnp.transpose(marginals, (2, 0, 1)), first, counts, emission)


# ------------------------------------------------------------------- one long sequence, chunked

METHODS = ("auto", "sequential", "chunked")
# The shortest sequence that ``method="auto"`` runs chunked: (smallest K, largest K, steps) for the smoother and
# the filter, measured (README, issue 20, chunked passes; same process against the sequential pass, 2-core
# CPU, a mixing chain whose chunks' lanes coalesce early; a chain that does not runs the sequential pass
# after `chunked.lane_budget` K-lane steps). Never for K = 5 to 8 or K > 32, nor for the filter above 16:
# there a mixing chain gained 1.3x at most and a sticky one lost up to 2x.
CHUNKED_MIN_STEPS = {"smoother": ((1, 2, 3_000), (3, 4, 3_000), (9, 16, 1_000), (17, 32, 30_000)),
                     "filter": ((1, 2, 3_000), (3, 4, 10_000), (9, 16, 3_000))}


def chunked_min_steps(K: int, *, task: str = "smoother") -> int:
    """The shortest sequence (steps) that ``task`` (``"smoother"`` or ``"filter"``) with ``method="auto"`` runs
    by the chunked passes at K states (``CHUNKED_MIN_STEPS``); a huge number where it never does.

    Examples:
        >>> chunked_min_steps(16)
        1000
        >>> chunked_min_steps(64) > 10**12
        True
    """
    for lo, hi, steps in CHUNKED_MIN_STEPS[task]:
        if lo <= K <= hi:
            return steps
    return 2**62


def _use_chunked(method, T, K, *, mask, time_varying, task) -> str | None:
    """Whether one sequence runs by the chunked passes (``method``, see ``filter``): None (sequential),
    ``"chunked"`` (always), ``"auto"`` (the sequential pass where the chunks' lanes do not coalesce within
    `chunked.lane_budget`)."""
    if method not in METHODS:
        raise ValueError(f"method = {method!r}: expected one of {', '.join(map(repr, METHODS))}")
    if method == "chunked" and (mask is not None or time_varying):
        what = "a mask" if mask is not None else "a time-varying transition"
        raise ValueError(f"method = 'chunked' takes one transition matrix and no mask, got {what}: use "
                         "method='sequential' (or 'auto')")
    if method == "sequential" or mask is not None or time_varying:
        return None
    if method == "chunked":
        return "chunked"
    return "auto" if T >= chunked_min_steps(K, task=task) else None


def _chunk_operators(initial, transition, log_lik, chunk_length, fallback):
    """Step 1 of `gm.temporal.chunked` on one sequence f32[T, K]: (the chunks' likelihood, `chunked.ChunkPlan`,
    `chunked.TransferOperators`, the ``fallback`` still needed). With a ``fallback`` the K lanes run at most
    `chunked.lane_budget` steps when the plan lets them coalesce and that is short of the chunks' end; else
    the operators are exact and the fallback is dropped (None)."""
    T, K = log_lik.shape
    plan = chunked.chunk_plan(T, K, chunk_length=chunk_length)
    pad = plan.num_chunks * plan.chunk_length - T
    ll = jnp.concatenate([log_lik, jnp.zeros((pad, K), log_lik.dtype)]) if pad else log_lik
    lik_at = batch_array_likelihood(ll.reshape(plan.num_chunks, plan.chunk_length, K), precompute=True)
    budget = chunked.lane_budget(plan, K) if fallback is not None and plan.coalesce else None
    budget = budget if budget is not None and budget < plan.chunk_length else None
    tol = chunked.COALESCE_TOL if plan.coalesce else None
    ops = chunked.transfer_operators(initial, transition, lik_at, plan.chunk_length, coalesce_tol=tol,
                                     max_lane_steps=budget)
    return lik_at, plan, ops, (fallback if budget is not None else None)


def _chunked_forward(initial, transition, T, lik_at, plan, operators, *, store_pred, backward):
    """Steps 2 and 3's forward half of `gm.temporal.chunked`: (messages f32[L, K, C] (filtered, or the
    predictions with ``store_pred``), log normalisers f32[T], log-evidence, last filtered message of each
    chunk f32[K, C], `chunked.Boundaries`)."""
    bounds = chunked.boundary_messages(initial, transition, operators, backward=backward)
    msgs, log_cs, _, last = _forward_batch_minor(bounds.incoming, transition, lik_at, plan.chunk_length, None,
                                                 store_pred=store_pred)
    log_cs = log_cs.T.reshape(-1)[:T]  # the padded steps' normalisers (log 1, to rounding) left out
    return msgs, log_cs, _compensated_sum(log_cs), last, bounds


def _chunk_rows(x, T):
    """f32[T, K] from the chunks' f32[L, K, C]."""
    return jnp.transpose(x, (2, 0, 1)).reshape(-1, x.shape[1])[:T]


def _blocked_or(fallback, operators, blocked):
    """``blocked()``, or with a ``fallback`` (the sequential pass) that instead where the chunks' lanes did
    not coalesce within their budget (``operators.exact`` False; one branch runs)."""
    if fallback is None:  # no budget: the operators are exact
        return blocked()
    return lax.cond(operators.exact, blocked, fallback)


def _chunked_filter(initial, transition, log_lik, *, chunk_length=None, fallback=None):
    """(log_evidence, filtered f32[T, K], log_normalizers f32[T]) of one sequence by the chunked passes; with
    ``fallback`` (a function of no arguments with the same results) the K lanes run at most
    `chunked.lane_budget` steps, and ``fallback()`` where they did not coalesce within it."""
    T = log_lik.shape[0]
    lik_at, plan, ops, fallback = _chunk_operators(initial, transition, log_lik, chunk_length, fallback)

    def blocked():
        alphas, log_cs, total, _, _ = _chunked_forward(initial, transition, T, lik_at, plan, ops,
                                                       store_pred=False, backward=False)
        return total, _chunk_rows(alphas, T), log_cs

    return _blocked_or(fallback, ops, blocked)


def _chunked_smoother(initial, transition, log_lik, *, chunk_length=None, fallback=None):
    """(log_evidence, marginals f32[T, K]) of one sequence by the chunked passes: each chunk's in-place
    smoothing pass (`_smooth_batch_minor`) starts from gamma = alpha ⊙ beta at its last step. ``fallback``
    as in `_chunked_filter`."""
    T = log_lik.shape[0]
    lik_at, plan, ops, fallback = _chunk_operators(initial, transition, log_lik, chunk_length, fallback)

    def blocked():
        preds, _, total, last, bounds = _chunked_forward(initial, transition, T, lik_at, plan, ops,
                                                         store_pred=True, backward=True)
        g = last * bounds.beta_end
        s = jnp.sum(g, axis=0)
        g = jnp.where(s <= 0, last, g / jnp.where(s <= 0, 1.0, s))  # NaN propagates
        marginals, _, _ = _smooth_batch_minor(transition, preds, g, lik_at, None)
        return total, _chunk_rows(marginals, T)

    return _blocked_or(fallback, ops, blocked)


def smoother_from_likelihood(initial, transition, lik_at: StepLikelihood, num_steps: int, *,
                             mask=None) -> Smoothed:
    """``smoother`` over a per-step likelihood function instead of an array of log-likelihoods.

    The passes call ``lik_at(t)`` inside their loops (twice per step: forward and backward), so the
    evidence can be computed from observations on the fly (``gm.temporal.posterior``). Shapes are not
    checked here: validate with ``check_shapes`` first.

    Args:
        initial: f32[K]; transition: f32[K, K] or f32[T-1, K, K] (time-varying when 3-D);
        lik_at: ``t -> ScaledLikelihood(lik f32[K], log_scale f32[])``; num_steps: T (static);
        mask: optional bool[T] (False = padding).

    Returns:
        ``Smoothed(log_evidence f32[], marginals f32[T, K])``.

    Examples:
        >>> post = smoother_from_likelihood(jnp.ones(2) / 2, jnp.eye(2), array_likelihood(jnp.zeros((3, 2))), 3)
    """
    tv = jnp.ndim(transition) == 3
    preds, _, total, last = _forward(initial, transition, lik_at, num_steps, mask, tv, store_pred=True)
    return Smoothed(total, _smooth_from_pred(transition, preds, last, lik_at, mask, tv))


def log_evidence_from_likelihood(initial, transition, lik_at: StepLikelihood, num_steps: int, *,
                                 mask=None) -> jax.Array:
    """f32[]: log p(x_{1:T}) = Σ_t log c_t by the scaled forward pass over a per-step likelihood function
    (see ``smoother_from_likelihood``); the forward messages are not kept.

    Examples:
        >>> log_evidence_from_likelihood(jnp.ones(2) / 2, jnp.eye(2), array_likelihood(jnp.zeros((3, 2))), 3)
        Array(0., dtype=float32)
    """
    tv = jnp.ndim(transition) == 3
    return _forward(initial, transition, lik_at, num_steps, mask, tv)[2]


def _two_slice_core(initial, transition, lik_at, T, mask, tv):
    alphas, _, total, _ = _forward(initial, transition, lik_at, T, mask, tv)
    marg, w = _backward(transition, lik_at, T, alphas, mask, tv, keep_messages=True)
    if T == 1:
        return total, marg, alphas[:0], w[:0]
    if tv:
        pred = jnp.einsum("ti,tij->tj", alphas[:-1], transition)
    else:
        pred = alphas[:-1] @ transition
    z = jnp.sum(pred * w, axis=-1, keepdims=True)
    w = w / jnp.where(z > 0, z, 1.0)
    if mask is not None:
        valid = jnp.asarray(mask, bool)
        w = jnp.where((valid[1:] & chain_started(valid))[:, None], w, 0.0)
    return total, marg, alphas[:-1], w


def expected_counts_from_likelihood(initial, transition, lik_at: StepLikelihood, num_steps: int, *,
                                    mask=None) -> ExpectedCounts:
    """``expected_counts`` over a per-step likelihood function (see ``smoother_from_likelihood``).

    Returns:
        ``ExpectedCounts(log_evidence f32[], marginals f32[T, K], transitions f32[K, K])``.

    Examples:
        >>> counts = expected_counts_from_likelihood(jnp.ones(2) / 2, jnp.eye(2) * 0.8 + 0.1,
        ...                                          array_likelihood(jnp.zeros((3, 2))), 3)
        >>> float(counts.transitions.sum())
        2.0
    """
    tv = jnp.ndim(transition) == 3
    total, marg, alphas, w = _two_slice_core(initial, transition, lik_at, num_steps, mask, tv)
    if tv:
        counts = jnp.einsum("ti,tij,tj->ij", alphas, transition, w)
    else:
        counts = transition * (alphas.T @ w)
    return ExpectedCounts(total, marg, counts)


def expected_counts(initial, transition, log_lik, *, mask=None) -> ExpectedCounts:
    """Smoothed marginals and expected transition counts (the Baum-Welch E-step).

    N_ij = Σ_t p(z_t = i, z_{t+1} = j | x) = A_ij Σ_t alpha_t(i) p(x_{t+1} | j) beta_{t+1}(j) / Z_t,
    one [K, T] x [T, K] matrix product; the [T-1, K, K] two-slice marginals are never stored
    (unless the transition is time-varying).

    Args:
        initial: f32[K]; transition: f32[K, K] or f32[T-1, K, K]; log_lik: f32[T, K];
        mask: optional bool[T] (False = padding).

    Returns:
        ``ExpectedCounts(log_evidence f32[], marginals f32[T, K], transitions f32[K, K])``; all NaN for an
        invalid input under jit (eager: ValueError naming it).

    Examples:
        >>> counts = expected_counts(jnp.ones(2) / 2, jnp.eye(2) * 0.8 + 0.1, jnp.zeros((5, 2)))
        >>> counts.transitions.shape
        (2, 2)
    """
    return _on_arrays(expected_counts_from_likelihood, initial, transition, log_lik, mask)


def two_slice_marginals(initial, transition, log_lik, *, mask=None) -> jax.Array:
    """f32[T-1, K, K]: p(z_t = i, z_{t+1} = j | x_{1:T}); zero where step t+1 is masked; NaN for an
    invalid input under jit (eager: ValueError naming it).

    xi_t(i, j) = alpha_t(i) A_t(i, j) p(x_{t+1} | j) beta_{t+1}(j) / Z_t.

    Args:
        initial: f32[K]; transition: f32[K, K] or f32[T-1, K, K]; log_lik: f32[T, K];
        mask: optional bool[T] (False = padding).

    Examples:
        >>> two_slice_marginals(jnp.ones(2) / 2, jnp.eye(2) * 0.8 + 0.1, jnp.zeros((5, 2))).shape
        (4, 2, 2)
    """
    initial, transition, log_lik, (T, _, tv) = check_inputs(initial, transition, log_lik, mask=mask)
    total, _, alphas, w = _two_slice_core(initial, transition, array_likelihood(log_lik), T, mask, tv)
    trans = transition if tv else transition[None]
    return mark_invalid(total, alphas[:, :, None] * trans * w[:, None, :])[1]  # the select fuses into the product


def viterbi(initial, transition, log_lik, *, mask=None, unroll: int | None = None) -> MPE:
    """Most probable state path argmax_z p(z_{1:T} | x_{1:T}) by max-product dynamic programming.

    delta_t(j) = max_i [delta_{t-1}(i) + log A_ij] + log p(x_t | j); each delta is shifted by its max
    and the shifts are summed with compensation, so the path log-probability stays accurate.

    With one transition matrix the forward pass keeps no back-pointers: it stores the shifted deltas,
    and the backtrace recomputes the one argmax it follows, argmax_i delta_t(i) + log A(i, z_{t+1}), from
    the same floats (so the path is the one back-pointers would give). Under ``jax.vmap`` over sequences
    (``in_axes=(None, None, 0)``) it runs the whole batch at once with the batch as the contiguous
    axis (deltas [T, K, B], `jax.custom_batching`): each step's max over K then runs across B lanes
    instead of over a K-long row per sequence. A time-varying transition, an ``unroll`` or a vmap over
    parameters takes the per-sequence pass with back-pointers.

    Args:
        initial: f32[K]; transition: f32[K, K] or f32[T-1, K, K]; log_lik: f32[T, K];
        mask: optional bool[T] (False = padding); unroll: steps per loop iteration (a tuning flag;
            None: 1 for K <= 8, where it keeps the loop within XLA's small-loop fast path, else 2).

    Returns:
        ``gm.types.MPE(states int32[T], log_prob f32[])`` with log_prob = log p(z*, x); states are -1
        at masked steps. For an invalid input under jit log_prob is NaN (eager: ValueError naming it).

    Examples:
        >>> best = viterbi(jnp.ones(2) / 2, jnp.eye(2) * 0.8 + 0.1, jnp.log(jnp.array([[0.9, 0.1]] * 3)))
        >>> best.states.tolist()
        [0, 0, 0]
    """
    initial, transition, log_lik, (T, K, tv) = check_inputs(initial, transition, log_lik, mask=mask)
    if tv or unroll is not None:
        states, log_prob = _viterbi_one(initial, transition, log_lik, mask, unroll)
    else:
        states, log_prob = _jit_viterbi_shared(initial, transition, log_lik, mask)
    return MPE(states, mark_invalid(log_prob))


def _viterbi_shared(initial, transition, log_lik, mask):
    """(states int32[T], log_prob f32[]) of checked inputs with one f32[K, K] transition: the batch-minor
    pass on a batch of one, and on the whole batch under ``jax.vmap`` over ``log_lik`` (and ``mask``)."""
    has_mask = mask is not None
    valid = jnp.ones(log_lik.shape[:1], bool) if mask is None else jnp.asarray(mask, bool)

    @jax.custom_batching.custom_vmap
    def one(initial, transition, log_lik, valid):
        states, log_prob = _viterbi_batch_minor(initial, transition, log_lik[None], valid[None] if has_mask else None)
        return states[0], log_prob[0]

    @one.def_vmap
    def _batched(axis_size, in_batched, initial, transition, log_lik, valid):
        if in_batched[0] or in_batched[1]:  # a batch of models: one sequence at a time
            out = jax.vmap(lambda i, a, ll, v: tuple(_viterbi_one(i, a, ll, v if has_mask else None, None)),
                           in_axes=tuple(0 if b else None for b in in_batched))(initial, transition, log_lik, valid)
            return out, (True, True)
        log_lik = log_lik if in_batched[2] else jnp.broadcast_to(log_lik, (axis_size,) + log_lik.shape)
        valid = valid if in_batched[3] else jnp.broadcast_to(valid, (axis_size,) + valid.shape)
        return _viterbi_batch_minor(initial, transition, log_lik, valid if has_mask else None), (True, True)

    # The derivative of the best path's log-probability is that of the path's score (the path is piecewise
    # constant in the inputs): given here, since a custom_vmap function has no derivative rule of its own.
    @jax.custom_jvp
    def best(initial, transition, log_lik, valid):
        return one(initial, transition, log_lik, valid)

    @best.defjvp
    def _best_jvp(primals, tangents):
        initial, transition, log_lik, valid = primals
        d_init, d_trans, d_ll, _ = tangents
        states, log_prob = best(initial, transition, log_lik, valid)
        return (states, log_prob), (np.zeros(states.shape, jax.dtypes.float0),
                                    _path_score_tangent(initial, transition, valid, states, d_init, d_trans, d_ll))

    return best(initial, transition, log_lik, valid)


def _path_score_tangent(initial, transition, valid, states, d_init, d_trans, d_ll):
    """The directional derivative of the path's log-probability log pi(z_first) + Σ log A(z_prev, z_t) +
    Σ log p(x_t | z_t) over the valid steps (a masked step is skipped: its neighbours are consecutive)."""
    T = states.shape[0]
    filled = lax.cummax(jnp.where(valid, jnp.arange(T), -1))  # the last valid step at or before t
    z = jnp.where(filled >= 0, states[jnp.maximum(filled, 0)], 0)  # the path, carried over masked steps
    first = jnp.argmax(valid)
    anything = jnp.any(valid)
    out = jnp.where(anything, d_init[z[first]] / initial[z[first]], 0.0)
    out = out + jnp.sum(jnp.where(valid, jnp.take_along_axis(d_ll, z[:, None], 1)[:, 0], 0.0))
    if T > 1:
        moved = valid[1:] & (filled[:-1] >= 0)  # a valid step after an earlier valid one
        pair = d_trans[z[:-1], z[1:]] / transition[z[:-1], z[1:]]
        out = out + jnp.sum(jnp.where(moved, pair, 0.0))
    return out


# When the batch-minor pass stores int8 back-pointers (a max and an argmax over [K, K, B] a step, the backtrace
# one gather a step) rather than the shifted deltas (the backtrace recomputes the argmax it follows): for a
# batch of at least POINTERS_MIN_B sequences with K <= BATCH_MINOR_POINTERS_MAX_K, or K <= 16 from B = 128.
# Measured (same process, idle 2-core CPU, ms, pointers / pointer-free / dynamax, T = 1000): K = 4, B = 64:
# 0.71 / 1.15 / 0.78; K = 4, B = 256: 2.34 / 4.10 / 7.11; K = 8, B = 64: 1.47 / 2.54 / 1.69; K = 16, B = 256:
# 20.7 / 30.1 / 32.5; but K = 16, B = 64: 7.6 / 6.0 / 8.9, and at B = 1 the pointer-free pass is as fast or
# faster (K = 8: 0.17 / 0.10 / 0.17). XLA:CPU's argmax over a K-long axis is slow from K = 32 (K = 32, B = 64:
# 115 / 24 / 122).
BATCH_MINOR_POINTERS_MAX_K = 8
POINTERS_MIN_B = 16


def _use_pointers(K: int, B: int) -> bool:
    return B >= POINTERS_MIN_B and (K <= BATCH_MINOR_POINTERS_MAX_K or (K <= 16 and B >= 128))


def _viterbi_batch_minor(initial, transition, log_lik, valid, pointers=None):
    """Viterbi on B sequences sharing (initial f32[K], transition f32[K, K]): log_lik f32[B, T, K], valid
    bool[B, T] or None. Every per-step array is [K, B]. ``pointers`` (None: `_use_pointers`): store int8
    back-pointers; else back-pointer-free (see `viterbi`). Both give the same path.

    Returns:
        (states int32[B, T], -1 at masked steps; log_prob f32[B]).
    """
    B, T, K = log_lik.shape
    valid = None if valid is None else jnp.asarray(valid, bool)
    lls = jnp.transpose(jnp.asarray(log_lik), (1, 2, 0))  # [T, K, B]: a step's row is contiguous over the batch
    log_trans = jnp.log(transition)  # [i, j]
    log_trans_T = log_trans.T[:, :, None]  # [j, i, 1]
    if valid is not None:
        valid_t = valid.T  # [T, B]
        started = jnp.concatenate([jnp.zeros((1, B), bool), jnp.cumsum(valid_t, axis=0)[:-1] > 0])
        lls = jnp.where(valid_t[:, None, :], lls, 0.0)

    def shift_of(d):
        sh = jnp.max(d, axis=0)
        return jnp.where(jnp.isfinite(sh), sh, 0.0)

    pointers = _use_pointers(K, B) if pointers is None else pointers
    identity = jnp.broadcast_to(jnp.arange(K, dtype=jnp.int8)[:, None], (K, B))
    d0 = jnp.log(initial)[:, None] + lls[0]
    s0 = shift_of(d0)
    d0 = d0 - s0
    # deltas: the shifted deltas, or the int8 back-pointers bp[t, j, b] (row 0 unused)
    deltas = jnp.zeros((T, K, B), jnp.int8) if pointers else _put(jnp.zeros((T, K, B), log_lik.dtype), d0, 0)

    def step(t, carry):
        delta, deltas = carry
        scores = log_trans_T + delta[None, :, :]  # [j, i, B]
        best = jnp.max(scores, axis=1)  # [j, B] (a separate max: faster than gathering at the argmax)
        if pointers:
            bp = jnp.argmax(scores, axis=1).astype(jnp.int8)  # [j, B]
        if valid is not None:
            best = jnp.where(started[t], best, delta)
        d = best + _row(lls, t)
        sh = shift_of(d)
        d = d - sh
        if valid is not None:
            d = jnp.where(valid_t[t], d, delta)
        if pointers:
            if valid is not None:  # a masked step (or one before the chain starts) maps each state to itself
                bp = jnp.where(started[t] & valid_t[t], bp, identity)
            return d, _put(deltas, bp, t)
        return d, _put(deltas, d, t)

    carry = (d0, deltas)
    if T > 1:
        carry = loops.fori_loop(1, T, step, carry)
    d_last, deltas = carry
    last = jnp.argmax(d_last, axis=0).astype(jnp.int32)  # [B]

    def back(i, carry):  # z_{t-1} = argmax_i delta_{t-1}(i) + log A(i, z_t), the back-pointer recomputed
        z, states = carry
        t = T - 1 - i
        if pointers:
            prev = jnp.take_along_axis(_row(deltas, t), z[None], axis=0)[0].astype(jnp.int32)
            return prev, _put(states, prev, t - 1)
        prev = jnp.argmax(_row(deltas, t - 1) + jnp.take(log_trans, z, axis=1), axis=0).astype(jnp.int32)
        if valid is not None:  # a masked step (or one before the chain starts) maps each state to itself
            prev = jnp.where(started[t] & valid_t[t], prev, z)
        return prev, _put(states, prev, t - 1)

    states = _put(jnp.zeros((T, B), jnp.int32), last, T - 1)
    if T > 1:
        _, states = loops.fori_loop(0, T - 1, back, (last, states))
    # log_prob: the path's score, summed after the loops (no shift buffer in the forward loop). At a masked
    # step the path holds the last valid state (before the first valid step, the first valid one's), so
    # log pi(z_0) is the first valid step's and a transition counts at a valid step after an earlier one.
    terms = jnp.take_along_axis(lls, states[:, None, :], axis=1)[:, 0, :]  # [T, B]; 0 at masked steps
    terms = terms.at[0].add(jnp.log(initial)[states[0]])
    if T > 1:
        moves = log_trans[states[:-1], states[1:]]
        terms = terms.at[1:].add(moves if valid is None else jnp.where(started[1:] & valid_t[1:], moves, 0.0))
    log_prob = _compensated_sums(terms)
    # the marker: a NaN or +inf input reaches every later delta (the max propagates it), not always the path
    log_prob = jnp.where(jnp.any(jnp.isnan(d_last) | (d_last == jnp.inf), axis=0), jnp.nan, log_prob)
    if valid is not None:  # an empty sequence has the empty path, of probability one
        log_prob = jnp.where(jnp.any(valid, axis=1), log_prob, 0.0)
    states = states.T
    states = states if valid is None else jnp.where(valid, states, -1)
    return states, log_prob


def _viterbi_one(initial, transition, log_lik, mask, unroll):
    """`viterbi` of checked inputs on one sequence, with back-pointers (any transition, any unroll)."""
    T, K = log_lik.shape
    tv = transition.ndim == 3
    valid = None if mask is None else jnp.asarray(mask, bool)
    started = None if mask is None else jnp.concatenate([jnp.zeros((1,), bool), chain_started(valid)])
    log_trans_T = jnp.swapaxes(jnp.log(transition), -1, -2)  # [.., j, i]
    arange = jnp.arange(K, dtype=jnp.int32)

    def ll_at(t):
        row = _row(log_lik, t)
        return row if valid is None else jnp.where(valid[t], row, 0.0)

    d0 = jnp.log(initial) + ll_at(0)
    s0 = jnp.max(d0)
    s0 = jnp.where(jnp.isfinite(s0), s0, 0.0)
    d0 = d0 - s0
    bps = jnp.zeros((T, K), jnp.int32)
    shifts = _put(jnp.zeros((T,), log_lik.dtype), s0, 0)  # summed after the loop (see `_forward`)

    def step(t, carry):
        delta, bps, shifts = carry
        lt = _row(log_trans_T, t - 1) if tv else log_trans_T
        scores = lt + delta[None, :]  # scores[j, i] = delta(i) + log A(i, j)
        best = jnp.max(scores, axis=-1)
        if K >= 32:  # XLA's CPU argmax (a variadic reduce) is slow on wide rows: first maximiser by min
            bp = jnp.min(jnp.where(scores == best[:, None], arange[None, :], K), axis=-1).astype(jnp.int32)
            bp = jnp.minimum(bp, K - 1)  # all -inf: any index
        else:
            bp = jnp.argmax(scores, axis=-1).astype(jnp.int32)
        if valid is not None:
            best = jnp.where(started[t], best, delta)
            bp = jnp.where(started[t], bp, arange)
        d = best + ll_at(t)
        sh = jnp.max(d)
        sh = jnp.where(jnp.isfinite(sh), sh, 0.0)
        d = d - sh
        if valid is not None:
            d = jnp.where(valid[t], d, delta)
            bp = jnp.where(valid[t], bp, arange)
            sh = jnp.where(valid[t], sh, 0.0)
        return d, _put(bps, bp, t), _put(shifts, sh, t)

    unroll = _loop_unroll(K) if unroll is None else unroll
    carry = (d0, bps, shifts)
    if T > 1:
        carry = loops.fori_loop(1, T, step, carry, unroll=min(unroll, T - 1))
    d_last, bps, shifts = carry
    last = jnp.argmax(d_last).astype(jnp.int32)
    log_prob = _compensated_sum(shifts) + d_last[last]
    if valid is not None:  # an empty sequence has the empty path, of probability one
        log_prob = jnp.where(jnp.any(valid), log_prob, 0.0)

    def back(i, carry):
        z, states = carry
        t = T - 1 - i
        prev = _row(bps, t)[z]
        return prev, _put(states, prev, t - 1)

    states = _put(jnp.zeros((T,), jnp.int32), last, T - 1)
    if T > 1:
        _, states = loops.fori_loop(0, T - 1, back, (last, states), unroll=min(unroll, T - 1))
    states = states if valid is None else jnp.where(valid, states, -1)
    return states, log_prob


def sample_posterior(key, initial, transition, log_lik, *, mask=None) -> jax.Array:
    """One path z_{1:T} ~ p(z_{1:T} | x_{1:T}) by forward filtering, backward sampling.

    z_T ~ alpha_T; z_t ~ alpha_t(i) A_t(i, z_{t+1}) for t = T-1, ..., 1, each draw by inverting its CDF
    at a uniform drawn before the loop.

    Args:
        key: a ``jax.random`` key.
        initial: f32[K]; transition: f32[K, K] or f32[T-1, K, K]; log_lik: f32[T, K];
        mask: optional bool[T] (False = padding).

    Returns:
        int32[T] sampled states; -1 at masked steps (and at every step for an invalid input under jit;
        eager: ValueError naming it). vmap over keys for several samples.

    Examples:
        >>> z = sample_posterior(jax.random.key(0), jnp.ones(2) / 2, jnp.eye(2) * 0.8 + 0.1, jnp.zeros((4, 2)))
    """
    initial, transition, log_lik, (T, _, tv) = check_inputs(initial, transition, log_lik, mask=mask)
    if tv:
        return _sample_one(key, initial, transition, log_lik, mask, tv=True)
    return _jit_sample_shared(key, initial, transition, log_lik, mask)


def _sample_one(key, initial, transition, log_lik, mask, *, tv=False):
    """`sample_posterior` of one sequence (checked inputs), the per-sequence passes."""
    T = log_lik.shape[0]
    valid = valid_steps(T, mask=mask)
    alphas, _, total, _ = _forward(initial, transition, array_likelihood(log_lik), T, mask, tv)
    # every draw by inversion of the CDF, from uniforms drawn before the loop: no random-number
    # generation inside the loop (a key split and a Gumbel draw per step cost more than the step)
    u = jax.random.uniform(key, (T,), alphas.dtype, minval=jnp.finfo(alphas.dtype).tiny)
    K = alphas.shape[1]

    def draw(p, u_t):
        cdf = jnp.cumsum(p)
        return jnp.minimum(jnp.sum(cdf < u_t * cdf[-1]), K - 1).astype(jnp.int32)

    trans_T = jnp.swapaxes(transition, -1, -2)  # row z of A^T: p(z_{t+1} = z | z_t = ·)
    last = draw(alphas[-1], u[-1])

    def step(i, carry):
        z_next, states = carry
        t = T - 2 - i
        col = _row(_row(trans_T, t), z_next) if tv else _row(trans_T, z_next)
        z = draw(_row(alphas, t) * col, u[t])
        z = jnp.where(valid[t + 1], z, z_next)
        return z, _put(states, z, t)

    states = _put(jnp.zeros((T,), jnp.int32), last, T - 1)
    if T > 1:
        _, states = loops.fori_loop(0, T - 1, step, (last, states), unroll=min(_loop_unroll(K), T - 1))
    return jnp.where(valid & ~jnp.isnan(mark_invalid(total)), states, -1)


def _sample_batch_minor(keys, initial, transition, log_lik, valid):
    """`_sample_one` on B sequences sharing one model (keys [B], log_lik f32[B, T, K], valid bool[B, T] or
    None), batch-minor: the filtered messages of `_forward_batch_minor` and one backward loop drawing every
    sequence's state at step t at once ([K, B] per step). The same uniforms as `_sample_one` (one key per
    sequence), the same draws up to float32 rounding in the messages. Returns int32[B, T]."""
    B, T, K = log_lik.shape
    alphas, _, total, _ = _forward_batch_minor(initial, transition, batch_array_likelihood(log_lik), T, valid,
                                               store_pred=False)
    u = jax.vmap(lambda k: jax.random.uniform(k, (T,), alphas.dtype, minval=jnp.finfo(alphas.dtype).tiny))(keys).T
    trans_T = jnp.swapaxes(transition, 0, 1)
    valid_t = None if valid is None else valid.T

    # above 16 states the CDF as a matrix product with a lower-triangular ones matrix, not a scan over K
    # (K = 64, B = 64, T = 1000: 41 -> 31 ms)
    lower = jnp.tril(jnp.ones((K, K), alphas.dtype)) if K > 16 else None

    def draw(p, u_t):  # p f32[K, B], u_t f32[B]
        cdf = jnp.cumsum(p, axis=0) if lower is None else jnp.dot(lower, p)
        return jnp.minimum(jnp.sum(cdf < u_t * cdf[-1], axis=0), K - 1).astype(jnp.int32)

    last = draw(alphas[-1], u[-1])

    def step(i, carry):
        z_next, states = carry
        t = T - 2 - i
        col = jnp.take(trans_T, z_next, axis=0).T  # [K, B]: A[·, z_next] per sequence
        z = draw(_row(alphas, t) * col, u[t])
        if valid_t is not None:
            z = jnp.where(valid_t[t + 1], z, z_next)
        return z, _put(states, z, t)

    states = _put(jnp.zeros((T, B), jnp.int32), last, T - 1)
    if T > 1:
        _, states = loops.fori_loop(0, T - 1, step, (last, states))
    keep = ~jnp.isnan(mark_invalid(total))[:, None]
    keep = keep if valid is None else keep & valid
    return jnp.where(keep, states.T, -1)


def _sample_shared(key, initial, transition, log_lik, mask):
    """`sample_posterior` of checked inputs with one f32[K, K] transition: the per-sequence passes on one
    sequence, the batch-minor ones under ``jax.vmap`` over keys and/or ``log_lik`` (and ``mask``) with the
    model unbatched (`jax.custom_batching.custom_vmap`; a batch of models, or a vmap of size one with K > 8,
    runs the per-sequence passes vmapped). Issue 20 grid, same run against the per-sequence passes vmapped:
    1.2x to 2.5x faster at B = 64 and 256 (K = 2 to 64, T = 100 and 1000)."""
    has_mask = mask is not None
    valid = valid_steps(log_lik.shape[0], mask=mask)

    @jax.custom_batching.custom_vmap
    def one(key, initial, transition, log_lik, valid):
        return _sample_one(key, initial, transition, log_lik, valid if has_mask else None)

    @one.def_vmap
    def _batched(axis_size, in_batched, key, initial, transition, log_lik, valid):
        # a batch of models, or a vmap of size one above 8 states (as the smoother's): one sequence at a time
        if in_batched[1] or in_batched[2] or (axis_size == 1 and log_lik.shape[-1] > 8):
            out = jax.vmap(lambda k, i, a, ll, v: _sample_one(k, i, a, ll, v if has_mask else None),
                           in_axes=tuple(0 if b else None for b in in_batched))(key, initial, transition, log_lik,
                                                                                valid)
            return out, True

        def full(x, batched):
            return x if batched else jnp.broadcast_to(x, (axis_size,) + x.shape)

        return _sample_batch_minor(full(key, in_batched[0]), initial, transition, full(log_lik, in_batched[3]),
                                   full(valid, in_batched[4]) if has_mask else None), True

    # A draw is piecewise constant in the inputs: zero derivative (a custom_vmap function has no rule of its own).
    @jax.custom_jvp
    def draws(key, initial, transition, log_lik, valid):
        return one(key, initial, transition, log_lik, valid)

    @draws.defjvp
    def _draws_jvp(primals, tangents):
        out = draws(*primals)
        return out, np.zeros(out.shape, jax.dtypes.float0)

    return draws(key, initial, transition, log_lik, valid)


_jit_sample_shared = jax.jit(_sample_shared)


def sample(
    key,
    initial,
    transition,
    num_steps: int,
    emission_sampler: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
) -> Sampled:
    """Samples z_{1:T} (and x_{1:T}) from the HMM: z_1 ~ initial, z_{t+1} ~ transition[z_t], x_t ~ p(x | z_t).

    Args:
        key: a ``jax.random`` key.
        initial: f32[K]; transition: f32[K, K] or f32[T-1, K, K].
        num_steps: T (static), at least 1 (ValueError otherwise).
        emission_sampler: optional ``(key, state int32[]) -> observation``; vmapped over steps.

    Returns:
        ``Sampled(states int32[T], observations [T, ...] or None without an emission sampler)``.

    Examples:
        >>> draw = sample(jax.random.key(0), jnp.ones(2) / 2, jnp.eye(2) * 0.8 + 0.1, 10)
        >>> draw.states.shape
        (10,)
    """
    initial, transition = float_array(initial, "initial"), float_array(transition, "transition")
    if not isinstance(num_steps, (int, np.integer)) or isinstance(num_steps, bool) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive int (static): the number of steps to draw; got {num_steps!r}")
    num_steps = int(num_steps)
    if initial.ndim != 1:
        raise ValueError(f"initial must have shape [K]; got {initial.shape}")
    K = initial.shape[0]
    ts = tuple(transition.shape)
    if ts != (K, K) and ts != (num_steps - 1, K, K):
        raise ValueError(
            f"transition must have shape ({K}, {K}) or ({num_steps - 1}, {K}, {K}) for num_steps="
            f"{num_steps}; got {ts}"
        )
    tv = len(ts) == 3
    check_probabilities(initial, "initial")
    check_probabilities(transition, "transition")
    k0, kz, kx = jax.random.split(key, 3)
    z0 = jax.random.categorical(k0, jnp.log(initial)).astype(jnp.int32)
    log_trans = jnp.log(transition)

    def step(z, xs):
        if tv:
            k, lt = xs
        else:
            k, lt = xs, log_trans
        z = jax.random.categorical(k, lt[z]).astype(jnp.int32)
        return z, z

    ks = jax.random.split(kz, num_steps - 1)
    _, zs = loops.scan(step, z0, (ks, log_trans) if tv else ks)
    states = jnp.concatenate([z0[None], zs])
    if emission_sampler is None:
        return Sampled(states, None)
    obs = jax.vmap(emission_sampler)(jax.random.split(kx, num_steps), states)
    return Sampled(states, obs)
