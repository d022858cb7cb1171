"""`gm.temporal`'s batched paths over a mesh: smoothing many sequences, Baum-Welch with the sequences
split over devices (the expected counts all-reduced by XLA)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from gm.parallel.maps import sharded_map
from gm.parallel.mesh import batch_sharding, default_mesh, pad_batch, place, replicate, replicated

# gm.temporal and gm.learn are imported where they are used, as gm.parallel.networks does for gm.bn:
# ``import gm.parallel`` (data-parallel training of the deep models) loads no graphical-model room.
if TYPE_CHECKING:
    from gm.learn.common import EMStep, FitResult
    from gm.temporal.common import Smoothed

__all__ = ["sharded_em_step", "sharded_fit", "sharded_smoother"]


# -------------------------------------------------------------------------- applied: gm.temporal


def _smooth(initial, transition, log_lik, mask):
    from gm.temporal.hmm import smoother

    return smoother(initial, transition, log_lik, mask=mask)


def _smooth_unmasked(initial, transition, log_lik):
    return _smooth(initial, transition, log_lik, None)


def sharded_smoother(initial, transition, log_liks, *, mask=None, mesh: Mesh | None = None) -> Smoothed:
    """`gm.temporal.smoother` of every sequence, split over ``mesh``.

    Args:
      initial: f32[K]; transition: f32[K, K] (shared, replicated).
      log_liks: f32[B, T, K] per-step log-likelihoods.
      mask: optional bool[B, T], False on padding steps.
      mesh: the mesh (default: all devices).

    Returns:
      ``gm.temporal.Smoothed(log_evidence f32[B], marginals f32[B, T, K])``.

    Examples:
      >>> post = sharded_smoother(pi, A, log_liks, mask=mask, mesh=batch_mesh())
    """
    from gm.temporal.common import check_log_lik, check_probabilities, float_array

    mesh = default_mesh(mesh)
    # values (eager, as `gm.temporal.smoother`'s own call): inside the sharded map they could only mark NaN
    check_probabilities(float_array(initial, "initial"), "initial")
    check_probabilities(float_array(transition, "transition"), "transition")
    check_log_lik(float_array(log_liks, "log_liks"), "log_liks")
    if mask is None:
        return sharded_map(_smooth_unmasked, mesh, in_axes=(None, None, 0))(initial, transition, log_liks)
    return sharded_map(_smooth, mesh, in_axes=(None, None, 0, 0))(initial, transition, log_liks, mask)


@functools.lru_cache(maxsize=64)
def compiled_em_step(family, mesh: Mesh, estimate: str = "map"):
    """The jitted Baum-Welch step (`gm.learn.hmm.em_update`) for ``family`` with the sequences sharded over
    ``mesh`` and the model, prior concentrations and result replicated (cached per family, mesh and
    estimate; its HLO shows the all-reduce). Call it as ``step(model, obs, mask, concentrations)``."""
    from gm.learn import hmm

    bs, rep = batch_sharding(mesh), replicated(mesh)

    def step(model, obs, mask, concentrations):
        return hmm.em_update(family, model, obs, concentrations, mask=mask, estimate=estimate)

    return jax.jit(step, in_shardings=(rep, bs, bs, rep), out_shardings=rep)


def sharded_em_step(family, model, obs, *, prior=None, mask=None, mesh: Mesh | None = None) -> EMStep:
    """One Baum-Welch iteration (`gm.learn.hmm.em_step`) with the sequences split over ``mesh``.

    The E-step runs on each device's sequences; the expected counts are summed across devices by the
    all-reduce XLA inserts for the batch sums, and the M-step result is replicated. Padding sequences
    are fully masked, so they add nothing.

    Args:
      family: the emission family (static).
      model: ``gm.temporal.HMM`` (replicated).
      obs: observations with leading [B, T] axes.
      prior: a ``gm.learn.Prior`` (None: maximum likelihood).
      mask: optional bool[B, T].
      mesh: the mesh (default: all devices).

    Returns:
      ``gm.learn.EMStep(model, log_likelihood)`` as `gm.learn.hmm.em_step`.

    Examples:
      >>> model, objective = sharded_em_step(Categorical(V), model, obs, mask=mask, mesh=batch_mesh())
    """
    from gm.learn import hmm

    mesh = default_mesh(mesh)
    obs, mask, _ = hmm.check_data(family, obs, mask=mask)  # shapes; values eager (gm.validation)
    hmm.check_model(family, model)
    if mask is None:
        mask = np.ones(obs.shape[:2], bool)
    resolved = hmm.resolve_prior(jnp.shape(model.initial)[0], prior=prior)
    obs, n = pad_batch(obs, mesh.size)
    mask, _ = pad_batch(jnp.asarray(mask, bool), mesh.size, fill=False)
    bs = batch_sharding(mesh)
    return compiled_em_step(family, mesh, resolved.estimate)(
        replicate(model, mesh), place(obs, bs), place(mask, bs), replicate(resolved.concentrations, mesh))


def sharded_fit(family, model, obs, *, mask=None, mesh: Mesh | None = None, num_iters: int = 50,
                prior=None, tol: float | None = None) -> FitResult:
    """Baum-Welch (`gm.learn.hmm.fit`) with every E-step sharded over ``mesh``.

    Returns:
      ``gm.learn.FitResult(model, log_likelihood f32[n + 1], converged)`` as `gm.learn.hmm.fit`.

    Examples:
      >>> result = sharded_fit(Categorical(V), model, obs, mask=mask, num_iters=20)
    """
    from gm.learn.common import iterate_em

    def step(m):
        return sharded_em_step(family, m, obs, prior=prior, mask=mask, mesh=mesh)

    return iterate_em(step, model, num_iters=num_iters, tol=tol)
