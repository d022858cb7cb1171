"""gm.learn: parameter estimation for Bayesian networks and HMMs.

* complete data: `family_counts`, `mle`, `dirichlet` (BDeu, K2, explicit pseudo-counts; mean or MAP);
* missing values and latent variables: `em` (expected counts from exact inference in ``gm.bn``);
* Bayesian estimation with numpyro: `gm.learn.bayes` (NUTS over CPTs and HMM parameters,
  `posterior_query` with credible intervals);
* `gm.learn.naive_bayes` and `gm.learn.linear_gaussian`.
"""

from gm.learn import bayes, linear_gaussian, naive_bayes, structure
from gm.learn import dbn
from gm.learn import hmm
from gm.learn.bayes import posterior_query
from gm.learn.expectation_maximization import EMResult, em, em_step, expected_counts, log_likelihood, random_init
from gm.learn.estimators import (
    as_structure,
    dirichlet,
    family_counts,
    mle,
    normalize_counts,
    prior_counts,
    sample_dirichlet_rows,
)

__all__ = [
    "EMResult",
    "as_structure",
    "bayes",
    "dirichlet",
    "em",
    "em_step",
    "expected_counts",
    "family_counts",
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
