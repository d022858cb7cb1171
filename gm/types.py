"""Result types shared by every room of ``gm``.

``MPE`` is the one answer type of a most-probable-explanation query, whatever the model: ``gm.bn.mpe``
(one assignment of every variable), ``gm.temporal.viterbi`` (one state per step) and
``gm.temporal.dbn.mpe`` (one assignment of every variable at every step).
"""

from __future__ import annotations

from typing import NamedTuple

import jax


class MPE(NamedTuple):
    """The most probable joint assignment consistent with the evidence, and its log probability.

    Attributes:
        states: int32 array of the maximising states: ``[n_vars]`` for a Bayesian network,
            ``[T]`` for an HMM (-1 at masked steps), ``[T, n_vars]`` for a dynamic Bayesian network;
            a leading batch axis when the query is batched.
        log_prob: float ``[]`` (or ``[B]``): log p(states, evidence), the joint, not the conditional.

    Examples:
        >>> best = MPE(states=jnp.array([1, 0]), log_prob=jnp.array(-0.5))
        >>> best.states.tolist(), float(best.log_prob)
        ([1, 0], -0.5)
        >>> states, log_prob = best      # a NamedTuple: unpacks, and is a pytree under jit/vmap
    """

    states: jax.Array
    log_prob: jax.Array
