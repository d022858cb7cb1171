"""Exact inference in hidden Markov models, on per-step log-likelihoods.

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
summed with Kahan compensation, so the log-evidence keeps float32 accuracy for T = 100,000).
Impossible evidence (p(x) = 0) gives ``log_evidence = -inf``, the flag to check; the marginals are
then finite but meaningless, never NaN.

The functions are pure and undecorated: ``jax.jit`` and ``jax.vmap`` them (``in_axes=(None, None, 0)``
for a batch of sequences that share parameters). Parallel-in-time versions (``parallel_filter``,
``parallel_smoother``, ``parallel_viterbi``) use ``jax.lax.associative_scan``: O(log T) depth,
O(T K^3) work, for accelerators.

Reference: L. R. Rabiner (1989), A tutorial on hidden Markov models; S. Särkkä and
Á. F. García-Fernández (2021), Temporal parallelization of Bayesian smoothers.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from gm import loops

__all__ = [
    "Filtered",
    "Posterior",
    "ExpectedCounts",
    "Path",
    "filter",
    "smoother",
    "expected_counts",
    "two_slice_marginals",
    "viterbi",
    "sample_posterior",
    "sample",
    "parallel_filter",
    "parallel_smoother",
    "parallel_viterbi",
    "length_mask",
]


class Filtered(NamedTuple):
    """Result of ``filter``.

    Attributes:
        log_evidence: f32[] log p(x_{1:T}).
        filtered: f32[T, K] p(z_t | x_{1:t}); zero rows at masked steps.
        log_normalizers: f32[T] log p(x_t | x_{1:t-1}); zero at masked steps.
    """

    log_evidence: jax.Array
    filtered: jax.Array
    log_normalizers: jax.Array


class Posterior(NamedTuple):
    """Result of ``smoother``.

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


class Path(NamedTuple):
    """Result of ``viterbi``.

    Attributes:
        states: int32[T] argmax_z p(z_{1:T} | x_{1:T}); -1 at masked steps.
        log_prob: f32[] log p(z*_{1:T}, x_{1:T}) of that path (joint, not conditional).
    """

    states: jax.Array
    log_prob: jax.Array


# ----------------------------------------------------------------------------------------- checks


def _shape(x) -> tuple[int, ...]:
    return tuple(jnp.shape(x))


def _check(initial, transition, log_lik, mask, *, name="log_lik"):
    """Validates shapes at trace time; returns (T, K, time_varying)."""
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
    return T, K, time_varying


def length_mask(length, num_steps: int) -> jax.Array:
    """bool[T] mask (or bool[..., T] for a batch of lengths): ``t < length``."""
    length = jnp.asarray(length)
    return jnp.arange(num_steps) < length[..., None]


# ------------------------------------------------------------------------------------- internals


def _scaled_lik(log_lik, mask):
    """exp(log_lik - max_k log_lik) and the per-step shifts (0 at masked steps)."""
    shift = jnp.max(log_lik, axis=-1)
    shift = jnp.where(jnp.isfinite(shift), shift, 0.0)
    lik = jnp.exp(log_lik - shift[:, None])
    if mask is not None:
        lik = jnp.where(mask[:, None], lik, 1.0)
        shift = jnp.where(mask, shift, 0.0)
    return lik, shift


def _kahan_add(total, comp, x):
    """One step of compensated summation: returns the new (total, compensation)."""
    y = x - comp
    t = total + y
    comp = (t - total) - y
    # once the total is -inf (impossible evidence) it stays -inf, never NaN
    comp = jnp.where(jnp.isfinite(t), comp, 0.0)
    return t, comp


def _mask_or_true(mask, T):
    return jnp.ones((T,), bool) if mask is None else jnp.asarray(mask, bool)


def _started(valid):
    """bool[T-1]: for step t >= 1, whether some step before t is valid (else t starts the chain)."""
    return jnp.cumsum(valid.astype(jnp.int32))[:-1] > 0


def _row(x, t):
    return lax.dynamic_index_in_dim(x, t, keepdims=False)


def _put(buf, x, t):
    return lax.dynamic_update_index_in_dim(buf, x, t, 0)


