"""Hypothesis strategies for random small Bayesian networks, evidence and soft evidence.

Structure (number of variables, cardinalities, the DAG, the order of each parent list) is drawn by
hypothesis so that it shrinks; CPT values are drawn from a numpy generator seeded by hypothesis so
that they are generic (no accidental symmetries) yet reproducible.

CPT kinds, chosen per variable:
  dirichlet  Dirichlet(1) rows
  peaked     Dirichlet(0.1) rows floored at 1e-5 (near-deterministic, still strictly positive)
  zeros      Dirichlet(1) rows with about a third of the entries set exactly to zero (at least one
             entry of each row stays positive): makes impossible evidence possible
"""

from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from tests.bn.oracle import Spec, ancestral_sample, log_evidence

# Every hypothesis example compiles the engine for a new structure (about 1-2 s on 2 cores), so the
# example counts are small; GM_BN_EXAMPLES_SCALE=10 gives a soak run. Shrinking recompiles for every
# candidate, so it is off unless GM_BN_SHRINK=1 (the falsifying example is printed either way).
EXAMPLES_SCALE = float(os.environ.get("GM_BN_EXAMPLES_SCALE", "1"))
SHRINK = os.environ.get("GM_BN_SHRINK", "0") == "1"


def examples(k: int) -> int:
    return max(1, int(round(k * EXAMPLES_SCALE)))


def bn_settings(k: int):
    """Hypothesis settings for a test that compiles per example: k examples (scaled), no deadline."""
    phases = tuple(Phase) if SHRINK else tuple(p for p in Phase if p != Phase.shrink)
    return settings(
        max_examples=examples(k),
        deadline=None,
        phases=phases,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )

ALL_KINDS = ("dirichlet", "peaked", "zeros")
POSITIVE_KINDS = ("dirichlet", "peaked")


def random_cpt(rng: np.random.Generator, shape: tuple[int, ...], kind: str) -> np.ndarray:
    *pa, card = shape
    rows = int(np.prod(pa, dtype=np.int64)) if pa else 1
    if kind == "dirichlet":
        t = rng.dirichlet(np.ones(card), size=rows)
    elif kind == "peaked":
        t = rng.dirichlet(np.full(card, 0.1), size=rows)
        t = np.maximum(t, 1e-5)
        t = t / t.sum(axis=1, keepdims=True)
    elif kind == "zeros":
        t = rng.dirichlet(np.ones(card), size=rows)
        zero = rng.random(t.shape) < 0.35
        keep = rng.integers(0, card, size=rows)
        zero[np.arange(rows), keep] = False
        t = np.where(zero, 0.0, t)
        t = t / t.sum(axis=1, keepdims=True)
    else:  # pragma: no cover
        raise ValueError(kind)
    return t.reshape(shape)


def make_spec(cards, parents, kinds, seed, *, state_names=True) -> Spec:
    """A float64 Spec whose CPT values are exactly representable in float32 (rounded rows)."""
    rng = np.random.default_rng(seed)
    n = len(cards)
    names = tuple(f"X{i}" for i in range(n))
    cpts = []
    for i in range(n):
        shape = tuple(cards[p] for p in parents[i]) + (cards[i],)
        c = random_cpt(rng, shape, kinds[i])
        cpts.append(c.astype(np.float32).astype(np.float64))
    states = tuple(tuple(f"s{j}" for j in range(c)) for c in cards) if state_names else None
    return Spec(names, tuple(cards), tuple(tuple(p) for p in parents), tuple(cpts), states)


@st.composite
def specs(draw, *, min_vars=1, max_vars=7, max_card=4, max_parents=3, kinds=ALL_KINDS):
    """Random DAG over variables X0..X{n-1}; the topological order is a random permutation, so
    the net's variable order (X0, X1, ...) generally lists children before their parents."""
    n = draw(st.integers(min_vars, max_vars))
    cards = draw(st.lists(st.integers(2, max_card), min_size=n, max_size=n))
    topo = draw(st.permutations(list(range(n))))
    parents = [()] * n
    for k, v in enumerate(topo):
        earlier = list(topo[:k])
        if earlier:
            ps = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=min(len(earlier), max_parents)))
        else:
            ps = []
        parents[v] = tuple(ps)
    var_kinds = draw(st.lists(st.sampled_from(kinds), min_size=n, max_size=n))
    seed = draw(st.integers(0, 2**32 - 1))
    return make_spec(cards, parents, var_kinds, seed)


@st.composite
def evidences(draw, spec: Spec, *, possible=True, min_observed=0):
    """int32[n_vars] evidence, -1 unobserved. possible=True: the values come from a forward
    sample, so P(e) > 0; possible=False: arbitrary values (often impossible with zero CPTs)."""
    mask = draw(st.lists(st.booleans(), min_size=spec.n, max_size=spec.n))
    if sum(mask) < min_observed:
        idx = draw(st.permutations(list(range(spec.n))))
        for i in idx[:min_observed]:
            mask[i] = True
    if possible:
        seed = draw(st.integers(0, 2**32 - 1))
        x = ancestral_sample(spec, np.random.default_rng(seed), 1)[0]
    else:
        x = [draw(st.integers(0, c - 1)) for c in spec.cards]
    ev = np.where(np.asarray(mask), np.asarray(x), -1).astype(np.int32)
    if possible:
        assert log_evidence(spec, ev) > -np.inf
    return ev


@st.composite
def evidence_batches(draw, spec: Spec, *, possible=True, min_size=1, max_size=5):
    b = draw(st.integers(min_size, max_size))
    return np.stack([draw(evidences(spec, possible=possible)) for _ in range(b)]).astype(np.int32)


@st.composite
def soft_evidences(draw, spec: Spec, *, allow_zeros=True):
    """{name: f32[card]} likelihood vectors (not normalised) on a random subset of variables."""
    chosen = draw(st.lists(st.sampled_from(list(range(spec.n))), unique=True, max_size=spec.n))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    soft = {}
    for i in sorted(chosen):
        v = rng.uniform(0.05, 2.0, size=spec.cards[i])
        if allow_zeros:
            z = rng.random(spec.cards[i]) < 0.25
            z[rng.integers(spec.cards[i])] = False
            v = np.where(z, 0.0, v)
        soft[spec.names[i]] = v.astype(np.float32)
    return soft
