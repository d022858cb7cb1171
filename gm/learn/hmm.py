"""Baum-Welch (EM) for HMMs over batches of variable-length sequences, with Dirichlet priors (MAP-EM)
and random restarts, on the contract of ``gm.learn.common``.

    model = learn.hmm.init(key, family, num_states, obs, mask=mask)
    result = learn.hmm.fit(family, model, obs, mask=mask, num_iters=50)     # FitResult
    result.model, result.log_likelihood                                     # HMM, f32[iterations + 1]

The emission family (``gm.temporal.Categorical(V)``, ``Gaussian(D)``, ...) is the model's static
configuration and comes first, as a deep model's config does; the model is a ``gm.temporal.HMM``.
One E-step is ``gm.temporal.model.batch_expected_counts`` on the batch (each step's likelihood computed
inside the loops; from a few sequences on, the batch-minor passes with the transition counts summed over
the batch inside the backward sweep); the M-step adds up the expected counts (padded steps have weight zero, a
sequence's counts are scaled by its weight) and maximises: `normalize_counts` with the `Prior`'s
concentrations for the initial distribution and the transition rows (a row without counts keeps its
previous value), the family's own ``m_step`` for the emissions. ``em_step`` is compiled once per
(family, shapes, estimate): calling it again with new parameters, data or prior concentrations of the
same shapes does not recompile. EM never decreases log p(x) + log p(model) (the log-likelihood for
``prior=None`` and a family without its own prior).

Reference: L. E. Baum et al. (1970); L. R. Rabiner (1989), section III.C.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gm import loops
from gm.learn.common import EMStep, FitResult, Prior, check_iterations, iterate_em, normalize_counts
from gm.temporal.common import check_probabilities, float_array
from gm.temporal.model import HMM, batch_expected_counts, log_likelihood
from gm.validation import require_weights

__all__ = ["Concentrations", "ResolvedPrior", "check_data", "check_model", "em_step", "em_update", "fit", "fit_restarts", "fit_scan", "init",
           "log_prior", "resolve_prior"]


class Concentrations(NamedTuple):
    """Dirichlet concentrations of an HMM's rows: arrays (a pytree ``jax.jit`` traces), or Python
    numbers (constants in the compiled step).

    Attributes:
        initial: f32[] or f32[K], the initial distribution's concentrations.
        transition: f32[], f32[K] or f32[K, K], every transition row's concentrations.
    """

    initial: jax.Array
    transition: jax.Array


class ResolvedPrior(NamedTuple):
    """A `Prior` resolved for an HMM of K states: ``concentrations`` (traced) and ``estimate``
    (``"map"`` or ``"mean"``, static)."""

    concentrations: Concentrations
    estimate: str


# Maximum likelihood's concentrations as Python numbers: inside a jitted step they are compile-time
# constants, so N + 1 - 1 folds to N and tiny expected counts are not rounded away (a prior given as a
# `Prior` is traced instead: new concentrations of the same shapes do not recompile).
_FLAT = ResolvedPrior(Concentrations(1.0, 1.0), "map")


def _resolve(num_states: int, prior: Prior | None) -> ResolvedPrior:
    return _FLAT if prior is None else resolve_prior(num_states, prior=prior)


def resolve_prior(num_states: int, *, prior: Prior | None = None) -> ResolvedPrior:
    """The concentrations a `Prior` puts on an HMM's initial distribution and transition rows.

    ``Prior.dirichlet(alpha)``: ``alpha`` on every entry, or ``{"initial": a, "transition": b}`` (missing
    names: 1, flat); ``Prior.k2()``: 1 on every entry; ``Prior.bdeu(ess)``: ess / K on the initial
    distribution and ess / K^2 on the transition (the BDeu rule with the previous state as the parent).
    ``None``: maximum likelihood (every concentration 1, MAP).

    Examples:
        >>> resolve_prior(3, prior=Prior.dirichlet({"transition": 2.0})).concentrations.transition
        Array(2., dtype=float32)
    """
    if prior is None:
        prior = Prior()
    if prior.kind == "dirichlet":
        alpha = prior.alpha
        if isinstance(alpha, dict):
            unknown = set(alpha) - {"initial", "transition"}
            if unknown:
                raise ValueError(f"an HMM's prior names 'initial' and 'transition'; got {sorted(unknown)}")
            a_init, a_trans = alpha.get("initial", 1.0), alpha.get("transition", 1.0)
        else:
            a_init = a_trans = alpha
    elif prior.kind == "k2":
        a_init = a_trans = 1.0
    elif prior.kind == "bdeu":
        ess = prior.equivalent_sample_size
        ess_init, ess_trans = (ess.get("initial", 5.0), ess.get("transition", 5.0)) if isinstance(ess, dict) \
            else (ess, ess)
        a_init, a_trans = ess_init / num_states, ess_trans / num_states**2
    else:
        raise ValueError(f"prior.kind must be 'dirichlet', 'bdeu' or 'k2'; got {prior.kind!r}")
    if prior.estimate not in ("map", "mean"):
        raise ValueError(f"prior.estimate must be 'map' or 'mean'; got {prior.estimate!r}")
    dtype = jnp.result_type(float)
    return ResolvedPrior(Concentrations(jnp.asarray(a_init, dtype), jnp.asarray(a_trans, dtype)), prior.estimate)


def init(key, family, num_states: int, obs, *, mask=None, stickiness: float = 0.0) -> HMM:
    """Random parameters: Dirichlet(1) initial and transition rows (mixed with ``stickiness`` I), emission
    parameters from ``family.initialize`` (data-dependent for continuous families).

    Args:
        key: a ``jax.random`` key.
        family: the emission family; num_states: K.
        obs: observations with leading [B, T] axes (the continuous families draw means from them).
        mask: optional bool[B, T]; padded steps are ignored (NaN) when initialising from the data.
        stickiness: weight of the identity in the transition matrix, in [0, 1].

    Returns:
        ``gm.temporal.HMM``.

    Raises:
        ValueError: ``num_states`` < 1, or (`check_data`) a wrong shape or an invalid observation, named.

    Examples:
        >>> model = init(jax.random.key(0), Gaussian(2), 3, obs, mask=mask, stickiness=0.5)
    """
    if not isinstance(num_states, (int, np.integer)) or num_states < 1:
        raise ValueError(f"num_states must be a positive int; got {num_states!r}")
    obs, mask, _ = check_data(family, obs, mask=mask)  # symbols in range, no inf: never a plausible start
    k1, k2, k3 = jax.random.split(key, 3)
    initial = jax.random.dirichlet(k1, jnp.ones(num_states))
    trans = jax.random.dirichlet(k2, jnp.ones(num_states), (num_states,))
    trans = (1.0 - stickiness) * trans + stickiness * jnp.eye(num_states)
    obs = jnp.asarray(obs)
    if mask is not None and jnp.issubdtype(obs.dtype, jnp.floating):
        m = jnp.asarray(mask).reshape(jnp.asarray(mask).shape + (1,) * (obs.ndim - jnp.ndim(mask)))
        obs = jnp.where(m, obs, jnp.nan)
    return HMM(initial, trans, family.initialize(k3, num_states, obs))


def check_data(family, obs, *, mask=None, weights=None) -> tuple:
    """``(obs, mask, weights)`` after the checks every Baum-Welch entry point shares.

    Shapes always (``ValueError`` naming the argument and the shape expected: obs [B, T] + the family's
    ``event_shape``, mask bool[B, T], weights f32[B]); values when concrete (eager) or compiled under
    `gm.validation.checked`: the family's ``check_observations`` (symbols in [-1, V), no infinite values)
    and weights finite and non-negative. Under ``jax.jit`` the values are unchecked: an invalid
    observation makes its sequence's log-likelihood NaN (the marker), so the fit's history is NaN.

    Returns:
        ``(obs, mask bool[B, T] or None, weights or None)``.

    Examples:
        >>> check_data(Categorical(3), jnp.array([[0, 3]]))
        Traceback (most recent call last):
        ...
        ValueError: obs[0, 1] = 3 is not a symbol of Categorical(3): symbols are 0..2, -1 is missing
    """
    obs = jnp.asarray(obs)
    event = tuple(getattr(family, "event_shape", obs.shape[2:]))
    if obs.ndim != 2 + len(event) or tuple(obs.shape[2:]) != event:
        want = "[B, T" + "".join(f", {d}" for d in event) + "]"
        raise ValueError(f"obs must have shape {want} (a batch of sequences) for {family}; got shape {obs.shape}"
                         + (" (add a batch axis: obs[None])" if obs.ndim == 1 + len(event) else ""))
    if obs.shape[0] < 1 or obs.shape[1] < 1:
        raise ValueError(f"obs needs at least one sequence and one step; got shape {obs.shape}")
    if hasattr(family, "check_observations"):
        family.check_observations(obs)
    if mask is not None:
        mask = jnp.asarray(mask, bool)
        if mask.shape != obs.shape[:2]:
            raise ValueError(f"mask must have shape [B, T] = {obs.shape[:2]}; got {mask.shape}")
    if weights is not None:
        weights = float_array(weights, "weights")
        if weights.shape != obs.shape[:1]:
            raise ValueError(f"weights must have shape [B] = {obs.shape[:1]}; got {weights.shape}")
        require_weights(weights, unit="sequence")
    return obs, mask, weights


def check_model(family, model: HMM) -> None:
    """The value checks of an HMM every EM entry point runs first: initial and transition rows
    probabilities, the emission parameters valid for ``family`` (eager ``ValueError`` naming
    ``model.initial`` / ``model.transition`` / ``model.emission`` and the position; compiled under
    `gm.validation.checked`; nothing under a plain trace).

    Examples:
        >>> check_model(Categorical(2), HMM(jnp.array([0.5, 0.5]), jnp.array([[1.2, -0.2], [0.5, 0.5]]),
        ...                                 CategoricalParams(jnp.full((2, 2), 0.5))))
        Traceback (most recent call last):
        ...
        ValueError: model.transition[0, 1] = -0.2 is negative or not finite: every entry must be a probability in [0, 1]
    """
    check_probabilities(float_array(model.initial, "model.initial"), "model.initial")
    check_probabilities(float_array(model.transition, "model.transition"), "model.transition")
    if hasattr(family, "check_params"):  # eager here: inside the jitted E-step it could only mark NaN
        family.check_params(model.emission, "model.emission")


def _batch(obs, mask, weights):
    """Shapes only (inside a traced step: `check_data` has run at the entry point)."""
    obs = jnp.asarray(obs)
    if mask is not None:
        mask = jnp.asarray(mask, bool)
        if mask.shape != obs.shape[: mask.ndim] or mask.ndim != 2:
            raise ValueError(f"mask must have shape [B, T] = {obs.shape[:2]}; got {mask.shape}")
    if weights is not None:
        weights = jnp.asarray(weights)
        if weights.shape != obs.shape[:1]:
            raise ValueError(f"weights must have shape [B] = {obs.shape[:1]}; got {weights.shape}")
    return obs, mask, weights


def _log_dirichlet(p, concentration):
    c = jnp.asarray(concentration, p.dtype) - 1.0
    return jnp.sum(jnp.where(c != 0, c * jnp.log(p), 0.0))


def _log_prior(family, model: HMM, concentrations: Concentrations):
    return (_log_dirichlet(model.initial, concentrations.initial)
            + _log_dirichlet(model.transition, concentrations.transition) + family.log_prior(model.emission))


def log_prior(family, model: HMM, *, prior: Prior | None = None) -> jax.Array:
    """f32[]: log p(model) up to a constant: Σ (alpha - 1) log theta over the initial distribution and the
    transition rows, plus the emission family's own prior (``family.log_prior``).

    Examples:
        >>> log_prior(Categorical(4), model, prior=Prior.dirichlet({"transition": 2.0}))
    """
    return _log_prior(family, model, resolve_prior(jnp.shape(model.initial)[0], prior=prior).concentrations)


def _total_log_likelihood(family, model: HMM, obs, mask, weights):
    if mask is None:
        per_sequence = jax.vmap(lambda o: log_likelihood(family, model, o))(obs)
    else:
        per_sequence = jax.vmap(lambda o, m: log_likelihood(family, model, o, mask=m))(obs, mask)
    return jnp.sum(per_sequence if weights is None else weights * per_sequence)


def em_update(family, model: HMM, obs, concentrations: Concentrations, *, mask=None, weights=None,
              estimate: str = "map") -> EMStep:
    """One Baum-Welch iteration with the prior already resolved (``resolve_prior``): the pure, unjitted
    body of ``em_step``, for callers that jit it their own way (``gm.parallel.sharded_em_step``).

    Args:
        family: the emission family; model: ``gm.temporal.HMM``.
        obs: observations with leading [B, T] axes; concentrations: ``Concentrations``.
        mask: optional bool[B, T]; weights: optional f32[B] per-sequence weights.
        estimate: ``"map"`` or ``"mean"`` (static).

    Returns:
        ``EMStep(model, log_likelihood)`` as ``em_step``.
    """
    obs, mask, weights = _batch(obs, mask, weights)
    counts = batch_expected_counts(family, model, obs, mask=mask, weights=weights)  # summed, weighted
    log_evidence = counts.log_evidence if weights is None else counts.log_evidence * weights
    initial = normalize_counts(counts.initial, alpha=concentrations.initial, estimate=estimate,
                               fallback=model.initial)
    transition = normalize_counts(counts.transitions, alpha=concentrations.transition, estimate=estimate,
                                  fallback=model.transition)
    stats = counts.emission
    emission = family.m_step(stats, model.emission)
    objective = jnp.sum(log_evidence) + _log_prior(family, model, concentrations)
    return EMStep(HMM(initial, transition, emission), objective)


@partial(jax.jit, static_argnames=("family", "estimate"))
def _em_update(family, model, obs, mask, weights, concentrations, *, estimate):
    concentrations = _FLAT.concentrations if concentrations is None else concentrations
    return em_update(family, model, obs, concentrations, mask=mask, weights=weights, estimate=estimate)


def _traced(resolved: ResolvedPrior):
    """The concentrations to pass into a jitted step: None (the flat constants) for maximum likelihood."""
    return None if resolved is _FLAT else resolved.concentrations


def em_step(family, model: HMM, obs, *, prior: Prior | None = None, mask=None, weights=None) -> EMStep:
    """One Baum-Welch iteration over a batch (compiled once per family, shapes and estimate).

    E-step: expected counts N_ij = Σ_b w_b Σ_t p(z_t = i, z_{t+1} = j | x_b) and the family's expected
    sufficient statistics; M-step: ``normalize_counts`` of the counts plus the prior's concentrations
    (a row without counts keeps its old value), ``family.m_step`` for the emissions.

    Args:
        family: an emission family (``Categorical(V)``, ``Gaussian(D)``, ...; static).
        model: ``gm.temporal.HMM``.
        obs: observations with leading [B, T] axes (int32[B, T] symbols, f32[B, T, D] vectors).
        prior: a ``gm.learn.Prior`` on the initial distribution and transition rows (`resolve_prior`);
            None is maximum likelihood.
        mask: optional bool[B, T]; False on padding.
        weights: optional f32[B]: sequence b counts w_b times (an integer weight equals repeating it).

    Returns:
        ``EMStep(model, log_likelihood)``: the updated model, and log p(obs | model) + log p(model) of
        the model passed in (the objective EM never decreases; the log-likelihood alone for
        ``prior=None`` and a family without its own prior).

    Examples:
        >>> model, objective = em_step(Categorical(6), model, rolls, mask=mask)
    """
    obs, mask, weights = check_data(family, obs, mask=mask, weights=weights)
    check_model(family, model)
    resolved = _resolve(jnp.shape(model.initial)[0], prior)
    return _em_update(family, model, obs, mask, weights, _traced(resolved), estimate=resolved.estimate)


def _converged(history, tol):
    """Whether the last relative improvement of the objective is at most ``tol``."""
    return (history[-1] - history[-2]) <= tol * jnp.abs(history[-1])


def fit(family, model: HMM, obs, *, mask=None, weights=None, num_iters: int = 50, prior: Prior | None = None,
        tol: float | None = None, progress: bool = False) -> FitResult:
    """Runs ``em_step`` ``num_iters`` times, or until the relative improvement of the objective is at most
    ``tol`` (then the model of that evaluation is returned, and ``converged`` is True).

    Args:
        family, model, obs, mask, weights, prior: as ``em_step``.
        num_iters: the most EM iterations; tol: None runs them all; progress: a tqdm bar.

    Returns:
        ``FitResult(model, log_likelihood f32[n + 1], converged)``: log_likelihood[i] is the objective
        log p(obs | model_i) + log p(model_i) of the start (i = 0) and of the model after each of the n
        iterations run (non-decreasing); the last entry is the returned model's.

    Examples:
        >>> result = fit(Gaussian(2), init(key, Gaussian(2), 3, obs), obs, mask=mask, num_iters=100)
    """
    obs, mask, weights = check_data(family, obs, mask=mask, weights=weights)
    check_model(family, model)
    resolved = _resolve(jnp.shape(model.initial)[0], prior)

    def step(m):
        return _em_update(family, m, obs, mask, weights, _traced(resolved), estimate=resolved.estimate)

    return iterate_em(step, model, num_iters=num_iters, tol=tol, progress=progress)


def fit_scan(family, model: HMM, obs, *, mask=None, weights=None, num_iters: int = 50,
             prior: Prior | None = None, tol: float | None = None) -> FitResult:
    """``num_iters`` EM iterations as one ``lax.scan``: pure, so it jits and vmaps (over initialisations).

    Args:
        family, model, obs, mask, weights, num_iters, prior: as ``fit``.
        tol: does not stop the scan: ``converged`` says whether the last relative improvement was at most
            ``tol`` (False when ``tol`` is None).

    Returns:
        ``FitResult(model, log_likelihood f32[num_iters + 1], converged bool[])``.

    Examples:
        >>> results = jax.vmap(lambda m: fit_scan(family, m, obs, num_iters=50))(initial_models)
    """
    obs, mask, weights = check_data(family, obs, mask=mask, weights=weights)
    check_model(family, model)
    check_iterations(num_iters, tol=tol)
    return _scan_fit(family, model, obs, mask, weights, _resolve(jnp.shape(model.initial)[0], prior), num_iters, tol)


def _scan_fit(family, model, obs, mask, weights, resolved: ResolvedPrior, num_iters, tol) -> FitResult:
    def body(m, _):
        return em_update(family, m, obs, resolved.concentrations, mask=mask, weights=weights,
                         estimate=resolved.estimate)

    fitted, history = loops.scan(body, model, None, length=num_iters)
    final = _total_log_likelihood(family, fitted, obs, mask, weights) + _log_prior(family, fitted,
                                                                                    resolved.concentrations)
    history = jnp.concatenate([history, final[None]])
    converged = jnp.asarray(False) if tol is None or num_iters == 0 else _converged(history, tol)
    return FitResult(fitted, history, converged)


@partial(jax.jit, static_argnames=("family", "num_states", "num_restarts", "num_iters", "estimate", "tol"))
def _fit_restarts(key, family, num_states, obs, mask, weights, concentrations, stickiness, *, num_restarts,
                  num_iters, estimate, tol):
    keys = jax.random.split(key, num_restarts)
    inits = jax.vmap(lambda k: init(k, family, num_states, obs, mask=mask, stickiness=stickiness))(keys)
    resolved = _FLAT if concentrations is None else ResolvedPrior(concentrations, estimate)
    results = jax.vmap(lambda m: _scan_fit(family, m, obs, mask, weights, resolved, num_iters, tol))(inits)
    final = results.log_likelihood[:, -1]
    best = jnp.argmax(jnp.where(jnp.isfinite(final), final, -jnp.inf))
    return FitResult(jax.tree.map(lambda x: x[best], results.model), results.log_likelihood, results.converged)


def fit_restarts(key, family, num_states: int, obs, *, mask=None, weights=None, num_restarts: int = 4,
                 num_iters: int = 50, prior: Prior | None = None, stickiness: float = 0.0,
                 tol: float | None = None) -> FitResult:
    """EM from ``num_restarts`` random initialisations at once (``init``, then ``fit_scan`` under
    ``vmap``, all in one compiled program); keeps the model with the best final objective.

    Args:
        key: a ``jax.random`` key; family: the emission family; num_states: K.
        obs, mask, weights, prior, tol: as ``fit_scan``; num_restarts: R; num_iters: per restart;
        stickiness: mixes the identity into the random initial transition matrices (``init``).

    Returns:
        ``FitResult(model, log_likelihood f32[R, num_iters + 1], converged bool[R])``: the best restart's
        model, and every restart's objective history (row r: restart r; the best is the argmax of the
        last column).

    Examples:
        >>> result = fit_restarts(key, Categorical(6), 2, rolls, num_restarts=8, num_iters=200, stickiness=0.5)
        >>> best_history = result.log_likelihood[jnp.argmax(result.log_likelihood[:, -1])]
    """
    resolved = _resolve(num_states, prior)
    obs, mask, weights = check_data(family, obs, mask=mask, weights=weights)
    check_iterations(num_iters, tol=tol, num_restarts=num_restarts)
    return _fit_restarts(key, family, num_states, obs, mask, weights, _traced(resolved), stickiness,
                         num_restarts=num_restarts, num_iters=num_iters, estimate=resolved.estimate, tol=tol)
