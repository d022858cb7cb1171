"""The program engine: exact Bayesian-network queries on `gm.bn.program`'s fixed-shape step programs.

Every function here takes the evidence as a matrix ``f[n_vars, width, V]`` (row i: variable i's evidence
vector, zero-padded to ``width``, for each of ``V`` evidence sets, the batch axis minor) and returns
batch-minor results. `gm.bn.inference` builds that matrix and wraps these functions for one evidence set;
under `jax.vmap` its wrappers route here with the whole batch as ``V`` (`jax.custom_batching`), so a
vmapped query runs one program whose gathers move rows of ``V`` contiguous floats.

Inputs of a network's plan are its CPTs, in variable order, with the evidence multiplied into the
child's axis: entry ``j`` of the flattened CPTs is multiplied by ``evidence[var(j), state(j)]``, one
gather for the whole network (`entry_index`).

The examples use the network Rain -> Wet with P(Rain = yes) = 0.2 and P(Wet = yes | Rain) = 0.1 or 0.8,
observed Wet = yes: P(e) = 0.24, P(Rain = yes | e) = 2/3.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gm.bn import program, tensornet
from gm.bn.network import BayesNet, Structure


@functools.lru_cache(maxsize=256)
def network_program(structure: Structure, output: tuple[int, ...] = (), *, quick: bool = False) -> program.Program:
    """The step program of the network's plan into ``output`` (cached per structure and output).

    ``quick``: the plan of a single answer on the host, whose search budget is the greedy path's own
    cost at 1e9 multiply-adds per second (water: 2 s of search for a 4 ms contraction otherwise).

    Args:
      structure: the network's `Structure`.
      output: indices of the variables left uncontracted.
      quick: the host engine's search budget (see above).

    Returns:
      The lowered `gm.bn.program.Program`.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> network_program(net.structure).n_input                # 2 + 4 CPT entries
      6
    """
    plan = tensornet.plan(structure.families, tuple(output), structure.cards, min_time=0.0 if quick else 2.0)
    return program.lower(plan, padded=not quick)


def width(structure: Structure) -> int:
    """Columns of the evidence matrix: the largest cardinality (1 for an empty network).

    Args:
      structure: the network's `Structure`.

    Returns:
      ``max_i card_i``, an ``int``.

    Examples:
      >>> width(BayesNet.from_dict({"A": 3, "B": 2}, {}, {"A": [0.2, 0.3, 0.5], "B": [0.5, 0.5]}).structure)
      3
    """
    return max(structure.cards) if structure.cards else 1


@functools.lru_cache(maxsize=256)
def entry_index(structure: Structure) -> np.ndarray:
    """``int32[n_entries]``: for each entry of the flattened CPTs, ``var * width + child state``.

    The inputs of the plan are ``flat * evidence.reshape(-1)[entry_index]``: entry j of the CPTs times
    e_var(j)(state(j)).

    Args:
      structure: the network's `Structure`.

    Returns:
      ``int32[n_entries]`` (cached per structure).

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> entry_index(net.structure).tolist()    # P(Rain): rows 0; P(Wet | Rain): row 1, child states 0 1 0 1
      [0, 1, 2, 3, 2, 3]
    """
    w = width(structure)
    parts = []
    for i, fam in enumerate(structure.families):
        size = int(np.prod([structure.cards[v] for v in fam]))
        parts.append(i * w + np.arange(size) % structure.cards[i])
    return np.concatenate(parts).astype(np.int32) if parts else np.zeros((0,), np.int32)


def flat_cpts(net: BayesNet) -> jax.Array:
    """The CPTs flattened and concatenated in variable order: ``f[n_entries]``.

    Args:
      net: the network.

    Returns:
      ``f[sum_i prod(family cards)]`` in the CPTs' dtype (differentiable).

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> print(flat_cpts(net))
      [0.8 0.2 0.9 0.1 0.2 0.8]
    """
    return jnp.concatenate([jnp.ravel(c) for c in net.cpts])


def _inputs(structure: Structure, flat: jax.Array, evidence: jax.Array) -> jax.Array:
    """Input entries times their evidence: ``f[n_entries, V]``."""
    n, w, v = evidence.shape
    ev = evidence.reshape(n * w, v)[jnp.asarray(entry_index(structure))]
    return flat[:, None] * ev


def _safe_log(x):
    positive = x > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, x, 1.0)), -jnp.inf)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _log_total(prog: program.Program, inputs: jax.Array) -> jax.Array:
    """log of the (scalar) contraction of ``inputs: f[n_entries, V]``: ``f[V]``, -inf where it is 0.

    Its derivative is the hand-written reverse pass (`program.backward`), given as a JVP: the tangent is
    ``sum(g * t)`` with ``g = d log Z / d inputs``, linear in ``t``, so `jax.grad` transposes it into
    ``ct * g`` (one forward and one reverse pass, as a custom VJP would) and `jax.jvp` / `jax.jacfwd`
    work too, which a custom VJP rules out."""
    _, _, root, log_scale = program.forward(prog, inputs)
    return _safe_log(root) + log_scale


@_log_total.defjvp
def _log_total_jvp(prog, primals, tangents):
    (inputs,), (t,) = primals, tangents
    mem, scales, root, log_scale = program.forward(prog, inputs)
    positive = root > 0
    ct = jnp.where(positive, 1.0 / jnp.where(positive, root, 1.0), 0.0)
    g = program.backward(prog, mem, scales, ct)  # d log Z / d input entry: f[n_entries, V]
    return _safe_log(root) + log_scale, jnp.sum(g * t, axis=0)


def log_evidence(structure: Structure, flat: jax.Array, evidence: jax.Array) -> jax.Array:
    """log P(e) for each evidence set: ``f[V]`` (-inf when impossible); differentiable in the CPTs and
    the evidence (a hand-written reverse pass).

    log P(e) = log sum_x prod_i P(x_i | x_parents(i)) e_i(x_i).

    Args:
      structure: the network's `Structure`.
      flat: ``f[n_entries]`` from `flat_cpts`.
      evidence: ``f[n_vars, width, V]``, the evidence matrices of ``V`` sets (batch axis last).

    Returns:
      ``f[V]``.

    Examples:
      >>> from gm.bn.evidence import evidence_matrix
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> evidence = evidence_matrix(net, net.evidence({"Wet": "yes"}))[..., None]   # f[n, w, V = 1]
      >>> print(log_evidence(net.structure, flat_cpts(net), evidence))    # log 0.24
      [-1.4271]
    """
    return _log_total(network_program(structure), _inputs(structure, flat, evidence))


def _posteriors(evidence, grad, possible):
    """``e_i(x) * d log P(e) / d e_i(x)`` normalised over each row's states (axis 1); zero rows where
    ``possible`` (per evidence set, the last axis) is False."""
    p = jnp.maximum(evidence * grad, 0.0)
    total = jnp.sum(p, axis=1, keepdims=True)
    ok = possible[None, None, :] & (total > 0)
    return jnp.where(ok, p / jnp.where(ok, total, 1.0), 0.0)


def marginals(structure: Structure, flat: jax.Array, evidence: jax.Array):
    """``(posteriors f[n_vars, width, V], log P(e) f[V])``: P(X_i = x | e) in row i (zero past the
    cardinality); all-zero rows where P(e) = 0.

    ``P(X_i = x | e) = e_i(x) * d log P(e) / d e_i(x)``; the derivative is the reverse pass's cotangent
    of the input entries times the CPT entries, summed by (variable, state).

    Args:
      structure: the network's `Structure`.
      flat: ``f[n_entries]`` from `flat_cpts`.
      evidence: ``f[n_vars, width, V]``.

    Returns:
      ``(f[n_vars, width, V], f[V])``.

    Examples:
      >>> from gm.bn.evidence import evidence_matrix
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> evidence = evidence_matrix(net, net.evidence({"Wet": "yes"}))[..., None]   # f[n, w, V = 1]
      >>> post, log_z = marginals(net.structure, flat_cpts(net), evidence)
      >>> print(post[0, :, 0])                                  # P(Rain | Wet = yes)
      [0.3333 0.6667]
    """
    prog = network_program(structure)
    n, w, v = evidence.shape
    mem, scales, root, log_scale = program.forward(prog, _inputs(structure, flat, evidence))
    possible = root > 0
    ct = jnp.where(possible, 1.0 / jnp.where(possible, root, 1.0), 0.0)
    g = program.backward(prog, mem, scales, ct)  # d log P(e) / d input entry: f[n_entries, V]
    grad = jax.ops.segment_sum(g * flat[:, None], jnp.asarray(entry_index(structure)), num_segments=n * w)
    return _posteriors(evidence, grad.reshape(n, w, v), possible), _safe_log(root) + log_scale


def query(structure: Structure, flat: jax.Array, evidence: jax.Array, *, idx: tuple[int, ...]):
    """``(P(X_idx | e) f[*cards, V], P(e) > 0 bool[V])``; all-zero tables where P(e) = 0.

    P(X_idx | e) = T / sum T, with T the contraction into the variables ``idx``.

    Args:
      structure: the network's `Structure`.
      flat: ``f[n_entries]`` from `flat_cpts`.
      evidence: ``f[n_vars, width, V]``.
      idx: indices of the query variables (the table's axes, in order).

    Returns:
      ``(f[*cards[idx], V], bool[V])``.

    Examples:
      >>> from gm.bn.evidence import evidence_matrix
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> evidence = evidence_matrix(net, net.evidence({"Wet": "yes"}))[..., None]   # f[n, w, V = 1]
      >>> table, possible = query(net.structure, flat_cpts(net), evidence, idx=(0,))
      >>> print(table[:, 0], possible)
      [0.3333 0.6667] [ True]
    """
    prog = network_program(structure, tuple(idx))
    _, _, table, _ = program.forward(prog, _inputs(structure, flat, evidence))
    total = jnp.sum(table.reshape(-1, table.shape[-1]), axis=0)
    possible = total > 0
    return jnp.where(possible, table / jnp.where(possible, total, 1.0), 0.0), possible


def mpe(structure: Structure, flat: jax.Array, evidence: jax.Array):
    """``(argmax_x P(x, e) int32[n_vars, V], max_x log P(x, e) f[V])`` by max-sum and traceback.

    Args:
      structure: the network's `Structure`.
      flat: ``f[n_entries]`` from `flat_cpts`.
      evidence: ``f[n_vars, width, V]``.

    Returns:
      ``(int32[n_vars, V], f[V])``.

    Examples:
      >>> from gm.bn.evidence import evidence_matrix
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> evidence = evidence_matrix(net, net.evidence({"Wet": "yes"}))[..., None]   # f[n, w, V = 1]
      >>> states, log_value = mpe(net.structure, flat_cpts(net), evidence)
      >>> states[:, 0].tolist()
      [1, 1]
      >>> print(log_value)                                       # log(0.2 * 0.8)
      [-1.8326]
    """
    prog = network_program(structure)
    root, arg = program.forward_max(prog, _safe_log(_inputs(structure, flat, evidence)))
    values = program.decode(prog, arg, jnp.zeros((0, evidence.shape[-1]), jnp.int32))
    return values, root


# --------------------------------------------------------------------------------------------------
# the host path (one concrete evidence set, numpy float64, nothing compiled)


def flat_cpts_host(net: BayesNet) -> np.ndarray:
    """`flat_cpts` in numpy float64, for the host engine: ``f64[n_entries]``.

    Args:
      net: the network (concrete CPTs).

    Returns:
      ``f64[n_entries]``.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> flat_cpts_host(net).round(4).tolist()
      [0.8, 0.2, 0.9, 0.1, 0.2, 0.8]
    """
    return np.concatenate([np.ravel(np.asarray(c, np.float64)) for c in net.cpts])


def _inputs_host(structure: Structure, flat: np.ndarray, evidence: np.ndarray) -> np.ndarray:
    return flat * evidence.reshape(-1)[entry_index(structure)]


def log_evidence_host(structure: Structure, flat: np.ndarray, evidence: np.ndarray) -> float:
    """`log_evidence` of one evidence matrix ``f64[n_vars, width]`` on the host.

    Args:
      structure: the network's `Structure`.
      flat: ``f64[n_entries]`` from `flat_cpts_host`.
      evidence: ``f64[n_vars, width]`` (`gm.bn.evidence.evidence_matrix_host`).

    Returns:
      log P(e), a float (``-inf`` when impossible).

    Examples:
      >>> from gm.bn.evidence import evidence_matrix_host
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> evidence = evidence_matrix_host(net, net.evidence({"Wet": "yes"}))
      >>> round(log_evidence_host(net.structure, flat_cpts_host(net), evidence), 4)
      -1.4271
    """
    _, _, root, log_scale = program.forward_host(network_program(structure, quick=True), _inputs_host(structure, flat, evidence))
    return float(np.log(root)) + log_scale if root > 0 else -np.inf


def marginals_host(structure: Structure, flat: np.ndarray, evidence: np.ndarray):
    """`marginals` of one evidence matrix on the host: ``(f64[n_vars, width], log P(e))``.

    Args:
      structure: the network's `Structure`.
      flat: ``f64[n_entries]`` from `flat_cpts_host`.
      evidence: ``f64[n_vars, width]``.

    Returns:
      ``(f64[n_vars, width], float)``: all-zero rows and ``-inf`` when P(e) = 0.

    Examples:
      >>> from gm.bn.evidence import evidence_matrix_host
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> evidence = evidence_matrix_host(net, net.evidence({"Wet": "yes"}))
      >>> post, log_z = marginals_host(net.structure, flat_cpts_host(net), evidence)
      >>> post.round(4).tolist()
      [[0.3333, 0.6667], [0.0, 1.0]]
    """
    prog = network_program(structure, quick=True)
    mem, scales, root, log_scale = program.forward_host(prog, _inputs_host(structure, flat, evidence))
    n, w = evidence.shape
    if not root > 0:
        return np.zeros((n, w)), -np.inf
    g = program.backward_host(prog, mem, scales, 1.0 / root)
    grad = np.bincount(entry_index(structure), weights=g * flat, minlength=n * w).reshape(n, w)
    p = np.maximum(evidence * grad, 0.0)
    total = p.sum(axis=1, keepdims=True)
    post = np.divide(p, total, out=np.zeros_like(p), where=total > 0)
    return post, float(np.log(root)) + log_scale


def query_host(structure: Structure, flat: np.ndarray, evidence: np.ndarray, idx: tuple[int, ...]):
    """`query` on the host: ``(table f64[*cards], P(e) > 0)``.

    Args:
      structure: the network's `Structure`.
      flat: ``f64[n_entries]`` from `flat_cpts_host`.
      evidence: ``f64[n_vars, width]``.
      idx: indices of the query variables.

    Returns:
      ``(f64[*cards[idx]], bool)``.

    Examples:
      >>> from gm.bn.evidence import evidence_matrix_host
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> evidence = evidence_matrix_host(net, net.evidence({"Wet": "yes"}))
      >>> table, possible = query_host(net.structure, flat_cpts_host(net), evidence, (0,))
      >>> table.round(4).tolist(), possible
      ([0.3333, 0.6667], True)
    """
    prog = network_program(structure, tuple(idx), quick=True)
    _, _, table, _ = program.forward_host(prog, _inputs_host(structure, flat, evidence))
    total = table.sum()
    return (table / total if total > 0 else np.zeros_like(table)), bool(total > 0)


def mpe_host(structure: Structure, flat: np.ndarray, evidence: np.ndarray):
    """`mpe` on the host: ``(int64[n_vars], max log P(x, e))``.

    Args:
      structure: the network's `Structure`.
      flat: ``f64[n_entries]`` from `flat_cpts_host`.
      evidence: ``f64[n_vars, width]``.

    Returns:
      ``(int64[n_vars], float)``.

    Examples:
      >>> from gm.bn.evidence import evidence_matrix_host
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> evidence = evidence_matrix_host(net, net.evidence({"Wet": "yes"}))
      >>> states, log_value = mpe_host(net.structure, flat_cpts_host(net), evidence)
      >>> states.tolist(), round(log_value, 4)
      ([1, 1], -1.8326)
    """
    prog = network_program(structure, quick=True)
    with np.errstate(divide="ignore"):
        logs = np.log(_inputs_host(structure, flat, evidence))
    root, arg = program.forward_max_host(prog, logs)
    return program.decode_host(prog, arg), float(root)


# --------------------------------------------------------------------------------------------------
# one evidence set, with a batch-minor vmap rule


@functools.lru_cache(maxsize=256)
def single(fn, structure: Structure):
    """``fn(structure, flat, evidence f[n, w, V]) -> pytree of f[..., V]`` as a jitted function of
    ``(flat, one evidence matrix f[n, w])`` whose `jax.vmap` over the evidence calls ``fn`` once with
    the batch as ``V``; a batch of networks (vmapped CPTs) is vmapped plainly.

    Args:
      fn: one of this module's batch-minor queries (`log_evidence`, `marginals`, `query`, `mpe`).
      structure: the network's `Structure` (static).

    Returns:
      A jitted ``(flat f[n_entries], evidence f[n, w]) -> pytree of f[...]`` (cached per fn and structure).

    Examples:
      >>> from gm.bn.evidence import evidence_matrix
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> evidence = evidence_matrix(net, net.evidence({"Wet": "yes"}))[..., None]   # f[n, w, V = 1]
      >>> one = single(marginals, net.structure)
      >>> post, log_z = one(flat_cpts(net), evidence[..., 0])
      >>> print(post[0], log_z)
      [0.3333 0.6667] -1.4271
    """

    def plain(flat, evidence):
        return jax.tree.map(lambda x: x[..., 0], fn(structure, flat, evidence[..., None]))

    @jax.custom_batching.custom_vmap
    def one(flat, evidence):
        return plain(flat, evidence)

    @one.def_vmap
    def _rule(axis_size, in_batched, flat, evidence):
        flat_batched, ev_batched = in_batched
        if not ev_batched:
            evidence = jnp.broadcast_to(evidence, (axis_size,) + evidence.shape)
        if flat_batched:
            out = jax.vmap(plain)(flat, evidence)
        else:
            out = jax.tree.map(lambda x: jnp.moveaxis(x, -1, 0), fn(structure, flat, jnp.moveaxis(evidence, 0, -1)))
        return out, jax.tree.map(lambda _: True, out)

    # JAX cannot linearize through a custom_vmap ("Linearization failed to produce known values"), so
    # derivatives take the plain function: jax.grad / jax.jvp of marginals, query or MPE in the CPTs work
    # (jax.vmap of a derivative is then the per-set program, vmapped), and the value keeps the rule above
    @jax.custom_jvp
    def differentiable(flat, evidence):
        return one(flat, evidence)

    @differentiable.defjvp
    def _jvp(primals, tangents):
        return jax.jvp(plain, primals, tangents)

    return jax.jit(differentiable)
