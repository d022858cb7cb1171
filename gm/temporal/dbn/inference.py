"""Exact inference in a 2-TBN: log-evidence, filtering, smoothing, MPE and expected counts.

Inference carries a forward message over the *interface* (the variables of slice t that have children
in slice t+1) and contracts, at every step, the message with the slice's CPTs and evidence vectors
along a path planned once by ``gm.bn``'s contraction engine; the step runs inside ``lax.scan``. The
cost therefore follows the structure: a factorial HMM with M chains of K states costs O(M K^(M+1))
per step (one chain at a time), never the O(K^(2M)) of the flattened HMM.

* ``log_evidence``, ``filter`` (p(X_t^v | e_{1:t})), ``smoother`` (p(X_t^v | e_{1:T})) for any evidence
  pattern ``int32[T, n_vars]`` (``-1`` unobserved); ``smoother`` also takes a batch
  ``int32[B, T, n_vars]``, and runs factorial structures on a dedicated batch-minor path
  (``gm.temporal.dbn.factorial``), and other batches batch-minor on the general engine (the batch a label
  of the messages and evidence vectors, never of the CPTs, so each CPT product has the batch in its
  columns). Filtered marginals are gradients of the log evidence with respect to
  the evidence vectors (the differential approach: p(x | e) = λ ∂ log Z/∂λ).
* ``mpe``: the most probable joint assignment (max-product forward scan; the argmax is the gradient
  of the max with respect to the log evidence vectors; a unique maximiser is assumed).
* ``expected_counts``: the E-step of EM, θ ⊙ ∂ log p(e)/∂θ (estimation itself: ``gm.learn.dbn``).

Values (issue 18, through `gm.validation`): every entry point checks the CPTs (``check_model``) and the
evidence (``check_evidence``). Eager calls raise ``ValueError`` naming the CPT (slice, variable, position,
value) or the evidence entry (step, variable, value). Unchecked under ``jax.jit``, the marker: an invalid
CPT makes log p(e), the marginals of every unobserved entry, expected counts and an MPE's ``log_prob``
NaN (a sample: all -1); an evidence value out of range (below -1 included) is impossible evidence, whose
log p(e) is NaN or -inf, never read as unobserved. ``gm.validation.checked`` compiles the checks in.

Length: the smoother exists twice, per sequence (``_general_smoother``, what ``jax.vmap``, ``filter``
and the per-sequence oracles use) and batch-minor on a batch (``_batch_smoother``, its plans carrying a
batch label); both share the planning helpers and the contraction wrapper, which is why they sit in one
module. About a quarter of the file is docstrings.

Reference: K. Murphy (2002), Dynamic Bayesian Networks, PhD thesis, ch. 3.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gm import loops
from gm.bn import tensornet
from gm.temporal.common import check_probabilities, rows_valid
from gm.temporal.dbn.factorial import factorial_layout, factorial_smoother, factorial_smoother_one
from gm.temporal.dbn.structure import DBN, DBNPosterior, Structure
from gm.types import MPE
from gm.xla import vary_like
from gm.validation import is_concrete, require

__all__ = ["DBNCounts", "check_evidence", "check_model", "evidence_vectors", "expected_counts", "filter", "log_evidence", "mpe", "smoother",
           "step_flops"]

SMOOTHER_METHODS = ("auto", "general", "factorial")


class DBNCounts(NamedTuple):
    """Result of ``expected_counts``.

    Attributes:
        initial: tuple of expected counts shaped like ``model.initial_cpts`` (the first slice's families).
        transition: tuple shaped like ``model.transition_cpts`` (summed over the later slices).
        log_evidence: f32[] Σ log p(e) over the sequences.
    """

    initial: tuple
    transition: tuple
    log_evidence: jax.Array


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
    p0 = tensornet.plan(tuple(init_inputs + ev_inputs), iface, sizes)
    prev_iface = tuple(n + i for i in iface)
    pt = tensornet.plan(tuple(trans_inputs + ev_inputs + [prev_iface]), iface, sizes)
    return p0, pt


def _backward_plan(s: Structure):
    """Plan of β_{t-1}(interface_{t-1}) = Σ_{slice t} CPTs · λ_t · (λ_t β_t)(interface_t)."""
    n, sizes, _, trans_inputs = _labels(s)
    iface = s.interface
    ev_inputs = [(i,) for i in range(n) if i not in iface]
    prev_iface = tuple(n + i for i in iface)
    return tensornet.plan(tuple(trans_inputs + ev_inputs + [tuple(iface)]), prev_iface, sizes)


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
        out[v] = (tensornet.plan(tuple(init_inputs + ev_inputs + [tuple(iface)]), (v,), sizes),
                  tensornet.plan(tuple(trans_inputs + ev_inputs + [prev_iface, tuple(iface)]), (v,), sizes))
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


def step_flops(model: DBN) -> float:
    """Multiply-adds of one transition step of the planned contraction (the per-step cost).

    Examples:
        >>> step_flops(factorial_hmm([pi] * 3, [A] * 3, emission))   # about M K^(M+1) + K^M V
    """
    return _plans(model.structure)[1].flops


# ----------------------------------------------------------------------------------- evidence


def check_evidence(model: DBN, evidence) -> jax.Array:
    """``evidence`` (int32[T, n_vars] or int32[B, T, n_vars]) after the checks every DBN entry point runs.

    Dtype and shape always (``TypeError`` for non-integer evidence, ``ValueError`` naming the shape
    expected); values when concrete or compiled under `gm.validation.checked`: every entry a state index
    of its variable or -1 (unobserved), else ``ValueError`` naming the step, the variable and the value.
    Unchecked under ``jax.jit``, an out-of-range value (any value below -1 included) is impossible evidence
    (an indicator of zeros: log p(e) is -inf or NaN, never a plausible number), as in ``gm.bn``.

    Returns:
        ``evidence`` as an int32 array.

    Examples:
        >>> check_evidence(model, jnp.array([[0, 5]]))   # ValueError: evidence[0, 1] = 5 for variable ...
    """
    evidence = jnp.asarray(evidence)
    if evidence.dtype == jnp.bool_:
        evidence = evidence.astype(jnp.int32)
    if not jnp.issubdtype(evidence.dtype, jnp.integer):
        raise TypeError(f"evidence must be an integer array of state indices (-1 unobserved); got dtype "
                        f"{evidence.dtype}")
    n = model.structure.num_vars
    if evidence.ndim not in (2, 3) or evidence.shape[-1] != n or evidence.shape[-2] < 1:
        raise ValueError(f"evidence must have shape [T, n_vars] or [B, T, n_vars] with T >= 1 and n_vars = {n} "
                         f"({model.names}); got {evidence.shape}")
    values = np.asarray(evidence) if is_concrete(evidence) else evidence
    cards = np.asarray(model.cards)

    def describe(at):
        if at is None:
            return "evidence out of range: each entry must be a state index of its variable or -1 (unobserved)"
        i = at[-1]
        return (f"evidence{list(at)} = {int(values[at])} for variable {model.names[i]!r} is out of range: it has "
                f"{model.cards[i]} states; use a state index or -1 (unobserved)")

    require((values >= -1) & (values < cards), describe)
    return evidence.astype(jnp.int32)


def check_model(model: DBN, name: str = "model") -> DBN:
    """``model`` after the value check every DBN entry point runs on its CPTs.

    Eager (or compiled under `gm.validation.checked`): every CPT entry finite and non-negative and every
    row summing to one, else ``ValueError`` naming the slice (``initial_cpts`` / ``transition_cpts``), the
    variable, the position and the value (a model built with the ``DBN(...)`` constructor, changed by
    ``jax.tree.map`` or returned by an EM step is checked here, not only by ``from_dict``). Unchecked under
    ``jax.jit`` an invalid model is the marker: the first variable's initial CPT becomes NaN (O(CPT size)
    work), so log p(e), the marginals of unobserved entries and an MPE's ``log_prob`` are NaN, never
    plausible numbers.

    Returns:
        ``model`` (eager: the same object; traced: the possibly poisoned copy).

    Examples:
        >>> check_model(DBN(model.structure, [jnp.array([1.2, -0.2]), ...], ...))
        Traceback (most recent call last):
        ...
        ValueError: model.initial_cpts['h1'][1] = -0.2 is negative or not finite: every entry must be ...
    """
    cpts = (("initial_cpts", model.initial_cpts), ("transition_cpts", model.transition_cpts))
    for kind, tables in cpts:
        for var, table in zip(model.names, tables):
            check_probabilities(table, f"{name}.{kind}[{var!r}]")
    if is_concrete(model):
        return model
    ok = rows_valid(*model.initial_cpts, *model.transition_cpts)
    first = jnp.where(ok, model.initial_cpts[0], jnp.nan)
    return DBN(model.structure, (first,) + model.initial_cpts[1:], model.transition_cpts)


def evidence_vectors(model: DBN, evidence) -> tuple[jax.Array, ...]:
    """Indicator vectors λ_v f32[T, card_v] from ``int32[T, n_vars]`` (-1: all ones), one per variable.

    Examples:
        >>> lams = evidence_vectors(model, jnp.array([[-1, 2], [0, 1]]))   # λ_0 = [[1, 1], [1, 0]], ...
    """
    evidence = check_evidence(model, evidence)
    n = model.structure.num_vars
    if evidence.ndim != 2 or evidence.shape[1] != n:
        raise ValueError(f"evidence must have shape [T, n_vars] = [T, {n}] ({model.names}); got {evidence.shape}")
    lams = []
    for i, c in enumerate(model.cards):
        e = evidence[:, i]  # out of range (below -1 too): all zeros, impossible evidence
        lams.append(jnp.where((e == -1)[:, None], 1.0, jax.nn.one_hot(e, c, dtype=jnp.float32)))
    return tuple(lams)


def _contract(plan, arrays):
    # no rescaling inside a step: the message is normalised after every step, and one step multiplies
    # only a slice's worth of probabilities
    return tensornet.contract(plan, arrays, rescale=False)


def _forward_sum(model: DBN, lams, *, want_filtered=False):
    """Scaled forward scan. Returns (log Z, filtered marginals tuple or None)."""
    s = model.structure
    p0, pt = _plans(s)
    T = lams[0].shape[0]

    def first(lam0):
        m, ls = _contract(p0, list(model.initial_cpts) + _step_inputs(s, lam0))
        m = _apply_interface_evidence(s, m, lam0)
        z = jnp.sum(m)
        return jnp.log(z) + ls, m / z

    def step(msg, lam_t):
        m, ls = _contract(pt, list(model.transition_cpts) + _step_inputs(s, lam_t) + [msg])
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


def log_evidence(model: DBN, evidence) -> jax.Array:
    """f32[]: log p(e) for evidence ``int32[T, n_vars]`` (-1 unobserved), by the scaled forward scan.

    Examples:
        >>> total = jnp.sum(jax.vmap(lambda e: log_evidence(model, e))(evidences))   # a batch
    """
    model = check_model(model)
    return _forward_sum(model, evidence_vectors(model, evidence))[0]


def filter(model: DBN, evidence) -> DBNPosterior:  # noqa: A001
    """Filtered marginals p(X_t^v | e_{1:t}) for every slice variable and step, and log p(e).

    Each step's filtered marginals are gradients of that step's log normaliser with respect to its
    evidence vectors (p(x | e) = λ ∂ log Z / ∂λ).

    Args:
        model: the 2-TBN; evidence: int32[T, n_vars] (-1 unobserved).

    Returns:
        ``DBNPosterior(log_evidence f32[], marginals {name: f32[T, card]})``.

    Examples:
        >>> p_emotion = filter(model, evidence).marginals["Emotion"]   # f32[T, 7]
    """
    model = check_model(model)
    total, filt = _forward_sum(model, evidence_vectors(model, evidence), want_filtered=True)
    return DBNPosterior(total, dict(zip(model.names, filt)))


# Coupled chains with at least this many joint states take the chain path under ``method="auto"``, fewer
# the batch-minor general engine (experiments/bench_hmm.py --only dbn-scaling, B = 16, T = 100, 2-core CPU,
# after the general engine's in-scan read-out): the general engine was 1.05x to 4.5x faster up to
# 32,768 states (M = 5, K = 8: 2.3 s against 3.5 s), the chain path 1.6x faster at 65,536 (M = 4, K = 16:
# 9.1 s against 14.7 s, where the general engine's stored messages take 840 MB against the chain path's
# checkpoints).
COUPLED_CHAIN_MIN_STATES = 65536


def smoother(model: DBN, evidence, *, method: str = "auto") -> DBNPosterior:
    """Smoothed marginals p(X_t^v | e_{1:T}) and log p(e).

    Args:
        model: the 2-TBN.
        evidence: int32[T, n_vars] (-1 unobserved), or a batch int32[B, T, n_vars].
        method: ``"auto"`` (the chain path for factorial structures, the general engine otherwise),
            ``"general"`` (always the general engine) or ``"factorial"`` (the chain path, also for coupled
            chains: O(T) memory by checkpoints; ValueError for a structure that is not chain-structured).

    Returns:
        ``DBNPosterior(log_evidence f32[] (f32[B]), marginals {name: f32[T, card] (f32[B, T, card])})``.

    Factorial structures (chains whose only parent is their own previous value, observed by childless
    leaves: ``factorial_hmm``, independent HMMs) take a dedicated path (``gm.temporal.dbn.factorial``):
    the joint message over the chains is kept batch-minor and each chain's transition is one batched
    matrix product along its axis, O(T M K^(M+1)) per sequence. A batch can be passed directly or by
    ``jax.vmap`` (which is routed to the batched path, the batch being the contiguous axis of every
    product).

    Coupled chains (each chain's parents are previous chains, e.g. its neighbours) run the chain path
    with ``method="factorial"``: each chain's CPT is multiplied into the batch-minor message in turn and
    every previous state no later chain needs is summed out at once (the frontier order,
    O(M K^(M+2)) per step for neighbour coupling); ``"auto"`` gives them the general engine below
    `COUPLED_CHAIN_MIN_STATES` joint states and the chain path from there.

    The general engine: a forward scan stores the normalised interface messages α_t (evidence up to t), a
    backward scan the messages β_t (evidence after t). The interface's joint posterior is α_t ⊙ β_t; every
    other variable's marginal is one more slice contraction with output v, run for all t at once (a
    ``vmap`` over time, not a scan).

    Examples:
        >>> post = smoother(coupled_hmm(...), evidence)          # evidence int32[T, n_vars]
        >>> posts = smoother(factorial_hmm(...), evidences)      # a batch int32[B, T, n_vars]
    """
    if method not in SMOOTHER_METHODS:
        raise ValueError(f"method must be one of {SMOOTHER_METHODS}; got {method!r}")
    s = model.structure
    model = check_model(model)
    evidence = check_evidence(model, evidence)
    layout = None if method == "general" else factorial_layout(s)
    if method == "factorial" and layout is None:
        raise ValueError(f"method='factorial' needs a chain structure (chains whose parents are previous chains, "
                         f"observed by childless leaves); {s.names} is not one")
    if (method == "auto" and layout is not None and not layout.factorial
            and math.prod(s.cards[c] for c in layout.chains) < COUPLED_CHAIN_MIN_STATES):
        layout = None  # coupled chains below COUPLED_CHAIN_MIN_STATES joint states: the general engine
    if evidence.ndim == 3 or (evidence.ndim == 2 and layout is not None):
        batch = evidence if evidence.ndim == 3 else evidence[None]
        if batch.shape[-1] != s.num_vars:
            raise ValueError(f"evidence must have shape [T, n_vars] or [B, T, n_vars] with n_vars = {s.num_vars} "
                             f"({s.names}); got {evidence.shape}")
        if layout is None:
            return _batch_smoother(model, batch)
        if evidence.ndim == 2:
            return factorial_smoother_one(model, layout, evidence, fallback=_general_smoother)
        return factorial_smoother(model, layout, batch)
    return _general_smoother(model, evidence)


def _general_smoother(model: DBN, evidence) -> DBNPosterior:
    s = model.structure
    lams = evidence_vectors(model, evidence)
    T = lams[0].shape[0]
    p0, pt = _plans(s)
    pb = _backward_plan(s)
    local_plans = _local_plans(s)
    iface = s.interface

    lam0 = tuple(l[0] for l in lams)
    lam_rest = tuple(l[1:] for l in lams)
    m0, _ = _contract(p0, list(model.initial_cpts) + _step_inputs(s, lam0))
    m0 = _apply_interface_evidence(s, m0, lam0)
    z0 = jnp.sum(m0)
    m0 = m0 / z0

    def fwd(carry, lam_t):
        msg, total = carry
        m, _ = _contract(pt, list(model.transition_cpts) + _step_inputs(s, lam_t) + [msg])
        m = _apply_interface_evidence(s, m, lam_t)
        z = jnp.sum(m)
        m = m / z
        return (m, total + jnp.log(z)), m

    (last, total), alphas_rest = loops.scan(fwd, (m0, jnp.log(z0)), lam_rest)
    alphas = jnp.concatenate([m0[None], alphas_rest], 0)  # [T, *interface]

    ones = jnp.ones(tuple(s.cards[i] for i in iface), jnp.float32)

    def bwd(beta, lam_t):
        b, _ = _contract(pb, list(model.transition_cpts) + _step_inputs(s, lam_t)
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
            r, _ = _contract(pl0, list(model.initial_cpts) + [lam_t[i] for i in others]
                             + [_apply_interface_evidence(s, beta, lam_t)])
            return r * lam_t[v]

        def step_v(lam_t, msg, beta):
            r, _ = _contract(plt, list(model.transition_cpts) + [lam_t[i] for i in others]
                             + [msg, _apply_interface_evidence(s, beta, lam_t)])
            return r * lam_t[v]

        r0 = first_v(lam0, beta0)[None]
        if T > 1:
            r0 = jnp.concatenate([r0, jax.vmap(step_v)(lam_rest, alphas[:-1], betas_rest)], 0)
        margs[v] = r0 / jnp.sum(r0, -1, keepdims=True)
    return DBNPosterior(total + jnp.log(jnp.sum(last)), {n: margs[i] for i, n in enumerate(model.names)})


def mpe(model: DBN, evidence) -> MPE:
    """Most probable explanation: the joint assignment of every variable at every step that maximises
    p(x, e), by a max-product forward scan; the argmax is the gradient of the max with respect to the
    log evidence vectors (a unique maximiser is assumed).

    Args:
        model: the 2-TBN; evidence: int32[T, n_vars] (-1 unobserved).

    Returns:
        ``gm.types.MPE(states int32[T, n_vars] (observed values kept), log_prob f32[] = log p(x*, e))``.

    Examples:
        >>> best = mpe(model, evidence)
        >>> best.states.shape   # (T, n_vars)
    """
    s = model.structure
    p0, pt = _plans(s)
    model = check_model(model)
    lams = evidence_vectors(model, evidence)
    log_i = [jnp.log(c) for c in model.initial_cpts]
    log_t = [jnp.log(c) for c in model.transition_cpts]

    def best(log_lams):
        l0 = [l[0] for l in log_lams]
        m0, _ = tensornet.contract_max(p0, log_i + _step_inputs(s, l0))
        m0 = _apply_interface_evidence(s, m0, l0, jnp.add)
        s0 = jnp.max(m0)
        T = log_lams[0].shape[0]

        def body(carry, ll_t):
            msg, total = carry
            m, _ = tensornet.contract_max(pt, log_t + _step_inputs(s, ll_t) + [msg])
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
    return MPE(states, value)


def expected_counts(model: DBN, evidence) -> DBNCounts:
    """Expected family counts of every CPT: N = θ ⊙ ∂ log p(e) / ∂θ (summed over a batch when
    ``evidence`` is int32[B, T, n_vars]; P(e) is multilinear in the CPT entries, Darwiche 2003).

    Args:
        model: the 2-TBN; evidence: int32[T, n_vars] or int32[B, T, n_vars] (-1 unobserved).

    Returns:
        ``DBNCounts(initial, transition, log_evidence)``: counts shaped like the CPTs, and Σ log p(e).

    Examples:
        >>> counts = expected_counts(model, evidences)
        >>> float(counts.transition[0].sum())   # one transition of variable 0 per later slice and sequence
    """
    model = check_model(model)
    evidence = check_evidence(model, evidence)
    batched = evidence.ndim == 3

    def total(cpts):
        d = DBN(model.structure, *cpts)
        if batched:
            return jnp.sum(jax.vmap(lambda e: log_evidence(d, e))(evidence))
        return log_evidence(d, evidence)

    # typed like the evidence: inside jax.shard_map the gradient with respect to CPTs replicated on every
    # device would be summed over the devices (JAX's transpose of a replicated value), giving each
    # sequence the counts of its position on every device
    cpts = vary_like((model.initial_cpts, model.transition_cpts), evidence)
    value, grads = jax.value_and_grad(total)(cpts)
    counts = jax.tree.map(lambda c, g: c * g, cpts, grads)
    return DBNCounts(counts[0], counts[1], value)


# ----------------------------------------------------------------------------------- a batch, batch-minor


def _batch_plans(s: Structure, batch: int):
    """The general engine's plans for a batch: the batch is one more label (``2 n``) carried by the
    evidence vectors and the messages, never by the CPTs, so every CPT product has the batch in its
    columns (one GEMM) instead of being repeated per sequence as under ``jax.vmap``.

    Returns (first-slice plan, forward plan, backward plan, {v: (first, later) local plans})."""
    n, sizes, init_inputs, trans_inputs = _labels(s)
    bl, sizes = 2 * n, sizes + (batch,)
    iface = s.interface
    ev = [(i, bl) for i in range(n) if i not in iface]
    prev_iface, cur_iface = tuple(n + i for i in iface) + (bl,), tuple(iface) + (bl,)
    p0 = tensornet.plan(tuple(init_inputs + ev + [(bl,)]), cur_iface, sizes)
    pt = tensornet.plan(tuple(trans_inputs + ev + [prev_iface]), cur_iface, sizes)
    pb = tensornet.plan(tuple(trans_inputs + ev + [cur_iface]), prev_iface, sizes)
    local = {}
    for v in range(n):
        if v not in iface:
            others = [(i, bl) for i in range(n) if i not in iface and i != v]
            local[v] = (tensornet.plan(tuple(init_inputs + others + [cur_iface]), (v, bl), sizes),
                        tensornet.plan(tuple(trans_inputs + others + [prev_iface, cur_iface]), (v, bl), sizes))
    return p0, pt, pb, local


def _batch_smoother(model: DBN, evidence) -> DBNPosterior:
    """The general engine on a batch ``int32[B, T, n_vars]``, batch-minor (see `_batch_plans`): the
    same passes as `_general_smoother`, with messages f32[*interface, B]."""
    s = model.structure
    B, T, n = evidence.shape
    iface = s.interface
    k = len(iface)
    p0, pt, pb, local = _batch_plans(s, B)
    ev = jnp.transpose(evidence, (1, 2, 0))  # [T, n, B]
    # evidence vectors f32[T, card, B], ones where unobserved (out of range: zeros, impossible evidence)
    lams = [jnp.where(ev[:, i, None, :] == -1, 1.0, (jnp.arange(c)[None, :, None] == ev[:, i, None, :])
                      .astype(jnp.float32)) for i, c in enumerate(s.cards)]

    def leaves(lam_t, skip=()):
        return [lam_t[i] for i in range(n) if i not in iface and i not in skip]

    def with_iface_evidence(msg, lam_t):
        for axis, i in enumerate(iface):
            shape = [1] * (k + 1)
            shape[axis], shape[k] = s.cards[i], B
            msg = msg * lam_t[i].reshape(shape)
        return msg

    def normalise(m):
        z = jnp.sum(m, axis=tuple(range(k)))
        return m / jnp.where(z > 0, z, 1.0), z

    lam0 = [l[0] for l in lams]
    lam_rest = [l[1:] for l in lams]
    m0, _ = _contract(p0, list(model.initial_cpts) + leaves(lam0) + [jnp.ones((B,), jnp.float32)])
    m0, z0 = normalise(with_iface_evidence(m0, lam0))

    def fwd(carry, lam_t):
        msg, total = carry
        m, _ = _contract(pt, list(model.transition_cpts) + leaves(lam_t) + [msg])
        m, z = normalise(with_iface_evidence(m, lam_t))
        return (m, total + jnp.log(z)), m

    (_, total), alphas_rest = loops.scan(fwd, (m0, jnp.log(z0)), lam_rest)  # alphas_t, t >= 1

    def interface_marginals(alpha, beta):  # [card_i, B] of each interface variable from alpha_t * beta_t
        def halves(x, axes):  # ``axes``: the positions in ``x`` of the interface variables left, in order
            if len(axes) == 1:
                return [x]
            left, right = axes[: len(axes) // 2], axes[len(axes) // 2:]
            xl, xr = lax.optimization_barrier((jnp.sum(x, axis=tuple(right)), jnp.sum(x, axis=tuple(left))))
            return halves(xl, left) + halves(xr, [a - len(left) for a in right])

        joint = lax.optimization_barrier(alpha * beta)
        return [m / jnp.sum(m, axis=0, keepdims=True) for m in halves(joint, list(range(k)))]

    # the interface's marginals are read out inside the backward scan, from alpha_t and beta_t while they
    # are in cache, and the betas are kept only for the other variables' marginals. The interface is summed
    # in halves behind optimisation barriers: without them XLA folded the sums back into one reduction of
    # alpha_t * beta_t per variable. Coupled HMM, M = 4, K = 8, B = 16, T = 100: the smoother 188 -> 154 ms
    # (the read-out after the scan passed over alphas and betas, 26 MB each, once per interface variable)
    def bwd(beta, xs):
        lam_t, alpha_t = xs
        b, _ = _contract(pb, list(model.transition_cpts) + leaves(lam_t) + [with_iface_evidence(beta, lam_t)])
        return normalise(b)[0], ((beta if local else None), interface_marginals(alpha_t, beta))

    ones = jnp.ones(tuple(s.cards[i] for i in iface) + (B,), jnp.float32)
    beta0, (betas_rest, iface_rest) = loops.scan(bwd, ones, (lam_rest, alphas_rest), reverse=True)
    margs = {i: jnp.concatenate([m[None], rest], 0)  # [T, card, B]
             for i, m, rest in zip(iface, interface_marginals(m0, beta0), iface_rest)}
    alphas = jnp.concatenate([m0[None], alphas_rest], 0) if local else None  # [T, *interface, B]
    for v, (pl0, plt) in local.items():
        r0, _ = _contract(pl0, list(model.initial_cpts) + leaves(lam0, (v,)) + [with_iface_evidence(beta0, lam0)])
        r = [(r0 * lam0[v])[None]]
        if T > 1:
            def step_v(lam_t, msg, beta):
                rt, _ = _contract(plt, list(model.transition_cpts) + leaves(lam_t, (v,))
                                  + [msg, with_iface_evidence(beta, lam_t)])
                return rt * lam_t[v]

            r.append(jax.vmap(step_v)(lam_rest, alphas[:-1], betas_rest))
        r = jnp.concatenate(r, 0)
        margs[v] = r / jnp.sum(r, axis=1, keepdims=True)
    return DBNPosterior(total, {name: jnp.transpose(margs[i], (2, 0, 1)) for i, name in enumerate(s.names)})
