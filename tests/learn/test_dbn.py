"""gm.learn.dbn: EM for every CPT of a 2-TBN (the expected counts against enumeration are in
tests/temporal/test_dbn.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm import learn
from gm.learn.common import EMStep, FitResult, Prior
from gm.temporal import dbn


def _dist(rng, *shape):
    return rng.dirichlet(np.ones(shape[-1]), size=shape[:-1]) if len(shape) > 1 else rng.dirichlet(np.ones(shape[0]))


def _coupled(rng, V=3):
    return dbn.coupled_hmm(_dist(rng, 2), _dist(rng, 3), _dist(rng, 2, 3, 2), _dist(rng, 3, 2, 3),
                           _dist(rng, 2, V), _dist(rng, 3, 2))


def _hidden_chains(model, key, B=6, T=20):
    evs = jax.vmap(lambda k: dbn.sample(k, model, T))(jax.random.split(key, B))
    return evs.at[:, :, :2].set(-1)


def test_em_never_decreases():
    rng = np.random.default_rng(15)
    model = _coupled(rng)
    evs = _hidden_chains(model, jax.random.key(3))
    m = learn.dbn.init(jax.random.key(4), model, stickiness=0.3)
    values = []
    for _ in range(6):
        step = learn.dbn.em_step(m, evs)
        assert isinstance(step, EMStep)
        m, v = step
        values.append(float(v))
    assert all(b >= a - 1e-3 for a, b in zip(values, values[1:])), values


def test_fit_history_and_map_prior():
    """fit's history starts at the initial model and ends at the returned one; with a Dirichlet prior the
    MAP objective (log-likelihood + log prior) never decreases either, and the first entry is the start's."""
    rng = np.random.default_rng(16)
    model = _coupled(rng)
    evs = _hidden_chains(model, jax.random.key(5))
    start = learn.dbn.init(jax.random.key(6), model, stickiness=0.3)
    prior = Prior.dirichlet({"h": 2.0, "x": 1.5})
    for pr in (None, prior):
        result = learn.dbn.fit(start, evs, num_iters=4, prior=pr)
        assert isinstance(result, FitResult) and not result.converged
        hist = np.asarray(result.log_likelihood)
        assert hist.shape == (5,)
        assert np.all(np.diff(hist) >= -1e-3 * np.abs(hist).max()), hist
        total = float(jnp.sum(jax.vmap(lambda e: dbn.log_evidence(result.model, e))(evs)))
        np.testing.assert_allclose(hist[-1], total + float(learn.dbn.log_prior(result.model, prior=pr)), rtol=1e-5)
    first = float(jnp.sum(jax.vmap(lambda e: dbn.log_evidence(start, e))(evs)))
    np.testing.assert_allclose(hist[0], first + float(learn.dbn.log_prior(start, prior=prior)), rtol=1e-5)


def test_prior_resolution():
    rng = np.random.default_rng(17)
    model = _coupled(rng)
    alphas = learn.dbn.resolve_prior(model, prior=Prior.dirichlet({"h": 2.0}))
    assert float(alphas.transition[0]) == 2.0 and float(alphas.transition[1]) == 1.0
    bdeu = learn.dbn.resolve_prior(model, prior=Prior.bdeu(12.0))
    np.testing.assert_allclose(float(bdeu.transition[0]), 12.0 / model.transition_cpts[0].size)
    assert bdeu.estimate == "mean"
    with pytest.raises(ValueError, match="unknown variables"):
        learn.dbn.resolve_prior(model, prior=Prior.dirichlet({"z": 2.0}))
