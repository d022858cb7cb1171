"""`gm.bn` and `gm.learn`'s batched paths over a mesh: marginals and log-evidence of many evidence sets,
family counts of many records.

Each equals its one-device counterpart (``jax.vmap`` of `gm.bn.marginals`, `gm.learn.family_counts`) with
the batch split over the mesh's devices.

Examples:
    >>> from gm.bn import BayesNet
    >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
    ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
    >>> evs = jnp.array([[-1, 1], [-1, 0]])                     # int32[B, n_vars]
    >>> print(sharded_log_evidence(net, evs))                   # log [0.24, 0.76], mesh: every device
    [-1.4271 -0.2744]
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from gm.parallel.maps import sharded_map
from gm.parallel.mesh import batch_sharding, default_mesh, pad_batch, place, replicated
from gm.validation import is_concrete

__all__ = ["sharded_family_counts", "sharded_log_evidence", "sharded_marginals"]


# -------------------------------------------------------------------------------- applied: gm.bn


def _check_evidence(net, evidence) -> None:
    """Eager (concrete evidence): the dtype and every value, as `gm.bn.marginals`' own call checks them,
    naming the evidence set and the variable; inside the sharded map a bad value could only give the
    impossible-evidence marker. Shapes are checked by the map's trace. A global array spanning other
    processes' devices is not read (one process raising while the others wait in the collective would
    hang the run): its invalid rows give the marker (``log P(e) = -inf``, all-zero marginals)."""
    from gm.bn.evidence import check_evidence_values

    if not getattr(evidence, "is_fully_addressable", True):
        return
    evidence = np.asarray(evidence) if is_concrete(evidence) else evidence
    if not jnp.issubdtype(evidence.dtype, jnp.integer):
        raise TypeError(f"evidence must be an integer array, got dtype {evidence.dtype}")
    if evidence.ndim == 2 and evidence.shape[1] == len(net.cards):
        check_evidence_values(net, evidence)


def sharded_marginals(net, evidence, *, mesh: Mesh | None = None, chunk_size: int | None = None):
    """`gm.bn.marginals` of every evidence set in ``evidence: int32[B, n_vars]``, split over ``mesh``.

    Args:
      net: a `gm.bn.BayesNet` (replicated).
      evidence: ``int32[B, n_vars]``, -1 unobserved.
      mesh: a one-dimensional mesh (default: every device).
      chunk_size: evidence sets per device at a time (bounds memory).

    Returns:
      ``{name: f32[B, card]}``, equal to ``jax.vmap(bn.marginals, in_axes=(None, 0))(net, evidence)``.

    Raises:
      ValueError: (concrete evidence) a value outside ``[-1, card)``, naming the evidence set, the
        variable and the value; wrong shapes. TypeError: non-integer evidence.

    Examples:
      >>> from gm.bn import BayesNet
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> post = sharded_marginals(net, jnp.array([[-1, 1], [-1, 0]]), chunk_size=1)
      >>> print(post["Rain"])
      [[0.3333 0.6667]
       [0.9474 0.0526]]
    """
    from gm.bn import inference

    _check_evidence(net, evidence)
    return sharded_map(inference.marginals, default_mesh(mesh), in_axes=(None, 0), chunk_size=chunk_size)(net, evidence)


def sharded_log_evidence(net, evidence, *, mesh: Mesh | None = None, chunk_size: int | None = None):
    """`gm.bn.log_evidence` of every evidence set in ``evidence: int32[B, n_vars]``: ``f32[B]``.

    Args:
      net: a `gm.bn.BayesNet` (replicated).
      evidence: ``int32[B, n_vars]``, -1 unobserved.
      mesh: a one-dimensional mesh (default: every device).
      chunk_size: evidence sets per device at a time.

    Returns:
      ``f32[B]``, log P(e_b) for every row.

    Raises:
      ValueError / TypeError: as `sharded_marginals`.

    Examples:
      >>> from gm.bn import BayesNet
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> print(sharded_log_evidence(net, jnp.array([[1, -1], [-1, -1]])))      # log 0.2, log 1
      [-1.6094  0.    ]
    """
    from gm.bn import inference

    _check_evidence(net, evidence)
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
      data: ``int32[N, n_vars]`` records (-1 missing).
      weights: optional ``f32[N]`` record weights.
      mesh: a one-dimensional mesh (default: every device).

    Returns:
      A tuple of ``f32[*parent cards, card]`` count tables, as `gm.learn.family_counts`.

    Raises:
      ValueError: data or weights of the wrong shape, a value out of range, a negative or non-finite weight
        (as `gm.learn.family_counts`).

    Examples:
      >>> from gm.learn import normalize_counts
      >>> from gm.bn import BayesNet
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> data = np.array([[0, 0], [0, 0], [0, 1], [1, 1]])
      >>> rain, wet = sharded_family_counts(net, data)
      >>> rain.tolist(), wet.tolist()
      ([3.0, 1.0], [[2.0, 1.0], [0.0, 1.0]])
      >>> print(normalize_counts(wet))                        # the maximum-likelihood P(Wet | Rain)
      [[0.6667 0.3333]
       [0.     1.    ]]
    """
    from gm.learn.estimators import as_structure, check_records

    mesh = default_mesh(mesh)
    structure = as_structure(net_or_structure)
    data, weights = check_records(structure, data, weights=weights)  # shapes, values in range, weights >= 0
    data, weights = np.asarray(data), np.asarray(weights, np.float32)
    data, _ = pad_batch(data, mesh.size)
    weights, _ = pad_batch(weights, mesh.size, fill=0.0)
    sharding = batch_sharding(mesh)
    return _compiled_counts(structure, mesh)(place(data, sharding), place(weights, sharding))


