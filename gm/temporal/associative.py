"""Exact HMM inference parallel over time: filter, smoother and Viterbi by associative scans.

The same answers as ``gm.temporal.hmm``'s sequential passes (``filter``, ``smoother``, ``viterbi``, same
arguments, masks and results), computed with ``jax.lax.associative_scan`` over per-step matrices:
O(log T) depth and O(T K^3) work, against O(T) depth and O(T K^2) work sequentially. Meant for
accelerators and long sequences with few states; on a CPU the sequential passes are faster.

* ``associative_filter``: prefix products of scaled matrices M_t = A_t diag(p(x_t | ·)).
* ``associative_smoother``: ``associative_filter``, then suffix products of the backward-conditional
  matrices E_t(i, j) = p(z_t = j | z_{t+1} = i, x_{1:t}).
* ``associative_viterbi``: max-plus prefix and suffix products.

"Associative" rather than "parallel": in ``gm``, parallel means over devices (``gm.parallel``).

Reference: S. Särkkä and Á. F. García-Fernández (2021), Temporal parallelization of Bayesian smoothers,
IEEE Transactions on Automatic Control 66(1).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from gm.temporal.common import (
    Filtered,
    Smoothed,
    chain_started,
    check_inputs,
    check_shapes,
    mark_invalid,
    valid_steps,
    zero_masked,
)
from gm.types import MPE

__all__ = ["associative_filter", "associative_smoother", "associative_viterbi"]


def _scaled_lik(log_lik, mask):
    """exp(log_lik - max_k log_lik) and the per-step shifts (0 at masked steps)."""
    top = jnp.max(log_lik, axis=-1)
    shift = jnp.where(jnp.isfinite(top), top, 0.0)
    lik = jnp.where((top == jnp.inf)[:, None], jnp.nan, jnp.exp(log_lik - shift[:, None]))  # +inf: NaN marker
    if mask is not None:
        lik = jnp.where(mask[:, None], lik, 1.0)
        shift = jnp.where(mask, shift, 0.0)
    return lik, shift


def _normalize_rows(x):
    s = jnp.sum(x, axis=-1, keepdims=True)
    return x / jnp.where(s > 0, s, 1.0)



def _effective_transitions(transition, valid, T, K, initial):
    """f32[T-1, K, K]: the transition into each step; the identity into masked steps; rows equal to
    the initial distribution into the first valid step after masked ones."""
    trans = jnp.broadcast_to(transition, (T - 1, K, K))
    eye = jnp.eye(K, dtype=trans.dtype)
    trans = jnp.where(chain_started(valid)[:, None, None], trans, jnp.broadcast_to(initial, (K, K)))
    return jnp.where(valid[1:, None, None], trans, eye)


def _forward_products(initial, transition, log_lik, mask):
    T, K, _ = check_shapes(initial, transition, log_lik, mask=mask)  # values checked by the caller
    valid = valid_steps(T, mask=mask)
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


def associative_filter(initial, transition, log_lik, *, mask=None) -> Filtered:
    """``filter`` by an associative scan over scaled matrices M_t = A_t diag(p(x_t | ·)).

    Prefix products M_0 ⋯ M_t (with M_0 = 1 (pi ⊙ p(x_0|·))^T) give alpha_t up to a carried log scale.
    O(log T) depth, O(T K^3) work.

    Args:
        initial: f32[K]; transition: f32[K, K] or f32[T-1, K, K]; log_lik: f32[T, K];
        mask: optional bool[T] (False = padding; see ``gm.temporal.hmm``).

    Returns:
        ``Filtered(log_evidence f32[], filtered f32[T, K], log_normalizers f32[T])``, as ``filter``.

    Examples:
        >>> f = associative_filter(jnp.ones(2) / 2, jnp.eye(2) * 0.8 + 0.1, jnp.zeros((5, 2)))
    """
    initial, transition, log_lik, _ = check_inputs(initial, transition, log_lik, mask=mask)
    total, filtered, log_cs = _forward_products(initial, transition, log_lik, mask)
    return Filtered(mark_invalid(total), zero_masked(filtered, mask=mask), log_cs)


def associative_smoother(initial, transition, log_lik, *, mask=None) -> Smoothed:
    """``smoother`` by two associative scans: ``associative_filter``, then backward products of the
    row-stochastic matrices E_t(i, j) = p(z_t = j | z_{t+1} = i, x_{1:t}); p(z_t | x) = 1 E_{T-1} ⋯ E_t / K.

    Args:
        initial: f32[K]; transition: f32[K, K] or f32[T-1, K, K]; log_lik: f32[T, K];
        mask: optional bool[T] (False = padding; see ``gm.temporal.hmm``).

    Returns:
        ``Smoothed(log_evidence f32[], marginals f32[T, K])``, as ``smoother``.

    Examples:
        >>> post = associative_smoother(jnp.ones(2) / 2, jnp.eye(2) * 0.8 + 0.1, jnp.zeros((5, 2)))
    """
    initial, transition, log_lik, (T, K, _) = check_inputs(initial, transition, log_lik, mask=mask)
    valid = valid_steps(T, mask=mask)
    total, f, _ = _forward_products(initial, transition, log_lik, mask)
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
    return Smoothed(mark_invalid(total), zero_masked(marg, mask=mask))


def _maxplus(a, b):
    """(a ⊗ b)_ij = max_k a_ik + b_kj for stacked f32[..., K, K]."""
    return jnp.max(a[..., :, :, None] + b[..., None, :, :], axis=-2)


def associative_viterbi(initial, transition, log_lik, *, mask=None) -> MPE:
    """``viterbi`` by max-plus associative scans: forward prefix maxima delta_t and backward suffix
    maxima psi_t; z*_t = argmax_k delta_t(k) + psi_t(k) (the path is assumed unique). O(T K^3) work.

    Args:
        initial: f32[K]; transition: f32[K, K] or f32[T-1, K, K]; log_lik: f32[T, K];
        mask: optional bool[T] (False = padding; see ``gm.temporal.hmm``).

    Returns:
        ``gm.types.MPE(states int32[T], log_prob f32[])``, as ``viterbi``.

    Examples:
        >>> best = associative_viterbi(jnp.ones(2) / 2, jnp.eye(2) * 0.8 + 0.1, jnp.zeros((5, 2)))
    """
    initial, transition, log_lik, (T, K, _) = check_inputs(initial, transition, log_lik, mask=mask)
    valid = valid_steps(T, mask=mask)
    ll = jnp.where(valid[:, None], log_lik, 0.0)
    log_init = jnp.log(initial)
    neg = jnp.asarray(-jnp.inf, ll.dtype)
    log_eye = jnp.where(jnp.eye(K, dtype=bool), 0.0, neg)
    first = jnp.broadcast_to(log_init + ll[0], (K, K))
    first = jnp.where(valid[0], first, log_eye)
    if T == 1:
        d = first[0]
        z = jnp.argmax(d).astype(jnp.int32)[None]
        return MPE(jnp.where(valid, z, -1), mark_invalid(jnp.where(valid[0], d[z[0]], 0.0)))
    log_trans = jnp.broadcast_to(jnp.log(transition), (T - 1, K, K))
    log_trans = jnp.where(chain_started(valid)[:, None, None], log_trans, jnp.broadcast_to(log_init, (K, K)))
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
    return MPE(jnp.where(valid, states, -1), mark_invalid(log_prob))
