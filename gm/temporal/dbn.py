"""Dynamic Bayesian networks as 2-slice templates (2-TBN): exact filtering, smoothing and MPE.

A 2-TBN has slice variables with discrete states; each variable has parents in its own slice
(intra-slice) and, from the second slice on, in the previous slice (inter-slice, written ``"h[-1]"``).
The first slice has its own CPTs (``initial_cpts``), every later slice shares ``transition_cpts``:

    p(X_{1:T}) = Π_v p(X_1^v | pa_1(v)) · Π_{t>1} Π_v p(X_t^v | pa_t(v), pa_{t-1}(v)).

Inference carries a forward message over the *interface* (the variables of slice t that have children
in slice t+1) and contracts, at every step, the message with the slice's CPTs and evidence vectors
along a path planned once by ``gm.bn``'s contraction engine; the step runs inside ``lax.scan``. The
cost therefore follows the structure: a factorial HMM with M chains of K states costs O(M K^(M+1))
per step (one chain at a time), never the O(K^(2M)) of the flattened HMM.

* ``log_evidence``, ``filter`` (p(X_t^v | e_{1:t})), ``smoother`` (p(X_t^v | e_{1:T})) for any evidence
  pattern ``int32[T, n_vars]`` (``-1`` unobserved); ``smoother`` also takes a batch ``int32[B, T, n_vars]``,
  and runs factorial structures (``factorial_hmm``) on a dedicated batch-minor path (see there). Smoothed marginals are gradients of the log
  evidence with respect to the evidence vectors (the differential approach: p(x | e) = λ ∂ log Z/∂λ),
  so the backward pass is reverse-mode autodiff of the forward scan.
* ``mpe``: the most probable joint assignment (max-product forward scan; the argmax is the gradient
  of the max with respect to the log evidence vectors; a unique maximiser is assumed).
* ``unroll(dbn, T)`` to a ``gm.bn.BayesNet`` (variables named ``"h_0"``, ``"h_1"``, ...).
* ``factorial_hmm``, ``coupled_hmm``, ``boltzmann_zipper`` constructors; ``sample``.

Reference: K. Murphy (2002), Dynamic Bayesian Networks, PhD thesis, ch. 3; Z. Ghahramani and
M. Jordan (1997), Factorial hidden Markov models; L. Saul and M. Jordan (1996), Boltzmann chains and
hidden Markov models.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gm import loops
from gm.bn import tensornet as _tn

__all__ = ["DBN", "DBNPosterior", "from_dict", "log_evidence", "filter", "smoother", "mpe", "sample",
           "unroll", "unroll_dict", "factorial_hmm", "coupled_hmm", "boltzmann_zipper", "evidence_vectors"]

_PREV = re.compile(r"^(.*)\[-1\]$")


@dataclasses.dataclass(frozen=True)
class Structure:
    """Static part of a 2-TBN (hashable).

    names: slice variable names; cards: their numbers of states;
    initial_parents[i]: indices of same-slice parents of variable i in the first slice;
    transition_parents[i]: ((index, lag), ...) with lag 0 (same slice) or 1 (previous slice), in the
    order of the transition CPT's axes.
    """

    names: tuple[str, ...]
    cards: tuple[int, ...]
    initial_parents: tuple[tuple[int, ...], ...]
    transition_parents: tuple[tuple[tuple[int, int], ...], ...]

    @property
    def num_vars(self) -> int:
        return len(self.names)

    @property
    def interface(self) -> tuple[int, ...]:
        """Variables with a child in the next slice, sorted."""
        return tuple(sorted({i for ps in self.transition_parents for i, lag in ps if lag == 1}))

    def order(self, initial: bool) -> tuple[int, ...]:
        """A topological order of the slice's variables along the intra-slice edges."""
        parents = [self.initial_parents[i] if initial else tuple(j for j, lag in self.transition_parents[i]
                                                                 if lag == 0) for i in range(self.num_vars)]
        done, out = set(), []
        while len(out) < self.num_vars:
            ready = [i for i in range(self.num_vars) if i not in done and all(p in done for p in parents[i])]
            if not ready:
                raise ValueError("the intra-slice edges of the DBN have a cycle")
            out.append(ready[0])
            done.add(ready[0])
        return tuple(out)


@jax.tree_util.register_pytree_node_class
class DBN:
    """A 2-TBN: static ``Structure`` plus CPTs (pytree leaves), each with the child's axis last.

    ``initial_cpts[i]`` has shape (*cards of initial_parents[i], cards[i]);
    ``transition_cpts[i]`` has shape (*cards of transition_parents[i], cards[i]).
    """

    def __init__(self, structure: Structure, initial_cpts, transition_cpts):
        self.structure = structure
        self.initial_cpts = tuple(initial_cpts)
        self.transition_cpts = tuple(transition_cpts)

    def tree_flatten(self):
        return (self.initial_cpts, self.transition_cpts), self.structure

    @classmethod
    def tree_unflatten(cls, structure, children):
        return cls(structure, *children)

    @property
    def names(self):
        return self.structure.names

    @property
    def cards(self):
        return self.structure.cards

    def index(self, name: str) -> int:
        try:
            return self.structure.names.index(name)
        except ValueError:
            raise ValueError(f"unknown variable {name!r}; variables are {self.structure.names}") from None

    def __repr__(self):
        return f"DBN(names={self.names}, cards={self.cards})"


