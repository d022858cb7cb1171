"""The chain fast path of DBN smoothing: chains observed by childless leaves (factorial or coupled).

A DBN whose interface variables are independent chains (each one's only parent is its own previous
value) and whose other variables are childless observations of the current chains (a factorial HMM,
independent HMMs, several observation streams) is smoothed without the general contraction engine:
the joint message over the chains is kept batch-minor, f32[K_1, ..., K_M, B], and chain m's K_m x K_m
transition is applied along axis m as one batched matrix product with the batch in the product's
columns (no transposes), so a step costs O(M K^(M+1)) multiply-adds per sequence, never the O(K^(2M))
of the flattened chain. State sums (normalisers, per-chain marginals, marginals of unobserved leaves)
are matrix products with 0/1 and CPT matrices rather than reductions over leading axes, which XLA's CPU
backend runs several times slower. Only the per-variable marginals f32[T, card] leave the loop.

Coupled chains (each chain's parents are previous chains, not only itself: ``coupled_hmm``, or M chains
each on its neighbours) run the same passes with another transition step (`_coupled_forward`,
`_coupled_backward`): chain m's CPT is multiplied into the message as one batched matrix product
(`_product`) and every previous state that no later chain depends on is summed out at once (the frontier
order, Murphy 2002, sec. 3.5), O(M K^(M+2)) per step for neighbour coupling. ``dbn.smoother`` runs them
here only with ``method="factorial"``: its batch-minor general engine was as fast or faster on CPU.

The joint forward messages are not all stored: the forward pass keeps one every C steps (C about
sqrt(T)), and the backward pass recomputes each block of C messages from its checkpoint into a small
buffer that stays in cache before walking back through it. That costs a second forward pass but
replaces a [T, *cards, B] array (221 MB for M = 3, K = 6, B = 256, T = 1000), whose allocation and
traffic cost more than the recomputation.

The steps, in order: `factorial_layout` (is the structure factorial?), ``_tables`` (leaf likelihood
tables, chain evidence, read-out matrices), ``_initial_message``, ``_checkpointed_forward``,
``_backward_readout`` (the backward pass, reading out every marginal), ``_marginals`` (the read-out
split per variable). `factorial_smoother` runs them on a batch; `factorial_smoother_one` on one
sequence, routed to the batched path under ``jax.vmap``. ``gm.temporal.dbn.smoother`` picks this path
for factorial structures.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gm import loops
from gm.temporal.dbn.structure import DBN, DBNPosterior, Structure

__all__ = ["FactorialLayout", "factorial_layout", "factorial_smoother", "factorial_smoother_one"]


class FactorialLayout(NamedTuple):
    """Where a chain-structured 2-TBN keeps its chains and their observations (variable indices).

    Attributes:
        chains: the interface variables, in slice order.
        leaves: the chains' childless observations.
        leaf_parents: for each leaf, the positions (in ``chains``) of its parents.
        chain_parents: for each chain, the positions (in ``chains``) of its previous-slice parents, in
            the order of its transition CPT's axes: ``(m,)`` for every chain of a factorial HMM, more for
            coupled chains.
    """

    chains: tuple[int, ...]
    leaves: tuple[int, ...]
    leaf_parents: tuple[tuple[int, ...], ...]
    chain_parents: tuple[tuple[int, ...], ...] = ()

    @property
    def factorial(self) -> bool:
        """Whether every chain's only parent is its own previous value (no coupling)."""
        return all(ps == (m,) for m, ps in enumerate(self.chain_parents))


