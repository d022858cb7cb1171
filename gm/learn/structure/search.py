"""What every structure search shares: the result type, the variables' names, edge lists, graph helpers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import networkx as nx
import numpy as np

from gm.bn.network import BayesNet, Structure
from gm.learn.structure.scores import as_variables

__all__ = ["SearchResult", "make_structure", "edge_indices", "structure_edges", "transitive_closure"]


class SearchResult(NamedTuple):
    """A learned network structure.

    Attributes:
      structure: the learned `gm.bn.Structure` (fit its CPTs with `gm.learn.mle` / `gm.learn.dirichlet`).
      score: its total score (float64 sum of float32 local scores; NaN where the search has no score).
      n_iterations: moves (hill climbing) or other search steps taken.
    """

    structure: Structure
    score: float
    n_iterations: int


def make_structure(variables, parents: Sequence[Iterable[int]], n: int) -> Structure:
    """A `Structure` with the names and states of ``variables`` and ``parents`` (sorted index lists)."""
    names, states = as_variables(variables, n)
    pa = tuple(tuple(sorted(int(p) for p in ps)) for ps in parents)
    graph = nx.DiGraph([(p, c) for c, ps in enumerate(pa) for p in ps])
    if not nx.is_directed_acyclic_graph(graph):
        raise ValueError(f"the parent sets contain a cycle: {nx.find_cycle(graph)}")
    return Structure(tuple(names), tuple(tuple(s) for s in states), pa)


def edge_indices(variables, edges, what: str) -> list[tuple[int, int]]:
    """``[(parent, child)]`` indices of ``edges`` given as names (with a named ``variables``) or indices."""
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
    """The directed edges ``{(parent, child)}`` of a structure or parent-index lists."""
    parents = structure.parents if isinstance(structure, Structure) else structure
    return {(int(p), c) for c, ps in enumerate(parents) for p in ps}


def transitive_closure(adjacency: np.ndarray) -> np.ndarray:
    """``bool[n, n]``: R[i, j] iff a directed path of length >= 1 leads from i to j (Warshall, vectorised)."""
    reach = adjacency.astype(bool).copy()
    for k in range(reach.shape[0]):
        reach |= reach[:, k:k + 1] & reach[k:k + 1, :]
    return reach