def from_dict(states: Mapping[str, Sequence[str] | int], *, initial_parents: Mapping[str, Sequence[str]] | None = None,
              transition_parents: Mapping[str, Sequence[str]] | None = None,
              initial_cpts: Mapping[str, object], transition_cpts: Mapping[str, object],
              atol: float = 1e-3) -> DBN:
    """Builds a DBN from names.

    Args:
        states: {name: list of state names or number of states}, in slice order.
        initial_parents: {name: [same-slice parents]} for the first slice (default none).
        transition_parents: {name: parents}, ``"h"`` for same-slice, ``"h[-1]"`` for previous-slice
            parents, in the order of the CPT's axes (default none).
        initial_cpts / transition_cpts: {name: array (*parent cards, card)}.

    Raises:
        ValueError naming the variable for unknown parents, wrong CPT shapes or unnormalised CPTs.
    """
    names = tuple(states)
    cards = tuple(v if isinstance(v, int) else len(v) for v in states.values())
    idx = {n: i for i, n in enumerate(names)}
    initial_parents = initial_parents or {}
    transition_parents = transition_parents or {}

    def lookup(child, p):
        if p not in idx:
            raise ValueError(f"parent {p!r} of {child!r} is not a slice variable {names}")
        return idx[p]

    ip, tp = [], []
    for n in names:
        ip.append(tuple(lookup(n, p) for p in initial_parents.get(n, ())))
        ps = []
        for p in transition_parents.get(n, ()):
            m = _PREV.match(p)
            ps.append((lookup(n, m.group(1)), 1) if m else (lookup(n, p), 0))
        tp.append(tuple(ps))
    for n in list(initial_parents) + list(transition_parents):
        if n not in idx:
            raise ValueError(f"parents given for unknown variable {n!r}")
    structure = Structure(names, cards, tuple(ip), tuple(tp))
    structure.order(True), structure.order(False)  # cycle checks
    icpts, tcpts = [], []
    for i, n in enumerate(names):
        for table, parents, out, what in ((initial_cpts, ip[i], icpts, "initial_cpts"),
                                          (transition_cpts, tp[i], tcpts, "transition_cpts")):
            if n not in table:
                raise ValueError(f"{what} has no CPT for {n!r}")
            cpt = jnp.asarray(table[n], jnp.float32)
            pidx = [p if isinstance(p, int) else p[0] for p in parents]
            want = tuple(cards[j] for j in pidx) + (cards[i],)
            if cpt.shape != want:
                raise ValueError(f"{what}[{n!r}] must have shape {want} (parents then child); got {cpt.shape}")
            sums = np.asarray(cpt).sum(-1)
            if not np.allclose(sums, 1.0, atol=atol) or np.any(np.asarray(cpt) < 0):
                raise ValueError(f"{what}[{n!r}] rows must be distributions summing to 1")
            out.append(cpt)
    return DBN(structure, icpts, tcpts)


# ----------------------------------------------------------------------------------- planning


def _labels(s: Structure):
    """Labels: variable i of the current slice is i, of the previous slice n + i."""
    n = s.num_vars
    sizes = tuple(s.cards) * 2
    init_inputs = [tuple(s.initial_parents[i]) + (i,) for i in range(n)]
    trans_inputs = [tuple(j + n * lag for j, lag in s.transition_parents[i]) + (i,) for i in range(n)]
    return n, sizes, init_inputs, trans_inputs


def _plans(s: Structure):
    """(first-slice plan, transition plan): inputs are the CPTs, the evidence vectors of the variables
    outside the interface and (transition only) the previous interface message; the output is the
    current interface. The interface's evidence vectors multiply the output afterwards: under ``vmap``
    the evidence is batched, and keeping it off the CPTs keeps every CPT product one unbatched GEMM."""
    n, sizes, init_inputs, trans_inputs = _labels(s)
    iface = s.interface
    ev_inputs = [(i,) for i in range(n) if i not in iface]
    p0 = _tn.plan(tuple(init_inputs + ev_inputs), iface, sizes)
    prev_iface = tuple(n + i for i in iface)
    pt = _tn.plan(tuple(trans_inputs + ev_inputs + [prev_iface]), iface, sizes)
    return p0, pt


def _backward_plan(s: Structure):
    """Plan of β_{t-1}(interface_{t-1}) = Σ_{slice t} CPTs · λ_t · (λ_t β_t)(interface_t)."""
    n, sizes, _, trans_inputs = _labels(s)
    iface = s.interface
    ev_inputs = [(i,) for i in range(n) if i not in iface]
    prev_iface = tuple(n + i for i in iface)
    return _tn.plan(tuple(trans_inputs + ev_inputs + [tuple(iface)]), prev_iface, sizes)


def _local_plans(s: Structure):
    """For every variable v outside the interface: plans of the slice contraction with output (v,),
    given the previous message (transition plan only) and the next slice's β ⊙ λ on the interface."""
    n, sizes, init_inputs, trans_inputs = _labels(s)
    iface = s.interface
    prev_iface = tuple(n + i for i in iface)
    out = {}
    for v in range(n):
        if v in iface:
            continue
        ev_inputs = [(i,) for i in range(n) if i not in iface and i != v]
        out[v] = (_tn.plan(tuple(init_inputs + ev_inputs + [tuple(iface)]), (v,), sizes),
                  _tn.plan(tuple(trans_inputs + ev_inputs + [prev_iface, tuple(iface)]), (v,), sizes))
    return out


