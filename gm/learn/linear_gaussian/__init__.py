"""Linear-Gaussian Bayesian networks: a float32-correct fit, exact queries, the networks pgmpy ships.

Each variable is a linear function of its parents plus independent Gaussian noise,
``X_i = b_i + Σ_{j ∈ pa(i)} W_ij X_j + ε_i``, ``ε_i ~ N(0, v_i)``; the joint is Gaussian.

* `model`: `GaussianBayesNet` (static `GaussianStructure` + `LinearGaussian` leaves), `joint`,
  `sample` (key first), `log_density` of complete records.
* `fitting`: `fit`, maximum likelihood on the centred, scaled design with an explicit rank cut-off
  and iterative refinement (right in float32 at any N; weighted, vmap-able over bootstrap weights).
* `bayes`: normal-inverse-gamma prior (`NIGPrior`), `fit_map`, exact conjugate draws
  (`sample_nig_posterior`) and numpyro NUTS (`bayes.nuts`) over weights and variances.
* `hybrid`: conditional linear-Gaussian networks (`hybrid.CLGNet`: discrete parents of Gaussian
  children) and `hybrid.discrete_query`, exact discrete posteriors given continuous evidence.
* `io`: pgmpy's JSON format (`read_json`, `write_json`) and `from_pgmpy` / `to_pgmpy`
  (``LinearGaussianBayesianNetwork``); the shipped networks load by name with `gm.data.load_network`.
* `inference`: `posterior`, `query`, `log_evidence`, `sample_posterior` with evidence as data
  (``values f32[n]`` + ``observed bool[n]``), all jit/vmap-able over evidence sets.

Examples:
  >>> parents = ((), (0,), (0, 1))
  >>> model = fit(x, parents)                     # x: f32[N, 3]
  >>> g = joint(model, parents)
  >>> post = condition(g, [2], jnp.array([1.5]))  # Gaussian over variables (0, 1) given X_2 = 1.5
"""

from gm.learn.linear_gaussian import bayes, hybrid
from gm.learn.linear_gaussian.bayes import NIGPrior, fit_map, nig_posterior, sample_nig_posterior
from gm.learn.linear_gaussian.fitting import FitDiagnostics, fit, fit_with_diagnostics
from gm.learn.linear_gaussian.inference import (
    GaussianPosterior,
    condition,
    evidence_from_array,
    log_evidence,
    posterior,
    query,
    sample_posterior,
)
from gm.learn.linear_gaussian.io import format_json, from_pgmpy, parse_json, read_json, to_pgmpy, write_json
from gm.learn.linear_gaussian.model import (
    Evidence,
    Gaussian,
    GaussianBayesNet,
    GaussianStructure,
    LinearGaussian,
    LinearGaussianCPD,
    joint,
    log_density,
    log_prob,
    sample,
)

__all__ = [
    "Evidence",
    "FitDiagnostics",
    "Gaussian",
    "GaussianBayesNet",
    "GaussianPosterior",
    "GaussianStructure",
    "LinearGaussian",
    "LinearGaussianCPD",
    "NIGPrior",
    "bayes",
    "hybrid",
    "condition",
    "evidence_from_array",
    "fit",
    "fit_map",
    "format_json",
    "from_pgmpy",
    "fit_with_diagnostics",
    "joint",
    "log_density",
    "log_evidence",
    "log_prob",
    "nig_posterior",
    "parse_json",
    "posterior",
    "query",
    "read_json",
    "sample",
    "sample_nig_posterior",
    "sample_posterior",
    "to_pgmpy",
    "write_json",
]
