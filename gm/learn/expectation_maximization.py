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

The same idea for temporal models is Baum-Welch: `gm.learn.hmm` (HMMs) and `gm.learn.dbn` (dynamic
Bayesian networks, which also take θ ⊙ ∂ log p(e)/∂θ of their forward scan). Every family follows the
contract of `gm.learn.common`: ``em_step(model, data, *, prior=None, weights=None) -> EMStep`` and a fit
that returns a `FitResult`.

Examples:
  >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
  ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
  >>> data = jnp.array([[0, 0], [-1, 1], [1, 1], [0, -1]])          # int32[N, n_vars], -1 missing
  >>> result = em(random_init(jax.random.key(0), net), data, num_iters=100)
  >>> result.model                                  # the fitted BayesNet
  BayesNet(2 variables, 1 edges)
  >>> bool(np.all(np.diff(result.log_likelihood) >= -1e-5))    # f[iterations + 1], never decreasing
  True
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gm.bn.inference import log_evidence, map_batched
from gm.bn.network import BayesNet
from gm.learn.common import EMStep, FitResult, Prior, check_iterations, iterate_em, normalize_counts
from gm.learn.estimators import as_structure, check_records, prior_counts, sample_dirichlet_rows
from gm.xla import vary_like

__all__ = ["ExpectedFamilyCounts", "expected_counts", "log_likelihood", "log_prior", "em_step", "em", "random_init"]


class ExpectedFamilyCounts(NamedTuple):
    """What `expected_counts` returns.

    Attributes:
      counts: tuple of ``f32[*parent cards, card]``, E[N_i(u, x)] for every variable, in CPT layout.
      log_likelihood: ``f32[]``, Σ_n w_n log P(e_n) under the network the counts were taken from.

    Examples:
      >>> counts, log_likelihood = ExpectedFamilyCounts((jnp.array([2.0, 1.0]),), jnp.array(-1.9))
      >>> counts[0].tolist()
      [2.0, 1.0]
    """

    counts: tuple
    log_likelihood: jax.Array


def _total_log_evidence(net: BayesNet, data, weights, chunk_size):
    per_record = map_batched(log_evidence, net, data, chunk_size=chunk_size)
    return jnp.sum(weights * per_record)


def log_likelihood(net: BayesNet, data, *, weights=None, chunk_size: int | None = None) -> jax.Array:
    """Σ_n w_n log P(e_n) of records ``int32[N, n_vars]`` (-1 summed out exactly).

    Args:
      net: the network.
      data: ``int32[N, n_vars]``, -1 missing.
      weights: optional ``f32[N]`` record weights (default 1).
      chunk_size: records per chunk of the batched inference (`gm.bn.map_batched`).

    Returns:
      ``f32[]``, the observed-data log-likelihood.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> data = jnp.array([[0, 0], [-1, 1], [1, 1], [0, -1]])          # int32[N, n_vars], -1 missing
      >>> print(log_likelihood(net, data))                   # log(0.72 * 0.24 * 0.16 * 0.8)
      -3.8113
    """
    data, w = check_records(net.structure, data, weights=weights)
    return _total_log_evidence(net, data, w, chunk_size)


