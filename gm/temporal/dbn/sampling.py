"""Drawing from a 2-TBN, and unrolling it into a Bayesian network.

* ``sample``: ancestral sampling of T slices (``lax.scan`` over slices).
* ``unroll_dict`` / ``unroll``: the T-slice network as ``gm.bn.BayesNet.from_dict``'s arguments, or as a
  ``gm.bn.BayesNet`` (variables ``"h_0"``, ``"h_1"``, ...), for checks against ``gm.bn``'s inference.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gm import loops
from gm.bn.network import BayesNet
from gm.temporal.common import rows_valid
from gm.temporal.dbn.inference import check_model
from gm.temporal.dbn.structure import DBN
from gm.validation import is_concrete

__all__ = ["sample", "unroll", "unroll_dict"]


def sample(key, model: DBN, num_steps: int) -> jax.Array:
    """Ancestral sample ``int32[T, n_vars]`` of the unrolled network: every slice's variables in a
    topological order, each from its CPT row given its (same-slice and previous-slice) parents.

    Args:
        key: a ``jax.random`` key; model: the 2-TBN; num_steps: T (static).

    Returns:
        int32[T, n_vars]; ``jax.vmap`` over keys for several sequences. An invalid CPT (a negative or
        non-finite entry, a row not summing to one) raises ``ValueError`` naming it when eager; under
        ``jax.jit`` every state of the sample is -1 (the marker).

    Examples:
        >>> evidences = jax.vmap(lambda k: sample(k, model, 50))(jax.random.split(key, 8))   # [8, 50, n]
    """
    if not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive int; got {num_steps!r}")
    check_model(model)  # eager (or under gm.validation.checked): ValueError naming the CPT
    s = model.structure

    def draw_slice(k, prev, initial):
        vals = [None] * s.num_vars
        keys = jax.random.split(k, s.num_vars)
        for i in s.order(initial):
            if initial:
                cpt = model.initial_cpts[i]
                idx = tuple(vals[j] for j in s.initial_parents[i])
            else:
                cpt = model.transition_cpts[i]
                idx = tuple(vals[j] if lag == 0 else prev[j] for j, lag in s.transition_parents[i])
            vals[i] = jax.random.categorical(keys[i], jnp.log(cpt[idx])).astype(jnp.int32)
        return jnp.stack(vals)

    k0, k1 = jax.random.split(key)
    x0 = draw_slice(k0, None, True)
    if num_steps == 1:
        return _mark_invalid(model, x0[None])

    def body(prev, k):
        x = draw_slice(k, prev, False)
        return x, x

    _, xs = loops.scan(body, x0, jax.random.split(k1, num_steps - 1))
    return _mark_invalid(model, jnp.concatenate([x0[None], xs], 0))


def _mark_invalid(model: DBN, states):
    """The marker of an invalid model under ``jax.jit``: every state -1 (no state), never a plausible path."""
    if is_concrete(model):
        return states
    return jnp.where(rows_valid(*model.initial_cpts, *model.transition_cpts), states, -1)




def unroll_dict(model: DBN, num_steps: int) -> dict:
    """``{"states", "parents", "cpts"}`` of the unrolled network (names ``f"{name}_{t}"``): the arguments
    of ``gm.bn.BayesNet.from_dict``.

    Examples:
        >>> parents = unroll_dict(model, 2)["parents"]
        >>> sorted(parents["h_1"])                          # e.g. ['h_0', 'v_0'] for a coupled HMM
    """
    s = model.structure
    states, parents, cpts = {}, {}, {}
    for t in range(num_steps):
        for i in (s.order(t == 0)):
            name = f"{s.names[i]}_{t}"
            states[name] = [str(k) for k in range(s.cards[i])]
            if t == 0:
                parents[name] = [f"{s.names[j]}_0" for j in s.initial_parents[i]]
                cpts[name] = np.asarray(model.initial_cpts[i])
            else:
                parents[name] = [f"{s.names[j]}_{t - lag}" for j, lag in s.transition_parents[i]]
                cpts[name] = np.asarray(model.transition_cpts[i])
    return dict(states=states, parents=parents, cpts=cpts)


def unroll(model: DBN, num_steps: int) -> BayesNet:
    """The unrolled ``gm.bn.BayesNet`` over T slices (variables ``f"{name}_{t}"``).

    Examples:
        >>> net = unroll(model, 4)
        >>> bn.marginals(net, net.evidence({"x_0": "1"}))["h_3"]
    """
    return BayesNet.from_dict(**unroll_dict(model, num_steps))
