"""Tensor-network contraction: planned once per structure, executed pairwise with rescaling.

A discrete graphical model is a product of factor tensors whose axes are labelled by variables
(integers here). Inference is a contraction: sum (or max) the product over every label not in the
output. The order in which pairs of tensors are contracted (the *path*) decides the cost, often by
orders of magnitude, so a path is searched once per structure (cotengra's hyper-optimiser, opt_einsum
as a fallback), cached in memory and on disk, and replayed by `contract` / `contract_max` inside
whatever `jax.jit` / `jax.vmap` the caller applies.

Length: the path search (greedy, cotengra, the disk cache) and the two executions of a plan (sum-product
with rescaling, max-sum with decoding) share the SSA step format and its helpers; about a fifth of the
file is docstrings and their runnable examples.

Float32 underflow: the product of hundreds of probabilities leaves float32's range. `contract` divides
every pairwise intermediate by its maximum and carries the log of the divisors, so the result is
returned as ``(mantissa, log_scale)`` with ``value = mantissa * exp(log_scale)``. The divisors are
wrapped in `jax.lax.stop_gradient`, which keeps gradients of ``log(mantissa) + log_scale`` exact:
the divisors are constants of the computed function, and d log(Z / c) = d log Z for constant c.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import heapq
import json
import math
import os
import string
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

_LETTERS = string.ascii_letters


@dataclasses.dataclass(frozen=True)
class Step:
    """One contraction of tensors ``a`` and ``b`` (SSA ids) into labels ``out``; ``b = -1``: ``a`` alone.

    C[out] = sum over the labels of a and b not in out of A * B.

    Attributes:
      a: SSA id of the first operand (inputs first, then one new id per step).
      b: SSA id of the second operand, or -1 for a unary reduction of ``a``.
      out: labels of the result, in order.

    Examples:
      >>> Step(a=0, b=1, out=(1,))     # sum_i A[i] * B[i, j] -> C[j], tensor id 2
      Step(a=0, b=1, out=(1,))
    """

    a: int
    b: int
    out: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Plan:
    """A contraction path in SSA form plus its cost.

    Attributes:
      inputs: labels of each input tensor.
      output: labels of the result, in order.
      sizes: ``sizes[label]`` is the dimension of that label.
      steps: pairwise contractions; step k creates tensor id ``len(inputs) + k``.
      flops: sum over steps of the product of the sizes of all labels involved (multiply-adds).
      largest: number of entries of the largest intermediate (inputs excluded).
      search_seconds: time the path search took (0 when it came from a cache).

    Examples:
      >>> p = plan(((0,), (0, 1)), (1,), (2, 3))     # a[i] B[i, j] -> c[j]
      >>> p.steps, p.flops, p.labels
      ((Step(a=0, b=1, out=(1,)),), 6.0, ((0,), (0, 1), (1,)))
    """

    inputs: tuple[tuple[int, ...], ...]
    output: tuple[int, ...]
    sizes: tuple[int, ...]
    steps: tuple[Step, ...]
    flops: float
    largest: int
    search_seconds: float = dataclasses.field(default=0.0, compare=False, hash=False)

    @functools.cached_property
    def labels(self) -> tuple[tuple[int, ...], ...]:
        """Labels of every tensor id: inputs then intermediates.

        Examples:
          >>> plan(((0,), (0, 1), (1, 2)), (), (2, 2, 2)).labels[:3]
          ((0,), (0, 1), (1, 2))
        """
        labels = list(self.inputs)
        for step in self.steps:
            labels.append(step.out)
        return tuple(labels)

    @property
    def log10_flops(self) -> float:
        """log10 of the multiply-adds, ``log10(max(flops, 1))`` (the cost tables of the benchmarks).

        Examples:
          >>> round(plan(((0,), (0, 1)), (1,), (10, 100)).log10_flops, 3)
          3.0
        """
        return math.log10(max(self.flops, 1.0))


def _cache_dir() -> str | None:
    root = os.environ.get("GM_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "gm")
    path = os.path.join(root, "plans")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    return path


# A unary step (summing labels that only one tensor carries) costs a kernel of its own; when the
# labels it sums are this small, the sum is left to the tensor's next pairwise step instead.
_FOLD_UNARY = 16


def _steps_from_ssa(inputs, output, ssa_path, sizes=None) -> tuple[Step, ...]:
    """Turn an SSA path into steps whose outputs keep only labels still needed.

    Small unary steps are folded into the next pairwise step of their tensor (see ``_FOLD_UNARY``).
    Linear in the path's length: a label is needed while some alive tensor carries it (counted).
    """
    labels = [tuple(t) for t in inputs]
    real = list(range(len(inputs)))  # SSA id -> id among the emitted tensors
    alive = set(range(len(inputs)))  # emitted ids
    carriers: dict[int, int] = {}  # label -> number of alive tensors carrying it
    for t in inputs:
        for l in t:
            carriers[l] = carriers.get(l, 0) + 1
    steps = []
    out_set = set(output)

    def drop(t):
        alive.discard(t)
        for l in labels[t]:
            carriers[l] -= 1

    for k, pair in enumerate(ssa_path):
        is_last = k == len(ssa_path) - 1
        a, b = (real[pair[0]], -1) if len(pair) == 1 else (real[pair[0]], real[pair[1]])
        if b < 0 and sizes is not None and not is_last:
            summed = [l for l in labels[a] if l not in out_set and carriers[l] == 1]
            if math.prod(sizes[l] for l in summed) <= _FOLD_UNARY:
                real.append(a)  # the unary result is ``a`` itself, summed later
                continue
        drop(a)
        if b >= 0:
            drop(b)
        union = list(dict.fromkeys(labels[a] + (labels[b] if b >= 0 else ())))
        if is_last and not alive:
            out = tuple(output)
        else:
            out = tuple(l for l in union if l in out_set or carriers[l] > 0)
        labels.append(out)
        alive.add(len(labels) - 1)
        for l in out:
            carriers[l] += 1
        real.append(len(labels) - 1)
        steps.append(Step(int(a), int(b), out))
    return tuple(steps)


def _cost(inputs, sizes, steps) -> tuple[float, int]:
    labels = [tuple(t) for t in inputs]
    flops = 0.0
    largest = 0
    for s in steps:
        union = set(labels[s.a]) | (set(labels[s.b]) if s.b >= 0 else set())
        flops += math.prod(sizes[l] for l in union)
        largest = max(largest, math.prod(sizes[l] for l in s.out))
        labels.append(s.out)
    return flops, largest


# A step's memory traffic (its operands gathered and its result written) costs about this many
# multiply-adds: on the host engine munin1's elimination-order path (3.5e8 multiply-adds, 1.9e8 entries
# moved) contracts 10x slower than a searched path of 5.2e8 multiply-adds and 1.3e7 entries moved.
_TRAFFIC_WEIGHT = 32.0


def _work(inputs, sizes, steps) -> float:
    """The search's objective: multiply-adds plus `_TRAFFIC_WEIGHT` times the entries each step reads
    and writes."""
    labels = [tuple(t) for t in inputs]
    total = 0.0
    for s in steps:
        la, lb = labels[s.a], (labels[s.b] if s.b >= 0 else ())
        total += math.prod(sizes[l] for l in set(la) | set(lb))
        moved = math.prod(sizes[l] for l in la) + math.prod(sizes[l] for l in s.out)
        moved += math.prod(sizes[l] for l in lb) if s.b >= 0 else 0
        total += _TRAFFIC_WEIGHT * moved
        labels.append(s.out)
    return total


def _complete_path(n_inputs, ssa_path) -> list[tuple[int, int]]:
    """Join whatever remains after a path (disconnected pieces) into one tensor."""
    used = set()
    nxt = n_inputs
    for pair in ssa_path:
        used.update(pair)
        nxt += 1
    remaining = [t for t in range(nxt) if t not in used]
    path = list(ssa_path)
    while len(remaining) > 1:
        a, b = remaining.pop(0), remaining.pop(0)
        path.append((a, b))
        remaining.append(nxt)
        nxt += 1
    return path


def _quick_path(inputs, output, size_dict, trials: int, seed: int = 0) -> list[tuple[int, int]]:
    """Randomised greedy paths (cotengra's fast path finder), best of ``trials``."""
    from cotengra.pathfinders.path_basic import optimize_random_greedy_track_flops

    path, _ = optimize_random_greedy_track_flops(
        [tuple(t) for t in inputs], tuple(output), size_dict, ntrials=trials, seed=seed, use_ssa=True
    )
    return [tuple(int(k) for k in p) for p in path]


def _hyper_path(inputs, output, size_dict, repeats: int, max_time: float) -> list[tuple[int, int]]:
    """cotengra's hyper-optimiser (greedy and, when installed, kahypar partitioning): ``repeats`` trials,
    stopped early only past ``max_time`` seconds (a safety cap). Its randomness (its own optimiser's and
    the trials' draws from Python's and NumPy's global generators) is seeded and the global generators are
    restored afterwards, so the same contraction gets the same path on every run that is not cut short,
    whichever optional optimisers (optuna, cmaes) are installed."""
    import random

    import cotengra as ctg

    methods = ["greedy"]
    try:
        import kahypar  # noqa: F401

        methods.append("kahypar")
    except ImportError:
        pass
    options = dict(methods=methods, max_repeats=repeats, max_time=max_time, minimize="combo", parallel=False,
                   progbar=False)
    try:
        # cotengra's own optimiser, named: its default depends on which optional packages are installed
        # (optuna, cmaes), which would change the plan from machine to machine, and optuna takes no seed
        opt = ctg.HyperOptimizer(**options, optlib="sbplx", optlib_opts={"seed": 0})
    except (KeyError, TypeError, ValueError):  # a cotengra without it: its default optimiser, unseeded
        opt = ctg.HyperOptimizer(**options)
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        random.seed(0)
        np.random.seed(0)
        tree = opt.search([tuple(t) for t in inputs], tuple(output), size_dict)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return [tuple(int(k) for k in p) for p in tree.get_ssa_path()]


# Contractions cheaper than this (multiply-adds) keep the quick greedy path: a longer search cannot
# save more than it costs.
_QUICK_ENOUGH_FLOPS = 1e6


# Path search is paid before the first answer, so its budget follows what is at stake: about the time the
# greedy path's contraction would take at this many multiply-adds per second.
_SEARCH_FLOPS_PER_SECOND = 1e9


def elimination_path(inputs, output, sizes, generator=None, noise: float = 0.5) -> list[tuple[int, int]]:
    """A pairwise path from a greedy variable-elimination order (the classic heuristic for Bayesian
    networks, as in variable elimination): repeatedly eliminate the label whose elimination makes the
    smallest factor (the product of the sizes of its neighbours), contracting the tensors that carry it
    pairwise, smallest first; labels no other tensor carries are summed as soon as they can be.

    Milliseconds on a thousand tensors, and on the munin networks, link and diabetes far better than
    randomised greedy pair-merging (munin1: 3.5e8 multiply-adds against 1.8e12; munin4: 3.2e7 against
    2.7e22; link: 2.0e8 against 2.9e13), so it seeds the search and sets its budget.

    With ``generator`` (a `numpy.random.Generator`) the order is randomised: each label's log-weight is lowered
    by ``noise`` times a Gumbel draw, so near-best eliminations are taken at random (the stochastic greedy
    orders of randomised variable elimination). The best of a few dozen such orders moves 3x to 10x less
    memory than the deterministic one on munin1, munin3 and link.

    Args:
      inputs, output, sizes: as for `plan`.
      generator: a `numpy.random.Generator` for a randomised order; ``None``: the deterministic greedy order.
      noise: the Gumbel draw's weight against the log factor size.

    Returns:
      A pairwise path in SSA form (possibly partial; `plan_from_path` completes it).

    Examples:
      >>> elimination_path(((0,), (0, 1), (1, 2)), (2,), (2, 3, 4))   # a[i] B[i, j] C[j, k] -> d[k]
      [(0, 1), (3, 2)]
    """
    tensors = {i: frozenset(t) for i, t in enumerate(inputs)}
    holders: dict[int, set[int]] = {}
    for i, t in tensors.items():
        for l in t:
            holders.setdefault(l, set()).add(i)
    keep = set(output)
    size_of = lambda i: math.prod(sizes[x] for x in tensors[i])  # noqa: E731

    def score(l):
        union = set().union(*(tensors[i] for i in holders[l]))
        union.discard(l)
        weight = math.log(math.prod(sizes[x] for x in union))
        return weight - noise * generator.gumbel() if generator is not None else weight

    current = {l: score(l) for l in holders if l not in keep}
    heap = [(s, l) for l, s in current.items()]
    heapq.heapify(heap)
    path, done, fresh = [], set(), len(inputs)
    while heap:
        s, l = heapq.heappop(heap)
        if l in done or current[l] != s:
            continue
        done.add(l)
        group = sorted(holders[l], key=size_of)
        touched = set().union(*(tensors[i] for i in group))
        while len(group) > 1:
            a, b = group[0], group[1]
            union = tensors[a] | tensors[b]
            path.append((a, b))
            for i in (a, b):
                for x in tensors.pop(i):
                    holders[x].discard(i)
            rest = frozenset(x for x in union if x in keep or holders[x] or (x == l and len(group) > 2))
            tensors[fresh] = rest
            for x in rest:
                holders[x].add(fresh)
            group = sorted(group[2:] + [fresh], key=size_of)
            fresh += 1
        for x in touched:
            if x not in keep and x not in done:
                current[x] = score(x)
                heapq.heappush(heap, (current[x], x))
    rest = sorted(tensors, key=size_of)
    while len(rest) > 1:
        a, b = rest[0], rest[1]
        path.append((a, b))
        tensors[fresh] = tensors.pop(a) | tensors.pop(b)
        rest = sorted(rest[2:] + [fresh], key=size_of)
        fresh += 1
    return path


def reconfigured_path(inputs, output, sizes, ssa) -> list[tuple[int, int]]:
    """The pairwise (SSA) path ``ssa`` improved by cotengra's subtree reconfiguration: every subtree of
    up to 6 leaves is re-contracted optimally (for flops plus writes). On an elimination order's path this
    removes most of the memory traffic of its Hadamard-like steps (munin1: 2.5e9 -> 7e8 in `_work`, 0.2 s).

    Args:
      inputs, output, sizes: as for `plan`.
      ssa: a pairwise path in SSA form (each contraction's result gets the next id), possibly partial.

    Returns:
      A complete SSA path over the same inputs.

    Examples:
      >>> reconfigured_path(((0,), (0, 1), (1, 2)), (2,), (2, 3, 4), [(1, 2)])
      [(0, 1), (2, 3)]
    """
    import cotengra as ctg

    size_dict = {l: sizes[l] for t in inputs for l in t}
    tree = ctg.ContractionTree.from_path(
        [tuple(t) for t in inputs], tuple(output), size_dict, ssa_path=_complete_path(len(inputs), ssa)
    )
    tree.subtree_reconfigure_(subtree_size=6, minimize="combo")
    return _complete_path(len(inputs), [tuple(int(k) for k in p) for p in tree.get_ssa_path()])


# Randomised elimination orders tried at most (each costs a few milliseconds per hundred tensors).
_ELIMINATION_TRIALS = 48

# What each stage of the search costs, in seconds per input tensor, measured on the 2-core CPU (water to
# munin, 32 to 1,041 tensors): one randomised elimination order 1.4e-5 to 2.5e-5; subtree reconfiguration
# 2.3e-4 to 8.1e-4; a round of two randomised greedy trials 1.9e-5 to 2.3e-4; one trial of the
# hyper-optimiser 4.6e-4 to 3.1e-3. The search plans its trials from these, near the slow end (with the
# medians instead it overran its 2 s budget by 1.5x to 1.7x on andes, pigs and link), not from the clock,
# so that the same contraction gets the same path on every machine and in every run: a plan found under a
# time budget depended on the machine's load (water and barley got a different path in each fresh
# process). The clock only cuts a stage short past twice its share (a much slower machine).
_SECONDS_PER_TENSOR = {"elimination": 3e-5, "reconfiguration": 1e-3, "greedy round": 1e-4, "hyper trial": 2e-3}


def _search(inputs, output, sizes, max_time: float | None, min_time: float = 2.0) -> list[tuple[int, int]]:
    size_dict = {l: sizes[l] for t in inputs for l in t}
    n = len(inputs)
    start = time.perf_counter()
    elapsed = lambda: time.perf_counter() - start  # noqa: E731
    cost = {stage: per_tensor * n for stage, per_tensor in _SECONDS_PER_TENSOR.items()}
    # the elimination order first (milliseconds); then randomised elimination orders, subtree
    # reconfiguration of the best, randomised greedy trials and cotengra's hyper-optimiser, each as far
    # as the budget set by the best path so far allows. Paths are compared by `_work` (multiply-adds
    # plus memory traffic). ``planned`` counts the seconds the stages are expected to take (from `cost`):
    # it, not the clock, decides how many trials run.
    ssa = _complete_path(n, elimination_path(inputs, output, sizes))
    work = _work(inputs, sizes, _steps_from_ssa(inputs, output, ssa))
    if work <= _QUICK_ENOUGH_FLOPS or max_time == 0:
        return ssa

    def budget(f):
        if max_time is not None:
            return max_time
        # about the time the best path so far would take (pigs: a few seconds of search make a batch of
        # evidence sets run 10x faster, so never less than min_time for compiled plans)
        return min(120.0, max(min_time, f / _SEARCH_FLOPS_PER_SECOND))

    def consider(candidate):
        nonlocal ssa, work
        candidate_work = _work(inputs, sizes, _steps_from_ssa(inputs, output, candidate))
        if candidate_work < work:
            ssa, work = candidate, candidate_work
        return candidate_work

    def within(share):  # the next trial fits the planned share, and the clock is not far past it
        return planned + cost[stage] <= share and elapsed() <= 2 * share

    # randomised elimination orders (seeded), within a quarter of the budget
    rng = np.random.default_rng(0)
    planned, stage = 0.0, "elimination"
    for _ in range(_ELIMINATION_TRIALS):
        if not within(budget(work) / 4):
            break
        consider(_complete_path(n, elimination_path(inputs, output, sizes, rng)))
        planned += cost[stage]
    stage = "reconfiguration"
    if work > _QUICK_ENOUGH_FLOPS and within(budget(work)):
        consider(reconfigured_path(inputs, output, sizes, ssa))
        planned += cost[stage]

    # randomised greedy trials, two at a time, while the best path so far says they are worth it
    stage = "greedy round"
    for rounds in range(1, 17):
        if not within(budget(work) / 2):
            break
        more_work = consider(_complete_path(n, _quick_path(inputs, output, size_dict, trials=2, seed=rounds)))
        planned += cost[stage]
        if more_work > 10 * work:  # greedy pair-merging is far off here (munin1: 10^11.6 against the
            break  # elimination order's 10^9.8): leave the time to the hyper-optimiser
    left = budget(work) - planned
    repeats = int(left / cost["hyper trial"])
    if work <= _QUICK_ENOUGH_FLOPS or left < 1.0 or repeats < 1:
        return ssa
    consider(_complete_path(n, _hyper_path(inputs, output, size_dict, repeats, 2 * left)))
    return ssa


@functools.lru_cache(maxsize=512)
def plan(
    inputs: tuple[tuple[int, ...], ...],
    output: tuple[int, ...],
    sizes: tuple[int, ...],
    *,
    max_time: float | None = None,
    min_time: float = 2.0,
) -> Plan:
    """Plan the contraction of tensors labelled ``inputs`` into ``output`` (cached).

    Args:
      inputs: labels (ints) of each tensor's axes.
      output: labels of the result (distinct, each present in some input).
      sizes: dimension of each label, indexed by label.
      max_time: seconds of search (randomised elimination orders and greedy trials, then cotengra's
        hyper-optimiser) when the greedy path costs more than 1e6 multiply-adds; default: what that
        contraction would take at 1e9 multiply-adds per second, at least ``min_time`` and at most 120 s;
        0 keeps the greedy path. The seconds are turned into numbers of seeded trials from each trial's
        measured cost (not timed as they run), so a contraction gets the same plan in every run and on
        every machine, unless a machine is so slow that a stage passes twice its share.
      min_time: the least default search budget once the path costs over 1e6 multiply-adds (2 s: a
        batch of evidence sets pays for it; the host engine's single answers use 0). Plans searched with
        different ``min_time`` or ``max_time`` are cached apart. Plans are cached on disk under
        ``$GM_CACHE_DIR/plans`` (default ``~/.cache/gm/plans``), so a search runs once per structure and
        machine.

    Returns:
      The `Plan`: ``len(inputs) - 1`` pairwise steps (or one unary step for a single input), its
      multiply-adds sum_steps prod_{labels in the step} sizes, and its largest intermediate.

    Raises:
      ValueError: repeated output labels, or an output label that no input carries.

    Examples:
      >>> p = plan(((0,), (0, 1), (1, 2)), (2,), (2, 3, 4))     # a[i] B[i, j] C[j, k] -> d[k]
      >>> len(p.steps), p.output
      (2, (2,))
    """
    inputs = tuple(tuple(int(l) for l in t) for t in inputs)
    output = tuple(int(l) for l in output)
    sizes = tuple(int(s) for s in sizes)
    if len(set(output)) != len(output):
        raise ValueError(f"output labels must be distinct, got {output}")
    present = {l for t in inputs for l in t}
    for l in output:
        if l not in present:
            raise ValueError(f"output label {l} appears in no input")
    n = len(inputs)
    # the search's budget is part of the key: a greedy-only plan (``max_time=0``) cached under the default
    # key was read back by every later default search (munin1: 10^9.8 work units where a search finds 10^8.8,
    # batched marginals 10x slower); v8 drops plans cached that way; v9 those of the clock-budgeted search
    tag = "v9" + ("" if min_time == 2.0 else f"-min{min_time:g}") + ("" if max_time is None else f"-max{max_time:g}")
    key = hashlib.sha1(json.dumps([inputs, output, sizes, tag]).encode()).hexdigest()
    cache = _cache_dir()
    cache_file = os.path.join(cache, key + ".json") if cache else None
    ssa = None
    seconds = 0.0
    if cache_file and os.path.exists(cache_file):
        try:
            with open(cache_file) as f:
                ssa = [tuple(p) for p in json.load(f)["ssa"]]
        except (OSError, ValueError, KeyError):
            ssa = None
    if ssa is None:
        start = time.perf_counter()
        ssa = _search(inputs, output, sizes, max_time, min_time) if n > 1 else []
        seconds = time.perf_counter() - start
        if cache_file:
            try:
                tmp = cache_file + f".{os.getpid()}.tmp"
                with open(tmp, "w") as f:
                    json.dump({"ssa": ssa}, f)
                os.replace(tmp, cache_file)
            except OSError:
                pass
    return plan_from_path(inputs, output, sizes, ssa, search_seconds=seconds)


def plan_from_path(inputs, output, sizes, ssa, *, search_seconds: float = 0.0) -> Plan:
    """The `Plan` that contracts ``inputs`` into ``output`` along a given pairwise path (no search).

    Args:
      inputs, output, sizes: as for `plan`.
      ssa: pairwise contractions in SSA form (ids ``0 .. n-1`` are the inputs, each contraction's result
        gets the next id); a partial path is completed by contracting what remains in order.
      search_seconds: recorded as the plan's search time.

    Returns:
      The `Plan` with its multiply-adds and largest intermediate.

    Examples:
      >>> p = plan_from_path(((0,), (0, 1), (1, 2)), (2,), (2, 3, 4), [(1, 2), (0, 3)])
      >>> p.flops
      32.0
    """
    inputs = tuple(tuple(int(l) for l in t) for t in inputs)
    output = tuple(int(l) for l in output)
    sizes = tuple(int(s) for s in sizes)
    steps = _steps_from_ssa(inputs, output, _complete_path(len(inputs), ssa), sizes)
    flops, largest = _cost(inputs, sizes, steps)
    return Plan(inputs, output, sizes, steps, flops, largest, search_seconds)


def _einsum_eq(in_labels: Sequence[tuple[int, ...]], out: tuple[int, ...]) -> str:
    letters: dict[int, str] = {}
    for t in list(in_labels) + [out]:
        for l in t:
            if l not in letters:
                if len(letters) >= len(_LETTERS):
                    raise ValueError("a pairwise contraction involves more than 52 labels")
                letters[l] = _LETTERS[len(letters)]
    lhs = ",".join("".join(letters[l] for l in t) for t in in_labels)
    return lhs + "->" + "".join(letters[l] for l in out)


# Pairwise steps whose full product has at most this many entries are computed as a broadcast
# multiply and a sum (one fused loop; XLA compiles it faster and runs it faster than a tiny batched
# dot); larger ones go to einsum / dot_general.
_SMALL_STEP = 1 << 12


def _step_entries(la, lb, out, sizes) -> int:
    """Entries of a pairwise step's product grid: the product of the sizes of all its labels."""
    return math.prod(sizes[l] for l in set(out) | set(la) | set(lb))


def _pair_sum(a, la, b, lb, out, sizes, batch: int | None = None, fused: bool = False):
    """``sum over (la | lb) - out`` of ``a * b``; with ``batch``, both carry a trailing batch axis that
    stays last in the result (label ``len(sizes)``). With ``fused``, a broadcast multiply and a sum at any
    size (else an einsum above `_SMALL_STEP` entries)."""
    inner = tuple(dict.fromkeys(tuple(out) + tuple(la) + tuple(lb)))
    n_out = len(out)
    if batch is not None:
        bl = len(sizes)
        sizes = tuple(sizes) + (batch,)
        la, lb, out = tuple(la) + (bl,), tuple(lb) + (bl,), tuple(out) + (bl,)
        union = inner + (bl,)
    else:
        union = inner
    if math.prod(sizes[l] for l in inner) > _SMALL_STEP and not fused:
        eq = _einsum_eq([la, lb], out)
        return jnp.einsum(eq, a, b, precision=jax.lax.Precision.HIGHEST)
    prod = _broadcast_to(a, la, union, sizes) * _broadcast_to(b, lb, union, sizes)
    summed = tuple(range(n_out, len(inner)))
    return jnp.sum(prod, axis=summed) if summed else prod


def _grouped(x, x_labels, groups, sizes):
    """``x`` transposed so that the label ``groups`` follow one another, each group flattened to one axis
    (empty groups are left out)."""
    order = [x_labels.index(l) for g in groups for l in g]
    if order != list(range(len(order))):
        x = jnp.transpose(x, order)
    return x.reshape(tuple(math.prod(sizes[l] for l in g) for g in groups if g))


def _times_vector(x, x_labels, label, vec):
    """``x`` times ``vec`` along the axis of ``label``."""
    shape = [1] * len(x_labels)
    shape[x_labels.index(label)] = vec.shape[0]
    return x * vec.reshape(shape)


# A matrix-product step whose result has more than this many times the entries of its larger operand
# (barley's 567,000-entry intermediate from operands of 15,000) defers its rescale to the next step. Under
# `jax.vmap` a CPT operand does not count (it enters unbatched): mildew's 62,464-entry result from a
# 39,040-entry CPT and a 640-entry intermediate (batched marginals 1,557 -> 1,726 sets/s).
_EXPANDING = 8

# A large pairwise step with fewer than this many multiply-adds per entry of its largest evidence-batched
# tensor (operand or result) is memory-bound: it runs as one fused broadcast-multiply-sum, which XLA
# fuses with the rescale and the transpose of its large operand, instead of a matrix product that needs
# both laid out first (water's step after its largest product: a 4-state sum over 110,592 entries; water
# 652 -> 948 sets/s at B = 1000). A plan input (a CPT) larger than that tensor keeps the matrix product,
# where under `jax.vmap` it enters unbatched (mildew's 201,300-entry CPT times an evidence vector).
_THIN = 8


def _thin(p: Plan, step: Step, la, lb) -> bool:
    """Whether the pairwise ``step`` on operands labelled ``la``, ``lb`` is memory-bound (see `_THIN`)."""
    n_in = len(p.inputs)
    entries = [(math.prod(p.sizes[l] for l in x), i < n_in) for x, i in ((la, step.a), (lb, step.b))]
    batched = max([math.prod(p.sizes[l] for l in step.out)] + [e for e, is_input in entries if not is_input])
    cpt = max([0] + [e for e, is_input in entries if is_input])
    return cpt <= batched and _step_entries(la, lb, step.out, p.sizes) < _THIN * batched


def _pair_dot_lazy(a, la, va, b, lb, vb, out, sizes, plain=(False, False)):
    """`_pair_dot` where ``a`` (and ``b``) may come with a pending vector ``(label, vec)``: the input is
    ``a`` times ``vec`` along ``label`` (a CPT and its evidence, kept apart, or a product and the vector
    it was left with). The vector of the larger operand is applied where it costs least: to the other
    operand when the label is shared; when the label is kept, not at all: it is returned with the result
    (``(result, labels, (label, vec))``) for the caller to keep pending, until a later step meets the
    label in a smaller operand or sums it. So under `jax.vmap` over the evidence the CPT itself enters the
    product unbatched and the evidence batch becomes one of the product's matrix dimensions (not a batch
    of small matrices), and neither the multiply nor, in the reverse pass, the vector's gradient (a sum
    over the whole product) runs over a large result: mildew's 62,464-entry product, batched marginals
    2,487-2,587 -> 2,752-2,969 sets/s (B = 1000, same process; the other networks measured unchanged).
    A vector on a label that its operand alone sums is applied to that operand.

    ``plain`` says which operands enter without the evidence batch (a CPT whose vector is kept apart).
    When only ``a`` does, ``b`` becomes the product's left operand, so that under `jax.vmap` the batch
    leads the result instead of sitting between the CPT's and the other operand's free labels, from
    where the next step had to move it (mildew's 62,464-entry product: batched marginals 2,039 -> 2,356
    sets/s; barley 245 -> 281; same process, B = 1000).
    """
    a_plain, b_plain = plain
    if va is not None and vb is not None:  # keep the larger operand's vector pending
        if math.prod(a.shape) >= math.prod(b.shape):
            b, vb, b_plain = _times_vector(b, lb, *vb), None, False
        else:
            a, va, a_plain = _times_vector(a, la, *va), None, False
    if vb is not None:
        a, la, va, b, lb, vb, swapped = b, lb, vb, a, la, va, True
        a_plain, b_plain = b_plain, a_plain
    else:
        swapped = False
    post = None
    if va is not None:
        label, vec = va
        if label in lb:
            b, b_plain = _times_vector(b, lb, label, vec), False
        elif label in out:
            post = va
        else:
            a, a_plain = _times_vector(a, la, label, vec), False
    if swapped:
        a, la, b, lb, a_plain, b_plain = b, lb, a, la, b_plain, a_plain
    if a_plain and not b_plain:  # the batched operand first (see the docstring)
        t, labels = _pair_dot(b, lb, a, la, out, sizes, swappable=False)
    else:
        t, labels = _pair_dot(a, la, b, lb, out, sizes, swappable=not (a_plain or b_plain))
    return t, labels, post


_HI = jax.lax.Precision.HIGHEST


def _mm(x, y):
    """``x[H, M, K] @ y[H, K, N] -> [H, M, N]``: one `jax.lax.dot_general` with one batch and one
    contracted dimension.

    With the operands in this layout, JAX's own reverse pass gives the two products ``g @ y^T -> [H, M, K]``
    and ``x^T @ g -> [H, K, N]``, each cotangent written straight in its operand's layout. (An earlier
    custom VJP wrote them by hand, when operands kept whichever order they came in and JAX's transpose let
    XLA:CPU compute water's largest cotangent as a product of two transposed operands, 289 ms against
    98 ms. With the fixed layout the compiled programs have the same products and fusions, and batched
    marginals run at the same rate (water, barley, mildew, pathfinder, insurance: 0.98x to 1.00x, same
    process), while forward-mode autodiff (`jax.jvp`, `jax.jacfwd`, `jax.hessian`), which a custom VJP
    rules out, works, and inside `jax.shard_map` a replicated CPT's cotangent is summed over the devices
    by JAX itself.)
    """
    return jax.lax.dot_general(x, y, (((2,), (1,)), ((0,), (0,))), precision=_HI)


def _dot_groups(la, lb, out_set, a_size, b_size):
    """The label groups ``(h, m, k, n)`` of a product of ``a`` (labels ``la``) as the left operand and
    ``b`` as the right one, and the entries the two operands' transposes would move: ``h`` (shared, kept)
    and ``k`` (shared, summed) in the order of the larger operand, ``m`` and ``n`` in their own."""
    lead = la if a_size >= b_size else lb
    h = tuple(l for l in lead if l in la and l in lb and l in out_set)
    k = tuple(l for l in lead if l in la and l in lb and l not in out_set)
    m = tuple(l for l in la if l not in lb)
    n = tuple(l for l in lb if l not in la)
    moved = (a_size if la != h + m + k else 0) + (b_size if lb != h + k + n else 0)
    return (h, m, k, n), moved


def _pair_dot(a, la, b, lb, out, sizes, swappable: bool = True):
    """``sum over (la | lb) - out`` of ``a * b`` as one matrix product: ``(result, its labels)``.

    The labels fall into four groups: ``h`` (in both and in ``out``: the product's batch), ``k`` (in both,
    summed: the contracted dimension), ``m`` (only in the left operand, kept) and ``n`` (only in the right
    one, kept). Each operand is transposed (only where its labels are not already grouped) and reshaped to
    ``f[H, M, K]`` / ``f[H, K, N]`` and multiplied by `_mm`: one `jax.lax.dot_general` with one batch and
    one contracted dimension, whose reverse pass writes each cotangent in its operand's layout. The
    result keeps the product's natural label order ``h + m + n`` (no transpose of the result: the caller
    tracks the labels). Labels of one operand that are summed away are summed before the product. Under
    `jax.vmap` the evidence batch becomes a leading batch dimension of the same product.

    ``h`` and ``k`` follow the larger operand's order, and (with ``swappable``) ``b`` becomes the left
    operand where that moves fewer entries: an intermediate laid out ``k + n`` (a previous product's
    ``h + m + n`` whose kept labels are all summed here) then enters as the right operand untouched, and
    the transpose falls on the smaller one (the coupled HMM's step, M = 4 chains of K = 8 states, B = 16:
    a [512, 1024] intermediate against a [512, 64] table; the general engine's smoother 260 -> 188 ms,
    the transpose had taken 56 ms). Not under `jax.vmap` with one operand a CPT kept unbatched
    (``swappable=False``): there the vmapped batch's position decides (`_pair_dot_lazy`). The summed
    labels used to follow the left operand's order, which transposed a larger right operand.

    Fixing each operand's layout to ``[H, M, K]`` / ``[H, K, N]`` (rather than keeping whichever order
    they came in, which saves a transpose) matters in the reverse pass: an operand laid out ``[K, M]``
    gets a ``[K, M]`` cotangent, which XLA:CPU computed as a product of two transposed matrices at a
    third of the rate (water, B = 1000: 906 -> 1,282 sets/s).
    """
    out_set = set(out)
    a_only = tuple(l for l in la if l not in lb and l not in out_set)
    if a_only:
        a = jnp.sum(a, axis=tuple(la.index(l) for l in a_only))
        la = tuple(l for l in la if l not in a_only)
    b_only = tuple(l for l in lb if l not in la and l not in out_set)
    if b_only:
        b = jnp.sum(b, axis=tuple(lb.index(l) for l in b_only))
        lb = tuple(l for l in lb if l not in b_only)
    a_size, b_size = math.prod(a.shape), math.prod(b.shape)
    (h, m, k, n), moved = _dot_groups(la, lb, out_set, a_size, b_size)
    if swappable:
        swapped, moved_swapped = _dot_groups(lb, la, out_set, b_size, a_size)
        if moved_swapped < moved:
            a, la, b, lb = b, lb, a, la
            h, m, k, n = swapped
    x = _grouped(a, la, (h, m, k), sizes).reshape(tuple(math.prod(sizes[l] for l in g) for g in (h, m, k)))
    y = _grouped(b, lb, (h, k, n), sizes).reshape(tuple(math.prod(sizes[l] for l in g) for g in (h, k, n)))
    t = _mm(x, y)
    labels = h + m + n
    return t.reshape(tuple(sizes[l] for l in labels)), labels


def all_steps_small(p: Plan) -> bool:
    """Whether every pairwise step of ``p`` is a fused broadcast-multiply-sum (no einsum / dot step).

    The batch-minor execution (``contract(..., batch_size=B)``) pays off on such plans; on plans with
    large steps the batched dot_generals move the batch axis around and it was slower (pathfinder).

    Args:
      p: a plan.

    Returns:
      ``True`` when every step's product grid (prod of the sizes of all its labels) is small.

    Examples:
      >>> all_steps_small(plan(((0,), (0, 1)), (), (2, 2))), all_steps_small(plan(((0, 1), (1, 2)), (), (500, 500, 500)))
      (True, False)
    """
    labels = p.labels
    for step in p.steps:
        union = set(step.out) | set(labels[step.a]) | (set(labels[step.b]) if step.b >= 0 else set())
        if math.prod(p.sizes[l] for l in union) > _SMALL_STEP:
            return False
    return True


def _max_all(t):
    """``jnp.max(t)``, written for XLA:CPU: a large tensor is first reduced to ``c`` partial maxima (the
    max over rows of ``t`` as ``[n / c, c]``: a reduction that keeps the minor axis, vectorised), then to
    one. The barrier keeps XLA from merging the two back into one reduction over a minor axis, which it
    runs as a tree of reduce-windows at a sixth of the speed (``[64, 62464]``: 4.5 ms against 0.6 ms;
    mildew's batched marginals 1,766 -> 1,968 sets/s, water 1,152 -> 1,357)."""
    n = t.size
    c = next((c for c in (16, 8, 32, 4, 64) if n % c == 0), None)
    if n < 1024 or c is None:
        return jnp.max(t)
    partial = jax.lax.optimization_barrier(jnp.max(t.reshape(-1, c), axis=0))
    return jnp.max(partial)


def _rescale(t, batched: bool = False):
    """Divide by the max (a constant for autodiff); returns (t / m, log m). All-zero t is kept.

    With ``batched``, the last axis is a batch axis and each batch entry gets its own scale ``f[B]``.
    """
    if batched:
        m = jnp.max(t, axis=tuple(range(t.ndim - 1))) if t.ndim > 1 else t
    else:
        m = _max_all(t)
    m = jax.lax.stop_gradient(m)
    m = jnp.where(m > 0, m, 1.0)
    return t / m, jnp.log(m)


def contract(
    p: Plan,
    arrays: Sequence[jax.Array],
    *,
    rescale: bool = True,
    rescale_every: int = 2,
    batch_size: int | None = None,
    vectors: Sequence[jax.Array] | None = None,
):
    """Sum-product contraction of ``arrays`` along plan ``p``.

    Args:
      p: the plan.
      arrays: the input tensors, shaped by ``p.inputs`` and ``p.sizes`` (plus a trailing batch axis of
        ``batch_size`` when it is given).
      rescale: divide intermediates by their max (under stop_gradient) and carry the log.
      rescale_every: rescale an intermediate once it has absorbed this many input tensors since the
        last rescale in its subtree (and always the result). Each rescale is a reduction, which costs
        throughput and compile time: on alarm, every step ran at 95k evidence sets/s, every 2 at 143k.
        With soft evidence of 1e-6 on every variable, every 4 underflowed to -inf on insurance; every 2
        stays exact on asia, child, insurance and alarm (tests/bn/test_pgmpy.py). Use 1 for the most
        extreme likelihoods. A matrix-product step whose result has over 8x the entries of its larger
        operand leaves its rescale to the next step (until ``2 * rescale_every`` tensors are absorbed).
      batch_size: every array carries a trailing batch axis of this size, and it stays the last (minor)
        axis of every intermediate, so the elementwise work of a step vectorises over the batch instead
        of over a few states (what ``jax.vmap`` of the unbatched call would give: batch first). Scales
        are per batch entry.
      vectors: optional ``vectors[i]: f[size of input i's last label]``; input ``i`` is then
        ``arrays[i]`` times ``vectors[i]`` along its last axis (a CPT and its evidence on the child axis).
        Kept apart until the input is used, so that a large step multiplies the vector into its smaller
        side (or, on a label the step keeps, leaves it pending on its result until a later step meets the
        label) and the array enters the matrix product as it is: under `jax.vmap` over the
        vectors alone (a batch of evidence sets), the CPTs stay unbatched and the batch is a matrix
        dimension of those products. Not with ``batch_size``.

    Returns:
      ``(mantissa, log_scale)``: ``mantissa`` has the output labels' shape (then the batch axis); the
      exact result is ``mantissa * exp(log_scale)``. Without ``rescale`` the log scale is 0.

    Raises:
      ValueError: a number of arrays other than the plan's inputs, or of vectors other than arrays.

    Examples:
      >>> p = plan(((0,), (0, 1)), (1,), (2, 2))                 # sum_i a[i] B[i, j]
      >>> mantissa, log_scale = contract(p, [jnp.array([0.8, 0.2]), jnp.array([[0.9, 0.1], [0.2, 0.8]])])
      >>> print(mantissa * jnp.exp(log_scale))
      [0.76 0.24]
    """
    if len(arrays) != len(p.inputs):
        raise ValueError(f"plan expects {len(p.inputs)} tensors, got {len(arrays)}")
    batched = batch_size is not None
    extra = (len(p.sizes),) if batched else ()
    tensors: list = list(arrays)
    # an input's vector along its last label, applied when the input is used, and a product's vector on
    # one of its labels, left pending by `_pair_dot_lazy`: pending[i] belongs to tensors[i]
    pending: list = [None] * len(arrays)
    if vectors is not None:
        if len(vectors) != len(arrays) or batched:
            raise ValueError("vectors needs one vector per array, and no batch_size")
        pending = [(t[-1], v) if t else None for t, v in zip(p.inputs, vectors)]

    def take(i):  # tensor i with its pending vector applied
        x = tensors[i]
        if pending[i] is not None:
            x = _times_vector(x, labels[i], *pending[i])
        return x

    absorbed = [1] * len(arrays)
    # each tensor's labels as it is laid out: a plan's order, or a matrix product's own (see `_pair_dot`)
    labels = list(p.inputs)
    log_scale = jnp.zeros((batch_size,) if batched else (), dtype=jnp.result_type(*arrays))
    t = None
    if not p.steps:  # one tensor: reduce it directly
        t = jnp.einsum(_einsum_eq([labels[0] + extra], p.output + extra), take(0))
    for k, step in enumerate(p.steps):
        out = step.out
        post = None
        if step.b < 0:
            t = jnp.einsum(_einsum_eq([labels[step.a] + extra], out + extra), take(step.a))
            count = absorbed[step.a]
        else:
            la, lb = labels[step.a], labels[step.b]
            expanding = False
            thin = _thin(p, step, la, lb)
            if batched or thin or _step_entries(la, lb, out, p.sizes) <= _SMALL_STEP:
                t = _pair_sum(take(step.a), la, take(step.b), lb, out, p.sizes, batch_size, fused=thin)
            else:
                va, vb = pending[step.a], pending[step.b]
                plain = tuple(vectors is not None and i < len(p.inputs) for i in (step.a, step.b))
                last = k == len(p.steps) - 1
                t, out, post = _pair_dot_lazy(tensors[step.a], la, va, tensors[step.b], lb, vb, out, p.sizes, plain)
                if post is not None and last:
                    t, post = _times_vector(t, out, *post), None
                if last and out != step.out:  # the result in the plan's output order
                    t, out = jnp.transpose(t, [out.index(l) for l in step.out]), step.out
                # against its evidence-batched operands: a CPT enters unbatched (mildew: a 62,464-entry
                # result from a 39,040-entry CPT and a 640-entry intermediate)
                operands = [i for i in (step.a, step.b) if vectors is None or i >= len(p.inputs)] or [step.a, step.b]
                expanding = t.size > _EXPANDING * max(tensors[i].size for i in operands)
            tensors[step.b] = None
            count = absorbed[step.a] + absorbed[step.b]
        tensors[step.a] = None
        # a large product much bigger than its operands: its rescale (a pass as long as the product's own
        # memory traffic) is left to its consumer, once
        deferred = step.b >= 0 and expanding and count < 2 * rescale_every
        if rescale and ((count >= rescale_every and not deferred) or k == len(p.steps) - 1):
            t, ls = _rescale(t, batched)
            log_scale = log_scale + ls
            count = 0
        tensors.append(t)
        labels.append(out)
        absorbed.append(count)
        pending.append(post)
    return t, log_scale


def _broadcast_to(x, x_labels, union, sizes):
    """Transpose ``x`` to the order of ``union`` and insert unit axes for missing labels."""
    order = sorted(range(len(x_labels)), key=lambda k: union.index(x_labels[k]))
    x = jnp.transpose(x, order) if order != list(range(len(order))) else x
    return x.reshape([sizes[l] if l in x_labels else 1 for l in union])


def contract_max(p: Plan, log_arrays: Sequence[jax.Array]):
    """Max-sum contraction (max-product in log space) with argmax decoding.

    Args:
      p: a plan; its output labels are kept (not maximised).
      log_arrays: log-factors (``-inf`` for zeros).

    Returns:
      ``(max_log, decode)`` where ``max_log`` has the output labels' shape and ``decode(out_values)``
      takes the values of the output labels (a dict, empty for a scalar plan) and returns a dict
      ``{label: int32 value}`` of the maximising assignment of every eliminated label.

    max_log = max over the eliminated labels of sum_t log_arrays[t].

    Examples:
      >>> p = plan(((0,), (0, 1)), (), (2, 2))                   # max_ij log a[i] + log B[i, j]
      >>> best, decode = contract_max(p, [jnp.log(jnp.array([0.8, 0.2])), jnp.log(jnp.array([[0.9, 0.1], [0.2, 0.8]]))])
      >>> print(jnp.exp(best))
      0.72
      >>> {label: int(v) for label, v in decode().items()}      # the maximising i and j
      {0: 0, 1: 0}
    """
    sizes = p.sizes
    labels = p.labels
    tensors: list = list(log_arrays)
    trace = []  # (kept labels, eliminated labels, argmax table over kept)

    def reduce(t, t_labels, keep):
        elim = tuple(l for l in t_labels if l not in keep)
        union = tuple(keep) + elim
        t = _broadcast_to(t, t_labels, union, sizes)
        kept_shape = tuple(sizes[l] for l in keep)
        flat = t.reshape(kept_shape + (math.prod(sizes[l] for l in elim),))
        return jnp.max(flat, axis=-1), jnp.argmax(flat, axis=-1).astype(jnp.int32), elim

    if not p.steps:
        t, arg, elim = reduce(tensors[0], labels[0], p.output)
        trace.append((p.output, elim, arg))
    for step in p.steps:
        if step.b < 0:
            union, s = labels[step.a], tensors[step.a]
        else:
            union = tuple(dict.fromkeys(labels[step.a] + labels[step.b]))
            s = _broadcast_to(tensors[step.a], labels[step.a], union, sizes) + _broadcast_to(
                tensors[step.b], labels[step.b], union, sizes
            )
            tensors[step.b] = None
        tensors[step.a] = None
        t, arg, elim = reduce(s, union, step.out)
        trace.append((step.out, elim, arg))
        tensors.append(t)

    def decode(out_values=None):
        values = dict(out_values or {})
        for keep, elim, arg in reversed(trace):
            if not elim:
                continue
            flat = arg[tuple(values[l] for l in keep)] if keep else arg
            for l, v in zip(elim, jnp.unravel_index(flat, tuple(sizes[l] for l in elim))):
                values[l] = v.astype(jnp.int32)
        return values

    return t, decode
