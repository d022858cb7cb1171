"""Expectation-maximisation for Bayesian networks with missing values and latent variables.

A record is a row of ``data: int32[N, n_vars]`` with -1 where the value is missing; a latent variable
is a column that is -1 in every record. The E-step needs the expected family counts

    E[N_i(u, x)] = Σ_n w_n P(U_i = u, X_i = x | e_n),

and these are exactly ``θ_i(u, x) · ∂/∂θ_i(u, x) Σ_n w_n log P(e_n)`` (Darwiche 2003: P(e) is
multilinear in the CPT entries), so one reverse-mode pass through the batched exact inference of
`gm.bn.log_evidence` gives every family posterior of every record at once. The M-step is the complete-
data estimate of `gm.learn.estimators` on those counts (maximum likelihood, or the posterior mode under
Dirichlet pseudo-counts: MAP-EM). Each iteration is one jitted function; the observed-data
log-likelihood (plus the log prior for MAP-EM) never decreases (Dempster, Laird & Rubin 1977).

Rows whose expected count is zero (a parent configuration no record can reach) keep their previous
values. A record with P(e_n) = 0 under the current parameters makes the log-likelihood -inf; start from
CPTs without zeros (`random_init` does).

The same idea for temporal models is Baum-Welch: `gm.temporal.em` (HMMs) and
`gm.temporal.dbn.em_step`, which also takes θ ⊙ ∂ log p(e)/∂θ of its forward scan.

Example:
  >>> init = random_init(jax.random.key(0), structure)
  >>> result = em(init, data, num_iters=100)        # data: int32[N, n_vars], -1 missing
  >>> result.net, result.log_likelihood              # BayesNet, f32[iterations + 1]
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gm.bn.inference import log_evidence, map_batched
from gm.bn.network import BayesNet
from gm.learn.estimators import _check_data, as_structure, prior_counts, sample_dirichlet_rows

__all__ = ["EMResult", "expected_counts", "log_likelihood", "log_prior", "em_step", "em", "random_init"]


class EMResult(NamedTuple):
    """``net``: the fitted `BayesNet`; ``log_likelihood: f32[K + 1]``: Σ_n w_n log P(e_n) at the start
    and after each of the K iterations run; ``log_posterior``: the same plus the log Dirichlet prior
    (the objective of MAP-EM; equal to ``log_likelihood`` up to a constant for maximum likelihood);
    ``converged``: whether the relative improvement fell below ``tol``."""

    net: BayesNet
    log_likelihood: np.ndarray
    log_posterior: np.ndarray
    converged: bool


def _total_log_evidence(net: BayesNet, data, weights, chunk_size):
    per_record = map_batched(log_evidence, net, data, chunk_size=chunk_size)
    return jnp.sum(weights * per_record)


def log_likelihood(net: BayesNet, data, *, weights=None, chunk_size: int | None = None) -> jax.Array:
    """Σ_n w_n log P(e_n) of records ``int32[N, n_vars]`` (-1 summed out exactly)."""
    data, w = _check_data(net.structure, data, weights)
    return _total_log_evidence(net, data, w, chunk_size)


def expected_counts(net: BayesNet, data, *, weights=None, chunk_size: int | None = None):
    """Expected family counts of every CPT and the log-likelihood, from one gradient.

    Args:
      net: current parameters.
      data: ``int32[N, n_vars]``, -1 missing.
      weights: optional ``f32[N]``.
      chunk_size: records per chunk of the batched inference (`gm.bn.map_batched`).

    Returns:
      ``(counts, log_likelihood)``: a tuple of ``f32[*parent cards, card]`` and ``f32[]``.
    """
    data, w = _check_data(net.structure, data, weights)
    total = lambda cpts: _total_log_evidence(BayesNet(net.structure, cpts), data, w, chunk_size)  # noqa: E731
    value, grads = jax.value_and_grad(total)(list(net.cpts))
    return tuple(c * g for c, g in zip(net.cpts, grads)), value


def log_prior(net: BayesNet, alpha) -> jax.Array:
    """Σ (α - 1) log θ over all CPT entries (the Dirichlet log density up to a constant)."""
    total = jnp.zeros(())
    for cpt, a in zip(net.cpts, alpha):
        total = total + jnp.sum(jnp.where(a != 1.0, (a - 1.0) * jnp.log(jnp.maximum(cpt, 1e-30)), 0.0))
    return total


def em_step(net: BayesNet, data, *, weights=None, alpha=None, chunk_size: int | None = None):
    """One EM iteration. ``alpha``: optional Dirichlet pseudo-counts per CPT (MAP-EM); None = ML.

    Returns:
      ``(new net, log-likelihood of the old net)``.
    """
    counts, value = expected_counts(net, data, weights=weights, chunk_size=chunk_size)
    new = []
    for i, (c, old) in enumerate(zip(counts, net.cpts)):
        if alpha is not None:
            c = jnp.maximum(c + alpha[i] - 1.0, 0.0)
        total = jnp.sum(c, axis=-1, keepdims=True)
        ok = total > 0
        new.append(jnp.where(ok, c / jnp.where(ok, total, 1.0), old))
    return BayesNet(net.structure, new), value


def random_init(key, net_or_structure, *, concentration: float = 1.0, dtype=None) -> BayesNet:
    """A network with CPT rows drawn from a symmetric Dirichlet(concentration) (no zero entries)."""
    structure = as_structure(net_or_structure)
    dtype = dtype or jnp.result_type(float)
    concentrations = [jnp.full(tuple(structure.cards[v] for v in fam), concentration, dtype)
                      for fam in structure.families]
    cpts = [jnp.maximum(c, 1e-6) / jnp.sum(jnp.maximum(c, 1e-6), axis=-1, keepdims=True)
            for c in sample_dirichlet_rows(key, concentrations)]
    return BayesNet(structure, cpts)


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def _em_iteration(net, data, weights, alpha, *, chunk_size):
    new, value = em_step(net, data, weights=weights, alpha=alpha, chunk_size=chunk_size)
    return new, value, value + (log_prior(net, alpha) if alpha is not None else 0.0)


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def _objective(net, data, weights, alpha, *, chunk_size):
    value = log_likelihood(net, data, weights=weights, chunk_size=chunk_size)
    return value, value + (log_prior(net, alpha) if alpha is not None else 0.0)


def em(
    net: BayesNet,
    data,
    *,
    num_iters: int = 100,
    tol: float = 1e-7,
    weights=None,
    prior: str | None = None,
    equivalent_sample_size=5.0,
    pseudo_counts=None,
    chunk_size: int | None = None,
) -> EMResult:
    """Run EM from ``net`` until the relative improvement is below ``tol`` or ``num_iters`` is reached.

    Args:
      net: initial parameters (e.g. `random_init`); its structure is the model's.
      data: ``int32[N, n_vars]``; -1 missing; a latent variable is -1 everywhere.
      num_iters: maximum number of iterations.
      tol: stop when (L_k - L_{k-1}) <= tol * |L_k| for the objective L.
      weights: optional ``f32[N]``.
      prior, equivalent_sample_size, pseudo_counts: MAP-EM under Dirichlet priors (see
        `gm.learn.prior_counts`); ``prior=None`` is maximum likelihood.
      chunk_size: records per chunk of batched inference.

    Returns:
      `EMResult`.
    """
    if num_iters < 0:
        raise ValueError(f"num_iters must be >= 0, got {num_iters}")
    data, w = _check_data(net.structure, data, weights)
    alpha = None
    if prior is not None:
        alpha = prior_counts(net.structure, prior=prior, equivalent_sample_size=equivalent_sample_size,
                             pseudo_counts=pseudo_counts)

    lls, objs = [], []
    converged = False
    current = net
    for _ in range(num_iters):
        new, value, objective = _em_iteration(current, data, w, alpha, chunk_size=chunk_size)
        lls.append(float(value))
        objs.append(float(objective))
        if len(objs) > 1 and objs[-1] - objs[-2] <= tol * abs(objs[-1]):
            converged = True
            break
        current = new
    else:
        value, objective = _objective(current, data, w, alpha, chunk_size=chunk_size)
        lls.append(float(value))
        objs.append(float(objective))
    return EMResult(current, np.asarray(lls), np.asarray(objs), converged)
