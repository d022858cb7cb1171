"""Float64 brute-force oracle for discrete Bayesian networks.

Everything here works on a plain description of a network, independent of ``gm.bn``:

    Spec(names, cards, parents, cpts)

with ``parents[i]`` a tuple of parent indices and ``cpts[i]`` a float64 array of shape
``(*cards[parents[i]], cards[i])`` (child axis last). The full joint is built by enumeration
(one einsum over every CPT), so these helpers are only for small networks (up to ~7 variables
of up to 4 states); ``log_prob``, ``ancestral_sample`` and ``family_log_factor`` work on any size.

Evidence follows the library's convention: an int array of length n_vars, -1 = unobserved.
Soft evidence is a dict ``{name: likelihood vector}`` multiplied into the joint.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple, Sequence

import numpy as np


class Spec(NamedTuple):
    names: tuple[str, ...]
    cards: tuple[int, ...]
    parents: tuple[tuple[int, ...], ...]
    cpts: tuple[np.ndarray, ...]  # float64, shape (*parent cards, card)
    states: tuple[tuple[str, ...], ...] | None = None

    @property
    def n(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)


def spec_from_net(net) -> Spec:
    """Read a ``gm.bn.BayesNet`` into a float64 Spec (uses only its public attributes)."""
    return Spec(
        names=tuple(net.names),
        cards=tuple(int(c) for c in net.cards),
        parents=tuple(tuple(int(p) for p in ps) for ps in net.parents),
        cpts=tuple(np.asarray(c, dtype=np.float64) for c in net.cpts),
        states=tuple(tuple(s) for s in net.states),
    )


def spec_to_dicts(spec: Spec, *, int_states: bool = False):
    """The ``states=, parents=, cpts=`` arguments of ``BayesNet.from_dict`` for this spec."""
    if int_states or spec.states is None:
        states = {nm: int(c) for nm, c in zip(spec.names, spec.cards)}
    else:
        states = {nm: list(s) for nm, s in zip(spec.names, spec.states)}
    parents = {nm: [spec.names[p] for p in ps] for nm, ps in zip(spec.names, spec.parents) if ps}
    cpts = {nm: np.asarray(c) for nm, c in zip(spec.names, spec.cpts)}
    return dict(states=states, parents=parents, cpts=cpts)


# ----------------------------------------------------------------------------------------------
# structure helpers
# ----------------------------------------------------------------------------------------------


def children(spec: Spec) -> tuple[tuple[int, ...], ...]:
    ch = [[] for _ in range(spec.n)]
    for i, ps in enumerate(spec.parents):
        for p in ps:
            ch[p].append(i)
    return tuple(tuple(sorted(c)) for c in ch)


def topological_order(spec: Spec) -> list[int]:
    order, done = [], set()
    remaining = list(range(spec.n))
    while remaining:
        progressed = False
        for i in list(remaining):
            if all(p in done for p in spec.parents[i]):
                order.append(i)
                done.add(i)
                remaining.remove(i)
                progressed = True
        if not progressed:
            raise ValueError("cycle")
    return order


def markov_blanket(spec: Spec, i: int) -> set[int]:
    ch = children(spec)
    mb = set(spec.parents[i]) | set(ch[i])
    for c in ch[i]:
        mb |= set(spec.parents[c])
    mb.discard(i)
    return mb


# ----------------------------------------------------------------------------------------------
# joint and evidence
# ----------------------------------------------------------------------------------------------


def joint(spec: Spec) -> np.ndarray:
    """P(x) as a float64 tensor of shape ``cards`` (axis i = variable i)."""
    operands = []
    for i, (ps, cpt) in enumerate(zip(spec.parents, spec.cpts)):
        operands += [np.asarray(cpt, np.float64), [*ps, i]]
    if spec.n == 0:
        return np.ones(())
    return np.einsum(*operands, list(range(spec.n)), optimize=False)


def evidence_weights(spec: Spec, ev=None, soft=None) -> list[np.ndarray]:
    """Per-variable weight vectors: indicator of the observed value times the soft likelihood."""
    w = [np.ones(c) for c in spec.cards]
    if ev is not None:
        ev = np.asarray(ev)
        for i, v in enumerate(ev):
            if v >= 0:
                w[i] = np.zeros(spec.cards[i])
                w[i][int(v)] = 1.0
    if soft:
        for name, vec in soft.items():
            i = spec.index(name)
            w[i] = w[i] * np.asarray(vec, np.float64)
    return w


def weighted_joint(spec: Spec, ev=None, soft=None, *, P: np.ndarray | None = None) -> np.ndarray:
    """P(x) * prod_i w_i(x_i): the joint restricted to the evidence (unnormalised)."""
    P = joint(spec) if P is None else P
    out = P
    for i, w in enumerate(evidence_weights(spec, ev, soft)):
        shape = [1] * spec.n
        shape[i] = spec.cards[i]
        out = out * w.reshape(shape)
    return out


def log_prob(spec: Spec, x) -> float:
    """log P(x) of a full assignment, summed family by family (any network size)."""
    x = [int(v) for v in np.asarray(x)]
    total = 0.0
    for i, (ps, cpt) in enumerate(zip(spec.parents, spec.cpts)):
        p = float(cpt[tuple(x[q] for q in ps) + (x[i],)])
        if p <= 0.0:
            return -np.inf
        total += np.log(p)
    return total


def log_evidence(spec: Spec, ev=None, soft=None, *, P=None) -> float:
    Z = weighted_joint(spec, ev, soft, P=P).sum()
    return float(np.log(Z)) if Z > 0 else -np.inf


def marginals(spec: Spec, ev=None, soft=None, *, P=None) -> dict[str, np.ndarray]:
    """P(X_i | e) for every variable; all-zero vectors when P(e) = 0."""
    W = weighted_joint(spec, ev, soft, P=P)
    Z = W.sum()
    out = {}
    for i, name in enumerate(spec.names):
        axes = tuple(a for a in range(spec.n) if a != i)
        m = W.sum(axis=axes)
        out[name] = m / Z if Z > 0 else np.zeros(spec.cards[i])
    return out


def unnormalised_query(spec: Spec, idx: Sequence[int], ev=None, soft=None, *, P=None) -> np.ndarray:
    """P(X_idx, e) with axes in the order of idx."""
    W = weighted_joint(spec, ev, soft, P=P)
    idx = list(idx)
    letters = list(range(spec.n))
    return np.einsum(W, letters, idx)


def query(spec: Spec, idx: Sequence[int], ev=None, soft=None, *, P=None) -> np.ndarray:
    T = unnormalised_query(spec, idx, ev, soft, P=P)
    Z = T.sum()
    return T / Z if Z > 0 else np.zeros_like(T)


def mpe_log_value(spec: Spec, ev=None, soft=None, *, P=None) -> float:
    """max_x log P(x, e)."""
    m = weighted_joint(spec, ev, soft, P=P).max()
    return float(np.log(m)) if m > 0 else -np.inf


def assignment_log_value(spec: Spec, x, ev=None, soft=None, *, P=None) -> float:
    """log P(x, e) of a full assignment (-inf when x contradicts e)."""
    W = weighted_joint(spec, ev, soft, P=P)
    v = W[tuple(int(a) for a in np.asarray(x))]
    return float(np.log(v)) if v > 0 else -np.inf


def map_values(spec: Spec, idx: Sequence[int], ev=None, *, P=None) -> np.ndarray:
    """P(X_idx = y, e) for every y (others summed out); MAP is its argmax."""
    return unnormalised_query(spec, idx, ev, P=P)


def consistent(x, ev) -> bool:
    x, ev = np.asarray(x), np.asarray(ev)
    obs = ev >= 0
    return bool(np.all(x[obs] == ev[obs]))


def grad_log_evidence(spec: Spec, ev=None, soft=None) -> list[np.ndarray]:
    """d log P(e) / d cpt_i[u, x] for every CPT entry, treating entries as free parameters.

    d P(e) / d theta_{i,u,x} is the contraction of every other factor (and the evidence weights)
    with (U_i, X_i) left open, which is well defined also at zero entries; divided by P(e).
    """
    w = evidence_weights(spec, ev, soft)
    Z = weighted_joint(spec, ev, soft).sum()
    grads = []
    for i in range(spec.n):
        operands = []
        for j, (ps, cpt) in enumerate(zip(spec.parents, spec.cpts)):
            if j != i:
                operands += [cpt, [*ps, j]]
        for j in range(spec.n):
            operands += [w[j], [j]]
        out = [*spec.parents[i], i]
        grads.append(np.einsum(*operands, out, optimize=False) / Z)
    return grads


# ----------------------------------------------------------------------------------------------
# independence
# ----------------------------------------------------------------------------------------------


def ci_violation(P: np.ndarray, xs: Sequence[int], ys: Sequence[int], zs: Sequence[int]) -> float:
    """max |P(x,y,z) P(z) - P(x,z) P(y,z)|: zero iff X _||_ Y | Z in the joint P."""
    n = P.ndim
    xs, ys, zs = list(xs), list(ys), list(zs)
    keep = xs + ys + zs
    Pxyz = np.einsum(P, list(range(n)), keep)
    nx_, ny_ = len(xs), len(ys)
    ax = tuple(range(nx_))
    ay = tuple(range(nx_, nx_ + ny_))
    Pxz = Pxyz.sum(axis=ay, keepdims=True)
    Pyz = Pxyz.sum(axis=ax, keepdims=True)
    Pz = Pxyz.sum(axis=ax + ay, keepdims=True)
    return float(np.abs(Pxyz * Pz - Pxz * Pyz).max())


# ----------------------------------------------------------------------------------------------
# sampling (numpy, any network size)
# ----------------------------------------------------------------------------------------------


def ancestral_sample(spec: Spec, rng: np.random.Generator, n: int) -> np.ndarray:
    """int[n, n_vars] forward samples drawn in float64 with numpy."""
    out = np.zeros((n, spec.n), dtype=np.int64)
    for i in topological_order(spec):
        ps = spec.parents[i]
        rows = spec.cpts[i][tuple(out[:, p] for p in ps)] if ps else np.broadcast_to(
            spec.cpts[i], (n, spec.cards[i])
        )
        rows = rows / rows.sum(axis=1, keepdims=True)
        u = rng.random(n)[:, None]
        cdf = np.cumsum(rows, axis=1)
        out[:, i] = np.minimum((u > cdf).sum(axis=1), spec.cards[i] - 1)
    return out


def all_assignments(cards: Sequence[int]):
    return itertools.product(*[range(c) for c in cards])


# ----------------------------------------------------------------------------------------------
# burglary network (Russell & Norvig)
# ----------------------------------------------------------------------------------------------


def burglary_dicts():
    yes_no = ["no", "yes"]
    states = {n: list(yes_no) for n in ["Burglary", "Earthquake", "Alarm", "JohnCalls", "MaryCalls"]}
    parents = {"Alarm": ["Burglary", "Earthquake"], "JohnCalls": ["Alarm"], "MaryCalls": ["Alarm"]}
    p_alarm = np.array([[0.001, 0.29], [0.94, 0.95]])  # [B, E] -> P(A=yes)
    cpts = {
        "Burglary": [0.999, 0.001],
        "Earthquake": [0.998, 0.002],
        "Alarm": np.stack([1 - p_alarm, p_alarm], axis=-1),
        "JohnCalls": [[0.95, 0.05], [0.10, 0.90]],
        "MaryCalls": [[0.99, 0.01], [0.30, 0.70]],
    }
    return dict(states=states, parents=parents, cpts=cpts)


# ----------------------------------------------------------------------------------------------
# max-product variable elimination (log space, float64): MPE value on networks too big to enumerate
# ----------------------------------------------------------------------------------------------


_ORDERS: dict = {}


def elimination_order(spec: Spec) -> list[int]:
    """Greedy min-size elimination order of the moral graph (cached per structure)."""
    key = (spec.cards, spec.parents)
    if key in _ORDERS:
        return _ORDERS[key]
    nbrs = [set() for _ in range(spec.n)]
    for i, ps in enumerate(spec.parents):
        fam = set(ps) | {i}
        for u in fam:
            nbrs[u] |= fam - {u}
    remaining, order = set(range(spec.n)), []
    while remaining:
        v = min(sorted(remaining), key=lambda u: np.prod([spec.cards[w] for w in nbrs[u] | {u}]))
        order.append(v)
        remaining.discard(v)
        for a in nbrs[v]:
            nbrs[a] |= nbrs[v] - {a}
            nbrs[a].discard(v)
    _ORDERS[key] = order
    return order


def _eliminate_all(spec: Spec, ev=None, soft=None, *, combine: str) -> float:
    """Log-space variable elimination over every variable (min-degree order); combine = "max" gives
    max_x log P(x, e), combine = "sum" gives log P(e) (log-sum-exp, no underflow)."""
    w = evidence_weights(spec, ev, soft)
    factors = []  # (vars tuple, log table)
    with np.errstate(divide="ignore"):
        for i, (ps, cpt) in enumerate(zip(spec.parents, spec.cpts)):
            factors.append((tuple(ps) + (i,), np.log(cpt) + np.log(w[i])))  # evidence on the child axis
    total = 0.0
    for v in elimination_order(spec):
        touching = [f for f in factors if v in f[0]]
        factors = [f for f in factors if v not in f[0]]
        scope = sorted(set().union(*[set(vs) for vs, _ in touching]))
        acc = np.zeros([spec.cards[u] for u in scope])
        for vs, t in touching:  # broadcast t (axes vs) onto scope
            tt = np.transpose(t, [vs.index(u) for u in scope if u in vs])
            acc = acc + tt.reshape([spec.cards[u] if u in vs else 1 for u in scope])
        axis = scope.index(v)
        if combine == "max":
            reduced = acc.max(axis=axis)
        else:
            m = acc.max(axis=axis, keepdims=True)
            m_safe = np.where(np.isfinite(m), m, 0.0)
            with np.errstate(divide="ignore"):
                reduced = np.log(np.exp(acc - m_safe).sum(axis=axis)) + np.squeeze(m_safe, axis)
        new_scope = tuple(u for u in scope if u != v)
        if new_scope:
            factors.append((new_scope, reduced))
        else:
            total += float(reduced)
    return total


def mpe_log_value_ve(spec: Spec, ev=None) -> float:
    """max_x log P(x, e) by max-product variable elimination, in log space (any moderate network)."""
    return _eliminate_all(spec, ev, combine="max")


def log_evidence_ve(spec: Spec, ev=None, soft=None) -> float:
    """log P(e) by sum-product variable elimination in log space (no underflow in float64 either)."""
    return _eliminate_all(spec, ev, soft, combine="sum")


def marginals_ve(spec: Spec, ev=None, soft=None, names=None) -> dict[str, np.ndarray]:
    """P(X_i | e) by one elimination per state (for moderate networks; observed: one-hot)."""
    ev = np.full(spec.n, -1) if ev is None else np.asarray(ev)
    log_z = log_evidence_ve(spec, ev, soft)
    out = {}
    for i, name in enumerate(spec.names):
        if names is not None and name not in names:
            continue
        if ev[i] >= 0:
            out[name] = np.eye(spec.cards[i])[ev[i]]
            continue
        logs = []
        for x in range(spec.cards[i]):
            e2 = ev.copy()
            e2[i] = x
            logs.append(log_evidence_ve(spec, e2, soft))
        out[name] = np.exp(np.asarray(logs) - log_z)
    return out


# ----------------------------------------------------------------------------------------------
# a small BIF reader of our own (independent of gm.bn and of pgmpy), for the bundled networks
# ----------------------------------------------------------------------------------------------


def parse_bif_text(text: str) -> Spec:
    """Parse the BIF subset used by the bnlearn repository (variable blocks with discrete types,
    probability blocks with ``table`` or one ``(parent states) values;`` row per configuration)."""
    import re

    text = re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.DOTALL)
    names, states = [], []
    for m in re.finditer(
        r"variable\s+([^\s{]+)\s*\{[^}]*?type\s+discrete\s*\[\s*(\d+)\s*\]\s*\{([^}]*)\}", text, re.DOTALL
    ):
        names.append(m.group(1))
        raw = m.group(3)
        sts = [s.strip() for s in (raw.split(",") if "," in raw else raw.split()) if s.strip()]
        assert len(sts) == int(m.group(2)), (m.group(1), sts)
        states.append(tuple(sts))
    index = {n: i for i, n in enumerate(names)}
    cards = [len(s) for s in states]
    parents = [()] * len(names)
    cpts = [None] * len(names)
    for m in re.finditer(r"probability\s*\(([^)]*)\)\s*\{([^}]*)\}", text, re.DOTALL):
        head, body = m.group(1), m.group(2)
        child, _, rest = head.partition("|")
        i = index[child.strip()]
        ps = tuple(index[p.strip()] for p in rest.split(",") if p.strip())
        parents[i] = ps
        pcards = [cards[p] for p in ps]
        table = np.full(pcards + [cards[i]], np.nan)
        for t in re.finditer(r"table\s+([^;]*);", body):
            vals = np.array([float(v) for v in t.group(1).replace(",", " ").split()])
            # child-major (the child's state varies slowest), as pgmpy reads it
            table = np.moveaxis(vals.reshape([cards[i]] + pcards), 0, -1)
        for r in re.finditer(r"\(([^)]*)\)\s*([^;]*);", body):
            cfg = [s.strip() for s in r.group(1).split(",")]
            idx = tuple(states[p].index(s) for p, s in zip(ps, cfg))
            table[idx] = [float(v) for v in r.group(2).replace(",", " ").split()]
        assert not np.isnan(table).any(), names[i]
        cpts[i] = table
    return Spec(tuple(names), tuple(cards), tuple(parents), tuple(cpts), tuple(states))


def read_bif_file(path) -> Spec:
    import gzip

    path = str(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as fh:
        return parse_bif_text(fh.read())


def normalized(spec: Spec) -> Spec:
    """The spec with every CPT row renormalised in float64 (exact conditional independences)."""
    return spec._replace(cpts=tuple(c / c.sum(axis=-1, keepdims=True) for c in spec.cpts))