def _lik_at(log_lik, t):
    """(exp(log_lik[t] - max), max) with the max replaced by 0 where it is not finite."""
    return shifted_exp(_row(log_lik, t))


def shifted_exp(log_lik_row):
    """(exp(row - max), max) for one step's f32[K] log-likelihoods, the max replaced by 0 where it is
    not finite: the (likelihood, log-scale) pair a per-step likelihood function returns."""
    s = jnp.max(log_lik_row)
    s = jnp.where(jnp.isfinite(s), s, 0.0)
    return jnp.exp(log_lik_row - s), s


def _array_lik(log_lik):
    return lambda t: _lik_at(log_lik, t)


# The loops below index the time axis with dynamic slices inside ``fori_loop`` rather than feeding
# ``lax.scan`` its xs: under ``vmap`` a scan moves the batch axis of every [B, T, K] input and output
# behind the time axis (two full transposes), while a dynamic slice of a [B, T, K] array stays in place.
#
# Every pass reads the evidence through a per-step likelihood function ``lik_at(t) -> (lik f32[K],
# log_scale f32[])`` with p(x_t | z_t = k) = lik[k] exp(log_scale). For a [T, K] array of log-likelihoods
# it exponentiates one row inside the loop; an emission family can instead compute the row from the
# observations (``gm.temporal.em.posterior``), so no [T, K] array of log-likelihoods is ever stored.


def _forward(initial, transition, lik_at, T, mask, time_varying, *, keep_normalizers=False, store_pred=False,
             unroll=2):
    """Scaled forward pass.

    Returns (messages f32[T, K], log_normalizers f32[T] or None, log_evidence f32[], last alpha f32[K]).
    The messages are the filtered distributions alpha_t (frozen, not zeroed, at masked steps), or with
    ``store_pred`` the one-step predictions pred_t = alpha_{t-1} A_{t-1} (pred_0 = initial) from which
    alpha_t = normalise(pred_t ⊙ lik_t) is recovered; at a masked step pred_t = alpha_{t-1}.
    """
    K = initial.shape[0]
    valid = None if mask is None else jnp.asarray(mask, bool)
    started = None if mask is None else jnp.concatenate([jnp.zeros((1,), bool), _started(valid)])
    lik0, s0 = lik_at(0)
    dtype = lik0.dtype
    a0 = initial * lik0
    c0 = jnp.sum(a0)
    a0 = jnp.where(c0 > 0, a0 / jnp.where(c0 > 0, c0, 1.0), initial)
    l0 = jnp.log(c0) + s0
    if valid is not None:
        a0 = jnp.where(valid[0], a0, initial)
        l0 = jnp.where(valid[0], l0, 0.0)
    msgs = _put(jnp.zeros((T, K), dtype), initial if store_pred else a0, 0)
    log_cs = _put(jnp.zeros((T,), dtype), l0, 0) if keep_normalizers else None

    def step(t, carry):
        alpha, msgs, log_cs, total, comp = carry
        trans_t = _row(transition, t - 1) if time_varying else transition
        lik_t, s_t = lik_at(t)
        pred = jnp.dot(alpha, trans_t)
        if valid is not None:  # the first valid step after masked ones draws from the initial distribution
            pred = jnp.where(started[t], pred, alpha)
        a = pred * lik_t
        c = jnp.sum(a)
        a = jnp.where(c > 0, a / jnp.where(c > 0, c, 1.0), alpha)  # c = 0: impossible evidence
        log_c = jnp.log(c) + s_t
        if valid is not None:
            a = jnp.where(valid[t], a, alpha)
            pred = jnp.where(valid[t], pred, alpha)
            log_c = jnp.where(valid[t], log_c, 0.0)
        total, comp = _kahan_add(total, comp, log_c)
        msgs = _put(msgs, pred if store_pred else a, t)
        if log_cs is not None:
            log_cs = _put(log_cs, log_c, t)
        return a, msgs, log_cs, total, comp

    zero = jnp.zeros((), dtype)
    carry = (a0, msgs, log_cs, l0, zero)
    if T > 1:
        carry = loops.fori_loop(1, T, step, carry, unroll=min(unroll, T - 1))
    last, msgs, log_cs, total, _ = carry
    return msgs, log_cs, total, last


