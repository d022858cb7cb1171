"""Greedy hill climbing over DAGs (add, delete, reverse one edge), with a tabu list, white and black lists,
a maximum in-degree and random restarts.

Each step takes the legal move with the largest score change (steepest ascent) until no move improves the
score by at least ``epsilon``; up to there this is pgmpy's ``HillClimbSearch`` (Koller & Friedman,
section 18.4.3), with the same tabu rule (the last ``tabu_length`` moves cannot be undone). Then a tabu
phase (on by default, ``escape`` = n_vars moves): the search keeps taking the best move the tabu list
allows, even one that lowers the score, and stops after ``escape`` moves in a row that do not beat the best
graph seen, which it returns (a greedy climb's first moves are near-ties between i -> j and j -> i, and
the one taken decides the local optimum; the tabu phase climbs out of most of the poor ones). Its budget:
at most ``escape`` extra kernel calls per escape attempt. ``escape=0`` is pgmpy's plain climb.

Because the score is decomposable, a move only changes the local scores of the children whose parent
sets change. The search keeps two matrices of score changes, ``add[i, j] = s(j, P_j + i) - s(j, P_j)`` and
``delete[i, j] = s(j, P_j - i) - s(j, P_j)`` (a reversal i -> j is ``delete[i, j] + add[j, i]``), and after a
move recomputes only the changed children's columns: every family those columns need (about n of them) is
scored in one batched kernel call (`NeighbourhoodScorer`). Legality (acyclicity) comes from the transitive
closure of the current graph, so one step is a handful of numpy operations on n x n arrays plus at most
one kernel call.

Examples:
    >>> from gm.bn import Structure
    >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
    >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
    >>> result = hill_climb(data, variables, escape=0)        # BIC, from the empty graph, greedy only
    >>> result.structure.parents, result.n_iterations         # A -> C <- B, in two moves
    (((), (), (0, 1)), 2)
"""

from __future__ import annotations

from collections import deque

import jax
import numpy as np

from gm.learn.structure.neighbourhood import NeighbourhoodScorer
from gm.learn.structure.search import SearchResult, edge_indices, make_structure, transitive_closure

__all__ = ["hill_climb", "hill_climb_restarts"]


