"""Fitting linear-Gaussian CPDs so that float32 stays right at any N.

The plain route, least squares of X_i on ``[1, X_pa(i)]``, fails in float32 when the data sit far from
zero: with ``x ~ N(20, 1)`` the design's columns ``1`` and ``x`` are nearly parallel, its normal matrix
has condition number ~ 4·10⁵, and a solver's default cut-off (eps·N) drops a real direction. We solve
the same problem in coordinates where it is well posed:

1. **Centre.** Weighted means by two passes (``m = m₁ + mean_w(x − m₁)``; the second pass sums
   centred values, so its rounding error is ~eps·σ, not eps·|μ|). The design becomes
   ``U = [1, X − m]``: the intercept column is orthogonal to the others.
2. **Scale.** The normal matrix ``P = Uᵀ diag(w) U`` (+ prior precision) of each node is scaled to unit
   diagonal (Jacobi), ``S = D⁻¹ P D⁻¹``.
3. **Solve with an explicit rank cut-off.** ``S = V Λ Vᵀ`` (``eigh``); eigen-directions with
   ``λ ≤ rcond · λ_max`` are treated as exactly singular and dropped (pseudo-inverse). Default
   ``rcond = 10 · (k + 1) · eps(dtype)`` for a node with k parents (1.2e-6·(k+1) in float32): the
   scaled columns are then linearly dependent to about √rcond ≈ 0.1-0.4%, at the level where float32
   normal equations stop resolving them. Outside ``jit`` a dropped direction raises a ValueError that
   names the child and the parents involved; inside ``jit``/``vmap`` the minimum-norm solution on the
   kept directions is returned (and `FitDiagnostics.rank` reports the rank).
4. **Refine.** The normal equations square the design's condition number, so the solution is polished
   by iterative refinement on the data: ``γ ← γ + P⁺ (Uᵀ diag(w)(y − Uγ) + prior term)``; the residuals
   ``y − Uγ`` are formed element-wise (no cancellation of large sums). Two rounds by default.
5. **Variance from residuals**, ``v = Σ w r² / Σ w`` (ML), never as ``Σ w y² − (...)`` (which cancels).

All nodes are solved at once: one Gram matrix ``Uᵀ diag(w) U`` over all variables (a ``HIGHEST``
precision matmul, so accelerators do not drop to TF32), then every node's ``(k+1)``-square system is
gathered from it, padded to the largest family, and solved in one vmapped ``eigh``. Record weights make
the fit a weighted least-squares problem, so ``jax.vmap`` over bootstrap weights ``f32[B, N]`` works.

Examples:
    >>> x = jnp.array([[0.0, 1.1], [1.0, 2.9], [2.0, 5.1], [3.0, 6.9]])     # f32[N, 2]: y ~ 1 + 2 x
    >>> params = fit(x + 1e4, [[], [0]])          # far from zero: still right in float32
    >>> print(params.weights[1, 0])
    1.96
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gm.learn.linear_gaussian.model import (
    HIGHEST,
    GaussianStructure,
    LinearGaussian,
    any_tracer,
    as_structure,
    check_data,
    check_weights,
)

__all__ = ["FitDiagnostics", "fit", "fit_with_diagnostics"]


class FitDiagnostics(NamedTuple):
    """``rank int32[n]``: numerical rank of each node's design ``[1, X_pa]`` (full: k + 1).

    Attributes:
      rank: ``int32[n]``; below k + 1 where `fit` (under jit) dropped a direction.

    Examples:
      >>> x = jnp.array([[0.0, 1.1], [1.0, 2.9], [2.0, 5.1], [3.0, 6.9]])     # f32[N, 2]: y ~ 1 + 2 x
      >>> _, diagnostics = fit_with_diagnostics(x, [[], [0]])
      >>> diagnostics.rank.tolist()
      [1, 2]
    """

    rank: jax.Array


class CentredProblem(NamedTuple):
    """Every node's least-squares problem in centred coordinates (internal to the fitters).

    ``mean f32[n]`` (weighted means), ``centred f32[N, n]``, ``design f32[N, n+1]`` (``[1, X − m]``),
    ``weight f32[N]``, ``total`` (Σ w), ``gram f32[n, K, K]`` and ``rhs f32[n, K]`` per node (K = max
    parents + 1, padded with identity / zeros), ``index int[n, K]`` columns of ``design`` and
    ``mask bool[n, K]``.
    """

    mean: jax.Array
    centred: jax.Array
    design: jax.Array
    weight: jax.Array
    total: jax.Array
    gram: jax.Array
    rhs: jax.Array
    index: np.ndarray
    mask: np.ndarray


def family_columns(structure: GaussianStructure) -> tuple[np.ndarray, np.ndarray]:
    """``(index int[n, K], mask bool[n, K])``: column 0 the intercept, then 1 + parent index."""
    n, k = len(structure.names), structure.max_parents + 1
    index, mask = np.zeros((n, k), int), np.zeros((n, k), bool)
    for i, pa in enumerate(structure.parents):
        index[i, : len(pa) + 1] = [0] + [1 + p for p in pa]
        mask[i, : len(pa) + 1] = True
    return index, mask


def centred_problem(structure: GaussianStructure, data, weights=None) -> CentredProblem:
    """Means, the centred design and every node's Gram matrix and right-hand side (see module doc)."""
    n = len(structure.names)
    data = check_data(data, n)
    w = check_weights(weights, data.shape[0], data.dtype)
    total = jnp.sum(w)
    mean = jnp.matmul(w, data, precision=HIGHEST) / total
    mean = mean + jnp.matmul(w, data - mean, precision=HIGHEST) / total
    centred = data - mean
    design = jnp.concatenate([jnp.ones((data.shape[0], 1), data.dtype), centred], axis=1)
    weighted = design * w[:, None]
    gram_all = jnp.matmul(weighted.T, design, precision=HIGHEST)  # [n+1, n+1]
    index, mask = family_columns(structure)
    both = mask[:, :, None] & mask[:, None, :]
    eye = np.broadcast_to(np.eye(index.shape[1]), both.shape)
    gram = jnp.where(both, gram_all[index[:, :, None], index[:, None, :]], eye)
    rhs_all = jnp.matmul(weighted.T, centred, precision=HIGHEST)  # [n+1, n]: Σ w u z_i
    rhs = jnp.where(mask, rhs_all[index, np.arange(n)[:, None]], 0.0)
    return CentredProblem(mean, centred, design, w, total, gram, rhs, index, mask)


