"""A dynamic Bayesian network as a 2-slice template (2-TBN): its structure, its CPTs, its constructors.

A 2-TBN has slice variables with discrete states; each variable has parents in its own slice
(intra-slice) and, from the second slice on, in the previous slice (inter-slice, written ``"h[-1]"``).
The first slice has its own CPTs (``initial_cpts``), every later slice shares ``transition_cpts``:

    p(X_{1:T}) = Π_v p(X_1^v | pa_1(v)) · Π_{t>1} Π_v p(X_t^v | pa_t(v), pa_{t-1}(v)).

* `Structure` (static, hashable) and `DBN` (structure plus CPTs, a pytree); `DBNPosterior`, the result
  of ``filter`` and ``smoother``.
* `from_dict` builds a DBN from names; `factorial_hmm`, `coupled_hmm`, `boltzmann_zipper` build the
  lecture's three structured HMMs.

Reference: K. Murphy (2002), Dynamic Bayesian Networks, PhD thesis, ch. 3; Z. Ghahramani and
M. Jordan (1997), Factorial hidden Markov models; L. Saul and M. Jordan (1996), Boltzmann chains and
hidden Markov models.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["DBN", "DBNPosterior", "Structure", "boltzmann_zipper", "coupled_hmm", "factorial_hmm", "from_dict"]

_PREV = re.compile(r"^(.*)\[-1\]$")


@dataclasses.dataclass(frozen=True)
class Structure:
    """Static part of a 2-TBN (hashable).

    names: slice variable names; cards: their numbers of states;
    initial_parents[i]: indices of same-slice parents of variable i in the first slice;
    transition_parents[i]: ((index, lag), ...) with lag 0 (same slice) or 1 (previous slice), in the
    order of the transition CPT's axes.
    """

    names: tuple[str, ...]
    cards: tuple[int, ...]
    initial_parents: tuple[tuple[int, ...], ...]
    transition_parents: tuple[tuple[tuple[int, int], ...], ...]

    @property
    def num_vars(self) -> int:
        """The number of slice variables."""
        return len(self.names)

    @property
    def interface(self) -> tuple[int, ...]:
        """Variables with a child in the next slice, sorted."""
        return tuple(sorted({i for ps in self.transition_parents for i, lag in ps if lag == 1}))

    def order(self, initial: bool) -> tuple[int, ...]:
        """A topological order of the slice's variables along the intra-slice edges."""
        parents = [self.initial_parents[i] if initial else tuple(j for j, lag in self.transition_parents[i]
                                                                 if lag == 0) for i in range(self.num_vars)]
        done, out = set(), []
        while len(out) < self.num_vars:
            ready = [i for i in range(self.num_vars) if i not in done and all(p in done for p in parents[i])]
            if not ready:
                raise ValueError("the intra-slice edges of the DBN have a cycle")
            out.append(ready[0])
            done.add(ready[0])
        return tuple(out)


@jax.tree_util.register_pytree_node_class
class DBN:
    """A 2-TBN: static ``Structure`` plus CPTs (pytree leaves), each with the child's axis last.

    ``initial_cpts[i]`` has shape (*cards of initial_parents[i], cards[i]);
    ``transition_cpts[i]`` has shape (*cards of transition_parents[i], cards[i]).
    """

    def __init__(self, structure: Structure, initial_cpts, transition_cpts):
        self.structure = structure
        self.initial_cpts = tuple(initial_cpts)
        self.transition_cpts = tuple(transition_cpts)

    def tree_flatten(self):
        """Pytree protocol: the CPTs are the leaves, the structure is static."""
        return (self.initial_cpts, self.transition_cpts), self.structure

    @classmethod
    def tree_unflatten(cls, structure, children):
        """Pytree protocol: rebuilds a DBN from its structure and CPTs."""
        return cls(structure, *children)

    @property
    def names(self) -> tuple[str, ...]:
        """The slice variables' names."""
        return self.structure.names

    @property
    def cards(self) -> tuple[int, ...]:
        """The slice variables' numbers of states."""
        return self.structure.cards

    def index(self, name: str) -> int:
        """The position of slice variable ``name`` (ValueError naming the variables when unknown)."""
        try:
            return self.structure.names.index(name)
        except ValueError:
            raise ValueError(f"unknown variable {name!r}; variables are {self.structure.names}") from None

    def __repr__(self):
        return f"DBN(names={self.names}, cards={self.cards})"


