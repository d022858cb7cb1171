"""gm.learn.bayes: NUTS over CPTs vs the closed-form Dirichlet posterior, exact missing-data likelihood,
posterior queries, the HMM model's likelihood vs path enumeration, and relabelling of switched labels."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm import bn, learn
from gm.learn import Prior, bayes
from tests.bn import oracle as O

numpyro = pytest.importorskip("numpyro")
from numpyro.diagnostics import effective_sample_size  # noqa: E402
from numpyro.infer.util import log_density  # noqa: E402


def small_net():
    return bn.BayesNet.from_dict(
        states={"A": 2, "B": 3, "C": 2},
        parents={"B": ["A"], "C": ["A", "B"]},
        cpts={
            "A": [0.35, 0.65],
            "B": [[0.6, 0.3, 0.1], [0.2, 0.3, 0.5]],
            "C": [[[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]], [[0.7, 0.3], [0.4, 0.6], [0.1, 0.9]]],
        },
    )


def _sample(net, seed, n):
    return O.ancestral_sample(O.spec_from_net(net), np.random.default_rng(seed), n).astype(np.int32)


def _counts(net, data):
    """Family counts with numpy (np.add.at), in CPT layout."""
    out = []
    for fam in net.structure.families:
        table = np.zeros([net.cards[v] for v in fam])
        np.add.at(table, tuple(data[:, v] for v in fam), 1.0)
        out.append(table)
    return out


@pytest.mark.slow  # 10 s of NUTS; the conjugate draws below are checked in the default tier
def test_nuts_matches_the_closed_form_dirichlet_posterior():
    net = small_net()
    data = _sample(net, 0, 150)
    mcmc = bayes.nuts(jax.random.key(1), net, data, prior=Prior.k2(), num_warmup=300, num_samples=1000)
    samples = mcmc.get_samples()
    counts = _counts(net, data)
    for i, name in enumerate(net.names):
        post = counts[i] + 1.0  # K2
        a0 = post.sum(-1, keepdims=True)
        exact_mean = post / a0
        exact_var = exact_mean * (1 - exact_mean) / (a0 + 1)
        draws = np.asarray(samples[name], np.float64)
        ess = np.asarray(effective_sample_size(draws[None]))  # one chain
        assert np.all(ess > 100), (name, ess.min())
        mean, var = draws.mean(0), draws.var(0)
        mcse_mean = np.sqrt(var / ess)
        assert np.all(np.abs(mean - exact_mean) <= 3 * mcse_mean), (name, mean, exact_mean, mcse_mean)
        # the variance: batch means (20 batches of 50 draws) give its Monte Carlo standard error without
        # assuming how the squared deviations are autocorrelated
        batch_var = draws.reshape(20, 50, *draws.shape[1:]).var(axis=1, ddof=1)
        mcse_var = batch_var.std(0, ddof=1) / np.sqrt(20)
        assert np.all(np.abs(batch_var.mean(0) - exact_var) <= 3 * mcse_var), (name, var, exact_var, mcse_var)


def _log_density_and_factor(model, args, kwargs, params):
    lp, trace = log_density(model, args, kwargs, params)
    return lp, trace["log_likelihood"]["fn"].log_factor


def test_exact_likelihood_equals_counts_likelihood_on_complete_data():
    net = small_net()
    data = _sample(net, 2, 80)
    alpha = learn.prior_counts(net, prior=Prior.bdeu(4.0))
    params = {n: c for n, c in zip(net.names, learn.random_init(jax.random.key(3), net).cpts)}
    counts = learn.family_counts(net, data)
    density = jax.jit(lambda kw, p: _log_density_and_factor(bayes.cpt_model, (net.structure, alpha), kw, p))
    lp_counts, _ = density(dict(counts=counts), params)
    lp_exact, _ = density(dict(data=jnp.asarray(data)), params)
    np.testing.assert_allclose(float(lp_counts), float(lp_exact), rtol=1e-5)
    # with missing values the factor is the sum of exact log evidences
    missing = data.copy()
    missing[::3, 1] = -1
    _, factor = density(dict(data=jnp.asarray(missing)), params)
    fitted = bn.BayesNet(net.structure, [params[n] for n in net.names])
    expected = float(jnp.sum(jax.jit(jax.vmap(lambda e: bn.log_evidence(fitted, e)))(missing)))
    np.testing.assert_allclose(float(factor), expected, rtol=1e-5)


def _numpy_posterior_nets(net, data, num_draws, seed):
    """Conjugate draws made with numpy (an independent route to the same posterior)."""
    rng = np.random.default_rng(seed)
    counts = [c + 1.0 for c in _counts(net, data)]  # K2: alpha = 1
    samples = {}
    for name, conc in zip(net.names, counts):
        flat = conc.reshape(-1, conc.shape[-1])
        draws = np.stack([rng.dirichlet(row, num_draws) for row in flat], axis=1)  # [S, rows, card]
        samples[name] = draws.reshape((num_draws,) + conc.shape).astype(np.float32)
    return bayes.posterior_nets(net, samples)


def test_posterior_query_from_conjugate_draws():
    net = small_net()
    data = _sample(net, 4, 200)
    ask = jax.jit(bayes.posterior_query, static_argnames=("names", "level"))
    nets = _numpy_posterior_nets(net, data, 2000, 5)
    # a root variable's marginal is its CPT: the posterior mean is (alpha + N) / sum
    q = ask(nets, ("A", "B"), net.evidence({}), level=0.9)
    counts = _counts(net, data)[0] + 1.0
    np.testing.assert_allclose(q.mean.sum(1), counts / counts.sum(), atol=0.01)
    assert np.all(q.lower < q.mean) and np.all(q.mean < q.upper)
    # a query with evidence: per-draw tables equal gm.bn.query under that draw
    ev = net.evidence({"C": 1})
    q = ask(nets, ("A", "B"), ev, level=0.9)
    assert q.mean.shape == (2, 3) and q.samples.shape == (2000, 2, 3)
    draw7 = bn.BayesNet(net.structure, [c[7] for c in nets.cpts])
    np.testing.assert_allclose(q.samples[7], bn.query(draw7, ["A", "B"], ev), atol=1e-6)
    # the interval shrinks with more data
    q_more = ask(_numpy_posterior_nets(net, _sample(net, 7, 2000), 2000, 6), ("A", "B"), ev, level=0.9)
    assert np.all(q_more.upper - q_more.lower < q.upper - q.lower)


def test_dirichlet_posterior_draws_have_the_conjugate_moments():
    net = small_net()
    data = _sample(net, 8, 100)
    nets = jax.jit(lambda k, d: bayes.dirichlet_posterior(k, net, d, 4000, prior=Prior.k2()))(
        jax.random.key(9), data)
    for i, conc in enumerate(_counts(net, data)):
        post = conc + 1.0
        mean = post / post.sum(-1, keepdims=True)
        sd = np.sqrt(mean * (1 - mean) / (post.sum(-1, keepdims=True) + 1))
        draws = np.asarray(nets.cpts[i], np.float64)
        assert np.all(np.abs(draws.mean(0) - mean) <= 4 * sd / np.sqrt(4000))


def _brute_force_hmm(initial, transition, emission, obs):
    total = 0.0
    k = len(initial)
    for path in itertools.product(range(k), repeat=len(obs)):
        p = initial[path[0]] * emission[path[0], obs[0]]
        for t in range(1, len(obs)):
            p *= transition[path[t - 1], path[t]] * emission[path[t], obs[t]]
        total += p
    return np.log(total)


def test_hmm_model_likelihood_is_the_forward_algorithm():
    rng = np.random.default_rng(0)
    initial = rng.dirichlet(np.ones(2))
    transition = rng.dirichlet(np.ones(2), 2)
    emission = rng.dirichlet(np.ones(3), 2)
    obs = rng.integers(0, 3, (3, 5)).astype(np.int32)
    params = dict(initial=jnp.asarray(initial, jnp.float32), transition=jnp.asarray(transition, jnp.float32),
                  emission=jnp.asarray(emission, jnp.float32))
    _, factor = jax.jit(lambda p: _log_density_and_factor(bayes.hmm_model, (obs, 2, 3), {}, p))(params)
    expected = sum(_brute_force_hmm(initial, transition, emission, o) for o in obs)
    np.testing.assert_allclose(float(factor), expected, rtol=1e-5)


def test_relabel_undoes_switched_labels():
    rng = np.random.default_rng(1)
    k, v, s = 3, 4, 60
    emission = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]])
    transition = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]])
    initial = np.array([0.5, 0.3, 0.2])
    noise = lambda shape: rng.normal(0, 0.01, shape)  # noqa: E731
    draws = dict(emission=emission + noise((s, k, v)), transition=transition + noise((s, k, k)),
                 initial=initial + noise((s, k)))
    perms = np.array([rng.permutation(k) for _ in range(s)])
    perms[0] = np.arange(k)  # the first draw is the reference
    switched = dict(
        emission=np.stack([draws["emission"][i][perms[i]] for i in range(s)]),
        initial=np.stack([draws["initial"][i][perms[i]] for i in range(s)]),
        transition=np.stack([draws["transition"][i][np.ix_(perms[i], perms[i])] for i in range(s)]),
    )
    fixed, found = bayes.relabel(switched)
    for key in draws:
        np.testing.assert_allclose(fixed[key], draws[key], atol=1e-12)
    # found[s] maps new labels to the switched labels: switched[perm] undoes perms
    np.testing.assert_array_equal(np.stack([perms[i][found[i]] for i in range(s)]), np.tile(np.arange(k), (s, 1)))


@pytest.mark.slow
def test_hmm_nuts_recovers_parameters_after_relabelling():
    k, v = 2, 3
    initial = jnp.array([0.6, 0.4])
    transition = jnp.array([[0.9, 0.1], [0.15, 0.85]])
    emission = jnp.array([[0.8, 0.15, 0.05], [0.05, 0.15, 0.8]])
    from gm.temporal import hmm

    keys = jax.random.split(jax.random.key(0), 30)
    obs = jnp.stack([hmm.sample(kk, initial, transition, 60,
                                lambda key, z: jax.random.categorical(key, jnp.log(emission[z]))).observations
                     for kk in keys])
    mcmc = bayes.hmm_nuts(jax.random.key(1), obs.astype(jnp.int32), k, v, num_warmup=300, num_samples=300,
                          num_chains=2)
    samples = {n: np.asarray(a) for n, a in mcmc.get_samples().items()}
    fixed, _ = bayes.relabel(samples, reference=np.asarray(emission))
    # oracle: Baum-Welch (gm.temporal) maximum likelihood, the posterior mode under these flat priors;
    # with 1,800 symbols the posterior mean is within a few posterior standard deviations of it
    from gm import temporal as tm

    start = tm.HMM(initial, transition, tm.CategoricalParams(emission))
    mle = learn.hmm.fit(tm.Categorical(v), start, obs.astype(jnp.int32), num_iters=300).model
    for name, ml in [("emission", mle.emission.probs), ("transition", mle.transition)]:
        mean, sd = fixed[name].mean(0), fixed[name].std(0)
        assert np.all(np.abs(mean - np.asarray(ml)) <= 3 * sd + 0.01), (name, mean, np.asarray(ml), sd)
        # the two chains agree after relabelling
        chains = fixed[name].reshape(2, -1, *fixed[name].shape[1:]).mean(1)
        np.testing.assert_allclose(chains[0], chains[1], atol=0.05)