def factorial_layout(s: Structure) -> FactorialLayout | None:
    """The chains and leaves of a chain-structured 2-TBN, or None when the structure is not one.

    Chain-structured: every interface variable (a chain) has only previous-slice chains as parents
    (itself only: a factorial HMM; others too: coupled chains) and no parent in the first slice, and
    every other variable is a childless observation of current chains, with the same parents in both
    slices.

    Examples:
        >>> factorial_layout(factorial_hmm(initials, transitions, emission).structure).chains
        (0, 1)
    """
    chains = s.interface
    if not chains:
        return None
    chain_parents = []
    for i in chains:
        tp = s.transition_parents[i]
        ps = tuple(j for j, _ in tp)
        if s.initial_parents[i] or any(lag != 1 for _, lag in tp) or len(set(ps)) != len(ps):
            return None
        chain_parents.append(tuple(chains.index(j) for j in ps))
    leaves, leaf_parents = [], []
    for i in range(s.num_vars):
        if i in chains:
            continue
        tp = s.transition_parents[i]
        ps = tuple(j for j, _ in tp)
        if any(lag != 0 for _, lag in tp) or ps != s.initial_parents[i] or not set(ps) <= set(chains):
            return None
        leaves.append(i)
        leaf_parents.append(tuple(chains.index(j) for j in ps))
    return FactorialLayout(chains, tuple(leaves), tuple(leaf_parents), tuple(chain_parents))


def _leaf_table(cpt, parents, chain_cards):
    """f32[prod(chain_cards), V + 1]: p(leaf = v | chains) over the joint chain state (flattened in
    C order), with a last column of ones for a missing observation."""
    M = len(chain_cards)
    # move the CPT's parent axes into chain order and broadcast over the chains it does not depend on
    order = sorted(range(len(parents)), key=lambda a: parents[a])
    cpt = jnp.transpose(cpt, tuple(order) + (len(parents),))
    shape = [1] * M + [cpt.shape[-1]]
    for a in sorted(parents):
        shape[a] = chain_cards[a]
    table = jnp.broadcast_to(cpt.reshape(shape), tuple(chain_cards) + (cpt.shape[-1],))
    table = table.reshape(-1, cpt.shape[-1])
    return jnp.concatenate([table, jnp.ones((table.shape[0], 1), table.dtype)], axis=1)


def _apply_chain(msg, matrix, axis):
    """new[..., i, ...] = Σ_j matrix[i, j] msg[..., j, ...] along ``axis`` of a batch-minor message.

    On the leading axis: one matrix product with every trailing axis (batch included) as columns. On
    the other axes: a broadcast product summed over j, which XLA's CPU backend runs as one vectorised
    pass over the message (a batched product there has a contraction of only K_m and was 1.5 to 2.5
    times slower).
    """
    if axis == 0:
        K = msg.shape[0]
        return (matrix @ msg.reshape(K, -1)).reshape(msg.shape)
    K = msg.shape[axis]
    shape = [1] * (msg.ndim + 1)
    shape[axis], shape[axis + 1] = K, K
    return jnp.sum(matrix.reshape(shape) * jnp.expand_dims(msg, axis), axis=axis + 1)


def _product(x, x_labels, cpt, cpt_labels, summed):
    """Σ over ``summed`` of x * cpt as one batched matrix product, and its labels: the labels the two
    share and keep are the product's batch, then come the CPT's own labels, then the message's (the
    batch of sequences last). Explicit transposes into that order and a matmul ran 1.4x faster than
    ``jnp.einsum`` on the same contraction (M = 4, K = 8, B = 16)."""
    batch = [l for l in cpt_labels if l in x_labels and l not in summed]
    own = [l for l in cpt_labels if l not in x_labels]
    rest = [l for l in x_labels if l not in cpt_labels]
    xt = jnp.transpose(x, [x_labels.index(l) for l in batch + summed + rest])
    ct = jnp.transpose(cpt, [cpt_labels.index(l) for l in batch + own + summed])
    nb = math.prod(ct.shape[: len(batch)])
    ns = math.prod(xt.shape[len(batch): len(batch) + len(summed)])
    y = ct.reshape(nb, -1, ns) @ xt.reshape(nb, ns, -1)
    return y.reshape(ct.shape[: len(batch) + len(own)] + xt.shape[len(batch) + len(summed):]), batch + own + rest