def expected_counts(net: BayesNet, data, *, weights=None, chunk_size: int | None = None):
    """Expected family counts of every CPT and the log-likelihood, from one gradient.

    Args:
      net: current parameters.
      data: ``int32[N, n_vars]``, -1 missing.
      weights: optional ``f32[N]``.
      chunk_size: records per chunk of the batched inference (`gm.bn.map_batched`).

    Returns:
      `ExpectedFamilyCounts` ``(counts, log_likelihood)``: E[N_i(u, x)] = θ_i(u, x) ∂/∂θ_i(u, x)
      Σ_n w_n log P(e_n), in CPT layout.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> data = jnp.array([[0, 0], [-1, 1], [1, 1], [0, -1]])          # int32[N, n_vars], -1 missing
      >>> (rain, wet), value = expected_counts(net, data)
      >>> print(rain)                                          # 2 + 1/3 records with Rain = no
      [2.3333 1.6667]
      >>> print(wet)
      [[1.9    0.4333]
       [0.     1.6667]]
    """
    data, w = check_records(net.structure, data, weights=weights)
    total = lambda cpts: _total_log_evidence(BayesNet(net.structure, cpts), data, w, chunk_size)  # noqa: E731
    # typed like the records: inside jax.shard_map the gradient with respect to CPTs replicated on every
    # device would be summed over the devices (JAX's transpose of a replicated value), so the counts would
    # be the global ones while the log-likelihood stays this device's
    cpts = vary_like(list(net.cpts), data, w)
    value, grads = jax.value_and_grad(total)(cpts)
    return ExpectedFamilyCounts(tuple(c * g for c, g in zip(cpts, grads)), value)


def log_prior(net: BayesNet, alpha) -> jax.Array:
    """Σ (α - 1) log θ over all CPT entries (the Dirichlet log density up to a constant).

    Args:
      net: the network.
      alpha: one concentration array per CPT, ``f32[*parent cards, card]`` (`gm.learn.prior_counts`).

    Returns:
      ``f32[]``; entries with α = 1 contribute nothing.

    Examples:
      >>> net = BayesNet.from_dict({"Coin": 2}, {}, {"Coin": [0.5, 0.5]})
      >>> print(log_prior(net, [jnp.array([2.0, 2.0])]))     # 2 log 0.5
      -1.3863
    """
    total = jnp.zeros(())
    for cpt, a in zip(net.cpts, alpha):
        total = total + jnp.sum(jnp.where(a != 1.0, (a - 1.0) * jnp.log(jnp.maximum(cpt, 1e-30)), 0.0))
    return total


def _alpha(net: BayesNet, prior: Prior | None):
    """The Dirichlet concentrations of a MAP-EM prior (None: maximum likelihood)."""
    if prior is None:
        return None
    if prior.estimate != "map":
        raise ValueError('EM finds the posterior mode: the prior\'s estimate must be "map", e.g. '
                         f'Prior.bdeu(10.0, estimate="map"); got estimate={prior.estimate!r}')
    return prior_counts(net.structure, prior=prior)


def _m_step(net: BayesNet, counts, alpha) -> BayesNet:
    """Posterior-mode CPTs from expected counts; rows with nothing in them keep their old values."""
    ones = [1.0] * len(counts)
    return BayesNet(net.structure, [normalize_counts(c, alpha=a, fallback=old)
                                    for c, a, old in zip(counts, alpha or ones, net.cpts)])


def em_step(net: BayesNet, data, *, prior: Prior | None = None, weights=None, chunk_size: int | None = None) -> EMStep:
    """One EM iteration: expected family counts (E), then the complete-data posterior mode (M).

    theta_new = (E[N] + alpha - 1)_+ normalised per row (alpha = 1, maximum likelihood, without a prior);
    a row whose expected count is zero keeps its old values.

    Args:
      net: current parameters.
      data: ``int32[N, n_vars]``, -1 missing.
      prior: an optional `gm.learn.Prior` with ``estimate="map"`` (MAP-EM); None is maximum likelihood.
      weights: optional ``f32[N]`` record weights.
      chunk_size: records per chunk of the batched inference.

    Returns:
      `EMStep` ``(model, log_likelihood)``: the new network and Σ_n w_n log P(e_n) under the old one.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> data = jnp.array([[0, 0], [-1, 1], [1, 1], [0, -1]])          # int32[N, n_vars], -1 missing
      >>> step = jax.jit(em_step)(net, data)
      >>> print(step.model.cpt("Rain"), step.log_likelihood)  # E[N_Rain] / 4, and the old log-likelihood
      [0.5833 0.4167] -3.8113
    """
    counts, value = expected_counts(net, data, weights=weights, chunk_size=chunk_size)
    return EMStep(_m_step(net, counts, _alpha(net, prior)), value)


