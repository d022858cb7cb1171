"""Contraction programs: a plan lowered to a fixed-shape step program run by a few `lax.scan` loops.

Why. `tensornet.contract` replays a plan pairwise in Python, so the traced program has one kernel per
step and another for its reverse. XLA's compile time grows faster than that program: a 2,000-variable
chain, diabetes (413 variables) or munin2 (1,003) took minutes to compile. Here the plan is *data*:

* Every tensor of the plan (inputs and intermediates) has a slot in one flat memory ``mem: f[S + 3, V]``
  (``V`` evidence sets, the batch axis minor), row-major over its labels.
* Every pairwise step ``C[out] = sum_{(la | lb) - out} A[la] * B[lb]`` is written as a batched matrix
  product ``C[t, m, n] = sum_k A[t, m, k] * B[t, k, n]``: ``t`` the labels kept that both carry, ``m``
  (``n``) the kept labels only A (B) carries, ``k`` the summed labels. Its operands are *gathered* from
  ``mem`` by precomputed index tables (a label an operand lacks has stride 0, so broadcasting is free)
  and its result is *scattered* back. A unary step reads B from a slot holding the semiring's one.
* Steps are list-scheduled so that runs of consecutive steps share a shape class, and each run is
  padded to one shape (a segment; at most ``max_segments``, adjacent runs merged while it costs little):
  one `lax.scan` per segment, so the compiled program has a bounded number of loops whatever the
  network's size. Small steps are *flat* (their product grid enumerated: a gather-multiply and a
  segment-sum into the output), large ones *dense* (batched matrix products). Padding reads a slot
  holding the semiring's zero and writes to a trash slot; the tables are constants of the program.
  (One scan with a `lax.switch` over shape buckets was measured first: XLA copies the whole memory in
  and out of the conditional at every step, 2.2 s against 18.5 ms on a 2,000-variable chain, V = 100.)
* Float32 underflow: every step divides its result by its maximum and carries the log (per evidence
  set), as `tensornet.contract` does; the scales are saved for the reverse pass.
* All marginals: the reverse pass is written by hand as a second scan in reverse step order. It reads
  the forward intermediates from ``mem`` (every tensor keeps its slot) and scatter-adds the cotangents
  of both operands; the cotangent of the input entries times the CPT entries, summed by (variable,
  state), is ``d log P(e) / d e_i(x)`` (the differential approach, see `gm.bn.inference`).
* MPE: the forward scan in the max-sum semiring (log space, no rescaling) also scatters each output
  entry's argmax over ``k``; a decoding loop in reverse step order reads the argmax at the position of
  the already-decoded kept labels and unravels it into the summed labels.

Length: about 600 lines of code, one lowering (plus docstrings with runnable examples). The scheduler (segments, padding), the index tables and the three
passes (forward, hand-written reverse, max-sum with decoding) read and write the same slot layout, in
both XLA and the numpy host twin; split apart, each file would have to re-derive that layout.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

from gm.bn.tensornet import Plan
from gm.xla import vary_like

# Dimension grid for padding: 1, 2, 3, 4, 6, 8, 12, 16, ... (at most 1.5x waste per dimension).
_GRID = np.unique(np.concatenate([2 ** np.arange(40), 3 * 2 ** np.arange(39)])).astype(np.int64)

# A step whose padded m * k * n is at most this is a broadcast multiply and sum (one fused loop over
# the evidence axis); larger ones are dot_generals.
_EWISE_LIMIT = 512


def _round_up(d: int) -> int:
    return int(_GRID[np.searchsorted(_GRID, d)])


@dataclasses.dataclass(frozen=True, eq=False)
class Segment:
    """A run of consecutive steps padded to one shape; tables are ``int32[count, ...]``.

    ``dense`` steps (large ones) are batched matrix products with shape ``(t, m, k, n)``: tables ``a``
    ``[count, t, m, k]``, ``b`` ``[count, t, k, n]`` (pad: ZERO) and ``c`` ``[count, t, m, n]`` (pad:
    TRASH). ``flat`` steps (small ones) enumerate their product grid, shape ``(F, C)``: ``a``, ``b``
    ``[count, F]`` operand slots of each product entry (pad: ZERO), ``out`` ``[count, F]`` the entry's
    output position in ``[0, C)`` (pad: C), ``k`` ``[count, F]`` its summed labels' flat index (for MPE)
    and ``c`` ``[count, C]`` the output slots (pad: TRASH). Small steps of many different shapes then
    share a few (F, C) classes instead of one 4-d class each.

    Attributes:
      shape: ``(t, m, k, n)`` for dense steps, ``(F, C)`` for flat ones.
      a: first operand slots, ``int32[count, t, m, k]`` (dense) or ``int32[count, F]`` (flat).
      b: second operand slots, ``int32[count, t, k, n]`` or ``int32[count, F]``.
      c: output slots, ``int32[count, t, m, n]`` or ``int32[count, C]``.
      out: flat steps only: each product entry's output position, ``int32[count, F]``.
      k: flat steps only: each product entry's summed labels' flat index, ``int32[count, F]``.

    Examples:
      >>> from gm.bn.tensornet import plan
      >>> prog = lower(plan(((0,), (0, 1)), (), (2, 2)))         # sum_ij a[i] B[i, j]
      >>> seg = prog.segments[0]
      >>> seg.flat, seg.a.shape[0]                              # one flat step
      (True, 1)
    """

    shape: tuple[int, ...]
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    out: np.ndarray | None = None
    k: np.ndarray | None = None

    @property
    def flat(self) -> bool:
        """Whether the segment's steps enumerate their product grid (small steps) instead of matmuls.

        Examples:
          >>> from gm.bn.tensornet import plan
          >>> prog = lower(plan(((0,), (0, 1)), (), (2, 2)))         # sum_ij a[i] B[i, j]
          >>> prog.segments[0].flat
          True
        """
        return self.out is not None

    @property
    def ewise(self) -> bool:
        """Whether a dense segment's padded ``m * k * n`` is small enough for a broadcast multiply and sum.

        Only meaningful for dense segments (``shape = (t, m, k, n)``).

        Examples:
          >>> Segment((1, 2, 2, 2), *(np.zeros((1, 1)),) * 3).ewise
          True
        """
        _, m, k, n = self.shape
        return m * k * n <= _EWISE_LIMIT


@dataclasses.dataclass(frozen=True, eq=False)
class Direct:
    """One large step run on its own, unpadded: its operands are read from their slots as arrays of their
    labels' shape (a static slice and a reshape, no gather) and multiplied by `_contract`.

    A plan's few largest steps carry most of its multiply-adds (pigs: 13 of 440 steps, 96%); padded into
    a segment they pay the gathers, the scatters and the padding of their class, run directly they run
    as one fused loop of multiply-adds each (or an einsum), for one more kernel each to compile.

    Steps of one *signature* (the same operand and result shapes, the same labels up to renaming) that the
    schedule runs one after another form one run: ``offsets`` lists each step's slot offsets and one
    `lax.scan` reads them by dynamic slices (contiguous rows, still no gather), so a plan's many steps
    of a few shapes compile as a few kernels (diabetes: 259 steps of at least 2^12 multiply-adds,
    31 signatures, 98% of its work).

    Attributes:
      a, b: ``(slot offset, labels)`` of the operands (``b`` is ``None`` for a unary step); for a run,
        the first step's, its labels standing for every step's.
      c: ``(slot offset, labels)`` of the result.
      summed: the labels summed over, in the order of the step's decode tables (row-major argmax).
      sizes: the plan's label sizes.
      offsets: for a run of more than one step, ``int32[count, 3]``: each step's offsets of a, b (0 for a
        unary step) and c, in execution order; ``None`` for one step.

    Examples:
      >>> from gm.bn.tensornet import plan
      >>> prog = lower(plan(((0,), (0, 1)), (), (2, 2)), direct_flops=0)   # sum_ij a[i] B[i, j]
      >>> prog.segments[0].summed, prog.segments[0].flops
      ((0, 1), 4)
    """

    a: tuple[int, tuple[int, ...]]
    b: tuple[int, tuple[int, ...]] | None
    c: tuple[int, tuple[int, ...]]
    summed: tuple[int, ...]
    sizes: tuple[int, ...]
    offsets: np.ndarray | None = None

    @property
    def count(self) -> int:
        """Steps in the run: 1, or the rows of ``offsets``.

        Examples:
          >>> Direct((0, (0,)), (2, (0, 1)), (6, ()), (0, 1), (2, 3)).count
          1
        """
        return 1 if self.offsets is None else len(self.offsets)

    @property
    def flops(self) -> int:
        """Multiply-adds of the step per evidence set (the product of the sizes of all its labels).

        Examples:
          >>> Direct((0, (0,)), (2, (0, 1)), (6, ()), (0, 1), (2, 3)).flops
          6
        """
        return math.prod(self.sizes[l] for l in set(self.c[1]) | set(self.summed))


@dataclasses.dataclass(frozen=True, eq=False)
class Program:
    """A plan lowered to memory slots and segments of gather/scatter tables (see the module docstring).

    Attributes:
      plan: the plan it was lowered from.
      size: ``S``, the number of real slots; ``ZERO = S``, ``ONE = S + 1``, ``TRASH = S + 2``.
      n_input: number of input entries (they occupy slots ``[0, n_input)``, inputs in order, row-major).
      segments: the runs of steps, in execution order.
      steps: the unpadded ``(A, B, C)`` slot tables of every step, in execution order (the host path).
      root: ``(offset, shape)`` of the result (the plan's output labels).
      decode_*: per-step tables for MPE decoding in execution order, padded to the most labels any step
        keeps / sums.
      padded_flops: multiply-adds the padded program performs per evidence set.

    Examples:
      >>> from gm.bn.tensornet import plan
      >>> prog = lower(plan(((0,), (0, 1)), (), (2, 2)))         # sum_ij a[i] B[i, j]
      >>> prog.n_input, prog.n_steps, len(prog.segments), prog.root
      (6, 1, 1, (6, ()))
    """

    plan: Plan
    size: int
    n_input: int
    segments: tuple[Segment, ...]
    steps: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]
    root: tuple[int, tuple[int, ...]]
    decode_out_labels: np.ndarray  # [T, Lo] (pad: the trash label)
    decode_out_strides: np.ndarray  # [T, Lo]
    decode_out_offset: np.ndarray  # [T]
    decode_sum_labels: np.ndarray  # [T, Lk] (pad: the trash label)
    decode_sum_sizes: np.ndarray  # [T, Lk] (pad: 1)
    decode_sum_strides: np.ndarray  # [T, Lk]
    padded_flops: float

    @property
    def zero(self) -> int:
        """Slot holding the semiring's zero (``S``): padded operands read it.

        Examples:
          >>> from gm.bn.tensornet import plan
          >>> prog = lower(plan(((0,), (0, 1)), (), (2, 2)))         # sum_ij a[i] B[i, j]
          >>> prog.zero
          7
        """
        return self.size

    @property
    def one(self) -> int:
        """Slot holding the semiring's one (``S + 1``): the second operand of a unary step.

        Examples:
          >>> from gm.bn.tensornet import plan
          >>> prog = lower(plan(((0,), (0, 1)), (), (2, 2)))         # sum_ij a[i] B[i, j]
          >>> prog.one
          8
        """
        return self.size + 1

    @property
    def trash(self) -> int:
        """Slot that padded outputs are written to (``S + 2``).

        Examples:
          >>> from gm.bn.tensornet import plan
          >>> prog = lower(plan(((0,), (0, 1)), (), (2, 2)))         # sum_ij a[i] B[i, j]
          >>> prog.trash
          9
        """
        return self.size + 2

    @property
    def n_steps(self) -> int:
        """Number of (unpadded) contraction steps, in execution order.

        Examples:
          >>> from gm.bn.tensornet import plan
          >>> prog = lower(plan(((0,), (0, 1)), (), (2, 2)))         # sum_ij a[i] B[i, j]
          >>> prog.n_steps
          1
        """
        return int(self.decode_out_offset.shape[0])


def _grid_index(labels, sizes, axis_labels, strides) -> np.ndarray:
    """Flat offsets ``sum_l coord_l * strides[l]`` over the grid spanned by ``axis_labels`` (row-major).

    Labels of the grid absent from ``strides`` contribute 0 (broadcast)."""
    # grown one axis at a time (an outer sum), so each pass writes only the grid built so far: about
    # one write per final entry instead of one per entry and axis (munin1's lowering: 1.4 s -> 0.3 s)
    idx = np.zeros((), np.int64)
    for l in axis_labels:
        coord = np.arange(sizes[l], dtype=np.int64) * strides.get(l, 0)
        idx = np.add.outer(idx, coord)
    return idx


def _strides(labels, sizes) -> dict[int, int]:
    out, s = {}, 1
    for l in reversed(labels):
        out[l] = s
        s *= sizes[l]
    return out


def _schedule(classes, deps) -> list[int]:
    """A topological order of the steps that runs as long as possible within one shape class.

    ``classes[k]`` is step k's class, ``deps[k]`` the steps it consumes. List scheduling: keep taking a
    ready step of the current class; when none is ready, switch to the class with the most ready steps.
    """
    n = len(classes)
    users: list[list[int]] = [[] for _ in range(n)]
    waiting = [len(d) for d in deps]
    for k, d in enumerate(deps):
        for j in d:
            users[j].append(k)
    ready: dict = {}
    for k in range(n):
        if waiting[k] == 0:
            ready.setdefault(classes[k], []).append(k)
    order, current = [], None
    while len(order) < n:
        if not ready.get(current):
            current = max(ready, key=lambda c: (len(ready[c]), c))
        k = ready[current].pop()
        if not ready[current]:
            del ready[current]
        order.append(k)
        for u in users[k]:
            waiting[u] -= 1
            if waiting[u] == 0:
                ready.setdefault(classes[u], []).append(u)
    return order


# Steps with at most this many product entries run as flat (enumerated) steps.
_FLAT_LIMIT = 1 << 14

# Steps of at least DIRECT_FLOPS multiply-adds run as `Direct` steps: those of the MAX_DIRECT signatures
# (shapes up to a renaming of labels) that carry the most multiply-adds.
DIRECT_FLOPS = 1 << 12
MAX_DIRECT = 32


def _signature(d: Direct) -> tuple:
    """A step's shape up to a renaming of its labels: steps of equal signature run the same code."""
    local: dict = {}
    for l in d.a[1] + (d.b[1] if d.b is not None else ()) + d.c[1]:
        local.setdefault(l, len(local))
    return (
        tuple(local[l] for l in d.a[1]),
        None if d.b is None else tuple(local[l] for l in d.b[1]),
        tuple(local[l] for l in d.c[1]),
        tuple(local[l] for l in d.summed),
        tuple(d.sizes[l] for l in local),
    )


def _class_flops(cls) -> int:
    """Padded multiply-adds of one step of class ``cls``: ``(0, F, C)`` flat, ``(1, t, m, k, n)`` dense or
    ``(2, signature, flops)`` direct."""
    return cls[1] if cls[0] == 0 else cls[2] if cls[0] == 2 else math.prod(cls[1:])


def _segments(shapes, max_segments: int, free_flops: float) -> list[tuple[tuple[int, ...], int, int]]:
    """Cut a sequence of step shapes into runs ``(padded shape, start, stop)``.

    Starts from runs of equal shapes and merges adjacent runs (their shape becomes the elementwise max),
    cheapest first, while a merge adds at most ``free_flops`` padded multiply-adds or more than
    ``max_segments`` runs remain."""
    runs = []
    for k, sh in enumerate(shapes):
        if runs and runs[-1][0] == sh:
            runs[-1][2] = k + 1
        else:
            runs.append([sh, k, k + 1])

    def cost(r):
        return (r[2] - r[1]) * _class_flops(r[0])

    def merged(r, q):
        return [tuple(max(x, y) for x, y in zip(r[0], q[0])), r[1], q[2]]

    def extra(r, q):
        if r[0][0] != q[0][0] or r[0][0] == 2:  # flat and dense steps never share a segment, direct ones none
            return math.inf
        return cost(merged(r, q)) - cost(r) - cost(q)

    # a merge forced by the segment limit may at most double the program's padded cost so far: past
    # that, more segments (a longer compile) beat a program whose padding dwarfs its work
    budget = 2 * sum(cost(r) for r in runs) + free_flops
    while len(runs) > 1:
        extras = [extra(runs[i], runs[i + 1]) for i in range(len(runs) - 1)]
        i = int(np.argmin(extras))
        if extras[i] == math.inf or (extras[i] > free_flops and len(runs) <= max_segments):
            break
        if extras[i] > free_flops and sum(cost(r) for r in runs) + extras[i] > budget:
            break
        runs[i : i + 2] = [merged(runs[i], runs[i + 1])]
    return [(tuple(r[0]), r[1], r[2]) for r in runs]


def _flat_segment(shape, members, zero: int, trash: int) -> Segment:
    """Tables of a flat segment (see `Segment`) from the members' unpadded ``(dims, a, b, c)``."""
    fp, cp = shape
    count = len(members)
    ta = np.full((count, fp), zero, np.int64)
    tb = np.full((count, fp), zero, np.int64)
    to = np.full((count, fp), cp, np.int64)
    tk = np.zeros((count, fp), np.int64)
    tc = np.full((count, cp), trash, np.int64)
    for row, ((t, m, kk, n), a, b, c) in enumerate(members):
        f = t * m * kk * n
        # the product grid [t, m, k, n], row-major
        ta[row, :f] = np.broadcast_to(a[:, :, :, None], (t, m, kk, n)).ravel()
        tb[row, :f] = np.broadcast_to(b[:, None, :, :], (t, m, kk, n)).ravel()
        local = np.arange(t * m * n).reshape(t, m, 1, n)
        to[row, :f] = np.broadcast_to(local, (t, m, kk, n)).ravel()
        tk[row, :f] = np.broadcast_to(np.arange(kk)[None, None, :, None], (t, m, kk, n)).ravel()
        tc[row, : t * m * n] = c.ravel()
    cast = lambda x: x.astype(np.int32)  # noqa: E731
    return Segment(shape, cast(ta), cast(tb), cast(tc), out=cast(to), k=cast(tk))


@functools.lru_cache(maxsize=64)
def lower(
    p: Plan,
    max_segments: int = 64,
    free_flops: float = 2e4,
    flat_limit: int = _FLAT_LIMIT,
    *,
    padded: bool = True,
    direct_flops: float = DIRECT_FLOPS,
    max_direct: int = MAX_DIRECT,
) -> Program:
    """Lower plan ``p`` to a `Program` (cached per plan).

    Args:
      p: the plan.
      max_segments: the most scans (fixed-shape runs of steps) the program may have; each costs a loop
        to compile, forward and reverse.
      free_flops: adjacent runs are merged whenever that adds at most this many padded multiply-adds
        (per evidence set), even below ``max_segments``.
      flat_limit: steps with at most this many product entries run flat (see `Segment`).
      padded: build the padded segment tables of the compiled program; ``False`` leaves ``segments``
        empty for a program only the host runs (`forward_host`, `backward_host`, `forward_max_host`),
        which reads the unpadded ``steps`` (munin's padded tables would take 108 GiB under some paths).
      direct_flops: steps of at least this many multiply-adds per evidence set run as `Direct` steps
        (unpadded contractions), grouped by signature (shape up to a renaming of labels); consecutive
        steps of one signature run as one `Direct` run.
      max_direct: the most signatures run direct, those carrying the most multiply-adds first (each run
        is one more kernel forward and reverse to compile).

    Returns:
      The `Program`: slots of every tensor, segments of padded gather/scatter tables, decode tables.

    Examples:
      >>> from gm.bn.tensornet import plan
      >>> prog = lower(plan(((0,), (0, 1)), (), (2, 2)))         # sum_ij a[i] B[i, j]
      >>> prog.size, prog.padded_flops
      (7, 4.0)
    """
    sizes = p.sizes
    labels = p.labels
    n_in = len(p.inputs)
    offsets, total = [], 0
    for lab in labels:
        offsets.append(total)
        total += math.prod(sizes[l] for l in lab)
    n_input = offsets[n_in] if len(labels) > n_in else total
    zero, one, trash = total, total + 1, total + 2
    trash_label = len(sizes)

    steps = list(p.steps)
    if not steps:  # a single input: reduce it with a unary step
        from gm.bn.tensornet import Step

        steps = [Step(0, -1, p.output)]
        offsets.append(total)
        total += math.prod(sizes[l] for l in p.output)
        zero, one, trash = total, total + 1, total + 2
        labels = tuple(labels) + (tuple(p.output),)

    raw = []  # per step: dims, a, b, c tables (unpadded)
    direct_steps = []  # per step: its `Direct` form
    dec = []
    for k, s in enumerate(steps):
        la = labels[s.a]
        lb = labels[s.b] if s.b >= 0 else ()
        out = s.out
        sa, sb = set(la), set(lb)
        t_l = [l for l in out if l in sa and l in sb]
        m_l = [l for l in out if l in sa and l not in sb]
        n_l = [l for l in out if l in sb and l not in sa]
        k_l = [l for l in dict.fromkeys(la + lb) if l not in set(out)]
        out_pos = n_in + k if p.steps else len(labels) - 1
        st_a = _strides(la, sizes)
        st_b = _strides(lb, sizes)
        st_c = _strides(out, sizes)
        dims = tuple(math.prod(sizes[l] for l in g) for g in (t_l, m_l, k_l, n_l))
        a = offsets[s.a] + _grid_index(la, sizes, t_l + m_l + k_l, st_a).reshape(dims[0], dims[1], dims[2])
        if s.b >= 0:
            b = offsets[s.b] + _grid_index(lb, sizes, t_l + k_l + n_l, st_b).reshape(dims[0], dims[2], dims[3])
        else:
            b = np.full((dims[0], dims[2], dims[3]), one, np.int64)
        c = offsets[out_pos] + _grid_index(out, sizes, t_l + m_l + n_l, st_c).reshape(dims[0], dims[1], dims[3])
        raw.append((dims, a, b, c))
        direct_steps.append(
            Direct(
                (offsets[s.a], tuple(la)),
                (offsets[s.b], tuple(lb)) if s.b >= 0 else None,
                (offsets[out_pos], tuple(out)),
                tuple(k_l),
                tuple(sizes),
            )
        )
        ks = _strides(k_l, sizes)
        dec.append(
            (
                [l for l in out],
                [st_c[l] for l in out],
                offsets[out_pos],
                k_l,
                [sizes[l] for l in k_l],
                [ks[l] for l in k_l],
            )
        )

    deps = []
    for s in steps:
        deps.append([j - n_in for j in (s.a, s.b) if j >= n_in])
    flops = [math.prod(dims) for dims, *_ in raw]
    # the signatures carrying the most multiply-adds in steps of at least direct_flops run direct
    sigs = [_signature(d) for d in direct_steps]
    work: dict = {}
    for k in range(len(raw)):
        if flops[k] >= direct_flops:
            work[sigs[k]] = work.get(sigs[k], 0) + flops[k]
    chosen = {sg: i for i, sg in enumerate(sorted(work, key=lambda sg: -work[sg])[:max_direct])}
    classes = []
    for k, (dims, *_) in enumerate(raw):
        f = flops[k]
        if flops[k] >= direct_flops and sigs[k] in chosen:
            classes.append((2, chosen[sigs[k]], f))
        elif f <= flat_limit:
            classes.append((0, _round_up(f), _round_up(dims[0] * dims[1] * dims[3])))
        else:
            classes.append((1,) + tuple(_round_up(d) for d in dims))
    order = _schedule(classes, deps) if p.steps else [0]
    runs = _segments([classes[k] for k in order], max_segments, free_flops) if padded else []

    segments = []
    padded_flops = 0.0
    for shape, start, stop in runs:
        members = order[start:stop]
        count = len(members)
        padded_flops += count * _class_flops(shape)
        if shape[0] == 2:
            first = direct_steps[members[0]]
            if count > 1:
                rows = [(d.a[0], d.b[0] if d.b is not None else 0, d.c[0]) for d in (direct_steps[k] for k in members)]
                first = dataclasses.replace(first, offsets=np.array(rows, np.int32))
            segments.append(first)
            continue
        if shape[0] == 0:
            segments.append(_flat_segment(shape[1:], [raw[k] for k in members], zero, trash))
            continue
        tp, mp, kp, np_ = shape[1:]
        ta = np.full((count, tp, mp, kp), zero, np.int64)
        tb = np.full((count, tp, kp, np_), zero, np.int64)
        tc = np.full((count, tp, mp, np_), trash, np.int64)
        for row, k in enumerate(members):
            (t, m, kk, n), a, b, c = raw[k]
            ta[row, :t, :m, :kk] = a
            tb[row, :t, :kk, :n] = b
            tc[row, :t, :m, :n] = c
        segments.append(Segment(shape[1:], ta.astype(np.int32), tb.astype(np.int32), tc.astype(np.int32)))

    if not padded:
        padded_flops = float(sum(math.prod(raw[k][0]) for k in order))
    exact = tuple((raw[k][1].astype(np.int32), raw[k][2].astype(np.int32), raw[k][3].astype(np.int32)) for k in order)
    dec = [dec[k] for k in order]  # decoding runs in reverse execution order
    lo = max([len(d[0]) for d in dec] + [1])
    lk = max([len(d[3]) for d in dec] + [1])

    def pad(rows, width, fill):
        return np.array([list(r) + [fill] * (width - len(r)) for r in rows], np.int32).reshape(len(rows), width)

    root_pos = n_in + len(p.steps) - 1 if p.steps else len(labels) - 1
    return Program(
        plan=p,
        size=total,
        n_input=n_input,
        segments=tuple(segments),
        steps=exact,
        root=(offsets[root_pos], tuple(sizes[l] for l in p.output)),
        decode_out_labels=pad([d[0] for d in dec], lo, trash_label),
        decode_out_strides=pad([d[1] for d in dec], lo, 0),
        decode_out_offset=np.array([d[2] for d in dec], np.int32),
        decode_sum_labels=pad([d[3] for d in dec], lk, trash_label),
        decode_sum_sizes=pad([d[4] for d in dec], lk, 1),
        decode_sum_strides=pad([d[5] for d in dec], lk, 1),
        padded_flops=padded_flops,
    )


# --------------------------------------------------------------------------------------------------
# execution


def _product(seg: Segment, a, b):
    """``C[t, m, n, V] = sum_k A[t, m, k, V] B[t, k, n, V]``."""
    if seg.ewise:
        return jnp.sum(a[:, :, :, None, :] * b[:, None, :, :, :], axis=2)
    return jnp.einsum("tmkv,tknv->tmnv", a, b, precision=jax.lax.Precision.HIGHEST)


def _read(mem, slot, sizes, off=None):
    """The tensor in ``slot = (offset, labels)`` of ``mem``, shaped ``[*sizes of labels, V]``; a traced
    ``off`` replaces the static offset (a dynamic slice)."""
    labels = slot[1]
    n = math.prod(sizes[l] for l in labels)
    if off is None:
        x = jax.lax.slice_in_dim(mem, slot[0], slot[0] + n, axis=0)
    else:
        x = jax.lax.dynamic_slice_in_dim(mem, off, n, axis=0)
    return x.reshape(tuple(sizes[l] for l in labels) + mem.shape[-1:])


def _add_to(mem, slot, x, off=None):
    """``mem`` with ``x`` added to the rows of ``slot`` (an in-place update; ``off`` as in `_read`)."""
    off = slot[0] if off is None else off
    x = x.reshape(-1, mem.shape[-1])
    return jax.lax.dynamic_update_slice_in_dim(mem, jax.lax.dynamic_slice_in_dim(mem, off, x.shape[0]) + x, off, axis=0)


def _broadcast_to(r, keep, target, sizes):
    """``r`` over ``keep`` (plus the evidence axis) broadcast to ``target`` (``keep`` in ``target``'s order)."""
    if len(keep) < len(target):
        r = r.reshape(tuple(sizes[l] if l in keep else 1 for l in target) + r.shape[-1:])
        r = jnp.broadcast_to(r, tuple(sizes[l] for l in target) + r.shape[-1:])
    return r


def _einsum_to(operands, target, sizes):
    """``sum`` of the product of ``operands`` (``(array, labels)`` pairs, each with a trailing evidence axis)
    over every label not in ``target``, as ``[*sizes of target, V]``; a target label no operand carries is
    broadcast."""
    local = {l: i for i, l in enumerate(dict.fromkeys([l for _, ls in operands for l in ls] + list(target)))}
    v = len(local)
    keep = [l for l in target if any(l in ls for _, ls in operands)]
    args = []
    for x, ls in operands:
        args += [x, [local[l] for l in ls] + [v]]
    r = jnp.einsum(*args, [local[l] for l in keep] + [v], precision=jax.lax.Precision.HIGHEST)
    return _broadcast_to(r, keep, target, sizes)


# A contraction whose shared summed labels have at most this many joint states runs as that many
# broadcast multiply-adds fused into one loop over the result, the evidence axis innermost (15 to 35
# GMAC/s where a batched ``dot_general`` of such thin matrices runs at 1 to 4); larger ones as an einsum.
UNROLL = 256


def _terms(operands, summed):
    """Per joint state ``z`` of the labels ``summed`` (row-major): each operand at ``z``, as ``(array, labels)``."""
    for z in itertools.product(*(range(s) for _, s in summed)):
        at = dict(zip((l for l, _ in summed), z))
        yield z, [
            (x[tuple(at.get(l, slice(None)) for l in ls)], tuple(l for l in ls if l not in at)) for x, ls in operands
        ]


def _contract(operands, target, sizes):
    """`_einsum_to` run as unrolled broadcast multiply-adds where the summed labels the operands share
    have at most `UNROLL` joint states (labels only one operand carries are summed out of it first)."""
    ops = []
    for x, ls in operands:
        own = [i for i, l in enumerate(ls) if l not in target and sum(l in o for _, o in operands) == 1]
        if own:
            x, ls = jnp.sum(x, axis=tuple(own)), tuple(l for i, l in enumerate(ls) if i not in own)
        ops.append((x, tuple(ls)))
    shared = [l for l in dict.fromkeys(l for _, ls in ops for l in ls) if l not in target]
    if math.prod(sizes[l] for l in shared) > UNROLL:
        return _einsum_to(ops, target, sizes)
    keep = [l for l in target if any(l in ls for _, ls in ops)]
    acc = None
    for _, term in _terms(ops, [(l, sizes[l]) for l in shared]):
        prod = functools.reduce(lambda u, w: u * w, (_expand(x, list(ls), keep) for x, ls in term))
        acc = prod if acc is None else acc + prod
    acc = jnp.broadcast_to(acc, tuple(sizes[l] for l in keep) + acc.shape[-1:])
    return _broadcast_to(acc, keep, target, sizes)


def _expand(x, labels, target):
    """``x`` over ``labels`` (plus a trailing evidence axis) laid out over ``target``, size 1 where absent."""
    perm = sorted(range(len(labels)), key=lambda i: target.index(labels[i]))
    x = jnp.transpose(x, perm + [len(labels)])
    return x.reshape(tuple(x.shape[perm.index(labels.index(l))] if l in labels else 1 for l in target) + x.shape[-1:])


def _direct_operands(seg: Direct, mem, off=None):
    """The operands of a `Direct` step as ``(array, labels)``; ``off``: a run's traced offsets ``int32[3]``."""
    ops = [(_read(mem, seg.a, seg.sizes, None if off is None else off[0]), seg.a[1])]
    if seg.b is not None:
        ops.append((_read(mem, seg.b, seg.sizes, None if off is None else off[1]), seg.b[1]))
    return ops


def _direct_scan(fn, seg: Direct, carry, xs=(), reverse: bool = False):
    """``fn(carry, off, *xs_row) -> (carry, y)`` over the steps of a `Direct` run: inline (static offsets)
    for one step, else one `lax.scan` over its offsets; ``y`` stacked to ``[count, ...]``."""
    if seg.offsets is None:
        carry, y = fn(carry, None, *(x[0] for x in xs))
        return carry, None if y is None else y[None]
    rows = (jnp.asarray(seg.offsets),) + tuple(xs)
    return jax.lax.scan(lambda c, row: fn(c, row[0], *row[1:]), carry, rows, reverse=reverse)


def _direct_forward(seg: Direct, mem, off=None):
    """One `Direct` step of `forward`: the result, rescaled by its max, written to its slot; and the max."""
    c = _contract(_direct_operands(seg, mem, off), seg.c[1], seg.sizes).reshape(-1, mem.shape[-1])
    # Materialised once: else XLA fuses the product into both the max and the write and runs it twice.
    c = jax.lax.optimization_barrier(c)
    m = jnp.max(c, axis=0)
    m = jnp.where(m > 0, m, 1.0)
    at = seg.c[0] if off is None else off[2]
    return jax.lax.dynamic_update_slice_in_dim(mem, c / m, at, axis=0), m


def _direct_backward(seg: Direct, mem, grad, off, scale):
    """One `Direct` step of `backward`: the cotangents of both operands added to their slots."""
    at = (None, None, None) if off is None else off
    (a, la), *rest = _direct_operands(seg, mem, off)
    gc = _read(grad, seg.c, seg.sizes, at[2]) / scale
    grad = _add_to(grad, seg.a, _contract([(gc, seg.c[1])] + rest, la, seg.sizes), at[0])
    if rest:
        # gc read again from the updated ``grad`` (its slot is not a's): read from the old one, XLA fuses
        # that read into this update after the first was made in place, and copies all of ``grad``
        # (diabetes: 4.6 GB at V = 1000, 2 s a step)
        gc = _read(grad, seg.c, seg.sizes, at[2]) / scale
        (b, lb), = rest
        grad = _add_to(grad, seg.b, _contract([(gc, seg.c[1]), (a, la)], lb, seg.sizes), at[1])
    return grad


def _direct_max(seg: Direct, mem, arg, off=None):
    """One `Direct` step of `forward_max`: the max over the summed labels and its row-major argmax."""
    grid = list(seg.c[1]) + list(seg.summed)
    s = sum(_expand(x, list(ls), grid) for x, ls in _direct_operands(seg, mem, off))
    v = mem.shape[-1]
    s = jnp.broadcast_to(s, tuple(seg.sizes[l] for l in grid) + (v,)).reshape(
        math.prod(seg.sizes[l] for l in seg.c[1]), -1, v
    )
    at = seg.c[0] if off is None else off[2]
    best, where = jnp.max(s, axis=1), jnp.argmax(s, axis=1).astype(jnp.int32)
    return jax.lax.dynamic_update_slice_in_dim(mem, best, at, 0), jax.lax.dynamic_update_slice_in_dim(arg, where, at, 0)


def _rows(seg: Segment):
    tables = (seg.a, seg.b, seg.c) + ((seg.out,) if seg.flat else ())
    return tuple(jnp.asarray(t) for t in tables)


def _root(prog: Program, mem):
    off, shape = prog.root
    return jax.lax.dynamic_slice_in_dim(mem, off, math.prod(shape), axis=0).reshape(shape + (mem.shape[-1],))


def forward(prog: Program, inputs: jax.Array):
    """Sum-product forward pass over ``inputs: f[n_input, V]``.

    Each step computes C[t, m, n] = sum_k A[t, m, k] B[t, k, n], divides it by its max and carries the log.

    Args:
      prog: the program.
      inputs: ``f[n_input, V]``, the plan's input tensors flattened row-major and concatenated, for
        ``V`` evidence sets (the batch axis minor).

    Returns:
      ``(mem f[S + 3, V], scales (f[count, V] per segment), root f[*out, V], log_scale f[V])``: the
      result is ``root * exp(log_scale)``; every intermediate sits (rescaled) in ``mem``.

    Examples:
      >>> from gm.bn.tensornet import plan
      >>> prog = lower(plan(((0,), (0, 1)), (), (2, 2)))         # sum_ij a[i] B[i, j]
      >>> inputs = jnp.array([0.8, 0.2, 0.9, 0.1, 0.2, 0.8])[:, None]  # a and B flattened; V = 1
      >>> mem, scales, root, log_scale = forward(prog, inputs)
      >>> print(root * jnp.exp(log_scale))                     # sum_i a[i] sum_j B[i, j] = 1
      [1.]
    """
    v = inputs.shape[-1]
    mem = jnp.zeros((prog.size + 3, v), inputs.dtype).at[: prog.n_input].set(inputs).at[prog.one].set(1.0)
    scales = []
    for seg in prog.segments:
        if isinstance(seg, Direct):
            mem, s = _direct_scan(lambda mem, off, seg=seg: _direct_forward(seg, mem, off), seg, mem)
            scales.append(s)
            continue

        def body(mem, rows, seg=seg):
            if seg.flat:
                ia, ib, ic, io = rows
                c = jax.ops.segment_sum(mem[ia] * mem[ib], io, num_segments=seg.shape[1] + 1)[:-1]
                m = jnp.max(c, axis=0)
            else:
                ia, ib, ic = rows
                c = _product(seg, mem[ia], mem[ib])
                m = jnp.max(c, axis=(0, 1, 2))
            m = jnp.where(m > 0, m, 1.0)
            return mem.at[ic].set(c / m), m

        mem, s = jax.lax.scan(body, mem, _rows(seg))
        scales.append(s)
    log_scale = sum(jnp.sum(jnp.log(s), axis=0) for s in scales)
    return mem, tuple(scales), _root(prog, mem), log_scale


def backward(prog: Program, mem: jax.Array, scales, root_cotangent: jax.Array) -> jax.Array:
    """Reverse of `forward`: cotangents of the input entries, ``f[n_input, V]``.

    ``root_cotangent: f[*out, V]`` is the cotangent of the (rescaled) root; the cotangent of an
    intermediate is that of its unscaled value divided by the step's scale (the scales are constants):
    dA[t, m, k] = sum_n dC[t, m, n] B[t, k, n] / scale, and likewise for B.

    Args:
      prog: the program.
      mem: ``f[S + 3, V]`` from `forward`.
      scales: the per-segment scales from `forward`.
      root_cotangent: ``f[*out, V]``.

    Returns:
      ``f[n_input, V]``, the cotangent of every input entry.

    Examples:
      >>> from gm.bn.tensornet import plan
      >>> prog = lower(plan(((0,), (0, 1)), (), (2, 2)))         # sum_ij a[i] B[i, j]
      >>> inputs = jnp.array([0.8, 0.2, 0.9, 0.1, 0.2, 0.8])[:, None]  # a and B flattened; V = 1
      >>> mem, scales, root, _ = forward(prog, inputs)
      >>> print(backward(prog, mem, scales, jnp.ones_like(root))[:, 0])   # d/da[i] = 1, d/dB[i, j] = a[i]
      [1.  1.  0.8 0.8 0.2 0.2]
    """
    v = mem.shape[-1]
    off, _ = prog.root
    grad = jnp.zeros_like(mem)
    grad = jax.lax.dynamic_update_slice_in_dim(grad, root_cotangent.reshape(-1, v), off, axis=0)
    limit, trash = prog.size, prog.trash
    for seg, seg_scales in reversed(list(zip(prog.segments, scales))):
        if isinstance(seg, Direct):
            step = lambda g, off, sc, seg=seg: (_direct_backward(seg, mem, g, off, sc), None)  # noqa: E731
            grad, _ = _direct_scan(step, seg, grad, (seg_scales,), reverse=True)
            continue

        def body(grad, xs, seg=seg):
            ia, ib, ic = xs[:3]
            scale = xs[-1]
            gc = jnp.where((ic < limit)[..., None], grad[jnp.minimum(ic, limit)], 0.0) / scale
            a, b = mem[ia], mem[ib]
            if seg.flat:
                gp = jnp.concatenate([gc, jnp.zeros((1, v), gc.dtype)])[xs[3]]
                ga, gb = gp * b, gp * a
            elif seg.ewise:
                ga = jnp.sum(gc[:, :, None, :, :] * b[:, None, :, :, :], axis=3)
                gb = jnp.sum(gc[:, :, None, :, :] * a[:, :, :, None, :], axis=1)
            else:
                hi = jax.lax.Precision.HIGHEST
                ga = jnp.einsum("tmnv,tknv->tmkv", gc, b, precision=hi)
                gb = jnp.einsum("tmnv,tmkv->tknv", gc, a, precision=hi)
            grad = grad.at[jnp.where(ia >= limit, trash, ia)].add(ga)
            return grad.at[jnp.where(ib >= limit, trash, ib)].add(gb), None

        grad, _ = jax.lax.scan(body, grad, _rows(seg) + (seg_scales,), reverse=True)
    return grad[: prog.n_input]


def forward_max(prog: Program, log_inputs: jax.Array):
    """Max-sum forward pass over ``log_inputs: f[n_input, V]`` (``-inf`` for zeros).

    Each step computes C[t, m, n] = max_k A[t, m, k] + B[t, k, n] and records the argmax k.

    Args:
      prog: the program.
      log_inputs: ``f[n_input, V]``, the log of `forward`'s inputs.

    Returns:
      ``(root f[*out, V], argmax int32[S + 3, V])``: ``root`` holds the max over the eliminated
      labels of the summed log-factors; ``argmax`` the flat index of the maximising summed labels of
      every entry of every intermediate.

    Examples:
      >>> from gm.bn.tensornet import plan
      >>> prog = lower(plan(((0,), (0, 1)), (), (2, 2)))         # sum_ij a[i] B[i, j]
      >>> inputs = jnp.array([0.8, 0.2, 0.9, 0.1, 0.2, 0.8])[:, None]  # a and B flattened; V = 1
      >>> root, arg = forward_max(prog, jnp.log(inputs))
      >>> print(round(float(jnp.exp(root)[0]), 4))                          # max_ij a[i] B[i, j] = 0.8 * 0.9
      0.72
    """
    v = log_inputs.shape[-1]
    mem = jnp.full((prog.size + 3, v), -jnp.inf, log_inputs.dtype)
    mem = mem.at[: prog.n_input].set(log_inputs).at[prog.one].set(0.0)
    arg = vary_like(jnp.zeros((prog.size + 3, v), jnp.int32), mem)  # a scan carry, typed like mem
    for seg in prog.segments:
        if isinstance(seg, Direct):
            (mem, arg), _ = _direct_scan(lambda c, off, seg=seg: (_direct_max(seg, *c, off), None), seg, (mem, arg))
            continue

        def body(carry, rows, seg=seg):
            mem, arg = carry
            ia, ib, ic = rows[:3]
            if seg.flat:
                io, ik = rows[3], rows[4]
                n_out = seg.shape[1] + 1
                p = mem[ia] + mem[ib]  # [F, V]
                best = jax.ops.segment_max(p, io, num_segments=n_out)
                hit = p == best[io]
                big = jnp.iinfo(jnp.int32).max
                where = jax.ops.segment_min(jnp.where(hit, ik[:, None], big), io, num_segments=n_out)
                best, where = best[:-1], where[:-1]
            else:
                s = mem[ia][:, :, :, None, :] + mem[ib][:, None, :, :, :]  # [t, m, k, n, V]
                best = jnp.max(s, axis=2)
                where = jnp.argmax(s, axis=2).astype(jnp.int32)
            return (mem.at[ic].set(best), arg.at[ic].set(where)), None

        rows = _rows(seg) + ((jnp.asarray(seg.k),) if seg.flat else ())
        (mem, arg), _ = jax.lax.scan(body, (mem, arg), rows)
    return _root(prog, mem), arg


def decode(prog: Program, arg: jax.Array, out_values: jax.Array) -> jax.Array:
    """Values of every label, ``int32[n_labels, V]``, from `forward_max`'s argmax table and the values
    ``out_values: int32[len(output), V]`` of the plan's output labels.

    Args:
      prog: the program.
      arg: ``int32[S + 3, V]`` from `forward_max`.
      out_values: ``int32[len(output), V]``, the chosen values of the plan's output labels.

    Returns:
      ``int32[n_labels, V]``: the maximising value of every label, read back in reverse step order.

    Examples:
      >>> from gm.bn.tensornet import plan
      >>> prog = lower(plan(((0,), (0, 1)), (), (2, 2)))         # sum_ij a[i] B[i, j]
      >>> inputs = jnp.array([0.8, 0.2, 0.9, 0.1, 0.2, 0.8])[:, None]  # a and B flattened; V = 1
      >>> _, arg = forward_max(prog, jnp.log(inputs))
      >>> decode(prog, arg, jnp.zeros((0, 1), jnp.int32))[:, 0].tolist()     # argmax i, j
      [0, 0]
    """
    n_labels = len(prog.plan.sizes)
    v = arg.shape[-1]
    values = vary_like(jnp.zeros((n_labels + 1, v), jnp.int32), arg)  # a scan carry, typed like arg
    if prog.plan.output:
        values = values.at[jnp.asarray(prog.plan.output)].set(out_values)
    cols = jnp.arange(v)
    tables = tuple(
        jnp.asarray(t)
        for t in (
            prog.decode_out_labels,
            prog.decode_out_strides,
            prog.decode_out_offset,
            prog.decode_sum_labels,
            prog.decode_sum_sizes,
            prog.decode_sum_strides,
        )
    )

    def body(values, xs):
        out_l, out_s, out_off, sum_l, sum_n, sum_s = xs
        pos = out_off + jnp.sum(values[out_l] * out_s[:, None], axis=0)  # [V]
        flat = arg[pos, cols]  # [V]
        got = jnp.minimum((flat[None, :] // sum_s[:, None]) % sum_n[:, None], sum_n[:, None] - 1)
        return values.at[sum_l].set(got), None

    values, _ = jax.lax.scan(body, values, tables, reverse=True)
    return values[:n_labels]


# --------------------------------------------------------------------------------------------------
# the host path: one evidence set, numpy, no compilation
#
# A notebook user's first query should not wait for XLA. Called on concrete arrays, `gm.bn`'s queries
# run the same program with numpy on the unpadded step tables, in float64: a batched matrix product per
# step (``np.matmul`` over ``t``), so the cost is the plan's multiply-adds plus a few microseconds a step.


@functools.cache
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # a core dependency; without it the host path only runs slower on small steps
        return None
    return ThreadpoolController()


def _one_blas_thread(fn):
    """Run ``fn`` with the BLAS library on one thread (threadpoolctl; about 40 µs a call).

    The host path's matrix products are small and many (munin1: 185 batched products of up to a few
    hundred rows). A multi-threaded BLAS pays a thread handshake per product, and on a machine busy with
    other work its threads wait for cores: munin1's forward and backward took 2.1 s with OpenBLAS's two
    threads and 0.88 s with one at load 6, and one thread was never slower (idle: equal or faster)."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        controller = _blas_controller()
        if controller is None:
            return fn(*args, **kwargs)
        with controller.limit(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapped


def _np_root(prog: Program, mem):
    off, shape = prog.root
    return mem[off : off + math.prod(shape)].reshape(shape)


@_one_blas_thread
def forward_host(prog: Program, inputs: np.ndarray):
    """`forward` for one evidence set on the host (numpy float64, unpadded steps, nothing compiled).

    Args:
      prog: the program.
      inputs: ``f64[n_input]``.

    Returns:
      ``(mem f64[S + 3], scales f64[T], root f64[*out], log_scale float)``; the result is
      ``root * exp(log_scale)``.

    Examples:
      >>> from gm.bn.tensornet import plan
      >>> prog = lower(plan(((0,), (0, 1)), (), (2, 2)))         # sum_ij a[i] B[i, j]
      >>> mem, scales, root, log_scale = forward_host(prog, np.array([0.8, 0.2, 0.9, 0.1, 0.2, 0.8]))
      >>> float(root * np.exp(log_scale))
      1.0
    """
    mem = np.zeros(prog.size + 3)
    mem[: prog.n_input] = inputs
    mem[prog.one] = 1.0
    scales = np.ones(len(prog.steps))
    for k, (ia, ib, ic) in enumerate(prog.steps):
        c = np.matmul(mem[ia], mem[ib])
        m = c.max() if c.size else 0.0
        if m > 0:
            c /= m
            scales[k] = m
        mem[ic] = c
    return mem, scales, _np_root(prog, mem), float(np.sum(np.log(scales)))


def _add_at(grad, idx, values):
    """``grad[idx] += values`` with repeated indices summed. A step's index table covers its slot's
    range densely (a repeated index is an operand broadcast along a label it lacks), so one `np.bincount`
    over that range does it in one pass; testing the indices for repeats (`np.unique`) cost 19 of the
    21 s of munin3's backward pass."""
    flat = idx.ravel()
    if flat.size == 0:
        return
    lo, hi = int(flat.min()), int(flat.max())
    span = hi - lo + 1
    if span <= 4 * flat.size + 1024:
        grad[lo : hi + 1] += np.bincount(flat - lo, weights=values.ravel(), minlength=span)
    else:
        np.add.at(grad, flat, values.ravel())


@_one_blas_thread
def backward_host(prog: Program, mem, scales, root_cotangent) -> np.ndarray:
    """`backward` for one evidence set on the host: cotangents of the input entries ``f64[n_input]``.

    Args:
      prog: the program.
      mem: ``f64[S + 3]`` from `forward_host`.
      scales: ``f64[T]`` from `forward_host`.
      root_cotangent: ``f64[*out]``, the cotangent of the (rescaled) root.

    Returns:
      ``f64[n_input]``.

    Examples:
      >>> from gm.bn.tensornet import plan
      >>> prog = lower(plan(((0,), (0, 1)), (), (2, 2)))         # sum_ij a[i] B[i, j]
      >>> mem, scales, root, _ = forward_host(prog, np.array([0.8, 0.2, 0.9, 0.1, 0.2, 0.8]))
      >>> backward_host(prog, mem, scales, 1.0).tolist()
      [1.0, 1.0, 0.8, 0.8, 0.2, 0.2]
    """
    off, shape = prog.root
    grad = np.zeros_like(mem)
    grad[off : off + math.prod(shape)] = np.ravel(root_cotangent)
    limit = prog.size
    for k in range(len(prog.steps) - 1, -1, -1):
        ia, ib, ic = prog.steps[k]
        gc = grad[ic] / scales[k]
        a, b = mem[ia], mem[ib]
        ga = np.matmul(gc, np.swapaxes(b, -1, -2))
        if ib.size and ib.flat[0] < limit:
            _add_at(grad, ib, np.matmul(np.swapaxes(a, -1, -2), gc))
        _add_at(grad, ia, ga)
    return grad[: prog.n_input]


def forward_max_host(prog: Program, log_inputs: np.ndarray, *, block_entries: int = 1 << 22):
    """`forward_max` on the host: ``(root, argmax int64[S + 3])``.

    Args:
      prog: the program.
      log_inputs: ``f64[n_input]`` (``-inf`` for zeros).
      block_entries: the most entries of a step's ``[t, m, n, k]`` sums formed at once (memory).

    Returns:
      ``(root f64[*out], argmax int64[S + 3])``.

    Examples:
      >>> from gm.bn.tensornet import plan
      >>> prog = lower(plan(((0,), (0, 1)), (), (2, 2)))         # sum_ij a[i] B[i, j]
      >>> root, arg = forward_max_host(prog, np.log([0.8, 0.2, 0.9, 0.1, 0.2, 0.8]))
      >>> round(float(np.exp(root)), 4)
      0.72
    """
    mem = np.full(prog.size + 3, -np.inf)
    mem[: prog.n_input] = log_inputs
    mem[prog.one] = 0.0
    arg = np.zeros(prog.size + 3, np.int64)
    for ia, ib, ic in prog.steps:
        mem[ic], arg[ic] = _max_plus(mem[ia], mem[ib], block_entries)
    return _np_root(prog, mem), arg


def _max_plus(a: np.ndarray, b: np.ndarray, block_entries: int):
    """``max_k a[t, m, k] + b[t, k, n]`` and its first argmax over k. The sums are laid out
    ``[t, m, n, k]`` (the reductions run along contiguous memory) and formed a block of (t, m) at a time
    (the whole sum of munin's largest step would be 2.3e9 entries)."""
    t, m, k = a.shape
    n = b.shape[-1]
    bt = np.swapaxes(b, 1, 2)  # [t, n, k]
    if t * m * n * k <= block_entries:
        s = a[:, :, None, :] + bt[:, None, :, :]
        arg = np.argmax(s, axis=-1)
        return np.take_along_axis(s, arg[..., None], axis=-1)[..., 0], arg
    best = np.empty((t, m, n))
    arg = np.empty((t, m, n), np.int64)
    tb = min(t, max(1, block_entries // max(1, n * k)))
    mb = min(m, max(1, block_entries // max(1, tb * n * k)))
    for t0 in range(0, t, tb):
        for m0 in range(0, m, mb):
            s = a[t0 : t0 + tb, m0 : m0 + mb, None, :] + bt[t0 : t0 + tb, None, :, :]
            top = np.argmax(s, axis=-1)
            arg[t0 : t0 + tb, m0 : m0 + mb] = top
            best[t0 : t0 + tb, m0 : m0 + mb] = np.take_along_axis(s, top[..., None], axis=-1)[..., 0]
    return best, arg


def decode_host(prog: Program, arg: np.ndarray, out_values=()) -> np.ndarray:
    """`decode` on the host: the value of every label, ``int64[n_labels]``.

    Args:
      prog: the program.
      arg: ``int64[S + 3]`` from `forward_max_host`.
      out_values: the values of the plan's output labels (empty for a scalar plan).

    Returns:
      ``int64[n_labels]``.

    Examples:
      >>> from gm.bn.tensornet import plan
      >>> prog = lower(plan(((0,), (0, 1)), (), (2, 2)))         # sum_ij a[i] B[i, j]
      >>> _, arg = forward_max_host(prog, np.log([0.8, 0.2, 0.9, 0.1, 0.2, 0.8]))
      >>> decode_host(prog, arg).tolist()
      [0, 0]
    """
    n_labels = len(prog.plan.sizes)
    values = np.zeros(n_labels + 1, np.int64)
    values[list(prog.plan.output)] = out_values
    for k in range(prog.n_steps - 1, -1, -1):
        pos = prog.decode_out_offset[k] + np.dot(values[prog.decode_out_labels[k]], prog.decode_out_strides[k])
        flat = arg[pos]
        sizes = prog.decode_sum_sizes[k]
        values[prog.decode_sum_labels[k]] = np.minimum((flat // prog.decode_sum_strides[k]) % sizes, sizes - 1)
    return values[:n_labels]
