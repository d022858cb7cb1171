"""Bayesian linear-Gaussian CPDs: a normal-inverse-gamma prior, its MAP, exact posterior draws, NUTS.

Per node i with parents pa (k of them) and coefficients β = (b_i, W_i,pa) (intercept first):

    v_i ~ InvGamma(a₀, b₀),   β | v_i ~ N(β₀, v_i · diag(λ)⁻¹),   λ = (λ_intercept, λ, ..., λ).

A zero precision makes that coordinate's prior flat (the default for the intercept, so that the
prior does not depend on where the data sit). The prior is conjugate: the posterior is NIG with
precision ``P_n = P₀ + Uᵀ diag(w) U``, mean ``β_n = P_n⁻¹ (P₀ β₀ + Uᵀ diag(w) y)``,
``a_n = a₀ + Σw / 2`` and ``b_n = b₀ + ½ [Σ w (y − U β_n)² + (β_n − β₀)ᵀ P₀ (β_n − β₀)]``. The joint
mode (MAP) is ``β = β_n``, ``v = b_n / (a_n + 1 + k₊/2)`` with k₊ the coordinates whose prior precision
is positive. Everything is computed in the centred coordinates of `fitting` (``γ = Aᵀ β`` with the unit
triangular ``A`` that shifts by the means; the prior maps to ``P_γ = A⁻¹ P₀ A⁻ᵀ``), with the same
scaled eigen solve, rank cut-off and iterative refinement, so float32 stays right.

`nuts` runs numpyro's NUTS on the same model: the sampled site per node is the centred coefficient
vector γ (flat base measure plus the exact prior density of β = A⁻ᵀγ as a factor; the map has unit
Jacobian), so the sampler never sees the intercept–slope correlation of far-from-zero data; the
likelihood uses the sufficient statistics ``RSS(γ) = RSS(γ̂) + (γ − γ̂)ᵀ G (γ − γ̂)``.

Examples:
    >>> x = jnp.array([[0.0, 1.1], [1.0, 2.9], [2.0, 5.1], [3.0, 6.9]])     # f32[N, 2]: y ~ 1 + 2 x
    >>> params = fit_map(x, [[], [0]], prior=NIGPrior(precision=1.0))   # the slope shrunk towards 0
    >>> print(params.weights[1, 0])
    1.6333
    >>> draws = sample_nig_posterior(jax.random.key(0), x, [[], [0]], 1000)
    >>> draws.weights.shape                                             # f32[S, n, n]
    (1000, 2, 2)
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gm.learn.linear_gaussian.fitting import (
    CentredProblem,
    centred_problem,
    family_columns,
    raise_if_singular,
    solve_nodes,
    to_parameters,
)
from gm.learn.linear_gaussian.model import HIGHEST, LinearGaussian, as_structure, check_data, check_weights

__all__ = [
    "NIGPrior",
    "NIGPosterior",
    "fit_map",
    "nig_model",
    "nig_posterior",
    "nuts",
    "sample_nig_posterior",
]


class NIGPrior(NamedTuple):
    """Normal-inverse-gamma hyperparameters, shared by every node (scalars) or per node (``f32[n]``).

    Attributes:
      precision: λ of each parent weight (in units of 1/v).
      intercept_precision: λ of the intercept (0: flat).
      mean: the prior mean of each weight.
      intercept_mean: the prior mean of the intercept.
      shape: a₀ of the inverse-gamma prior on the noise variance.
      scale: b₀ of that prior.

    Examples:
      >>> NIGPrior(precision=10.0)          # weights shrunk towards 0 with prior variance v / 10
      NIGPrior(precision=10.0, intercept_precision=0.0, mean=0.0, intercept_mean=0.0, shape=1.0, scale=1.0)
    """

    precision: float = 1.0
    intercept_precision: float = 0.0
    mean: float = 0.0
    intercept_mean: float = 0.0
    shape: float = 1.0
    scale: float = 1.0


class NIGPosterior(NamedTuple):
    """Per-node NIG posterior in centred coordinates (``K`` = max parents + 1, padded).

    v_i ~ InvGamma(shape_i, scale_i), γ_i | v_i ~ N(mean_i, v_i precision_i⁻¹).

    Attributes:
      mean: ``f32[n, K]``, γ_n (intercept first, then the parents' coefficients).
      precision: ``f32[n, K, K]``, P_n.
      shape: ``f32[n]``, a_n.
      scale: ``f32[n]``, b_n.
      centre: ``f32[n]``, the data means that map γ back to (bias, weights).

    Examples:
      >>> x = jnp.array([[0.0, 1.1], [1.0, 2.9], [2.0, 5.1], [3.0, 6.9]])     # f32[N, 2]: y ~ 1 + 2 x
      >>> post = nig_posterior(x, [[], [0]])
      >>> post.mean.shape, post.precision.shape
      ((2, 2), (2, 2, 2))
      >>> print(post.shape)                                           # a_n = a_0 + N / 2
      [3. 3.]
    """

    mean: jax.Array
    precision: jax.Array
    shape: jax.Array
    scale: jax.Array
    centre: jax.Array


def _prior_in_centred_coordinates(problem: CentredProblem, prior: NIGPrior):
    """``(P_γ f32[n, K, K], P_γ γ₀ f32[n, K], k₊ f32[n], β₀ f32[n, K], P_β diag f32[n, K])``."""
    n, k = problem.index.shape
    dtype = problem.centred.dtype
    mask = jnp.asarray(problem.mask)
    lam_w = jnp.broadcast_to(jnp.asarray(prior.precision, dtype), (n,))
    lam_0 = jnp.broadcast_to(jnp.asarray(prior.intercept_precision, dtype), (n,))
    mu_w = jnp.broadcast_to(jnp.asarray(prior.mean, dtype), (n,))
    mu_0 = jnp.broadcast_to(jnp.asarray(prior.intercept_mean, dtype), (n,))
    diag = jnp.where(mask, jnp.concatenate([lam_0[:, None], jnp.broadcast_to(lam_w[:, None], (n, k - 1))], 1), 0.0)
    # the centred problem regresses y − m_y, so the intercept's prior mean shifts by the child's mean
    beta0 = jnp.where(mask, jnp.concatenate([(mu_0 - problem.mean)[:, None],
                                             jnp.broadcast_to(mu_w[:, None], (n, k - 1))], 1), 0.0)
    # A⁻¹ maps a vector y to (y₀, y_x − m_pa y₀): the shift by the parents' means
    parent_mean = jnp.where(mask[:, 1:], problem.mean[np.maximum(problem.index[:, 1:] - 1, 0)], 0.0)
    a_inv = jnp.broadcast_to(jnp.eye(k, dtype=dtype), (n, k, k)).at[:, 1:, 0].set(-parent_mean)
    p_gamma = jnp.einsum("nij,nj,nkj->nik", a_inv, diag, a_inv, precision=HIGHEST)
    r0 = jnp.einsum("nij,nj->ni", a_inv, diag * beta0, precision=HIGHEST)
    k_plus = jnp.sum((diag > 0) & mask, axis=1).astype(dtype)
    return p_gamma, r0, k_plus, beta0, diag


def _check_prior(prior: NIGPrior, n: int) -> NIGPrior:
    prior = NIGPrior(*prior)
    for field in ("precision", "intercept_precision", "shape", "scale"):
        value = getattr(prior, field)
        if not isinstance(value, jax.core.Tracer):
            arr = np.asarray(value, np.float64)
            if arr.shape not in ((), (n,)):
                raise ValueError(f"prior.{field} must be a scalar or have shape ({n},), got {arr.shape}")
            positive = field in ("shape", "scale")
            if np.any(arr < 0) or (positive and np.any(arr <= 0)) or not np.all(np.isfinite(arr)):
                raise ValueError(f"prior.{field} must be {'positive' if positive else 'non-negative'} and finite")
    return prior


@functools.partial(jax.jit, static_argnames=("structure", "refine"))
def _nig(structure, data, weights, prior, rcond, *, refine):
    problem = centred_problem(structure, data, weights)
    p_gamma, r0, k_plus, _, _ = _prior_in_centred_coordinates(problem, prior)
    gamma, resid, pinv = solve_nodes(problem, prior_precision=p_gamma, prior_rhs=r0, rcond=rcond, refine=refine)
    n = len(structure.names)
    # (γ − γ₀)ᵀ P_γ (γ − γ₀) = γᵀP_γγ − 2γᵀr₀ + γ₀ᵀP_γγ₀; the last term is β₀ᵀ P_β β₀
    _, _, _, beta0, diag = _prior_in_centred_coordinates(problem, prior)
    quad = (jnp.einsum("ni,nij,nj->n", gamma, p_gamma, gamma, precision=HIGHEST)
            - 2 * jnp.sum(gamma * r0, axis=1) + jnp.sum(diag * beta0**2, axis=1))
    rss = jnp.matmul(problem.weight, resid**2, precision=HIGHEST)
    shape = jnp.broadcast_to(jnp.asarray(prior.shape, gamma.dtype), (n,)) + problem.total / 2
    scale = jnp.broadcast_to(jnp.asarray(prior.scale, gamma.dtype), (n,)) + 0.5 * (rss + quad)
    post = NIGPosterior(gamma, problem.gram + p_gamma, shape, scale, problem.mean)
    return post, k_plus, pinv


def nig_posterior(data, parents, *, prior: NIGPrior = NIGPrior(), weights=None, names=None, rcond=None,
                  refine: int = 2):
    """The conjugate NIG posterior of every node (`NIGPosterior`) and the fitted problem's metadata.

    Args:
      data: ``f32[N, n]`` complete records.
      parents: index lists or a `GaussianStructure`/`GaussianBayesNet` (static).
      prior: `NIGPrior` (scalars shared by every node, or ``f32[n]`` per node).
      weights: optional ``f32[N]`` record weights.
      names: variable names for error messages.
      rcond: eigenvalue cut-off, as in `gm.learn.linear_gaussian.fit`.
      refine: rounds of iterative refinement.

    Returns:
      `NIGPosterior`: P_n = P₀ + Uᵀ diag(w) U, a_n = a₀ + Σw / 2, b_n as in the module docstring.

    Raises:
      ValueError: (outside jit) a singular posterior precision (only possible with zero prior precision
        on the coordinates at fault), or a bad prior value.

    Examples:
      >>> x = jnp.array([[0.0, 1.1], [1.0, 2.9], [2.0, 5.1], [3.0, 6.9]])     # f32[N, 2]: y ~ 1 + 2 x
      >>> post = nig_posterior(x, [[], [0]], prior=NIGPrior(shape=2.0, scale=0.1))
      >>> print(post.shape)
      [4. 4.]
    """
    structure = as_structure(parents, names)
    data = check_data(data, len(structure.names))
    weights = None if weights is None else check_weights(weights, data.shape[0], data.dtype)
    prior = _check_prior(prior, len(structure.names))
    post, _, pinv = _nig(structure, data, weights, prior, rcond, refine=int(refine))
    raise_if_singular(structure, pinv, family_columns(structure)[1])
    return post


def fit_map(data, parents, *, prior: NIGPrior = NIGPrior(), weights=None, names=None, rcond=None,
            refine: int = 2) -> LinearGaussian:
    """MAP linear-Gaussian CPDs under a normal-inverse-gamma prior (the joint posterior mode).

    ``β = β_n``, ``v = b_n / (a_n + 1 + k₊/2)`` per node (module docstring).

    Args:
      data: ``f32[N, n]``.
      parents: index lists or a `GaussianStructure`/`GaussianBayesNet`.
      prior: `NIGPrior` (scalars shared by every node, or ``f32[n]`` per node).
      weights: optional ``f32[N]`` record weights.
      names: variable names for error messages.
      rcond: eigenvalue cut-off, as in `gm.learn.linear_gaussian.fit`.
      refine: rounds of iterative refinement.

    Returns:
      `LinearGaussian`. With ``precision → 0``, ``shape → −k₊/2 − 1`` and ``scale → 0`` it tends to
      the ML fit.

    Raises:
      ValueError: as `nig_posterior`.

    Examples:
      >>> x = jnp.array([[0.0, 1.1], [1.0, 2.9], [2.0, 5.1], [3.0, 6.9]])     # f32[N, 2]: y ~ 1 + 2 x
      >>> print(fit_map(x, [[], [0]], prior=NIGPrior(precision=1e-6)).weights[1, 0])   # ~ the ML slope
      1.96
    """
    structure = as_structure(parents, names)
    data = check_data(data, len(structure.names))
    weights = None if weights is None else check_weights(weights, data.shape[0], data.dtype)
    prior = _check_prior(prior, len(structure.names))
    post, k_plus, pinv = _nig(structure, data, weights, prior, rcond, refine=int(refine))
    raise_if_singular(structure, pinv, family_columns(structure)[1])
    variance = post.scale / (post.shape + 1 + k_plus / 2)
    return to_parameters(structure, post.centre, post.mean, variance)


def sample_nig_posterior(key, data, parents, num_samples: int, *, prior: NIGPrior = NIGPrior(), weights=None,
                         names=None) -> LinearGaussian:
    """Exact posterior draws: ``v ~ InvGamma(a_n, b_n)``, ``γ | v ~ N(γ_n, v P_n⁻¹)``.

    Args:
      key: a `jax.random` key.
      data: ``f32[N, n]`` complete records.
      parents: index lists or a `GaussianStructure`/`GaussianBayesNet` (static).
      num_samples: the number of draws S (static).
      prior: `NIGPrior`.
      weights: optional ``f32[N]`` record weights.
      names: variable names for error messages.

    Returns:
      `LinearGaussian` with a leading ``[num_samples]`` axis on every leaf (map queries over it with
      ``jax.vmap``).

    Examples:
      >>> x = jnp.array([[0.0, 1.1], [1.0, 2.9], [2.0, 5.1], [3.0, 6.9]])     # f32[N, 2]: y ~ 1 + 2 x
      >>> draws = sample_nig_posterior(jax.random.key(0), x, [[], [0]], 4000, prior=NIGPrior(precision=1e-6))
      >>> bool(abs(draws.weights[:, 1, 0].mean() - 1.96) < 0.02)          # centred on the ML slope
      True
    """
    structure = as_structure(parents, names)
    post = nig_posterior(data, structure, prior=prior, weights=weights)
    return _draw(key, structure, post, num_samples=int(num_samples))


@functools.partial(jax.jit, static_argnames=("structure", "num_samples"))
def _draw(key, structure, post: NIGPosterior, *, num_samples):
    mask = family_columns(structure)[1]
    n, k = post.mean.shape
    k_v, k_g = jax.random.split(key)
    dtype = post.mean.dtype
    variance = post.scale / jax.random.gamma(k_v, post.shape, (num_samples, n), dtype)
    chol = jnp.linalg.cholesky(post.precision)  # P_n = C Cᵀ ⇒ γ = γ_n + √v C⁻ᵀ ε
    eye = jnp.broadcast_to(jnp.eye(k, dtype=dtype), chol.shape)
    chol_inv_t = jax.scipy.linalg.solve_triangular(chol, eye, lower=True, trans="T")  # C⁻ᵀ, once per node
    eps = jax.random.normal(k_g, (num_samples, n, k), dtype)
    noise = jnp.einsum("nij,snj->sni", chol_inv_t, eps, precision=HIGHEST)
    gamma = jnp.where(mask, post.mean + jnp.sqrt(variance)[..., None] * noise, 0.0)
    return to_parameters(structure, post.centre, gamma, variance)


def _numpyro():
    try:
        import numpyro
        import numpyro.distributions as dist
    except ImportError as err:  # pragma: no cover
        raise ImportError("linear_gaussian.bayes.nuts needs the package 'numpyro' (pip install 'gm[bayes]')") from err
    return numpyro, dist


def nig_model(problem: CentredProblem, *, prior: NIGPrior, names):
    """numpyro model: per node, ``variance_<name>`` ~ InvGamma and ``coef_<name>`` (centred γ) with the NIG
    prior density of β = A⁻ᵀγ, and the Gaussian likelihood from the centred sufficient statistics.

    Args:
      problem: the centred least-squares problem (`gm.learn.linear_gaussian.fitting.centred_problem`).
      prior: `NIGPrior`.
      names: the variables' names (the sample sites' suffixes).

    Returns:
      None (a numpyro model): sites ``variance_<name>`` ``f32[]`` and ``coef_<name>`` ``f32[k + 1]``.

    Examples:
      >>> from numpyro.infer.util import log_density
      >>> from gm.learn.linear_gaussian.fitting import centred_problem
      >>> from gm.learn.linear_gaussian.model import GaussianStructure
      >>> x = jnp.array([[0.0, 1.1], [1.0, 2.9], [2.0, 5.1], [3.0, 6.9]])     # f32[N, 2]: y ~ 1 + 2 x
      >>> problem = centred_problem(GaussianStructure(("x", "y"), ((), (0,))), x)
      >>> model = lambda: nig_model(problem, prior=NIGPrior(), names=("x", "y"))
      >>> params = {"variance_x": 1.0, "variance_y": 0.01, "coef_x": jnp.zeros(1), "coef_y": jnp.array([0.0, 1.96])}
      >>> value, sites = log_density(model, (), {}, params)      # the log joint at these parameters
      >>> bool(jnp.isfinite(value)), sites["coef_y"]["value"].shape
      (True, (2,))
    """
    numpyro, dist = _numpyro()
    from numpyro.distributions import constraints

    p_gamma, r0, k_plus, beta0, diag = _prior_in_centred_coordinates(problem, prior)
    ols_gamma, resid, _ = solve_nodes(problem)
    rss_min = jnp.matmul(problem.weight, resid**2, precision=HIGHEST)
    n = len(names)
    shape0 = jnp.broadcast_to(jnp.asarray(prior.shape), (n,))
    scale0 = jnp.broadcast_to(jnp.asarray(prior.scale), (n,))
    gamma0_quad = jnp.sum(diag * beta0**2, axis=1)
    for i, name in enumerate(names):
        m = int(problem.mask[i].sum())
        v = numpyro.sample(f"variance_{name}", dist.InverseGamma(shape0[i], scale0[i]))
        g = numpyro.sample(f"coef_{name}", dist.ImproperUniform(constraints.real_vector, (), (m,)))
        # log N(β; β₀, v P_β⁻¹) over coordinates with positive precision, in γ coordinates
        pg, r, gq = p_gamma[i, :m, :m], r0[i, :m], gamma0_quad[i]
        quad = g @ pg @ g - 2 * g @ r + gq
        logdet = jnp.sum(jnp.where(diag[i, :m] > 0, jnp.log(jnp.where(diag[i, :m] > 0, diag[i, :m], 1.0)), 0.0))
        numpyro.factor(f"prior_{name}", -0.5 * (quad / v + k_plus[i] * jnp.log(2 * jnp.pi * v)) + 0.5 * logdet)
        delta = g - ols_gamma[i, :m]
        rss = rss_min[i] + delta @ problem.gram[i, :m, :m] @ delta
        numpyro.factor(f"likelihood_{name}", -0.5 * (problem.total * jnp.log(2 * jnp.pi * v) + rss / v))


def nuts(key, data, parents, *, prior: NIGPrior = NIGPrior(), weights=None, names=None, num_warmup: int = 500,
         num_samples: int = 1000, num_chains: int = 1, progress_bar: bool = False, **nuts_kwargs):
    """NUTS over every node's weights, bias and noise variance under the NIG prior (numpyro).

    Args:
      key: a `jax.random` key.
      data: ``f32[N, n]`` complete records.
      parents: index lists or a `GaussianStructure`/`GaussianBayesNet` (static).
      prior: `NIGPrior`.
      weights: optional ``f32[N]`` record weights.
      names: variable names (the sample sites' suffixes).
      num_warmup: NUTS warm-up steps.
      num_samples: draws kept per chain.
      num_chains: chains, run one after another.
      progress_bar: numpyro's progress bar.
      **nuts_kwargs: passed to ``numpyro.infer.NUTS``.

    Returns:
      ``(mcmc, draws)``: the run ``numpyro.infer.MCMC`` and a `LinearGaussian` with a leading
      ``[num_samples · num_chains]`` axis (bias and weights mapped back from the centred coordinates).

    Examples:
      >>> x = jnp.array([[0.0, 1.1], [1.0, 2.9], [2.0, 5.1], [3.0, 6.9]])     # f32[N, 2]: y ~ 1 + 2 x
      >>> mcmc, draws = nuts(jax.random.key(0), x, [[], [0]], num_warmup=100, num_samples=100)
      >>> draws.weights.shape, draws.variance.shape
      ((100, 2, 2), (100, 2))
    """
    _numpyro()
    from numpyro.infer import MCMC, NUTS

    structure = as_structure(parents, names)
    data = check_data(data, len(structure.names))
    prior = _check_prior(prior, len(structure.names))
    problem = centred_problem(structure, data, weights)

    def model():
        nig_model(problem, prior=prior, names=structure.names)

    mcmc = MCMC(NUTS(model, **nuts_kwargs), num_warmup=num_warmup, num_samples=num_samples,
                num_chains=num_chains, progress_bar=progress_bar, chain_method="sequential")
    mcmc.run(key)
    samples = mcmc.get_samples()
    n, k = problem.index.shape
    gamma = jnp.stack([jnp.pad(samples[f"coef_{x}"], ((0, 0), (0, k - samples[f"coef_{x}"].shape[1])))
                       for x in structure.names], axis=1)
    variance = jnp.stack([samples[f"variance_{x}"] for x in structure.names], axis=1)
    draws = to_parameters(structure, problem.mean, gamma, variance)
    return mcmc, draws