def _apply_interface_evidence(s: Structure, msg, lam_t, op=jnp.multiply):
    """Multiplies (or, in log space, adds) the interface variables' evidence vectors into the message."""
    k = len(s.interface)
    for axis, i in enumerate(s.interface):
        shape = [1] * k
        shape[axis] = s.cards[i]
        msg = op(msg, lam_t[i].reshape(shape))
    return msg


def _step_inputs(s: Structure, lam_t):
    return [lam_t[i] for i in range(s.num_vars) if i not in s.interface]


def step_flops(dbn: DBN) -> float:
    """Multiply-adds of one transition step of the planned contraction (the per-step cost)."""
    return _plans(dbn.structure)[1].flops


# ----------------------------------------------------------------------------------- evidence


def evidence_vectors(dbn: DBN, evidence) -> tuple[jax.Array, ...]:
    """Indicator vectors λ_v f32[T, card_v] from ``int32[T, n_vars]`` (-1: all ones)."""
    evidence = jnp.asarray(evidence)
    n = dbn.structure.num_vars
    if evidence.ndim != 2 or evidence.shape[1] != n:
        raise ValueError(f"evidence must have shape [T, n_vars] = [T, {n}] ({dbn.names}); got {evidence.shape}")
    lams = []
    for i, c in enumerate(dbn.cards):
        e = evidence[:, i]
        lams.append(jnp.where((e >= 0)[:, None], jax.nn.one_hot(e, c, dtype=jnp.float32), 1.0))
    return tuple(lams)


def _contract(plan, arrays):
    # no rescaling inside a step: the message is normalised after every step, and one step multiplies
    # only a slice's worth of probabilities
    return _tn.contract(plan, arrays, rescale=False)


def _forward_sum(dbn: DBN, lams, *, want_filtered=False):
    """Scaled forward scan. Returns (log Z, filtered marginals tuple or None)."""
    s = dbn.structure
    p0, pt = _plans(s)
    T = lams[0].shape[0]

    def first(lam0):
        m, ls = _contract(p0, list(dbn.initial_cpts) + _step_inputs(s, lam0))
        m = _apply_interface_evidence(s, m, lam0)
        z = jnp.sum(m)
        return jnp.log(z) + ls, m / z

    def step(msg, lam_t):
        m, ls = _contract(pt, list(dbn.transition_cpts) + _step_inputs(s, lam_t) + [msg])
        m = _apply_interface_evidence(s, m, lam_t)
        z = jnp.sum(m)
        return jnp.log(z) + ls, m / z

    lam0 = tuple(l[0] for l in lams)
    lam_rest = tuple(l[1:] for l in lams)
    if want_filtered:
        (l0, m0), g0 = jax.value_and_grad(first, has_aux=True)(lam0)
        f0 = tuple(a * b for a, b in zip(lam0, g0))

        def body(carry, lam_t):
            msg, total = carry
            (lz, m), g = jax.value_and_grad(lambda lt: step(msg, lt), has_aux=True)(lam_t)
            return (m, total + lz), tuple(a * b for a, b in zip(lam_t, g))

        (_, total), fs = loops.scan(body, (m0, l0), lam_rest)
        filt = tuple(jnp.concatenate([a[None], b], 0) for a, b in zip(f0, fs))
        return total, filt
    l0, m0 = first(lam0)
    if T == 1:
        return l0, None

    def body(carry, lam_t):
        msg, total = carry
        lz, m = step(msg, lam_t)
        return (m, total + lz), None

    (_, total), _ = loops.scan(body, (m0, l0), lam_rest)
    return total, None


class DBNPosterior(NamedTuple):
    """log_evidence f32[]; marginals {name: f32[T, card]}."""

    log_evidence: jax.Array
    marginals: dict


def log_evidence(dbn: DBN, evidence) -> jax.Array:
    """log p(e) for evidence ``int32[T, n_vars]`` (-1 unobserved)."""
    return _forward_sum(dbn, evidence_vectors(dbn, evidence))[0]


def filter(dbn: DBN, evidence) -> DBNPosterior:  # noqa: A001
    """Filtered marginals p(X_t^v | e_{1:t}) for every slice variable and step."""
    total, filt = _forward_sum(dbn, evidence_vectors(dbn, evidence), want_filtered=True)
    return DBNPosterior(total, dict(zip(dbn.names, filt)))