def random_init(key, net_or_structure, *, concentration: float = 1.0, dtype=None) -> BayesNet:
    """A network with CPT rows drawn from a symmetric Dirichlet(concentration) (no zero entries).

    Args:
      key: a `jax.random` key.
      net_or_structure: a `gm.bn.BayesNet` (its CPTs are ignored) or `Structure`.
      concentration: the Dirichlet's concentration on every entry (1: uniform over the simplex).
      dtype: the CPTs' dtype (default: JAX's float).

    Returns:
      A `BayesNet` of the same structure, every entry at least about 1e-6.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> data = jnp.array([[0, 0], [-1, 1], [1, 1], [0, -1]])          # int32[N, n_vars], -1 missing
      >>> init = random_init(jax.random.key(0), net)
      >>> init.cpt("Wet").shape, bool(jnp.allclose(init.cpt("Wet").sum(-1), 1.0))
      ((2, 2), True)
    """
    structure = as_structure(net_or_structure)
    dtype = dtype or jnp.result_type(float)
    concentrations = [jnp.full(tuple(structure.cards[v] for v in fam), concentration, dtype)
                      for fam in structure.families]
    cpts = [jnp.maximum(c, 1e-6) / jnp.sum(jnp.maximum(c, 1e-6), axis=-1, keepdims=True)
            for c in sample_dirichlet_rows(key, concentrations)]
    return BayesNet(structure, cpts)


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def _em_iteration(net, data, weights, alpha, *, chunk_size):
    counts, value = expected_counts(net, data, weights=weights, chunk_size=chunk_size)
    return _m_step(net, counts, alpha), value, value + (log_prior(net, alpha) if alpha is not None else 0.0)


def em(
    net: BayesNet,
    data,
    *,
    num_iters: int = 100,
    tol: float = 1e-7,
    weights=None,
    prior: Prior | None = None,
    chunk_size: int | None = None,
) -> FitResult:
    """Run EM from ``net`` until the relative improvement is below ``tol`` or ``num_iters`` is reached.

    Args:
      net: initial parameters (e.g. `random_init`); its structure is the model's.
      data: ``int32[N, n_vars]``; -1 missing; a latent variable is -1 everywhere.
      num_iters: maximum number of iterations.
      tol: stop when (L_k - L_{k-1}) <= tol * |L_k| for the objective L.
      weights: optional ``f32[N]``.
      prior: an optional `gm.learn.Prior` with ``estimate="map"`` (MAP-EM); None is maximum likelihood.
      chunk_size: records per chunk of batched inference.

    Returns:
      `FitResult` ``(model, log_likelihood, converged)``: ``log_likelihood: f32[K + 1]`` is the
      objective (Σ_n w_n log P(e_n), plus the log Dirichlet prior for MAP-EM) at the start and after
      each of the K iterations run; it never decreases.

    Raises:
      ValueError: ``num_iters < 0``, a negative or non-finite ``tol``, or a prior whose estimate is not ``"map"``.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> data = jnp.array([[0, 0], [-1, 1], [1, 1], [0, -1]])          # int32[N, n_vars], -1 missing
      >>> result = em(random_init(jax.random.key(0), net), data, prior=Prior.k2(estimate="map"))
      >>> model, history, converged = result
      >>> bool(history[-1] >= history[0]), model.cpt("Rain").shape
      (True, (2,))
    """
    check_iterations(num_iters, tol=tol)
    data, w = check_records(net.structure, data, weights=weights)
    alpha = _alpha(net, prior)

    def step(model):
        new, _, objective = _em_iteration(model, data, w, alpha, chunk_size=chunk_size)
        return EMStep(new, objective)

    return iterate_em(step, net, num_iters=num_iters, tol=tol)
