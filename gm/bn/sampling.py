"""Forward sampling from a Bayesian network: ancestral sampling and likelihood weighting.

Both samplers run one small program whatever the network's size, so that the first call on a network of
a thousand variables costs one compile of a loop body, not one kernel per CPT shape.

The method. Every CPT is read as a matrix of rows P(X_i | U_i = u), one row per parent configuration
(row-major over the parents, the child's axis last). All rows of all variables are stacked into one
zero-padded table ``f[R, W]`` (W the largest cardinality); variable i's rows start at ``offset[i]`` and its
row for parent values u is ``offset[i] + sum_j u_j * stride_ij`` (mixed-radix strides). Variables are
grouped by topological level (a variable's level is one more than its deepest parent's), and each level is
cut into chunks of at most C variables; a chunk's variables depend only on earlier chunks. Sampling is one
`jax.lax.scan` over the chunks, each step a fixed-shape body for C variables and n samples:

    row = offset + sum_j x[parent_j] * stride_j              int32[C, n]
    cum = cumsum(table, axis=1)[row]                         f[C, n, W]  (the rows' CDFs)
    x[var] = #{k : cum_k <= u * cum_{W-1}},  u ~ U[0, 1)     the inverse-CDF draw

Padded slots of a chunk read row 0 and write a scratch row that is dropped at the end. The draw is exact
for the table's float precision: a state of probability zero is an empty interval of the CDF and is never
drawn, and ``u * total`` is kept below ``total`` so the draw never runs past the last possible state.
C is chosen per structure and sample count from a cost model (steps times per-step work), so a deep
chain runs one variable per step and a wide, shallow network a few dozen. The static layout (offsets,
strides, the chunk program) is computed once per structure and sample count and cached. The table itself
is assembled on the host when the CPTs are concrete (an eager call then compiles only the loop, about
0.3 s of CPU whatever the network) and inside the program when they are traced, so `jax.jit`,
`jax.vmap` and `jax.grad` over the CPTs work (the log-weights of likelihood weighting are differentiable).

Random numbers: Threefry-2x32 (the hash of `jax.random`'s default keys) of the counter blocks
(draw, step) under the key's own two words, written out inside the step.
"""

from __future__ import annotations

import functools
import math
import operator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gm.bn.evidence import check_evidence, safe_log
from gm.bn.network import BayesNet, Structure
from gm.xla import vary_like

__all__ = ["WeightedSamples", "likelihood_weighting", "sample", "weighted_marginals"]


# --------------------------------------------------------------------------------------------------
# the static program


class _Program(NamedTuple):
    """Static layout of a structure's sampler for a sample count (numpy constants of the program)."""

    groups: tuple[tuple[int, tuple[int, ...]], ...]  # (cardinality, variables) in table row order
    width: int  # W, the largest cardinality
    var: np.ndarray  # int32[S, C], variable of each slot (n_vars for a padded slot)
    parent: np.ndarray  # int32[S, C, P], parent variables (n_vars for padding)
    stride: np.ndarray  # int32[S, C, P], mixed-radix strides (0 for padding)
    offset: np.ndarray  # int32[S, C], first table row of each slot's variable
    card: np.ndarray  # int32[S, C], cardinality of each slot's variable (1 for padding)


# Cost model for the chunk width C, fitted on CPU (munin, pigs, link, diabetes; n = 1e3 and 1e5): a scan
# step costs about _STEP_COST gathered CDF entries on top of its C * n * W; the gathered rows of one step
# are kept under _STEP_ENTRIES (memory).
_STEP_COST = 50_000.0
_STEP_ENTRIES = 1 << 24
_WIDTHS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _levels(structure: Structure) -> list[list[int]]:
    level = [0] * len(structure.names)
    for i in structure.topological_order:
        level[i] = max((level[p] + 1 for p in structure.parents[i]), default=0)
    out: list[list[int]] = [[] for _ in range(max(level, default=-1) + 1)]
    for i in structure.topological_order:
        out[level[i]].append(i)
    return out