def smoother(dbn: DBN, evidence) -> DBNPosterior:
    """Smoothed marginals p(X_t^v | e_{1:T}) and log p(e).

    Args:
        dbn: the 2-TBN.
        evidence: int32[T, n_vars] (-1 unobserved), or a batch int32[B, T, n_vars].

    Returns:
        ``DBNPosterior(log_evidence f32[] (f32[B]), marginals {name: f32[T, card] (f32[B, T, card])})``.

    Factorial structures (chains whose only parent is their own previous value, observed by childless
    leaves: ``factorial_hmm``, independent HMMs) take a dedicated path: the joint message over the chains
    is kept batch-minor and each chain's transition is one batched matrix product along its axis,
    O(T M K^(M+1)) per sequence. A batch can be passed directly or by ``jax.vmap`` (which is routed to
    the batched path, the batch being the contiguous axis of every product).

    Other structures: a forward scan stores the normalised interface messages α_t (evidence up to t), a backward scan
    the messages β_t (evidence after t). The interface's joint posterior is α_t ⊙ β_t; every other
    variable's marginal is one more slice contraction with output v, run for all t at once (a ``vmap``
    over time, not a scan).
    """
    s = dbn.structure
    evidence = jnp.asarray(evidence)
    if evidence.ndim == 3 or (evidence.ndim == 2 and _factorial_layout(s) is not None):
        batch = evidence if evidence.ndim == 3 else evidence[None]
        if batch.shape[-1] != s.num_vars:
            raise ValueError(f"evidence must have shape [T, n_vars] or [B, T, n_vars] with n_vars = {s.num_vars} "
                             f"({s.names}); got {evidence.shape}")
        layout = _factorial_layout(s)
        if layout is None:
            return jax.vmap(lambda e: _general_smoother(dbn, e))(batch)
        if evidence.ndim == 2:
            return DBNPosterior(*_factorial_one(dbn, layout, evidence))
        return DBNPosterior(*_factorial_smoother(dbn, layout, batch))
    return _general_smoother(dbn, evidence)


def _factorial_one(dbn: DBN, layout, evidence):
    """The factorial path for one sequence; under ``jax.vmap`` it runs the batched path with the batch
    as the contiguous axis (a plain vmap would put the batch first and make every product tiny)."""

    @jax.custom_batching.custom_vmap
    def one(model, ev):
        total, margs = _factorial_smoother(model, layout, ev[None])
        return total[0], {n: m[0] for n, m in margs.items()}

    @one.def_vmap
    def _batched(axis_size, in_batched, model, ev):
        model_batched, ev_batched = in_batched
        if not ev_batched:
            ev = jnp.broadcast_to(ev, (axis_size,) + ev.shape)
        if any(jax.tree.leaves(model_batched)):  # a batch of models: one sequence at a time
            model = jax.tree.map(lambda x, b: x if b else jnp.broadcast_to(x, (axis_size,) + x.shape),
                                 model, model_batched)
            out = jax.vmap(lambda m, e: tuple(_general_smoother(m, e)))(model, ev)
        else:
            out = _factorial_smoother(model, layout, ev)
        return out, jax.tree.map(lambda _: True, out)

    return one(dbn, evidence)


def _general_smoother(dbn: DBN, evidence) -> DBNPosterior:
    s = dbn.structure
    lams = evidence_vectors(dbn, evidence)
    T = lams[0].shape[0]
    p0, pt = _plans(s)
    pb = _backward_plan(s)
    local_plans = _local_plans(s)
    iface = s.interface

    lam0 = tuple(l[0] for l in lams)
    lam_rest = tuple(l[1:] for l in lams)
    m0, _ = _contract(p0, list(dbn.initial_cpts) + _step_inputs(s, lam0))
    m0 = _apply_interface_evidence(s, m0, lam0)
    z0 = jnp.sum(m0)
    m0 = m0 / z0

    def fwd(carry, lam_t):
        msg, total = carry
        m, _ = _contract(pt, list(dbn.transition_cpts) + _step_inputs(s, lam_t) + [msg])
        m = _apply_interface_evidence(s, m, lam_t)
        z = jnp.sum(m)
        m = m / z
        return (m, total + jnp.log(z)), m

    (last, total), alphas_rest = loops.scan(fwd, (m0, jnp.log(z0)), lam_rest)
    alphas = jnp.concatenate([m0[None], alphas_rest], 0)  # [T, *interface]

    ones = jnp.ones(tuple(s.cards[i] for i in iface), jnp.float32)

    def bwd(beta, lam_t):
        b, _ = _contract(pb, list(dbn.transition_cpts) + _step_inputs(s, lam_t)
                         + [_apply_interface_evidence(s, beta, lam_t)])
        b = b / jnp.sum(b)
        return b, beta

    beta0, betas_rest = loops.scan(bwd, ones, lam_rest, reverse=True)
    betas = jnp.concatenate([beta0[None], betas_rest], 0)  # [T, *interface]

    joint = alphas * betas
    joint = joint / jnp.sum(joint, axis=tuple(range(1, joint.ndim)), keepdims=True)
    margs = {}
    for axis, i in enumerate(iface):
        margs[i] = jnp.sum(joint, axis=tuple(a + 1 for a in range(len(iface)) if a != axis))
    for v, (pl0, plt) in local_plans.items():
        others = [i for i in range(s.num_vars) if i not in iface and i != v]

        def first_v(lam_t, beta):
            r, _ = _contract(pl0, list(dbn.initial_cpts) + [lam_t[i] for i in others]
                             + [_apply_interface_evidence(s, beta, lam_t)])
            return r * lam_t[v]

        def step_v(lam_t, msg, beta):
            r, _ = _contract(plt, list(dbn.transition_cpts) + [lam_t[i] for i in others]
                             + [msg, _apply_interface_evidence(s, beta, lam_t)])
            return r * lam_t[v]

        r0 = first_v(lam0, beta0)[None]
        if T > 1:
            r0 = jnp.concatenate([r0, jax.vmap(step_v)(lam_rest, alphas[:-1], betas_rest)], 0)
        margs[v] = r0 / jnp.sum(r0, -1, keepdims=True)
    return DBNPosterior(total + jnp.log(jnp.sum(last)), {n: margs[i] for i, n in enumerate(dbn.names)})


