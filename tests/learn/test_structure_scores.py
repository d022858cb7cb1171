"""gm.learn.structure scores against hand-written float64 references and pgmpy's local scores."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm import bn
from gm.data.networks import load_network
from gm.learn.structure import SCORES, ScoreCache, family_scores, network_score
from tests.learn.structure_reference import reference_score


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    cards = (2, 3, 4, 2)
    n = 300
    a = rng.integers(0, 2, n)
    b = (a + rng.integers(0, 2, n)) % 3
    c = (b + rng.integers(0, 3, n) * (rng.random(n) < 0.4)) % 4
    d = ((a + c) % 2 + (rng.random(n) < 0.2)) % 2
    return np.stack([a, b, c, d], axis=1).astype(np.int32), cards


FAMILIES = [(0, ()), (1, (0,)), (2, (1,)), (2, (0, 1)), (3, (0, 2)), (3, (2, 1, 0)), (0, (3, 2))]


@pytest.mark.parametrize("score", SCORES)
def test_scores_equal_hand_reference(x64, small, score):
    data, cards = small
    got = family_scores(data, [c for c, _ in FAMILIES], [p for _, p in FAMILIES], variables=cards, score=score,
                        equivalent_sample_size=7.0)
    want = [reference_score(data, cards, c, p, score, ess=7.0) for c, p in FAMILIES]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


def test_float32_close_to_reference(small):
    data, cards = small
    got = family_scores(data, 3, [(0, 2), (2, 1, 0)], variables=cards, score="bdeu")
    assert got.dtype == jnp.float32
    want = [reference_score(data, cards, 3, p, "bdeu") for p in [(0, 2), (2, 1, 0)]]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)


def test_scores_equal_pgmpy(x64):
    pd = pytest.importorskip("pandas")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgmpy.estimators import AIC, BIC, K2, BDeu
        from pgmpy.estimators.StructureScore import LogLikeliHood
    net = load_network("asia")
    data = np.asarray(bn.sample(jax.random.key(1), net, 1500))
    df = pd.DataFrame(data, columns=net.names)
    states = {name: list(range(c)) for name, c in zip(net.names, net.cards)}
    sets = [(), ("either",), ("either", "bronc"), ("smoke", "lung", "tub")]
    for name, cls, kw in [("bic", BIC, {}), ("aic", AIC, {}), ("k2", K2, {}), ("log_likelihood", LogLikeliHood, {}),
                          ("bdeu", BDeu, {"equivalent_sample_size": 5})]:
        oracle = cls(df, state_names=states, **kw)
        want = [oracle.local_score("dysp", list(s)) for s in sets]
        got = family_scores(data, "dysp", sets, variables=net, score=name, equivalent_sample_size=5.0)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, err_msg=name)


def test_missing_values_rejected(small):
    data, cards = small
    bad = data.copy()
    bad[5, 2] = -1
    with pytest.raises(ValueError, match="column 2.*missing"):
        family_scores(bad, 0, [()], variables=cards)
    net = load_network("asia")
    d = np.array(bn.sample(jax.random.key(0), net, 10))
    d[0, 3] = -1
    with pytest.raises(ValueError, match=repr(net.names[3])):
        family_scores(d, 0, [()], variables=net)


def test_bad_arguments(small):
    data, cards = small
    with pytest.raises(ValueError, match="score must be one of"):
        family_scores(data, 0, [()], variables=cards, score="bd")
    with pytest.raises(ValueError, match="own parent"):
        family_scores(data, 1, [(1,)], variables=cards)
    with pytest.raises(ValueError, match="cardinality"):
        family_scores(data, 0, [()], variables=(2, 2, 4, 2))
    with pytest.raises(ValueError, match="shape"):
        family_scores(data[:, :3], 0, [()], variables=cards)


def test_jit_with_traced_data_flags_missing_as_nan(small):
    data, cards = small
    families = [(1,), (2, 0)]
    f = jax.jit(lambda d: family_scores(d, 3, families, variables=cards, score="k2"))
    np.testing.assert_allclose(f(data), family_scores(data, 3, families, variables=cards, score="k2"), rtol=1e-6)
    bad = data.copy()
    bad[0, 2] = -1
    out = np.asarray(f(bad))
    assert not np.isnan(out[0]) and np.isnan(out[1])


def test_cache_and_network_score(small):
    data, cards = small
    cache = ScoreCache(data, cards, score="bic")
    first = cache.many([(2, (0, 1)), (2, (1, 0)), (3, ())])
    assert cache.misses == 2 and cache.hits == 1
    assert first[0] == first[1]
    assert cache(2, [1, 0]) == first[0] and cache.hits == 2
    parents = [(), (0,), (1,), (0, 2)]
    total = network_score(data, parents, variables=cards)
    np.testing.assert_allclose(total, sum(cache(i, p) for i, p in enumerate(parents)), rtol=1e-6)