def _chunk_width(sizes: list[int], n: int, width: int) -> int:
    """The C that minimises steps * (_STEP_COST + C * n * W) for level sizes ``sizes``."""
    def cost(c):
        steps = sum(-(-k // c) for k in sizes)
        return steps * (_STEP_COST + c * max(n, 1) * width)

    biggest = max(sizes)
    candidates = [c for c in _WIDTHS if c < biggest and c * max(n, 1) * width <= _STEP_ENTRIES]
    if biggest * max(n, 1) * width <= _STEP_ENTRIES:
        candidates.append(biggest)
    return min(candidates or [1], key=cost)


@functools.lru_cache(maxsize=64)
def _program(structure: Structure, n: int) -> _Program:
    cards = structure.cards
    n_vars = len(cards)
    width = max(cards)
    by_card: dict[int, list[int]] = {}
    for i, c in enumerate(cards):
        by_card.setdefault(c, []).append(i)
    groups = tuple((c, tuple(members)) for c, members in sorted(by_card.items()))
    offsets = [0] * n_vars
    row = 0
    for _, members in groups:
        for i in members:
            offsets[i] = row
            row += math.prod(cards[p] for p in structure.parents[i])
    levels = _levels(structure)
    chunk = _chunk_width([len(lv) for lv in levels], n, width)
    chunks = [lv[s : s + chunk] for lv in levels for s in range(0, len(lv), chunk)]
    n_parents = max(1, max(len(p) for p in structure.parents))
    shape = (len(chunks), chunk)
    var = np.full(shape, n_vars, np.int32)
    parent = np.full(shape + (n_parents,), n_vars, np.int32)
    stride = np.zeros(shape + (n_parents,), np.int32)
    offset = np.zeros(shape, np.int32)
    card = np.ones(shape, np.int32)
    for s, members in enumerate(chunks):
        for c, i in enumerate(members):
            pa = structure.parents[i]
            var[s, c], offset[s, c], card[s, c] = i, offsets[i], cards[i]
            parent[s, c, : len(pa)] = pa
            radix = 1
            for j in reversed(range(len(pa))):
                stride[s, c, j] = radix
                radix *= cards[pa[j]]
    return _Program(groups, width, var, parent, stride, offset, card)


def _table(net: BayesNet, prog: _Program, *, host: bool = False):
    """All CPT rows in one zero-padded table ``f[R, W]``.

    Built on the host (numpy) when the CPTs are concrete, so an eager call compiles only the sampling
    loop and not a concatenation of every CPT (about half a second on munin's 1,041); traced CPTs (under
    `jax.jit`, `jax.vmap`, `jax.grad`) are assembled in the program instead, with the same layout.
    """
    dtype = _dtype(net)
    traced = any(isinstance(c, jax.core.Tracer) for c in net.cpts)
    xp = jnp if traced else np
    blocks = []
    for c, members in prog.groups:
        rows = [xp.reshape(xp.asarray(net.cpts[i], dtype), (-1, c)) for i in members]
        block = rows[0] if len(rows) == 1 else xp.concatenate(rows, axis=0)
        blocks.append(xp.pad(block, ((0, 0), (0, prog.width - c))))
    table = blocks[0] if len(blocks) == 1 else xp.concatenate(blocks, axis=0)
    return table if traced or host else jax.device_put(table)


# --------------------------------------------------------------------------------------------------
# random numbers


def _key_words(key) -> jax.Array:
    """The two uint32 words that key the Threefry hash: the key's own data for a Threefry key (typed
    or legacy ``uint32[2]``), else two words drawn from the key's generator."""
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)
    if str(jax.random.key_impl(key)) == "threefry2x32":
        return jax.random.key_data(key)
    return jax.random.bits(key, (2,), jnp.uint32)


_ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)


def threefry2x32(k0, k1, x0, x1):
    """``(uint32[...], uint32[...])``: Threefry-2x32 with 20 rounds (Salmon et al., SC 2011), the hash behind `jax.random`'s default
    keys, written out so that XLA fuses it into the sampling step. `jax.random` lowers it on CPU as a
    nested loop, which costs about 0.1 s more to compile; a test checks the two agree bit for bit. The
    same code runs on numpy ``uint32`` arrays (the host sampler): the constants are numpy scalars."""
    keys = (k0, k1, k0 ^ k1 ^ np.uint32(0x1BD11BDA))
    x0, x1 = x0 + keys[0], x1 + keys[1]
    for block in range(5):
        for r in _ROTATIONS[4 * (block % 2) : 4 * (block % 2) + 4]:
            x0 = x0 + x1
            x1 = ((x1 << np.uint32(r)) | (x1 >> np.uint32(32 - r))) ^ x0
        x0 = x0 + keys[(block + 1) % 3]
        x1 = x1 + keys[(block + 2) % 3] + np.uint32(block + 1)
    return x0, x1


