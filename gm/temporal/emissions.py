"""Emission families for HMMs: parameters, per-step log-likelihoods, sufficient statistics, M-step.

A family is a small frozen dataclass holding static settings (sizes, covariance type, prior
strengths); it is hashable, so it can be a static argument of ``jax.jit``. Its parameters are a
``NamedTuple`` of arrays (a pytree). Every family offers

* ``log_likelihood(params, obs) -> f32[T, K]``: log p(x_t | z_t = k);
* ``sufficient_stats(params, obs, marginals f32[T, K]) -> stats``: expected sufficient statistics, a pytree
  that adds up over sequences (the E-step's posterior state marginals, zero on padded steps);
* ``m_step(stats, params) -> params``: the (MAP) maximiser; states without data keep their parameters;
* ``sample(key, params, state) -> observation`` and ``initialize(key, num_states, obs)``;
* ``event_shape``: the shape of one step's observation (``()`` for symbols, ``(D,)`` for vectors), and
  ``check_observations(obs, name)``: the value check of `gm.validation` (eager, or compiled under
  `gm.validation.checked`): symbols in ``[-1, V)``, no infinite values (NaN is missing), no negative
  counts; a ``ValueError`` names the argument, the position and the value; and
  ``check_params(params, name)`` / ``params_valid(params)``: the same for the parameters (probability
  rows, positive finite variances and rates, finite means), eager or compiled, and the traced flag that
  makes the passes return their marker for invalid parameters under ``jax.jit``.

Under ``jax.jit`` the values are not checked; an invalid observation (a symbol outside ``[-1, V)``, an
infinite value) gives a NaN log-likelihood, so the passes return their marker (NaN log-evidence and
rows), never a clipped or dropped value.

``step_likelihood(family, params, obs)`` gives the per-step form the inference loops read,
``t -> (lik f32[K], log_scale f32[])`` with p(x_t | z_t = k) = lik[k] exp(log_scale): by default one row
of ``log_likelihood`` exponentiated inside the loop; ``Categorical`` reads a column of its table.

Missing observations contribute likelihood one: ``-1`` for categorical symbols, ``NaN`` for continuous
values (per dimension for the diagonal Gaussian, the Poisson and the mixture; for the full-covariance
Gaussian a partially observed vector is scored by the marginal of its observed dimensions, and only
complete vectors enter the M-step). Padding must be NaN, -1 or finite values (never inf): padded steps
have weight zero.

Length: about 580 lines. Four families that implement one protocol (likelihood, statistics, M-step,
prior, sampling, initialisation, value checks) side by side, with the helpers they share; a module per
family would spread the protocol over four files and make the shared helpers public.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import gammaln, logsumexp

from gm.temporal.common import (
    BatchStepLikelihood,
    ScaledLikelihood,
    StepLikelihood,
    batch_array_likelihood,
    check_probabilities,
    rows_valid,
    shifted_exp,
)
from gm.validation import is_concrete, require

__all__ = [
    "Categorical",
    "CategoricalParams",
    "Gaussian",
    "GaussianParams",
    "Poisson",
    "PoissonParams",
    "GaussianMixture",
    "GaussianMixtureParams",
    "batch_step_likelihood",
    "step_likelihood",
]

_LOG_2PI = math.log(2 * math.pi)
_TINY = 1e-10


def step_likelihood(family, params, obs) -> StepLikelihood:
    """The per-step likelihood function of a sequence: ``t -> ScaledLikelihood(lik f32[K], log_scale f32[])``
    with p(x_t | z_t = k) = lik[k] exp(log_scale), for ``t`` a traced step index inside a loop.

    A family with a ``step_likelihood`` method supplies its own (no exponentials for ``Categorical``);
    otherwise step t's row of ``family.log_likelihood`` is computed and exponentiated after subtracting
    its maximum. Either way no [T, K] array of log-likelihoods is stored.

    Args:
        family: an emission family; params: its parameters; obs: one sequence ([T] or [T, D]).

    Returns:
        A `gm.temporal.common.StepLikelihood`.

    Examples:
        >>> lik_at = step_likelihood(Gaussian(1), GaussianParams(jnp.zeros((2, 1)), jnp.ones((2, 1))), x)
        >>> lik_at(0).lik.shape
        (2,)
    """
    if hasattr(family, "step_likelihood"):
        return family.step_likelihood(params, obs)
    obs = jnp.asarray(obs)

    def at(t):
        return shifted_exp(family.log_likelihood(params, lax.dynamic_slice_in_dim(obs, t, 1, 0))[0])

    return at


def batch_step_likelihood(family, params, obs) -> BatchStepLikelihood:
    """`step_likelihood` for a batch of sequences that share ``params``, batch-minor (what the batch-minor
    passes of ``gm.temporal.hmm`` read): ``t -> ScaledLikelihood(lik f32[K, B], log_scale f32[B])``.

    A family with a ``batch_step_likelihood`` method supplies its own (``Categorical``: a gather from its
    table, no exponentials); otherwise ``family.log_likelihood`` of every sequence, once, read through
    ``common.batch_array_likelihood``.

    Args:
        family: an emission family; params: its parameters; obs: B sequences ([B, T] or [B, T, D]).

    Examples:
        >>> lik_at = batch_step_likelihood(Gaussian(1), GaussianParams(jnp.zeros((2, 1)), jnp.ones((2, 1))), xs)
        >>> lik_at(0).lik.shape   # [K, B]
        (2, 4)
    """
    if hasattr(family, "batch_step_likelihood"):
        return family.batch_step_likelihood(params, obs)
    return batch_array_likelihood(jax.vmap(family.log_likelihood, in_axes=(None, 0))(params, obs))


def _keep_old(new, old, has_data):
    """Where a state has (almost) no data, keep its old parameter."""
    has_data = has_data.reshape(has_data.shape + (1,) * (new.ndim - has_data.ndim))
    return jnp.where(has_data, new, old)


def _host(x):
    return np.asarray(x) if is_concrete(x) else x


def _check_finite(obs, name, *, counts=False):
    """Values of continuous observations: NaN (missing) or finite; with ``counts`` also non-negative."""
    values = _host(obs)
    ok = ~((values == jnp.inf) | (values == -jnp.inf))
    if counts:
        ok = ok & ~(values < 0)
    what = "a finite count >= 0 or NaN (missing)" if counts else "finite or NaN (missing)"

    def describe(at):
        if at is None:
            return f"{name} has an invalid value: every entry must be {what}"
        pos = ", ".join(str(i) for i in at)
        return f"{name}[{pos}] = {float(values[at])}: every entry must be {what}"

    require(ok, describe)


def _check_entries(values, name: str, *, positive: bool) -> None:
    """Every entry of a parameter array finite (and, with ``positive``, > 0), or ``ValueError`` naming
    ``name``, the position and the value (eager; compiled under `gm.validation.checked`)."""
    values = _host(values)
    what = "finite and > 0" if positive else "finite"

    def describe(at):
        if at is None:
            return f"{name} has an entry that is not {what}"
        return f"{name}[{', '.join(str(i) for i in at)}] = {float(values[at]):.6g}: every entry must be {what}"

    require(_entries_ok(values, positive=positive), describe)


def _entries_ok(values, *, positive: bool):
    ok = (values > -jnp.inf) & (values < jnp.inf)
    return ok & (values > 0) if positive else ok


def _all_entries_ok(positive_arrays=(), finite_arrays=()) -> jax.Array:
    ok = jnp.asarray(True)
    for x in positive_arrays:
        ok = ok & jnp.all(_entries_ok(jnp.asarray(x), positive=True))
    for x in finite_arrays:
        ok = ok & jnp.all(_entries_ok(jnp.asarray(x), positive=False))
    return ok


def _check_settings(family, **rules) -> None:
    """``ValueError`` naming the family's field when a static setting breaks its rule (``"positive int"``,
    ``"positive"``, ``">= 0"``)."""
    for field, rule in rules.items():
        value = getattr(family, field)
        ok = {"positive int": lambda v: isinstance(v, (int, np.integer)) and v >= 1,
              "positive": lambda v: np.isfinite(v) and v > 0,
              ">= 0": lambda v: np.isfinite(v) and v >= 0}[rule](value)
        if not ok:
            raise ValueError(f"{type(family).__name__}.{field} must be {rule}; got {value!r}")


def _mark_invalid_rows(ll, obs, *, counts=False):
    """NaN (the marker) in the log-likelihood rows of steps with an infinite (or, for counts, negative)
    value: unchecked under jit, such a step never gets a plausible likelihood."""
    bad = jnp.isinf(obs) | (obs < 0) if counts else jnp.isinf(obs)
    return jnp.where(jnp.any(bad, -1, keepdims=True), jnp.nan, ll)


def _log_dirichlet(p, concentration):
    """Σ (c - 1) log p with 0 log 0 = 0 (a symbol never observed under a flat prior is not NaN)."""
    c = jnp.asarray(concentration, jnp.result_type(p)) - 1.0
    return jnp.sum(jnp.where(c != 0, c * jnp.log(p), 0.0))


def _check_marginals(obs_len, marginals):
    ws = tuple(jnp.shape(marginals))
    if len(ws) != 2 or ws[0] != obs_len:
        raise ValueError(f"marginals must have shape [T, K] = ({obs_len}, K); got {ws}")


# ------------------------------------------------------------------------------------ categorical


class CategoricalParams(NamedTuple):
    """probs: f32[K, V], p(x = v | z = k) in row k."""

    probs: jax.Array


@dataclasses.dataclass(frozen=True)
class Categorical:
    """Discrete symbols 0..V-1 (``-1`` missing). ``concentration``: symmetric Dirichlet prior on each
    row of ``probs`` (1.0 = maximum likelihood; MAP row = max(c - 1 + counts, 0), normalised)."""

    num_symbols: int
    concentration: float = 1.0

    def __post_init__(self):
        _check_settings(self, num_symbols="positive int", concentration="positive")

    @property
    def event_shape(self) -> tuple[int, ...]:
        """``()``: one step's observation is one symbol."""
        return ()

    def check_params(self, params: CategoricalParams, name: str = "params") -> None:
        """Every row of ``probs`` a distribution (entries finite, non-negative, summing to one), or
        ``ValueError`` naming ``name``, the state and the symbol (eager; compiled under `checked`)."""
        check_probabilities(params.probs, f"{name}.probs", over="the V symbols")

    def params_valid(self, params: CategoricalParams) -> jax.Array:
        """bool[]: the traced flag of `check_params`."""
        return rows_valid(params.probs)

    def check_observations(self, obs, name: str = "obs") -> None:
        """Every symbol in ``[-1, V)`` (-1 missing), or ``ValueError`` naming ``name``, the position and
        the value (eager; compiled under `gm.validation.checked`). Needs an integer array."""
        values = _host(obs)
        V = self.num_symbols

        def describe(at):
            if at is None:
                return f"{name} out of range: every symbol must be in [0, {V}) or -1 (missing)"
            pos = ", ".join(str(i) for i in at)
            return (f"{name}[{pos}] = {int(values[at])} is not a symbol of Categorical({V}): symbols are "
                    f"0..{V - 1}, -1 is missing")

        require((values >= -1) & (values < V), describe)

    def _symbols(self, obs, params, *, batch=False):
        obs = jnp.asarray(obs)
        if len(obs.shape) != 1 + batch:
            raise ValueError(f"obs must have shape {'[B, T]' if batch else '[T]'} (int symbols); got {obs.shape}")
        if obs.dtype == jnp.bool_:
            obs = obs.astype(jnp.int32)
        if not jnp.issubdtype(obs.dtype, jnp.integer):
            raise TypeError(f"obs must be an integer array of symbols in [0, {self.num_symbols}) (-1 missing); "
                            f"got dtype {obs.dtype}")
        if jnp.shape(params.probs)[-1] != self.num_symbols:
            raise ValueError(
                f"params.probs must have shape [K, {self.num_symbols}]; got {jnp.shape(params.probs)}")
        self.check_params(params)
        self.check_observations(obs)
        return obs

    def log_likelihood(self, params: CategoricalParams, obs) -> jax.Array:
        """f32[T, K] = log probs[k, x_t]; 0 where x_t = -1; NaN (the marker, unchecked under jit) where x_t is
        outside [-1, V)."""
        obs = self._symbols(obs, params)
        logp = jnp.log(params.probs)  # [K, V]
        ll = jnp.take(logp.T, jnp.clip(obs, 0, self.num_symbols - 1), axis=0)  # [T, K]
        ll = jnp.where(((obs >= 0) & (obs < self.num_symbols))[:, None], ll, jnp.nan)
        return jnp.where((obs == -1)[:, None], 0.0, ll)

    def step_likelihood(self, params: CategoricalParams, obs):
        """``t -> (probs[:, x_t], 0)``, ones where x_t = -1, NaN where x_t is outside [-1, V) (the marker): a
        row of a [V + 2, K] table, no exponentials."""
        obs = self._symbols(obs, params)
        probs = jnp.asarray(params.probs)
        K, V = probs.shape[0], self.num_symbols
        table = jnp.concatenate([probs.T, jnp.ones((1, K), probs.dtype), jnp.full((1, K), jnp.nan, probs.dtype)], 0)
        idx = jnp.where((obs >= 0) & (obs < V), obs, jnp.where(obs == -1, V, V + 1))
        zero = jnp.zeros((), probs.dtype)
        return lambda t: ScaledLikelihood(lax.dynamic_index_in_dim(table, idx[t], 0, keepdims=False), zero)

    def batch_step_likelihood(self, params: CategoricalParams, obs):
        """`step_likelihood` of B sequences int32[B, T], batch-minor: ``t -> (probs[:, x_t^b] in column b,
        0)``, a [K, B] gather from a [K, V + 2] table (ones for -1, NaN outside [-1, V))."""
        obs = self._symbols(obs, params, batch=True)
        probs = jnp.asarray(params.probs)
        K, V = probs.shape[0], self.num_symbols
        table = jnp.concatenate([probs, jnp.ones((K, 1), probs.dtype), jnp.full((K, 1), jnp.nan, probs.dtype)], 1)
        idx = jnp.where((obs >= 0) & (obs < V), obs, jnp.where(obs == -1, V, V + 1)).T  # [T, B]
        zero = jnp.zeros(obs.shape[:1], probs.dtype)
        return lambda t: ScaledLikelihood(jnp.take(table, lax.dynamic_index_in_dim(idx, t, keepdims=False), axis=1),
                                          zero)

    def batch_step_features(self, obs):
        """``t -> f32[B, V]``, the one-hot symbols of step t of B sequences int32[B, T] (zeros for -1): the
        features whose marginal-weighted sum Σ_t gamma_t ⊗ features_t is `sufficient_stats`, so the
        batch-minor E-step adds them up inside its backward sweep (``gm.temporal.model.batch_expected_counts``)."""
        idx = jnp.asarray(obs).T  # [T, B]
        symbols = jnp.arange(self.num_symbols, dtype=idx.dtype)
        return lambda t: (lax.dynamic_index_in_dim(idx, t, keepdims=False)[:, None] == symbols).astype(
            jnp.result_type(float))

    def sufficient_stats(self, params, obs, marginals):
        """f32[K, V] expected counts Σ_t w_tk [x_t = v] with w = ``marginals`` f32[T, K] (a missing symbol
        counts nowhere).

        On CPU a segment sum of the weight rows by symbol; elsewhere a product with the one-hot
        matrix. In the jitted EM step on CPU the product took 13 ms of a 24 ms iteration (B = 256,
        T = 1000, K = 4), the segment sum 5 ms; on accelerators the product is the fast one.
        """
        obs = jnp.asarray(obs)
        if len(obs.shape) != 1:
            raise ValueError(f"obs must have shape [T] (int symbols); got {obs.shape}")
        _check_marginals(obs.shape[0], marginals)
        V = self.num_symbols

        def by_product(obs, weights):
            return weights.T @ jax.nn.one_hot(obs, V, dtype=weights.dtype)  # -1 -> zeros

        def by_segment(obs, weights):
            seg = jnp.where((obs >= 0) & (obs < V), obs, V)  # V: the discarded segment
            return jax.ops.segment_sum(weights, seg, num_segments=V + 1)[:V].T

        return lax.platform_dependent(obs, marginals, cpu=by_segment, default=by_product)

    def m_step(self, stats, params: CategoricalParams) -> CategoricalParams:
        """MAP rows max(c - 1 + counts, 0), normalised; a state without data keeps its row."""
        counts = jnp.maximum(stats + self.concentration - 1.0, 0.0)
        total = counts.sum(-1, keepdims=True)
        probs = counts / jnp.where(total > 0, total, 1.0)
        return CategoricalParams(_keep_old(probs, params.probs, total[:, 0] > _TINY))

    def log_prior(self, params: CategoricalParams):
        """f32[]: Σ (concentration - 1) log probs, the Dirichlet prior up to a constant (0 for the flat
        prior, also where a probability is 0: 0 log 0 = 0)."""
        return _log_dirichlet(params.probs, self.concentration)

    def sample(self, key, params: CategoricalParams, state):
        """One symbol int32[] from row ``state`` of ``params.probs``."""
        return jax.random.categorical(key, jnp.log(params.probs[state])).astype(jnp.int32)

    def initialize(self, key, num_states: int, obs=None) -> CategoricalParams:
        """Dirichlet(1) rows f32[K, V] (``obs`` is not needed)."""
        return CategoricalParams(jax.random.dirichlet(key, jnp.ones(self.num_symbols), (num_states,)))