class _Climber:
    def __init__(self, scorer: NeighbourhoodScorer, *, max_indegree, whitelist, blacklist, tabu_length, epsilon):
        self.scorer = scorer
        n = len(scorer.cards)
        self.n = n
        self.max_indegree = n if max_indegree is None else int(max_indegree)
        self.allowed = ~np.eye(n, dtype=bool)
        for i, j in blacklist:
            self.allowed[i, j] = False
        self.required = np.zeros((n, n), bool)
        for i, j in whitelist:
            self.required[i, j] = True
        self.tabu_length = int(tabu_length)
        self.epsilon = float(epsilon)
        self._memo = scorer.memo  # shared by every climb on this scorer (restarts revisit families)

    def _refresh(self, parents, children, add, delete, local):
        """Recompute the add/delete columns of ``children`` (one batched kernel call for all of them)."""
        keys = [(j, frozenset(parents[j])) for j in children]
        todo = [j for j, key in zip(children, keys) if key not in self._memo]
        if todo:
            hood = self.scorer(todo, [parents[j] for j in todo])
            for b, j in enumerate(todo):
                dels = {p: hood.delete[b, k] for k, p in enumerate(parents[j])}
                self._memo[(j, frozenset(parents[j]))] = (hood.current[b], hood.add[b], dels)
        for j, key in zip(children, keys):
            current, adds, dels = self._memo[key]
            local[j] = current
            column = adds - current
            column[j] = -np.inf
            column[list(parents[j])] = -np.inf
            column[~self.allowed[:, j]] = -np.inf
            if len(parents[j]) >= self.max_indegree:
                column[:] = -np.inf
            add[:, j] = column
            delete[:, j] = -np.inf
            for p, v in dels.items():
                delete[p, j] = v - current

    def climb(self, parents, max_iter, rng=None, escape=0):
        n = self.n
        parents = [list(p) for p in parents]
        adj = np.zeros((n, n), bool)
        for j, pa in enumerate(parents):
            adj[pa, j] = True
        add = np.full((n, n), -np.inf)
        delete = np.full((n, n), -np.inf)
        local = np.zeros(n)
        self._refresh(parents, range(n), add, delete, local)
        tabu: deque = deque(maxlen=self.tabu_length)
        tabu_add = np.zeros((n, n), int)  # counts of ("+", (i, j)) / ("-", ...) / ("flip", ...) in the deque
        tabu_del = np.zeros((n, n), int)
        tabu_flip = np.zeros((n, n), int)
        boards = {"+": tabu_add, "-": tabu_del, "flip": tabu_flip}
        steps = 0
        best_parents, best_total, since_best = [list(p) for p in parents], float(np.sum(local)), 0
        for _ in range(max_iter):
            reach = transitive_closure(adj)
            indeg = adj.sum(axis=0)
            # add i -> j: no edge either way, no path j ~> i, in-degree room, not tabu, allowed
            ok_add = (~adj & ~adj.T & ~reach.T & self.allowed & (tabu_add == 0)
                      & (indeg[None, :] < self.max_indegree))
            gain_add = np.where(ok_add, add, -np.inf)
            # delete i -> j
            ok_del = adj & ~self.required & (tabu_del == 0)
            gain_del = np.where(ok_del, delete, -np.inf)
            # reverse i -> j: no other directed path i ~> j, j -> i allowed, room at i, not tabu
            other_path = (adj.astype(np.int32) @ reach.astype(np.int32)) > 0  # i -> k ~> j for some k
            ok_rev = (adj & ~other_path & ~self.required & self.allowed.T & (tabu_flip == 0) & (tabu_flip.T == 0)
                      & (indeg[:, None] + 1 <= self.max_indegree))
            gain_rev = np.where(ok_rev, delete + add.T, -np.inf)
            gains = np.stack([gain_add, gain_del, gain_rev])
            best = int(np.argmax(gains))
            if rng is not None and np.isfinite(gains.flat[best]):
                # ties (within float32 rounding) broken at random: i -> j and j -> i often score the same
                top = gains.flat[best]
                near = np.flatnonzero(gains >= top - 1e-5 * abs(top) - 1e-3)
                best = int(rng.choice(near))
            kind, i, j = np.unravel_index(best, gains.shape)
            delta = gains[kind, i, j]
            if not np.isfinite(delta) or (delta < self.epsilon and since_best >= escape):
                break
            steps += 1
            if kind == 0:
                parents[j].append(i)
                adj[i, j] = True
                entry = ("-", i, j)
                changed = [j]
            elif kind == 1:
                parents[j].remove(i)
                adj[i, j] = False
                entry = ("+", i, j)
                changed = [j]
            else:
                parents[j].remove(i)
                parents[i].append(j)
                adj[i, j] = False
                adj[j, i] = True
                entry = ("flip", i, j)
                changed = [i, j]
            if self.tabu_length > 0:
                if len(tabu) == tabu.maxlen:
                    old = tabu.popleft()
                    boards[old[0]][old[1], old[2]] -= 1
                tabu.append(entry)
                boards[entry[0]][entry[1], entry[2]] += 1
            self._refresh(parents, changed, add, delete, local)
            total = float(np.sum(local))
            if total >= best_total + self.epsilon:
                best_parents, best_total, since_best = [list(p) for p in parents], total, 0
            else:
                since_best += 1
        return best_parents, best_total, steps