def _backward(transition, lik_at, T, alphas, mask, time_varying, *, keep_messages=False, unroll=2):
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
        b = jnp.where(sb > 0, b / jnp.where(sb > 0, sb, 1.0), beta)
        if valid is not None:
            b = jnp.where(valid[t + 1], b, beta)
            v = jnp.where(valid[t + 1], v, 0.0)
        m = _row(alphas, t) * b
        sm = jnp.sum(m)
        m = m / jnp.where(sm > 0, sm, 1.0)
        if valid is not None:
            m = jnp.where(valid[t], m, 0.0)
        marg = _put(marg, m, t)
        if msgs is not None:
            msgs = _put(msgs, v, t)
        return b, marg, msgs

    carry = (ones, marg, msgs)
    if T > 1:
        carry = loops.fori_loop(0, T - 1, step, carry, unroll=min(unroll, T - 1))
    _, marg, msgs = carry
    return marg, msgs


def _smooth_from_pred(transition, preds, last, lik_at, mask, time_varying, *, unroll=2):
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
        gt = gt / jnp.where(s > 0, s, 1.0)
        # ``s >= 0`` (always true) makes the write wait for both reads of ``out``; without it XLA may
        # schedule the write first and then copy the whole buffer at every step
        keep = s >= 0
        if valid is not None:
            out = _put(out, jnp.where(keep & valid[t + 1], g, 0.0), t + 1)
            gt = jnp.where(valid[t + 1], gt, g)
        else:
            out = _put(out, jnp.where(keep, g, 0.0), t + 1)
        return gt, out

    g, out = last, preds
    if T > 1:
        g, out = loops.fori_loop(0, T - 1, step, (g, out), unroll=min(unroll, T - 1))
    return _put(out, g if valid is None else jnp.where(valid[0], g, 0.0), 0)


def _normalize_rows(x):
    s = jnp.sum(x, axis=-1, keepdims=True)
    return x / jnp.where(s > 0, s, 1.0)


def _zero_masked(x, mask):
    if mask is None:
        return x
    return jnp.where(mask.reshape(mask.shape + (1,) * (x.ndim - 1)), x, 0)


# ------------------------------------------------------------------------------------- public API


def filter(initial, transition, log_lik, *, mask=None) -> Filtered:  # noqa: A001 (the HMM verb)
    """Forward filtering: p(z_t | x_{1:t}) for every t and log p(x_{1:T}).

    alpha_t ∝ (alpha_{t-1} A) ⊙ p(x_t | ·), normalised by c_t = p(x_t | x_{1:t-1}); log p(x) = Σ_t log c_t.

    Args:
        initial: f32[K] initial distribution.
        transition: f32[K, K] (or f32[T-1, K, K]) row-stochastic transition matrix.
        log_lik: f32[T, K] per-step emission log-likelihoods.
        mask: optional bool[T]; False marks padded steps (see module docstring).

    Returns:
        ``Filtered(log_evidence f32[], filtered f32[T, K], log_normalizers f32[T])``.

    Example:
        >>> post = filter(jnp.ones(2) / 2, jnp.eye(2) * 0.8 + 0.1, jnp.zeros((5, 2)))
    """
    initial, transition, log_lik = jnp.asarray(initial), jnp.asarray(transition), jnp.asarray(log_lik)
    T, K, tv = _check(initial, transition, log_lik, mask)
    alphas, log_cs, total, _ = _forward(initial, transition, _array_lik(log_lik), T, mask, tv,
                                        keep_normalizers=True)
    return Filtered(total, _zero_masked(alphas, mask), log_cs)


