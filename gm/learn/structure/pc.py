"""The PC algorithm (Spirtes, Glymour & Scheines 2000) with chi-square and G conditional independence tests.

Skeleton (the order-independent "stable" variant, Colombo & Maathuis 2014; pgmpy's default): start from
the complete graph; at level l = 0, 1, ..., max_cond_vars, every edge u - v still present is tested against
the subsets S of size l of adj(u) - v, then of adj(v) - u (adjacencies frozen at the start of the level),
and removed with separating set S at the first test that accepts X_u independent of X_v given X_S.
Candidate sets are tried in index order; pgmpy tries them in the order of a Python set of names, which
changes with PYTHONHASHSEED, so where several sets separate a pair the two may keep different ones (the
skeleton is the same; an orientation can differ, and so can pgmpy's own from one process to the next).

Tests (pgmpy's ``chi_square`` and ``g_sq``, i.e. scipy's ``chi2_contingency`` per stratum): for each
configuration z of X_S seen in the data, the contingency table of the x and y values seen in that stratum
gives T_z = sum (O - E)^2 / E (chi-square) or 2 sum O log(O / E) (G), E = row sum x column sum / n_z,
with Yates' correction (|O - E| reduced by up to 1/2) when the stratum has one degree of freedom;
dof_z = (rows - 1)(columns - 1). p = P(chi2_{sum dof} > sum T_z); independent iff p >= significance_level.
Without conditioning variables a zero-dof table is independent (p = 1); with them, a zero total dof is
not (pgmpy's p is NaN there).

Batched: all tests of one round are counted in one compiled scatter-add (index ((z R) + x) R + y over the
distinct records, weighted by their counts); statistics and p-values are then float64 numpy/scipy over
the stacked tables. Each level runs in rounds (the first few candidate sets of every edge, then more), so
an edge stops being tested once separated, as in the sequential algorithm.

Orientation: unshielded colliders X -> Z <- Y for Z outside sepset(X, Y), then Meek's rules 1-3 to a fixed
point, then rules 1-4 (pgmpy's order, nodes in index order), giving the CPDAG; `pc` also returns a
consistent DAG extension (Dor & Tarsi 1992).

Examples:
    >>> from gm.bn import Structure
    >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
    >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
    >>> result = pc(data, variables)                           # A and B independent, dependent given C
    >>> sorted(result.skeleton), sorted(result.directed)       # the v-structure A -> C <- B
    ([(0, 2), (1, 2)], [(0, 2), (1, 2)])
"""

from __future__ import annotations

import collections
import functools
import itertools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
from scipy import stats

from gm.learn.structure.scores import (
    bucket,
    check_complete_data,
    names_of,
    unique_records,
    variable_cards,
)
from gm.learn.structure.search import PDAGEdges, make_structure

__all__ = ["PCResult", "pc", "ci_tests", "orient", "meek_rules", "dag_extension"]

_TESTS = ("chi_square", "g_sq")


class PCResult(NamedTuple):
    """The output of `pc`.

    Attributes:
      skeleton: undirected edges ``{(u, v)}`` with u < v.
      directed: the CPDAG's directed edges ``{(parent, child)}``.
      undirected: the CPDAG's undirected edges ``{(u, v)}`` with u < v.
      dag: a `gm.bn.Structure` consistent with the CPDAG (its parameters via `gm.learn.mle`).
      separating_sets: ``{(u, v): tuple}`` for every removed edge (u < v).
      n_tests: conditional independence tests computed.

    Examples:
      >>> from gm.bn import Structure
      >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
      >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
      >>> result = pc(data, variables)
      >>> result.separating_sets, result.dag.parents
      ({(0, 1): ()}, ((), (), (0, 1)))
    """

    skeleton: set
    directed: set
    undirected: set
    dag: object
    separating_sets: dict
    n_tests: int