# ------------------------------------------------------------------------------------- Gaussian


class GaussianParams(NamedTuple):
    """means: f32[K, D]; covars: f32[K, D] (diagonal) or f32[K, D, D] (full)."""

    means: jax.Array
    covars: jax.Array


def _observed(obs):
    o = ~jnp.isnan(obs)
    return jnp.where(o, obs, 0.0), o.astype(obs.dtype)


def _diag_log_lik(means, covars, x0, o):
    """f32[T, C]: Σ_d o_td log N(x_td; m_cd, v_cd), as three [T, D] x [D, C] products."""
    prec = 1.0 / covars
    quad = (x0 * x0) @ prec.T - 2.0 * x0 @ (means * prec).T
    const = o @ (means * means * prec + jnp.log(covars) + _LOG_2PI).T
    return -0.5 * (quad + const)


def _diag_stats(x0, o, weights):
    return dict(n=weights.T @ o, s1=weights.T @ x0, s2=weights.T @ (x0 * x0))


def _diag_m_step(n, s1, s2, prior, min_covar, old_means, old_covars):
    safe = jnp.maximum(n, _TINY)
    means = s1 / safe
    covars = (prior + s2 - 2.0 * means * s1 + means * means * n) / jnp.maximum(n, 1e-5)
    covars = jnp.maximum(covars, min_covar)
    has = n > _TINY
    return jnp.where(has, means, old_means), jnp.where(has, covars, old_covars)


