"""Chow-Liu trees and tree-augmented naive Bayes (TAN).

Chow & Liu (1968): the tree maximising the likelihood is the maximum spanning tree of the pairwise mutual
information I(X_i; X_j) = sum p(x_i, x_j) log p(x_i, x_j) / (p(x_i) p(x_j)); edges point away from a
root. TAN (Friedman, Geiger & Goldszmidt 1997) does the same over the features with the conditional
mutual information I(X_i; X_j | C) and adds the class C as a parent of every feature.

Every pairwise count table is one matrix product of the one-hot distinct records (``onehot^T diag(w)
onehot``, w their counts; once per class value for TAN), in float64, so all n^2 mutual informations cost
one pass over the data. The spanning tree
and the orientation are networkx's (Kruskal, breadth-first from the root). The default root is the
variable with the largest sum of mutual information, as in pgmpy's ``TreeSearch``.

Examples:
    >>> from gm.bn import Structure
    >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
    >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
    >>> chow_liu(data, variables).structure.parents            # a tree rooted at C: C -> A, C -> B
    ((2,), (2,), ())
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from gm.learn.structure.neighbourhood import column_blocks
from gm.learn.structure.scores import (
    check_complete_data,
    names_of,
    resolve_variable,
    unique_records,
    variable_cards,
)
from gm.learn.structure.search import SearchResult, make_structure

__all__ = ["mutual_information", "chow_liu", "tan"]


def _onehot(data, cards):
    rows, counts = unique_records(data)
    offsets = np.concatenate([[0], np.cumsum(cards)[:-1]]).astype(np.int64)
    onehot = np.zeros((rows.shape[0], sum(cards) + 1), np.float64)
    onehot[np.arange(rows.shape[0])[:, None], rows + offsets] = 1.0
    return rows, counts.astype(np.float64), onehot


def mutual_information(data, variables=None, *, given=None) -> np.ndarray:
    """``float64[n, n]``: I(X_i; X_j) in nats, or I(X_i; X_j | C) with ``given=C`` (diagonal: entropies,
    or conditional entropies).

    I(X_i; X_j) = sum p(x_i, x_j) log p(x_i, x_j) / (p(x_i) p(x_j)); I(X_i; X_j | C) = sum_c p(c) I(X_i; X_j | C = c).

    Args:
      data: ``int32[N, n_vars]`` complete records.
      variables: a `Structure`/`BayesNet` or cardinalities (None: the data's maxima + 1).
      given: the conditioning variable (a name or an index), or None.

    Returns:
      ``float64[n_vars, n_vars]``, symmetric.

    Examples:
      >>> from gm.bn import Structure
      >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
      >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
      >>> mutual_information(data, variables).round(4).tolist()     # A and B independent; both inform C
      [[0.6931, 0.0, 0.2158], [0.0, 0.6931, 0.2158], [0.2158, 0.2158, 0.5623]]
      >>> round(float(mutual_information(data, variables, given="C")[0, 1]), 4)    # ... but not given C
      0.1308
    """
    cards = variable_cards(variables, data)
    arr = check_complete_data(data, cards, names_of(variables))
    rows, counts, onehot = _onehot(arr, cards)
    if given is None:
        return _exact_mi((onehot * counts[:, None]).T @ onehot, cards)
    c = resolve_variable(variables, given)
    total = counts.sum()
    out = np.zeros((len(cards), len(cards)))
    for value in range(cards[c]):
        w = counts * (rows[:, c] == value)
        if w.sum() == 0:
            continue
        gram = (onehot * w[:, None]).T @ onehot
        out += w.sum() / total * _exact_mi(gram, cards)
    return out


def _exact_mi(gram: np.ndarray, cards) -> np.ndarray:
    """``float64[n, n]`` mutual information from a weighted one-hot Gram matrix (the padding column is 0)."""
    columns = column_blocks(cards)
    total = gram[columns[0]][:, columns[0]].sum()
    joint = gram[columns][:, :, columns] / total  # i, x_i, j, x_j
    marg = np.stack([np.diag(gram)[columns[i]] for i in range(len(cards))]) / total  # [i, x_i]
    denom = marg[:, :, None, None] * marg[None, None, :, :]
    ok = (joint > 0) & (denom > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(ok, joint * np.log(np.where(ok, joint, 1.0) / np.where(ok, denom, 1.0)), 0.0)
    return terms.sum(axis=(1, 3))


def _tree(weights: np.ndarray, nodes: list[int], root: int) -> list[tuple[int, int]]:
    graph = nx.Graph()
    graph.add_nodes_from(nodes)
    for a in range(len(nodes)):
        for b in range(a + 1, len(nodes)):
            graph.add_edge(nodes[a], nodes[b], weight=float(weights[nodes[a], nodes[b]]))
    tree = nx.maximum_spanning_tree(graph)
    return list(nx.bfs_tree(tree, root).edges())


def chow_liu(data, variables=None, *, root=None) -> SearchResult:
    """The Chow-Liu tree (maximum-likelihood tree), edges directed away from ``root``.

    Args:
      data: ``int32[N, n_vars]`` complete records.
      variables: a `Structure`/`BayesNet` or cardinalities.
      root: a variable (name or index); None: the one with the largest total mutual information.

    Returns:
      `SearchResult` with score = the tree's total mutual information in nats (its log-likelihood is
      N times that minus N times the sum of the entropies).

    Examples:
      >>> from gm.bn import Structure
      >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
      >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
      >>> result = chow_liu(data, variables, root="A")
      >>> result.structure.parents, round(result.score, 4)       # A -> C -> B; I(A; C) + I(C; B)
      (((), (2,), (0,)), 0.4315)
    """
    weights = mutual_information(data, variables)
    n = weights.shape[0]
    off = weights - np.diag(np.diag(weights))
    r = int(np.argmax(off.sum(axis=0))) if root is None else resolve_variable(variables, root)
    edges = _tree(off, list(range(n)), r)
    parents = [[] for _ in range(n)]
    for a, b in edges:
        parents[b].append(a)
    cards = variable_cards(variables, data)
    return SearchResult(make_structure(variables if variables is not None else cards, parents, n),
                        float(sum(off[a, b] for a, b in edges)), len(edges))


def tan(data, variables=None, *, class_variable, root=None) -> SearchResult:
    """Tree-augmented naive Bayes: a conditional Chow-Liu tree over the features, plus class -> every feature.

    Args:
      data, variables: as `chow_liu`.
      class_variable: the class (name or index).
      root: the features' tree root; None: the feature with the largest total mutual information.

    Returns:
      `SearchResult` with score = the features' tree's total conditional mutual information (nats).

    Raises:
      ValueError: ``root`` is the class variable.

    Examples:
      >>> from gm.bn import Structure
      >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
      >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
      >>> result = tan(data, variables, class_variable="C")
      >>> result.structure.parents                              # C -> A, C -> B and the tree A -> B
      ((2,), (0, 2), ())
    """
    c = resolve_variable(variables, class_variable)
    n = len(variable_cards(variables, data))
    features = [v for v in range(n) if v != c]
    if root is None:
        plain = mutual_information(data, variables)
        plain = plain - np.diag(np.diag(plain))
        sums = plain.sum(axis=0)
        r = max(features, key=lambda v: sums[v])
    else:
        r = resolve_variable(variables, root)
        if r == c:
            raise ValueError(f"root and class_variable are the same variable ({class_variable!r})")
    weights = mutual_information(data, variables, given=c)
    edges = _tree(weights, features, r)
    parents = [[] for _ in range(n)]
    for a, b in edges:
        parents[b].append(a)
    for v in features:
        parents[v].append(c)
    cards = variable_cards(variables, data)
    return SearchResult(make_structure(variables if variables is not None else cards, parents, n),
                        float(sum(weights[a, b] for a, b in edges)), len(edges))