@functools.partial(jax.jit, static_argnames=("cards", "n_configs", "chunk"))
def _contingency_kernel(rows, weights, xs, ys, zs, *, cards, n_configs, chunk):
    width = max(cards)
    card_arr = jnp.asarray(cards + (1,), jnp.int32)
    padded = jnp.concatenate([rows, jnp.zeros((rows.shape[0], 1), jnp.int32)], axis=1)
    weights = weights.astype(jnp.result_type(float))

    def one(test):
        x, y, z = test
        pc = card_arr[z]
        strides = jnp.flip(jnp.cumprod(jnp.flip(jnp.concatenate([pc[1:], jnp.ones((1,), jnp.int32)]))))
        idx = ((padded[:, z] @ strides) * width + padded[:, x]) * width + padded[:, y]
        table = jnp.zeros((n_configs * width * width,), weights.dtype).at[idx].add(weights)
        return table.reshape(n_configs, width, width)

    return jax.lax.map(one, (xs, ys, zs), batch_size=chunk)


def _statistics(tables: np.ndarray, test: str, conditional: np.ndarray) -> np.ndarray:
    """p-values (float64[F]) of tables ``float64[F, Q, R, R]`` (strata x x-values x y-values)."""
    rs = tables.sum(axis=3, keepdims=True)
    cs = tables.sum(axis=2, keepdims=True)
    nz = rs.sum(axis=2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.where(nz > 0, rs * cs / np.where(nz > 0, nz, 1.0), 0.0)
    n_rows = (rs[..., 0] > 0).sum(axis=2)  # [F, Q]
    n_cols = (cs[:, :, 0, :] > 0).sum(axis=2)
    dof = np.where(n_rows > 0, (n_rows - 1) * (n_cols - 1), 0)
    observed = tables
    yates = (dof == 1)[:, :, None, None]
    diff = expected - observed
    corrected = observed + np.sign(diff) * np.minimum(0.5, np.abs(diff))
    observed = np.where(yates, corrected, observed)
    ok = expected > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        if test == "chi_square":
            terms = np.where(ok, (observed - expected) ** 2 / np.where(ok, expected, 1.0), 0.0)
        else:
            safe = ok & (observed > 0)
            terms = np.where(safe, 2.0 * observed * np.log(np.where(safe, observed, 1.0) / np.where(ok, expected, 1.0)),
                             0.0)
    per_stratum = np.where(dof > 0, terms.sum(axis=(2, 3)), 0.0)
    statistic = per_stratum.sum(axis=1)
    total_dof = dof.sum(axis=1)
    with np.errstate(invalid="ignore"):
        p = np.where(total_dof > 0, 1.0 - stats.chi2.cdf(statistic, np.maximum(total_dof, 1)), np.nan)
    return np.where(conditional, p, np.where(total_dof > 0, stats.chi2.sf(statistic, np.maximum(total_dof, 1)), 1.0))


def ci_tests(data, tests, variables=None, *, test: str = "chi_square", _prepared=None) -> np.ndarray:
    """p-values of conditional independence tests ``[(x, y, (z, ...)), ...]`` in one batched count.

    Args:
      data: ``int32[N, n_vars]`` complete records; variables: a `Structure`/`BayesNet` or cardinalities.
      tests: triples of indices (x, y, conditioning set).
      test: ``"chi_square"`` (Pearson) or ``"g_sq"`` (G, log-likelihood ratio); see the module docstring.

    Returns:
      ``float64[F]`` p-values (NaN: conditional test with zero degrees of freedom, read as dependent):
      p = P(chi2_{sum_z dof_z} > sum_z T_z) over the strata z of the conditioning set.

    Raises:
      ValueError: an unknown ``test``.

    Examples:
      >>> from gm.bn import Structure
      >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
      >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
      >>> p = ci_tests(data, [(0, 1, ()), (0, 1, (2,))], variables)     # tests of A ⟂ B and of A ⟂ B | C
      >>> p.round(6).tolist()
      [1.0, 0.0]
    """
    if test not in _TESTS:
        raise ValueError(f"test must be one of {_TESTS}, got {test!r}")
    if _prepared is None:
        cards = variable_cards(variables, data)
        arr = check_complete_data(data, cards, names_of(variables))
        rows, counts = unique_records(arr, pad=True)
        _prepared = (cards, jnp.asarray(rows, jnp.int32), jnp.asarray(counts, jnp.int32))
    cards, rows, counts = _prepared
    n = len(cards)
    if not tests:
        return np.zeros((0,))
    k = bucket(max(1, max(len(z) for _, _, z in tests)))
    f = bucket(len(tests), 8)
    xs = np.zeros(f, np.int32)
    ys = np.zeros(f, np.int32)
    zs = np.full((f, k), n, np.int32)
    q_max = 1
    for t, (x, y, z) in enumerate(tests):
        xs[t], ys[t] = x, y
        zs[t, :len(z)] = z
        q_max = max(q_max, math.prod(cards[v] for v in z))
    n_configs = bucket(q_max)
    width = max(cards)
    chunk = max(1, min(f, (1 << 22) // max(1, rows.shape[0] * (k + 2)), (1 << 24) // (n_configs * width * width)))
    tables = _contingency_kernel(rows, counts, jnp.asarray(xs), jnp.asarray(ys), jnp.asarray(zs), cards=cards,
                                 n_configs=n_configs, chunk=chunk)
    tables = np.asarray(tables, np.float64)[:len(tests)]
    conditional = np.array([len(z) > 0 for _, _, z in tests])
    return _statistics(tables, test, conditional)


def _skeleton(prepared, n, test, alpha, max_cond_vars):
    adj = ~np.eye(n, dtype=bool)
    sepsets: dict = {}
    n_tests = 0
    level = 0
    while not np.all(adj.sum(axis=1) < level):
        frozen = adj.copy()
        queue = {}
        for u, v in zip(*np.nonzero(np.triu(frozen))):
            nu = [w for w in np.flatnonzero(frozen[u]) if w != v]
            nv = [w for w in np.flatnonzero(frozen[v]) if w != u]
            cands = itertools.chain(itertools.combinations(nu, level), itertools.combinations(nv, level))
            queue[(int(u), int(v))] = cands
        per_round = 4
        while queue:
            batch, owners = [], []
            for edge, cands in queue.items():
                for z in itertools.islice(cands, per_round):
                    batch.append((edge[0], edge[1], tuple(int(w) for w in z)))
                    owners.append(edge)
            if not batch:
                break
            p = ci_tests(None, batch, test=test, _prepared=prepared)
            n_tests += len(batch)
            done = set()
            for (x, y, z), edge, pv in zip(batch, owners, p):
                if edge not in done and pv >= alpha:  # NaN compares False: dependent
                    done.add(edge)
                    sepsets[edge] = z
                    adj[edge[0], edge[1]] = adj[edge[1], edge[0]] = False
            tested = collections.Counter(owners)
            exhausted = {edge for edge in queue if tested[edge] < per_round}
            for edge in done | exhausted:
                queue.pop(edge, None)
            per_round *= 4
        if level >= max_cond_vars:
            break
        level += 1
    return adj, sepsets, n_tests


class _PDAG:
    def __init__(self, n, directed, undirected):
        self.n = n
        self.d = set(directed)
        self.u = {tuple(sorted(e)) for e in undirected}

    def parents(self, y):
        return {a for a, b in self.d if b == y}

    def children(self, y):
        return {b for a, b in self.d if a == y}

    def und(self, y):
        return {a if b == y else b for a, b in self.u if y in (a, b)}

    def adjacent(self, a, b):
        return (a, b) in self.d or (b, a) in self.d or tuple(sorted((a, b))) in self.u

    def orient(self, a, b):
        self.u.discard(tuple(sorted((a, b))))
        self.d.add((a, b))

    def has_und(self, a, b):
        return tuple(sorted((a, b))) in self.u

    def directed_path(self, a, b):
        g = nx.DiGraph(list(self.d))
        g.add_nodes_from(range(self.n))
        return nx.has_path(g, a, b)


def meek_rules(num_vars: int, directed, undirected, *, rule4: bool = True) -> PDAGEdges:
    """Meek's orientation rules 1-3 to a fixed point, then (``rule4``) 1-4: `PDAGEdges`.

    R1: x -> y - z, x and z not adjacent => y -> z; R2: x -> y -> z, x - z => x -> z; R3 and R4 orient
    the remaining edges that every consistent DAG orients the same way.

    Args:
      num_vars: the number of variables.
      directed: ``{(parent, child)}`` edges already oriented.
      undirected: ``{(u, v)}`` edges, u < v.
      rule4: also apply rule 4 (after 1-3 reach a fixed point).

    Returns:
      `PDAGEdges` ``(directed, undirected)``.

    Examples:
      >>> meek_rules(3, {(0, 1)}, {(1, 2)})                     # R1 orients 1 -> 2
      PDAGEdges(directed={(0, 1), (1, 2)}, undirected=set())
    """
    g = _PDAG(num_vars, directed, undirected)
    for use4 in ((False, True) if rule4 else (False,)):
        changed = True
        while changed:
            changed = False
            for y in range(num_vars):  # R1: x -> y - z, x not adj z => y -> z
                for x in sorted(g.parents(y)):
                    for z in sorted(g.und(y)):
                        new_collider = any(w != y and not g.adjacent(y, w) for w in g.parents(z))
                        if not g.adjacent(x, z) and not new_collider and not g.directed_path(z, y):
                            g.orient(y, z)
                            changed = True
            for z in range(num_vars):  # R2: x -> z -> y, x - y => x -> y
                for x in sorted(g.parents(z)):
                    for y in sorted(g.children(z)):
                        if g.has_und(x, y):
                            g.orient(x, y)
                            changed = True
            for x in range(num_vars):  # R3: x - {y, z, w}, y -> w <- z => x -> w
                nbs = sorted(g.und(x))
                if len(nbs) < 3:
                    continue
                for y, z, w in itertools.permutations(nbs, 3):
                    if (y, w) in g.d and (z, w) in g.d:
                        g.orient(x, w)
                        changed = True
                        break
            if use4:  # R4: d -> c -> b, a - {b, c, d}, b not adj d => a -> b
                for c in range(num_vars):
                    for b in sorted(g.children(c)):
                        for d in sorted(g.parents(c)):
                            if b == d or g.adjacent(b, d):
                                continue
                            near_c = g.parents(c) | g.children(c) | g.und(c)
                            for a in sorted(g.und(b) & near_c & g.und(d)):
                                g.orient(a, b)
                                changed = True
                                break
    return PDAGEdges(g.d, g.u)


def dag_extension(num_vars: int, directed, undirected) -> list[list[int]]:
    """Parent lists of a DAG with the CPDAG's skeleton and v-structures (Dor & Tarsi); where none exists,
    the remaining undirected edges are oriented along a topological order of the directed part.

    Args:
      num_vars: the number of variables.
      directed: ``{(parent, child)}`` edges of the CPDAG.
      undirected: ``{(u, v)}`` edges, u < v.

    Returns:
      One sorted list of parent indices per variable.

    Examples:
      >>> dag_extension(3, set(), {(0, 1), (1, 2)})              # the chain, oriented without a new collider
      [[1], [2], []]
    """
    g = _PDAG(num_vars, directed, undirected)
    parents = [set() for _ in range(num_vars)]
    for a, b in g.d:
        parents[b].add(a)
    alive = set(range(num_vars))
    while alive:
        for x in sorted(alive):
            und = {y for y in g.und(x) if y in alive}
            nbrs = {y for y in (g.parents(x) | g.und(x)) if y in alive}
            sink = not {c for c in g.children(x) if c in alive}
            if sink and all(g.adjacent(y, z) for y in und for z in nbrs if y != z):
                for y in und:
                    parents[x].add(y)
                    g.u.discard(tuple(sorted((x, y))))
                alive.discard(x)
                break
        else:
            graph = nx.DiGraph([(a, b) for b, ps in enumerate(parents) for a in ps])
            graph.add_nodes_from(range(num_vars))
            rank = {v: i for i, v in enumerate(nx.topological_sort(graph))}
            for a, b in list(g.u):
                if a in alive or b in alive:
                    lo, hi = (a, b) if rank[a] < rank[b] else (b, a)
                    parents[hi].add(lo)
            break
    return [sorted(p) for p in parents]


def orient(num_vars: int, skeleton, separating_sets) -> PDAGEdges:
    """The CPDAG of a skeleton: unshielded colliders from the separating sets, then `meek_rules`.

    Args:
      num_vars: the number of variables.
      skeleton: undirected edges ``{(u, v)}``.
      separating_sets: ``{(u, v): tuple}`` (u < v) for every non-adjacent pair.

    Returns:
      `PDAGEdges` ``(directed, undirected)``. Where two colliders disagree about an edge, both of its
      directions are dropped and the edge disappears (as in pgmpy).

    Examples:
      >>> orient(3, {(0, 2), (1, 2)}, {(0, 1): ()})                # 2 not in sepset(0, 1): a collider
      PDAGEdges(directed={(0, 2), (1, 2)}, undirected=set())
    """
    adj = np.zeros((num_vars, num_vars), bool)
    for a, b in skeleton:
        adj[a, b] = adj[b, a] = True
    arrows = {(a, b) for a, b in skeleton} | {(b, a) for a, b in skeleton}
    for x, y in itertools.permutations(range(num_vars), 2):
        if adj[x, y]:
            continue
        sep = separating_sets[(min(x, y), max(x, y))]
        for z in np.flatnonzero(adj[x] & adj[y]):
            if z not in sep:
                arrows.discard((int(z), x))
                arrows.discard((int(z), y))
    directed = {(a, b) for a, b in arrows if (b, a) not in arrows}
    undirected = {(a, b) for a, b in arrows if (b, a) in arrows and a < b}
    return meek_rules(num_vars, directed, undirected)


def pc(data, variables=None, *, test: str = "chi_square", significance_level: float = 0.01,
       max_cond_vars: int = 5) -> PCResult:
    """PC structure learning: skeleton by batched conditional independence tests, then the CPDAG.

    Args:
      data: ``int32[N, n_vars]`` complete records.
      variables: a `Structure`/`BayesNet` or cardinalities.
      test: ``"chi_square"`` or ``"g_sq"``.
      significance_level: alpha (independent iff p >= alpha).
      max_cond_vars: the largest conditioning set tested.

    Returns:
      `PCResult` (skeleton, CPDAG edges, a consistent DAG as a `Structure`, separating sets).

    Raises:
      ValueError: an unknown ``test``, a level outside (0, 1), or incomplete data.

    Examples:
      >>> from gm.bn import Structure
      >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
      >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
      >>> result = pc(data, variables, test="g_sq", significance_level=0.05)
      >>> result.dag.parents, result.n_tests
      (((), (), (0, 1)), 8)
    """
    if test not in _TESTS:
        raise ValueError(f"test must be one of {_TESTS}, got {test!r}")
    if not 0 < significance_level < 1:
        raise ValueError(f"significance_level must be in (0, 1), got {significance_level}")
    cards = variable_cards(variables, data)
    arr = check_complete_data(data, cards, names_of(variables))
    rows, counts = unique_records(arr, pad=True)
    prepared = (cards, jnp.asarray(rows, jnp.int32), jnp.asarray(counts, jnp.int32))
    n = len(cards)
    adj, sepsets, n_tests = _skeleton(prepared, n, test, significance_level, max_cond_vars)
    skeleton = {(int(a), int(b)) for a, b in zip(*np.nonzero(np.triu(adj)))}
    directed, undirected = orient(n, skeleton, sepsets)
    parents = dag_extension(n, directed, undirected)
    dag = make_structure(variables if variables is not None else cards, parents, n)
    return PCResult(skeleton, directed, undirected, dag, sepsets, n_tests)