@dataclasses.dataclass(frozen=True)
class Gaussian:
    """Gaussian emissions x_t ~ N(means[k], covars[k]), ``covariance`` "diag" or "full".

    M-step as hmmlearn's (means_prior = 0, covars_weight = 1): covars = (covars_prior I + S) / N with
    S the weighted scatter around the new mean and N the weight, floored at ``min_covar`` (diagonal).
    """

    dim: int
    covariance: str = "diag"
    covars_prior: float = 1e-2
    min_covar: float = 1e-3

    def __post_init__(self):
        if self.covariance not in ("diag", "full"):
            raise ValueError(f"covariance must be 'diag' or 'full'; got {self.covariance!r}")
        _check_settings(self, dim="positive int", covars_prior=">= 0", min_covar="positive")

    def _variances(self, params):
        c = params.covars
        return c if self.covariance == "diag" else jnp.diagonal(jnp.asarray(c), axis1=-2, axis2=-1)

    def check_params(self, params: GaussianParams, name: str = "params") -> None:
        """Means finite, variances (the diagonal of a full covariance) finite and > 0, every covariance
        entry finite, and each full covariance symmetric positive definite; ``ValueError`` naming
        ``name``, the field, the state (position) and the value (eager; compiled under `checked`)."""
        _check_entries(params.means, f"{name}.means", positive=False)
        _check_entries(params.covars, f"{name}.covars", positive=False)
        _check_entries(_host(self._variances(params)), f"{name}.covars (variances)", positive=True)
        if self.covariance == "full":
            _check_positive_definite(params.covars, f"{name}.covars")

    def params_valid(self, params: GaussianParams) -> jax.Array:
        """bool[]: the traced flag of `check_params`."""
        ok = _all_entries_ok([self._variances(params)], [params.means, params.covars])
        return ok & jnp.all(_positive_definite(params.covars)) if self.covariance == "full" else ok

    @property
    def event_shape(self) -> tuple[int, ...]:
        """``(D,)``: one step's observation is a vector."""
        return (self.dim,)

    def check_observations(self, obs, name: str = "obs") -> None:
        """Every value finite or NaN (missing), or ``ValueError`` naming ``name``, the position and the value."""
        _check_finite(obs, name)

    def _check(self, params, obs):
        if len(jnp.shape(obs)) != 2 or jnp.shape(obs)[1] != self.dim:
            raise ValueError(f"obs must have shape [T, {self.dim}]; got {jnp.shape(obs)}")
        K = jnp.shape(params.means)[0]
        want = (K, self.dim) if self.covariance == "diag" else (K, self.dim, self.dim)
        if jnp.shape(params.means) != (K, self.dim) or jnp.shape(params.covars) != want:
            raise ValueError(
                f"params must have means [K, {self.dim}] and covars {list(want)} for covariance="
                f"{self.covariance!r}; got {jnp.shape(params.means)} and {jnp.shape(params.covars)}")
        self.check_params(params)

    def log_likelihood(self, params: GaussianParams, obs) -> jax.Array:
        """f32[T, K] log N(x_t; means[k], covars[k]) over the observed dimensions of x_t."""
        obs = jnp.asarray(obs, jnp.result_type(float))
        self._check(params, obs)
        self.check_observations(obs)
        x0, o = _observed(obs)
        if self.covariance == "diag":
            return _mark_invalid_rows(_diag_log_lik(params.means, params.covars, x0, o), obs)
        ll = _full_log_lik(params.means, params.covars, x0, o)  # NaN columns for a state whose
        return _mark_invalid_rows(jnp.where(_positive_definite(params.covars), ll, jnp.nan), obs)  # Σ is not SPD

    def sufficient_stats(self, params, obs, marginals):
        """Weighted counts, sums and (outer) squares of the observed values per state: n, s1, s2."""
        obs = jnp.asarray(obs, jnp.result_type(float))
        _check_marginals(obs.shape[0], marginals)
        x0, o = _observed(obs)
        if self.covariance == "diag":
            return _diag_stats(x0, o, marginals)
        complete = jnp.all(o > 0, axis=-1)
        w = marginals * complete[:, None]
        return dict(n=w.sum(0), s1=w.T @ x0, s2=jnp.einsum("tk,td,te->kde", w, x0, x0))

    def m_step(self, stats, params: GaussianParams) -> GaussianParams:
        """hmmlearn's M-step: means s1 / n, covariances (covars_prior I + scatter) / n; a state without
        data keeps its parameters."""
        if self.covariance == "diag":
            means, covars = _diag_m_step(stats["n"], stats["s1"], stats["s2"], self.covars_prior,
                                         self.min_covar, params.means, params.covars)
            return GaussianParams(means, covars)
        n, s1, s2 = stats["n"], stats["s1"], stats["s2"]
        means = s1 / jnp.maximum(n, _TINY)[:, None]
        outer = jnp.einsum("kd,ke->kde", means, s1)
        scatter = s2 - outer - jnp.swapaxes(outer, -1, -2) + n[:, None, None] * jnp.einsum(
            "kd,ke->kde", means, means)
        eye = jnp.eye(self.dim, dtype=means.dtype)
        covars = (self.covars_prior * eye + scatter) / jnp.maximum(n, 1e-5)[:, None, None]
        has = n > _TINY
        return GaussianParams(_keep_old(means, params.means, has), _keep_old(covars, params.covars, has))

    def log_prior(self, params):
        """f32[] zero: the covariance prior enters the M-step only (as in hmmlearn)."""
        return jnp.zeros(())

    def sample(self, key, params: GaussianParams, state):
        """One vector f32[D] from N(means[state], covars[state])."""
        mean = params.means[state]
        if self.covariance == "diag":
            return mean + jnp.sqrt(params.covars[state]) * jax.random.normal(key, (self.dim,))
        chol = jnp.linalg.cholesky(params.covars[state])
        return mean + chol @ jax.random.normal(key, (self.dim,))

    def initialize(self, key, num_states: int, obs) -> GaussianParams:
        """Means at randomly chosen complete observations; covariances the data variance."""
        obs = jnp.asarray(obs).reshape(-1, self.dim)
        complete = jnp.all(~jnp.isnan(obs), axis=-1)
        idx = jax.random.choice(key, obs.shape[0], (num_states,), replace=False,
                                p=complete / jnp.sum(complete))
        var = jnp.nanvar(obs, axis=0) + self.min_covar
        means = obs[idx]
        if self.covariance == "diag":
            covars = jnp.broadcast_to(var, (num_states, self.dim))
        else:
            covars = jnp.broadcast_to(jnp.diag(var), (num_states, self.dim, self.dim))
        return GaussianParams(means, covars)