def smoother(initial, transition, log_lik, *, mask=None) -> Posterior:
    """Forward-backward smoothing: p(z_t | x_{1:T}) for every t and log p(x_{1:T}).

    p(z_t | x_{1:T}) ∝ alpha_t ⊙ beta_t with beta_t = A (p(x_{t+1} | ·) ⊙ beta_{t+1}), computed in the
    equivalent form gamma_t ∝ pred_t ⊙ p(x_t | ·) ⊙ (A (gamma_{t+1} ⊘ pred_{t+1})) from the forward pass's
    one-step predictions pred_t = alpha_{t-1} A: one matrix-vector product per step each way, and the
    marginals overwrite the predictions in place, so a batch needs one [B, T, K] buffer, not two.
    ``gm.temporal.em.posterior`` runs the same passes on observations and an emission family without
    a [T, K] array of log-likelihoods.

    Args:
        initial: f32[K]; transition: f32[K, K] or f32[T-1, K, K]; log_lik: f32[T, K];
        mask: optional bool[T] (False = padding).

    Returns:
        ``Posterior(log_evidence f32[], marginals f32[T, K])``.

    Example:
        >>> post = smoother(jnp.ones(2) / 2, jnp.eye(2) * 0.8 + 0.1, jnp.zeros((5, 2)))
        >>> post.marginals.shape
        (5, 2)
    """
    initial, transition, log_lik = jnp.asarray(initial), jnp.asarray(transition), jnp.asarray(log_lik)
    T, K, tv = _check(initial, transition, log_lik, mask)
    return _smoother(initial, transition, _array_lik(log_lik), T, mask, tv)


def _smoother(initial, transition, lik_at, T, mask, tv) -> Posterior:
    preds, _, total, last = _forward(initial, transition, lik_at, T, mask, tv, store_pred=True)
    return Posterior(total, _smooth_from_pred(transition, preds, last, lik_at, mask, tv))


def _two_slice_parts(initial, transition, log_lik, mask):
    initial, transition, log_lik = jnp.asarray(initial), jnp.asarray(transition), jnp.asarray(log_lik)
    T, K, tv = _check(initial, transition, log_lik, mask)
    return _two_slice_core(initial, transition, _array_lik(log_lik), T, mask, tv)


def _two_slice_core(initial, transition, lik_at, T, mask, tv):
    alphas, _, total, _ = _forward(initial, transition, lik_at, T, mask, tv)
    marg, w = _backward(transition, lik_at, T, alphas, mask, tv, keep_messages=True)
    if T == 1:
        return total, marg, alphas[:0], w[:0], tv
    if tv:
        pred = jnp.einsum("ti,tij->tj", alphas[:-1], transition)
    else:
        pred = alphas[:-1] @ transition
    z = jnp.sum(pred * w, axis=-1, keepdims=True)
    w = w / jnp.where(z > 0, z, 1.0)
    if mask is not None:
        valid = jnp.asarray(mask, bool)
        w = jnp.where((valid[1:] & _started(valid))[:, None], w, 0.0)
    return total, marg, alphas[:-1], w, tv


def expected_counts(initial, transition, log_lik, *, mask=None) -> ExpectedCounts:
    """Smoothed marginals and expected transition counts (the Baum-Welch E-step).

    N_ij = Σ_t p(z_t = i, z_{t+1} = j | x) = A_ij Σ_t alpha_t(i) p(x_{t+1} | j) beta_{t+1}(j) / Z_t,
    one [K, T] x [T, K] matrix product; the [T-1, K, K] two-slice marginals are never stored
    (unless the transition is time-varying).

    Returns:
        ``ExpectedCounts(log_evidence f32[], marginals f32[T, K], transitions f32[K, K])``.
    """
    return _counts(*_two_slice_parts(initial, transition, log_lik, mask), jnp.asarray(transition))


def _counts(total, marg, alphas, w, tv, transition) -> ExpectedCounts:
    if tv:
        counts = jnp.einsum("ti,tij,tj->ij", alphas, transition, w)
    else:
        counts = transition * (alphas.T @ w)
    return ExpectedCounts(total, marg, counts)


def two_slice_marginals(initial, transition, log_lik, *, mask=None) -> jax.Array:
    """f32[T-1, K, K]: p(z_t = i, z_{t+1} = j | x_{1:T}); zero where step t+1 is masked.

    xi_t(i, j) = alpha_t(i) A_t(i, j) p(x_{t+1} | j) beta_{t+1}(j) / Z_t.
    """
    _, _, alphas, w, tv = _two_slice_parts(initial, transition, log_lik, mask)
    trans = transition if tv else transition[None]
    return alphas[:, :, None] * trans * w[:, None, :]


