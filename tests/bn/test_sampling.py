"""Sampling and independence: ancestral samples and likelihood weighting vs exact (float64)
probabilities, d-separation vs networkx and vs conditional independence in the joint, Markov blankets.

Statistical checks use fixed keys and tolerances of 5 binomial standard errors (plus a small floor),
so they are deterministic and a false failure would need a 5-sigma event.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gm import bn
from tests.bn import oracle as O
from tests.bn._util import build
from tests.bn.strategies import bn_settings, make_spec, specs

SIGMAS = 5.0


def fixed_specs():
    """Three fixed networks: mixed CPT kinds, variables not in topological order, up to 3 parents."""
    return [
        make_spec([2, 3, 2, 4, 2], [(2,), (0, 2), (), (1,), (3, 0)], ["dirichlet", "zeros", "peaked", "dirichlet", "zeros"], seed=1),
        make_spec(
            [3, 2, 2, 3, 2, 4, 2],
            [(), (0,), (0, 1), (2,), (1, 3), (4, 2, 0), (5,)],
            ["dirichlet", "peaked", "zeros", "dirichlet", "dirichlet", "zeros", "peaked"],
            seed=2,
        ),
        make_spec([4, 2, 3], [(1, 2), (), (1,)], ["zeros", "dirichlet", "dirichlet"], seed=3),
    ]


def family_tables(spec: O.Spec, P: np.ndarray):
    """For each variable, P(parents, child) with axes (*parents, child)."""
    out = []
    for i, ps in enumerate(spec.parents):
        out.append(np.einsum(P, list(range(spec.n)), [*ps, i]))
    return out


def empirical(samples: np.ndarray, axes: list[int], cards: list[int], weights=None) -> np.ndarray:
    flat = np.ravel_multi_index(tuple(samples[:, a] for a in axes), cards)
    counts = np.bincount(flat, weights=weights, minlength=int(np.prod(cards)))
    total = len(samples) if weights is None else weights.sum()
    return (counts / total).reshape(cards)


def assert_frequencies(freq, p, n_eff, what):
    p = np.clip(p, 0.0, 1.0)
    tol = SIGMAS * np.sqrt(p * (1 - p) / n_eff) + 2e-3
    assert np.isfinite(tol).all() and np.isfinite(freq).all(), (what, freq, p, n_eff)
    bad = np.abs(freq - p) > tol
    assert not bad.any(), f"{what}: frequencies {freq[bad]} vs probabilities {p[bad]} (n_eff={n_eff:.0f})"


# ------------------------------------------------------------------------------------------------
# ancestral sampling
# ------------------------------------------------------------------------------------------------


def test_sample_shape_dtype_range_and_key():
    spec = fixed_specs()[1]
    net = build(spec)
    key = jax.random.key(0)
    sample = jax.jit(bn.sample, static_argnums=2)
    s = np.asarray(sample(net, key, 500))
    assert s.shape == (500, spec.n) and s.dtype == np.int32
    assert (s >= 0).all() and (s < np.asarray(spec.cards)).all()
    np.testing.assert_array_equal(s, np.asarray(sample(net, key, 500)))  # same key, same samples
    assert (s != np.asarray(sample(net, jax.random.key(1), 500))).any()
    plain = np.asarray(bn.sample(net, key, 500))  # the plain call agrees with the jitted one
    np.testing.assert_array_equal(plain, s)
    # legacy uint32 keys work too
    assert np.asarray(bn.sample(net, jax.random.PRNGKey(3), 4)).shape == (4, spec.n)


@pytest.mark.parametrize("which", [0, 1, 2])
def test_sample_frequencies_match_exact(which):
    spec = fixed_specs()[which]
    net = build(spec)
    n = 40_000
    s = np.asarray(jax.jit(bn.sample, static_argnums=2)(net, jax.random.key(100 + which), n))
    P = O.joint(spec)
    marg = O.marginals(spec)
    for i, name in enumerate(spec.names):
        assert_frequencies(empirical(s, [i], [spec.cards[i]]), marg[name], n, f"P({name})")
    # families: the joint of each variable with its parents (checks the conditional structure)
    for i, fam in enumerate(family_tables(spec, P)):
        axes = [*spec.parents[i], i]
        freq = empirical(s, axes, [spec.cards[a] for a in axes])
        assert_frequencies(freq, fam, n, f"P(family of {spec.names[i]})")
        # zero-probability configurations are never sampled
        assert (freq[fam == 0] == 0).all(), f"impossible configuration of {spec.names[i]}'s family sampled"
    # no sample has probability zero
    for x in s[:2000]:
        assert O.log_prob(spec, x) > -np.inf


def test_sample_asia_frequencies():
    import pgmpy  # noqa: F401  (the network ships with pgmpy)
    from pathlib import Path

    path = Path(pgmpy.__file__).parent / "utils" / "example_models" / "asia.bif.gz"
    net = bn.read_bif(path)
    spec = O.spec_from_net(net)
    n = 40_000
    s = np.asarray(bn.sample(net, jax.random.key(7), n))
    for name, p in O.marginals(spec).items():
        i = spec.index(name)
        assert_frequencies(empirical(s, [i], [spec.cards[i]]), p, n, f"asia P({name})")


# ------------------------------------------------------------------------------------------------
# likelihood weighting
# ------------------------------------------------------------------------------------------------


def lw_cases():
    cases = []
    for which, spec in enumerate(fixed_specs()):
        rng = np.random.default_rng(which)
        x = O.ancestral_sample(spec, rng, 2)
        ev_a = np.where(np.arange(spec.n) % 2 == 1, x[0], -1)  # every other variable
        ev_b = np.where(np.arange(spec.n) == spec.n - 1, x[1], -1)  # one variable
        cases += [(which, ev_a.astype(np.int32)), (which, ev_b.astype(np.int32))]
    return cases


@pytest.mark.parametrize("which,ev", lw_cases())
def test_likelihood_weighting(which, ev):
    spec = fixed_specs()[which]
    net = build(spec)
    n = 20_000
    out = jax.jit(bn.likelihood_weighting, static_argnums=3)(net, jax.random.key(11 + which), jnp.asarray(ev), n)
    samples, logw = np.asarray(out.samples), np.asarray(out.log_weights, np.float64)
    assert samples.shape == (n, spec.n) and samples.dtype == np.int32
    assert logw.shape == (n,)
    obs = ev >= 0
    assert (samples[:, obs] == ev[obs]).all(), "likelihood weighting changed an observed value"
    # the weight of each sample is exactly prod over observed i of P(e_i | sampled parents)
    expected = np.zeros(n)
    for i in np.flatnonzero(obs):
        pa = spec.parents[i]
        p = spec.cpts[i][tuple(samples[:, q] for q in pa) + (np.full(n, ev[i]),)]
        with np.errstate(divide="ignore"):
            expected += np.log(p)
    finite = np.isfinite(expected)
    assert (np.isfinite(logw) == finite).all()
    np.testing.assert_allclose(logw[finite], expected[finite], atol=1e-5, rtol=1e-5)
    # unobserved values are never impossible under their CPT
    for i in np.flatnonzero(~obs):
        pa = spec.parents[i]
        p = spec.cpts[i][tuple(samples[:, q] for q in pa) + (samples[:, i],)]
        assert (p > 0).all(), f"impossible value of {spec.names[i]} sampled"
    # weighted estimates vs exact posteriors
    w = np.exp(logw - logw.max())
    ess = w.sum() ** 2 / (w**2).sum()
    exact = O.marginals(spec, ev)
    for i, name in enumerate(spec.names):
        est = empirical(samples, [i], [spec.cards[i]], weights=w)
        assert_frequencies(est, exact[name], ess, f"LW P({name} | e)")
    # the mean weight estimates P(e)
    mean_w = w.mean()
    rel_se = w.std() / mean_w / np.sqrt(n)
    log_pe = np.log(mean_w) + logw.max()
    assert abs(log_pe - O.log_evidence(spec, ev)) < SIGMAS * rel_se + 1e-3


def test_likelihood_weighting_without_evidence_is_ancestral_sampling():
    spec = fixed_specs()[0]
    net = build(spec)
    out = jax.jit(bn.likelihood_weighting, static_argnums=3)(net, jax.random.key(0), net.evidence({}), 1000)
    np.testing.assert_array_equal(np.asarray(out.log_weights), np.zeros(1000))
    s = np.asarray(out.samples)
    assert (s >= 0).all() and (s < np.asarray(spec.cards)).all()


# ------------------------------------------------------------------------------------------------
# d-separation and Markov blankets
# ------------------------------------------------------------------------------------------------


def digraph(spec: O.Spec) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(spec.names)
    g.add_edges_from((spec.names[p], spec.names[i]) for i, ps in enumerate(spec.parents) for p in ps)
    return g


def nx_d_separated(g, xs, ys, zs) -> bool:
    check = getattr(nx, "is_d_separator", None) or nx.d_separated
    return bool(check(g, set(xs), set(ys), set(zs)))


@st.composite
def partition(draw, spec: O.Spec):
    order = draw(st.permutations(list(range(spec.n))))
    nx_ = draw(st.integers(1, spec.n - 1))
    ny_ = draw(st.integers(1, spec.n - nx_))
    nz_ = draw(st.integers(0, spec.n - nx_ - ny_))
    return order[:nx_], order[nx_ : nx_ + ny_], order[nx_ + ny_ : nx_ + ny_ + nz_]


@bn_settings(40)
@given(spec=specs(min_vars=2, max_vars=7, max_card=3), data=st.data())
def test_d_separated_vs_networkx_and_joint(spec, data):
    net = build(spec)
    g = digraph(spec)
    P = O.joint(O.normalized(spec))
    for _ in range(4):
        xs, ys, zs = data.draw(partition(spec))
        X, Y, Z = ([spec.names[i] for i in s] for s in (xs, ys, zs))
        got = bn.d_separated(net, X, Y, Z)
        assert isinstance(got, (bool, np.bool_))
        expected = nx_d_separated(g, X, Y, Z)
        assert bool(got) == expected, f"d_separated({X}, {Y} | {Z}) = {got}, networkx says {expected}"
        assert bool(bn.d_separated(net, tuple(Y), set(X), tuple(Z))) == expected  # symmetric, any iterable
        if expected:  # d-separation implies independence in every parameterisation
            v = O.ci_violation(P, xs, ys, zs)
            assert v < 1e-12, f"{X} and {Y} are d-separated by {Z} but dependent in the joint ({v})"


@bn_settings(30)
@given(spec=specs(min_vars=2, max_vars=6, max_card=3, kinds=("dirichlet",)), data=st.data())
def test_d_connected_means_dependent_for_generic_cpts(spec, data):
    """Faithfulness: with generic (Dirichlet(1)) CPTs, d-connection shows up as dependence."""
    net = build(spec)
    P = O.joint(O.normalized(spec))
    xs, ys, zs = data.draw(partition(spec))
    X, Y, Z = ([spec.names[i] for i in s] for s in (xs, ys, zs))
    if not bn.d_separated(net, X, Y, Z):
        assert O.ci_violation(P, xs, ys, zs) > 1e-13, f"{X}, {Y} d-connected given {Z} but independent"


def test_d_separated_classic_patterns():
    # chain A -> B -> C, fork B <- D -> E, collider C -> F <- E, F -> G
    spec = make_spec(
        [2] * 7,
        [(), (0,), (1,), (), (3,), (2, 4), (5,)],
        ["dirichlet"] * 7,
        seed=0,
    )
    net = build(spec)
    ds = lambda x, y, z=(): bool(bn.d_separated(net, x, y, z))  # noqa: E731
    assert not ds(["X0"], ["X2"])
    assert ds(["X0"], ["X2"], ["X1"])  # chain blocked
    assert ds(["X2"], ["X4"])  # collider X5 unobserved
    assert not ds(["X2"], ["X4"], ["X5"])  # collider observed
    assert not ds(["X2"], ["X4"], ["X6"])  # descendant of the collider observed
    assert ds(["X0"], ["X3"])
    assert not ds(["X0"], ["X3"], ["X6"])


@bn_settings(30)
@given(spec=specs(min_vars=1, max_vars=7, max_card=3))
def test_markov_blanket(spec):
    net = build(spec)
    P = O.joint(O.normalized(spec)) if spec.n >= 3 else None
    for i, name in enumerate(spec.names):
        got = bn.markov_blanket(net, name)
        mb = O.markov_blanket(spec, i)
        assert tuple(got) == tuple(spec.names[k] for k in sorted(mb)), (name, got, mb)
        rest = [k for k in range(spec.n) if k != i and k not in mb]
        if P is not None and rest:  # X _||_ everything else | MB(X)
            assert O.ci_violation(P, [i], rest, sorted(mb)) < 1e-12


def test_markov_blanket_example():
    # X0 -> X2 <- X1, X2 -> X3, X4 -> X3, X5 isolated
    spec = make_spec([2] * 6, [(), (), (0, 1), (2, 4), (), ()], ["dirichlet"] * 6, seed=0)
    net = build(spec)
    assert tuple(bn.markov_blanket(net, "X2")) == ("X0", "X1", "X3", "X4")
    assert tuple(bn.markov_blanket(net, "X0")) == ("X1", "X2")
    assert tuple(bn.markov_blanket(net, "X5")) == ()
