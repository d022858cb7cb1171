"""Sampling and independence: ancestral samples and likelihood weighting vs exact (float64)
probabilities, d-separation vs networkx and vs conditional independence in the joint, Markov blankets.

Statistical checks use fixed keys and tolerances of 5 binomial standard errors (plus a small floor),
so they are deterministic and a false failure would need a 5-sigma event. On bundled networks, every
variable's sample frequencies pass a chi-square test against `bn.marginals` (alarm; munin2 under -m slow),
and a network with one CPT changed fails it. The sampler's program must not grow with the number of
variables (StableHLO op count, 100 vs 1,000 variables), and jit / vmap (keys, evidence, CPTs) / grad
agree with plain calls.
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
from tests.bn.util import build
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
    s = np.asarray(sample(key, net, 500))
    assert s.shape == (500, spec.n) and s.dtype == np.int32
    assert (s >= 0).all() and (s < np.asarray(spec.cards)).all()
    np.testing.assert_array_equal(s, np.asarray(sample(key, net, 500)))  # same key, same samples
    assert (s != np.asarray(sample(jax.random.key(1), net, 500))).any()
    plain = np.asarray(bn.sample(key, net, 500))  # the plain call agrees with the jitted one
    np.testing.assert_array_equal(plain, s)
    # legacy uint32 keys work too
    assert np.asarray(bn.sample(jax.random.PRNGKey(3), net, 4)).shape == (4, spec.n)


@pytest.mark.parametrize("which", [0, 1, 2])
def test_sample_frequencies_match_exact(which):
    spec = fixed_specs()[which]
    net = build(spec)
    n = 40_000
    s = np.asarray(jax.jit(bn.sample, static_argnums=2)(jax.random.key(100 + which), net, n))
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
    s = np.asarray(bn.sample(jax.random.key(7), net, n))
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
    out = jax.jit(bn.likelihood_weighting, static_argnums=3)(jax.random.key(11 + which), net, jnp.asarray(ev), n)
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
    out = jax.jit(bn.likelihood_weighting, static_argnums=3)(jax.random.key(0), net, net.evidence({}), 1000)
    np.testing.assert_array_equal(np.asarray(out.log_weights), np.zeros(1000))
    s = np.asarray(out.samples)
    assert (s >= 0).all() and (s < np.asarray(spec.cards)).all()


# ------------------------------------------------------------------------------------------------
# goodness of fit on bundled networks, against gm.bn.marginals
# ------------------------------------------------------------------------------------------------


def chi_square_pvalues(samples: np.ndarray, net, exact: dict) -> dict[str, float]:
    """Per-variable chi-square p-value of the sample frequencies against ``exact`` marginals.

    States of expected count below 5 are pooled into one cell (so the chi-square approximation holds);
    a sampled state of exact probability zero gives p = 0.
    """
    from scipy import stats

    n = len(samples)
    out = {}
    for i, name in enumerate(net.names):
        p = np.asarray(exact[name], np.float64)
        counts = np.bincount(samples[:, i], minlength=len(p)).astype(np.float64)
        if (counts[p <= 0] > 0).any():
            out[name] = 0.0
            continue
        expected = n * p
        small = expected < 5
        cells_obs = list(counts[~small]) + ([counts[small].sum()] if small.any() else [])
        cells_exp = list(expected[~small]) + ([expected[small].sum()] if small.any() else [])
        cells_obs, cells_exp = np.asarray(cells_obs), np.asarray(cells_exp)
        keep = cells_exp > 0
        if keep.sum() < 2:
            out[name] = 1.0
            continue
        stat = float(np.sum((cells_obs[keep] - cells_exp[keep]) ** 2 / cells_exp[keep]))
        out[name] = float(stats.chi2.sf(stat, keep.sum() - 1))
    return out


FAMILY_ALPHA = 1e-3  # chance that a correct sampler fails the check on some variable (fixed seed: never)


def _bundled(name):
    from gm.data.networks import load_network

    return load_network(name)


def _check_goodness_of_fit(net, n, seed):
    exact = jax.jit(bn.marginals)(net, net.evidence({}))
    s = np.asarray(bn.sample(jax.random.key(seed), net, n))
    pvalues = chi_square_pvalues(s, net, exact)
    worst = min(pvalues, key=pvalues.get)
    assert pvalues[worst] > FAMILY_ALPHA / len(pvalues), (  # Bonferroni over the variables
        f"{worst}: chi-square p = {pvalues[worst]:.2e}; frequencies "
        f"{np.bincount(s[:, net.index(worst)], minlength=net.cards[net.index(worst)]) / n} vs {exact[worst]}"
    )
    return exact, s


def test_sample_goodness_of_fit_alarm():
    net = _bundled("alarm")
    exact, _ = _check_goodness_of_fit(net, 50_000, seed=5)
    # the test has power: the samples of a network with one CPT changed fail it
    i = net.index("HYPOVOLEMIA")
    wrong = net.replace({"HYPOVOLEMIA": net.cpts[i][::-1]})
    s = np.asarray(bn.sample(jax.random.key(5), wrong, 50_000))
    assert chi_square_pvalues(s, net, exact)["HYPOVOLEMIA"] < 1e-10


@pytest.mark.slow
def test_sample_goodness_of_fit_munin2():
    _check_goodness_of_fit(_bundled("munin2"), 50_000, seed=6)


def test_likelihood_weighting_converges_to_marginals_alarm():
    net = _bundled("alarm")
    ev = net.evidence({"HRBP": "HIGH", "BP": "LOW", "SAO2": "NORMAL", "MINVOL": "ZERO"})
    exact = jax.jit(bn.marginals)(net, ev)
    n = 100_000
    out = bn.likelihood_weighting(jax.random.key(3), net, ev, n)
    est = bn.weighted_marginals(net, out)
    w = np.exp(np.asarray(out.log_weights, np.float64) - np.max(out.log_weights))
    ess = w.sum() ** 2 / (w**2).sum()
    assert ess > 1000, ess
    for name in net.names:
        assert_frequencies(np.asarray(est[name]), np.asarray(exact[name], np.float64), ess, f"LW P({name} | e)")
    # the same estimate from the samples directly
    for i, name in enumerate(net.names[:5]):
        direct = empirical(np.asarray(out.samples), [i], [net.cards[i]], weights=w)
        np.testing.assert_allclose(np.asarray(est[name]), direct, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# transformations: jit with n static, vmap over keys and evidence, traced CPTs
# ------------------------------------------------------------------------------------------------


def test_vmap_over_keys_equals_separate_calls():
    net = build(fixed_specs()[1])
    keys = jax.random.split(jax.random.key(4), 3)
    batched = np.asarray(jax.jit(jax.vmap(bn.sample, (0, None, None)), static_argnums=2)(keys, net, 200))
    assert batched.shape == (3, 200, net.n_vars)
    for b in range(3):
        np.testing.assert_array_equal(batched[b], np.asarray(bn.sample(keys[b], net, 200)))
    ev = net.evidence({"X2": 1})
    lw = jax.vmap(bn.likelihood_weighting, (0, None, None, None))(keys, net, ev, 100)
    for b in range(3):
        one = bn.likelihood_weighting(keys[b], net, ev, 100)
        np.testing.assert_array_equal(np.asarray(lw.samples[b]), np.asarray(one.samples))
        np.testing.assert_allclose(np.asarray(lw.log_weights[b]), np.asarray(one.log_weights), rtol=1e-6)


def test_vmap_over_evidence_equals_separate_calls():
    spec = fixed_specs()[1]
    net = build(spec)
    rng = np.random.default_rng(0)
    x = O.ancestral_sample(spec, rng, 4)
    evs = np.where(rng.random(x.shape) < 0.4, x, -1).astype(np.int32)
    key = jax.random.key(9)
    lw = jax.jit(jax.vmap(bn.likelihood_weighting, (None, None, 0, None)), static_argnums=3)(key, net, evs, 300)
    assert lw.samples.shape == (4, 300, spec.n) and lw.log_weights.shape == (4, 300)
    for b in range(4):
        one = bn.likelihood_weighting(key, net, evs[b], 300)
        np.testing.assert_array_equal(np.asarray(lw.samples[b]), np.asarray(one.samples))
        np.testing.assert_allclose(np.asarray(lw.log_weights[b]), np.asarray(one.log_weights), rtol=1e-6)
        marg = jax.jit(bn.weighted_marginals)(net, jax.tree_util.tree_map(lambda a: a[b], lw))
        eager = bn.weighted_marginals(net, one)
        for name in spec.names:
            np.testing.assert_allclose(np.asarray(marg[name]), np.asarray(eager[name]), atol=1e-6)


def test_vmap_over_cpts_and_grad_of_log_weights():
    """Traced CPTs take the in-program table path: same samples as the host-built table."""
    spec = make_spec([2, 3, 2, 3], [(), (0,), (0, 1), (2,)], ["dirichlet"] * 4, seed=4)  # no zero entries
    net = build(spec)
    key = jax.random.key(2)
    nets = jax.tree_util.tree_map(lambda c: jnp.stack([c, c]), net)
    batched = jax.vmap(bn.sample, (None, 0, None))(key, nets, 300)
    np.testing.assert_array_equal(np.asarray(batched[1]), np.asarray(bn.sample(key, net, 300)))
    # d/d cpt of sum_s log w_s = sum_s sum_{i observed} [entries used] / P(e_i | u_s)
    ev = net.evidence({"X0": 1, "X3": 2})
    samples = np.asarray(bn.likelihood_weighting(key, net, ev, 300).samples)
    grads = jax.grad(lambda n_: jnp.sum(bn.likelihood_weighting(key, n_, ev, 300).log_weights))(net)
    for i in range(spec.n):
        expected = np.zeros(spec.cpts[i].shape)
        if ev[i] >= 0:
            idx = tuple(samples[:, p] for p in spec.parents[i]) + (samples[:, i],)
            np.add.at(expected, idx, 1.0 / spec.cpts[i][idx])
        np.testing.assert_allclose(np.asarray(grads.cpts[i]), expected, rtol=1e-4, atol=1e-4)


def test_float64_samples_and_weights(x64):
    spec = fixed_specs()[2]
    net = bn.BayesNet.from_dict(**O.spec_to_dicts(spec), dtype=jnp.float64)
    ev = net.evidence({"X0": 2})
    out = bn.likelihood_weighting(jax.random.key(1), net, ev, 20_000)
    assert out.log_weights.dtype == jnp.float64
    s, w = np.asarray(out.samples), np.exp(np.asarray(out.log_weights))
    exact = O.marginals(spec, ev)
    ess = w.sum() ** 2 / (w**2).sum()
    for i, name in enumerate(spec.names):
        assert_frequencies(empirical(s, [i], [spec.cards[i]], weights=w), exact[name], ess, f"f64 P({name} | e)")


def test_no_retrace_for_new_cpts_keys_or_evidence():
    from gm.bn import sampling

    spec = fixed_specs()[1]
    net = build(spec)
    bn.sample(jax.random.key(0), net, 64, method="program")
    bn.likelihood_weighting(jax.random.key(0), net, net.evidence({"X1": 0}), 64, method="program")
    before = sampling.sample_program._cache_size()
    other = net.replace([c * 0.5 + 0.5 / c.shape[-1] for c in net.cpts])
    bn.sample(jax.random.key(1), other, 64, method="program")
    bn.likelihood_weighting(jax.random.key(2), other, net.evidence({"X3": 2, "X0": 1}), 64, method="program")
    assert sampling.sample_program._cache_size() == before


# ------------------------------------------------------------------------------------------------
# the host sampler (eager calls) runs the compiled program's arithmetic in numpy
# ------------------------------------------------------------------------------------------------


def wide_network(dtype=jnp.float32, seed=0):
    """Cardinalities up to 40 (XLA's cumsum and numpy's differ in the last bit on rows this long), two
    parents per variable, zeros in some rows (states that are never drawn)."""
    rng = np.random.default_rng(seed)
    cards = [40, 3, 23, 2, 31, 5]
    names = [f"W{i}" for i in range(len(cards))]
    parents = {names[i]: [names[j] for j in range(max(0, i - 2), i)] for i in range(1, len(cards))}
    cpts = {}
    for i, nm in enumerate(names):
        shape = tuple(cards[names.index(p)] for p in parents.get(nm, [])) + (cards[i],)
        t = rng.dirichlet(np.full(cards[i], 0.3), size=shape[:-1] or None)
        t = np.where(rng.random(t.shape) < 0.1, 0.0, t)
        t[..., 0] += 1e-3
        cpts[nm] = t / t.sum(-1, keepdims=True)
    return bn.BayesNet.from_dict(states=dict(zip(names, cards)), parents=parents, cpts=cpts, dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_host_sampler_equals_the_compiled_program_bit_for_bit(dtype, request):
    if dtype == "float64":
        request.getfixturevalue("x64")
    dtype = jnp.dtype(dtype)
    net = wide_network(dtype)
    for seed in range(2):
        key = jax.random.key(seed)
        host = np.asarray(bn.sample(key, net, 3000, method="host"))
        prog = np.asarray(bn.sample(key, net, 3000, method="program"))
        np.testing.assert_array_equal(host, prog)
        assert (host < np.asarray(net.cards)).all()
        ev = np.full(net.n_vars, -1, np.int32)
        ev[[1, 4]] = host[0, [1, 4]]
        a = bn.likelihood_weighting(key, net, ev, 3000, method="host")
        b = bn.likelihood_weighting(key, net, ev, 3000, method="program")
        np.testing.assert_array_equal(np.asarray(a.samples), np.asarray(b.samples))
        assert a.log_weights.dtype == b.log_weights.dtype == dtype
        rtol = 1e-6 if dtype == jnp.float32 else 1e-12
        np.testing.assert_allclose(np.asarray(a.log_weights), np.asarray(b.log_weights), rtol=rtol)
    # auto picks the host for an eager call of this size, and the program under jit: same samples
    key = jax.random.key(7)
    np.testing.assert_array_equal(
        np.asarray(bn.sample(key, net, 500)), np.asarray(jax.jit(bn.sample, static_argnums=2)(key, net, 500))
    )


def test_host_sampler_method_argument():
    net = wide_network()
    with pytest.raises(ValueError, match="method must be"):
        bn.sample(jax.random.key(0), net, 10, method="fast")
    with pytest.raises(ValueError, match="needs concrete inputs"):
        jax.jit(lambda k: bn.sample(k, net, 10, method="host"))(jax.random.key(0))


# ------------------------------------------------------------------------------------------------
# compile size: the program does not grow with the number of variables
# ------------------------------------------------------------------------------------------------


def random_chain(n_vars: int, card: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    names = [f"V{i}" for i in range(n_vars)]
    cpts = {names[0]: rng.dirichlet(np.ones(card))}
    for i in range(1, n_vars):
        cpts[names[i]] = rng.dirichlet(np.ones(card), size=card)
    return bn.BayesNet.from_dict(
        states={nm: card for nm in names}, parents={names[i]: [names[i - 1]] for i in range(1, n_vars)}, cpts=cpts
    )


def program_ops(fn, *args, static_argnums=()) -> int:
    """Number of operations in the lowered StableHLO of ``jax.jit(fn)`` (one per line; the function
    signature, however many arguments it has, is one line)."""
    text = jax.jit(fn, static_argnums=static_argnums).lower(*args).as_text()
    starts = ("stablehlo.", "func.", "return")
    return sum(1 for line in text.splitlines() if "=" in line or line.strip().startswith(starts))


@pytest.mark.parametrize("which", ["sample", "likelihood_weighting"])
def test_program_size_does_not_grow_with_the_network(which):
    sizes = {}
    for n_vars in (100, 1000):
        net = random_chain(n_vars)
        key = jax.random.key(0)
        if which == "sample":
            sizes[n_vars] = program_ops(bn.sample, key, net, 50, static_argnums=2)
        else:
            ev = np.full(n_vars, -1, np.int32)
            ev[::7] = 1
            sizes[n_vars] = program_ops(bn.likelihood_weighting, key, net, ev, 50, static_argnums=3)
    assert sizes[1000] <= 1.5 * sizes[100], sizes


def test_threefry_matches_jax():
    from jax.extend.random import threefry2x32_p

    from gm.bn.sampling import threefry2x32

    rng = np.random.default_rng(0)
    k = jnp.asarray(rng.integers(0, 2**32, 2, dtype=np.uint64).astype(np.uint32))
    x0 = jnp.asarray(rng.integers(0, 2**32, 1000, dtype=np.uint64).astype(np.uint32))
    x1 = jnp.asarray(rng.integers(0, 2**32, 1000, dtype=np.uint64).astype(np.uint32))
    for got, want in zip(threefry2x32(k[0], k[1], x0, x1), threefry2x32_p.bind(k[0], k[1], x0, x1)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


# ------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------


def test_evidence_out_of_range_names_the_variable():
    spec = fixed_specs()[1]  # X3 has 3 states
    net = build(spec)
    key = jax.random.key(0)
    ev = net.evidence({})
    for bad in (3, 7, -2):
        e = ev.copy()
        e[3] = bad
        with pytest.raises(ValueError, match=r"'X3'.*out of range"):
            bn.likelihood_weighting(key, net, e, 10)
    with pytest.raises(ValueError, match="shape"):
        bn.likelihood_weighting(key, net, ev[:-1], 10)
    with pytest.raises(TypeError, match="integer"):
        bn.likelihood_weighting(key, net, ev.astype(np.float32), 10)
    with pytest.raises(TypeError, match="num_samples"):
        bn.sample(key, net, 10.0)
    with pytest.raises(ValueError, match="num_samples"):
        bn.sample(key, net, -1)
    # inside jit values are not checked: an impossible observed value gives weight zero
    for bad in (5, -2):
        e = ev.copy()
        e[3] = bad
        out = jax.jit(bn.likelihood_weighting, static_argnums=3)(key, net, e, 10)
        assert np.all(np.asarray(out.log_weights) == -np.inf), bad


def test_edge_cases():
    net = build(fixed_specs()[2])
    assert bn.sample(jax.random.key(0), net, 0).shape == (0, 3)
    one = bn.BayesNet.from_dict(states={"A": 1}, cpts={"A": [1.0]})
    np.testing.assert_array_equal(np.asarray(bn.sample(jax.random.key(0), one, 5)), np.zeros((5, 1)))
    empty = bn.BayesNet.from_dict(states={})
    assert bn.sample(jax.random.key(0), empty, 4).shape == (4, 0)
    out = bn.likelihood_weighting(jax.random.key(0), empty, np.zeros(0, np.int32), 4)
    assert out.samples.shape == (4, 0) and out.log_weights.shape == (4,)
    assert bn.weighted_marginals(empty, out) == {}


@pytest.mark.slow  # 7 s smoke run of the benchmark script
def test_bench_sampling_quick(tmp_path):
    from experiments import bench_sampling

    rows = bench_sampling.main(["--networks", "asia", "--tasks", "forward", "--out", str(tmp_path)])
    assert len(rows) == 1
    for lib in ("gm", "pgmpy"):
        assert "error" not in rows[0][lib], rows[0][lib]
        assert rows[0][lib]["first_s"] > 0 and rows[0][lib]["total_s"] >= rows[0][lib]["first_s"]
    assert (tmp_path / "results.json").exists() and (tmp_path / "table.md").exists()


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
    # any iterables of names: generators, sets, tuples; several variables per side
    assert bool(bn.d_separated(net, (n for n in ["X0", "X1"]), {"X3", "X4"}, iter(())))
    assert not bool(bn.d_separated(net, ("X0", "X1"), ["X3", "X4"], ("X6",)))


@bn_settings(30)
@given(spec=specs(min_vars=1, max_vars=7, max_card=3))
def test_markov_blanket(spec):
    net = build(spec)
    P = O.joint(O.normalized(spec)) if spec.n >= 3 else None
    for i, name in enumerate(spec.names):
        got = bn.markov_blanket(net, name)
        assert isinstance(got, tuple), type(got)
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