def _uniforms(words, step, shape, dtype, xp=jnp):
    """``U[0, 1)`` draws of ``shape`` for scan step ``step``: Threefry-2x32 of the counter blocks
    ``(j, step)`` under the key's words, j over the draws. ``xp`` is ``jnp`` in the program and ``np``
    in the host sampler; both give the same bits and the same floats."""
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    wide = dtype.itemsize > 4
    blocks = size if wide else -(-size // 2)
    if xp is np:
        count = np.arange(blocks, dtype=np.uint32)
        step = np.full_like(count, np.uint32(step))
    else:
        count = jax.lax.iota(jnp.uint32, blocks)
        step = jnp.full_like(count, step.astype(jnp.uint32))
    hi, lo = threefry2x32(words[0], words[1], count, step)
    if wide:  # 53 random bits per draw
        mantissa = (hi >> np.uint32(5)).astype(dtype) * dtype.type(2.0**26) + (lo >> np.uint32(6)).astype(dtype)
        return (mantissa * dtype.type(2.0**-53)).reshape(shape)
    bits = xp.concatenate([hi, lo])[:size]
    return ((bits >> np.uint32(8)).astype(dtype) * dtype.type(2.0**-24)).reshape(shape)


# --------------------------------------------------------------------------------------------------
# the sampler


def _cdf(table):
    """Row-wise running sums of ``table`` added left to right, as ``np.cumsum`` does on the host, so the
    compiled and the host sampler read the same CDF bit for bit (XLA's ``cumsum`` adds in another order:
    rows of 21 states differ in the last bit about once in eight entries)."""
    def add(total, column):
        total = total + column
        return total, total

    _, cols = jax.lax.scan(add, vary_like(jnp.zeros(table.shape[:1], table.dtype), table), table.T)
    return cols.T


@functools.partial(jax.jit, static_argnums=(0, 4))
def sample_program(structure: Structure, table, key, evidence, n: int):
    """The compiled sampler behind `sample` and `likelihood_weighting`, one compile per structure and
    sample count ``n`` (CPT values, keys and evidence are data): an ancestral pass with the variables
    ``evidence >= 0`` clamped (``evidence`` None: none are), ``(int32[n, n_vars], f[n] log-weights)``.
    ``table`` is the padded CDF table of the module docstring."""
    prog = _program(structure, n)
    dtype = table.dtype
    cum = jax.lax.stop_gradient(_cdf(table))  # the draws are integers: no gradient
    n_vars = len(structure.names)
    clamp = evidence is not None
    ev_ext = jnp.concatenate([evidence, jnp.full((1,), -1, jnp.int32)]) if clamp else None

    words = _key_words(key)

    def step(carry, xs):
        x, log_w = carry
        var, parent, stride, offset, card, t = xs
        row = offset[:, None] + jnp.sum(x[parent] * stride[:, :, None], axis=1)  # [C, n]
        rows = cum[row]  # [C, n, W]
        total = rows[..., -1]
        u = _uniforms(words, t, row.shape, dtype)
        target = jnp.minimum(u * total, jnp.nextafter(total, jnp.zeros_like(total)))
        value = jnp.sum(rows <= target[..., None], axis=-1, dtype=jnp.int32)
        if clamp:
            e = ev_ext[var][:, None]  # [C, 1]
            observed = e != -1  # any other value is clamped; out of range, it has likelihood 0
            in_range = (e >= 0) & (e < card[:, None])
            lik = jnp.where(in_range, table[row, jnp.clip(e, 0, prog.width - 1)], 0.0)  # [C, n]
            log_w = log_w + jnp.sum(jnp.where(observed, safe_log(lik), 0.0), axis=0)
            value = jnp.where(observed, e, value)
        return (x.at[var].set(value), log_w), None

    n_steps = prog.var.shape[0]
    xs = (prog.var, prog.parent, prog.stride, prog.offset, prog.card, jnp.arange(n_steps, dtype=jnp.int32))
    # typed like the per-device data the steps mix in, for jax.shard_map (keys, evidence, tables)
    init = vary_like((jnp.zeros((n_vars + 1, n), jnp.int32), jnp.zeros((n,), dtype)), words, evidence, table)
    (x, log_w), _ = jax.lax.scan(step, init, xs)
    return x[:n_vars].T, log_w


def host_sample(structure: Structure, table: np.ndarray, words: np.ndarray, evidence, n: int):
    """`sample_program` run step by step in numpy on concrete inputs: the same layout, the same
    Threefry counters, the same float arithmetic, hence the same samples bit for bit (a test checks it),
    with nothing to compile. Log-weights are summed in float64 from the same likelihoods and rounded once
    (the compiled program's own ``log`` and sum order differ from numpy's in the last bit or two).
    ``(int32[n, n_vars], f[n] log-weights)``."""
    prog = _program(structure, n)
    dtype = table.dtype
    cum = np.cumsum(table, axis=1)
    n_vars = len(structure.names)
    clamp = evidence is not None
    ev_ext = np.concatenate([np.asarray(evidence, np.int32), [-1]]) if clamp else None
    x = np.zeros((n_vars + 1, n), np.int32)
    log_w = np.zeros((n,), np.float64)
    w0, w1 = np.uint32(words[0]), np.uint32(words[1])
    for t in range(prog.var.shape[0]):
        var, parent, stride, offset, card = prog.var[t], prog.parent[t], prog.stride[t], prog.offset[t], prog.card[t]
        row = offset[:, None] + np.sum(x[parent] * stride[:, :, None], axis=1, dtype=np.int32)
        rows = cum[row]
        total = rows[..., -1]
        u = _uniforms((w0, w1), t, row.shape, dtype, xp=np)
        target = np.minimum(u * total, np.nextafter(total, np.zeros_like(total)))
        value = np.sum(rows <= target[..., None], axis=-1, dtype=np.int32)
        if clamp:
            e = ev_ext[var][:, None]
            observed = e != -1
            in_range = (e >= 0) & (e < card[:, None])
            lik = np.where(in_range, table[row, np.clip(e, 0, prog.width - 1)], 0.0).astype(np.float64)
            with np.errstate(divide="ignore"):
                log_w += np.sum(np.where(observed, np.log(lik), 0.0), axis=0)
            value = np.where(observed, e, value)
        x[var] = value
    return x[:n_vars].T, log_w.astype(dtype)


# Host sampling gathers about 2.5e8 CDF entries a second on one core (munin, 1,000 samples: 2.4e7 entries,
# 0.1 s); compiling the program costs 0.3-1.3 s. An eager call samples on the host below this many
# entries (about 0.4 s of numpy) and compiles above it.
_HOST_ENTRIES = 1e8


def _choose(structure: Structure, n: int, method: str, concrete: bool) -> str:
    if method not in ("auto", "host", "program"):
        raise ValueError(f"method must be 'auto', 'host' or 'program', got {method!r}")
    if method == "host" and not concrete:
        raise ValueError("method='host' needs concrete inputs (it runs in numpy): call it outside jax.jit/vmap/grad")
    if method != "auto":
        return method
    if not concrete:
        return "program"
    prog = _program(structure, n)
    entries = prog.var.size * max(n, 1) * prog.width
    return "host" if entries <= _HOST_ENTRIES else "program"


def _forward(net: BayesNet, key, evidence, n: int, method: str):
    prog = _program(net.structure, n)
    concrete = not any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves((net.cpts, key, evidence)))
    if _choose(net.structure, n, method, concrete) == "host":
        table = _table(net, prog, host=True)
        words = np.asarray(_key_words(key))
        x, log_w = host_sample(net.structure, table, words, None if evidence is None else np.asarray(evidence), n)
        return jax.device_put(x), jax.device_put(log_w)
    return sample_program(net.structure, _table(net, prog), key, evidence, n)