def _coupled_forward(msg, cpts, parents):
    """new(h'_1..h'_M, b) = Σ_h msg(h, b) Π_m p(h'_m | h_pa(m)) for coupled chains, one chain at a time
    (the frontier order): chain m's CPT is multiplied in, and every previous state no later chain depends
    on is summed out at once, so the message never holds more than the chains' states plus the parents
    still needed. Labels: previous states 0..M-1, next states M..2M-1, the batch 2M."""
    M = len(parents)
    last = {j: max(m for m in range(M) if j in parents[m]) for j in range(M) if any(j in ps for ps in parents)}
    labels = list(range(M)) + [2 * M]
    for m in range(M):
        summed = [j for j in parents[m] if last[j] == m]
        msg, labels = _product(msg, labels, cpts[m], list(parents[m]) + [M + m], summed)
    unused = [labels.index(j) for j in labels if j < M]  # previous states no chain depends on
    if unused:
        msg, labels = jnp.sum(msg, axis=tuple(unused)), [j for j in labels if j >= M]
    return jnp.transpose(msg, [labels.index(M + m) for m in range(M)] + [labels.index(2 * M)])


def _coupled_backward(v, cpts, parents, shape):
    """beta(h_1..h_M, b) = Σ_h' Π_m p(h'_m | h_pa(m)) v(h', b): each chain's CPT multiplied in and its next
    state summed out at once (the labels of `_coupled_forward`). A previous state no chain depends on
    leaves beta constant along its axis."""
    M = len(parents)
    labels = [M + m for m in range(M)] + [2 * M]
    for m in range(M):
        v, labels = _product(v, labels, cpts[m], list(parents[m]) + [M + m], [M + m])
    missing = [j for j in range(M) if j not in labels]
    v = jnp.transpose(v, [labels.index(j) for j in sorted(set(labels) - {2 * M})] + [labels.index(2 * M)])
    if missing:
        v = jnp.broadcast_to(jnp.expand_dims(v, missing), shape)
    return v


