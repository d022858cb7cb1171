"""EM for every CPT of a dynamic Bayesian network (2-TBN), on the contract of ``gm.learn.common``.

    model = learn.dbn.init(key, template, stickiness=0.5)
    result = learn.dbn.fit(model, evidences, num_iters=60)      # evidences int32[B, T, n_vars], -1 hidden
    result.model, result.log_likelihood                          # DBN, f32[iterations + 1]

E-step: the expected family counts of every CPT, N = θ ⊙ ∂ log p(e) / ∂θ, one reverse-mode pass through
the forward scan of ``gm.temporal.dbn.expected_counts`` (P(e) is multilinear in the CPT entries).
M-step: ``normalize_counts`` with the `Prior`'s concentrations; a row without counts keeps its old
value. A variable whose parents are the same in every slice (an emission, say) has one CPT shared by
the first slice and the later ones: its counts are added up and both CPTs get the same estimate.
``em_step`` is compiled once per (structure, shapes, estimate). EM never decreases log p(e) + log p(model).

Reference: K. Murphy (2002), Dynamic Bayesian Networks, PhD thesis, section 6.2.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gm.learn.common import EMStep, FitResult, Prior, iterate_em, normalize_counts
from gm.temporal.dbn import DBN, Structure, expected_counts
from gm.temporal.dbn.inference import check_evidence, check_model

__all__ = ["CPTConcentrations", "em_step", "fit", "init", "log_prior", "resolve_prior"]


class CPTConcentrations(NamedTuple):
    """Dirichlet concentrations shaped like (or broadcastable to) each CPT: ``initial[i]`` for
    ``model.initial_cpts[i]``, ``transition[i]`` for ``model.transition_cpts[i]``; ``estimate`` is
    ``"map"`` or ``"mean"`` (static)."""

    initial: tuple
    transition: tuple
    estimate: str


def _tied(s: Structure, i: int) -> bool:
    """Whether variable i has the same (same-slice) parents in the first slice and later: its initial
    and transition CPTs are then one parameter (an emission, say)."""
    tp = s.transition_parents[i]
    return all(lag == 0 for _, lag in tp) and tuple(j for j, _ in tp) == s.initial_parents[i]


def resolve_prior(model: DBN, *, prior: Prior | None = None) -> CPTConcentrations:
    """The concentrations a `Prior` puts on every CPT entry of ``model``.

    ``Prior.dirichlet(alpha)``: ``alpha`` everywhere, or ``{name: number or array}`` per slice variable
    (for both its CPTs; missing names: 1); ``Prior.k2()``: 1; ``Prior.bdeu(ess)``: ess / (number of
    entries of the CPT), ``ess`` a number or ``{name: number}``. ``None``: maximum likelihood.

    Examples:
        >>> resolve_prior(model, prior=Prior.dirichlet({"h": 2.0})).transition[0]
        Array(2., dtype=float32)
    """
    prior = Prior() if prior is None else prior
    names = model.names
    dtype = jnp.result_type(float)

    def per_name(value, name, default):
        if isinstance(value, dict):
            unknown = set(value) - set(names)
            if unknown:
                raise ValueError(f"the prior names unknown variables {sorted(unknown)}; variables are {names}")
            return value.get(name, default)
        return value

    def alpha(cpt, name):
        if prior.kind == "dirichlet":
            a = per_name(prior.alpha, name, 1.0)
        elif prior.kind == "k2":
            a = 1.0
        elif prior.kind == "bdeu":
            a = per_name(prior.equivalent_sample_size, name, 5.0) / cpt.size
        else:
            raise ValueError(f"prior.kind must be 'dirichlet', 'bdeu' or 'k2'; got {prior.kind!r}")
        return jnp.asarray(a, dtype)

    if prior.estimate not in ("map", "mean"):
        raise ValueError(f"prior.estimate must be 'map' or 'mean'; got {prior.estimate!r}")
    return CPTConcentrations(tuple(alpha(c, n) for c, n in zip(model.initial_cpts, names)),
                             tuple(alpha(c, n) for c, n in zip(model.transition_cpts, names)), prior.estimate)


def _log_dirichlet(p, concentration):
    c = jnp.asarray(concentration, p.dtype) - 1.0
    return jnp.sum(jnp.where(c != 0, c * jnp.log(p), 0.0))


def _log_prior(model: DBN, alphas: CPTConcentrations):
    s, total = model.structure, jnp.zeros(())
    for i in range(s.num_vars):
        if not _tied(s, i):  # a tied CPT is one parameter: its prior counts once
            total = total + _log_dirichlet(model.initial_cpts[i], alphas.initial[i])
        total = total + _log_dirichlet(model.transition_cpts[i], alphas.transition[i])
    return total


def log_prior(model: DBN, *, prior: Prior | None = None) -> jax.Array:
    """f32[]: log p(model) up to a constant, Σ (alpha - 1) log θ over every CPT entry (tied CPTs once).

    Examples:
        >>> log_prior(model, prior=Prior.dirichlet(2.0))
    """
    return _log_prior(model, resolve_prior(model, prior=prior))


@partial(jax.jit, static_argnames=("estimate",))
def _em_update(model: DBN, evidence, initial_alphas, transition_alphas, *, estimate):
    s = model.structure
    if initial_alphas is None:  # maximum likelihood: constants, so N + 1 - 1 folds to N (see _traced)
        initial_alphas = transition_alphas = (1.0,) * s.num_vars
    ci, ct, value = expected_counts(model, evidence)
    new_i, new_t = [], []
    for i in range(s.num_vars):
        a, b = ci[i], ct[i]
        if _tied(s, i):
            a = b = a + b
        for c, old, alpha, out in ((a, model.initial_cpts[i], initial_alphas[i], new_i),
                                   (b, model.transition_cpts[i], transition_alphas[i], new_t)):
            out.append(normalize_counts(c, alpha=alpha, estimate=estimate, fallback=old))
    alphas = CPTConcentrations(initial_alphas, transition_alphas, estimate)
    return EMStep(DBN(s, new_i, new_t), value + _log_prior(model, alphas))


def _traced(model: DBN, prior: Prior | None):
    """(initial alphas, transition alphas, estimate) for the jitted step: None for maximum likelihood, whose
    concentrations are then compile-time constants; a `Prior`'s are traced (no recompile for new values)."""
    if prior is None:
        return None, None, "map"
    alphas = resolve_prior(model, prior=prior)
    return alphas.initial, alphas.transition, alphas.estimate


