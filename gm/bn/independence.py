"""Graph queries: d-separation and Markov blankets (networkx does the graph work).

These depend on the structure only: X ⟂ Y | Z holds in every parameterisation of the network exactly when
Z d-separates X from Y in its DAG.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from gm.bn.network import BayesNet

if TYPE_CHECKING:
    import networkx as nx


def to_networkx(net: BayesNet) -> nx.DiGraph:
    """The network's DAG with variable names as nodes (an edge ``parent -> child`` per CPT axis).

    Args:
        net: the network.

    Returns:
        A `networkx.DiGraph` with ``n_vars`` nodes.

    Examples:
        >>> net = BayesNet.from_dict({"Burglary": 2, "Quake": 2, "Alarm": 2, "Call": 2},
        ...                          {"Alarm": ["Burglary", "Quake"], "Call": ["Alarm"]},
        ...                          {"Burglary": [0.9, 0.1], "Quake": [0.9, 0.1], "Alarm": np.full((2, 2, 2), 0.5),
        ...                           "Call": [[0.9, 0.1], [0.2, 0.8]]})
        >>> sorted(to_networkx(net).edges)
        [('Alarm', 'Call'), ('Burglary', 'Alarm'), ('Quake', 'Alarm')]
    """
    import networkx as nx  # imported on use: 0.15-0.3 s of `import gm`
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
    """Whether ``xs`` and ``ys`` are d-separated by ``given`` (so X ⟂ Y | Z in every parameterisation).

    Args:
        net: the network.
        xs: a variable name or names (X).
        ys: a variable name or names (Y), disjoint from ``xs``.
        given: the conditioning names (Z), disjoint from both.

    Returns:
        ``True`` when every path between X and Y is blocked by Z.

    Raises:
        ValueError: an unknown name, or overlapping sets.

    Examples:
        >>> net = BayesNet.from_dict({"Burglary": 2, "Quake": 2, "Alarm": 2, "Call": 2},
        ...                          {"Alarm": ["Burglary", "Quake"], "Call": ["Alarm"]},
        ...                          {"Burglary": [0.9, 0.1], "Quake": [0.9, 0.1], "Alarm": np.full((2, 2, 2), 0.5),
        ...                           "Call": [[0.9, 0.1], [0.2, 0.8]]})
        >>> d_separated(net, "Burglary", "Quake")             # a v-structure blocks the path ...
        True
        >>> d_separated(net, "Burglary", "Quake", ["Call"])   # ... until a descendant of Alarm is observed
        False
    """
    import networkx as nx  # imported on use: 0.15-0.3 s of `import gm`
    x, y, z = _names(net, xs), _names(net, ys), _names(net, given)
    if x & y:
        raise ValueError(f"xs and ys overlap: {sorted(x & y)}")
    if (x | y) & z:
        raise ValueError(f"given overlaps xs or ys: {sorted((x | y) & z)}")
    graph = to_networkx(net)
    check = getattr(nx, "is_d_separator", None) or nx.d_separated
    return bool(check(graph, x, y, z))


def markov_blanket(net: BayesNet, name: str) -> tuple[str, ...]:
    """Parents, children and the children's other parents of ``name``, in network order.

    Given its Markov blanket MB, a variable is independent of all the others: X ⟂ rest | MB(X).

    Args:
        net: the network.
        name: a variable name.

    Returns:
        The blanket's names, a tuple in the network's variable order.

    Examples:
        >>> net = BayesNet.from_dict({"Burglary": 2, "Quake": 2, "Alarm": 2, "Call": 2},
        ...                          {"Alarm": ["Burglary", "Quake"], "Call": ["Alarm"]},
        ...                          {"Burglary": [0.9, 0.1], "Quake": [0.9, 0.1], "Alarm": np.full((2, 2, 2), 0.5),
        ...                           "Call": [[0.9, 0.1], [0.2, 0.8]]})
        >>> markov_blanket(net, "Burglary")
        ('Quake', 'Alarm')
    """
    i = net.index(name)
    blanket = set(net.parents[i])
    for c in net.structure.children[i]:
        blanket.add(c)
        blanket.update(net.parents[c])
    blanket.discard(i)
    return tuple(net.names[k] for k in sorted(blanket))