def _positive_definite(covars) -> jax.Array:
    """bool[K]: covars[k] (f32[K, D, D]) is symmetric (to float32 rounding) and its Cholesky factor is
    finite with a positive diagonal (the test the likelihood itself relies on)."""
    covars = jnp.asarray(covars)
    scale = jnp.max(jnp.abs(jnp.diagonal(covars, axis1=-2, axis2=-1)), -1)[:, None, None]
    symmetric = jnp.all(jnp.abs(covars - jnp.swapaxes(covars, -1, -2)) <= 1e-5 * scale, axis=(-2, -1))
    diag = jnp.diagonal(jnp.linalg.cholesky(covars), axis1=-2, axis2=-1)
    return symmetric & jnp.all(diag > 0, -1)  # NaN (a failed factorisation) compares False


def _check_positive_definite(covars, name: str) -> None:
    """`require` that every covariance is symmetric positive definite, naming the state and, for a
    symmetric matrix, its smallest eigenvalue."""
    values = _host(covars)

    def describe(at):
        if at is None:
            return f"{name} has a matrix that is not symmetric positive definite"
        c = np.asarray(values[at[0]], np.float64)
        if not np.allclose(c, c.T, rtol=1e-5, atol=0.0):
            i, j = (int(x) for x in np.unravel_index(np.argmax(np.abs(c - c.T)), c.shape))
            detail = f"not symmetric: [{i}, {j}] = {c[i, j]:.6g} but [{j}, {i}] = {c[j, i]:.6g}"
        else:
            detail = f"not positive definite: smallest eigenvalue {np.linalg.eigvalsh(c)[0]:.6g}"
        return f"{name}[{at[0]}] (state {at[0]}) is {detail}"

    if np.ndim(values) != 3:
        return  # a shape error, named by the caller
    if is_concrete(values):  # the same factorisation as the likelihood's, run now even inside a trace
        with jax.ensure_compile_time_eval():
            require(np.asarray(_positive_definite(values)), describe)
    else:
        require(_positive_definite(values), describe)


