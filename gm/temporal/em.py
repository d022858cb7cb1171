"""Baum-Welch (EM) for HMMs over batches of variable-length sequences, with Dirichlet priors (MAP-EM)
and random restarts.

    params = em.init_params(key, family, K, obs)
    params, history = em.fit(family, params, obs, mask, num_iters=50)

One E-step is a ``vmap`` of ``expected_counts`` over the batch; the M-step adds up the expected
counts (padded steps have weight zero) and maximises. ``em_step`` is jitted once per (family, shapes):
calling it again with new parameters or data of the same shapes does not recompile.
EM never decreases log p(x) + log p(params) (the log-likelihood for flat priors).

Reference: L. E. Baum et al. (1970); L. R. Rabiner (1989), section III.C.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gm import loops
from gm.temporal import hmm as _hmm
from gm.temporal.emissions import step_likelihood
from gm.temporal.hmm import Posterior

__all__ = ["HMMParams", "Prior", "init_params", "e_step", "em_step", "fit", "fit_scan", "fit_restarts",
           "log_likelihood", "posterior"]


class HMMParams(NamedTuple):
    """initial f32[K]; transition f32[K, K]; emission: the family's parameter NamedTuple."""

    initial: jax.Array
    transition: jax.Array
    emission: Any


class Prior(NamedTuple):
    """Dirichlet concentrations (scalars or arrays broadcastable to f32[K] / f32[K, K] rows).
    1.0 is flat (maximum likelihood); MAP = max(c - 1 + counts, 0), normalised (as in hmmlearn)."""

    initial: Any = 1.0
    transition: Any = 1.0


def init_params(key, family, num_states: int, obs, mask=None, *, stickiness: float = 0.0) -> HMMParams:
    """Random parameters: Dirichlet(1) initial and transition rows (mixed with ``stickiness`` I),
    emission parameters from ``family.initialize`` (data-dependent for continuous families)."""
    k1, k2, k3 = jax.random.split(key, 3)
    initial = jax.random.dirichlet(k1, jnp.ones(num_states))
    trans = jax.random.dirichlet(k2, jnp.ones(num_states), (num_states,))
    trans = (1.0 - stickiness) * trans + stickiness * jnp.eye(num_states)
    obs = jnp.asarray(obs)
    if mask is not None and jnp.issubdtype(obs.dtype, jnp.floating):
        m = jnp.asarray(mask).reshape(jnp.asarray(mask).shape + (1,) * (obs.ndim - jnp.ndim(mask)))
        obs = jnp.where(m, obs, jnp.nan)
    return HMMParams(initial, trans, family.initialize(k3, num_states, obs))


def _batch(obs, mask):
    obs = jnp.asarray(obs)
    if mask is not None:
        mask = jnp.asarray(mask, bool)
        if mask.shape != obs.shape[: mask.ndim] or mask.ndim != 2:
            raise ValueError(f"mask must have shape [B, T] = {obs.shape[:2]}; got {mask.shape}")
    return obs, mask


def _expected_counts(family, params: HMMParams, obs, mask):
    """``hmm.expected_counts`` of one sequence with each step's likelihood computed in the loops."""
    initial, transition, lik_at, T, tv = _model_inputs(family, params, obs, mask)
    return _hmm._counts(*_hmm._two_slice_core(initial, transition, lik_at, T, mask, tv), transition)


def e_step(family, params: HMMParams, obs, mask=None):
    """Expected counts of one sequence: (ExpectedCounts, emission stats)."""
    counts = _expected_counts(family, params, obs, mask)
    return counts, family.sufficient_stats(params.emission, obs, counts.marginals)


def _first_step_marginals(marginals, mask):
    """f32[B, K]: the posterior of the first valid step of each sequence."""
    if mask is None:
        return marginals[:, 0]
    first = jnp.argmax(mask, axis=1)
    return jnp.take_along_axis(marginals, first[:, None, None], axis=1)[:, 0]


def _normalize_counts(counts, concentration, old):
    c = jnp.maximum(counts + jnp.asarray(concentration, counts.dtype) - 1.0, 0.0)
    tot = c.sum(-1, keepdims=True)
    new = c / jnp.where(tot > 0, tot, 1.0)
    return jnp.where(tot > 0, new, old)


def _log_dirichlet(p, concentration):
    c = jnp.asarray(concentration, p.dtype) - 1.0
    return jnp.sum(jnp.where(c != 0, c * jnp.log(p), 0.0))


def log_prior(family, params: HMMParams, prior: Prior = Prior()):
    """log p(params) up to a constant: the Dirichlet (and emission) priors."""
    return (_log_dirichlet(params.initial, prior.initial) + _log_dirichlet(params.transition, prior.transition)
            + family.log_prior(params.emission))


def _em_step(family, params: HMMParams, obs, mask=None, prior: Prior = Prior()):
    obs, mask = _batch(obs, mask)
    B, T = obs.shape[:2]

    def one(o, m):
        return _expected_counts(family, params, o, m)

    counts = jax.vmap(one)(obs, mask) if mask is not None else jax.vmap(lambda o: one(o, None))(obs)
    K = params.initial.shape[0]
    weights = counts.marginals.reshape(B * T, K)
    flat = obs.reshape((B * T,) + obs.shape[2:])
    stats = family.sufficient_stats(params.emission, flat, weights)
    initial = _normalize_counts(_first_step_marginals(counts.marginals, mask).sum(0), prior.initial,
                                params.initial)
    transition = _normalize_counts(counts.transitions.sum(0), prior.transition, params.transition)
    emission = family.m_step(stats, params.emission)
    log_lik = jnp.sum(counts.log_evidence)
    return HMMParams(initial, transition, emission), log_lik, log_prior(family, params, prior)