def from_dict(states: Mapping[str, Sequence[str] | int], *, initial_parents: Mapping[str, Sequence[str]] | None = None,
              transition_parents: Mapping[str, Sequence[str]] | None = None,
              initial_cpts: Mapping[str, object], transition_cpts: Mapping[str, object],
              atol: float = 1e-3) -> DBN:
    """Builds a DBN from names.

    Args:
        states: {name: list of state names or number of states}, in slice order.
        initial_parents: {name: [same-slice parents]} for the first slice (default none).
        transition_parents: {name: parents}, ``"h"`` for same-slice, ``"h[-1]"`` for previous-slice
            parents, in the order of the CPT's axes (default none).
        initial_cpts: {name: array (*parent cards, card)} of the first slice.
        transition_cpts: {name: array (*parent cards, card)} of every later slice.

    Returns:
        ``DBN``.

    Raises:
        ValueError: naming the variable for unknown parents, wrong CPT shapes or unnormalised CPTs.

    Examples:
        >>> model = from_dict({"h": 2, "x": 3}, initial_parents={"x": ["h"]},
        ...                   transition_parents={"h": ["h[-1]"], "x": ["h"]},
        ...                   initial_cpts={"h": [0.5, 0.5], "x": np.ones((2, 3)) / 3},
        ...                   transition_cpts={"h": [[0.9, 0.1], [0.2, 0.8]], "x": np.ones((2, 3)) / 3})
    """
    names = tuple(states)
    cards = tuple(v if isinstance(v, int) else len(v) for v in states.values())
    idx = {n: i for i, n in enumerate(names)}
    initial_parents = initial_parents or {}
    transition_parents = transition_parents or {}

    def lookup(child, p):
        if p not in idx:
            raise ValueError(f"parent {p!r} of {child!r} is not a slice variable {names}")
        return idx[p]

    ip, tp = [], []
    for n in names:
        ip.append(tuple(lookup(n, p) for p in initial_parents.get(n, ())))
        ps = []
        for p in transition_parents.get(n, ()):
            m = _PREV.match(p)
            ps.append((lookup(n, m.group(1)), 1) if m else (lookup(n, p), 0))
        tp.append(tuple(ps))
    for n in list(initial_parents) + list(transition_parents):
        if n not in idx:
            raise ValueError(f"parents given for unknown variable {n!r}")
    structure = Structure(names, cards, tuple(ip), tuple(tp))
    structure.order(True), structure.order(False)  # cycle checks
    icpts, tcpts = [], []
    for i, n in enumerate(names):
        for table, parents, out, what in ((initial_cpts, ip[i], icpts, "initial_cpts"),
                                          (transition_cpts, tp[i], tcpts, "transition_cpts")):
            if n not in table:
                raise ValueError(f"{what} has no CPT for {n!r}")
            cpt = jnp.asarray(table[n], jnp.float32)
            pidx = [p if isinstance(p, int) else p[0] for p in parents]
            want = tuple(cards[j] for j in pidx) + (cards[i],)
            if cpt.shape != want:
                raise ValueError(f"{what}[{n!r}] must have shape {want} (parents then child); got {cpt.shape}")
            sums = np.asarray(cpt).sum(-1)
            if not np.allclose(sums, 1.0, atol=atol) or np.any(np.asarray(cpt) < 0):
                raise ValueError(f"{what}[{n!r}] rows must be distributions summing to 1")
            out.append(cpt)
    return DBN(structure, icpts, tcpts)


class DBNPosterior(NamedTuple):
    """Result of ``filter`` and ``smoother``.

    Attributes:
        log_evidence: f32[] log p(e) (f32[B] for a batch).
        marginals: {name: f32[T, card]} per-variable marginals at every step (f32[B, T, card] for a batch).
    """

    log_evidence: jax.Array
    marginals: dict


