"""gm.temporal: inference in hidden Markov models and dynamic Bayesian networks.

Inference works on per-step log-likelihoods ``f32[T, K]`` (any emission family); see ``gm.temporal.hmm``
(sequential passes) and ``gm.temporal.associative`` (passes parallel over time).
``posterior(family, model, obs)`` smooths an `HMM` straight from observations, computing each step's
likelihood inside the loop (``gm.temporal.model``). Dynamic Bayesian networks: ``gm.temporal.dbn``.
Estimation (Baum-Welch, DBN EM, priors, restarts) lives in ``gm.learn.hmm`` and ``gm.learn.dbn``.
"""

from gm.temporal import associative, chunked, common, dbn, emissions, hmm, model
from gm.temporal.associative import associative_filter, associative_smoother, associative_viterbi
from gm.temporal.common import ExpectedCounts, Filtered, Smoothed, length_mask
from gm.temporal.dbn import DBN, boltzmann_zipper, coupled_hmm, factorial_hmm, unroll
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
from gm.temporal.hmm import (
    Sampled,
    expected_counts,
    filter,
    sample,
    sample_posterior,
    smoother,
    two_slice_marginals,
    viterbi,
)
from gm.temporal.model import HMM, log_likelihood, posterior

__all__ = [
    "Categorical",
    "CategoricalParams",
    "DBN",
    "ExpectedCounts",
    "Filtered",
    "Gaussian",
    "GaussianMixture",
    "GaussianMixtureParams",
    "GaussianParams",
    "HMM",
    "Poisson",
    "PoissonParams",
    "Sampled",
    "Smoothed",
    "associative",
    "associative_filter",
    "associative_smoother",
    "associative_viterbi",
    "boltzmann_zipper",
    "chunked",
    "common",
    "coupled_hmm",
    "dbn",
    "emissions",
    "expected_counts",
    "factorial_hmm",
    "filter",
    "hmm",
    "length_mask",
    "log_likelihood",
    "model",
    "posterior",
    "sample",
    "sample_posterior",
    "smoother",
    "two_slice_marginals",
    "unroll",
    "viterbi",
]