def _safe_log(x):
    return jnp.log(jnp.asarray(x))


def viterbi(initial, transition, log_lik, *, mask=None, unroll=2) -> Path:
    """Most probable state path argmax_z p(z_{1:T} | x_{1:T}) by max-product dynamic programming.

    delta_t(j) = max_i [delta_{t-1}(i) + log A_ij] + log p(x_t | j); each delta is shifted by its max
    and the shifts are summed with compensation, so the path log-probability stays accurate. The
    maximisation runs over the last (contiguous) axis of log A^T.

    Returns:
        ``Path(states int32[T], log_prob f32[])`` with log_prob = log p(z*, x).
    """
    initial, transition, log_lik = jnp.asarray(initial), jnp.asarray(transition), jnp.asarray(log_lik)
    T, K, tv = _check(initial, transition, log_lik, mask)
    valid = None if mask is None else jnp.asarray(mask, bool)
    started = None if mask is None else jnp.concatenate([jnp.zeros((1,), bool), _started(valid)])
    log_trans_T = jnp.swapaxes(_safe_log(transition), -1, -2)  # [.., j, i]
    arange = jnp.arange(K, dtype=jnp.int32)

    def ll_at(t):
        row = _row(log_lik, t)
        return row if valid is None else jnp.where(valid[t], row, 0.0)

    d0 = _safe_log(initial) + ll_at(0)
    s0 = jnp.max(d0)
    s0 = jnp.where(jnp.isfinite(s0), s0, 0.0)
    d0 = d0 - s0
    bps = jnp.zeros((T, K), jnp.int32)

    def step(t, carry):
        delta, bps, total, comp = carry
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
        total, comp = _kahan_add(total, comp, sh)
        return d, _put(bps, bp, t), total, comp

    carry = (d0, bps, s0, jnp.zeros((), log_lik.dtype))
    if T > 1:
        carry = loops.fori_loop(1, T, step, carry, unroll=min(unroll, T - 1))
    d_last, bps, total, _ = carry
    last = jnp.argmax(d_last).astype(jnp.int32)
    log_prob = total + d_last[last]
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
    return Path(states, log_prob)


def sample_posterior(key, initial, transition, log_lik, *, mask=None) -> jax.Array:
    """One path z_{1:T} ~ p(z_{1:T} | x_{1:T}) by forward filtering, backward sampling.

    z_T ~ alpha_T; z_t ~ alpha_t(i) A_t(i, z_{t+1}) for t = T-1, ..., 1.

    Args:
        key: a ``jax.random`` key.

    Returns:
        int32[T] sampled states; -1 at masked steps. vmap over keys for several samples.
    """
    initial, transition, log_lik = jnp.asarray(initial), jnp.asarray(transition), jnp.asarray(log_lik)
    T, K, tv = _check(initial, transition, log_lik, mask)
    valid = _mask_or_true(mask, T)
    alphas, _, _, _ = _forward(initial, transition, _array_lik(log_lik), T, mask, tv)
    keys = jax.random.split(key, T)
    last = jax.random.categorical(keys[-1], jnp.log(alphas[-1])).astype(jnp.int32)

    def step(z_next, xs):
        if tv:
            alpha, k, valid_n, trans_t = xs
        else:
            alpha, k, valid_n = xs
            trans_t = transition
        p = alpha * trans_t[:, z_next]
        z = jax.random.categorical(k, jnp.log(p)).astype(jnp.int32)
        z = jnp.where(valid_n, z, z_next)
        return z, z

    xs = (alphas[:-1], keys[:-1], valid[1:])
    if tv:
        xs = xs + (transition,)
    _, states = loops.scan(step, last, xs, reverse=True)
    states = jnp.concatenate([states, last[None]])
    return jnp.where(valid, states, -1)


