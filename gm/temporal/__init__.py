"""gm.temporal: hidden Markov models and dynamic Bayesian networks.

Inference works on per-step log-likelihoods ``f32[T, K]`` (any emission family); see ``gm.temporal.hmm``.
``posterior(family, params, obs)`` smooths straight from observations, computing each step's likelihood
inside the loop.
"""

from gm.temporal.hmm import (
    ExpectedCounts,
    Filtered,
    Path,
    Posterior,
    expected_counts,
    filter,
    length_mask,
    parallel_filter,
    parallel_smoother,
    parallel_viterbi,
    sample,
    sample_posterior,
    smoother,
    two_slice_marginals,
    viterbi,
)
from gm.temporal import em, emissions
from gm.temporal.em import HMMParams, Prior, em_step, fit, fit_restarts, fit_scan, init_params, posterior
from gm.temporal.emissions import (
    Categorical,
    CategoricalParams,
    Gaussian,
    GaussianMixture,
    GaussianMixtureParams,
    GaussianParams,
    Poisson,
    PoissonParams,
)
from gm.temporal import dbn
from gm.temporal.dbn import DBN, boltzmann_zipper, coupled_hmm, factorial_hmm, unroll
