"""gm.learn: parameter (and structure) estimation for every model family of ``gm``, on one contract.

The contract (`gm.learn.common`): one `Prior` (Dirichlet / BDeu / K2, posterior mean or mode), one
`normalize_counts`, every single EM step ``em_step(model, data, *, prior=None, ...) -> EMStep`` and every
iterative fit returning a `FitResult` ``(model, log_likelihood, converged)``.

* Bayesian networks, complete data: `family_counts`, `mle`, `dirichlet`;
* missing values and latent variables: `em`, `em_step` (expected counts from exact inference in ``gm.bn``);
* Bayesian estimation with numpyro: `gm.learn.bayes` (NUTS over CPTs and HMM parameters,
  `posterior_query` with credible intervals);
* HMMs (Baum-Welch, restarts, MAP priors): `gm.learn.hmm`; dynamic Bayesian networks: `gm.learn.dbn`;
* structure learning: `gm.learn.structure`;
* `gm.learn.naive_bayes` and `gm.learn.linear_gaussian`.
"""

from gm.learn import bayes, common, dbn, hmm, linear_gaussian, naive_bayes, structure
from gm.learn.bayes import posterior_query
from gm.learn.common import EMStep, FitResult, Prior, normalize_counts
from gm.learn.estimators import as_structure, dirichlet, family_counts, mle, prior_counts, sample_dirichlet_rows
from gm.learn.expectation_maximization import (
    ExpectedFamilyCounts,
    em,
    em_step,
    expected_counts,
    log_likelihood,
    random_init,
)

__all__ = [
    "EMStep",
    "ExpectedFamilyCounts",
    "FitResult",
    "Prior",
    "as_structure",
    "bayes",
    "common",
    "dbn",
    "dirichlet",
    "em",
    "em_step",
    "expected_counts",
    "family_counts",
    "hmm",
    "linear_gaussian",
    "log_likelihood",
    "mle",
    "naive_bayes",
    "normalize_counts",
    "posterior_query",
    "prior_counts",
    "random_init",
    "sample_dirichlet_rows",
    "structure",
]
