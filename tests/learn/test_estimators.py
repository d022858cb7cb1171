"""gm.learn.mle / dirichlet against pgmpy 1.1.0's estimators on alarm, and against numpy loops."""

from __future__ import annotations

import logging
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm import bn, learn
from gm.learn import Prior
from gm.data import load_network
from tests.bn import oracle as O

warnings.filterwarnings("ignore", module="pgmpy")
logging.getLogger("pgmpy").setLevel(logging.ERROR)
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def alarm_data():
    net = load_network("alarm")
    # numpy ancestral sampling (the oracle's): no compilation for a 37-variable sampler
    data = O.ancestral_sample(O.spec_from_net(net), np.random.default_rng(0), 10_000).astype(np.int32)
    return net, data


def _frame(net, data):
    import pandas as pd

    return pd.DataFrame({name: np.asarray(net.states[i], dtype=object)[data[:, i]] for i, name in enumerate(net.names)})


def _as_ours(net, ref: bn.BayesNet, name: str) -> np.ndarray:
    """pgmpy's CPT of ``name`` (via from_pgmpy) in our axis and state order."""
    i = net.index(name)
    table = np.asarray(ref.cpt(name), np.float64)
    ref_pa = list(ref.parent_names(name))
    ours_pa = list(net.parent_names(name))
    assert sorted(ref_pa) == sorted(ours_pa)
    table = np.transpose(table, [ref_pa.index(p) for p in ours_pa] + [len(ours_pa)])
    for axis, var in enumerate(ours_pa + [name]):
        j = ref.index(var)
        order = [ref.states[j].index(s) for s in net.states[net.index(var)]]
        table = np.take(table, order, axis=axis)
    assert table.shape == tuple(net.cards[v] for v in net.structure.families[i])
    return table


def _pgmpy_fit(net, data, estimator: str, **kwargs) -> bn.BayesNet:
    from pgmpy.estimators import BayesianEstimator, MaximumLikelihoodEstimator

    model = bn.to_pgmpy(net)
    model.remove_cpds(*model.get_cpds())
    cls = {"mle": MaximumLikelihoodEstimator, "bayes": BayesianEstimator}[estimator]
    state_names = {name: list(net.states[i]) for i, name in enumerate(net.names)}
    est = cls(model, _frame(net, data), state_names=state_names)
    model.add_cpds(*est.get_parameters(**kwargs))
    return bn.from_pgmpy(model, dtype=jnp.float64)


@pytest.mark.parametrize(
    "ours,theirs",
    [
        (dict(kind="mle"), dict(estimator="mle")),
        (dict(prior=Prior.bdeu(5.0)), dict(estimator="bayes", prior_type="BDeu", equivalent_sample_size=5)),
        pytest.param(dict(prior=Prior.bdeu(50.0)),
                     dict(estimator="bayes", prior_type="BDeu", equivalent_sample_size=50), marks=pytest.mark.slow),
        (dict(prior=Prior.k2()), dict(estimator="bayes", prior_type="K2")),
        pytest.param(dict(prior=Prior.dirichlet(0.5, estimate="mean")),
                     dict(estimator="bayes", prior_type="dirichlet", pseudo_counts=0.5), marks=pytest.mark.slow),
    ],
    ids=["mle", "bdeu5", "bdeu50", "k2", "dirichlet0.5"],
)
def test_matches_pgmpy_on_alarm(alarm_data, x64, ours, theirs):
    net, data = alarm_data
    ours = dict(ours)
    if ours.pop("kind", None) == "mle":
        got = jax.jit(learn.mle, static_argnums=0)(net.structure, data)
    else:
        got = jax.jit(lambda d: learn.dirichlet(net.structure, d, **ours))(data)
    ref = _pgmpy_fit(net, data, **theirs)
    unseen = 0
    for i, name in enumerate(net.names):
        expected = _as_ours(net, ref, name)
        np.testing.assert_allclose(np.asarray(got.cpts[i]), expected, atol=1e-6, err_msg=name)
        seen = {tuple(row) for row in data[:, list(net.parents[i])]}
        unseen += int(np.prod([net.cards[p] for p in net.parents[i]])) - len(seen)
    assert unseen > 0  # the case of unseen parent configurations is exercised (uniform rows)


def _loop_counts(structure, data, weights):
    out = []
    for i, fam in enumerate(structure.families):
        table = np.zeros([structure.cards[v] for v in fam])
        for row, w in zip(data, weights):
            vals = tuple(int(row[v]) for v in fam)
            if min(vals) >= 0:
                table[vals] += w
        out.append(table)
    return out


def _small_net():
    return bn.BayesNet.from_dict(
        states={"A": 2, "B": 3, "C": 2, "D": 4},
        parents={"C": ["B", "A"], "D": ["C"]},
        cpts={
            "A": [0.3, 0.7],
            "B": [0.2, 0.5, 0.3],
            "C": np.full((3, 2, 2), 0.5),
            "D": [[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]],
        },
    )