def sample(
    key,
    initial,
    transition,
    num_steps: int,
    emission_sampler: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
):
    """Samples z_{1:T} (and x_{1:T}) from the HMM.

    Args:
        key: a ``jax.random`` key.
        initial: f32[K]; transition: f32[K, K] or f32[T-1, K, K].
        num_steps: T (static).
        emission_sampler: optional ``(key, state int32[]) -> observation``; vmapped over steps.

    Returns:
        int32[T] states, or ``(states, observations)`` when ``emission_sampler`` is given.
    """
    initial, transition = jnp.asarray(initial), jnp.asarray(transition)
    K = _shape(initial)[0] if len(_shape(initial)) == 1 else None
    if K is None:
        raise ValueError(f"initial must have shape [K]; got {_shape(initial)}")
    ts = _shape(transition)
    if ts != (K, K) and ts != (num_steps - 1, K, K):
        raise ValueError(
            f"transition must have shape ({K}, {K}) or ({num_steps - 1}, {K}, {K}) for num_steps="
            f"{num_steps}; got {ts}"
        )
    tv = len(ts) == 3
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
        return states
    obs = jax.vmap(emission_sampler)(jax.random.split(kx, num_steps), states)
    return states, obs


# --------------------------------------------------------------------------------- parallel in time


def _effective_transitions(transition, valid, T, K, initial):
    """f32[T-1, K, K]: the transition into each step; the identity into masked steps; rows equal to
    the initial distribution into the first valid step after masked ones."""
    trans = jnp.broadcast_to(transition, (T - 1, K, K))
    eye = jnp.eye(K, dtype=trans.dtype)
    trans = jnp.where(_started(valid)[:, None, None], trans, jnp.broadcast_to(initial, (K, K)))
    return jnp.where(valid[1:, None, None], trans, eye)


def _parallel_forward(initial, transition, log_lik, mask):
    initial, transition, log_lik = jnp.asarray(initial), jnp.asarray(transition), jnp.asarray(log_lik)
    T, K, tv = _check(initial, transition, log_lik, mask)
    valid = _mask_or_true(mask, T)
    lik, shift = _scaled_lik(log_lik, mask)
    first = jnp.broadcast_to(initial * lik[0], (K, K))
    first = jnp.where(valid[0], first, jnp.eye(K, dtype=first.dtype))
    if T > 1:
        rest = _effective_transitions(transition, valid, T, K, initial) * lik[1:, None, :]
        mats = jnp.concatenate([first[None], rest], axis=0)
    else:
        mats = first[None]
    norm = jnp.max(mats, axis=(1, 2), keepdims=True)
    mats = mats / norm
    scales = jnp.log(norm[:, 0, 0]) + shift

    def combine(a, b):
        ma, sa = a
        mb, sb = b
        m = ma @ mb
        n = jnp.max(m, axis=(-2, -1), keepdims=True)
        return m / n, sa + sb + jnp.log(n[..., 0, 0])

    prods, log_scales = lax.associative_scan(combine, (mats, scales))
    rows = prods[:, 0, :]
    sums = jnp.sum(rows, axis=-1)
    filtered = rows / sums[:, None]  # at masked steps: the carried (frozen) filter
    cum = log_scales + jnp.log(sums)
    log_cs = jnp.concatenate([cum[:1], jnp.diff(cum)])
    log_cs = jnp.where(valid, log_cs, 0.0)
    return cum[-1], filtered, log_cs


def parallel_filter(initial, transition, log_lik, *, mask=None) -> Filtered:
    """``filter`` by an associative scan over scaled matrices M_t = A_t diag(p(x_t | ·)).

    Prefix products M_0 ⋯ M_t (with M_0 = 1 (pi ⊙ p(x_0|·))^T) give alpha_t up to a carried log scale.
    O(log T) depth, O(T K^3) work.
    """
    total, filtered, log_cs = _parallel_forward(initial, transition, log_lik, mask)
    return Filtered(total, _zero_masked(filtered, mask), log_cs)