class ScaledPinv(NamedTuple):
    """Jacobi-scaled eigen pseudo-inverse of padded normal matrices ``f32[..., K, K]``: column scales
    ``d``, eigenvectors ``vec`` (scaled coordinates), inverted kept eigenvalues ``inv_lam`` (0 where
    dropped) and ``rank`` (real directions kept)."""

    d: jax.Array
    vec: jax.Array
    inv_lam: jax.Array
    rank: jax.Array

    def solve(self, r):
        """``P⁺ r`` for ``r f32[..., K]``."""
        t = jnp.einsum("...ji,...j->...i", self.vec, r / self.d, precision=HIGHEST)
        return jnp.einsum("...ij,...j->...i", self.vec, self.inv_lam * t, precision=HIGHEST) / self.d


def scaled_pinv(gram, mask, rcond) -> ScaledPinv:
    """`ScaledPinv` of one padded normal matrix ``gram f32[K, K]`` (``mask bool[K]``: real columns).

    Eigen-directions of ``D⁻¹ P D⁻¹`` (``D = sqrt(diag P)``) with ``λ ≤ rcond · λ_max`` are dropped.
    """
    d = jnp.sqrt(jnp.diagonal(gram))
    d = jnp.where(d > 0, d, 1.0)
    lam, vec = jnp.linalg.eigh(gram / d[:, None] / d[None, :])
    keep = lam > rcond * lam[-1]
    inv_lam = jnp.where(keep, 1.0 / jnp.where(keep, lam, 1.0), 0.0)
    rank = (jnp.sum(keep) - jnp.sum(~mask)).astype(jnp.int32)
    return ScaledPinv(d, vec, inv_lam, rank)