def test_family_counts_match_a_loop_with_weights_and_missing():
    net = _small_net()
    rng = np.random.default_rng(1)
    data = np.stack([rng.integers(-1, c, size=200) for c in net.cards], axis=1).astype(np.int32)
    weights = rng.uniform(0, 2, size=200).astype(np.float32)
    got = jax.jit(learn.family_counts, static_argnums=0)(net.structure, data, weights=weights)
    for g, e in zip(got, _loop_counts(net.structure, data, weights)):
        np.testing.assert_allclose(np.asarray(g), e, rtol=1e-5, atol=1e-5)


def test_bootstrap_vmap_equals_loop():
    net = _small_net()
    data = np.asarray(jax.jit(bn.sample, static_argnums=2)(jax.random.key(3), net, 500))
    boot = np.random.default_rng(4).multinomial(500, np.full(500, 1 / 500), size=6).astype(np.float32)
    nets = jax.jit(jax.vmap(lambda w: learn.mle(net, data, weights=w)))(boot)
    # a bootstrap weight vector with integer counts equals MLE on the resampled records
    fit = jax.jit(learn.mle)
    for b in (0, 5):
        idx = np.repeat(np.arange(500), np.asarray(boot[b]).astype(int))
        resampled = fit(net, data[idx])
        for i in range(net.n_vars):
            np.testing.assert_allclose(nets.cpts[i][b], resampled.cpts[i], atol=1e-6)


def test_map_estimate_and_unseen_rows():
    net = _small_net()
    data = np.array([[0, 0, 0, 0], [0, 0, 0, 1], [1, 0, 0, 1]], np.int32)
    alpha = 2.0
    got = learn.dirichlet(net, data, prior=Prior.dirichlet(alpha, estimate="map"))
    counts = _loop_counts(net.structure, data, np.ones(3))
    for i in range(net.n_vars):
        c = counts[i] + alpha - 1
        np.testing.assert_allclose(got.cpts[i], c / c.sum(-1, keepdims=True), atol=1e-6)
    mle = learn.mle(net, data)
    np.testing.assert_allclose(mle.cpt("D")[1], np.full(4, 0.25))  # C = 1 never seen: uniform
    np.testing.assert_allclose(mle.cpt("C")[2, 0], [0.5, 0.5])
    # pseudo-counts per variable, as arrays
    pc = {"A": [1.0, 3.0]}
    got = learn.dirichlet(net, data, prior=Prior.dirichlet(pc, estimate="mean"))
    np.testing.assert_allclose(got.cpt("A"), [(2 + 1) / 7, (1 + 3) / 7], atol=1e-6)
    np.testing.assert_allclose(got.cpt("B"), [1.0, 0.0, 0.0], atol=1e-6)  # missing names: no prior (0 for a mean)


def test_jit_does_not_recompile():
    net = _small_net()
    fit = jax.jit(learn.dirichlet, static_argnums=0)
    d1 = np.asarray(jax.jit(bn.sample, static_argnums=2)(jax.random.key(0), net, 100))
    d2 = np.asarray(jax.jit(bn.sample, static_argnums=2)(jax.random.key(1), net, 100))
    fit(net.structure, d1)
    size = fit._cache_size()
    fit(net.structure, d2)
    assert fit._cache_size() == size


def test_errors_name_the_argument():
    net = _small_net()
    with pytest.raises(ValueError, match=r"data must have shape \(N, 4\)"):
        learn.mle(net, np.zeros((5, 3), np.int32))
    with pytest.raises(TypeError, match="data must be an integer"):
        learn.mle(net, np.zeros((5, 4)))
    with pytest.raises(ValueError, match="weights must have shape"):
        learn.mle(net, np.zeros((5, 4), np.int32), weights=np.ones(4))
    with pytest.raises(TypeError, match="prior must be a gm.learn.Prior"):
        learn.dirichlet(net, np.zeros((5, 4), np.int32), prior="uniform")
    with pytest.raises(ValueError, match="prior.kind must be"):
        learn.dirichlet(net, np.zeros((5, 4), np.int32), prior=Prior("uniform"))
    with pytest.raises(ValueError, match="unknown variable 'Z'"):
        learn.dirichlet(net, np.zeros((5, 4), np.int32), prior=Prior.dirichlet({"Z": 1.0}))
    with pytest.raises(ValueError, match="pseudo-counts of 'D' have shape"):
        learn.dirichlet(net, np.zeros((5, 4), np.int32), prior=Prior.dirichlet({"D": np.ones(3)}))
    with pytest.raises(TypeError, match="net_or_structure"):
        learn.mle("alarm", np.zeros((5, 4), np.int32))
