"""Local-search scoring: every single-edge move's score change around one variable, in one compiled call.

A `NeighbourhoodScorer` holds the data as the state indicators of the distinct records weighted by their
counts (one int64 code per record, sorted once on the host; each variable's last state is left out and
recovered as the weight minus the other states, see `IndicatorLayout`) and scores, for a child and its
current parents, every family the child can reach by adding, deleting or reversing one edge: the counts of
all those families come from one segment-sum of the indicator rows by the family index of (parents,
child), and the local scores from `gm.learn.structure.scores.scores_from_counts`. Hill climbing
(`hill_climb`) asks it for the neighbourhood of the variables whose parents changed; one call costs one
pass over the distinct records, so its time grows with their number (alarm: 6,144 at N = 10,000,
40,960 at N = 100,000).

Examples:
    >>> from gm.bn import Structure
    >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
    >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
    >>> hood = NeighbourhoodScorer(data, variables)([2], [[0]])     # C with parent A
    >>> print(hood.current, hood.add[:, 1], hood.delete)           # s(C, {A}), s(C, {A, B}), s(C, {})
    [-74.613] [-10.5966] [[-115.1161]]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gm.learn.structure.scores import (
    bucket,
    canonical_score,
    complete_records,
    names_of,
    scores_from_counts,
    unique_records,
    variable_cards,
)

__all__ = ["Neighbourhood", "NeighbourhoodScorer", "IndicatorLayout", "column_blocks", "extend_indicators",
           "indicator_layout"]


class Neighbourhood(NamedTuple):
    """Local scores around the current parent set P of each requested child j (``B`` children).

    Attributes:
      current: ``f32[B]``, s(j, P).
      add: ``f32[B, n_vars]``, s(j, P + i) for every i (meaningless where i is j or already in P).
      delete: ``f32[B, K]``, s(j, P - P[k]) for each parent slot k (meaningless on padding slots).

    Examples:
      >>> hood = Neighbourhood(current=np.zeros(1), add=np.zeros((1, 3)), delete=np.zeros((1, 1)))
      >>> current, add, delete = hood
      >>> add.shape
      (1, 3)
    """

    current: jax.Array
    add: jax.Array
    delete: jax.Array


def column_blocks(cards):
    """``int32[n, R]``: the one-hot columns of each variable's states, padded with the all-zero column.

    Variable i's state x is one-hot column offset_i + x (offset_i = sum of the earlier cardinalities);
    padding points at column sum(cards), which is all zeros.

    Args:
      cards: the cardinality of each variable.

    Returns:
      ``int32[n, max(cards)]``.

    Examples:
      >>> column_blocks((2, 3)).tolist()
      [[0, 1, 5], [2, 3, 4]]
    """
    n, width, total = len(cards), max(cards), int(sum(cards))
    offsets = np.concatenate([[0], np.cumsum(cards)[:-1]])
    columns = np.full((n, width), total, np.int32)
    for i, c in enumerate(cards):
        columns[i, :c] = offsets[i] + np.arange(c)
    return columns


class IndicatorLayout(NamedTuple):
    """Where each (variable, state) count lives in the indicator tables of `NeighbourhoodScorer`.

    A record is stored as the indicators of the states 0..card - 2 of each variable (``D`` = sum(card - 1)
    columns), then its weight (column ``D``), then a zero column (``D + 1``). The count of a variable's last
    state is the weight minus the counts of its other states, so one pass over the records counts
    ``D + 2`` columns instead of sum(card) (alarm: 70 instead of 106). `extend_indicators` appends the n
    last-state columns (``D + 2 + i``).

    Attributes:
      columns: ``int32[n, width]``, the reduced column of state x of variable i (``D + 2 + i`` for its last
        state; the zero column ``D + 1`` past its cardinality).
      groups: ``int32[n, max(width - 1, 1)]``, the reduced columns of variable i (padded with ``D + 1``).
      width: ``D + 2``.

    Examples:
      >>> layout = indicator_layout((2, 3))                    # D = 1 + 2 = 3: columns A0, B0, B1, w, 0
      >>> layout.columns.tolist(), layout.groups.tolist(), layout.width
      ([[0, 5, 4], [1, 2, 6]], [[0, 4], [1, 2]], 5)
    """

    columns: np.ndarray
    groups: np.ndarray
    width: int


def indicator_layout(cards) -> IndicatorLayout:
    """The `IndicatorLayout` of variables with cardinalities ``cards``.

    Args:
      cards: the cardinality of each variable.

    Returns:
      `IndicatorLayout` ``(columns int32[n, max(cards)], groups int32[n, max(cards) - 1], width)``.

    Examples:
      >>> indicator_layout((2, 2, 2)).width                    # three indicators, the weight, the zero column
      5
    """
    n, wide = len(cards), max(cards)
    offsets = np.concatenate([[0], np.cumsum(np.asarray(cards) - 1)[:-1]]).astype(np.int32)
    d = int(sum(cards)) - n
    columns = np.full((n, wide), d + 1, np.int32)
    groups = np.full((n, max(wide - 1, 1)), d + 1, np.int32)
    for i, c in enumerate(cards):
        columns[i, :c - 1] = offsets[i] + np.arange(c - 1)
        groups[i, :c - 1] = columns[i, :c - 1]
        columns[i, c - 1] = d + 2 + i
    return IndicatorLayout(columns, groups, d + 2)


def extend_indicators(table, layout: IndicatorLayout, axis: int = -1):
    """Append the last-state counts along ``axis``: weight - sum of the variable's other state counts.

    Args:
      table: ``f32[..., D + 2, ...]`` counts in the reduced layout along ``axis``.
      layout: the `IndicatorLayout`.
      axis: the layout's axis.

    Returns:
      ``f32[..., D + 2 + n, ...]``; index it with ``layout.columns`` for the counts of every (i, x_i).

    Examples:
      >>> layout = indicator_layout((2, 3))
      >>> print(extend_indicators(jnp.array([3.0, 1.0, 2.0, 5.0, 0.0]), layout))   # A1 = 5 - 3, B2 = 5 - 1 - 2
      [3. 1. 2. 5. 0. 2. 2.]
    """
    table = jnp.moveaxis(table, axis, -1)
    d = layout.width - 2
    last = table[..., d:d + 1] - jnp.sum(table[..., layout.groups], axis=-1)
    return jnp.moveaxis(jnp.concatenate([table, last], axis=-1), -1, axis)


def _strides(pc):
    return jnp.flip(jnp.cumprod(jnp.flip(jnp.concatenate([pc[1:], jnp.ones((1,), jnp.int32)]))))


def _hood_from_table(table, child, pa, n_records, equivalent_sample_size, *, cards, score):
    """Scores of the neighbourhood of (pa, child) from its table ``f32[(u, x_child), D + 2]`` (reduced layout)."""
    n, width = len(cards), max(cards)
    n_configs = table.shape[0] // width
    dtype = table.dtype
    card_arr = jnp.asarray(cards + (1,), jnp.int32)
    layout = indicator_layout(cards)
    pc = card_arr[pa]
    strides = _strides(pc)
    q = jnp.prod(pc.astype(dtype))
    r = card_arr[child].astype(dtype)
    cand = extend_indicators(table, layout)[:, layout.columns].reshape(n_configs, width, n, width)  # u, x_j, i, x_i
    cand = cand.transpose(2, 0, 3, 1).reshape(n, n_configs * width, width)  # i, (u, x_i), x_j
    kw = dict(score=score, equivalent_sample_size=equivalent_sample_size)
    add = scores_from_counts(cand, q * card_arr[:n].astype(dtype), jnp.full((n,), r), n_records, **kw)
    cur = table[:, layout.width - 2].reshape(n_configs, width)  # N[u, x_j]: the weight column
    current = scores_from_counts(cur[None], q[None], r[None], n_records, **kw)[0]
    rows = jnp.arange(n_configs)

    def drop(k):
        merged = (rows // (strides[k] * pc[k])) * strides[k] + rows % strides[k]
        return jax.ops.segment_sum(cur, merged, num_segments=n_configs), q / pc[k].astype(dtype)

    tables, qs = jax.vmap(drop)(jnp.arange(pa.shape[0]))
    delete = scores_from_counts(tables, qs, jnp.full(qs.shape, r), n_records, **kw)
    return current, add, delete


@functools.partial(jax.jit, static_argnames=("cards", "n_configs", "score"))
def _neighbourhood_kernel(indicators, n_records, padded, children, parents, equivalent_sample_size, *, cards,
                          n_configs, score):
    # one plain segment-sum per child, unrolled (a vmapped segment-sum is a batched scatter, ten times slower)
    width = max(cards)
    card_arr = jnp.asarray(cards + (1,), jnp.int32)
    tables = []
    for b in range(children.shape[0]):
        pa = parents[b]
        strides = _strides(card_arr[pa]) * width
        key = padded[:, children[b]]
        for k in range(pa.shape[0]):  # a sum of column products (an integer matmul is a slow loop on CPU)
            key = key + padded[:, pa[k]] * strides[k]
        tables.append(jax.ops.segment_sum(indicators, key, num_segments=n_configs * width))
    hood = functools.partial(_hood_from_table, n_records=n_records,
                             equivalent_sample_size=equivalent_sample_size, cards=cards, score=score)
    return Neighbourhood(*jax.vmap(hood)(jnp.stack(tables), children, parents))


@functools.partial(jax.jit, static_argnames=("cards", "score"))
def _empty_neighbourhoods(indicators, n_records, equivalent_sample_size, *, cards, score):
    # every child without parents: all pairwise tables are one matrix product of the indicator records
    n = len(cards)
    layout = indicator_layout(cards)
    gram = indicators.T @ (indicators != 0).astype(indicators.dtype)  # [D + 2, D + 2], weighted x unweighted
    tables = extend_indicators(gram, layout, axis=0)[layout.columns]  # [n, R, D + 2]: (x_j) x reduced columns
    parents = jnp.full((n, 1), n, jnp.int32)
    hood = functools.partial(_hood_from_table, n_records=n_records, equivalent_sample_size=equivalent_sample_size,
                             cards=cards, score=score)
    return Neighbourhood(*jax.vmap(hood)(tables, jnp.arange(n), parents))


@functools.partial(jax.jit, static_argnames=("cards",))
def _indicator_records(rows, counts, *, cards):
    """The indicator table ``f[M, D + 2]`` (`IndicatorLayout`) of distinct ``rows`` weighted by ``counts``, and
    the rows padded with a zero column ``int32[M, n_vars + 1]`` (parent slot ``n_vars`` reads state 0)."""
    layout = indicator_layout(cards)
    d = layout.width - 2
    variable = np.concatenate([np.full(c - 1, i) for i, c in enumerate(cards)] + [np.zeros(0, int)]).astype(np.int32)
    state = np.concatenate([np.arange(c - 1) for c in cards] + [np.zeros(0, int)]).astype(np.int32)
    weight = counts.astype(jnp.result_type(float))
    hits = (rows[:, variable] == state).astype(weight.dtype) * weight[:, None]  # [M, D]
    indicators = jnp.concatenate([hits, weight[:, None], jnp.zeros_like(weight)[:, None]], axis=1)
    assert indicators.shape[1] == d + 2
    return indicators, jnp.pad(rows, ((0, 0), (0, 1)))


class NeighbourhoodScorer:
    """Batched neighbourhood scores for local search over one data set (one-hot records kept on device).

    For a child j with parents P, one segment-sum of the indicator records by the family index of (P, j)
    gives the counts of every family (P + i, j) at once (a column block per candidate i); the current and
    the deletion families are marginals of that table. So a child's whole neighbourhood costs one pass
    over the records, whatever the number of variables.

    Args:
      data: ``int32[N, n_vars]`` complete records.
      variables: a `Structure`/`BayesNet` or cardinalities (None: the data's maxima + 1).
      score: one of `gm.learn.structure.SCORES`.
      equivalent_sample_size: the ESS of BDeu and BDs.

    Attributes:
      cards: the cardinality of each variable.
      score: the canonical score name.
      memo: ``{(child, frozenset(parents)): neighbourhood}``, filled by the searches that share it.
      n_distinct: the number of distinct records (one neighbourhood costs one pass over them).

    Examples:
      >>> from gm.bn import Structure
      >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
      >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
      >>> scorer = NeighbourhoodScorer(data, variables, score="bic")
      >>> hood = scorer([0, 1, 2], [[], [], []])                    # every variable without parents
      >>> print(hood.add[2, :2])                                    # s(C, {i}) for i = A, B
      [-74.613 -74.613]
    """

    def __init__(self, data, variables=None, *, score: str = "bic", equivalent_sample_size: float = 10.0):
        self.cards = variable_cards(variables, data)
        data = complete_records(data, self.cards, names_of(variables))
        self.score = canonical_score(score)
        self.equivalent_sample_size = float(equivalent_sample_size)
        self.n_records = int(data.shape[0])
        rows, counts = unique_records(data, pad=True)
        self.n_distinct = int(np.sum(counts > 0))
        self.memo: dict = {}  # (child, frozenset(parents)) -> neighbourhood, filled by the searches
        # distinct rows weighted by counts, reduced layout; built on the device from the int32 rows
        self.indicators, self.padded = _indicator_records(rows.astype(np.int32), counts.astype(np.int32),
                                                          cards=self.cards)

    def __call__(self, children: Sequence[int], parents: Sequence[Sequence[int]]) -> Neighbourhood:
        """Neighbourhoods of ``children`` with current parent sets ``parents`` (numpy float64 arrays).

        Args:
          children: the child indices (B of them).
          parents: the current parent indices of each child.

        Returns:
          `Neighbourhood` ``(current float64[B], add float64[B, n_vars], delete float64[B, K])``.

        Raises:
          ValueError: a parent set with too many configurations to count.

        Examples:
          >>> from gm.bn import Structure
          >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
          >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
          >>> print(NeighbourhoodScorer(data, variables)([2], [[0, 1]]).delete)   # s(C, B), s(C, A)
          [[-74.613 -74.613]]
        """
        return self.submit(children, parents)()

    def submit(self, children: Sequence[int], parents: Sequence[Sequence[int]]) -> Callable[[], Neighbourhood]:
        """Start counting the neighbourhoods of ``children`` and return a function that waits for them.

        JAX dispatches the kernels asynchronously, so the caller can do its own host work (a search's
        legality masks) while the counting pass runs; calling the returned function blocks and gives what
        ``self(children, parents)`` gives.

        Args:
          children: the child indices (B of them).
          parents: the current parent indices of each child.

        Returns:
          A function of no arguments returning the `Neighbourhood` (numpy float64 arrays).

        Raises:
          ValueError: a parent set with too many configurations to count.

        Examples:
          >>> from gm.bn import Structure
          >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
          >>> scorer = NeighbourhoodScorer(data, Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ())))
          >>> wait = scorer.submit([2], [[0]])                          # counting runs from here
          >>> print(wait().current)                                     # s(C, {A})
          [-74.613]
        """
        n = len(self.cards)
        if all(len(p) == 0 for p in parents) and list(children) == list(range(n)):
            out = _empty_neighbourhoods(self.indicators, self.n_records, self.equivalent_sample_size,
                                        cards=self.cards, score=self.score)
            return lambda: Neighbourhood(*(np.asarray(a, np.float64) for a in jax.device_get(out)))
        b = len(children)
        if b > 2:  # one or two children per kernel call (a reversal changes two)
            parts = [self.submit(children[i:i + 2], parents[i:i + 2]) for i in range(0, b, 2)]
            return lambda: _concatenate([part() for part in parts])
        k = bucket(max(1, max(len(p) for p in parents)))
        pa = np.full((b, k), n, np.int32)
        kids = np.zeros((b,), np.int32)
        for i, (c, p) in enumerate(zip(children, parents)):
            kids[i] = c
            pa[i, :len(p)] = p
        q_max = max(math.prod(self.cards[i] for i in p) for p in parents)
        n_configs = 4 ** math.ceil(math.log(q_max, 4)) if q_max > 1 else 1
        if n_configs * max(self.cards) ** 2 * len(self.cards) > 1 << 27:
            raise ValueError(f"a parent set has {q_max} configurations: too many to count; lower max_indegree")
        out = _neighbourhood_kernel(self.indicators, self.n_records, self.padded, kids, pa,
                                    self.equivalent_sample_size, cards=self.cards, n_configs=n_configs,
                                    score=self.score)
        return lambda: Neighbourhood(*(np.asarray(a, np.float64)[:b] for a in jax.device_get(out)))


def _concatenate(parts: Sequence[Neighbourhood]) -> Neighbourhood:
    width = max(p.delete.shape[1] for p in parts)
    delete = np.concatenate([np.pad(p.delete, ((0, 0), (0, width - p.delete.shape[1]))) for p in parts])
    return Neighbourhood(np.concatenate([p.current for p in parts]), np.concatenate([p.add for p in parts]), delete)