def _setup(data, variables, score, equivalent_sample_size, max_indegree, whitelist, blacklist, tabu_length,
           epsilon, start, scorer):
    if scorer is None:
        scorer = NeighbourhoodScorer(data, variables, score=score, equivalent_sample_size=equivalent_sample_size)
    n = len(scorer.cards)
    white = edge_indices(variables, whitelist, "whitelist")
    black = edge_indices(variables, blacklist, "blacklist")
    for i, j in white + black:
        if not (0 <= i < n and 0 <= j < n) or i == j:
            raise ValueError(f"edge ({i}, {j}) is not a pair of distinct variables among {n}")
    if set(white) & set(black):
        raise ValueError(f"edges {sorted(set(white) & set(black))} are both white- and blacklisted")
    if max_indegree is not None and max_indegree < 0:
        raise ValueError(f"max_indegree must be >= 0, got {max_indegree}")
    climber = _Climber(scorer, max_indegree=max_indegree, whitelist=white, blacklist=black,
                       tabu_length=tabu_length, epsilon=epsilon)
    if start is None:
        parents = [[] for _ in range(n)]
    else:
        sp = getattr(start, "structure", start)
        sp = getattr(sp, "parents", sp)
        if len(sp) != n:
            raise ValueError(f"start has {len(sp)} variables, the data {n}")
        parents = [list(p) for p in sp]
    for i, j in white:
        if i not in parents[j]:
            parents[j].append(i)
    for i, j in black:
        if i in parents[j]:
            parents[j].remove(i)
    make_structure(variables if variables is not None else scorer.cards, parents, n)  # raises on a cycle
    if max_indegree is not None and any(len(p) > max_indegree for p in parents):
        raise ValueError("the start graph (with the whitelist) exceeds max_indegree")
    return climber, parents


def hill_climb(data, variables=None, *, score: str = "bic", equivalent_sample_size: float = 10.0,
               start=None, tabu_length: int = 100, max_indegree: int | None = None, whitelist=None,
               blacklist=None, epsilon: float = 1e-4, max_iter: int = 1_000_000, escape: int | None = None,
               scorer: NeighbourhoodScorer | None = None) -> SearchResult:
    """Greedy hill climbing from ``start`` (default: no edges) to a local optimum of the score.

    Args:
      data: ``int32[N, n_vars]`` complete records.
      variables: a `Structure`/`BayesNet` (names, states; its edges are ignored) or cardinalities.
      score, equivalent_sample_size: see `gm.learn.structure.family_scores`.
      start: a `Structure`, `BayesNet` or parent-index lists to start from.
      tabu_length: the last ``tabu_length`` moves may not be undone.
      max_indegree: the most parents any variable may have.
      whitelist: edges ``(parent, child)`` (names or indices) that must be present (start has them, and
        they are never deleted or reversed); blacklist: edges that never appear.
      epsilon: stop when the best move improves the score by less than this.
      max_iter: the most moves (the greedy and the tabu phase together).
      escape: after the greedy climb, the moves in a row that may fail to beat the best graph before the
        tabu phase stops (None: n_vars; 0: no tabu phase, pgmpy's ``HillClimbSearch``).
      scorer: a `NeighbourhoodScorer` to share between searches on the same data and score.

    Returns:
      `SearchResult` (the best structure seen, its total score, the moves taken in both phases).

    Raises:
      ValueError: bad white/black lists, a negative ``max_indegree``, or a start graph with a cycle or too
        many parents.

    Examples:
      >>> from gm.bn import Structure
      >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
      >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
      >>> result = hill_climb(data, variables, score="bdeu", max_indegree=1)
      >>> result.structure.parents                              # at most one parent each: C -> B, A -> C
      ((), (2,), (0,))
      >>> from gm.learn import mle
      >>> print(mle(result.structure, data).cpt("C"))          # fit the CPTs of the learned graph: P(C | A)
      [[0.5 0.5]
       [0.  1. ]]
    """
    climber, parents = _setup(data, variables, score, equivalent_sample_size, max_indegree, whitelist, blacklist,
                              tabu_length, epsilon, start, scorer)
    parents, total, steps = climber.climb(parents, max_iter, escape=climber.n if escape is None else int(escape))
    return SearchResult(make_structure(variables if variables is not None else climber.scorer.cards, parents,
                                       climber.n), total, steps)