def solve_nodes(problem: CentredProblem, *, prior_precision=None, prior_rhs=None, rcond=None, refine: int = 2):
    """Solve ``(G_i + P0_i) γ_i = h_i + r0_i`` for every node i, with iterative refinement on the data.

    Returns:
      ``(gamma f32[n, K], residuals f32[N, n], ScaledPinv)``; ``gamma[i]`` holds the centred-intercept
      then the parent coefficients of node i (zero on padding), ``residuals[:, i] = z_i − U_i γ_i``.
    """
    n, k = problem.index.shape
    dtype = problem.centred.dtype
    kids = np.arange(n)
    if rcond is None:
        rcond = 10.0 * problem.mask.sum(1) * float(jnp.finfo(dtype).eps)
    rcond = jnp.broadcast_to(jnp.asarray(rcond, dtype), (n,))
    p0 = jnp.zeros((n, k, k), dtype) if prior_precision is None else prior_precision
    r0 = jnp.zeros((n, k), dtype) if prior_rhs is None else prior_rhs
    mask = jnp.asarray(problem.mask)
    pinv = jax.vmap(scaled_pinv)(problem.gram + p0, mask, rcond)

    def residuals(gamma):
        dense = jnp.zeros((n, n + 1), dtype).at[kids[:, None], problem.index].add(jnp.where(mask, gamma, 0.0))
        return problem.centred - jnp.matmul(problem.design, dense.T, precision=HIGHEST)

    gamma = pinv.solve(problem.rhs + r0)
    weighted = problem.design * problem.weight[:, None]
    for _ in range(refine):
        grad_all = jnp.matmul(weighted.T, residuals(gamma), precision=HIGHEST)  # [n+1, n]
        grad = jnp.where(mask, grad_all[problem.index, kids[:, None]], 0.0)
        grad = grad + r0 - jnp.einsum("nij,nj->ni", p0, gamma, precision=HIGHEST)
        gamma = gamma + pinv.solve(grad)
    return gamma, residuals(gamma), pinv


def to_parameters(structure: GaussianStructure, mean, gamma, variance) -> LinearGaussian:
    """Back from centred coordinates: ``W_i,pa = γ_i,1:``, ``b_i = m_i + γ_i,0 − γ_i,1: · m_pa``.

    ``mean f32[n]`` the data means, ``gamma f32[..., n, K]``, ``variance f32[..., n]``.
    """
    index, mask = family_columns(structure)
    n = index.shape[0]
    kids = np.arange(n)
    coef = jnp.where(mask[:, 1:], gamma[..., 1:], 0.0)
    parent_cols = np.maximum(index[:, 1:] - 1, 0)
    weights = jnp.zeros(gamma.shape[:-2] + (n, n), gamma.dtype).at[..., kids[:, None], parent_cols].add(coef)
    bias = mean + gamma[..., 0] - jnp.sum(coef * mean[parent_cols], axis=-1)
    return LinearGaussian(weights, bias, variance)


def raise_if_singular(structure: GaussianStructure, pinv: ScaledPinv, mask) -> None:
    """Outside jit: ValueError naming the first child whose design lost rank, and the parents involved."""
    if any_tracer(pinv.rank):
        return
    rank, vec, inv_lam = np.asarray(pinv.rank), np.asarray(pinv.vec), np.asarray(pinv.inv_lam)
    full = np.asarray(mask).sum(1)
    for i in np.flatnonzero(rank < full):
        pa = structure.parents[i]
        names = [structure.names[p] for p in pa]
        null = np.abs(vec[i][: len(pa) + 1, inv_lam[i] == 0])  # dropped directions, real columns
        weight = null.max(axis=1)
        involved = [("the intercept" if j == 0 else repr(structure.names[pa[j - 1]]))
                    for j in np.flatnonzero(weight >= 0.05)]
        raise ValueError(
            f"singular design for child {structure.names[i]!r} with parents {names}: rank {rank[i]} of "
            f"{full[i]} columns (intercept + parents) after centring and scaling; the columns of "
            f"{', '.join(involved)} are (numerically) linearly dependent or constant"
        )