def _full_log_lik(means, covars, x0, o):
    """Full-covariance log N over observed dimensions; complete rows by one Cholesky per state,
    partially observed rows by the marginal trick Σ' = (o o^T) ⊙ Σ + diag(1 - o) (then the missing
    dimensions contribute log N(0; 0, 1) each, which is removed)."""
    D = means.shape[-1]
    chol = jnp.linalg.cholesky(covars)  # [K, D, D]
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), -1)  # [K]
    diff = x0[None, :, :] - means[:, None, :]  # [K, T, D]
    sol = jax.scipy.linalg.solve_triangular(chol, jnp.swapaxes(diff, -1, -2), lower=True)  # [K, D, T]
    ll = -0.5 * (jnp.sum(sol * sol, axis=1) + logdet[:, None] + D * _LOG_2PI)  # [K, T]
    ll = ll.T
    n_obs = jnp.sum(o, -1)
    partial = (n_obs > 0) & (n_obs < D)

    def marginal(_):
        oo = o[:, None, :, None] * o[:, None, None, :]  # [T, 1, D, D]
        sig = oo * covars[None] + jnp.eye(D) * (1.0 - o)[:, None, None, :]  # [T, K, D, D]
        c = jnp.linalg.cholesky(sig)
        d = (x0[:, None, :] - means[None]) * o[:, None, :]
        s = jax.scipy.linalg.solve_triangular(c, d[..., None], lower=True)[..., 0]
        ld = 2.0 * jnp.sum(jnp.log(jnp.diagonal(c, axis1=-2, axis2=-1)), -1)
        return -0.5 * (jnp.sum(s * s, -1) + ld + n_obs[:, None] * _LOG_2PI)

    ll = lax.cond(jnp.any(partial), lambda _: jnp.where(partial[:, None], marginal(None), ll),
                  lambda _: ll, None)
    return jnp.where((n_obs > 0)[:, None], ll, 0.0)