def factorial_hmm(initials: Sequence, transitions: Sequence, emission) -> DBN:
    """Factorial HMM: M independent chains h^m with p(h^m_{t+1} | h^m_t) and one observation
    p(x_t | h^1_t, ..., h^M_t).

    Args:
        initials: M arrays f32[K_m]; transitions: M arrays f32[K_m, K_m];
        emission: f32[K_1, ..., K_M, V].

    Variables: ``h1 .. hM`` and ``x``. Per-step cost O(M K^(M+1)) (plus K^M V for the emission).

    Examples:
        >>> model = factorial_hmm([np.ones(3) / 3] * 2, [np.eye(3) * 0.7 + 0.1] * 2, np.ones((3, 3, 4)) / 4)
        >>> model.names
        ('h1', 'h2', 'x')
    """
    M = len(initials)
    if len(transitions) != M:
        raise ValueError(f"initials and transitions must have the same length; got {M} and {len(transitions)}")
    cards = [int(np.shape(p)[0]) for p in initials]
    emission = jnp.asarray(emission)
    if emission.shape[:-1] != tuple(cards):
        raise ValueError(f"emission must have shape {tuple(cards)} + (V,); got {emission.shape}")
    names = [f"h{m + 1}" for m in range(M)]
    states = {n: c for n, c in zip(names, cards)}
    states["x"] = int(emission.shape[-1])
    return from_dict(
        states,
        initial_parents={"x": names},
        transition_parents={**{n: [f"{n}[-1]"] for n in names}, "x": names},
        initial_cpts={**dict(zip(names, initials)), "x": emission},
        transition_cpts={**dict(zip(names, transitions)), "x": emission},
    )


def coupled_hmm(initial_h, initial_v, transition_h, transition_v, emission_x, emission_y) -> DBN:
    """Coupled HMM: two chains that drive each other,
    p(h_{t+1} | h_t, v_t), p(v_{t+1} | v_t, h_t), p(x_t | h_t), p(y_t | v_t).

    Args:
        initial_h: f32[Kh].
        initial_v: f32[Kv].
        transition_h: f32[Kh, Kv, Kh] (axes h_t, v_t, h_{t+1}).
        transition_v: f32[Kv, Kh, Kv] (axes v_t, h_t, v_{t+1}).
        emission_x: f32[Kh, Vx].
        emission_y: f32[Kv, Vy].

    Returns:
        A ``DBN`` with variables ``h``, ``v``, ``x``, ``y``.

    Examples:
        >>> post = smoother(coupled_hmm(...), evidence)   # evidence int32[T, 4]: h, v, x, y; -1 hidden
    """
    Kh, Kv = int(np.shape(initial_h)[0]), int(np.shape(initial_v)[0])
    return from_dict(
        {"h": Kh, "v": Kv, "x": int(np.shape(emission_x)[-1]), "y": int(np.shape(emission_y)[-1])},
        initial_parents={"x": ["h"], "y": ["v"]},
        transition_parents={"h": ["h[-1]", "v[-1]"], "v": ["v[-1]", "h[-1]"], "x": ["h"], "y": ["v"]},
        initial_cpts={"h": initial_h, "v": initial_v, "x": emission_x, "y": emission_y},
        transition_cpts={"h": transition_h, "v": transition_v, "x": emission_x, "y": emission_y},
    )


def boltzmann_zipper(initial_h, transition_h, emission_x, initial_v, transition_v, emission_y) -> DBN:
    """Boltzmann zipper: a chain h (say audio) with its own memory, and a chain v (video) that
    follows its own dynamics and the concurrent h:
    p(h_{t+1} | h_t), p(x_t | h_t), p(v_{t+1} | v_t, h_{t+1}), p(y_t | v_t).

    Args:
        initial_h: f32[Kh].
        transition_h: f32[Kh, Kh].
        emission_x: f32[Kh, Vx].
        initial_v: f32[Kh, Kv] = p(v_1 | h_1).
        transition_v: f32[Kv, Kh, Kv] (axes v_t, h_{t+1}, v_{t+1}).
        emission_y: f32[Kv, Vy].

    Returns:
        A ``DBN`` with variables ``h``, ``v``, ``x``, ``y``.

    Examples:
        >>> model = boltzmann_zipper(pi_h, A_h, B_x, p_v_given_h, A_v, B_y)
    """
    Kh, Kv = int(np.shape(initial_h)[0]), int(np.shape(initial_v)[-1])
    return from_dict(
        {"h": Kh, "v": Kv, "x": int(np.shape(emission_x)[-1]), "y": int(np.shape(emission_y)[-1])},
        initial_parents={"v": ["h"], "x": ["h"], "y": ["v"]},
        transition_parents={"h": ["h[-1]"], "v": ["v[-1]", "h"], "x": ["h"], "y": ["v"]},
        initial_cpts={"h": initial_h, "v": initial_v, "x": emission_x, "y": emission_y},
        transition_cpts={"h": transition_h, "v": transition_v, "x": emission_x, "y": emission_y},
    )
