"""Query-specific pruning: the smallest sub-network that gives P(query | evidence) exactly.

Whole-network contraction answers every variable at once, but one posterior over a few variables of a
huge network (munin1, link) needs only a small part of it. Given the query variables Q and the set E of
variables that are observed (which ones, not their values, so the result is static structure and one
compiled function still serves every evidence value):

1. **Barren nodes.** A variable that is not an ancestor of Q ∪ E sums out to 1 and is dropped.
2. **Separated parts.** In the moral graph of the remaining ancestral set, delete E; only the connected
   components that touch Q matter (call their union C). Every CPT whose family meets C is kept: the CPTs
   of C's variables and of the observed children of C. The other factors do not depend on C, so they
   only scale P(e) and cancel in P(Q | e).
3. Observed variables that appear in a kept family but whose own CPT is not kept become roots with a
   uniform prior: they are observed, so their prior is a constant factor too.

The pruned network's ``log_evidence`` is therefore *not* log P(e) of the original network; its posterior
over Q (and over every variable of C) is exact. Evidence on a variable outside E must not be present: the
pruning assumed it unobserved (:func:`pruned_query` with ``check=True`` raises outside jit).

Examples:
    >>> net = BayesNet.from_dict({"Burglary": 2, "Quake": 2, "Alarm": 2, "Call": 2},
    ...                          {"Alarm": ["Burglary", "Quake"], "Call": ["Alarm"]},
    ...                          {"Burglary": [0.9, 0.1], "Quake": [0.9, 0.1], "Call": [[0.9, 0.1], [0.2, 0.8]],
    ...                           "Alarm": [[[0.99, 0.01], [0.3, 0.7]], [[0.2, 0.8], [0.05, 0.95]]]})
    >>> sub = prune(net, ["Burglary"], observed=["Alarm"])      # Call is barren: dropped
    >>> sub.net.names
    ('Burglary', 'Quake', 'Alarm')
    >>> from gm.bn.inference import query
    >>> evidence = net.evidence({"Alarm": 1})                  # int32[n_vars] of the full network
    >>> print(query(sub.net, ["Burglary"], sub.restrict(evidence)))
    [0.4659 0.5341]
    >>> print(query(net, ["Burglary"], evidence))             # the same as on the whole network
    [0.4659 0.5341]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from gm.bn.network import BayesNet, Structure

__all__ = ["Pruned", "prune", "pruned_query"]


class Pruned(NamedTuple):
    """A sub-network and where its variables sit in the original one.

    Attributes:
      net: the pruned :class:`BayesNet` (variables in the original order).
      indices: ``indices[j]`` is the original index of the pruned network's variable ``j``.

    Examples:
      >>> net = BayesNet.from_dict({"Burglary": 2, "Quake": 2, "Alarm": 2, "Call": 2},
      ...                          {"Alarm": ["Burglary", "Quake"], "Call": ["Alarm"]},
      ...                          {"Burglary": [0.9, 0.1], "Quake": [0.9, 0.1], "Call": [[0.9, 0.1], [0.2, 0.8]],
      ...                           "Alarm": [[[0.99, 0.01], [0.3, 0.7]], [[0.2, 0.8], [0.05, 0.95]]]})
      >>> prune(net, "Alarm").indices                            # the ancestors of Alarm
      (0, 1, 2)
    """

    net: BayesNet
    indices: tuple[int, ...]

    def restrict(self, evidence):
        """Evidence of the original network, ``int32[..., n_vars]``, restricted to the kept variables.

        Args:
          evidence: ``int32[..., n_vars]`` of the original network (any leading batch axes).

        Returns:
          ``int32[..., len(indices)]``: ``evidence[..., indices]``.

        Examples:
          >>> net = BayesNet.from_dict({"Burglary": 2, "Quake": 2, "Alarm": 2, "Call": 2},
          ...                          {"Alarm": ["Burglary", "Quake"], "Call": ["Alarm"]},
          ...                          {"Burglary": [0.9, 0.1], "Quake": [0.9, 0.1], "Call": [[0.9, 0.1], [0.2, 0.8]],
          ...                           "Alarm": [[[0.99, 0.01], [0.3, 0.7]], [[0.2, 0.8], [0.05, 0.95]]]})
          >>> prune(net, "Burglary", observed=["Alarm"]).restrict(jnp.array([-1, -1, 1, 0])).tolist()
          [-1, -1, 1]
        """
        evidence = jnp.asarray(evidence)
        return jnp.take(evidence, jnp.asarray(self.indices, jnp.int32), axis=-1)


def _indices(net: BayesNet, names, what: str) -> list[int]:
    if isinstance(names, str):
        names = [names]
    out = []
    for name in names:
        try:
            out.append(net.index(name))
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from None
    return out


def _relevant(structure: Structure, query: set[int], observed: set[int]):
    """(unobserved component C, kept CPT owners) as index sets."""
    import networkx as nx  # imported on use: 0.15-0.3 s of `import gm`

    parents = structure.parents
    ancestral: set[int] = set()
    stack = list(query | observed)
    while stack:
        v = stack.pop()
        if v in ancestral:
            continue
        ancestral.add(v)
        stack.extend(parents[v])
    moral = nx.Graph()
    moral.add_nodes_from(v for v in ancestral if v not in observed)
    for v in ancestral:
        family = [u for u in (*parents[v], v) if u not in observed]
        for i, a in enumerate(family):
            for b in family[i + 1 :]:
                moral.add_edge(a, b)
    component: set[int] = set()
    for q in query:
        if q not in component:
            component |= nx.node_connected_component(moral, q)
    owners = {v for v in ancestral if v in component or (v in observed and any(p in component for p in parents[v]))}
    return component, owners


def prune(net: BayesNet, query: Sequence[str] | str, observed: Sequence[str] = ()) -> Pruned:
    """The sub-network that answers P(query | evidence on ``observed``) exactly (see module docstring).

    Args:
      net: the network.
      query: names of the query variables (unobserved).
      observed: names of the variables that carry evidence (hard or soft); the rest are unobserved.

    Returns:
      :class:`Pruned` with the sub-network (CPT values shared with ``net``, so gradients flow) and the
      original indices of its variables.

    Raises:
      ValueError: an unknown name, or a query variable listed as observed.

    Examples:
      >>> net = BayesNet.from_dict({"Burglary": 2, "Quake": 2, "Alarm": 2, "Call": 2},
      ...                          {"Alarm": ["Burglary", "Quake"], "Call": ["Alarm"]},
      ...                          {"Burglary": [0.9, 0.1], "Quake": [0.9, 0.1], "Call": [[0.9, 0.1], [0.2, 0.8]],
      ...                           "Alarm": [[[0.99, 0.01], [0.3, 0.7]], [[0.2, 0.8], [0.05, 0.95]]]})
      >>> prune(net, ["Quake"]).net.names                        # no evidence: only Quake matters
      ('Quake',)
      >>> prune(net, ["Quake"], observed=["Call"]).net.names
      ('Burglary', 'Quake', 'Alarm', 'Call')
    """
    q = set(_indices(net, query, "query"))
    e = set(_indices(net, observed, "observed"))
    if not q:
        raise ValueError("query needs at least one variable name")
    if q & e:
        raise ValueError(f"query variables cannot be observed: {sorted(net.names[i] for i in q & e)}")
    s = net.structure
    component, owners = _relevant(s, q, e)
    keep = set(component)
    for v in owners:
        keep.update(s.families[v])
    indices = tuple(sorted(keep))
    new_parents = tuple(tuple(s.parents[v]) if v in owners else () for v in indices)
    position = {v: j for j, v in enumerate(indices)}
    structure = Structure(
        names=tuple(s.names[v] for v in indices),
        states=tuple(s.states[v] for v in indices),
        parents=tuple(tuple(position[p] for p in pa) for pa in new_parents),
    )
    cpts = []
    for v in indices:
        if v in owners:
            cpts.append(net.cpts[v])
        else:
            dtype = jnp.asarray(net.cpts[v]).dtype
            cpts.append(jnp.full((s.cards[v],), 1.0 / s.cards[v], dtype))
    return Pruned(BayesNet(structure, cpts), indices)


def pruned_query(net: BayesNet, names: Sequence[str], evidence, *, observed: Sequence[str], check: bool = False):
    """``query(net, names, evidence)`` computed on :func:`prune` ``(net, names, observed)``.

    ``observed`` is static (it fixes the sub-network); ``evidence`` may be traced. Variables outside
    ``observed`` must be unobserved (-1) in ``evidence``, and every variable in ``observed`` observed;
    ``check=True`` verifies that (and impossible evidence) outside jit.

    Args:
      net: the network.
      names: the query variables.
      evidence: ``int32[n_vars]`` of the full network.
      observed: the names observed in ``evidence`` (static).
      check: outside jit, raise ValueError when ``evidence`` disagrees with ``observed`` or P(e) = 0.

    Returns:
      ``f32[card_1, ..., card_k]``, P(names | e), as `gm.bn.query` on the whole network.

    Raises:
      ValueError: with ``check``, a variable observed in ``evidence`` but not listed (or the reverse).

    Examples:
      >>> net = BayesNet.from_dict({"Burglary": 2, "Quake": 2, "Alarm": 2, "Call": 2},
      ...                          {"Alarm": ["Burglary", "Quake"], "Call": ["Alarm"]},
      ...                          {"Burglary": [0.9, 0.1], "Quake": [0.9, 0.1], "Call": [[0.9, 0.1], [0.2, 0.8]],
      ...                           "Alarm": [[[0.99, 0.01], [0.3, 0.7]], [[0.2, 0.8], [0.05, 0.95]]]})
      >>> print(pruned_query(net, ["Burglary"], net.evidence({"Alarm": 1}), observed=["Alarm"]))
      [0.4659 0.5341]
    """
    from gm.bn.inference import query

    sub = prune(net, names, observed)
    if check:
        values = np.asarray(evidence)
        declared = np.zeros(net.n_vars, bool)
        declared[_indices(net, observed, "observed")] = True
        bad = np.flatnonzero((values >= 0) != declared)
        if bad.size:
            v = int(bad[0])
            state = "observed" if values[v] >= 0 else "unobserved"
            raise ValueError(
                f"variable {net.names[v]!r} is {state} in evidence but {'not ' if not declared[v] else ''}listed in observed"
            )
    return query(sub.net, names, sub.restrict(evidence), check=check)
