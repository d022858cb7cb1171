"""Exact inference in discrete Bayesian networks by planned tensor contraction.

Evidence is data, not structure: variable i's evidence is a vector ``e_i`` (the one-hot of its observed
state, all ones when unobserved, times any soft-evidence likelihood) multiplied into its CPT along the
child axis. The network times its evidence is one tensor network whose total is P(e); its contraction
plan depends only on the structure, so one compiled function answers every evidence pattern and
`jax.vmap` batches them.

All posterior marginals come from one gradient (the differential approach to inference, Darwiche 2003):
``P(X_i = x | e) = e_i(x) * d log P(e) / d e_i(x)``, about the cost of two contractions for all variables.
MPE is the same contraction in the max-product semiring, decoded by argmax traceback.

Every function takes one evidence vector ``int32[n_vars]`` (-1 = unobserved); batch with `jax.vmap` or
`map_batched` (which also chunks batches too large for memory).

The examples use the two-variable network Rain -> Wet: P(Rain = yes) = 0.2, P(Wet = yes | Rain) = 0.1 or
0.8, so P(Wet = yes) = 0.24 and P(Rain = yes | Wet = yes) = 0.16 / 0.24 = 2/3.

Length: the engines' dispatch (host, step program, unrolled), the batch-minor paths of `map_batched` and
the queries share private helpers that would have to become public to be split; about a third of the
file is docstrings and their runnable examples.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gm.bn import engine, tensornet
from gm.bn.evidence import Soft, check_evidence, evidence_matrix, evidence_matrix_host, evidence_vectors, safe_log
from gm.bn.network import BayesNet, Structure
from gm.types import MPE
from gm.validation import is_concrete, require

# --------------------------------------------------------------------------------------------------
# plans


@functools.lru_cache(maxsize=256)
def network_plan(structure: Structure, output: tuple[int, ...] = ()) -> tensornet.Plan:
    """The contraction plan of the network's CPTs (evidence folded in) into ``output`` variables.

    Cached per structure and output, so every query of a network reuses one plan.

    Args:
      structure: the network's `Structure`.
      output: indices of the variables left uncontracted (``()``: the scalar P(e)).

    Returns:
      A `gm.bn.tensornet.Plan` over the CPTs' families.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> network_plan(net.structure).steps
      (Step(a=0, b=1, out=()),)
    """
    return tensornet.plan(structure.families, tuple(output), structure.cards)


def _weighted_cpts(net: BayesNet, vecs: Sequence[jax.Array]) -> list[jax.Array]:
    return [cpt * vec for cpt, vec in zip(net.cpts, vecs)]


def _scaled_total(net: BayesNet, vecs, output: tuple[int, ...] = ()):
    plan = network_plan(net.structure, output)
    # the evidence apart from the CPTs: under jax.vmap the CPTs enter the large steps unbatched
    return tensornet.contract(plan, net.cpts, vectors=vecs)


def _log_partition(net: BayesNet, vecs) -> jax.Array:
    return _log_partition_and_flag(net, vecs)[0]


def _log_partition_and_flag(net: BayesNet, vecs):
    """``(log P(e), P(e) > 0)``. The flag comes from the final mantissa, not from ``isfinite(log P(e))``:
    log P(e) ends a chain of one add per rescale, and XLA fuses that chain into every consumer of the flag
    (each variable's posterior normalisation: on pigs, 441 copies of 221 adds to compile)."""
    mantissa, log_scale = _scaled_total(net, vecs)
    return safe_log(mantissa) + log_scale, mantissa > 0


def _raise_if_impossible(net: BayesNet, evidence, log_z, what: str):
    if not is_concrete(log_z, evidence):
        raise ValueError(
            f"{what}(..., check=True) needs concrete evidence: call it outside jax.jit / jax.vmap, "
            "or test log_evidence == -inf inside"
        )
    if not np.isfinite(float(log_z)):
        observed = {k: v for k, v in net.assignment(np.asarray(evidence)).items() if v is not None}
        raise ValueError(f"impossible evidence: P(e) = 0 for {observed}")


# --------------------------------------------------------------------------------------------------
# queries


def log_prob(net: BayesNet, x) -> jax.Array:
    """log P(x) of a full assignment ``x: int32[n_vars]`` (every entry a valid state index).

    log P(x) = sum_i log P(x_i | x_parents(i)). Returns ``-inf`` for an assignment of probability 0.
    Eager calls raise ValueError naming a variable whose entry is not one of its states; unchecked
    under `jax.jit`, such an entry is clipped into range by the gather (wrap with
    `gm.validation.checked` to check it).

    Args:
      net: the network.
      x: ``int32[n_vars]``, a state index for every variable.

    Returns:
      ``f32[]``, log P(x).

    Raises:
      ValueError: a shape other than ``(n_vars,)``, or (eager) an entry that is not a state.
      TypeError: a non-integer dtype.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> print(log_prob(net, jnp.array([1, 1])))     # log(0.2 * 0.8)
      -1.8326
    """
    _require_variables(net)
    x = jnp.asarray(x)
    if x.shape != (net.n_vars,):
        raise ValueError(f"x must have shape ({net.n_vars},), got {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(f"x must be an integer array of state indices, got dtype {x.dtype}")
    values = np.asarray(x) if is_concrete(x) else x

    def describe(at):
        if at is None:
            return "x out of range: every entry of a full assignment must be a state index of its variable"
        i = at[0]
        return (f"x[{i}] = {int(values[i])} is not a state of {net.names[i]!r} "
                f"({net.cards[i]} states {list(net.states[i])})")

    require((values >= 0) & (values < np.asarray(net.cards)), describe)
    total = jnp.zeros((), dtype=jnp.result_type(*net.cpts))
    for i, cpt in enumerate(net.cpts):
        idx = tuple(x[p] for p in net.parents[i]) + (x[i],)
        total = total + safe_log(cpt[idx])
    return total


# Engines. "host": numpy on the unpadded step program, for concrete (eager) calls: no compilation, so a
# notebook's first answer costs the contraction itself. "program": the fixed-shape step program under
# XLA (one scan per segment; compile time about constant in the network's size), for traced calls
# (jit, vmap, grad). "unrolled": the first engine, one XLA kernel per contraction step (fast to run on
# small networks, slow to compile on large ones). "auto": host when every input is concrete; traced,
# unrolled for plans of at most 120 steps or of heavy steps (below) and program otherwise.
METHODS = ("auto", "host", "program", "unrolled")
_UNROLLED_MAX_STEPS = 120
# Longer plans whose steps average at least this many multiply-adds per evidence set stay unrolled too:
# there the program's padded segments cost far more than the unrolled engine's longer compile (B = 16,
# same process: munin1 (185 steps, 1.2e6 multiply-adds a step) 2.8 sets/s on the program against 27.5
# unrolled, compile 21 s against 14 s; link (723 steps, 1.1e5 a step) 4.2 against 45, compile 38 s
# against 61 s). Diabetes, pigs and the munin2-4 family (3e3 to 3e4 a step) keep the program.
_UNROLLED_MIN_STEP_FLOPS = 5e4


def _unrolled_pays(net: BayesNet, max_product: bool = False) -> bool:
    """Whether a traced call on ``auto`` takes the unrolled engine (else the step program). MPE
    (``max_product``) keeps the step rule: munin1's `mpe` compiles in 3.4 s and runs in 0.44 s on the
    program, against 13.4 s and 0.69 s unrolled (`map_query` sums its table first, so it is sum-product)."""
    p = network_plan(net.structure)
    heavy = not max_product and p.flops >= _UNROLLED_MIN_STEP_FLOPS * len(p.steps)
    return len(p.steps) <= _UNROLLED_MAX_STEPS or heavy


def _require_variables(net: BayesNet) -> None:
    if not net.structure.names:
        raise ValueError("the network has 0 variables: inference needs at least one (an empty network can only "
                         "be sampled, giving int32[num_samples, 0])")


def _method(method: str, net: BayesNet, evidence, soft, max_product: bool = False) -> str:
    _require_variables(net)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "auto":
        if is_concrete(net, evidence, soft):
            return "host"
        # Traced: the unrolled engine's kernels run faster (hepar2, batched: 84k sets/s against the
        # program's 3k) and compile in seconds while the plan is short; past that the program's
        # compile time, about constant, wins (munin2: minutes unrolled), unless the steps are heavy.
        return "unrolled" if _unrolled_pays(net, max_product) else "program"
    if method == "host" and not is_concrete(net, evidence, soft):
        raise ValueError("method='host' needs concrete arrays: call it outside jax.jit / jax.vmap / jax.grad")
    return method


def _dtype(net: BayesNet):
    return jnp.result_type(*net.cpts) if net.cpts else jnp.float32


def _per_variable(net: BayesNet, table) -> dict[str, jax.Array]:
    """``{name: table[i, :card_i]}`` of a ``[n_vars, width]`` table (numpy tables stay on the host until
    the end: one device transfer per variable, no compiled slice)."""
    return {name: table[i, :card] for i, (name, card) in enumerate(zip(net.names, net.cards))}


def _host_marginals(net: BayesNet, evidence, soft):
    post, log_z = engine.marginals_host(net.structure, engine.flat_cpts_host(net), evidence_matrix_host(net, evidence, soft=soft))
    dtype = np.dtype(_dtype(net))
    post = jax.device_put({k: v.astype(dtype) for k, v in _per_variable(net, post).items()})
    return post, jnp.asarray(log_z, dtype)


def _program_marginals(net: BayesNet, evidence, soft):
    fn = engine.single(engine.marginals, net.structure)
    post, log_z = fn(engine.flat_cpts(net), evidence_matrix(net, evidence, soft=soft))
    return _per_variable(net, post), log_z


def log_evidence(net: BayesNet, evidence, *, soft: Soft = None, method: str = "auto") -> jax.Array:
    """log P(e): ``f32[]``, ``-inf`` when the evidence is impossible.

    Args:
      net: the network.
      evidence: ``int32[n_vars]``, the observed state of each variable or -1.
      soft: optional ``{name: f32[card]}`` likelihood vectors (virtual evidence) multiplied in.
      method: the engine (see `METHODS`): "auto" runs on the host for concrete inputs and as a compiled
        step program under `jax.jit`, `jax.vmap` and `jax.grad` (differentiable in the CPTs and soft
        evidence).

    Returns:
      ``f32[]``: log P(e) = log sum_x prod_i P(x_i | x_parents(i)) e_i(x_i).

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> print(log_evidence(net, net.evidence({"Wet": "yes"})))     # log 0.24
      -1.4271
      >>> print(log_evidence(net, net.evidence(), soft={"Wet": [0.0, 1.0]}))  # the same, as soft evidence
      -1.4271
      >>> print(jax.jit(log_evidence)(net, jnp.array([1, -1])))          # log 0.2
      -1.6094
    """
    method = _method(method, net, evidence, soft)
    if method == "host":
        flat = engine.flat_cpts_host(net)
        return jnp.asarray(
            engine.log_evidence_host(net.structure, flat, evidence_matrix_host(net, evidence, soft=soft)), _dtype(net)
        )
    if method == "unrolled":
        return _log_partition(net, evidence_vectors(net, evidence, soft=soft))
    return engine.log_evidence(net.structure, engine.flat_cpts(net), evidence_matrix(net, evidence, soft=soft)[..., None])[0]


def marginals(
    net: BayesNet, evidence, *, soft: Soft = None, check: bool = False, method: str = "auto"
) -> dict[str, jax.Array]:
    """Posterior marginals P(X_i | e) of every variable, in one pass.

    ``P(X_i = x | e) = e_i(x) * d log P(e) / d e_i(x)``: one forward and one reverse contraction.
    Observed variables get the one-hot of their value.

    Args:
      net: the network.
      evidence: ``int32[n_vars]`` evidence, -1 unobserved.
      soft: optional ``{name: f32[card]}`` likelihood vectors.
      check: outside jit, raise ValueError when P(e) = 0. Inside jit, impossible evidence gives
        all-zero vectors (and ``log_evidence`` gives -inf), never NaN.
      method: the engine (see `METHODS`); "auto": numpy on the host for concrete inputs (no compile),
        the compiled step program under jit / vmap (a vmap over evidence runs one batch-minor program).

    Returns:
      ``{name: f32[card]}``.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> post = marginals(net, net.evidence({"Wet": "yes"}))
      >>> print(post["Rain"], post["Wet"])
      [0.3333 0.6667] [0. 1.]
      >>> batch = jnp.array([[-1, 1], [-1, 0]])                                # int32[B, n_vars]
      >>> print(jax.vmap(marginals, in_axes=(None, 0))(net, batch)["Rain"])   # f32[B, card]
      [[0.3333 0.6667]
       [0.9474 0.0526]]
    """
    post, log_z = marginals_and_log_evidence(net, evidence, soft=soft, method=method)
    if check:
        _raise_if_impossible(net, evidence, log_z, "marginals")
    return post


class Posterior(NamedTuple):
    """All posterior marginals and the log evidence, from one pass (`marginals_and_log_evidence`).

    Attributes:
      marginals: ``{name: f32[card]}``, P(X_i | e) for every variable (all zeros when P(e) = 0).
      log_evidence: ``f32[]``, log P(e) (``-inf`` when the evidence is impossible).

    Under `jax.vmap` over B evidence sets every leaf gains a leading ``B`` axis.

    Examples:
      >>> post = Posterior(marginals={"Rain": jnp.array([0.5, 0.5])}, log_evidence=jnp.array(-0.7))
      >>> marginals, log_evidence = post       # a NamedTuple: unpacks, and is a pytree under jit/vmap
      >>> print(log_evidence)
      -0.7
    """

    marginals: dict[str, jax.Array]
    log_evidence: jax.Array


def marginals_and_log_evidence(net: BayesNet, evidence, *, soft: Soft = None, method: str = "auto") -> Posterior:
    """`marginals` and `log_evidence` from the same pass: a `Posterior`.

    log P(e) is the forward contraction; P(X_i = x | e) = e_i(x) * d log P(e) / d e_i(x) its gradient.

    Args:
      net: the network.
      evidence: ``int32[n_vars]`` evidence, -1 unobserved.
      soft: optional ``{name: f32[card]}`` likelihood vectors.
      method: the engine, as in `marginals`.

    Returns:
      `Posterior` ``(marginals {name: f32[card]}, log_evidence f32[])``.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> post = marginals_and_log_evidence(net, net.evidence({"Wet": "yes"}))
      >>> print(post.marginals["Rain"], post.log_evidence)
      [0.3333 0.6667] -1.4271
    """
    method = _method(method, net, evidence, soft)
    if method == "host":
        return Posterior(*_host_marginals(net, evidence, soft))
    if method == "program":
        return Posterior(*_program_marginals(net, evidence, soft))
    log_z, post = _marginals_and_log_z(net, evidence, soft)
    return Posterior(dict(zip(net.names, post)), log_z)


def _marginals_and_log_z(net, evidence, soft):
    vecs = evidence_vectors(net, evidence, soft=soft)
    # the gradient with respect to each vector, not the matrix they are sliced from (see below)
    (log_z, possible), grads = jax.value_and_grad(lambda v: _log_partition_and_flag(net, v), has_aux=True)(vecs)
    return log_z, _normalised_posteriors(vecs, grads, possible, axis=0)


# The batch-minor path of ``map_batched``: ``jax.vmap`` of the per-set functions puts the batch axis first,
# so each step's elementwise work runs over a few states in the innermost loop; here the evidence of a
# whole chunk is one matrix f[n_vars, max_card, B] and every intermediate keeps the batch axis last.


def _batched_vectors(net: BayesNet, evidence, soft: Soft) -> list[jax.Array]:
    """Per-variable evidence vectors ``f[card_i, B]`` of a chunk ``evidence: int32[B, n_vars]``."""
    mat = jnp.moveaxis(jax.vmap(lambda e: evidence_matrix(net, e, soft=soft))(evidence), 0, -1)
    return [mat[i, :card] for i, card in enumerate(net.cards)]


def _batched_log_partition(net: BayesNet, vecs) -> jax.Array:
    """log P(e_b) for per-variable evidence vectors ``vecs[i]: f[card_i, B]``: ``f[B]``."""
    return _batched_log_partition_and_flag(net, vecs)[0]


def _batched_log_partition_and_flag(net: BayesNet, vecs):
    """``(log P(e_b) f[B], P(e_b) > 0 bool[B])``; see `_log_partition_and_flag`."""
    arrays = [cpt[..., None] * vec.reshape((1,) * (cpt.ndim - 1) + vec.shape) for cpt, vec in zip(net.cpts, vecs)]
    mantissa, log_scale = tensornet.contract(network_plan(net.structure), arrays, batch_size=vecs[0].shape[-1])
    return safe_log(mantissa) + log_scale, mantissa > 0


def _normalised_posteriors(vecs, grads, possible, axis: int) -> list[jax.Array]:
    """``e_i * d log Z / d e_i`` normalised over the states (``axis``) of each variable; all-zero where
    ``possible`` is False (impossible evidence) or nothing is left."""
    post = []
    for vec, grad in zip(vecs, grads):
        p = jnp.maximum(vec * grad, 0.0)
        total = jnp.sum(p, axis=axis, keepdims=True)
        ok = possible & (total > 0)
        post.append(jnp.where(ok, p / jnp.where(ok, total, 1.0), 0.0))
    return post


def _batched_marginals_and_log_z(net: BayesNet, evidence, soft: Soft = None):
    """``(log_z f[B], [f[B, card_i]])`` for ``evidence: int32[B, n_vars]``, batch-minor."""
    vecs = _batched_vectors(net, evidence, soft)

    def total(v):
        log_z, possible = _batched_log_partition_and_flag(net, v)
        return jnp.sum(jnp.where(possible, log_z, 0.0)), (log_z, possible)

    # Differentiate with respect to the per-variable vectors, not the stacked matrix they are sliced from:
    # the gradient of n slices is n pads summed, one fusion with n operands, and XLA CPU's fusion pass is
    # quadratic in that (pigs' marginals did not compile in 10 minutes).
    (_, (log_z, possible)), grads = jax.value_and_grad(total, has_aux=True)(vecs)
    post = _normalised_posteriors(vecs, grads, possible, axis=0)
    return log_z, [p.T for p in post]


def _traced_method(net: BayesNet, method: str, max_product: bool = False) -> str:
    """The engine a traced call picks for ``method`` (see `_method`)."""
    if method == "auto":
        return "unrolled" if _unrolled_pays(net, max_product) else "program"
    return method


# A chunk of jax.vmap'ed evidence sets on the unrolled engine with large steps keeps its largest
# intermediate within about this many bytes, so the big steps' operands stay near the caches (barley,
# B = 330: 172 sets/s in chunks of 8 against 142 in chunks of 165; water 629 against 456 in chunks of 16
# and 1000; mildew 1,633 against 1,166). Since the memory-bound steps run fused (`tensornet._THIN`), half
# the former 16 MB is as fast or faster (B = 1000, same process: barley 235 -> 253 sets/s in chunks of 4
# instead of 8, mildew 1,652 -> 1,788 in 32 instead of 64, water 1,286 -> 1,293 in 18 instead of 36).
_CACHE_CHUNK_BYTES = 8e6


def _cache_chunk(net: BayesNet) -> int:
    """Evidence sets per chunk whose largest intermediate fits `_CACHE_CHUNK_BYTES` (at least 4)."""
    return int(max(4, _CACHE_CHUNK_BYTES // (4 * max(1, network_plan(net.structure).largest))))


def _batch_minor(fn, net: BayesNet, kwargs):
    """The batch-minor implementation of ``fn`` over a chunk ``int32[B, n_vars]``, or None (then
    ``jax.vmap``; the program engine's own vmap rule is batch-minor too)."""
    if kwargs.get("check") or set(kwargs) - {"soft", "check", "method"}:
        return None
    soft = kwargs.get("soft")
    method = _traced_method(net, kwargs.get("method", "auto"), max_product=fn is mpe)
    if method == "program":
        if fn is log_evidence:  # differentiable, so not behind the custom vmap rule: batch it here
            return lambda evidence: engine.log_evidence(
                net.structure, engine.flat_cpts(net), jnp.moveaxis(jax.vmap(lambda e: evidence_matrix(net, e, soft=soft))(evidence), 0, -1)
            )
        return None
    if method != "unrolled" or not tensornet.all_steps_small(network_plan(net.structure)):
        return None  # large steps: jax.vmap's layout was faster (pathfinder: 0.87x, compile 1.2x longer)
    if fn is marginals:
        return lambda evidence: dict(zip(net.names, _batched_marginals_and_log_z(net, evidence, soft)[1]))
    if fn is marginals_and_log_evidence:
        def both(evidence):
            log_z, post = _batched_marginals_and_log_z(net, evidence, soft)
            return Posterior(dict(zip(net.names, post)), log_z)
        return both
    if fn is log_evidence:
        return lambda evidence: _batched_log_partition(net, _batched_vectors(net, evidence, soft))
    return None


def _query_indices(net: BayesNet, names: Sequence[str]) -> tuple[int, ...]:
    if isinstance(names, str):
        names = [names]
    idx = tuple(net.index(n) for n in names)
    if len(set(idx)) != len(idx):
        raise ValueError(f"query names must be distinct, got {list(names)}")
    if not idx:
        raise ValueError("query needs at least one variable name")
    return idx


@functools.lru_cache(maxsize=512)
def _query_fn(idx: tuple[int, ...]):
    return functools.partial(engine.query, idx=idx)


def _query_table(net: BayesNet, idx: tuple[int, ...], evidence, soft, method: str):
    """``(P(X_idx | e) table, P(e) > 0)`` by the chosen engine; all-zero table when P(e) = 0."""
    if method == "host":
        table, possible = engine.query_host(
            net.structure, engine.flat_cpts_host(net), evidence_matrix_host(net, evidence, soft=soft), idx
        )
        return jnp.asarray(table, _dtype(net)), possible
    if method == "program":
        fn = engine.single(_query_fn(idx), net.structure)
        return fn(engine.flat_cpts(net), evidence_matrix(net, evidence, soft=soft))
    table, _ = _scaled_total(net, evidence_vectors(net, evidence, soft=soft), idx)
    total = jnp.sum(table)
    return jnp.where(total > 0, table / jnp.where(total > 0, total, 1.0), 0.0), total > 0


def query(net: BayesNet, names: Sequence[str], evidence, *, soft: Soft = None, check: bool = False, method: str = "auto"):
    """Joint posterior table P(names | e), ``f32[card_1, ..., card_k]`` with axes in ``names`` order.

    P(q | e) = sum over the other variables of P(q, x, e) / P(e). Impossible evidence gives an
    all-zero table (``check=True`` raises outside jit).

    Args:
      net: the network.
      names: the query variables (one name or a sequence of distinct names).
      evidence: ``int32[n_vars]`` evidence, -1 unobserved.
      soft: optional ``{name: f32[card]}`` likelihood vectors.
      check: outside jit, raise ValueError when P(e) = 0.
      method: the engine, as in `marginals`.

    Returns:
      ``f32[card_1, ..., card_k]``, the joint posterior over ``names`` (sums to one).

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> print(query(net, ["Rain", "Wet"], net.evidence()))       # the joint P(Rain, Wet)
      [[0.72 0.08]
       [0.04 0.16]]
    """
    idx = _query_indices(net, names)
    table, possible = _query_table(net, idx, evidence, soft, _method(method, net, evidence, soft))
    if check:
        _raise_if_impossible(net, evidence, jnp.where(possible, 0.0, -jnp.inf), "query")
    return table


def mpe(net: BayesNet, evidence, *, soft: Soft = None, method: str = "auto") -> MPE:
    """Most probable explanation: ``x* = argmax_x P(x, e)`` and ``log P(x*, e)``, as a `gm.types.MPE`.

    Max-product contraction along the network's plan (log space), decoded by argmax traceback; ties go
    to the lowest state index at each elimination. ``states: int32[n_vars]`` keeps the observed entries;
    ``log_prob: f32[]`` is the joint log P(x*, e) (times any soft likelihoods), ``-inf`` when the
    evidence is impossible (the unobserved states are then arbitrary).

    Args:
      net: the network.
      evidence: ``int32[n_vars]`` evidence, -1 unobserved.
      soft: optional ``{name: f32[card]}`` likelihood vectors.
      method: the engine, as in `marginals`.

    Returns:
      `gm.types.MPE` ``(states int32[n_vars], log_prob f32[])``.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> best = mpe(net, net.evidence({"Wet": "yes"}))
      >>> net.assignment(best.states)
      {'Rain': 'yes', 'Wet': 'yes'}
      >>> print(best.log_prob)                                             # log(0.2 * 0.8)
      -1.8326
    """
    method = _method(method, net, evidence, soft, max_product=True)
    if method == "host":
        mat = evidence_matrix_host(net, evidence, soft=soft)
        x, log_value = engine.mpe_host(net.structure, engine.flat_cpts_host(net), mat)
        evidence = np.asarray(evidence)
        states = jnp.asarray(np.where(evidence >= 0, evidence, x), jnp.int32)
        return MPE(states, jnp.asarray(log_value, _dtype(net)))
    evidence = check_evidence(net, evidence)
    if method == "program":
        fn = engine.single(engine.mpe, net.structure)
        x, log_value = fn(engine.flat_cpts(net), evidence_matrix(net, evidence, soft=soft))
        return MPE(jnp.where(evidence >= 0, evidence, x).astype(jnp.int32), log_value)
    vecs = evidence_vectors(net, evidence, soft=soft)
    plan = network_plan(net.structure, ())
    logs = [safe_log(t) for t in _weighted_cpts(net, vecs)]
    log_value, decode = tensornet.contract_max(plan, logs)
    values = decode({})
    x = jnp.stack([values.get(i, jnp.zeros((), jnp.int32)) for i in range(net.n_vars)])
    return MPE(jnp.where(evidence >= 0, evidence, x).astype(jnp.int32), log_value)


_MAP_TABLE_LIMIT = 1 << 26


def map_query(net: BayesNet, names: Sequence[str], evidence, *, soft: Soft = None, method: str = "auto") -> jax.Array:
    """MAP assignment of ``names``: ``argmax P(names, e)`` with the other variables summed out.

    Returns ``int32[len(names)]``. Exact: the joint table over ``names`` is computed by contraction and
    maximised, so its size (product of the cardinalities) is limited to 2**26 entries; for all
    variables use `mpe`.

    Args:
      net: the network.
      names: the MAP variables (one name or a sequence of distinct names).
      evidence: ``int32[n_vars]`` evidence, -1 unobserved.
      soft: optional ``{name: f32[card]}`` likelihood vectors.
      method: the engine, as in `marginals`.

    Returns:
      ``int32[len(names)]``: argmax_q sum_rest P(q, rest, e), in ``names`` order.

    Raises:
      ValueError: a joint table over ``names`` larger than 2**26 entries.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> map_query(net, ["Rain"], net.evidence({"Wet": "yes"})).tolist()   # P(Rain = yes | Wet = yes) = 2/3
      [1]
    """
    idx = _query_indices(net, names)
    size = math.prod(net.cards[i] for i in idx)
    if size > _MAP_TABLE_LIMIT:
        raise ValueError(
            f"map_query over {list(names)} needs a table of {size} entries (limit {_MAP_TABLE_LIMIT}); "
            "use mpe for a full assignment"
        )
    method = _method(method, net, evidence, soft)
    table, _ = _query_table(net, idx, evidence, soft, method)
    if method == "host":
        return jnp.asarray(np.unravel_index(int(np.argmax(np.asarray(table))), table.shape), jnp.int32)
    flat = jnp.argmax(table.reshape(-1))
    return jnp.stack(jnp.unravel_index(flat, table.shape)).astype(jnp.int32)


# --------------------------------------------------------------------------------------------------
# batches


def default_chunk_size(net: BayesNet, memory_bytes: float = 1e9) -> int:
    """Evidence sets per chunk so that a chunk's intermediates stay within ``memory_bytes``.

    Smaller chunks move less memory per step and run faster on the big networks (all marginals, step
    program, 2-core CPU: pigs 409 sets/s in chunks of 140 against 333 in chunks of 564; diabetes 101 in
    chunks of 144 against 82 in chunks of 250); much smaller ones pay the steps' fixed costs (diabetes,
    chunks of 32: 74).

    chunk = clip(memory_bytes / (12 * sum of the plan's intermediate sizes), 1, 4096).

    Args:
      net: the network.
      memory_bytes: the memory one chunk may use.

    Returns:
      The chunk size, an ``int`` in ``[1, 4096]``.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> default_chunk_size(net)
      4096
    """
    plan = network_plan(net.structure, ())
    per_set = 4 * sum(math.prod(net.cards[l] for l in s.out) for s in plan.steps) * 3 + 1
    return int(max(1, min(4096, memory_bytes // per_set)))


def map_batched(fn, net: BayesNet, evidence, *, chunk_size: int | None = None, **kwargs):
    """``jax.vmap(fn)`` over ``evidence: int32[B, n_vars]`` in chunks of ``chunk_size`` (lax.map).

    Batches that would not fit in memory at once are processed chunk by chunk inside one compiled
    function. ``fn(net, evidence, **kwargs)`` is any of this module's queries. For ``marginals``,
    ``marginals_and_log_evidence`` and ``log_evidence`` on networks whose every contraction step is small
    (alarm, hepar2, win95pts, ...) it runs a batch-minor contraction (the batch axis last in every
    intermediate): the same numbers as ``jax.vmap``, faster.

    Args:
      fn: a query of this module taking ``(net, evidence, **kwargs)``.
      net: the network.
      evidence: ``int32[B, n_vars]``, one evidence set per row.
      chunk_size: evidence sets per chunk (default: `default_chunk_size`; on the unrolled engine's
        jax.vmap path, at most what keeps the largest intermediate of a chunk near 8 MB).
      **kwargs: keyword options passed to ``fn`` (``soft``, ``method``, ...).

    Returns:
      ``fn``'s result with a leading ``B`` axis on every leaf (``{name: f32[B, card]}`` for `marginals`).

    Raises:
      ValueError: ``evidence`` not of shape ``(B, n_vars)``.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> batch = jnp.array([[-1, 1], [-1, 0], [1, -1]])
      >>> print(map_batched(log_evidence, net, batch, chunk_size=2))   # log [0.24, 0.76, 0.2]
      [-1.4271 -0.2744 -1.6094]
      >>> post = jax.jit(map_batched, static_argnums=0)(marginals, net, batch)
      >>> post["Rain"].shape
      (3, 2)
    """
    evidence = jnp.asarray(evidence)
    if evidence.ndim != 2 or evidence.shape[1] != net.n_vars:
        raise ValueError(f"evidence must have shape (B, {net.n_vars}), got {evidence.shape}")
    b = evidence.shape[0]
    chunk = chunk_size or default_chunk_size(net)
    single = _batch_minor(fn, net, kwargs)
    if single is None:
        single = jax.vmap(lambda e: fn(net, e, **kwargs))
        if chunk_size is None and _traced_method(net, kwargs.get("method", "auto"), fn is mpe) == "unrolled":
            chunk = min(chunk, _cache_chunk(net))
    if b <= chunk:
        return single(evidence)
    n_chunks = -(-b // chunk)
    padded = jnp.concatenate([evidence, jnp.full((n_chunks * chunk - b, net.n_vars), -1, evidence.dtype)])
    out = jax.lax.map(single, padded.reshape(n_chunks, chunk, net.n_vars))
    return jax.tree_util.tree_map(lambda x: x.reshape((n_chunks * chunk,) + x.shape[2:])[:b], out)
