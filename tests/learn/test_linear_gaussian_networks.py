"""The four linear-Gaussian networks pgmpy ships: loading, pgmpy's JSON, pgmpy conversion, pgmpy's answers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from gm import bn
from gm.data import GAUSSIAN_NETWORKS, bif_path, gaussian_json_path, load_network
from gm.learn import linear_gaussian as lg

pgmpy_models = pytest.importorskip("pgmpy.models")
PgmpyLG = pgmpy_models.LinearGaussianBayesianNetwork


def _assert_same_net(a: lg.GaussianBayesNet, b: lg.GaussianBayesNet, rtol=0.0):
    """Same variables, parents (in order) and parameters, whatever the variable order."""
    assert sorted(a.names) == sorted(b.names)
    for name in a.names:
        (wa, ba, va), (wb, bb, vb) = a.cpd(name), b.cpd(name)
        assert list(wa) == list(wb), name
        np.testing.assert_allclose([ba, va, *wa.values()], [bb, vb, *wb.values()], rtol=rtol, atol=0)


@pytest.mark.parametrize("name", GAUSSIAN_NETWORKS)
def test_loads_by_name_like_pgmpy(name):
    net = load_network(name)
    pg = PgmpyLG.load(gaussian_json_path(name))
    assert isinstance(net, lg.GaussianBayesNet)
    assert set(net.names) == set(map(str, pg.nodes()))
    assert sum(len(p) for p in net.parents) == pg.number_of_edges()
    for node in pg.nodes():
        cpd = pg.get_cpds(node)
        weights, bias, variance = net.cpd(str(node))
        assert list(weights) == [str(e) for e in cpd.evidence]
        np.testing.assert_allclose([bias, *weights.values()], cpd.beta, rtol=1e-6)
        np.testing.assert_allclose(variance, cpd.std**2, rtol=1e-6)


@pytest.mark.parametrize("name", GAUSSIAN_NETWORKS)
def test_round_trips_through_json_and_pgmpy(name, tmp_path):
    with jax.enable_x64(True):
        net = load_network(name, dtype=jnp.float64)
        lg.write_json(net, tmp_path / "ours.json")
        _assert_same_net(lg.read_json(tmp_path / "ours.json", dtype=jnp.float64), net)
        # pgmpy reads what we write and writes what we read
        pg = PgmpyLG.load(str(tmp_path / "ours.json"))
        _assert_same_net(lg.from_pgmpy(pg, dtype=jnp.float64), net, rtol=1e-15)
        lg.to_pgmpy(net).save(str(tmp_path / "pgmpy.json"))
        _assert_same_net(lg.read_json(tmp_path / "pgmpy.json", dtype=jnp.float64), net, rtol=1e-15)


def _pgmpy_conditionals(name, net, x, observed):
    pg = PgmpyLG.load(gaussian_json_path(name))
    cols = [net.names[i] for i in np.flatnonzero(observed)]
    missing, mean, cov = pg.predict_probability(pd.DataFrame(x[:, observed], columns=cols))
    return tuple(missing), mean, cov


@pytest.mark.parametrize("name", GAUSSIAN_NETWORKS)
@pytest.mark.parametrize("fraction", [0.2, pytest.param(0.7, marks=pytest.mark.slow)])
def test_conditional_means_and_variances_equal_pgmpy(name, fraction):
    net = load_network(name)  # float32
    rng = np.random.default_rng(len(name))
    x = np.asarray(lg.sample(jax.random.key(3), net, 4), np.float64)
    observed = rng.random(net.n_vars) < fraction
    missing, mean, cov = _pgmpy_conditionals(name, net, x, observed)
    evidence = lg.Evidence(jnp.asarray(x, jnp.float32), jnp.broadcast_to(jnp.asarray(observed), x.shape))
    post = jax.jit(jax.vmap(lg.query, in_axes=(None, None, 0)), static_argnums=1)(net, missing, evidence)
    # float32 against pgmpy's float64: 1e-5 relative (means relative to their scale: some are ~0)
    np.testing.assert_allclose(post.mean, mean, rtol=1e-5, atol=1e-5 * np.abs(mean).max())
    for k in range(len(x)):
        np.testing.assert_allclose(np.diagonal(post.covariance[k]), np.diagonal(cov), rtol=1e-5)
        np.testing.assert_allclose(post.covariance[k], cov, rtol=0, atol=1e-5 * np.abs(cov).max())
    with jax.enable_x64(True):  # and elementwise 1e-5 relative in float64
        net64 = load_network(name, dtype=jnp.float64)
        q = lg.query(net64, missing, lg.Evidence(jnp.asarray(x[0]), jnp.asarray(observed)))
        np.testing.assert_allclose(q.mean, mean[0], rtol=1e-5)
        np.testing.assert_allclose(np.diagonal(q.covariance), np.diagonal(cov), rtol=1e-5)


def test_discrete_loaders_say_how_to_load_a_gaussian_network():
    with pytest.raises(ValueError, match="linear-Gaussian.*load_network"):
        bif_path("ecoli70")
    with pytest.raises(ValueError, match="linear-Gaussian.*read_json"):
        bn.read_bif(gaussian_json_path("arth150"))
    with pytest.raises(ValueError, match="ecoli70"):
        load_network("no-such-network")
    with pytest.raises(ValueError, match="discrete"):
        gaussian_json_path("alarm")


def test_json_errors_name_the_culprit():
    good = {"nodes": ["a", "b"], "arcs": [["a", "b"]],
            "cpds": {"a": {"coefficients": {"(Intercept)": [0.0]}, "variance": [1.0], "parents": []},
                     "b": {"coefficients": {"(Intercept)": [1.0], "a": [2.0]}, "variance": [0.5],
                           "parents": ["a"]}}}
    net = lg.parse_json(good)
    assert net.cpd("b") == ({"a": 2.0}, 1.0, 0.5)
    bad = {**good, "cpds": {**good["cpds"], "b": {**good["cpds"]["b"], "variance": [-1.0]}}}
    with pytest.raises(ValueError, match=r"variance must be positive.*\['b'\]"):
        lg.parse_json(bad)
    bad = {**good, "cpds": {**good["cpds"], "b": {**good["cpds"]["b"], "coefficients": {"(Intercept)": [1.0]}}}}
    with pytest.raises(ValueError, match=r"'b' has no coefficient for parents \['a'\]"):
        lg.parse_json(bad)
    with pytest.raises(ValueError, match="cycle"):
        lg.parse_json({"nodes": ["a", "b"], "arcs": [],
                       "cpds": {"a": {"coefficients": {"(Intercept)": [0.0], "b": [1.0]}, "variance": [1.0],
                                      "parents": ["b"]},
                                "b": {"coefficients": {"(Intercept)": [0.0], "a": [1.0]}, "variance": [1.0],
                                      "parents": ["a"]}}})
