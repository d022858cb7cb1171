"""`gm.temporal`'s batched paths over a mesh: smoothing many sequences, Baum-Welch with the sequences
split over devices (the expected counts all-reduced by XLA)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from gm.parallel.maps import sharded_map
from gm.parallel.mesh import batch_sharding, default_mesh, pad_batch, place, replicate, replicated

__all__ = ["sharded_em_step", "sharded_fit", "sharded_smoother"]


# -------------------------------------------------------------------------- applied: gm.temporal


def _smooth(initial, transition, log_lik, mask):
    from gm.temporal.hmm import smoother

    return smoother(initial, transition, log_lik, mask=mask)


def _smooth_unmasked(initial, transition, log_lik):
    return _smooth(initial, transition, log_lik, None)


def sharded_smoother(initial, transition, log_liks, mask=None, *, mesh: Mesh | None = None):
    """`gm.temporal.smoother` of every sequence, split over ``mesh``.

    Args:
      initial: f32[K]; transition: f32[K, K] (shared, replicated).
      log_liks: f32[B, T, K] per-step log-likelihoods.
      mask: optional bool[B, T], False on padding steps.

    Returns:
      ``Posterior(log_evidence f32[B], marginals f32[B, T, K])``.
    """
    mesh = default_mesh(mesh)
    if mask is None:
        return sharded_map(_smooth_unmasked, mesh, in_axes=(None, None, 0))(initial, transition, log_liks)
    return sharded_map(_smooth, mesh, in_axes=(None, None, 0, 0))(initial, transition, log_liks, mask)


@functools.lru_cache(maxsize=64)
def compiled_em_step(family, mesh: Mesh):
    """The jitted Baum-Welch step for ``family`` with the sequences sharded over ``mesh`` and the
    parameters and result replicated (cached per family and mesh; its HLO shows the all-reduce)."""
    from gm.temporal import em

    bs, rep = batch_sharding(mesh), replicated(mesh)
    return jax.jit(functools.partial(em._em_step, family), in_shardings=(rep, bs, bs, rep), out_shardings=rep)


def sharded_em_step(family, params, obs, mask=None, *, mesh: Mesh | None = None, prior=None):
    """One Baum-Welch iteration (`gm.temporal.em_step`) with the sequences split over ``mesh``.

    The E-step runs on each device's sequences; the expected counts are summed across devices by the
    all-reduce XLA inserts for the batch sums, and the M-step result is replicated. Padding sequences
    are fully masked, so they add nothing.

    Args:
      family: the emission family (static).
      params: ``HMMParams`` (replicated).
      obs: observations with leading [B, T] axes.
      mask: optional bool[B, T].
      mesh: the mesh (default: all devices).
      prior: ``Prior`` (default flat).

    Returns:
      ``(new params, log p(obs | params), log p(params))`` as `gm.temporal.em_step`.
    """
    from gm.temporal import em

    mesh = default_mesh(mesh)
    obs = jnp.asarray(obs)
    if obs.ndim < 2:
        raise ValueError(f"obs must have leading [B, T] axes, got shape {obs.shape}")
    if mask is None:
        mask = np.ones(obs.shape[:2], bool)
    obs, n = pad_batch(obs, mesh.size)
    mask, _ = pad_batch(jnp.asarray(mask, bool), mesh.size, fill=False)
    bs = batch_sharding(mesh)
    return compiled_em_step(family, mesh)(replicate(params, mesh), place(obs, bs), place(mask, bs),
                                           replicate(em.Prior() if prior is None else prior, mesh))


def sharded_fit(family, params, obs, mask=None, *, mesh: Mesh | None = None, num_iters: int = 50,
                prior=None, tol: float | None = None):
    """Baum-Welch (`gm.temporal.fit`) with every E-step sharded over ``mesh``: ``(params, history)``."""
    history = []
    for _ in range(num_iters):
        new, ll, lp = sharded_em_step(family, params, obs, mask, mesh=mesh, prior=prior)
        history.append(float(ll + lp))
        params = new
        if tol is not None and len(history) > 1 and history[-1] - history[-2] < tol:
            break
    return params, jnp.asarray(history)