def _check_count(num_samples) -> int:
    try:
        num_samples = operator.index(num_samples)
    except TypeError:
        raise TypeError(f"num_samples must be an int, got {type(num_samples).__name__}") from None
    if num_samples < 0:
        raise ValueError(f"num_samples must be >= 0, got {num_samples}")
    return num_samples


def _dtype(net: BayesNet):
    return jnp.result_type(*net.cpts) if net.cpts else jnp.result_type(float)


def sample(key: jax.Array, net: BayesNet, num_samples: int, *, method: str = "auto") -> jax.Array:
    """Ancestral samples ``x ~ P(X) = prod_i P(X_i | U_i)``, ``int32[num_samples, n_vars]``.

    Columns follow the network's variable order. One compiled program per structure and sample count (a
    scan over chunks of variables of the same topological level; see the module docstring), so the first
    call costs about the same on ten variables as on a thousand. Jit with ``num_samples`` static
    (``jax.jit(sample, static_argnums=2)``); vmap over keys or CPTs. An eager call (every input
    concrete) of modest size runs the same program in numpy instead (`host_sample`: nothing to
    compile, the same samples bit for bit), so a notebook's first call answers in milliseconds.

    Args:
      key: a `jax.random` key.
      net: the network.
      num_samples: number of samples (a Python int).
      method: ``"auto"`` (host for an eager call below about 1e8 gathered CDF entries, else the compiled
        program), ``"host"`` (numpy; concrete inputs only) or ``"program"`` (compiled).

    Returns:
      ``int32[num_samples, n_vars]``: row s is one joint draw, a state index per variable.

    Raises:
      TypeError: ``num_samples`` is not an int.
      ValueError: ``num_samples`` is negative.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> x = sample(jax.random.key(0), net, 10_000)                 # int32[10000, n_vars]
      >>> x.shape, x.dtype
      ((10000, 2), dtype('int32'))
      >>> bool(abs(x[:, 1].mean() - 0.24) < 0.02)                     # P(Wet = yes) = 0.24
      True
      >>> keys = jax.random.split(jax.random.key(1), 3)
      >>> jax.vmap(sample, (0, None, None))(keys, net, 100).shape   # int32[B, 100, n_vars]
      (3, 100, 2)
    """
    num_samples = _check_count(num_samples)
    if net.n_vars == 0:
        return jnp.zeros((num_samples, 0), jnp.int32)
    return _forward(net, key, None, num_samples, method)[0]