def em_step(model: DBN, evidence, *, prior: Prior | None = None) -> EMStep:
    """One EM iteration for every CPT (compiled once per structure, shapes and estimate).

    Args:
        model: the current ``gm.temporal.DBN``.
        evidence: int32[B, T, n_vars] (or one sequence int32[T, n_vars]); -1 unobserved.
        prior: a ``gm.learn.Prior`` on every CPT row (`resolve_prior`); None is maximum likelihood.

    Returns:
        ``EMStep(model, log_likelihood)``: the updated DBN, and Σ log p(e) + log p(model) of the model
        passed in (the log-likelihood alone for ``prior=None``).

    Examples:
        >>> model, objective = em_step(model, evidences, prior=Prior.dirichlet(2.0))
    """
    model = check_model(model)
    evidence = check_evidence(model, evidence)
    initial_alphas, transition_alphas, estimate = _traced(model, prior)
    return _em_update(model, evidence, initial_alphas, transition_alphas, estimate=estimate)


def fit(model: DBN, evidence, *, num_iters: int = 50, prior: Prior | None = None,
        tol: float | None = None) -> FitResult:
    """Runs ``em_step`` ``num_iters`` times, or until the relative improvement of the objective is at most
    ``tol`` (then the model of that evaluation is returned, and ``converged`` is True).

    Returns:
        ``FitResult(model, log_likelihood f32[n + 1], converged)``: the objective of the start and of the
        model after each of the n iterations run (non-decreasing); the last entry is the returned model's.

    Examples:
        >>> result = fit(init(key, template, stickiness=0.5), evidences, num_iters=60)
    """
    model = check_model(model)
    evidence = check_evidence(model, evidence)
    initial_alphas, transition_alphas, estimate = _traced(model, prior)

    def step(m):
        return _em_update(m, evidence, initial_alphas, transition_alphas, estimate=estimate)

    return iterate_em(step, model, num_iters=num_iters, tol=tol)


def init(key, model: DBN, *, stickiness: float = 0.0) -> DBN:
    """A DBN of the same structure with Dirichlet(1) CPT rows; ``stickiness`` mixes the identity into
    CPTs whose child is its own previous-slice value (h_t | h_{t-1}, ...).

    Args:
        key: a ``jax.random`` key; model: the template (its structure and CPT shapes are kept);
        stickiness: weight of the identity, in [0, 1].

    Examples:
        >>> start = init(jax.random.key(0), dbn.coupled_hmm(...), stickiness=0.5)
    """
    s = model.structure
    leaves = list(model.initial_cpts) + list(model.transition_cpts)
    keys = jax.random.split(key, len(leaves))
    new = [jax.random.dirichlet(k, jnp.ones(c.shape[-1]), c.shape[:-1]) for k, c in zip(keys, leaves)]
    n = s.num_vars
    for i in range(n):
        tp = s.transition_parents[i]
        if (i, 1) in tp and stickiness > 0:
            axis = tp.index((i, 1))
            card = s.cards[i]
            eye_shape = [1] * (len(tp) + 1)
            eye_shape[axis] = card
            eye_shape[-1] = card
            eye = jnp.eye(card).reshape(eye_shape)
            new[n + i] = (1 - stickiness) * new[n + i] + stickiness * jnp.broadcast_to(eye, new[n + i].shape)
    return DBN(s, new[:n], new[n:])