def fit(data, parents, *, weights=None, names=None, rcond=None, refine: int = 2) -> LinearGaussian:
    """Maximum-likelihood linear-Gaussian CPDs by (weighted) least squares per node, right in float32.

    Per node i: ``(b_i, W_i) = argmin Σ_n w_n (x_ni − b − W·x_n,pa)²`` and ``v_i = Σ w r² / Σ w`` (the ML
    variance, not the unbiased one), solved on the centred, column-scaled design with an explicit rank
    cut-off and iterative refinement (module docstring).

    Args:
      data: ``f32[N, n]`` complete records.
      parents: ``parents[i]`` the parent indices of variable i, or a `GaussianStructure` /
        `GaussianBayesNet` (static).
      weights: optional ``f32[N]`` non-negative record weights (``jax.vmap`` over ``f32[B, N]`` for a
        bootstrap).
      names: variable names for error messages (default ``X0, X1, ...``).
      rcond: eigenvalue cut-off relative to the largest, per node or scalar (default
        ``10 · (k + 1) · eps``).
      refine: rounds of iterative refinement.

    Returns:
      `LinearGaussian` (``weights f32[n, n]``, ``bias f32[n]``, ``variance f32[n]``).

    Raises:
      ValueError: wrong shapes; a cycle; outside jit, a singular design (naming child and parents).
        Inside jit a singular design yields the minimum-norm coefficients on the kept directions.

    Examples:
      >>> x = jnp.array([[0.0, 1.1], [1.0, 2.9], [2.0, 5.1], [3.0, 6.9]])     # f32[N, 2]: y ~ 1 + 2 x
      >>> params = fit(x, [[], [0]])
      >>> print(params.weights[1, 0], params.bias, params.variance)   # y = 1.06 + 1.96 x + N(0, 0.008)
      1.96 [1.5  1.06] [1.25  0.008]
      >>> boot = jax.random.dirichlet(jax.random.key(0), jnp.ones(4), (8,)) * 4     # f32[B, N] weights
      >>> jax.vmap(lambda w: fit(x, [[], [0]], weights=w))(boot).weights.shape
      (8, 2, 2)
    """
    return fit_with_diagnostics(data, parents, weights=weights, names=names, rcond=rcond, refine=refine)[0]


def fit_with_diagnostics(data, parents, *, weights=None, names=None, rcond=None, refine: int = 2):
    """`fit` plus `FitDiagnostics` (the numerical rank of each node's design).

    Args:
      data: ``f32[N, n]`` complete records.
      parents: parent-index lists, a `GaussianStructure` or a `GaussianBayesNet` (static).
      weights: optional ``f32[N]`` record weights.
      names: variable names for error messages.
      rcond: eigenvalue cut-off relative to the largest (default ``10 · (k + 1) · eps``).
      refine: rounds of iterative refinement.

    Returns:
      ``(LinearGaussian, FitDiagnostics)``.

    Raises:
      ValueError: as `fit`.

    Examples:
      >>> x = jnp.array([[0.0, 1.1], [1.0, 2.9], [2.0, 5.1], [3.0, 6.9]])     # f32[N, 2]: y ~ 1 + 2 x
      >>> params, diagnostics = jax.jit(fit_with_diagnostics, static_argnums=1)(x, ((), (0,)))
      >>> diagnostics.rank.tolist()
      [1, 2]
    """
    structure = as_structure(parents, names)
    data = check_data(data, len(structure.names))
    if weights is not None:
        weights = check_weights(weights, data.shape[0], data.dtype)
    params, pinv = _fit_ml(structure, data, weights, rcond, refine=int(refine))
    raise_if_singular(structure, pinv, family_columns(structure)[1])
    return params, FitDiagnostics(pinv.rank)


@functools.partial(jax.jit, static_argnames=("structure", "refine"))
def _fit_ml(structure, data, weights, rcond, *, refine):
    problem = centred_problem(structure, data, weights)
    gamma, resid, pinv = solve_nodes(problem, rcond=rcond, refine=refine)
    variance = jnp.matmul(problem.weight, resid**2, precision=HIGHEST) / problem.total
    return to_parameters(structure, problem.mean, gamma, variance), pinv