# -------------------------------------------------------------------------------------- Poisson


class PoissonParams(NamedTuple):
    """rates: f32[K, D], independent Poisson rates per dimension."""

    rates: jax.Array


@dataclasses.dataclass(frozen=True)
class Poisson:
    """Counts x_td ~ Poisson(rates[k, d]) (float observations, NaN missing). ``rate_prior``
    (shape a, rate b) is a Gamma prior: MAP rate = (S + a - 1) / (N + b); (1, 0) = maximum likelihood."""

    dim: int
    rate_prior: tuple[float, float] = (1.0, 0.0)

    def __post_init__(self):
        _check_settings(self, dim="positive int")
        a, b = self.rate_prior
        if not (np.isfinite(a) and a > 0 and np.isfinite(b) and b >= 0):
            raise ValueError(f"Poisson.rate_prior must be (shape > 0, rate >= 0), finite; got {self.rate_prior!r}")

    def check_params(self, params: PoissonParams, name: str = "params") -> None:
        """Every rate finite and > 0, or ``ValueError`` naming ``name``, the position and the value."""
        _check_entries(params.rates, f"{name}.rates", positive=True)

    def params_valid(self, params: PoissonParams) -> jax.Array:
        """bool[]: the traced flag of `check_params`."""
        return _all_entries_ok([params.rates])

    @property
    def event_shape(self) -> tuple[int, ...]:
        """``(D,)``: one step's observation is a vector of counts."""
        return (self.dim,)

    def check_observations(self, obs, name: str = "obs") -> None:
        """Every value a finite count >= 0 or NaN (missing), or ``ValueError`` naming ``name``, the position
        and the value."""
        _check_finite(obs, name, counts=True)

    def log_likelihood(self, params: PoissonParams, obs) -> jax.Array:
        """f32[T, K] Σ_d log Poisson(x_td; rates[k, d]) over the observed dimensions."""
        obs = jnp.asarray(obs, jnp.result_type(float))
        if len(obs.shape) != 2 or obs.shape[1] != self.dim:
            raise ValueError(f"obs must have shape [T, {self.dim}]; got {obs.shape}")
        self.check_params(params)
        self.check_observations(obs)
        x0, o = _observed(obs)
        rates = params.rates
        ll = x0 @ jnp.log(rates).T - o @ rates.T - jnp.sum(gammaln(x0 + 1.0) * o, -1, keepdims=True)
        return _mark_invalid_rows(ll, obs, counts=True)

    def sufficient_stats(self, params, obs, marginals):
        """Weighted counts n (observed dimensions) and sums s of the observed values per state."""
        obs = jnp.asarray(obs, jnp.result_type(float))
        x0, o = _observed(obs)
        return dict(n=marginals.T @ o, s=marginals.T @ x0)

    def m_step(self, stats, params: PoissonParams) -> PoissonParams:
        """MAP rates (s + a - 1) / (n + b) under the Gamma(a, b) prior, floored at 1e-6."""
        a, b = self.rate_prior
        n, s = stats["n"], stats["s"]
        rates = jnp.maximum(s + a - 1.0, 0.0) / jnp.maximum(n + b, _TINY)
        rates = jnp.maximum(rates, 1e-6)
        return PoissonParams(jnp.where(n + b > _TINY, rates, params.rates))

    def log_prior(self, params):
        """f32[]: Σ (a - 1) log rates - b rates, the Gamma prior up to a constant."""
        a, b = self.rate_prior
        return _log_dirichlet(params.rates, a) - jnp.sum(b * params.rates)

    def sample(self, key, params: PoissonParams, state):
        """One count vector f32[D] from Poisson(rates[state])."""
        return jax.random.poisson(key, params.rates[state]).astype(jnp.float32)

    def initialize(self, key, num_states: int, obs) -> PoissonParams:
        """Rates: the data mean times a uniform factor in [0.5, 1.5] per state and dimension."""
        mean = jnp.nanmean(jnp.asarray(obs, jnp.float32).reshape(-1, self.dim), axis=0)
        scale = jax.random.uniform(key, (num_states, self.dim), minval=0.5, maxval=1.5)
        return PoissonParams(jnp.maximum(mean * scale, 1e-3))