em_step = jax.jit(_em_step, static_argnames=("family",))
em_step.__doc__ = """One Baum-Welch iteration over a batch (jitted; the family is static).

Args:
    family: an emission family (``Categorical(V)``, ``Gaussian(D)``, ...).
    params: ``HMMParams``.
    obs: observations with leading [B, T] axes (int32[B, T] symbols, f32[B, T, D] vectors).
    mask: optional bool[B, T]; False on padding.
    prior: ``Prior`` Dirichlet concentrations.

Returns:
    (new params, log p(obs | params) f32[], log p(params) f32[]) with the log-likelihood and prior of
    the parameters passed in.
"""


def _model_inputs(family, params: HMMParams, obs, mask):
    """(initial, transition, lik_at, T, time_varying) for one sequence, shapes checked at trace time."""
    obs = jnp.asarray(obs)
    initial, transition = jnp.asarray(params.initial), jnp.asarray(params.transition)
    if obs.ndim < 1 or obs.shape[0] < 1:
        raise ValueError(f"obs must have a leading time axis with at least one step; got shape {obs.shape}")
    if initial.ndim != 1:
        raise ValueError(f"params.initial must have shape [K]; got {initial.shape}")
    T, K = obs.shape[0], initial.shape[0]
    _, _, tv = _hmm._check(initial, transition, jax.ShapeDtypeStruct((T, K), initial.dtype), mask, name="obs")
    lik_at = step_likelihood(family, params.emission, obs)
    row = jax.eval_shape(lambda: lik_at(0)[0])
    if row.shape != (K,):
        raise ValueError(f"params.emission gives likelihoods for {row.shape[-1] if row.shape else 0} states; "
                         f"params.initial has K = {K}")
    return initial, transition, lik_at, T, tv


def posterior(family, params: HMMParams, obs, mask=None) -> Posterior:
    """Smoothing from observations: p(z_t | x_{1:T}) for every t and log p(x_{1:T}) of one sequence.

    Equal to ``smoother(params.initial, params.transition, family.log_likelihood(params.emission, obs))``,
    but each step's likelihood is computed inside the loops (``emissions.step_likelihood``), so no
    [T, K] array of log-likelihoods is written and read back; for ``Categorical`` no exponentials are
    taken either. ``jax.vmap`` it over a batch (``in_axes=(None, None, 0)``, masks for lengths).

    Args:
        family: an emission family; params: ``HMMParams``; obs: one sequence (int32[T] symbols,
        f32[T, D] vectors); mask: optional bool[T] (False = padding).

    Returns:
        ``Posterior(log_evidence f32[], marginals f32[T, K])``.
    """
    initial, transition, lik_at, T, tv = _model_inputs(family, params, obs, mask)
    return _hmm._smoother(initial, transition, lik_at, T, mask, tv)


def log_likelihood(family, params: HMMParams, obs, mask=None):
    """f32[]: Σ_b log p(x_b | params) over a batch (padded steps excluded)."""
    obs, mask = _batch(obs, mask)

    def one(o, m):
        initial, transition, lik_at, T, tv = _model_inputs(family, params, o, m)
        return _hmm._forward(initial, transition, lik_at, T, m, tv)[2]

    if mask is None:
        return jnp.sum(jax.vmap(lambda o: one(o, None))(obs))
    return jnp.sum(jax.vmap(one)(obs, mask))


def fit(family, params: HMMParams, obs, mask=None, *, num_iters: int = 50, prior: Prior = Prior(),
        tol: float | None = None, progress: bool = False):
    """Runs ``em_step`` until ``num_iters`` or an improvement below ``tol``.

    Returns:
        (params, history f32[n]): history[i] = log p(x | θ_i) + log p(θ_i) of the parameters before
        iteration i (non-decreasing).
    """
    it = range(num_iters)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="EM")
    history = []
    for _ in it:
        new, ll, lp = em_step(family, params, obs, mask, prior)
        history.append(float(ll + lp))
        params = new
        if tol is not None and len(history) > 1 and history[-1] - history[-2] < tol:
            break
    return params, jnp.asarray(history)


def fit_scan(family, params: HMMParams, obs, mask=None, *, num_iters: int = 50, prior: Prior = Prior()):
    """Pure EM loop (``lax.scan``): (params, history f32[num_iters]); vmap it over initialisations."""

    def body(p, _):
        new, ll, lp = _em_step(family, p, obs, mask, prior)
        return new, ll + lp

    return loops.scan(body, params, None, length=num_iters)


@partial(jax.jit, static_argnames=("family", "num_states", "num_restarts", "num_iters"))
def fit_restarts(key, family, num_states: int, obs, mask=None, *, num_restarts: int = 4,
                 num_iters: int = 50, prior: Prior = Prior(), stickiness: float = 0.0):
    """EM from ``num_restarts`` random initialisations at once (``vmap``); keeps the best.

    ``stickiness`` mixes the identity into the random initial transition matrices.

    Returns:
        (best params, history f32[num_restarts, num_iters], final objective f32[num_restarts]).
    """
    keys = jax.random.split(key, num_restarts)
    inits = jax.vmap(lambda k: init_params(k, family, num_states, obs, mask, stickiness=stickiness))(keys)
    fitted, hist = jax.vmap(lambda p: fit_scan(family, p, obs, mask, num_iters=num_iters, prior=prior))(inits)
    final = jax.vmap(lambda p: log_likelihood(family, p, obs, mask) + log_prior(family, p, prior))(fitted)
    best = jnp.argmax(jnp.where(jnp.isfinite(final), final, -jnp.inf))
    return jax.tree.map(lambda x: x[best], fitted), hist, final