# ------------------------------------------------------------------------- factorial fast path
#
# A DBN whose interface variables are independent chains (each one's only parent is its own previous
# value) and whose other variables are childless observations of the current chains (a factorial HMM,
# independent HMMs, several observation streams) is smoothed without the general contraction engine:
# the joint message over the chains is kept batch-minor, f32[K_1, ..., K_M, B], and chain m's K_m x K_m
# transition is applied along axis m as one batched matrix product with the batch in the product's
# columns (no transposes), so a step costs O(M K^(M+1)) multiply-adds per sequence, never the O(K^(2M))
# of the flattened chain. State sums (normalisers, per-chain marginals, marginals of unobserved leaves)
# are matrix products with 0/1 and CPT matrices rather than reductions over leading axes, which XLA's CPU
# backend runs several times slower. Only the per-variable marginals f32[T, card] leave the loop.


class _FactorialLayout(NamedTuple):
    chains: tuple[int, ...]  # interface variables, in slice order
    leaves: tuple[int, ...]  # observed children of the chains
    leaf_parents: tuple[tuple[int, ...], ...]  # positions (in ``chains``) of each leaf's parents


def _factorial_layout(s: Structure) -> _FactorialLayout | None:
    """The chains and leaves of a factorial-structured 2-TBN, or None when the structure is not one."""
    chains = tuple(i for i in range(s.num_vars) if s.transition_parents[i] == ((i, 1),))
    if not chains or set(s.interface) != set(chains):
        return None
    if any(s.initial_parents[i] for i in chains):
        return None
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
    return _FactorialLayout(chains, tuple(leaves), tuple(leaf_parents))


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


