"""Discrete Bayesian networks: structure + CPTs, exact batched inference, sampling, file formats.

Examples:
    >>> from gm import bn
    >>> net = bn.read_bif("alarm.bif")
    >>> evidence = net.evidence({"HRBP": "HIGH"})
    >>> post = jax.jit(bn.marginals)(net, evidence)                 # {name: f32[card]}
    >>> posts = jax.vmap(bn.marginals, in_axes=(None, 0))(net, batch)  # batch: int32[B, n_vars]
    >>> best = bn.mpe(net, evidence)                                 # gm.types.MPE(states, log_prob)
    >>> x = bn.sample(jax.random.key(0), net, 1000)                 # int32[1000, n_vars]
"""

from gm.bn.tensornet import Plan, contract, contract_max, plan
from gm.bn.independence import d_separated, markov_blanket, to_networkx
from gm.bn.evidence import evidence_matrix, evidence_vectors
from gm.bn.inference import (
    Posterior,
    default_chunk_size,
    log_evidence,
    log_prob,
    map_batched,
    map_query,
    marginals,
    marginals_and_log_evidence,
    mpe,
    network_plan,
    query,
)
from gm.bn.io import format_bif, from_pgmpy, parse_bif, read_bif, to_pgmpy, write_bif
from gm.bn.network import BayesNet, Structure
from gm.bn.pruning import Pruned, prune, pruned_query
from gm.bn.sampling import WeightedSamples, likelihood_weighting, sample, weighted_marginals

__all__ = [
    "BayesNet",
    "Plan",
    "Posterior",
    "Pruned",
    "Structure",
    "WeightedSamples",
    "contract",
    "contract_max",
    "d_separated",
    "default_chunk_size",
    "evidence_matrix",
    "evidence_vectors",
    "format_bif",
    "from_pgmpy",
    "likelihood_weighting",
    "log_evidence",
    "log_prob",
    "map_batched",
    "map_query",
    "markov_blanket",
    "marginals",
    "marginals_and_log_evidence",
    "mpe",
    "network_plan",
    "parse_bif",
    "plan",
    "prune",
    "pruned_query",
    "query",
    "read_bif",
    "sample",
    "to_networkx",
    "to_pgmpy",
    "weighted_marginals",
    "write_bif",
]