# ------------------------------------------------------------------------------ Gaussian mixture


class GaussianMixtureParams(NamedTuple):
    """weights f32[K, M]; means f32[K, M, D]; covars f32[K, M, D] (diagonal)."""

    weights: jax.Array
    means: jax.Array
    covars: jax.Array


@dataclasses.dataclass(frozen=True)
class GaussianMixture:
    """Each state emits from a mixture of M diagonal Gaussians:
    p(x | z = k) = Σ_m w_km N(x; μ_km, diag v_km). ``weights_concentration``: Dirichlet prior on w_k."""

    dim: int
    num_components: int
    covars_prior: float = 1e-2
    min_covar: float = 1e-3
    weights_concentration: float = 1.0

    def __post_init__(self):
        _check_settings(self, dim="positive int", num_components="positive int", covars_prior=">= 0",
                        min_covar="positive", weights_concentration="positive")

    def check_params(self, params: GaussianMixtureParams, name: str = "params") -> None:
        """Every row of ``weights`` a distribution, means finite, variances finite and > 0; ``ValueError``
        naming ``name``, the field, the position and the value (eager; compiled under `checked`)."""
        check_probabilities(params.weights, f"{name}.weights", over="the M components")
        _check_entries(params.means, f"{name}.means", positive=False)
        _check_entries(params.covars, f"{name}.covars", positive=True)

    def params_valid(self, params: GaussianMixtureParams) -> jax.Array:
        """bool[]: the traced flag of `check_params`."""
        return rows_valid(params.weights) & _all_entries_ok([params.covars], [params.means])

    @property
    def event_shape(self) -> tuple[int, ...]:
        """``(D,)``: one step's observation is a vector."""
        return (self.dim,)

    def check_observations(self, obs, name: str = "obs") -> None:
        """Every value finite or NaN (missing), or ``ValueError`` naming ``name``, the position and the value."""
        _check_finite(obs, name)

    def _component_ll(self, params, obs):
        obs = jnp.asarray(obs, jnp.result_type(float))
        if len(obs.shape) != 2 or obs.shape[1] != self.dim:
            raise ValueError(f"obs must have shape [T, {self.dim}]; got {obs.shape}")
        self.check_params(params)
        K, M = params.weights.shape
        x0, o = _observed(obs)
        ll = _diag_log_lik(params.means.reshape(K * M, -1), params.covars.reshape(K * M, -1), x0, o)
        return ll.reshape(-1, K, M) + jnp.log(params.weights), x0, o

    def log_likelihood(self, params: GaussianMixtureParams, obs) -> jax.Array:
        """f32[T, K] log Σ_m w_km N(x_t; μ_km, diag v_km) over the observed dimensions."""
        obs = jnp.asarray(obs, jnp.result_type(float))
        comp, _, _ = self._component_ll(params, obs)
        self.check_observations(obs)
        return _mark_invalid_rows(logsumexp(comp, axis=-1), obs)

    def sufficient_stats(self, params, obs, marginals):
        """The mixture's statistics need the current parameters (component responsibilities)."""
        comp, x0, o = self._component_ll(params, obs)
        resp = jax.nn.softmax(comp, axis=-1) * marginals[:, :, None]  # [T, K, M]
        K, M = params.weights.shape
        r = resp.reshape(-1, K * M)
        st = _diag_stats(x0, o, r)
        st["r"] = resp.sum(0)
        return st

    def m_step(self, stats, params: GaussianMixtureParams) -> GaussianMixtureParams:
        """MAP mixture weights (Dirichlet prior), diagonal Gaussian M-step per component."""
        K, M = params.weights.shape
        w = jnp.maximum(stats["r"] + self.weights_concentration - 1.0, 0.0)
        tot = w.sum(-1, keepdims=True)
        weights = _keep_old(w / jnp.where(tot > 0, tot, 1.0), params.weights, tot[:, 0] > _TINY)
        means, covars = _diag_m_step(stats["n"], stats["s1"], stats["s2"], self.covars_prior,
                                     self.min_covar, params.means.reshape(K * M, -1),
                                     params.covars.reshape(K * M, -1))
        return GaussianMixtureParams(weights, means.reshape(K, M, -1), covars.reshape(K, M, -1))

    def log_prior(self, params):
        """f32[]: Σ (weights_concentration - 1) log weights (0 log 0 = 0)."""
        return _log_dirichlet(params.weights, self.weights_concentration)

    def sample(self, key, params: GaussianMixtureParams, state):
        """One vector f32[D]: a component from weights[state], then its Gaussian."""
        k1, k2 = jax.random.split(key)
        m = jax.random.categorical(k1, jnp.log(params.weights[state]))
        return params.means[state, m] + jnp.sqrt(params.covars[state, m]) * jax.random.normal(k2, (self.dim,))

    def initialize(self, key, num_states: int, obs) -> GaussianMixtureParams:
        """Means at randomly chosen complete observations, the data variance, equal weights."""
        obs = jnp.asarray(obs).reshape(-1, self.dim)
        complete = jnp.all(~jnp.isnan(obs), axis=-1)
        KM = num_states * self.num_components
        idx = jax.random.choice(key, obs.shape[0], (KM,), replace=False, p=complete / jnp.sum(complete))
        var = jnp.nanvar(obs, axis=0) + self.min_covar
        means = obs[idx].reshape(num_states, self.num_components, self.dim)
        covars = jnp.broadcast_to(var, means.shape)
        weights = jnp.full((num_states, self.num_components), 1.0 / self.num_components)
        return GaussianMixtureParams(weights, means, covars)
