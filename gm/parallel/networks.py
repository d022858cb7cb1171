"""`gm.bn` and `gm.learn`'s batched paths over a mesh: marginals and log-evidence of many evidence sets,
family counts of many records."""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax.sharding import Mesh

from gm.parallel.maps import sharded_map
from gm.parallel.mesh import batch_sharding, default_mesh, pad_batch, place, replicated

__all__ = ["sharded_family_counts", "sharded_log_evidence", "sharded_marginals"]


# -------------------------------------------------------------------------------- applied: gm.bn


def sharded_marginals(net, evidence, *, mesh: Mesh | None = None, chunk_size: int | None = None):
    """`gm.bn.marginals` of every evidence set in ``evidence: int32[B, n_vars]``, split over ``mesh``.

    Returns:
      ``{name: f32[B, card]}``, equal to ``jax.vmap(bn.marginals, in_axes=(None, 0))(net, evidence)``.
    """
    from gm.bn import inference

    return sharded_map(inference.marginals, default_mesh(mesh), in_axes=(None, 0), chunk_size=chunk_size)(net, evidence)


def sharded_log_evidence(net, evidence, *, mesh: Mesh | None = None, chunk_size: int | None = None):
    """`gm.bn.log_evidence` of every evidence set in ``evidence: int32[B, n_vars]``: ``f32[B]``."""
    from gm.bn import inference

    return sharded_map(inference.log_evidence, default_mesh(mesh), in_axes=(None, 0),
                       chunk_size=chunk_size)(net, evidence)


# -------------------------------------------------------------------------- applied: gm.learn


@functools.lru_cache(maxsize=64)
def _compiled_counts(structure, mesh: Mesh):
    from gm.learn.estimators import family_counts

    return jax.jit(lambda data, weights: family_counts(structure, data, weights=weights),
                   out_shardings=replicated(mesh))


def sharded_family_counts(net_or_structure, data, *, weights=None, mesh: Mesh | None = None):
    """`gm.learn.family_counts` of records split over ``mesh``: each device scatter-adds its rows, XLA
    all-reduces the tables (replicated result). Padding rows get weight 0.

    Args:
      net_or_structure: a `gm.bn.BayesNet` or its `Structure`.
      data: ``int32[N, n_vars]`` records (-1 missing); weights: optional ``f32[N]``.

    Returns:
      A tuple of ``f32[*parent cards, card]`` count tables, as `gm.learn.family_counts`.

    Example:
      >>> net = learn.mle(net, data)  # single device; sharded: learn.normalize_counts on these counts
      >>> counts = parallel.sharded_family_counts(net, data, mesh=parallel.batch_mesh())
    """
    from gm.learn.estimators import as_structure

    mesh = default_mesh(mesh)
    structure = as_structure(net_or_structure)
    data = np.asarray(data)
    weights = np.ones(data.shape[0], np.float32) if weights is None else np.asarray(weights, np.float32)
    if weights.shape != (data.shape[0],):
        raise ValueError(f"weights must have shape ({data.shape[0]},), got {weights.shape}")
    data, _ = pad_batch(data, mesh.size)
    weights, _ = pad_batch(weights, mesh.size, fill=0.0)
    sharding = batch_sharding(mesh)
    return _compiled_counts(structure, mesh)(place(data, sharding), place(weights, sharding))


