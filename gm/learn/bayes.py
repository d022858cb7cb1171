"""Bayesian estimation with numpyro: posteriors over CPTs and HMM parameters, and over query answers.

Every CPT row gets an independent Dirichlet prior (a `gm.learn.Prior`: BDeu, K2 or explicit
concentrations; `gm.learn.prior_counts` turns it into pseudo-counts). The likelihood of a record is `gm.bn.log_evidence`, so missing values and latent
variables are summed out exactly; NUTS (`numpyro.infer.NUTS`) samples the CPTs on the simplex (numpyro
maps each Dirichlet row to unconstrained space by stick-breaking). With complete data the likelihood is
Π θ^N over the family counts, the same function computed from sufficient statistics (the default when
no value is missing), and the posterior is conjugate: Dirichlet(α + N) row by row
(`dirichlet_posterior` samples it directly, no MCMC needed).

A posterior over parameters gives a posterior over every query: `posterior_query` evaluates
``P(query | evidence)`` under each posterior draw (one `jax.vmap` of `gm.bn.query`) and reports the
posterior mean and an equal-tailed credible interval of each entry.

HMMs (`hmm_model`, `hmm_nuts`): Dirichlet priors on the initial distribution and on each row of the
transition and emission matrices; the likelihood is the forward algorithm of `gm.temporal.hmm.filter`
(states summed out exactly). **Label switching**: the likelihood is invariant under permuting the
hidden states, so the posterior has K! symmetric modes and chains may settle in different ones. We
do not constrain the parameters (an ordering constraint on emissions distorts the posterior when
states are close); `relabel` instead permutes each draw to match a reference by the Hungarian
algorithm on the emission rows (min-cost assignment, scipy's ``linear_sum_assignment``), iterating
the reference to the relabelled posterior mean (Stephens 2000, a pivot-based variant). Report
label-dependent quantities only after relabelling; label-invariant ones (log-likelihood, predictive
probabilities) need none.

Examples:
  >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
  ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
  >>> data = jnp.array([[0, 0], [0, 0], [0, 1], [1, 1]])             # int32[N, n_vars]
  >>> mcmc = nuts(jax.random.key(0), net, data, prior=Prior.k2(), num_warmup=100, num_samples=200)
  >>> nets = posterior_nets(net, mcmc.get_samples())               # CPTs f32[S, ...]
  >>> q = posterior_query(nets, ["Rain"], net.evidence({"Wet": "yes"}), level=0.9)
  >>> q.mean.shape, q.lower.shape, q.upper.shape                   # f32[2] each
  ((2,), (2,), (2,))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gm.bn.inference import log_evidence, query
from gm.bn.network import BayesNet, Structure
from gm.learn.common import Prior
from gm.learn.estimators import as_structure, check_records, family_counts, prior_counts, sample_dirichlet_rows

__all__ = [
    "cpt_model",
    "nuts",
    "posterior_nets",
    "dirichlet_posterior",
    "QueryPosterior",
    "posterior_query",
    "hmm_model",
    "hmm_nuts",
    "relabel",
]


def _numpyro():
    try:
        import numpyro
        import numpyro.distributions as dist
    except ImportError as err:  # pragma: no cover
        raise ImportError("gm.learn.bayes needs the package 'numpyro' (pip install 'gm[bayes]')") from err
    return numpyro, dist


def _sample_cpts(structure: Structure, alpha):
    numpyro, dist = _numpyro()
    cpts = []
    for name, a in zip(structure.names, alpha):
        d = dist.Dirichlet(a)
        if a.ndim > 1:
            d = d.to_event(a.ndim - 1)
        cpts.append(numpyro.sample(name, d))
    return cpts


def cpt_model(structure: Structure, alpha, *, counts=None, data=None, weights=None):
    """numpyro model: Dirichlet(alpha) on every CPT row, then the likelihood of the records.

    Args:
      structure: the network's `Structure`.
      alpha: Dirichlet pseudo-counts per CPT (`gm.learn.prior_counts`).
      counts: family counts (complete data; `gm.learn.family_counts`): factor Σ N log θ.
      data: ``int32[N, n_vars]`` with -1 for missing values: factor Σ_n w_n log P(e_n), exact.
      weights: optional ``f32[N]`` with ``data``.

    Returns:
      None (a numpyro model: sample sites named after the variables, ``f32[*parent cards, card]``
      each, and a ``log_likelihood`` factor).

    Raises:
      ValueError: both or neither of ``counts`` and ``data``.

    Examples:
      >>> from numpyro.handlers import seed, trace
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> data = jnp.array([[0, 0], [0, 0], [0, 1], [1, 1]])             # int32[N, n_vars]
      >>> alpha = prior_counts(net, prior=Prior.k2())
      >>> model = lambda: cpt_model(net.structure, alpha, counts=family_counts(net, data))
      >>> sites = trace(seed(model, jax.random.key(0))).get_trace()
      >>> sites["Wet"]["value"].shape, sites["log_likelihood"]["type"]
      ((2, 2), 'sample')
    """
    numpyro, _ = _numpyro()
    if (counts is None) == (data is None):
        raise ValueError("cpt_model needs exactly one of counts (complete data) or data")
    cpts = _sample_cpts(structure, alpha)
    if counts is not None:
        total = sum(jnp.sum(jnp.where(n > 0, n * jnp.log(jnp.maximum(c, 1e-38)), 0.0)) for n, c in zip(counts, cpts))
    else:
        net = BayesNet(structure, cpts)
        w = jnp.ones(data.shape[0]) if weights is None else weights
        total = jnp.sum(w * jax.vmap(lambda e: log_evidence(net, e))(data))
    numpyro.factor("log_likelihood", total)


def nuts(
    key,
    net_or_structure,
    data,
    *,
    prior: Prior = Prior.k2(),
    weights=None,
    likelihood: str = "auto",
    num_warmup: int = 500,
    num_samples: int = 1000,
    num_chains: int = 1,
    progress_bar: bool = False,
    **nuts_kwargs,
):
    """Run NUTS over the CPTs given records; returns the run ``numpyro.infer.MCMC``.

    Args:
      key: a `jax.random` key.
      net_or_structure: the network (its CPTs are ignored) or its `Structure`.
      data: ``int32[N, n_vars]``, -1 missing.
      prior: the Dirichlet prior of every CPT row, a `gm.learn.Prior` (default K2: alpha = 1).
      weights: optional ``f32[N]``.
      likelihood: ``"counts"`` (sufficient statistics; complete data only), ``"exact"`` (per-record
        `gm.bn.log_evidence`, any missing pattern) or ``"auto"`` (counts when nothing is missing).
      num_warmup, num_samples, num_chains, progress_bar, nuts_kwargs: passed to numpyro.

    Returns:
      The ``MCMC`` object; ``mcmc.get_samples()`` is ``{name: f32[S, *cpt shape]}``, draws of
      p(θ | data) ∝ Π_rows Dir(θ_row; α_row) Π_n P(e_n | θ)^w_n.

    Raises:
      ValueError: an unknown ``likelihood``, or ``"counts"`` with missing values.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> data = jnp.array([[0, 0], [0, 0], [0, 1], [1, 1]])             # int32[N, n_vars]
      >>> mcmc = nuts(jax.random.key(0), net, data, num_warmup=100, num_samples=200)
      >>> mcmc.get_samples()["Wet"].shape                           # f32[S, *cpt shape]
      (200, 2, 2)
    """
    numpyro, _ = _numpyro()
    from numpyro.infer import MCMC, NUTS

    structure = as_structure(net_or_structure)
    data, w = check_records(structure, data, weights=weights)
    alpha = prior_counts(structure, prior=prior)
    if likelihood not in ("auto", "counts", "exact"):
        raise ValueError(f'likelihood must be "auto", "counts" or "exact", got {likelihood!r}')
    missing = bool(np.any(np.asarray(data) < 0))
    if likelihood == "counts" and missing:
        raise ValueError('likelihood="counts" needs complete data (no -1 in data); use "exact"')
    if likelihood == "counts" or (likelihood == "auto" and not missing):
        kwargs = dict(counts=family_counts(structure, data, weights=w))
    else:
        kwargs = dict(data=data, weights=w)

    def model():
        cpt_model(structure, alpha, **kwargs)

    mcmc = MCMC(NUTS(model, **nuts_kwargs), num_warmup=num_warmup, num_samples=num_samples,
                num_chains=num_chains, progress_bar=progress_bar, chain_method="sequential")
    mcmc.run(key)
    return mcmc


def posterior_nets(net_or_structure, samples) -> BayesNet:
    """A `BayesNet` whose CPTs carry a leading sample axis ``[S, ...]`` from ``{name: f32[S, ...]}``.

    ``jax.vmap(f)(nets)`` maps ``f`` over posterior draws.

    Args:
      net_or_structure: the network (its CPTs are ignored) or its `Structure`.
      samples: ``{name: f32[S, *cpt shape]}`` (``mcmc.get_samples()``).

    Returns:
      A `BayesNet` with ``cpts[i]: f32[S, *parent cards, card]``.

    Raises:
      ValueError: naming the variables whose CPTs are missing from ``samples``.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> data = jnp.array([[0, 0], [0, 0], [0, 1], [1, 1]])             # int32[N, n_vars]
      >>> nets = posterior_nets(net, {"Rain": jnp.full((3, 2), 0.5), "Wet": jnp.full((3, 2, 2), 0.5)})
      >>> nets.cpt("Wet").shape, jax.vmap(lambda n: n.cpt("Rain")[0])(nets).tolist()
      ((3, 2, 2), [0.5, 0.5, 0.5])
    """
    structure = as_structure(net_or_structure)
    missing = [n for n in structure.names if n not in samples]
    if missing:
        raise ValueError(f"samples lack the CPTs of {missing}")
    return BayesNet(structure, [jnp.asarray(samples[n]) for n in structure.names])


def dirichlet_posterior(
    key, net_or_structure, data, num_samples: int, *, prior: Prior = Prior.k2(), weights=None,
) -> BayesNet:
    """Exact posterior draws of the CPTs for complete data: each row ~ Dirichlet(alpha + counts).

    Args:
      key: a `jax.random` key.
      net_or_structure: the network (its CPTs are ignored) or its `Structure`.
      data: ``int32[N, n_vars]`` complete records (a -1 is left out of its families' counts).
      num_samples: number of draws S.
      prior: the Dirichlet prior of every row, a `gm.learn.Prior` (default K2).
      weights: optional ``f32[N]`` record weights.

    Returns:
      A `BayesNet` with CPTs ``f32[num_samples, *cpt shape]``.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> data = jnp.array([[0, 0], [0, 0], [0, 1], [1, 1]])             # int32[N, n_vars]
      >>> nets = dirichlet_posterior(jax.random.key(0), net, data, 4000)     # Rain ~ Dir(1 + 3, 1 + 1)
      >>> nets.cpt("Rain").shape, bool(abs(nets.cpt("Rain")[:, 0].mean() - 4 / 6) < 0.02)
      ((4000, 2), True)
    """
    structure = as_structure(net_or_structure)
    alpha = prior_counts(structure, prior=prior)
    counts = family_counts(structure, data, weights=weights)
    cpts = sample_dirichlet_rows(key, [a + n for a, n in zip(alpha, counts)], (num_samples,))
    return BayesNet(structure, cpts)


class QueryPosterior(NamedTuple):
    """Posterior of a query table: ``mean``, ``lower``, ``upper`` (credible bounds), each of the
    query's shape, and ``samples: f32[S, *shape]`` (the query under each draw).

    Attributes:
      mean: ``f32[*shape]``, the posterior mean of each entry of P(names | evidence).
      lower: ``f32[*shape]``, the lower end of the equal-tailed credible interval.
      upper: ``f32[*shape]``, the upper end.
      samples: ``f32[S, *shape]``, the query table under each posterior draw.

    Examples:
      >>> q = QueryPosterior(jnp.array([0.3, 0.7]), jnp.array([0.1, 0.5]), jnp.array([0.5, 0.9]), jnp.zeros((10, 2)))
      >>> mean, lower, upper, samples = q
      >>> samples.shape
      (10, 2)
    """

    mean: jax.Array
    lower: jax.Array
    upper: jax.Array
    samples: jax.Array


def posterior_query(nets: BayesNet, names: Sequence[str], evidence, *, level: float = 0.95) -> QueryPosterior:
    """Posterior mean and equal-tailed credible interval of ``P(names | evidence)``.

    Args:
      nets: a `BayesNet` with a leading sample axis on every CPT (`posterior_nets`,
        `dirichlet_posterior`).
      names: query variables (the table's axes, in this order).
      evidence: ``int32[n_vars]``, -1 unobserved.
      level: credible mass of the interval (0.95: the 2.5% and 97.5% quantiles).

    Returns:
      `QueryPosterior` ``(mean, lower, upper, samples)``: E_θ[P(names | e, θ)] and its quantiles.

    Raises:
      ValueError: ``level`` outside (0, 1).

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> data = jnp.array([[0, 0], [0, 0], [0, 1], [1, 1]])             # int32[N, n_vars]
      >>> nets = dirichlet_posterior(jax.random.key(0), net, data, 500)
      >>> q = posterior_query(nets, ["Rain"], net.evidence({"Wet": "yes"}), level=0.9)
      >>> q.samples.shape, bool(jnp.all((q.lower <= q.mean) & (q.mean <= q.upper)))
      ((500, 2), True)
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    tables = jax.vmap(lambda n: query(n, names, evidence))(nets)
    tail = (1 - level) / 2
    lower, upper = jnp.quantile(tables, jnp.asarray([tail, 1 - tail]), axis=0)
    return QueryPosterior(jnp.mean(tables, axis=0), lower, upper, tables)


# ------------------------------------------------------------------------------------------ HMMs


def _hmm_log_likelihood(initial, transition, emission, obs, mask):
    from gm.temporal.hmm import filter as hmm_filter

    def one(o, m):
        log_lik = jnp.log(emission.T[jnp.maximum(o, 0)])  # f32[T, K]
        log_lik = jnp.where((o >= 0)[:, None], log_lik, 0.0)  # a missing symbol carries no information
        return hmm_filter(initial, transition, log_lik, mask=m).log_evidence

    return jax.vmap(one)(obs, mask)


def hmm_model(obs, num_states: int, num_symbols: int, *, mask=None, concentration: float = 1.0):
    """numpyro model of a categorical HMM with Dirichlet(concentration) priors.

    Args:
      obs: ``int32[B, T]`` symbols (-1: missing).
      num_states, num_symbols: K and V.
      mask: optional ``bool[B, T]``, False on padding.
      concentration: symmetric Dirichlet concentration of every row.

    Sample sites: ``initial f32[K]``, ``transition f32[K, K]``, ``emission f32[K, V]``; the
    likelihood is Σ_b log p(obs_b) by the forward algorithm (`gm.temporal.hmm.filter`).

    Returns:
      None (a numpyro model).

    Raises:
      ValueError: ``obs`` not two-dimensional.

    Examples:
      >>> from numpyro.handlers import seed, trace
      >>> obs = jnp.array([[0, 0, 1, 1, 1], [1, 1, 0, 0, -1]])         # int32[B, T], -1 missing
      >>> sites = trace(seed(lambda: hmm_model(obs, 2, 2), jax.random.key(0))).get_trace()
      >>> sites["transition"]["value"].shape, sites["emission"]["value"].shape
      ((2, 2), (2, 2))
    """
    numpyro, dist = _numpyro()
    obs = jnp.asarray(obs)
    if obs.ndim != 2:
        raise ValueError(f"obs must have shape (B, T), got {obs.shape}")
    mask = jnp.ones(obs.shape, bool) if mask is None else jnp.asarray(mask, bool)
    k, v = num_states, num_symbols
    initial = numpyro.sample("initial", dist.Dirichlet(jnp.full(k, concentration)))
    transition = numpyro.sample("transition", dist.Dirichlet(jnp.full((k, k), concentration)).to_event(1))
    emission = numpyro.sample("emission", dist.Dirichlet(jnp.full((k, v), concentration)).to_event(1))
    numpyro.factor("log_likelihood", jnp.sum(_hmm_log_likelihood(initial, transition, emission, obs, mask)))


def hmm_nuts(key, obs, num_states: int, num_symbols: int, *, mask=None, concentration: float = 1.0,
             num_warmup: int = 300, num_samples: int = 500, num_chains: int = 1, progress_bar: bool = False,
             **nuts_kwargs):
    """NUTS over HMM parameters (`hmm_model`); returns the run ``MCMC``. Relabel draws with `relabel`.

    Args:
      key: a `jax.random` key.
      obs: ``int32[B, T]`` symbols (-1: missing).
      num_states: K.
      num_symbols: V.
      mask: optional ``bool[B, T]``, False on padding.
      concentration: symmetric Dirichlet concentration of every row.
      num_warmup: NUTS warm-up steps.
      num_samples: draws S kept per chain.
      num_chains: chains, run one after another.
      progress_bar: numpyro's progress bar.
      **nuts_kwargs: passed to ``numpyro.infer.NUTS``.

    Returns:
      The ``MCMC`` object; ``get_samples()`` is ``{"initial": f32[S, K], "transition": f32[S, K, K],
      "emission": f32[S, K, V]}``.

    Examples:
      >>> obs = jnp.array([[0, 0, 1, 1, 1], [1, 1, 0, 0, -1]])         # int32[B, T], -1 missing
      >>> mcmc = hmm_nuts(jax.random.key(0), obs, 2, 2, num_warmup=50, num_samples=50)
      >>> draws, perms = relabel(mcmc.get_samples())
      >>> draws["emission"].shape, perms.shape
      ((50, 2, 2), (50, 2))
    """
    _numpyro()
    from numpyro.infer import MCMC, NUTS

    def model():
        hmm_model(obs, num_states, num_symbols, mask=mask, concentration=concentration)

    mcmc = MCMC(NUTS(model, **nuts_kwargs), num_warmup=num_warmup, num_samples=num_samples,
                num_chains=num_chains, progress_bar=progress_bar, chain_method="sequential")
    mcmc.run(key)
    return mcmc


def relabel(samples: dict, reference=None, *, num_rounds: int = 3):
    """Undo label switching: permute the hidden states of every draw to best match a reference.

    Args:
      samples: ``{"initial": f32[S, K], "transition": f32[S, K, K], "emission": f32[S, K, V]}``.
      reference: ``f32[K, V]`` emission matrix fixing the labels (default: the first draw's); after
        each round it is replaced by the mean of the relabelled emissions.
      num_rounds: rounds of (assign, update the reference).

    Returns:
      ``(relabelled samples, permutations int[S, K])``; ``perm[s, j]`` is the old label of new state j:
      perm_s = argmin_perm Σ_j ||reference_j - emission_s[perm(j)]||².

    Raises:
      ValueError: ``reference`` not of shape ``[K, V]``.

    Examples:
      >>> e = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.2, 0.8], [0.9, 0.1]]])   # draw 1 has the labels swapped
      >>> samples = {"initial": np.array([[0.6, 0.4], [0.4, 0.6]]), "emission": e,
      ...            "transition": np.array([np.eye(2), np.eye(2)])}
      >>> out, perms = relabel(samples)
      >>> perms.tolist(), out["initial"].tolist()
      ([[0, 1], [1, 0]], [[0.6, 0.4], [0.6, 0.4]])
    """
    from scipy.optimize import linear_sum_assignment

    emission = np.asarray(samples["emission"], np.float64)
    ref = emission[0] if reference is None else np.asarray(reference, np.float64)
    if ref.shape != emission.shape[1:]:
        raise ValueError(f"reference must have shape {emission.shape[1:]}, got {ref.shape}")
    num_draws, k = emission.shape[:2]
    perms = np.tile(np.arange(k), (num_draws, 1))
    for _ in range(max(1, num_rounds)):
        for s in range(num_draws):
            cost = ((ref[:, None, :] - emission[s][None, :, :]) ** 2).sum(-1)  # [new j, old k]
            perms[s] = linear_sum_assignment(cost)[1]
        new_ref = np.take_along_axis(emission, perms[:, :, None], axis=1).mean(0)
        if reference is not None or np.allclose(new_ref, ref):
            break
        ref = new_ref
    rows = np.arange(num_draws)[:, None]
    out = dict(samples)
    out["emission"] = np.asarray(samples["emission"])[rows, perms]
    out["initial"] = np.asarray(samples["initial"])[rows, perms]
    trans = np.asarray(samples["transition"])[rows, perms]  # rows permuted
    out["transition"] = np.take_along_axis(trans, perms[:, None, :].repeat(k, 1), axis=2)
    return out, perms