class WeightedSamples(NamedTuple):
    """Samples with importance log-weights: ``samples: int32[n, n_vars]``, ``log_weights: f32[n]``.

    Attributes:
      samples: ``int32[n, n_vars]``, the draws with the observed variables clamped to their evidence.
      log_weights: ``f32[n]``, log w_s = sum over observed i of log P(e_i | parents of i in sample s).

    Examples:
      >>> w = WeightedSamples(samples=jnp.array([[0, 1], [1, 1]]), log_weights=jnp.log(jnp.array([0.1, 0.8])))
      >>> samples, log_weights = w       # a NamedTuple: unpacks, and is a pytree under jit/vmap
      >>> samples.shape
      (2, 2)
    """

    samples: jax.Array
    log_weights: jax.Array


def likelihood_weighting(key: jax.Array, net: BayesNet, evidence, num_samples: int, *,
                         method: str = "auto") -> WeightedSamples:
    """Likelihood weighting: observed variables are clamped, each sample weighted by P(e | its parents).

    ``log w = sum_{i observed} log P(X_i = e_i | U_i = u)``, with the unobserved variables drawn
    ancestrally; the weighted empirical distribution converges to P(X | e) (see `weighted_marginals`) and
    the mean weight to P(e). Same program as `sample`; jit with ``num_samples`` static, vmap over keys,
    evidence or CPTs.

    Args:
      key: a `jax.random` key.
      net: the network.
      evidence: evidence ``int32[n_vars]``, a state index per variable or -1 (unobserved).
      num_samples: number of samples (a Python int).
      method: as in `sample` (host samples equal the program's bit for bit; host log-weights are summed
        in float64 and agree to float rounding).

    Returns:
      `WeightedSamples` (``int32[num_samples, n_vars]``, ``f[num_samples]``); samples of weight zero have
      log-weight -inf.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> w = likelihood_weighting(jax.random.key(0), net, net.evidence({"Wet": "yes"}), 10_000)
      >>> sorted(set(np.exp(np.asarray(w.log_weights)).round(4).tolist()))   # P(Wet = yes | Rain)
      [0.1, 0.8]
      >>> bool(abs(weighted_marginals(net, w)["Rain"][1] - 2 / 3) < 0.03)  # P(Rain = yes | Wet = yes)
      True

    Raises:
      ValueError: (eager calls) evidence of the wrong shape, or a value outside ``[-1, card)``, naming
        the variable. Under `jax.jit` values are not checked (wrap with `gm.validation.checked` to check
        them): a value outside ``[-1, card)`` gives every sample weight zero (log-weight -inf).
    """
    n = _check_count(num_samples)
    if not isinstance(evidence, jax.Array):  # a host array: device_put compiles nothing (jnp.asarray may)
        evidence = jax.device_put(np.asarray(evidence))
    evidence = check_evidence(net, evidence)
    if net.n_vars == 0:
        return WeightedSamples(jnp.zeros((n, 0), jnp.int32), jnp.zeros((n,), _dtype(net)))
    return WeightedSamples(*_forward(net, key, evidence, n, method))