def parallel_smoother(initial, transition, log_lik, *, mask=None) -> Posterior:
    """``smoother`` by two associative scans: ``parallel_filter``, then backward products of the
    row-stochastic matrices E_t(i, j) = p(z_t = j | z_{t+1} = i, x_{1:t}); p(z_t | x) = 1 E_{T-1} ⋯ E_t / K.
    """
    initial, transition, log_lik = jnp.asarray(initial), jnp.asarray(transition), jnp.asarray(log_lik)
    T, K, tv = _check(initial, transition, log_lik, mask)
    valid = _mask_or_true(mask, T)
    total, f, _ = _parallel_forward(initial, transition, log_lik, mask)
    last = jnp.broadcast_to(f[-1], (K, K))
    if T > 1:
        trans = _effective_transitions(transition, valid, T, K, initial)  # [T-1, K, K], (i -> j)
        e = f[:-1, None, :] * jnp.swapaxes(trans, -1, -2)  # e[t, i, j] = f_t(j) A_t(j, i)
        e = _normalize_rows(e)
        elems = jnp.concatenate([e, last[None]], axis=0)
    else:
        elems = last[None]

    # reverse=True folds from the end: combine(later, earlier) must give later-product @ earlier
    prods = lax.associative_scan(lambda later, earlier: later @ earlier, elems, reverse=True)
    marg = _normalize_rows(prods[:, 0, :])
    return Posterior(total, _zero_masked(marg, mask))


def _maxplus(a, b):
    """(a ⊗ b)_ij = max_k a_ik + b_kj for stacked f32[..., K, K]."""
    return jnp.max(a[..., :, :, None] + b[..., None, :, :], axis=-2)


def parallel_viterbi(initial, transition, log_lik, *, mask=None) -> Path:
    """``viterbi`` by max-plus associative scans: forward prefix maxima delta_t and backward suffix
    maxima psi_t; z*_t = argmax_k delta_t(k) + psi_t(k) (the path is assumed unique). O(T K^3) work.
    """
    initial, transition, log_lik = jnp.asarray(initial), jnp.asarray(transition), jnp.asarray(log_lik)
    T, K, tv = _check(initial, transition, log_lik, mask)
    valid = _mask_or_true(mask, T)
    ll = jnp.where(valid[:, None], log_lik, 0.0)
    log_init = _safe_log(initial)
    neg = jnp.asarray(-jnp.inf, ll.dtype)
    log_eye = jnp.where(jnp.eye(K, dtype=bool), 0.0, neg)
    first = jnp.broadcast_to(log_init + ll[0], (K, K))
    first = jnp.where(valid[0], first, log_eye)
    if T == 1:
        d = first[0]
        z = jnp.argmax(d).astype(jnp.int32)[None]
        return Path(jnp.where(valid, z, -1), jnp.where(valid[0], d[z[0]], 0.0))
    log_trans = jnp.broadcast_to(_safe_log(transition), (T - 1, K, K))
    log_trans = jnp.where(_started(valid)[:, None, None], log_trans, jnp.broadcast_to(log_init, (K, K)))
    log_trans = jnp.where(valid[1:, None, None], log_trans, log_eye)
    rest = log_trans + ll[1:, None, :]
    mats = jnp.concatenate([first[None], rest], axis=0)

    def shifted(m):
        s = jnp.max(m, axis=(-2, -1))
        s = jnp.where(jnp.isfinite(s), s, 0.0)
        return m - s[..., None, None], s

    mats, scales = shifted(mats)

    def combine_fwd(a, b):
        m, s = shifted(_maxplus(a[0], b[0]))
        return m, a[1] + b[1] + s

    fwd, fscale = lax.associative_scan(combine_fwd, (mats, scales))
    delta = fwd[:, 0, :]  # up to a per-step constant
    bmats, bscales = shifted(rest)

    def combine_bwd(a, b):  # a covers later steps, b earlier ones
        m, s = shifted(_maxplus(b[0], a[0]))
        return m, a[1] + b[1] + s

    bwd, _ = lax.associative_scan(combine_bwd, (bmats, bscales), reverse=True)
    psi = jnp.max(bwd, axis=-1)  # [T-1, K]: best continuation from z_t = k, up to a constant
    psi = jnp.concatenate([psi, jnp.zeros((1, K), psi.dtype)], axis=0)
    states = jnp.argmax(delta + psi, axis=-1).astype(jnp.int32)
    log_prob = fscale[-1] + jnp.max(delta[-1])
    log_prob = jnp.where(jnp.any(valid), log_prob, 0.0)
    return Path(jnp.where(valid, states, -1), log_prob)
