"""What every structure search shares: the result type, the variables' names, edge lists, graph helpers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import networkx as nx
import numpy as np

from gm.bn.network import BayesNet, Structure
from gm.learn.structure.scores import as_variables

__all__ = ["PDAGEdges", "SearchResult", "make_structure", "edge_indices", "structure_edges", "transitive_closure", "dag_to_cpdag",
           "shd"]


class PDAGEdges(NamedTuple):
    """A partially directed graph: ``directed`` edges ``(parent, child)`` and ``undirected`` edges
    ``(u, v)`` with u < v (sets of int pairs).

    Attributes:
      directed: ``{(parent, child)}`` of variable indices.
      undirected: ``{(u, v)}`` with u < v.

    Examples:
      >>> directed, undirected = dag_to_cpdag([[], [0], [1]])     # the chain 0 -> 1 -> 2: nothing compelled
      >>> sorted(directed), sorted(undirected)
      ([], [(0, 1), (1, 2)])
    """

    directed: set
    undirected: set


class SearchResult(NamedTuple):
    """A learned network structure.

    Attributes:
      structure: the learned `gm.bn.Structure` (fit its CPTs with `gm.learn.mle` / `gm.learn.dirichlet`).
      score: its total score (float64 sum of float32 local scores; NaN where the search has no score).
      n_iterations: moves (hill climbing) or other search steps taken.

    Examples:
      >>> result = SearchResult(make_structure([2, 2], [[], [0]], 2), score=-12.5, n_iterations=1)
      >>> structure, score, n_iterations = result
      >>> structure.parents
      ((), (0,))
    """

    structure: Structure
    score: float
    n_iterations: int


def make_structure(variables, parents: Sequence[Iterable[int]], num_vars: int) -> Structure:
    """A `Structure` with the names and states of ``variables`` and ``parents`` (sorted index lists).

    Args:
      variables: a `gm.bn.Structure` / `gm.bn.BayesNet` (names, states; edges ignored) or cardinalities.
      parents: one iterable of parent indices per variable.
      num_vars: the number of variables.

    Returns:
      A `gm.bn.Structure` with the parent lists sorted.

    Raises:
      ValueError: the parent sets contain a cycle (named).

    Examples:
      >>> make_structure([2, 2, 3], [[], [0], [1, 0]], 3)
      Structure(names=('X0', 'X1', 'X2'), states=(('0', '1'), ('0', '1'), ('0', '1', '2')), parents=((), (0,), (0, 1)))
    """
    names, states = as_variables(variables, num_vars)
    pa = tuple(tuple(sorted(int(p) for p in ps)) for ps in parents)
    graph = nx.DiGraph([(p, c) for c, ps in enumerate(pa) for p in ps])
    if not nx.is_directed_acyclic_graph(graph):
        raise ValueError(f"the parent sets contain a cycle: {nx.find_cycle(graph)}")
    return Structure(tuple(names), tuple(tuple(s) for s in states), pa)


def edge_indices(variables, edges, what: str) -> list[tuple[int, int]]:
    """``[(parent, child)]`` indices of ``edges`` given as names (with a named ``variables``) or indices.

    Args:
      variables: a `gm.bn.Structure` / `gm.bn.BayesNet` (to resolve names) or cardinalities.
      edges: ``(parent, child)`` pairs of names or indices, or None.
      what: the argument's name, for the error messages (``"whitelist"``, ``"blacklist"``).

    Returns:
      A list of ``(int, int)`` pairs (empty for None).

    Raises:
      ValueError: a pair that is not a pair, or an unknown name.

    Examples:
      >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
      >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
      >>> edge_indices(variables, [("A", "C"), (1, 2)], "whitelist")
      [(0, 2), (1, 2)]
    """
    if edges is None:
        return []
    index = None
    if isinstance(variables, BayesNet):
        variables = variables.structure
    if isinstance(variables, Structure):
        index = variables.index
    out = []
    for edge in edges:
        if len(edge) != 2:
            raise ValueError(f"{what}: an edge is a (parent, child) pair, got {edge!r}")
        pair = []
        for v in edge:
            if isinstance(v, str):
                if index is None or v not in index:
                    raise ValueError(f"{what}: unknown variable {v!r}")
                pair.append(index[v])
            else:
                pair.append(int(v))
        out.append((pair[0], pair[1]))
    return out


def structure_edges(structure: Structure | Sequence[Sequence[int]]) -> set[tuple[int, int]]:
    """The directed edges ``{(parent, child)}`` of a structure or parent-index lists.

    Args:
      structure: a `gm.bn.Structure` or one list of parent indices per variable.

    Returns:
      A set of ``(parent, child)`` index pairs.

    Examples:
      >>> sorted(structure_edges([[], [0], [0, 1]]))
      [(0, 1), (0, 2), (1, 2)]
    """
    parents = structure.parents if isinstance(structure, Structure) else structure
    return {(int(p), c) for c, ps in enumerate(parents) for p in ps}


def transitive_closure(adjacency: np.ndarray) -> np.ndarray:
    """``bool[n, n]``: R[i, j] iff a directed path of length >= 1 leads from i to j (Warshall, vectorised).

    R = A, then R |= R[:, k] R[k, :] for every k.

    Args:
      adjacency: ``bool[n, n]`` (or 0/1), A[i, j] for an edge i -> j.

    Returns:
      ``bool[n, n]``.

    Examples:
      >>> transitive_closure(np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])).astype(int).tolist()
      [[0, 1, 1], [0, 0, 1], [0, 0, 0]]
    """
    reach = adjacency.astype(bool).copy()
    for k in range(reach.shape[0]):
        reach |= reach[:, k:k + 1] & reach[k:k + 1, :]
    return reach


def dag_to_cpdag(parents: Sequence[Sequence[int]]) -> PDAGEdges:
    """The CPDAG (essential graph) of a DAG: its v-structure edges, then Meek's rules.

    Args:
      parents: one list of parent indices per variable (a DAG).

    Returns:
      `PDAGEdges` ``(directed, undirected)``: edges ``(parent, child)`` and ``(u, v)`` with u < v.

    Examples:
      >>> sorted(dag_to_cpdag([[], [], [0, 1]]).directed)        # a v-structure is compelled
      [(0, 2), (1, 2)]
    """
    from gm.learn.structure.pc import meek_rules

    n = len(parents)
    pa = [set(int(p) for p in ps) for ps in parents]
    adjacent = {frozenset((p, c)) for c in range(n) for p in pa[c]}
    compelled = set()
    for c in range(n):
        for a in pa[c]:
            for b in pa[c]:
                if a < b and frozenset((a, b)) not in adjacent:
                    compelled |= {(a, c), (b, c)}
    undirected = {tuple(sorted((p, c))) for c in range(n) for p in pa[c] if (p, c) not in compelled}
    return meek_rules(n, compelled, undirected)


def shd(a_directed, a_undirected, b_directed, b_undirected) -> int:
    """Structural Hamming distance of two partially directed graphs: the pairs of variables whose edge
    differs (missing, extra, or of another kind: u -> v, v -> u, u - v).

    Args:
      a_directed: the first graph's ``{(parent, child)}`` edges.
      a_undirected: its ``{(u, v)}`` undirected edges.
      b_directed: the second graph's directed edges.
      b_undirected: its undirected edges.

    Returns:
      The number of pairs that differ, an ``int``.

    Examples:
      >>> shd({(0, 2), (1, 2)}, set(), set(), {(0, 2), (1, 2)})   # two edges of another kind
      2
    """

    def kinds(directed, undirected):
        out = {}
        for u, v in directed:
            out[frozenset((u, v))] = (u, v)
        for u, v in undirected:
            out[frozenset((u, v))] = "-"
        return out

    ka, kb = kinds(a_directed, a_undirected), kinds(b_directed, b_undirected)
    return sum(1 for pair in set(ka) | set(kb) if ka.get(pair) != kb.get(pair))
