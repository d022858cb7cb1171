"""gm.learn.hmm: Baum-Welch against hmmlearn (with gm.temporal's smoother and Viterbi on the same
models), monotone MAP-EM for every emission family, padding, weights, compilation and restarts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm import learn
from gm import temporal as tm
from gm.learn.common import EMStep, FitResult, Prior

hmmlearn = pytest.importorskip("hmmlearn.hmm")


def _cat_model(rng, K=3, V=5):
    pi = rng.dirichlet(np.ones(K))
    A = rng.dirichlet(np.ones(K) * 2, size=K)
    B = rng.dirichlet(np.ones(V), size=K)
    return pi, A, B


def _pad(seqs, fill):
    T = max(len(s) for s in seqs)
    shape = (len(seqs), T) + np.shape(seqs[0])[1:]
    out = np.full(shape, fill, dtype=np.asarray(seqs[0]).dtype)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    mask = np.arange(T)[None] < np.array([len(s) for s in seqs])[:, None]
    return out, mask


@pytest.mark.parametrize("implementation", ["log", "scaling"])
def test_categorical_matches_hmmlearn(implementation):
    rng = np.random.default_rng(0)
    K, V = 3, 5
    pi, A, B = _cat_model(rng, K, V)
    lengths = [40, 25, 33]
    seqs = [rng.integers(0, V, size=n) for n in lengths]
    ref = hmmlearn.CategoricalHMM(K, n_features=V, implementation=implementation, init_params="", params="ste",
                             n_iter=1)
    ref.startprob_, ref.transmat_, ref.emissionprob_ = pi, A, B
    X = np.concatenate(seqs)[:, None]
    obs, mask = _pad(seqs, -1)
    fam = tm.Categorical(V)
    params = tm.HMM(jnp.asarray(pi, jnp.float32), jnp.asarray(A, jnp.float32),
                          tm.CategoricalParams(jnp.asarray(B, jnp.float32)))
    # score, predict_proba, decode: sequence by sequence
    for s, m, o in zip(seqs, mask, obs):
        ll = fam.log_likelihood(params.emission, o)
        post = tm.smoother(params.initial, params.transition, ll, mask=jnp.asarray(m))
        np.testing.assert_allclose(post.log_evidence, ref.score(s[:, None]), rtol=1e-5)
        np.testing.assert_allclose(post.marginals[: len(s)], ref.predict_proba(s[:, None]), atol=1e-5)
        logp, states = ref.decode(s[:, None], algorithm="viterbi")
        path = tm.viterbi(params.initial, params.transition, ll, mask=jnp.asarray(m))
        np.testing.assert_array_equal(path.states[: len(s)], states)
        np.testing.assert_allclose(path.log_prob, logp, rtol=1e-5)
    # one EM iteration over the padded batch
    new, loglik = learn.hmm.em_step(fam, params, jnp.asarray(obs), mask=jnp.asarray(mask))
    np.testing.assert_allclose(loglik, ref.score(X, lengths), rtol=1e-5)
    ref.fit(X, lengths)
    np.testing.assert_allclose(new.initial, ref.startprob_, atol=1e-5)
    np.testing.assert_allclose(new.transition, ref.transmat_, atol=1e-5)
    np.testing.assert_allclose(new.emission.probs, ref.emissionprob_, atol=1e-5)


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_gaussian_matches_hmmlearn(covariance):
    rng = np.random.default_rng(1)
    K, D = 3, 2
    pi = rng.dirichlet(np.ones(K))
    A = rng.dirichlet(np.ones(K) * 3, size=K)
    means = rng.normal(size=(K, D)) * 2
    if covariance == "diag":
        covars = rng.uniform(0.5, 2.0, size=(K, D))
    else:
        L = rng.normal(size=(K, D, D)) * 0.5
        covars = L @ np.swapaxes(L, 1, 2) + np.eye(D)
    lengths = [50, 30]
    seqs = [rng.normal(size=(n, D)) * 2 for n in lengths]
    prior = 1e-2 * (np.eye(D)[None].repeat(K, 0) if covariance == "full" else 1.0)
    ref = hmmlearn.GaussianHMM(K, covariance_type=covariance, init_params="", params="stmc", n_iter=1,
                          covars_prior=prior)
    ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = pi, A, means, covars
    fam = tm.Gaussian(D, covariance=covariance)
    params = tm.HMM(*(jnp.asarray(x, jnp.float32) for x in (pi, A)),
                          tm.GaussianParams(jnp.asarray(means, jnp.float32), jnp.asarray(covars, jnp.float32)))
    scores = []
    for s in seqs:
        ll = fam.log_likelihood(params.emission, s)
        post = tm.smoother(params.initial, params.transition, ll)
        scores.append(ref.score(s))
        np.testing.assert_allclose(post.log_evidence, scores[-1], rtol=1e-5)
        np.testing.assert_allclose(post.marginals, ref.predict_proba(s), atol=1e-5)
        logp, states = ref.decode(s)
        path = tm.viterbi(params.initial, params.transition, ll)
        np.testing.assert_array_equal(path.states, states)
        np.testing.assert_allclose(path.log_prob, logp, rtol=1e-5)
    obs, mask = _pad(seqs, np.nan)
    new, loglik = learn.hmm.em_step(fam, params, jnp.asarray(obs, jnp.float32), mask=jnp.asarray(mask))
    np.testing.assert_allclose(loglik, sum(scores), rtol=1e-5)
    ref.fit(np.concatenate(seqs), lengths)
    np.testing.assert_allclose(new.initial, ref.startprob_, atol=1e-5)
    np.testing.assert_allclose(new.transition, ref.transmat_, atol=1e-5)
    np.testing.assert_allclose(new.emission.means, ref.means_, atol=1e-4)
    ref_covars = ref._covars_ if covariance == "diag" else ref.covars_  # covars_ is always full
    np.testing.assert_allclose(new.emission.covars, ref_covars, atol=1e-4, rtol=1e-4)


def _simulate(key, family, params, B, T):
    keys = jax.random.split(key, B)
    sampler = lambda k, z: family.sample(k, params.emission, z)  # noqa: E731
    return jax.vmap(lambda k: tm.sample(k, params.initial, params.transition, T, sampler))(keys)


FAMILIES = [
    (tm.Categorical(4), tm.CategoricalParams(jnp.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]]))),
    (tm.Gaussian(2), tm.GaussianParams(jnp.array([[0.0, 0.0], [2.0, -1.0]]), jnp.ones((2, 2)))),
    (tm.Gaussian(2, "full"), tm.GaussianParams(jnp.array([[0.0, 0.0], [2.0, -1.0]]),
                                               jnp.array([[[1.0, 0.3], [0.3, 1.0]], [[1.0, -0.2], [-0.2, 0.5]]]))),
    (tm.Poisson(2), tm.PoissonParams(jnp.array([[1.0, 5.0], [4.0, 0.5]]))),
    (tm.GaussianMixture(1, 2), tm.GaussianMixtureParams(jnp.array([[0.5, 0.5], [0.3, 0.7]]),
                                                        jnp.array([[[-2.0], [2.0]], [[0.0], [5.0]]]),
                                                        jnp.ones((2, 2, 1)))),
]


@pytest.mark.parametrize("family, emission", FAMILIES, ids=lambda f: type(f).__name__)
def test_em_never_decreases_and_recovers(family, emission):
    truth = tm.HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.2, 0.8]]), emission)
    states, obs = _simulate(jax.random.key(0), family, truth, 6, 60)
    lengths = jnp.array([60, 45, 60, 30, 52, 60])
    mask = tm.length_mask(lengths, 60)
    prior = Prior.dirichlet({"initial": 1.5, "transition": 2.0})
    params = learn.hmm.init(jax.random.key(1), family, 2, obs, mask=mask)
    for pr in (None, prior):
        result = learn.hmm.fit(family, params, obs, mask=mask, num_iters=8, prior=pr)
        assert isinstance(result, FitResult) and not result.converged
        hist = np.asarray(result.log_likelihood)
        assert hist.shape == (9,)
        assert np.all(np.diff(hist) >= -1e-5 * np.abs(hist).max()), hist
        assert hist[-1] > hist[0]
        # the last entry is the returned model's objective
        total = jnp.sum(jax.vmap(lambda o, m: tm.log_likelihood(family, result.model, o, mask=m))(obs, mask))
        np.testing.assert_allclose(hist[-1], total + learn.hmm.log_prior(family, result.model, prior=pr),
                                   rtol=1e-5)


def test_em_step_compiles_once():
    """A second call with new parameters, data or prior concentrations of the same shapes traces nothing."""
    family, emission = FAMILIES[0]
    truth = tm.HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.2, 0.8]]), emission)
    _, obs = _simulate(jax.random.key(2), family, truth, 4, 20)
    mask = tm.length_mask(jnp.array([20, 10, 15, 20]), 20)
    p = learn.hmm.init(jax.random.key(3), family, 2, obs)
    p2 = learn.hmm.init(jax.random.key(4), family, 2, obs)
    learn.hmm.em_step(family, p, obs, mask=mask)  # compile (may already be cached by other tests)
    learn.hmm.em_step(family, p2, obs + 0, mask=mask, prior=Prior.dirichlet(2.0))
    traces = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/jaxpr_trace_duration":
            traces.append(kwargs.get("fun_name"))

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        for i in range(3):
            p, _ = learn.hmm.em_step(family, p, obs + 0, mask=mask)
        learn.hmm.em_step(family, p2, obs, mask=mask, prior=Prior.dirichlet({"transition": 3.0}))
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert traces == [], traces


def test_padding_does_not_change_em():
    family, emission = FAMILIES[1]
    truth = tm.HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.2, 0.8]]), emission)
    _, obs = _simulate(jax.random.key(5), family, truth, 2, 30)
    p = learn.hmm.init(jax.random.key(6), family, 2, obs)
    padded = jnp.concatenate([obs, jnp.full((2, 10, 2), 7.0)], axis=1)  # finite garbage
    mask = tm.length_mask(jnp.array([30, 30]), 40)
    step = learn.hmm.em_step(family, p, obs)
    assert isinstance(step, EMStep)
    a, lla = step
    b, llb = learn.hmm.em_step(family, p, padded, mask=mask)
    np.testing.assert_allclose(lla, llb, rtol=1e-6)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_weights_equal_repeated_sequences():
    """An integer weight counts a sequence that many times."""
    family, emission = FAMILIES[0]
    truth = tm.HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.2, 0.8]]), emission)
    _, obs = _simulate(jax.random.key(9), family, truth, 3, 25)
    p = learn.hmm.init(jax.random.key(10), family, 2, obs)
    weighted = learn.hmm.em_step(family, p, obs, weights=jnp.array([2.0, 1.0, 3.0]))
    repeated = learn.hmm.em_step(family, p, obs[jnp.array([0, 0, 1, 2, 2, 2])])
    np.testing.assert_allclose(weighted.log_likelihood, repeated.log_likelihood, rtol=1e-6)
    for x, y in zip(jax.tree.leaves(weighted.model), jax.tree.leaves(repeated.model)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_prior_resolution():
    flat = learn.hmm.resolve_prior(3)
    assert float(flat.concentrations.initial) == 1.0 and flat.estimate == "map"
    named = learn.hmm.resolve_prior(3, prior=Prior.dirichlet({"transition": 2.0}))
    assert float(named.concentrations.initial) == 1.0 and float(named.concentrations.transition) == 2.0
    bdeu = learn.hmm.resolve_prior(3, prior=Prior.bdeu(9.0))
    np.testing.assert_allclose([float(bdeu.concentrations.initial), float(bdeu.concentrations.transition)],
                               [3.0, 1.0])
    with pytest.raises(ValueError, match="initial"):
        learn.hmm.resolve_prior(3, prior=Prior.dirichlet({"emission": 2.0}))


def test_restarts_pick_the_best():
    family, emission = FAMILIES[0]
    truth = tm.HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.2, 0.8]]), emission)
    _, obs = _simulate(jax.random.key(7), family, truth, 4, 50)
    result = learn.hmm.fit_restarts(jax.random.key(8), family, 2, obs, num_restarts=3, num_iters=5)
    hist = result.log_likelihood
    assert hist.shape == (3, 6)
    assert np.all(np.diff(np.asarray(hist), axis=1) >= -1e-3)
    ll = jnp.sum(jax.vmap(lambda o: tm.log_likelihood(family, result.model, o))(obs))
    np.testing.assert_allclose(ll, np.max(hist[:, -1]), rtol=1e-5)
