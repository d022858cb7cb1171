"""Exact score-optimal structure by dynamic programming over subsets (Silander & Myllymaki 2006; the
order-graph search pomegranate implements).

1. Local scores s(v, S) of every variable v and parent set S (|S| <= max_parents), batched.
2. Best parent set inside every candidate set C: bps(v, C) = max(s(v, C), max_{u in C} bps(v, C - u)),
   one vectorised max per bit over all 2^n masks.
3. Best network on every variable set W: F(W) = max_{v in W} F(W - v) + bps(v, W - v) (v is a sink of
   W), layer by layer in the size of W; the optimal DAG is read back from the sinks.

Memory is about n 2^n (8 + 4) bytes for step 2 plus 2^n 9 bytes for step 3, and step 1 scores
n sum_{k <= max_parents} C(n - 1, k) families: `exact_search` estimates both first and refuses, with the
numbers, above ``memory_limit`` or ``max_families``.

Examples:
    >>> from gm.bn import Structure
    >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
    >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
    >>> exact_search(data, variables).structure.parents        # the BIC optimum among all 25 DAGs
    ((), (), (0, 1))
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import numpy as np

from gm.learn.structure.scores import ScoreCache
from gm.learn.structure.search import SearchResult, make_structure

__all__ = ["ExactSearchCost", "exact_search", "exact_search_cost"]


class ExactSearchCost(NamedTuple):
    """What `exact_search` would need: ``memory`` (bytes of the subset tables) and ``families`` (local
    scores to compute).

    Attributes:
      memory: bytes of the subset tables, n 2^n 12 + 2^n 9.
      families: local scores to compute, n sum_{k <= max_parents} C(n - 1, k).

    Examples:
      >>> memory, families = exact_search_cost(3)
      >>> memory, families
      (360, 12)
    """

    memory: int
    families: int


def exact_search_cost(n_vars: int, max_parents: int | None = None) -> ExactSearchCost:
    """The memory of the subset tables and the number of local scores an exact search needs.

    Args:
      n_vars: the number of variables n.
      max_parents: the most parents per variable (None: n - 1).

    Returns:
      `ExactSearchCost` ``(memory, families)``.

    Examples:
      >>> exact_search_cost(20, max_parents=3)                 # 250 MiB, 23,200 local scores
      ExactSearchCost(memory=261095424, families=23200)
    """
    k = n_vars - 1 if max_parents is None else min(int(max_parents), n_vars - 1)
    size = 1 << n_vars
    memory = n_vars * size * 12 + size * 9
    families = n_vars * sum(math.comb(n_vars - 1, j) for j in range(k + 1))
    return ExactSearchCost(memory, families)


def exact_search(data, variables=None, *, score: str = "bic", equivalent_sample_size: float = 10.0,
                 max_parents: int | None = None, memory_limit: float = 2 * 2**30,
                 max_families: int = 2_000_000, cache: ScoreCache | None = None) -> SearchResult:
    """The DAG with the best total score (exactly), optionally with at most ``max_parents`` per variable.

    Args:
      data: ``int32[N, n_vars]`` complete records.
      variables: a `Structure`/`BayesNet` (names, states) or cardinalities.
      score, equivalent_sample_size: see `gm.learn.structure.family_scores`.
      max_parents: the most parents per variable (None: no limit).
      memory_limit: bytes the subset tables may take; max_families: local scores it may compute.
      cache: a `ScoreCache` over the same data and score.

    Returns:
      `SearchResult` (its score is the optimum of the float32 local scores).

    Raises:
      ValueError: when the estimated memory or number of families is over the limit, with both numbers.

    Examples:
      >>> from gm.bn import Structure
      >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
      >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
      >>> result = exact_search(data, variables, max_parents=1)
      >>> sum(len(p) for p in result.structure.parents), round(result.score, 1)
      (2, -316.7)
    """
    if cache is None:
        cache = ScoreCache(data, variables, score=score, equivalent_sample_size=equivalent_sample_size)
    n = len(cache.cards)
    memory, families = exact_search_cost(n, max_parents)
    if memory > memory_limit:
        raise ValueError(
            f"exact search over {n} variables needs about {memory / 2**30:.2f} GiB for its subset tables "
            f"(limit {memory_limit / 2**30:.2f} GiB); use hill_climb, or raise memory_limit"
        )
    if families > max_families:
        raise ValueError(
            f"exact search over {n} variables with max_parents={max_parents} needs {families:,} local scores "
            f"(limit {max_families:,}; its subset tables would take {memory / 2**30:.2f} GiB); lower max_parents "
            "or raise max_families"
        )
    k = n - 1 if max_parents is None else min(int(max_parents), n - 1)
    size = 1 << n
    best = np.full((n, size), -np.inf)
    choice = np.zeros((n, size), np.int64)
    for v in range(n):
        others = [u for u in range(n) if u != v]
        sets = [s for j in range(k + 1) for s in itertools.combinations(others, j)]
        masks = np.array([sum(1 << u for u in s) for s in sets], np.int64)
        best[v, masks] = cache.many([(v, s) for s in sets])
        choice[v, masks] = masks
        for b in range(n):  # bps(v, C) = max over C and C - {b}
            if b == v:
                continue
            view_best = best[v].reshape(-1, 2, 1 << b)
            view_choice = choice[v].reshape(-1, 2, 1 << b)
            better = view_best[:, 0, :] > view_best[:, 1, :]
            view_best[:, 1, :] = np.where(better, view_best[:, 0, :], view_best[:, 1, :])
            view_choice[:, 1, :] = np.where(better, view_choice[:, 0, :], view_choice[:, 1, :])
    total = np.full(size, -np.inf)
    total[0] = 0.0
    sink = np.zeros(size, np.int8)
    masks = np.arange(size, dtype=np.int64)
    popcount = np.zeros(size, np.int8)
    for b in range(n):
        popcount += ((masks >> b) & 1).astype(np.int8)
    for layer in range(1, n + 1):
        sets = masks[popcount == layer]
        layer_best = np.full(sets.shape, -np.inf)
        layer_sink = np.zeros(sets.shape, np.int8)
        for v in range(n):
            has = (sets >> v) & 1 == 1
            rest = sets[has] ^ (1 << v)
            cand = total[rest] + best[v, rest]
            cur = layer_best[has]
            better = cand > cur
            layer_best[has] = np.where(better, cand, cur)
            layer_sink[has] = np.where(better, v, layer_sink[has])
        total[sets] = layer_best
        sink[sets] = layer_sink
    parents: list[list[int]] = [[] for _ in range(n)]
    remaining = size - 1
    while remaining:
        v = int(sink[remaining])
        remaining ^= 1 << v
        chosen = int(choice[v, remaining])
        parents[v] = [u for u in range(n) if (chosen >> u) & 1]
    structure = make_structure(variables if variables is not None else cache.cards, parents, n)
    return SearchResult(structure, float(total[size - 1]), n)
