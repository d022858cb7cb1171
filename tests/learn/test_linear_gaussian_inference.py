"""gm.learn.linear_gaussian queries (posterior, query, log_evidence, sampling) against float64 closed forms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from gm.learn import linear_gaussian as lg


def random_net(seed, n=6, dtype=jnp.float64):
    rng = np.random.default_rng(seed)
    names = [f"v{i}" for i in range(n)]
    order = rng.permutation(n)  # variable order differs from the topological order
    parents, weights = {}, {}
    for pos, i in enumerate(order):
        earlier = order[:pos]
        pa = [names[j] for j in earlier if rng.random() < 0.5]
        parents[names[i]] = pa
        weights[names[i]] = list(rng.normal(0, 1.2, size=len(pa)))
    return lg.GaussianBayesNet.from_dict(
        parents=parents, weights=weights, names=names,
        bias={x: float(rng.normal(0, 5)) for x in names},
        variance={x: float(rng.uniform(0.1, 2.0)) for x in names}, dtype=dtype)


def oracle(net, values, observed):
    """Float64 covariance-form conditioning of the matrix-form joint."""
    w, b, v = (np.asarray(a, np.float64) for a in net.params)
    a = np.linalg.inv(np.eye(len(b)) - w)
    mu, cov = a @ b, a @ np.diag(v) @ a.T
    o, u = np.flatnonzero(observed), np.flatnonzero(~observed)
    gain = cov[np.ix_(u, o)] @ np.linalg.inv(cov[np.ix_(o, o)]) if len(o) else np.zeros((len(u), 0))
    mean = mu.copy()
    mean[o] = values[o]
    mean[u] = mu[u] + gain @ (values[o] - mu[o])
    post = np.zeros_like(cov)
    post[np.ix_(u, u)] = cov[np.ix_(u, u)] - gain @ cov[np.ix_(o, u)]
    log_ev = multivariate_normal(mu[o], cov[np.ix_(o, o)]).logpdf(values[o]) if len(o) else 0.0
    return mean, post, log_ev


@pytest.mark.parametrize("seed", range(4))
def test_posterior_and_log_evidence_match_the_covariance_form(seed, x64):
    net = random_net(seed)
    rng = np.random.default_rng(100 + seed)
    values = rng.normal(0, 3, size=(5, net.n_vars))
    observed = rng.random((5, net.n_vars)) < 0.5
    observed[0] = False  # nothing observed: the joint
    observed[1] = True  # everything observed: log p(x)
    post = jax.jit(jax.vmap(lg.posterior, in_axes=(None, 0)))(net, lg.Evidence(jnp.asarray(values), jnp.asarray(observed)))
    for k in range(5):
        mean, cov, log_ev = oracle(net, values[k], observed[k])
        np.testing.assert_allclose(post.mean[k], mean, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(post.covariance[k], cov, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(post.log_evidence[k], log_ev, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(post.log_evidence[1], lg.log_density(net, values[1]), rtol=1e-10)
    g = lg.joint(net)
    np.testing.assert_allclose(lg.log_prob(g, values[1]), lg.log_density(net, values[1]), rtol=1e-10)


def test_query_selects_and_orders_variables(x64):
    net = random_net(7)
    ev = net.evidence({"v1": 2.0, "v4": -1.0})
    full = lg.posterior(net, ev)
    q = jax.jit(lg.query, static_argnums=1)(net, ("v5", "v0", "v1"), ev)
    idx = [5, 0, 1]
    np.testing.assert_allclose(q.mean, full.mean[np.array(idx)], rtol=1e-12)
    np.testing.assert_allclose(q.covariance, full.covariance[np.ix_(idx, idx)], rtol=1e-10, atol=1e-14)
    assert q.mean[2] == 2.0 and np.all(q.covariance[2] == 0)  # observed: its value, zero variance
    np.testing.assert_allclose(lg.log_evidence(net, {"v1": 2.0, "v4": -1.0}), full.log_evidence)


def test_float32_matches_float64_on_a_network_far_from_zero():
    net32 = random_net(3, n=12, dtype=jnp.float32)  # the oracle runs in float64 on the same parameters
    rng = np.random.default_rng(0)
    values = rng.normal(0, 3, size=12)
    observed = rng.random(12) < 0.4
    mean, cov, log_ev = oracle(net32, values, observed)
    post = lg.posterior(net32, lg.Evidence(jnp.asarray(values, jnp.float32), jnp.asarray(observed)))
    scale = np.abs(mean).max()
    np.testing.assert_allclose(post.mean, mean, atol=1e-5 * scale)
    np.testing.assert_allclose(np.diagonal(post.covariance), np.diagonal(cov), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(post.log_evidence, log_ev, rtol=1e-5)


def test_evidence_as_data_compiles_once():
    net = random_net(1, dtype=jnp.float32)
    fn = jax.jit(lg.posterior)
    fn(net, net.evidence({"v0": 1.0}))
    before = fn._cache_size()
    fn(net, net.evidence({"v3": 1.0, "v2": 0.5}))
    fn(net, net.evidence({}))
    assert fn._cache_size() == before
    rows = np.array([[np.nan, 1.0, np.nan, 2.0, np.nan, np.nan], [0.5] * 6])
    batch = jax.vmap(lg.posterior, in_axes=(None, 0))(net, lg.evidence_from_array(rows))
    one = lg.posterior(net, lg.evidence_from_array(rows[0]))
    np.testing.assert_allclose(batch.mean[0], one.mean, rtol=1e-6)


def test_sample_posterior_moments(x64):
    net = random_net(5)
    ev = net.evidence({"v2": 1.5, "v5": -0.5})
    post = lg.posterior(net, ev)
    draws = np.asarray(jax.jit(lg.sample_posterior, static_argnums=3)(jax.random.key(0), net, ev, 40_000))
    assert np.all(draws[:, 2] == 1.5) and np.all(draws[:, 5] == -0.5)
    sd = np.sqrt(np.diagonal(post.covariance)) + 1e-12
    np.testing.assert_allclose(draws.mean(0), post.mean, atol=float(4 * sd.max() / np.sqrt(40_000)))
    np.testing.assert_allclose(np.cov(draws.T), post.covariance, atol=0.05 * float(np.diagonal(post.covariance).max()))


def test_sample_matches_joint_moments():
    net = random_net(2, dtype=jnp.float32)
    x = np.asarray(lg.sample(jax.random.key(1), net, 50_000), np.float64)
    g = lg.joint(net)
    sd = np.sqrt(np.diagonal(np.asarray(g.covariance)))
    np.testing.assert_allclose(x.mean(0), g.mean, atol=float(5 * sd.max() / np.sqrt(50_000)))
    np.testing.assert_allclose(np.cov(x.T), g.covariance, atol=0.03 * float(sd.max() ** 2))


def test_query_errors():
    net = random_net(0, dtype=jnp.float32)
    with pytest.raises(ValueError, match="unknown variable 'zz'"):
        lg.query(net, ["zz"], None)
    with pytest.raises(ValueError, match="unknown variable 'zz'"):
        net.evidence({"zz": 1.0})
    with pytest.raises(ValueError, match="must be finite"):
        net.evidence({"v0": float("nan")})
    with pytest.raises(ValueError, match=r"evidence must hold values f32\[6\]"):
        lg.posterior(net, lg.Evidence(jnp.zeros(5), jnp.zeros(5, bool)))
    with pytest.raises(ValueError, match="repeat"):
        lg.query(net, ["v0", "v0"], None)
