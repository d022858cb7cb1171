"""Forward sampling from a Bayesian network: ancestral sampling and likelihood weighting."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gm.bn.inference import _check_evidence, _safe_log
from gm.bn.network import BayesNet


def _draw(key, cpt, parent_values, n):
    """Sample the child of ``cpt`` for each of n rows of parent values."""
    probs = cpt[tuple(parent_values)] if parent_values else jnp.broadcast_to(cpt, (n, cpt.shape[-1]))
    return jax.random.categorical(key, _safe_log(probs), axis=-1).astype(jnp.int32)


def sample(net: BayesNet, key: jax.Array, n: int) -> jax.Array:
    """Ancestral samples ``int32[n, n_vars]`` from P(X) (columns in the network's variable order)."""
    keys = jax.random.split(key, net.n_vars)
    cols: list = [None] * net.n_vars
    for i in net.structure.topological_order:
        cols[i] = _draw(keys[i], net.cpts[i], [cols[p] for p in net.parents[i]], n)
    return jnp.stack(cols, axis=1) if cols else jnp.zeros((n, 0), jnp.int32)


class WeightedSamples(NamedTuple):
    """Samples with importance log-weights: ``samples: int32[n, n_vars]``, ``log_weights: f32[n]``."""

    samples: jax.Array
    log_weights: jax.Array


def likelihood_weighting(net: BayesNet, key: jax.Array, ev, n: int) -> WeightedSamples:
    """Likelihood weighting: observed variables are clamped, each sample weighted by P(e | its parents).

    The weighted empirical distribution converges to P(X | e); see `weighted_marginals`.
    """
    ev = _check_evidence(net, ev)
    keys = jax.random.split(key, net.n_vars)
    cols: list = [None] * net.n_vars
    log_w = jnp.zeros((n,), dtype=jnp.result_type(*net.cpts))
    for i in net.structure.topological_order:
        pa = [cols[p] for p in net.parents[i]]
        drawn = _draw(keys[i], net.cpts[i], pa, n)
        observed = ev[i] >= 0
        value = jnp.where(observed, jnp.full((n,), ev[i], jnp.int32), drawn)
        probs = net.cpts[i][tuple(pa)] if pa else jnp.broadcast_to(net.cpts[i], (n, net.cards[i]))
        lik = jnp.take_along_axis(probs, jnp.maximum(value, 0)[:, None], axis=-1)[:, 0]
        log_w = log_w + jnp.where(observed, _safe_log(lik), 0.0)
        cols[i] = value
    return WeightedSamples(jnp.stack(cols, axis=1), log_w)


def weighted_marginals(net: BayesNet, weighted: WeightedSamples) -> dict[str, jax.Array]:
    """Self-normalised estimates of P(X_i | e) from likelihood-weighted samples."""
    w = jax.nn.softmax(weighted.log_weights)
    return {
        name: jnp.sum(w[:, None] * jax.nn.one_hot(weighted.samples[:, i], net.cards[i]), axis=0)
        for i, name in enumerate(net.names)
    }