def hill_climb_restarts(key, data, variables=None, *, restarts: int = 5, perturbation: int | None = None,
                        **kwargs) -> SearchResult:
    """Hill climbing, then ``restarts`` more climbs, alternately from the same start with ties broken at random
    (i -> j and j -> i often score the same, and the first choices decide the local optimum) and from the best
    graph so far perturbed by ``perturbation`` random legal moves (default: n_vars // 2 + 1); returns the best.

    Args:
      key: a `jax.random` key (the perturbations).
      data: ``int32[N, n_vars]`` complete records.
      variables: a `Structure`/`BayesNet` (names, states) or cardinalities.
      restarts: climbs after the first.
      perturbation: random legal moves applied to the best graph before a perturbed climb.
      **kwargs: as `hill_climb` (one scorer is shared by all climbs).

    Returns:
      `SearchResult` of the best climb (its ``n_iterations`` counts the moves of every climb).

    Examples:
      >>> from gm.bn import Structure
      >>> data = jnp.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]] * 50)    # C = A or B: int32[200, 3]
      >>> variables = Structure(("A", "B", "C"), (("0", "1"),) * 3, ((), (), ()))
      >>> result = hill_climb_restarts(jax.random.key(0), data, variables, restarts=2)
      >>> result.structure.parents, round(result.score, 2)
      (((), (), (0, 1)), -293.15)
    """
    kwargs = dict(kwargs)
    if kwargs.get("scorer") is None:
        kwargs["scorer"] = NeighbourhoodScorer(data, variables, score=kwargs.get("score", "bic"),
                                               equivalent_sample_size=kwargs.get("equivalent_sample_size", 10.0))
    climber, start = _setup(data, variables, kwargs.get("score", "bic"), kwargs.get("equivalent_sample_size", 10.0),
                            kwargs.get("max_indegree"), kwargs.get("whitelist"), kwargs.get("blacklist"),
                            kwargs.get("tabu_length", 100), kwargs.get("epsilon", 1e-4), kwargs.get("start"),
                            kwargs["scorer"])
    max_iter = kwargs.get("max_iter", 1_000_000)
    escape = kwargs.get("escape")
    escape = climber.n if escape is None else int(escape)
    seed = np.asarray(jax.random.key_data(key)).ravel().astype(np.uint32)
    rng = np.random.default_rng(seed)
    n = climber.n
    parents, total, steps = climber.climb(start, max_iter, escape=escape)
    best = (parents, total)
    k = perturbation if perturbation is not None else n // 2 + 1
    white = set(edge_indices(variables, kwargs.get("whitelist"), "whitelist"))
    black = set(edge_indices(variables, kwargs.get("blacklist"), "blacklist"))
    max_in = kwargs.get("max_indegree")
    max_in = n if max_in is None else max_in
    for r in range(restarts):
        if r % 2 == 0:  # the same start, ties broken at random
            begin = [list(p) for p in start]
        else:  # the best graph so far, perturbed
            begin = [list(p) for p in best[0]]
            for _ in range(k):
                _random_move(rng, begin, white, black, max_in)
        parents, total, more = climber.climb(begin, max_iter, rng, escape=escape)
        steps += more
        if total > best[1]:
            best = (parents, total)
    return SearchResult(make_structure(variables if variables is not None else climber.scorer.cards, best[0], n),
                        best[1], steps)


def _random_move(rng, parents, white, black, max_in):
    n = len(parents)
    adj = np.zeros((n, n), bool)
    for j, pa in enumerate(parents):
        adj[pa, j] = True
    reach = transitive_closure(adj)
    i, j = rng.choice(n, 2, replace=False)
    if adj[i, j] and (i, j) not in white:
        if rng.random() < 0.5 or (j, i) in black or len(parents[i]) >= max_in:
            parents[j].remove(i)
        else:
            adj2 = adj.copy()
            adj2[i, j] = False
            if not transitive_closure(adj2)[i, j]:
                parents[j].remove(i)
                parents[i].append(j)
    elif not adj[i, j] and not adj[j, i] and not reach[j, i] and (i, j) not in black and len(parents[j]) < max_in:
        parents[j].append(i)
