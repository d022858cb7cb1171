"""Evidence as data: a network's observed values (and soft likelihoods) turned into the vectors that are
multiplied into its CPTs.

Variable i's evidence vector ``e_i: f[card_i]`` is the one-hot of its observed state, all ones when it is
unobserved (-1), times its soft-evidence likelihood if one is given. Every query of ``gm.bn`` folds
``cpt_i * e_i`` into the network's tensor network, so one compiled plan serves every evidence pattern.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gm.bn.network import BayesNet

__all__ = [
    "Soft",
    "check_evidence",
    "check_evidence_shape",
    "evidence_matrix",
    "evidence_matrix_host",
    "evidence_vectors",
    "safe_log",
    "soft_rows",
]

#: Soft (virtual) evidence: ``{name: f32[card]}`` likelihood vectors, or None.
Soft = Mapping[str, Any] | None


def safe_log(x):
    """``log(x)`` with ``log(0) = -inf`` and a finite gradient (no NaN from ``0 * log 0`` in autodiff).

    >>> safe_log(jnp.array([1.0, 0.0])).tolist()
    [0.0, -inf]
    """
    positive = x > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, x, 1.0)), -jnp.inf)


def check_evidence_shape(net: BayesNet, evidence) -> None:
    """Shape ``(n_vars,)`` and an integer dtype, or an error naming both (``evidence``: any array)."""
    if evidence.shape != (net.n_vars,):
        raise ValueError(
            f"evidence must have shape ({net.n_vars},) (one entry per variable, -1 = unobserved), "
            f"got {evidence.shape}; batch with jax.vmap"
        )
    if not np.issubdtype(evidence.dtype, np.integer):
        raise TypeError(f"evidence must be an integer array, got dtype {evidence.dtype}")


def check_evidence(net: BayesNet, evidence) -> jax.Array:
    """``evidence`` as ``int32[n_vars]`` after `check_evidence_shape` (values are checked by the queries)."""
    evidence = jnp.asarray(evidence)
    check_evidence_shape(net, evidence)
    return evidence.astype(jnp.int32)


def soft_rows(net: BayesNet, likelihoods: Soft, as_array):
    """``[(variable index, likelihood vector)]`` of soft evidence, each vector converted by ``as_array``
    and checked to have the variable's cardinality (the error names the variable)."""
    rows = []
    for name, vec in (likelihoods or {}).items():
        i = net.index(name)
        vec = as_array(vec)
        if vec.shape != (net.cards[i],):
            raise ValueError(f"soft evidence for {name!r} must have shape ({net.cards[i]},), got {vec.shape}")
        rows.append((i, vec))
    return rows


def evidence_matrix(net: BayesNet, evidence, *, soft: Soft = None) -> jax.Array:
    """Evidence vectors of all variables as one zero-padded matrix ``f[n_vars, max_card]``.

    Row i is the one-hot of variable i's observed state (all ones over its states when unobserved),
    times its soft-evidence likelihood if one is given; entries past its cardinality are 0. Built with a
    handful of array ops whatever the network's size (a per-variable loop costs XLA a kernel each).
    """
    evidence = check_evidence(net, evidence)
    dtype = jnp.result_type(*net.cpts) if net.cpts else jnp.float32
    cards = np.asarray(net.cards)
    width = int(cards.max()) if cards.size else 1
    states = np.arange(width)[None, :]
    valid = jnp.asarray(states < cards[:, None], dtype)
    one_hot = (evidence[:, None] == states).astype(dtype)
    mat = jnp.where(evidence[:, None] >= 0, one_hot, valid)
    if soft:
        lik = jnp.ones((net.n_vars, width), dtype)
        for i, vec in soft_rows(net, soft, lambda v: jnp.asarray(v, dtype=dtype)):
            lik = lik.at[i, : net.cards[i]].set(vec)
        mat = mat * lik
    return mat


def evidence_vectors(net: BayesNet, evidence, *, soft: Soft = None) -> list[jax.Array]:
    """Per-variable evidence vectors ``e_i: f[card_i]`` (one-hot, or ones if unobserved, times soft)."""
    mat = evidence_matrix(net, evidence, soft=soft)
    return [mat[i, :card] for i, card in enumerate(net.cards)]


def evidence_matrix_host(net: BayesNet, evidence, *, soft: Soft = None) -> np.ndarray:
    """`evidence_matrix` in numpy float64 (``f64[n_vars, max_card]``), for the host engine: no device work."""
    evidence = np.asarray(evidence)
    check_evidence_shape(net, evidence)
    cards = np.asarray(net.cards)
    width = max(net.cards) if net.cards else 1
    states = np.arange(width)[None, :]
    mat = np.where(evidence[:, None] >= 0, (evidence[:, None] == states), states < cards[:, None]).astype(np.float64)
    for i, vec in soft_rows(net, soft, lambda v: np.asarray(v, np.float64)):
        mat[i, : net.cards[i]] *= vec
    return mat