_BLOCK = 1024  # samples per partial sum of `weighted_marginals` (float32 scatter-adds run in sequence)


@functools.partial(jax.jit, static_argnums=0)
def _state_totals(cards: tuple[int, ...], weighted: WeightedSamples) -> jax.Array:
    """Normalised weight of every (variable, state), ``f[sum(cards)]``, variables in order.

    One scatter-add into per-block partial sums, then a sum over the blocks: a single running float32
    sum over 1e5 samples drifts by about 1e-4."""
    starts = np.concatenate([[0], np.cumsum(cards)[:-1]]).astype(np.int32)
    w = jax.nn.softmax(weighted.log_weights)
    n = w.shape[0]
    blocks = max(1, -(-n // _BLOCK))
    pad = blocks * _BLOCK - n
    w = jnp.pad(w, (0, pad)).reshape(blocks, _BLOCK)
    index = jnp.pad(weighted.samples, ((0, pad), (0, 0))).reshape(blocks, _BLOCK, -1) + starts
    block = jnp.broadcast_to(jnp.arange(blocks)[:, None, None], index.shape)
    partial = jnp.zeros((blocks, sum(cards)), w.dtype).at[block, index].add(
        jnp.broadcast_to(w[:, :, None], index.shape)
    )
    return jnp.sum(partial, axis=0)


def weighted_marginals(net: BayesNet, weighted: WeightedSamples) -> dict[str, jax.Array]:
    """Self-normalised estimates of P(X_i | e) from likelihood-weighted samples, ``{name: f[card]}``.

    ``P(X_i = x | e) ~ sum_s w_s [x_s,i = x] / sum_s w_s``: one scatter-add for all variables. If every
    weight is zero (-inf log-weights), the estimates are NaN.

    Args:
      net: the network the samples were drawn from.
      weighted: `WeightedSamples` from `likelihood_weighting` (``int32[n, n_vars]``, ``f[n]``).

    Returns:
      ``{name: f[card]}``, each summing to one.

    Examples:
      >>> net = BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
      ...                          {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
      >>> w = WeightedSamples(jnp.array([[0, 1], [1, 1]]), jnp.log(jnp.array([0.1, 0.8])))
      >>> print(weighted_marginals(net, w)["Rain"])                # [0.1, 0.8] / 0.9
      [0.1111 0.8889]
    """
    if net.n_vars == 0:
        return {}
    totals = _state_totals(net.cards, weighted)
    bounds = np.cumsum(net.cards)[:-1].tolist()
    if isinstance(totals, jax.core.Tracer):
        parts = jnp.split(totals, bounds)
    else:  # split on the host: an eager split into a thousand outputs compiles for seconds
        parts = [jax.device_put(p) for p in np.split(np.asarray(totals), bounds)]
    return dict(zip(net.names, parts))
