"""Graph queries: d-separation and Markov blankets (networkx does the graph work)."""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from gm.bn.network import BayesNet


def to_networkx(net: BayesNet) -> nx.DiGraph:
    """The network's DAG with variable names as nodes."""
    graph = nx.DiGraph()
    graph.add_nodes_from(net.names)
    graph.add_edges_from((net.names[p], name) for name, pa in zip(net.names, net.parents) for p in pa)
    return graph


def _names(net: BayesNet, names: Iterable[str] | str) -> set[str]:
    if isinstance(names, str):
        names = [names]
    names = set(names)
    for n in names:
        net.index(n)  # raises ValueError naming an unknown variable
    return names


def d_separated(net: BayesNet, xs, ys, given=()) -> bool:
    """Whether ``xs`` and ``ys`` are d-separated by ``given`` (so X ⟂ Y | Z in every parameterisation)."""
    x, y, z = _names(net, xs), _names(net, ys), _names(net, given)
    if x & y:
        raise ValueError(f"xs and ys overlap: {sorted(x & y)}")
    if (x | y) & z:
        raise ValueError(f"given overlaps xs or ys: {sorted((x | y) & z)}")
    graph = to_networkx(net)
    check = getattr(nx, "is_d_separator", None) or nx.d_separated
    return bool(check(graph, x, y, z))


def markov_blanket(net: BayesNet, name: str) -> tuple[str, ...]:
    """Parents, children and the children's other parents of ``name``, in network order."""
    i = net.index(name)
    blanket = set(net.parents[i])
    for c in net.structure.children[i]:
        blanket.add(c)
        blanket.update(net.parents[c])
    blanket.discard(i)
    return tuple(net.names[k] for k in sorted(blanket))
