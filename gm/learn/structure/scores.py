"""Decomposable structure scores of discrete Bayesian networks, many families in one compiled call.

A score is decomposable: score(G) = sum_i s(X_i, Pa_i), one *local* (family) score per variable. Every
local score here is a function of the family counts N[u, x] (records with parent configuration u and
child state x; N_u = sum_x N[u, x]), r = card(X_i), q = prod of the parent cards, n = records:

* ``"log_likelihood"``  LL = sum_ux N[u, x] log(N[u, x] / N_u);
* ``"bic"`` (MDL)       LL - (log n / 2) q (r - 1);
* ``"aic"``             LL - q (r - 1);
* ``"k2"``              sum_u [lgamma(r) - lgamma(N_u + r)] + sum_ux lgamma(N[u, x] + 1)  (Cooper & Herskovits);
* ``"bdeu"``            sum_u [lgamma(a) - lgamma(N_u + a)] + sum_ux [lgamma(N[u, x] + b) - lgamma(b)],
  a = ess / q, b = ess / (q r)  (Heckerman, Geiger & Chickering 1995);
* ``"bds"``             BDeu with q replaced by q+, the number of parent configurations seen in the data,
  and the sum over those only (Scutari 2016).

These are pgmpy's ``LogLikeliHood``, ``BIC``, ``AIC``, ``K2`` and ``BDeu`` local scores (same values; q
counts every parent configuration, seen or not). pgmpy's ``BDs`` differs: it keeps b = ess / (q r) while
a = ess / q+, so its per-row pseudo-counts do not sum to a; ours follows Scutari's definition.

How it is computed. For a family with parents (p_1..p_k) and child c, each record's mixed-radix index
``u * R + x`` (u = sum_j x_pj * prod_{l > j} card(p_l), the CPT's row-major parent order; R = the largest
cardinality) is scattered into a zero table: one scatter-add per family, no loop over records. Families
are batched with padded parent lists (the padding points at a constant column of cardinality 1), so one
compiled kernel scores thousands of families; shapes are rounded up to powers of two so that a local
search re-uses a handful of compiled programs.

Missing values. Scores need complete records: eager calls raise ValueError naming the first column with a
-1. Inside ``jax.jit`` (data traced) a family whose columns hold a negative value scores NaN.

Length: under 400 lines of code (the formulas, the batched counting kernel, the cache and the helpers every
search shares); the rest is docstrings with runnable examples.

Examples:
    >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
    >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
    >>> print(family_scores(data, "C", [[], ["A"], ["A", "B"]], variables=variables))   # BIC: A and B both help
    [-115.1161  -74.613   -10.5966]
    >>> round(network_score(data, [[], [], [0, 1]]), 2)
    -293.15
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from gm.bn.network import BayesNet, Structure

__all__ = ["SCORES", "family_scores", "scores_from_counts", "network_score", "ScoreCache", "check_complete_data"]

SCORES = ("bic", "aic", "log_likelihood", "k2", "bdeu", "bds")
_ALIASES = {"mdl": "bic", "ll": "log_likelihood", "bic-d": "bic", "aic-d": "aic"}
_MAX_INDEX_ELEMENTS = 1 << 22  # records x families per chunk of the batched counting


def canonical_score(score: str) -> str:
    """The canonical name of ``score`` (``"mdl"`` -> ``"bic"``); ValueError naming the known scores.

    Args:
      score: a name of `SCORES` or an alias (``"mdl"``, ``"ll"``, ``"bic-d"``, ``"aic-d"``), any case.

    Returns:
      One of `SCORES`.

    Raises:
      ValueError: an unknown score, listing the known ones.

    Examples:
      >>> canonical_score("MDL"), canonical_score("ll")
      ('bic', 'log_likelihood')
    """
    name = _ALIASES.get(str(score).lower(), str(score).lower())
    if name not in SCORES:
        raise ValueError(f"score must be one of {SCORES} (or 'mdl', 'll'), got {score!r}")
    return name


def variable_cards(variables, data=None) -> tuple[int, ...]:
    """Cardinalities from a `BayesNet`, a `Structure`, a sequence of ints, or (None) the data's maxima + 1.

    Args:
      variables: a `gm.bn.BayesNet`, a `gm.bn.Structure`, a sequence of cardinalities, or None.
      data: ``int32[N, n_vars]``, used when ``variables`` is None (as pgmpy infers states).

    Returns:
      ``tuple[int, ...]``, one cardinality per variable.

    Raises:
      ValueError: neither ``variables`` nor ``data``, or a cardinality below 1.

    Examples:
      >>> variable_cards([2, 3]), variable_cards(None, np.array([[0, 2], [1, 0]]))
      ((2, 3), (2, 3))
    """
    if isinstance(variables, BayesNet):
        variables = variables.structure
    if isinstance(variables, Structure):
        return tuple(variables.cards)
    if variables is None:
        if data is None:
            raise ValueError("variables (a Structure, BayesNet or cardinalities) is needed without data")
        arr = np.asarray(data)
        return tuple(int(c) for c in np.maximum(arr.max(axis=0, initial=0) + 1, 1))
    cards = tuple(int(c) for c in variables)
    if any(c < 1 for c in cards):
        raise ValueError(f"cardinalities must be >= 1, got {cards}")
    return cards


def check_complete_data(data, cards: Sequence[int], names: Sequence[str] | None = None) -> jax.Array:
    """``data`` as ``int32[N, n_vars]``; ValueError for a wrong shape, a -1 or a state out of range.

    Traced data is only shape-checked (see the module docstring for what jit returns then).

    Args:
      data: ``int[N, n_vars]`` records.
      cards: the cardinality of each column.
      names: the variables' names, for the error messages (default: column numbers).

    Returns:
      ``int32[N, n_vars]``.

    Raises:
      ValueError: a wrong shape, no records, a missing value (-1) or a value that is no state (below -1
        or past the cardinality; the message names the record, the column and the value).
      TypeError: a non-integer dtype.

    Examples:
      >>> check_complete_data(jnp.array([[0, 1], [1, 1]]), (2, 2)).dtype
      dtype('int32')
      >>> check_complete_data(jnp.array([[0, -1]]), (2, 2), ["A", "B"])
      Traceback (most recent call last):
      ...
      ValueError: data: variable 'B' has missing values (-1) in 1 records; structure scores need complete records (drop them, or impute with gm.learn.em)
    """
    if isinstance(data, jax.core.Tracer):
        _check_shape(data.shape, data.dtype, len(cards))
        return data.astype(jnp.int32)
    return jnp.asarray(complete_records(data, cards, names))


def _check_shape(shape, dtype, n: int):
    if len(shape) != 2 or shape[1] != n:
        raise ValueError(f"data must have shape (N, {n}) (one column per variable), got {tuple(shape)}")
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"data must be an integer array of state indices, got dtype {dtype}")
    if shape[0] == 0:
        raise ValueError("data has no records")


def complete_records(data, cards: Sequence[int], names: Sequence[str] | None = None) -> np.ndarray:
    """`check_complete_data` on the host: the checked records as a numpy ``int32[N, n_vars]`` array.

    Args:
      data: ``int[N, n_vars]`` records (numpy or a concrete jax array).
      cards: the cardinality of each column.
      names: the variables' names, for the error messages (default: column numbers).

    Returns:
      ``np.int32[N, n_vars]`` (no copy when ``data`` already is one).

    Raises:
      ValueError: a wrong shape, no records, a missing value (-1) or a state past the cardinality.
      TypeError: a non-integer dtype.

    Examples:
      >>> complete_records(np.array([[0, 2], [1, 0]]), (2, 3)).dtype
      dtype('int32')
    """
    host = np.asarray(data)
    n = len(cards)
    _check_shape(host.shape, host.dtype, n)
    low = host.min(axis=0)
    high = host.max(axis=0)
    for j in range(n):
        label = repr(names[j]) if names is not None else f"column {j}"
        if low[j] < -1 or high[j] >= cards[j]:  # the first record at fault, its value
            r = int(np.flatnonzero((host[:, j] < -1) | (host[:, j] >= cards[j]))[0])
            raise ValueError(f"data[{r}, {j}] = {int(host[r, j])}: variable {label} has no such state (cardinality "
                             f"{cards[j]}; record {r})")
        if low[j] < 0:
            k = int(np.sum(host[:, j] < 0))
            raise ValueError(
                f"data: variable {label} has missing values (-1) in {k} records; structure scores need "
                "complete records (drop them, or impute with gm.learn.em)"
            )
    return np.ascontiguousarray(host, np.int32)


def _xlogx(x):
    return jnp.where(x > 0, x * jnp.log(jnp.where(x > 0, x, 1.0)), 0.0)


def scores_from_counts(counts, n_parent_configs, child_cards, n_records, *, score: str = "bic",
                       equivalent_sample_size: float = 10.0):
    """Local scores from family count tables.

    Args:
      counts: ``f32[F, Q, R]``, N[u, x] of each family, zero-padded beyond its q rows and r columns.
      n_parent_configs: ``f32[F]``, q of each family (every configuration, seen or not).
      child_cards: ``f32[F]``, r of each family.
      n_records: the number of records n (for BIC's penalty).
      score, equivalent_sample_size: see the module docstring.

    Returns:
      ``f32[F]`` local scores (zero-padded cells contribute nothing to any score).

    Raises:
      ValueError: an unknown score.

    Examples:
      >>> counts = jnp.array([[[30.0, 10.0], [10.0, 30.0]]])      # one family: N[u, x], q = r = 2
      >>> print(scores_from_counts(counts, jnp.array([2.0]), jnp.array([2.0]), 80, score="log_likelihood"))
      [-44.9868]
    """
    score = canonical_score(score)
    counts = jnp.asarray(counts)
    q = jnp.asarray(n_parent_configs, counts.dtype)
    r = jnp.asarray(child_cards, counts.dtype)
    n_u = jnp.sum(counts, axis=-1)
    if score in ("log_likelihood", "bic", "aic"):
        ll = jnp.sum(_xlogx(counts), axis=(1, 2)) - jnp.sum(_xlogx(n_u), axis=1)
        if score == "log_likelihood":
            return ll
        penalty = q * (r - 1.0)
        return ll - (0.5 * jnp.log(jnp.asarray(n_records, counts.dtype)) * penalty if score == "bic" else penalty)
    if score == "k2":
        rows = gammaln(r)[:, None] - gammaln(n_u + r[:, None])
        return jnp.sum(rows, axis=1) + jnp.sum(gammaln(counts + 1.0), axis=(1, 2))
    ess = jnp.asarray(equivalent_sample_size, counts.dtype)
    if score == "bds":
        q = jnp.maximum(jnp.sum(n_u > 0, axis=1).astype(counts.dtype), 1.0)
    a = (ess / q)[:, None]
    b = (ess / (q * r))[:, None, None]
    rows = gammaln(a) - gammaln(n_u + a)
    return jnp.sum(rows, axis=1) + jnp.sum(gammaln(counts + b) - gammaln(b), axis=(1, 2))


@functools.partial(jax.jit, static_argnames=("cards", "n_configs", "score", "chunk"))
def _scores_kernel(data, weights, n_records, children, parents, equivalent_sample_size, *, cards, n_configs, score,
                   chunk):
    rows = data.shape[0]
    width = max(cards)
    card_arr = jnp.asarray(cards + (1,), jnp.int32)  # index len(cards): the padding column, cardinality 1
    padded = jnp.concatenate([data, jnp.zeros((rows, 1), jnp.int32)], axis=1)
    dtype = jnp.result_type(float)
    weights = weights.astype(dtype)

    def one(family):
        child, pa = family
        pc = card_arr[pa]  # int32[K]
        strides = jnp.flip(jnp.cumprod(jnp.flip(jnp.concatenate([pc[1:], jnp.ones((1,), jnp.int32)]))))
        cols = padded[:, pa]  # int32[N, K]
        x = padded[:, child]
        ok = jnp.all(cols >= 0, axis=1) & (x >= 0)
        idx = jnp.where(ok, (cols @ strides) * width + x, n_configs * width)
        table = jnp.zeros((n_configs * width,), dtype).at[idx].add(weights, mode="drop")
        return table.reshape(n_configs, width), jnp.prod(pc.astype(dtype)), card_arr[child], ~jnp.all(ok)

    counts, q, r, bad = jax.lax.map(one, (children, parents), batch_size=chunk)
    s = scores_from_counts(counts, q, r.astype(dtype), n_records, score=score,
                           equivalent_sample_size=equivalent_sample_size)
    return jnp.where(bad, jnp.nan, s)


def bucket(k: int, floor: int = 1) -> int:
    """``k`` rounded up to a power of two (at least ``floor``): padded shapes re-use compiled programs.

    Args:
      k: a size.
      floor: the smallest size returned.

    Returns:
      ``max(floor, 2 ** ceil(log2(k)))``.

    Examples:
      >>> bucket(5), bucket(8), bucket(3, floor=8)
      (8, 8, 8)
    """
    return max(floor, 1 << max(0, int(k) - 1).bit_length())


def _batched_scores(data, cards: tuple[int, ...], families: Sequence[tuple[int, tuple[int, ...]]], score: str,
                    equivalent_sample_size: float, weights=None, n_records=None) -> jax.Array:
    """Scores of ``families`` [(child, parents), ...] in one kernel call (shapes bucketed); ``f32[F]``.

    ``weights``: optional per-row counts (rows = distinct records, see `unique_records`), summing to
    ``n_records``."""
    if weights is None:
        weights = jnp.ones((data.shape[0],), jnp.int32)
        n_records = data.shape[0]
    n = len(cards)
    f = len(families)
    k = max((len(pa) for _, pa in families), default=0)
    width_k = bucket(max(k, 1))
    width_f = bucket(f, 8)
    children = np.zeros((width_f,), np.int32)
    parents = np.full((width_f, width_k), n, np.int32)
    q_max = 1
    for j, (child, pa) in enumerate(families):
        children[j] = child
        parents[j, :len(pa)] = pa
        q_max = max(q_max, math.prod(cards[p] for p in pa))
    n_configs = bucket(q_max)
    if n_configs * max(cards) > 1 << 26:
        raise ValueError(
            f"a family has {q_max} parent configurations; counting it needs a table of {q_max * max(cards):,} "
            "cells (limit 2^26): lower max_indegree"
        )
    chunk = max(1, min(width_f, _MAX_INDEX_ELEMENTS // max(1, data.shape[0] * (width_k + 1))))
    out = _scores_kernel(data, weights, n_records, jnp.asarray(children), jnp.asarray(parents), equivalent_sample_size,
                         cards=cards, n_configs=n_configs, score=score, chunk=chunk)
    return out[:f]


def names_of(variables) -> tuple[str, ...] | None:
    """The variable names of a `BayesNet` or `Structure` (None for plain cardinalities).

    Args:
      variables: a `gm.bn.BayesNet`, a `gm.bn.Structure` or cardinalities.

    Returns:
      ``tuple[str, ...]`` or None.

    Examples:
      >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
      >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
      >>> names_of(variables), names_of([2, 2])
      (('A', 'B', 'C'), None)
    """
    if isinstance(variables, BayesNet):
        return variables.names
    if isinstance(variables, Structure):
        return variables.names
    return None


def resolve_variable(variables, v) -> int:
    """The column index of variable ``v`` (a name or an index), ValueError naming it if unknown.

    Args:
      variables: a `gm.bn.BayesNet`, a `gm.bn.Structure` or cardinalities (then ``v`` must be an index).
      v: a name or an index.

    Returns:
      The column index, an ``int``.

    Raises:
      ValueError: an unknown name, naming it and the known ones.

    Examples:
      >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
      >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
      >>> resolve_variable(variables, "C"), resolve_variable(variables, 1)
      (2, 1)
    """
    names = names_of(variables)
    if isinstance(v, str):
        if names is None or v not in names:
            raise ValueError(f"unknown variable {v!r}" + ("" if names is None else f"; variables are {list(names)}"))
        return names.index(v)
    return int(v)


def _check_families(families, n: int):
    out = []
    for child, pa in families:
        if not 0 <= child < n:
            raise ValueError(f"child index {child} out of range for {n} variables")
        pa = tuple(int(p) for p in pa)
        for p in pa:
            if not 0 <= p < n:
                raise ValueError(f"parent index {p} of child {child} out of range for {n} variables")
            if p == child:
                raise ValueError(f"variable {child} cannot be its own parent")
        if len(set(pa)) != len(pa):
            raise ValueError(f"parent set {pa} of child {child} has a duplicate")
        out.append((int(child), pa))
    return out


def family_scores(data, child, candidate_parent_sets, *, variables=None, score: str = "bic",
                  equivalent_sample_size: float = 10.0) -> jax.Array:
    """Local scores s(child, parents) of many candidate families in one compiled call.

    Args:
      data: ``int32[N, n_vars]`` complete records (state indices; -1 raises ValueError).
      child: a variable (index, or name when ``variables`` has names), or one per candidate set.
      candidate_parent_sets: ``F`` parent sets (sequences of indices or names).
      variables: a `gm.bn.Structure` / `BayesNet` (names and cardinalities; its edges are ignored) or a
        sequence of cardinalities; None: each column's maximum + 1 (as pgmpy infers states).
      score: one of `SCORES` (``"mdl"`` = ``"bic"``); see the module docstring for the formulas.
      equivalent_sample_size: the ESS of BDeu and BDs (pgmpy's default, 10).

    Returns:
      ``f32[F]`` local scores, float64 under ``jax.enable_x64``.

    Raises:
      ValueError: incomplete data, an unknown variable, a family with a repeated or self parent.

    Examples:
      >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
      >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
      >>> print(family_scores(data, "C", [[], ["A"], ["A", "B"]], variables=variables, score="bdeu"))
      [-115.2438  -79.5837  -18.1639]
    """
    cards = variable_cards(variables, None if isinstance(data, jax.core.Tracer) else data)
    arr = check_complete_data(data, cards, names_of(variables))
    sets = [tuple(resolve_variable(variables, p) for p in pa) for pa in candidate_parent_sets]
    if isinstance(child, (str, int, np.integer)):
        kids = [resolve_variable(variables, child)] * len(sets)
    else:
        kids = [resolve_variable(variables, c) for c in child]
        if len(kids) != len(sets):
            raise ValueError(f"child has {len(kids)} entries but there are {len(sets)} candidate parent sets")
    families = _check_families(list(zip(kids, sets)), len(cards))
    if not families:
        return jnp.zeros((0,), jnp.result_type(float))
    return _batched_scores(arr, cards, families, canonical_score(score), float(equivalent_sample_size))


def network_score(data, structure, *, score: str = "bic", equivalent_sample_size: float = 10.0,
                  variables=None) -> float:
    """Total score sum_i s(X_i, Pa_i) of a network (a `Structure`, `BayesNet`, or parent-index lists).

    Args:
      data: ``int32[N, n_vars]`` complete records.
      structure: a `gm.bn.Structure`, a `gm.bn.BayesNet` or parent-index lists.
      score: one of `SCORES`.
      equivalent_sample_size: the ESS of BDeu and BDs.
      variables: names and cardinalities when ``structure`` is parent lists (default: the data's).

    Returns:
      The total score, a float (the float64 sum of float32 local scores).

    Examples:
      >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
      >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
      >>> round(network_score(data, [[], [], [0, 1]]), 2), round(network_score(data, [[], [], []]), 2)
      (-293.15, -397.67)
    """
    if isinstance(structure, BayesNet):
        structure = structure.structure
    parents = structure.parents if isinstance(structure, Structure) else structure
    var = variables if variables is not None else (structure if isinstance(structure, Structure) else None)
    s = family_scores(data, list(range(len(parents))), [tuple(p) for p in parents], variables=var, score=score,
                      equivalent_sample_size=equivalent_sample_size)
    return float(np.sum(np.asarray(s, np.float64)))


class ScoreCache:
    """Memoised local scores for local search: each (child, parent set) is computed once, and the misses of
    a request are computed together in one batched kernel call.

    Attributes:
      hits: how many requested families were found in the cache.
      misses: how many were computed.

    Examples:
      >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
      >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
      >>> cache = ScoreCache(data, variables)
      >>> print(cache.many([(2, (0, 1)), (2, (1, 0)), (2, ())]))    # the parent order does not matter
      [ -10.5966  -10.5966 -115.1162]
      >>> cache.hits, cache.misses, len(cache)
      (1, 2, 2)
    """

    def __init__(self, data, variables=None, *, score: str = "bic", equivalent_sample_size: float = 10.0):
        self.cards = variable_cards(variables, data)
        self.data = check_complete_data(data, self.cards, names_of(variables))
        self.score = canonical_score(score)
        self.equivalent_sample_size = float(equivalent_sample_size)
        self.n_records = int(self.data.shape[0])
        rows, counts = unique_records(self.data, pad=True)
        self.rows, self.weights = jnp.asarray(rows, jnp.int32), jnp.asarray(counts, jnp.int32)
        self._table: dict[tuple[int, frozenset], float] = {}
        self.hits = 0
        self.misses = 0

    def many(self, families: Sequence[tuple[int, Sequence[int]]]) -> np.ndarray:
        """``float64[F]`` local scores of ``[(child, parents), ...]`` (parent order does not matter).

        Args:
          families: ``(child index, parent indices)`` pairs.

        Returns:
          ``float64[F]``; the misses are scored together, one kernel call per table size.

        Examples:
          >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
          >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
          >>> print(ScoreCache(data, variables, score="k2").many([(0, ()), (2, (0,))]))
          [-141.0566  -76.0141]
        """
        keys = [(int(c), frozenset(int(p) for p in pa)) for c, pa in families]
        todo: dict[tuple[int, frozenset], None] = {}
        for key in keys:
            if key not in self._table and key not in todo:
                todo[key] = None
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        groups: dict[int, list] = {}  # by table size: a family with few parents is not padded to the largest
        for key in todo:
            groups.setdefault(bucket(math.prod(self.cards[p] for p in key[1])), []).append(key)
        for keys_of_size in groups.values():
            fams = [(c, tuple(sorted(pa))) for c, pa in keys_of_size]
            values = np.asarray(_batched_scores(self.rows, self.cards, fams, self.score, self.equivalent_sample_size,
                                                self.weights, self.n_records), np.float64)
            self._table.update(zip(keys_of_size, values.tolist()))
        return np.array([self._table[key] for key in keys], np.float64)

    def __call__(self, child: int, parents: Sequence[int]) -> float:
        return float(self.many([(child, parents)])[0])

    def __len__(self) -> int:
        return len(self._table)


def as_variables(variables: Any, n: int):
    """Names and states for ``n`` variables from a `Structure`/`BayesNet` or cardinalities.

    Args:
      variables: a `gm.bn.Structure`, a `gm.bn.BayesNet` or a sequence of ``n`` cardinalities.
      n: the number of variables.

    Returns:
      ``(names, states)``; cardinalities give names ``X0, X1, ...`` and states ``"0", "1", ...``.

    Raises:
      ValueError: a number of cardinalities other than ``n``.

    Examples:
      >>> as_variables([2, 3], 2)
      (('X0', 'X1'), (('0', '1'), ('0', '1', '2')))
    """
    if isinstance(variables, BayesNet):
        variables = variables.structure
    if isinstance(variables, Structure):
        return variables.names, variables.states
    cards = variable_cards(variables)
    if len(cards) != n:
        raise ValueError(f"{len(cards)} cardinalities for {n} variables")
    return tuple(f"X{i}" for i in range(n)), tuple(tuple(str(s) for s in range(c)) for c in cards)


class DistinctRecords(NamedTuple):
    """Distinct rows ``int[M, n_vars]`` of a data set and how often each occurs, ``int[M]``.

    Attributes:
      rows: ``int[M, n_vars]``, the distinct records (plus zero-count padding rows when asked for).
      counts: ``int[M]``, how many records equal each row.

    Examples:
      >>> rows, counts = unique_records(np.array([[1, 0], [0, 1], [1, 0]]))
      >>> rows.tolist(), counts.tolist()
      ([[0, 1], [1, 0]], [1, 2])
    """

    rows: np.ndarray
    counts: np.ndarray


def unique_records(data, *, pad: bool = False) -> DistinctRecords:
    """Distinct rows of ``int[N, n_vars]`` and their counts, in the lexicographic order of the rows;
    ``pad``: append all-zero rows of count 0 up to the next of 16 sizes per octave (at most 1/16 more).

    Every count table is the same whether it is built from the N records or from the distinct rows
    weighted by their counts; on the bnlearn networks the distinct rows are 1.5x to 10x fewer. Each row is
    packed into one int64 code (mixed radix, the column maxima + 1) and the codes are sorted once; rows
    too wide for 62 bits, or with negative states, fall back to ``np.unique`` over the rows.

    Args:
      data: ``int[N, n_vars]`` records.
      pad: append zero-count rows up to a size bucket.

    Returns:
      `DistinctRecords` ``(rows int[M, n_vars], counts int[M])``, sum(counts) = N.

    Examples:
      >>> int(unique_records(np.array([[0, 1], [1, 0], [0, 1]])).counts.sum())
      3
    """
    host = np.asarray(data)
    radix = host.max(axis=0, initial=0).astype(np.int64) + 1 if host.size else np.ones(host.shape[1:], np.int64)
    if host.size and host.min() >= 0 and float(np.sum(np.log2(radix))) < 62:
        strides = np.concatenate([np.cumprod(radix[::-1])[::-1][1:], [1]]).astype(np.int64)
        # one row-major product, not a pass per column (alarm, N = 100,000: 6 ms against 25 ms), and a sort
        # of the codes with the boundaries found by comparison (np.unique's return_index sorts again)
        code = host.astype(np.int64) @ strides
        order = np.argsort(code)
        code = code[order]
        first = np.flatnonzero(np.concatenate([[True], code[1:] != code[:-1]]))
        counts = np.diff(np.append(first, len(code)))
        rows = host[order[first]]
    else:
        rows, counts = np.unique(host, axis=0, return_counts=True)
    if pad:  # zero-count rows up to a size bucket, so that data sets of similar size share compiled kernels
        size = len(rows)
        step = 1 << max(0, size.bit_length() - 4)
        target = -(-size // step) * step
        rows = np.concatenate([rows, np.zeros((target - size, rows.shape[1]), rows.dtype)])
        counts = np.concatenate([counts, np.zeros(target - size, counts.dtype)])
    return DistinctRecords(rows, counts)