def _checkpoint_block(T: int, S: int, B: int) -> int:
    """Steps per block of the checkpointed forward pass: about sqrt(T), and a block of messages small
    enough to stay in cache (at most 4 MiB)."""
    by_cache = max(1, (4 << 20) // (4 * S * B))
    return int(max(1, min(by_cache, round(math.sqrt(T)), T)))


class _Tables(NamedTuple):
    """What the passes of one call read: sizes (static) and arrays built once."""

    num_steps: int  # T
    batch: int  # B
    cards: tuple[int, ...]  # the chains' state counts
    block: int  # C, steps per checkpoint block
    num_blocks: int
    evidence: jax.Array  # int32[num_blocks C + 1, B, n_vars], time-major, padded steps unobserved
    transitions: list  # per chain f32[K_m, K_m] (previous, next), coupled: f32[*parents' K, K_m]
    transitions_T: list  # per chain f32[K_m, K_m] (next, previous), coupled: as ``transitions``
    leaf_tables: list  # [first slice, later slices]: per leaf f32[S, V + 1] (`_leaf_table`)
    chain_evidence: list  # per chain f32[Tp, K_m, B] indicator vectors, ones where unobserved
    readout_first: jax.Array  # f32[R, S] for step 0 (the first slice's leaf CPTs)
    readout: jax.Array  # f32[R, S]: rows 0/1 per chain state, then p(leaf | chains) rows

    @property
    def states(self) -> int:  # S, the joint chain states
        return int(np.prod(self.cards))

    @property
    def shape(self) -> tuple[int, ...]:  # the joint message, batch-minor
        return self.cards + (self.batch,)


def _tables(model: DBN, layout: FactorialLayout, evidence) -> _Tables:
    s = model.structure
    B, T, _ = evidence.shape
    chains, leaves = layout.chains, layout.leaves
    cards = tuple(s.cards[i] for i in chains)
    M, S = len(chains), int(np.prod(cards))
    dtype = jnp.float32
    C = _checkpoint_block(T, S, B)
    nb = -(-T // C)
    Tp = nb * C + 1  # padded steps observe nothing: likelihood one, log normaliser ~0 (not counted)
    ev = jnp.swapaxes(evidence, 0, 1)  # [T, B, n]: one step's evidence is a contiguous slice
    ev = jnp.concatenate([ev, jnp.full((Tp - T,) + ev.shape[1:], -1, ev.dtype)], 0)

    trans = [model.transition_cpts[i].astype(dtype) for i in chains]  # [*previous parents, next]
    trans_T = [jnp.swapaxes(a, 0, 1) for a in trans] if layout.factorial else trans  # [next, prev]
    tables = [[_leaf_table(cpts[i], ps, cards).astype(dtype) for i, ps in zip(leaves, layout.leaf_parents)]
              for cpts in (model.initial_cpts, model.transition_cpts)]
    # evidence on the chains themselves: indicator vectors f32[Tp, K_m, B] (all ones where unobserved)
    # (any other value, below -1 too, matches no state: impossible evidence, as in the general engine)
    chain_lams = [jnp.where((ev[:, None, :, i] == -1), True, jnp.arange(c)[None, :, None] == ev[:, None, :, i])
                  .astype(dtype) for i, c in zip(chains, cards)]

    # one product gives every chain's marginal (0/1 rows) and every leaf's predictive p(x_t | e_{-x_t})
    sel = np.zeros((sum(cards), S), np.float32)
    for m in range(M):
        idx = np.unravel_index(np.arange(S), cards)[m]
        sel[sum(cards[:m]) + idx, np.arange(S)] = 1.0
    readouts = [jnp.asarray(sel)]
    readouts += [tables[1][k][:, :-1].T for k in range(len(leaves))]
    readout_first = jnp.concatenate([readouts[0]] + [tables[0][k][:, :-1].T for k in range(len(leaves))], 0)
    readout = jnp.concatenate(readouts, 0)  # [R, S]
    return _Tables(T, B, cards, C, nb, ev, trans, trans_T, tables, chain_lams, readout_first, readout)


def _step_likelihood(tb: _Tables, layout: FactorialLayout, t, *, first: bool, use_chain_evidence: bool):
    """f32[*cards, B]: the step's evidence on the chains times the leaves' likelihoods."""
    S, B, M = tb.states, tb.batch, len(tb.cards)
    e = lax.dynamic_index_in_dim(tb.evidence, t, 0, keepdims=False)  # [B, n]
    out = None
    for table, i in zip(tb.leaf_tables[0 if first else 1], layout.leaves):
        V = table.shape[1] - 1  # the last column: a missing observation (-1); any other value out of
        v = jnp.where(e[:, i] == -1, V, jnp.where(e[:, i] >= 0, e[:, i], V + 1))  # range reads NaN (the marker)
        f = jnp.take(table, v, axis=1, mode="fill", fill_value=jnp.nan)  # [S, B]
        out = f if out is None else out * f
    out = jnp.ones((S, B), jnp.float32) if out is None else out
    out = out.reshape(tb.shape)
    for m in range(M if use_chain_evidence else 0):
        sh = [1] * M + [B]
        sh[m] = tb.cards[m]
        out = out * lax.dynamic_index_in_dim(tb.chain_evidence[m], t, 0, keepdims=False).reshape(sh)
    return out


def _normalise(tb: _Tables, a):
    """(a / Σ_states a, Σ_states a f32[B]), the sum as a product with a row of ones."""
    c = jnp.ones((tb.states,), jnp.float32) @ a.reshape(tb.states, tb.batch)
    return a / jnp.where(c > 0, c, 1.0), c


def _forward_step(tb: _Tables, layout: FactorialLayout, a, t, use_chain_evidence: bool):
    if layout.factorial:
        for m in range(len(tb.cards)):
            a = _apply_chain(a, tb.transitions_T[m], m)
    else:
        a = _coupled_forward(a, tb.transitions, layout.chain_parents)
    return _normalise(tb, a * _step_likelihood(tb, layout, t, first=False, use_chain_evidence=use_chain_evidence))


def _initial_message(model: DBN, layout: FactorialLayout, tb: _Tables, use_chain_evidence: bool):
    """The normalised message of step 0 and its normaliser f32[B]."""
    M = len(tb.cards)
    a0 = _step_likelihood(tb, layout, 0, first=True, use_chain_evidence=use_chain_evidence)
    for m, i in enumerate(layout.chains):
        sh = [1] * M + [1]
        sh[m] = tb.cards[m]
        a0 = a0 * model.initial_cpts[i].astype(jnp.float32).reshape(sh)
    return _normalise(tb, a0)


def _checkpointed_forward(tb: _Tables, layout: FactorialLayout, a0, c0, use_chain_evidence: bool):
    """The forward pass, keeping the message of every step j C (checkpoint j).

    Returns (checkpoints f32[num_blocks, *cards, B], log p(e) f32[B])."""
    C, T = tb.block, tb.num_steps

    def block_forward(j, carry):
        a, ckpt, total = carry
        ckpt = lax.dynamic_update_index_in_dim(ckpt, a, j, 0)

        def step(i, carry):
            a, total = carry
            t = j * C + i
            a, c = _forward_step(tb, layout, a, t, use_chain_evidence)
            return a, total + jnp.where(t < T, jnp.log(c), 0.0)

        a, total = loops.fori_loop(1, C + 1, step, (a, total))
        return a, ckpt, total

    ckpt = jnp.zeros((tb.num_blocks,) + tb.shape, jnp.float32)
    _, ckpt, total = loops.fori_loop(0, tb.num_blocks, block_forward, (a0, ckpt, jnp.log(c0)))
    return ckpt, total


def _read(tb: _Tables, g, first=False):
    """f32[R, B]: the read-out of a joint posterior message (chain marginals, leaf predictives)."""
    r = (tb.readout_first if first else tb.readout) @ g.reshape(tb.states, tb.batch)  # [R, B]
    z = jnp.sum(r[: tb.cards[0]], axis=0)
    return r / jnp.where(z > 0, z, 1.0)


def _backward_readout(tb: _Tables, layout: FactorialLayout, ckpt, use_chain_evidence: bool):
    """The backward pass, block by block from the end: recompute the block's messages from its
    checkpoint, then walk back through it with beta_t; beta of the last padded step is ones (nothing
    observed after). Returns the read-outs f32[T, R, B]."""
    C, nb, shape, dtype = tb.block, tb.num_blocks, tb.shape, jnp.float32

    def block_backward(k, carry):
        beta, out, g = carry
        j = nb - 1 - k
        first = lax.dynamic_index_in_dim(ckpt, j, 0, keepdims=False)
        blk = lax.dynamic_update_index_in_dim(jnp.zeros((C,) + shape, dtype), first, 0, 0)

        def refill(i, carry):
            a, blk = carry
            a, _ = _forward_step(tb, layout, a, j * C + i, use_chain_evidence)
            return a, lax.dynamic_update_index_in_dim(blk, a, i, 0)

        if C > 1:
            _, blk = loops.fori_loop(1, C, refill, (first, blk))

        def step(i, carry):
            beta, out, _ = carry
            t = j * C + (C - 1 - i)
            g = lax.dynamic_index_in_dim(blk, C - 1 - i, 0, keepdims=False) * beta
            out = lax.dynamic_update_index_in_dim(out, _read(tb, g), t, 0)
            v = beta * _step_likelihood(tb, layout, t, first=False, use_chain_evidence=use_chain_evidence)
            if layout.factorial:
                for m in range(len(tb.cards)):
                    v = _apply_chain(v, tb.transitions[m], m)
            else:
                v = _coupled_backward(v, tb.transitions, layout.chain_parents, tb.shape)
            v, _ = _normalise(tb, v)
            return v, out, g

        return loops.fori_loop(0, C, step, (beta, out, g))

    out = jnp.zeros((nb * C, tb.readout.shape[0], tb.batch), dtype)
    ones_msg = jnp.ones(shape, dtype)
    _, out, g0 = loops.fori_loop(0, nb, block_backward, (ones_msg, out, ones_msg))
    # the last step walked back is step 0, whose leaves use the first slice's CPTs
    out = lax.dynamic_update_index_in_dim(out, _read(tb, g0, first=True), 0, 0)
    return out[: tb.num_steps]


def _marginals(model: DBN, layout: FactorialLayout, tb: _Tables, out, evidence) -> dict:
    """{name: f32[B, T, card]} from the read-outs f32[T, R, B]; observed leaves are one-hot."""
    s = model.structure
    out = jnp.transpose(out, (2, 0, 1))  # [B, T, R]
    margs, offset = {}, 0
    for m, i in enumerate(layout.chains):
        margs[i] = out[:, :, offset: offset + tb.cards[m]]
        offset += tb.cards[m]
    for i in layout.leaves:
        c = s.cards[i]
        pred = out[:, :, offset: offset + c]
        offset += c
        e = evidence[:, :, i]
        margs[i] = jnp.where((e >= 0)[..., None], jax.nn.one_hot(e, c, dtype=jnp.float32), pred)
    return {n: margs[i] for i, n in enumerate(s.names)}


def factorial_smoother(model: DBN, layout: FactorialLayout, evidence) -> DBNPosterior:
    """Smoothing of a batch ``int32[B, T, n_vars]`` of a factorial-structured DBN (see the module).

    Args:
        model: the DBN; layout: ``factorial_layout(model.structure)`` (not None);
        evidence: int32[B, T, n_vars], -1 unobserved.

    Returns:
        ``DBNPosterior(log_evidence f32[B], marginals {name: f32[B, T, card]})``.

    Examples:
        >>> post = factorial_smoother(model, factorial_layout(model.structure), evidence)
    """
    tb = _tables(model, layout, evidence)

    def run(use_chain_evidence):
        a0, c0 = _initial_message(model, layout, tb, use_chain_evidence)
        ckpt, total = _checkpointed_forward(tb, layout, a0, c0, use_chain_evidence)
        return total, _backward_readout(tb, layout, ckpt, use_chain_evidence)

    # multiplying in the chains' own evidence costs a pass over the joint message per step: compiled
    # in only for batches that observe a chain somewhere (or give it an out-of-range value: the marker)
    total, out = lax.cond(jnp.any(evidence[:, :, list(layout.chains)] != -1), lambda: run(True), lambda: run(False))
    return DBNPosterior(total, _marginals(model, layout, tb, out, evidence))


def factorial_smoother_one(model: DBN, layout: FactorialLayout, evidence, *,
                           fallback: Callable[[DBN, jax.Array], DBNPosterior]) -> DBNPosterior:
    """The factorial path for one sequence ``int32[T, n_vars]``; under ``jax.vmap`` it runs the batched
    path with the batch as the contiguous axis (a plain vmap would put the batch first and make every
    product tiny).

    Args:
        model: the DBN; layout: its `factorial_layout`; evidence: int32[T, n_vars].
        fallback: the per-sequence smoother used when ``jax.vmap`` maps over a batch of models (then
            every sequence has its own CPTs, and the batched path does not apply).

    Returns:
        ``DBNPosterior(log_evidence f32[], marginals {name: f32[T, card]})``.
    """

    @jax.custom_batching.custom_vmap
    def one(model, ev):
        total, margs = factorial_smoother(model, layout, ev[None])
        return total[0], {n: m[0] for n, m in margs.items()}

    @one.def_vmap
    def _batched(axis_size, in_batched, model, ev):
        model_batched, ev_batched = in_batched
        if not ev_batched:
            ev = jnp.broadcast_to(ev, (axis_size,) + ev.shape)
        if any(jax.tree.leaves(model_batched)):  # a batch of models: one sequence at a time
            model = jax.tree.map(lambda x, b: x if b else jnp.broadcast_to(x, (axis_size,) + x.shape),
                                 model, model_batched)
            out = jax.vmap(lambda m, e: tuple(fallback(m, e)))(model, ev)
        else:
            out = tuple(factorial_smoother(model, layout, ev))
        return out, jax.tree.map(lambda _: True, out)

    return DBNPosterior(*one(model, evidence))
