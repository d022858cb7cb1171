"""The one contract of parameter estimation in ``gm.learn``, shared by every model family.

* `Prior`: a Dirichlet prior over every categorical row (a CPT row of a Bayesian network or of a
  dynamic Bayesian network, an HMM's initial distribution or a transition row).
* `normalize_counts`: rows of (expected) counts, plus the prior, to probabilities; a row with nothing
  in it keeps a fallback row (uniform, or the previous estimate in EM) and never becomes NaN.
* `FitResult`: what every iterative fit returns (the fitted model, the log-likelihood history, whether
  it converged); `EMStep`: what every single EM step returns.

Every family's EM step has the signature ``em_step(model, data, *, prior=None, mask=None, weights=None)
-> EMStep`` (options a family does not use are absent, never positional), and every ``fit`` returns a
`FitResult`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["EMStep", "FitResult", "Prior", "check_iterations", "iterate_em", "normalize_counts"]


class Prior(NamedTuple):
    """Dirichlet prior over every categorical row.

    Attributes:
        kind: ``"dirichlet"`` (concentration ``alpha`` on every entry), ``"bdeu"`` (Bayesian networks:
            alpha = ESS / (card * prod(parent cards)) on every entry, Heckerman et al. 1995) or
            ``"k2"`` (alpha = 1 on every entry, Cooper & Herskovits 1992).
        alpha: for ``"dirichlet"``: one number for every entry, or a mapping from a name to a number or
            an array broadcast to that row block's shape: variable names for Bayesian networks and
            DBNs, ``"initial"`` / ``"transition"`` for HMMs (missing names: 1.0, flat).
        equivalent_sample_size: for ``"bdeu"``: one number, or ``{name: number}``.
        estimate: ``"map"`` (posterior mode: (N + alpha - 1)_+ normalised; alpha = 1 is maximum
            likelihood) or ``"mean"`` (posterior mean: (N + alpha) normalised).

    ``prior=None`` everywhere means maximum likelihood.

    Examples:
        >>> Prior()                      # flat: MAP with alpha = 1 is maximum likelihood
        Prior(kind='dirichlet', alpha=1.0, equivalent_sample_size=5.0, estimate='map')
        >>> Prior.bdeu(5.0).estimate     # pgmpy's BayesianEstimator(prior_type="BDeu", ess=5)
        'mean'
        >>> Prior.dirichlet(2.0).alpha   # one pseudo-count more on every entry (MAP)
        2.0
        >>> Prior.dirichlet({"initial": 1.0, "transition": 10.0}).alpha["transition"]
        10.0
    """

    kind: str = "dirichlet"
    alpha: Any = 1.0
    equivalent_sample_size: Any = 5.0
    estimate: str = "map"

    @classmethod
    def dirichlet(cls, alpha: Any = 1.0, *, estimate: str = "map") -> Prior:
        """Concentration ``alpha`` on every entry (a number or ``{name: number or array}``).

        theta_MAP = (N + alpha - 1)_+ / sum; theta_mean = (N + alpha) / sum.

        Args:
            alpha: one number for every entry, or ``{name: number or array}`` per row block.
            estimate: ``"map"`` (posterior mode) or ``"mean"`` (posterior mean).

        Returns:
            A `Prior` of kind ``"dirichlet"``.

        Examples:
            >>> Prior.dirichlet(2.0, estimate="mean")
            Prior(kind='dirichlet', alpha=2.0, equivalent_sample_size=5.0, estimate='mean')
        """
        return cls("dirichlet", alpha, 5.0, estimate)

    @classmethod
    def bdeu(cls, equivalent_sample_size: Any = 5.0, *, estimate: str = "mean") -> Prior:
        """BDeu with the given equivalent sample size (posterior mean by default, as pgmpy).

        alpha = ESS / (card * prod(parent cards)) on every entry of a CPT.

        Args:
            equivalent_sample_size: one number, or ``{name: number}``.
            estimate: ``"mean"`` (pgmpy's BayesianEstimator) or ``"map"``.

        Returns:
            A `Prior` of kind ``"bdeu"``.

        Examples:
            >>> Prior.bdeu(10.0)
            Prior(kind='bdeu', alpha=1.0, equivalent_sample_size=10.0, estimate='mean')
        """
        return cls("bdeu", 1.0, equivalent_sample_size, estimate)

    @classmethod
    def k2(cls, *, estimate: str = "mean") -> Prior:
        """K2: one pseudo-count on every entry (posterior mean by default, as pgmpy).

        theta_mean = (N + 1) / (N_row + card).

        Args:
            estimate: ``"mean"`` (pgmpy's K2 prior) or ``"map"``.

        Returns:
            A `Prior` of kind ``"k2"``.

        Examples:
            >>> Prior.k2().kind
            'k2'
        """
        return cls("k2", 1.0, 5.0, estimate)


class FitResult(NamedTuple):
    """What every iterative fit returns.

    Attributes:
        model: the fitted model (a `gm.bn.BayesNet`, a `gm.temporal.HMM`, a `gm.temporal.DBN`).
        log_likelihood: float ``[K + 1]``: the data's log-likelihood (plus the log prior for MAP fits)
            under the starting model and after each of the K iterations run.
        converged: whether the relative improvement fell below the fit's ``tol`` before ``num_iters``.

    Examples:
        >>> result = FitResult(model="fitted", log_likelihood=jnp.array([-3.0, -2.5, -2.49]), converged=True)
        >>> model, history, converged = result     # a NamedTuple: unpacks, and is a pytree under jit
        >>> print(history[-1] - history[0])        # the gain over the fit
        0.51
    """

    model: Any
    log_likelihood: Any
    converged: Any


class EMStep(NamedTuple):
    """What every single EM step returns: the updated model, and the data's log-likelihood under the
    model *before* the step (the value EM guarantees never decreases from one step to the next).

    Attributes:
        model: the model after the step (same type as the model passed in).
        log_likelihood: ``f32[]``, log p(data | model before the step) (plus the log prior for MAP steps).

    Examples:
        >>> step = EMStep(model="updated", log_likelihood=jnp.array(-2.5))
        >>> model, log_likelihood = step
        >>> float(log_likelihood)
        -2.5
    """

    model: Any
    log_likelihood: jax.Array


def normalize_counts(counts, *, alpha=1.0, estimate: str = "map", fallback=None) -> jax.Array:
    """Rows of non-negative ``counts`` (the child axis last) plus a Dirichlet(``alpha``) prior, normalised.

    ``estimate="map"``: theta = (N + alpha - 1)_+ / sum; ``"mean"``: theta = (N + alpha) / sum. A row whose
    total is zero becomes ``fallback`` (uniform when None; EM passes the previous estimate), never NaN; a row
    with a NaN count (the marker of an invalid input under `jax.jit`) stays NaN.

    Args:
        counts: ``f[..., card]``, non-negative (expected) counts, the child axis last.
        alpha: Dirichlet concentration, a number or an array broadcast to ``counts``.
        estimate: ``"map"`` or ``"mean"``.
        fallback: ``f[..., card]`` (broadcast) for rows with nothing in them; None: uniform.

    Returns:
        ``f[..., card]``, every row summing to one (or NaN where a count was NaN).

    Raises:
        ValueError: ``estimate`` is neither ``"map"`` nor ``"mean"``.

    Examples:
        >>> normalize_counts(jnp.array([[3.0, 1.0], [0.0, 0.0]])).tolist()
        [[0.75, 0.25], [0.5, 0.5]]
        >>> normalize_counts(jnp.array([3.0, 1.0]), alpha=2.0, estimate="mean").tolist()   # (N + 2) / 8
        [0.625, 0.375]
    """
    counts = jnp.asarray(counts)
    alpha = jnp.asarray(alpha, counts.dtype)
    if estimate == "map":
        c = jnp.maximum(counts + alpha - 1.0, 0.0)
    elif estimate == "mean":
        c = counts + alpha
    else:
        raise ValueError(f"estimate must be 'map' or 'mean', got {estimate!r}")
    total = jnp.sum(c, axis=-1, keepdims=True)
    ok = total > 0
    if fallback is None:
        fallback = jnp.full(c.shape, 1.0 / c.shape[-1], c.dtype)
    else:
        fallback = jnp.broadcast_to(jnp.asarray(fallback, c.dtype), c.shape)
    out = jnp.where(ok, c / jnp.where(ok, total, 1.0), fallback)
    return jnp.where(jnp.isnan(total), jnp.nan, out)  # NaN counts (invalid input under jit) stay NaN


def check_iterations(num_iters, *, tol=None, num_restarts=1) -> None:
    """The loop settings every ``fit`` shares: ``num_iters`` an int >= 0, ``tol`` None or a finite number
    >= 0, ``num_restarts`` an int >= 1; ``ValueError`` naming the setting and its value (a negative
    ``num_iters`` used to run no iteration, a NaN ``tol`` never to converge, silently).

    Examples:
        >>> check_iterations(-1)
        Traceback (most recent call last):
        ...
        ValueError: num_iters must be an int >= 0; got -1
    """
    if not isinstance(num_iters, (int, np.integer)) or isinstance(num_iters, bool) or num_iters < 0:
        raise ValueError(f"num_iters must be an int >= 0; got {num_iters!r}")
    if tol is not None and not (isinstance(tol, (int, float, np.number)) and np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be None or a finite number >= 0; got {tol!r}")
    if not isinstance(num_restarts, (int, np.integer)) or isinstance(num_restarts, bool) or num_restarts < 1:
        raise ValueError(f"num_restarts must be an int >= 1; got {num_restarts!r}")


def iterate_em(step: Callable[[Any], EMStep], model, *, num_iters: int, tol: float | None = None,
               progress: bool = False) -> FitResult:
    """The loop of every ``fit``: ``step`` (one EM iteration, model -> `EMStep`) ``num_iters`` times, or
    until the relative improvement of the objective is at most ``tol``: L_k - L_{k-1} <= tol |L_k|.

    On convergence the model of the last evaluation is returned (its update is dropped); when the
    iterations run out, one more step evaluates the last model's objective (its update is dropped too),
    so the history always ends with the returned model's objective.

    Args:
        step: one jitted EM iteration; model: the start; num_iters: the most iterations;
        tol: None runs them all; progress: a tqdm bar.

    Returns:
        ``FitResult(model, log_likelihood f32[n + 1], converged)``.

    Examples:
        >>> result = iterate_em(lambda m: EMStep(m / 2, -abs(m)), 8.0, num_iters=3)   # a toy "EM"
        >>> result.log_likelihood.tolist(), float(result.model), result.converged
        ([-8.0, -4.0, -2.0, -1.0], 1.0, False)
    """
    check_iterations(num_iters, tol=tol)
    iterations = range(num_iters)
    if progress:
        from tqdm.auto import tqdm

        iterations = tqdm(iterations, desc="EM")
    history, converged = [], False
    for _ in iterations:
        new, objective = step(model)
        history.append(float(objective))
        if tol is not None and len(history) > 1 and history[-1] - history[-2] <= tol * abs(history[-1]):
            converged = True
            break
        model = new
    else:
        history.append(float(step(model).log_likelihood))
    return FitResult(model, jnp.asarray(history), converged)
