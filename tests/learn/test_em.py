"""gm.learn.em: expected counts vs enumeration, monotone log-likelihood, pgmpy's EM as an oracle."""

from __future__ import annotations

import logging
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm import bn, learn
from gm.learn import Prior
from gm.learn import expectation_maximization as E
from tests.bn import oracle as O

warnings.filterwarnings("ignore", module="pgmpy")
logging.getLogger("pgmpy").setLevel(logging.ERROR)
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def latent_net():
    """H (latent, 2 states) -> A, B, C (3 states each), with an observed root R -> H."""
    return bn.BayesNet.from_dict(
        states={"R": ["r0", "r1"], "H": ["h0", "h1"], "A": 3, "B": 3, "C": 3},
        parents={"H": ["R"], "A": ["H"], "B": ["H"], "C": ["H", "R"]},
        cpts={
            "R": [0.4, 0.6],
            "H": [[0.8, 0.2], [0.3, 0.7]],
            "A": [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]],
            "B": [[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]],
            "C": [[[0.5, 0.4, 0.1], [0.3, 0.3, 0.4]], [[0.1, 0.2, 0.7], [0.6, 0.2, 0.2]]],
        },
    )


def _sample(net, rng, n):
    return O.ancestral_sample(O.spec_from_net(net), rng, n).astype(np.int32)


def _data_with_missing(net, n, seed, missing=0.2):
    rng = np.random.default_rng(seed)
    data = _sample(net, rng, n)
    data = np.where(rng.random(data.shape) < missing, -1, data).astype(np.int32)
    data[:, net.index("H")] = -1  # latent
    return data


def test_expected_counts_match_enumeration(x64):
    net = latent_net()
    net64 = bn.BayesNet(net.structure, [jnp.asarray(c, jnp.float64) for c in net.cpts])
    data = _data_with_missing(net, 60, 0)
    weights = np.random.default_rng(1).uniform(0.5, 1.5, 60)
    counts, ll = jax.jit(E.expected_counts)(net64, data, weights=weights)
    spec = O.spec_from_net(net64)
    P = O.joint(spec)
    for i, fam in enumerate(net.structure.families):
        expected = sum(w * O.query(spec, fam, ev, P=P) for w, ev in zip(weights, data))
        np.testing.assert_allclose(np.asarray(counts[i]), expected, atol=1e-9)
    np.testing.assert_allclose(float(ll), sum(w * O.log_evidence(spec, ev, P=P) for w, ev in zip(weights, data)),
                               rtol=1e-10)


@pytest.mark.slow
def test_complete_data_map_fixed_point():
    net = latent_net()
    data = _sample(net, np.random.default_rng(5), 300)
    # with complete data the expected counts are the counts, so one EM step lands on the complete-data
    # estimate (here MAP under K2)
    result = E.em(E.random_init(jax.random.key(0), net), data, num_iters=3, prior=Prior.k2(estimate="map"))
    expected = jax.jit(lambda d: learn.dirichlet(net, d, prior=Prior.k2(estimate="map")))(data)
    for got, exp in zip(result.model.cpts, expected.cpts):
        np.testing.assert_allclose(np.asarray(got), np.asarray(exp), atol=1e-5)


@pytest.mark.parametrize("prior", [None, Prior.bdeu(10.0, estimate="map")], ids=["ml", "bdeu"])
def test_em_is_monotone_with_missing_values(prior):
    net = latent_net()
    data = _data_with_missing(net, 1000, 2)
    result = E.em(E.random_init(jax.random.key(1), net), data, num_iters=40, tol=0.0, prior=prior)
    obj = result.log_likelihood
    assert len(obj) == 41
    assert np.all(np.diff(obj) >= -1e-5 * np.abs(obj[1:])), np.diff(obj)
    assert obj[-1] > obj[0] + 10  # it actually learned something
    if prior is None:  # the objective is the log-likelihood of the returned model
        np.testing.assert_allclose(obj[-1], float(E.log_likelihood(result.model, data)), rtol=1e-6)


@pytest.mark.slow  # ~20-30 s on 2 busy cores, mostly pgmpy; run with -m slow
def test_reaches_pgmpy_em_log_likelihood():
    """pgmpy's ExpectationMaximization with a latent variable: our best of a few random starts reaches
    its final log-likelihood (or better); both are scored by our exact log_evidence in float64."""
    import pandas as pd
    from pgmpy.estimators import ExpectationMaximization
    from pgmpy.models import DiscreteBayesianNetwork

    net = latent_net()
    full = _sample(net, np.random.default_rng(7), 600)
    observed = [n for n in net.names if n != "H"]
    frame = pd.DataFrame({n: np.asarray(net.states[net.index(n)], object)[full[:, net.index(n)]] for n in observed})
    model = DiscreteBayesianNetwork([("R", "H"), ("H", "A"), ("H", "B"), ("H", "C"), ("R", "C")], latents={"H"})
    cpds = ExpectationMaximization(model, frame).get_parameters(latent_card={"H": 2}, max_iter=100, seed=0,
                                                                show_progress=False)
    model.add_cpds(*cpds)
    ref = bn.from_pgmpy(model)
    data = full.copy()
    data[:, net.index("H")] = -1

    def score(fitted):
        ev = np.full((len(data), fitted.n_vars), -1, np.int32)
        for j, name in enumerate(fitted.names):
            if name != "H":
                i = net.index(name)
                order = [fitted.states[j].index(s) for s in net.states[i]]
                ev[:, j] = np.asarray(order)[data[:, i]]
        with jax.enable_x64(True):
            f64 = bn.BayesNet(fitted.structure, [jnp.asarray(c, jnp.float64) for c in fitted.cpts])
            return float(E.log_likelihood(f64, ev))

    theirs = score(ref)
    ours = max(score(E.em(E.random_init(jax.random.key(s), net), data, num_iters=200).model) for s in range(3))
    assert ours >= theirs - 1e-3 * abs(theirs), (ours, theirs)


def test_errors():
    net = latent_net()
    with pytest.raises(ValueError, match=r"data must have shape \(N, 5\)"):
        E.em(net, np.zeros((3, 4), np.int32))
    with pytest.raises(ValueError, match="num_iters"):
        E.em(net, np.zeros((3, 5), np.int32), num_iters=-1)