def _checkpoint_block(T: int, S: int, B: int) -> int:
    """Steps per block of the checkpointed forward pass: about sqrt(T), and a block of messages small
    enough to stay in cache (at most 4 MiB)."""
    by_cache = max(1, (4 << 20) // (4 * S * B))
    return int(max(1, min(by_cache, round(math.sqrt(T)), T)))


def _factorial_smoother(dbn: DBN, layout: _FactorialLayout, evidence):
    """Smoothing of a batch ``int32[B, T, n_vars]`` of a factorial-structured DBN.

    The joint forward messages f32[*cards, B] are not all stored: the forward pass keeps one every C
    steps (C about sqrt(T)), and the backward pass recomputes each block of C messages from its
    checkpoint into a small buffer that stays in cache before walking back through it. That costs a
    second forward pass but replaces a [T, *cards, B] array (221 MB for M = 3, K = 6, B = 256,
    T = 1000), whose allocation and traffic cost more than the recomputation.

    Returns (log_evidence f32[B], {name: f32[B, T, card]}).
    """
    s = dbn.structure
    B, T, _ = evidence.shape
    chains, leaves = layout.chains, layout.leaves
    cards = tuple(s.cards[i] for i in chains)
    M, S = len(chains), int(np.prod(cards))
    shape = cards + (B,)
    dtype = jnp.float32
    C = _checkpoint_block(T, S, B)
    nb = -(-T // C)
    Tp = nb * C + 1  # padded steps observe nothing: likelihood one, log normaliser ~0 (not counted)
    ev = jnp.swapaxes(evidence, 0, 1)  # [T, B, n]: one step's evidence is a contiguous slice
    ev = jnp.concatenate([ev, jnp.full((Tp - T,) + ev.shape[1:], -1, ev.dtype)], 0)

    trans_T = [jnp.swapaxes(dbn.transition_cpts[i], 0, 1).astype(dtype) for i in chains]  # [next, prev]
    trans = [dbn.transition_cpts[i].astype(dtype) for i in chains]  # [prev, next]
    tables = [[_leaf_table(cpts[i], ps, cards).astype(dtype) for i, ps in zip(leaves, layout.leaf_parents)]
              for cpts in (dbn.initial_cpts, dbn.transition_cpts)]
    ones = jnp.ones((S,), dtype)
    # evidence on the chains themselves: indicator vectors f32[Tp, K_m, B] (all ones where unobserved)
    chain_lams = [jnp.where((ev[:, None, :, i] >= 0), jnp.arange(c)[None, :, None] == ev[:, None, :, i], True)
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
    R = readout.shape[0]

    def run(use_chain_evidence):
        def lik(t, first=False):
            """f32[*cards, B]: the step's evidence on the chains times the leaves' likelihoods."""
            e = lax.dynamic_index_in_dim(ev, t, 0, keepdims=False)  # [B, n]
            out = None
            for table, i in zip(tables[0 if first else 1], leaves):
                v = jnp.where(e[:, i] >= 0, e[:, i], table.shape[1] - 1)
                f = jnp.take(table, v, axis=1)  # [S, B]
                out = f if out is None else out * f
            out = jnp.ones((S, B), dtype) if out is None else out
            out = out.reshape(shape)
            for m in range(M if use_chain_evidence else 0):
                sh = [1] * M + [B]
                sh[m] = cards[m]
                out = out * lax.dynamic_index_in_dim(chain_lams[m], t, 0, keepdims=False).reshape(sh)
            return out

        def normalise(a):
            c = ones @ a.reshape(S, B)
            return a / jnp.where(c > 0, c, 1.0), c

        def forward_step(a, t):
            for m in range(M):
                a = _apply_chain(a, trans_T[m], m)
            return normalise(a * lik(t))

        a0 = lik(0, first=True)
        for m, i in enumerate(chains):
            sh = [1] * M + [1]
            sh[m] = cards[m]
            a0 = a0 * dbn.initial_cpts[i].astype(dtype).reshape(sh)
        a0, c0 = normalise(a0)

        # forward: checkpoint j holds the message of step j C
        def block_forward(j, carry):
            a, ckpt, total = carry
            ckpt = lax.dynamic_update_index_in_dim(ckpt, a, j, 0)

            def step(i, carry):
                a, total = carry
                t = j * C + i
                a, c = forward_step(a, t)
                return a, total + jnp.where(t < T, jnp.log(c), 0.0)

            a, total = loops.fori_loop(1, C + 1, step, (a, total))
            return a, ckpt, total

        ckpt = jnp.zeros((nb,) + shape, dtype)
        _, ckpt, total = loops.fori_loop(0, nb, block_forward, (a0, ckpt, jnp.log(c0)))

        def read(g, first=False):
            r = (readout_first if first else readout) @ g.reshape(S, B)  # [R, B]
            z = jnp.sum(r[: cards[0]], axis=0)
            return r / jnp.where(z > 0, z, 1.0)

        # backward, block by block from the end: recompute the block's messages from its checkpoint, then
        # walk back through it with beta_t; beta of the last padded step is ones (nothing observed after)
        def block_backward(k, carry):
            beta, out, g = carry
            j = nb - 1 - k
            first = lax.dynamic_index_in_dim(ckpt, j, 0, keepdims=False)
            blk = lax.dynamic_update_index_in_dim(jnp.zeros((C,) + shape, dtype), first, 0, 0)

            def refill(i, carry):
                a, blk = carry
                a, _ = forward_step(a, j * C + i)
                return a, lax.dynamic_update_index_in_dim(blk, a, i, 0)

            if C > 1:
                _, blk = loops.fori_loop(1, C, refill, (first, blk))

            def step(i, carry):
                beta, out, _ = carry
                t = j * C + (C - 1 - i)
                g = lax.dynamic_index_in_dim(blk, C - 1 - i, 0, keepdims=False) * beta
                out = lax.dynamic_update_index_in_dim(out, read(g), t, 0)
                v = beta * lik(t)
                for m in range(M):
                    v = _apply_chain(v, trans[m], m)
                v, _ = normalise(v)
                return v, out, g

            return loops.fori_loop(0, C, step, (beta, out, g))

        out = jnp.zeros((nb * C, R, B), dtype)
        ones_msg = jnp.ones(shape, dtype)
        _, out, g0 = loops.fori_loop(0, nb, block_backward, (ones_msg, out, ones_msg))
        # the last step walked back is step 0, whose leaves use the first slice's CPTs
        out = lax.dynamic_update_index_in_dim(out, read(g0, first=True), 0, 0)
        return total, out[:T]

    # multiplying in the chains' own evidence costs a pass over the joint message per step: compiled
    # in only for batches that observe a chain somewhere
    total, out = lax.cond(jnp.any(evidence[:, :, list(chains)] >= 0), lambda: run(True), lambda: run(False))
    out = jnp.transpose(out, (2, 0, 1))  # [B, T, R]
    margs, offset = {}, 0
    for m, i in enumerate(chains):
        margs[i] = out[:, :, offset: offset + cards[m]]
        offset += cards[m]
    for i in leaves:
        c = s.cards[i]
        pred = out[:, :, offset: offset + c]
        offset += c
        e = evidence[:, :, i]
        margs[i] = jnp.where((e >= 0)[..., None], jax.nn.one_hot(e, c, dtype=dtype), pred)
    return total, {n: margs[i] for i, n in enumerate(s.names)}


def mpe(dbn: DBN, evidence):
    """Most probable explanation: (int32[T, n_vars] assignment (observed values kept), log p(x*, e))."""
    s = dbn.structure
    p0, pt = _plans(s)
    lams = evidence_vectors(dbn, evidence)
    log_i = [jnp.log(c) for c in dbn.initial_cpts]
    log_t = [jnp.log(c) for c in dbn.transition_cpts]

    def best(log_lams):
        l0 = [l[0] for l in log_lams]
        m0, _ = _tn.contract_max(p0, log_i + _step_inputs(s, l0))
        m0 = _apply_interface_evidence(s, m0, l0, jnp.add)
        s0 = jnp.max(m0)
        T = log_lams[0].shape[0]

        def body(carry, ll_t):
            msg, total = carry
            m, _ = _tn.contract_max(pt, log_t + _step_inputs(s, ll_t) + [msg])
            m = _apply_interface_evidence(s, m, ll_t, jnp.add)
            sh = lax.stop_gradient(jnp.max(m))
            return (m - sh, total + sh), None

        if T == 1:
            return s0
        (m, total), _ = loops.scan(body, (m0 - lax.stop_gradient(s0), lax.stop_gradient(s0)),
                                 tuple(l[1:] for l in log_lams))
        return total + jnp.max(m)

    log_lams = tuple(jnp.log(l) for l in lams)
    value, grads = jax.value_and_grad(best)(log_lams)
    states = jnp.stack([jnp.argmax(g, axis=-1).astype(jnp.int32) for g in grads], axis=-1)
    return states, value


# ----------------------------------------------------------------------------------- sampling


def sample(key, dbn: DBN, num_steps: int) -> jax.Array:
    """Ancestral sample ``int32[T, n_vars]`` of the unrolled network."""
    s = dbn.structure

    def draw_slice(k, prev, initial):
        vals = [None] * s.num_vars
        keys = jax.random.split(k, s.num_vars)
        for i in s.order(initial):
            if initial:
                cpt = dbn.initial_cpts[i]
                idx = tuple(vals[j] for j in s.initial_parents[i])
            else:
                cpt = dbn.transition_cpts[i]
                idx = tuple(vals[j] if lag == 0 else prev[j] for j, lag in s.transition_parents[i])
            vals[i] = jax.random.categorical(keys[i], jnp.log(cpt[idx])).astype(jnp.int32)
        return jnp.stack(vals)

    k0, k1 = jax.random.split(key)
    x0 = draw_slice(k0, None, True)
    if num_steps == 1:
        return x0[None]

    def body(prev, k):
        x = draw_slice(k, prev, False)
        return x, x

    _, xs = loops.scan(body, x0, jax.random.split(k1, num_steps - 1))
    return jnp.concatenate([x0[None], xs], 0)


# ----------------------------------------------------------------------------------- unrolling


def unroll_dict(dbn: DBN, num_steps: int) -> dict:
    """``{"states", "parents", "cpts"}`` of the unrolled network (names ``f"{name}_{t}"``)."""
    s = dbn.structure
    states, parents, cpts = {}, {}, {}
    for t in range(num_steps):
        for i in (s.order(t == 0)):
            name = f"{s.names[i]}_{t}"
            states[name] = [str(k) for k in range(s.cards[i])]
            if t == 0:
                parents[name] = [f"{s.names[j]}_0" for j in s.initial_parents[i]]
                cpts[name] = np.asarray(dbn.initial_cpts[i])
            else:
                parents[name] = [f"{s.names[j]}_{t - lag}" for j, lag in s.transition_parents[i]]
                cpts[name] = np.asarray(dbn.transition_cpts[i])
    return dict(states=states, parents=parents, cpts=cpts)


def unroll(dbn: DBN, num_steps: int):
    """The unrolled ``gm.bn.BayesNet`` over T slices (variables ``f"{name}_{t}"``)."""
    from gm import bn

    return bn.BayesNet.from_dict(**unroll_dict(dbn, num_steps))


# ----------------------------------------------------------------------------------- constructors


def factorial_hmm(initials: Sequence, transitions: Sequence, emission) -> DBN:
    """Factorial HMM: M independent chains h^m with p(h^m_{t+1} | h^m_t) and one observation
    p(x_t | h^1_t, ..., h^M_t).

    Args:
        initials: M arrays f32[K_m]; transitions: M arrays f32[K_m, K_m];
        emission: f32[K_1, ..., K_M, V].

    Variables: ``h1 .. hM`` and ``x``. Per-step cost O(M K^(M+1)) (plus K^M V for the emission).
    """
    M = len(initials)
    if len(transitions) != M:
        raise ValueError(f"initials and transitions must have the same length; got {M} and {len(transitions)}")
    cards = [int(np.shape(p)[0]) for p in initials]
    emission = jnp.asarray(emission)
    if emission.shape[:-1] != tuple(cards):
        raise ValueError(f"emission must have shape {tuple(cards)} + (V,); got {emission.shape}")
    names = [f"h{m + 1}" for m in range(M)]
    states = {n: c for n, c in zip(names, cards)}
    states["x"] = int(emission.shape[-1])
    return from_dict(
        states,
        initial_parents={"x": names},
        transition_parents={**{n: [f"{n}[-1]"] for n in names}, "x": names},
        initial_cpts={**dict(zip(names, initials)), "x": emission},
        transition_cpts={**dict(zip(names, transitions)), "x": emission},
    )


def coupled_hmm(initial_h, initial_v, transition_h, transition_v, emission_x, emission_y) -> DBN:
    """Coupled HMM: two chains that drive each other,
    p(h_{t+1} | h_t, v_t), p(v_{t+1} | v_t, h_t), p(x_t | h_t), p(y_t | v_t).

    Args:
        initial_h f32[Kh]; initial_v f32[Kv]; transition_h f32[Kh, Kv, Kh] (axes h_t, v_t, h_{t+1});
        transition_v f32[Kv, Kh, Kv] (axes v_t, h_t, v_{t+1}); emission_x f32[Kh, Vx]; emission_y f32[Kv, Vy].
    """
    Kh, Kv = int(np.shape(initial_h)[0]), int(np.shape(initial_v)[0])
    return from_dict(
        {"h": Kh, "v": Kv, "x": int(np.shape(emission_x)[-1]), "y": int(np.shape(emission_y)[-1])},
        initial_parents={"x": ["h"], "y": ["v"]},
        transition_parents={"h": ["h[-1]", "v[-1]"], "v": ["v[-1]", "h[-1]"], "x": ["h"], "y": ["v"]},
        initial_cpts={"h": initial_h, "v": initial_v, "x": emission_x, "y": emission_y},
        transition_cpts={"h": transition_h, "v": transition_v, "x": emission_x, "y": emission_y},
    )


def boltzmann_zipper(initial_h, transition_h, emission_x, initial_v, transition_v, emission_y) -> DBN:
    """Boltzmann zipper: a chain h (say audio) with its own memory, and a chain v (video) that
    follows its own dynamics and the concurrent h:
    p(h_{t+1} | h_t), p(x_t | h_t), p(v_{t+1} | v_t, h_{t+1}), p(y_t | v_t).

    Args:
        initial_h f32[Kh]; transition_h f32[Kh, Kh]; emission_x f32[Kh, Vx];
        initial_v f32[Kh, Kv] = p(v_1 | h_1); transition_v f32[Kv, Kh, Kv] (axes v_t, h_{t+1}, v_{t+1});
        emission_y f32[Kv, Vy].
    """
    Kh, Kv = int(np.shape(initial_h)[0]), int(np.shape(initial_v)[-1])
    return from_dict(
        {"h": Kh, "v": Kv, "x": int(np.shape(emission_x)[-1]), "y": int(np.shape(emission_y)[-1])},
        initial_parents={"v": ["h"], "x": ["h"], "y": ["v"]},
        transition_parents={"h": ["h[-1]"], "v": ["v[-1]", "h"], "x": ["h"], "y": ["v"]},
        initial_cpts={"h": initial_h, "v": initial_v, "x": emission_x, "y": emission_y},
        transition_cpts={"h": transition_h, "v": transition_v, "x": emission_x, "y": emission_y},
    )


# ----------------------------------------------------------------------------------- learning


def expected_counts(dbn: DBN, evidence):
    """Expected family counts of every CPT: N = θ ⊙ ∂ log p(e) / ∂θ (summed over a batch when
    ``evidence`` is int32[B, T, n_vars]). Returns (initial counts, transition counts, log p(e))."""
    evidence = jnp.asarray(evidence)
    batched = evidence.ndim == 3

    def total(cpts):
        d = DBN(dbn.structure, *cpts)
        if batched:
            return jnp.sum(jax.vmap(lambda e: log_evidence(d, e))(evidence))
        return log_evidence(d, evidence)

    cpts = (dbn.initial_cpts, dbn.transition_cpts)
    value, grads = jax.value_and_grad(total)(cpts)
    counts = jax.tree.map(lambda c, g: c * g, cpts, grads)
    return counts[0], counts[1], value


def _tied(s: Structure, i: int) -> bool:
    """Whether variable i has the same (same-slice) parents in the first slice and later: its initial
    and transition CPTs are then one parameter (an emission, say)."""
    tp = s.transition_parents[i]
    return all(lag == 0 for _, lag in tp) and tuple(j for j, _ in tp) == s.initial_parents[i]


def em_step(dbn: DBN, evidence, *, concentration: float = 1.0):
    """One EM iteration for all CPTs (batch ``int32[B, T, n_vars]``); CPTs of variables whose
    parents are the same in every slice are tied. ``concentration``: symmetric Dirichlet prior
    (1.0 = maximum likelihood). Returns (new DBN, log p(e) under the old parameters)."""
    s = dbn.structure
    ci, ct, value = expected_counts(dbn, evidence)
    new_i, new_t = [], []
    for i in range(s.num_vars):
        a, b = ci[i], ct[i]
        if _tied(s, i):
            a = b = a + b
        for c, old, out in ((a, dbn.initial_cpts[i], new_i), (b, dbn.transition_cpts[i], new_t)):
            c = jnp.maximum(c + concentration - 1.0, 0.0)
            tot = c.sum(-1, keepdims=True)
            out.append(jnp.where(tot > 0, c / jnp.where(tot > 0, tot, 1.0), old))
    return DBN(s, new_i, new_t), value


def random_like(key, dbn: DBN, *, stickiness: float = 0.0) -> DBN:
    """A DBN of the same structure with Dirichlet(1) CPT rows; ``stickiness`` mixes the identity into
    CPTs whose child is its own previous-slice value (h_t | h_{t-1}, ...)."""
    s = dbn.structure
    leaves = list(dbn.initial_cpts) + list(dbn.transition_cpts)
    keys = jax.random.split(key, len(leaves))
    new = [jax.random.dirichlet(k, jnp.ones(c.shape[-1]), c.shape[:-1]) for k, c in zip(keys, leaves)]
    n = s.num_vars
    for i in range(n):
        tp = s.transition_parents[i]
        if (i, 1) in tp and stickiness > 0:
            axis = tp.index((i, 1))
            card = s.cards[i]
            eye_shape = [1] * (len(tp) + 1)
            eye_shape[axis] = card
            eye_shape[-1] = card
            eye = jnp.eye(card).reshape(eye_shape)
            new[n + i] = (1 - stickiness) * new[n + i] + stickiness * jnp.broadcast_to(eye, new[n + i].shape)
    return DBN(s, new[:n], new[n:])
