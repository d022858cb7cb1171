"""Issue 18 in gm.temporal: eager calls raise a ValueError naming the culprit, jitted calls return the
documented marker (NaN log-evidence and NaN rows), `gm.validation.checked` raises inside jit."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from gm import learn
from gm import temporal as tm
from gm.validation import checked

PI = np.array([0.6, 0.4], np.float32)
A = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)
LL = np.log(np.array([[0.7, 0.2], [0.1, 0.5], [0.4, 0.4]], np.float32))

PASSES = {
    "filter": tm.filter,
    "smoother": tm.smoother,
    "expected_counts": tm.expected_counts,
    "two_slice_marginals": tm.two_slice_marginals,
    "viterbi": tm.viterbi,
    "associative_filter": tm.associative_filter,
    "associative_smoother": tm.associative_smoother,
    "associative_viterbi": tm.associative_viterbi,
    "sample_posterior": lambda i, t, l: tm.sample_posterior(jax.random.key(0), i, t, l),
}


def _bad(which):
    pi, a, ll = PI.copy(), A.copy(), LL.copy()
    if which == "negative":
        a[1] = [1.2, -0.2]
    elif which == "nan_transition":
        a[0, 1] = np.nan
    elif which == "row_sum":
        a[0] = [0.7, 0.2]
    elif which == "initial_sum":
        pi = np.array([0.5, 0.6], np.float32)
    elif which == "nan_log_lik":
        ll[1, 0] = np.nan
    elif which == "inf_log_lik":
        ll[2, 1] = np.inf
    return pi, a, ll


CASES = [
    ("negative", r"transition\[1, 1\] = -0.2 is negative"),
    ("nan_transition", r"transition\[0, 1\] = nan is negative or not finite"),
    ("row_sum", r"transition\[0\] does not sum to 1: sum = 0.9"),
    ("initial_sum", r"initial does not sum to 1: sum = 1.1"),
    ("nan_log_lik", r"log_lik\[1, 0\] = nan"),
    ("inf_log_lik", r"log_lik\[2, 1\] = inf"),
]


@pytest.mark.parametrize("name", sorted(PASSES))
@pytest.mark.parametrize("which,message", CASES)
def test_eager_call_names_the_culprit(name, which, message):
    with pytest.raises(ValueError, match=message):
        PASSES[name](*_bad(which))


def _looks_invalid(name, out, first_bad):
    if name in ("viterbi", "associative_viterbi"):
        return np.isnan(float(out.log_prob))
    if name == "sample_posterior":
        return np.all(np.asarray(out) == -1)
    if name == "two_slice_marginals":
        return np.all(np.isnan(np.asarray(out)))
    if name.endswith("filter"):  # filtered rows before the first bad step are correct (they do not read it)
        return (np.isnan(float(out.log_evidence)) and np.all(np.any(np.isnan(out.filtered[first_bad:]), -1))
                and np.all(~np.isfinite(out.log_normalizers[first_bad:])))
    return all(np.all(np.any(np.isnan(np.asarray(x).reshape(np.shape(x)[:1] + (-1,))), -1)) if np.ndim(x)
               else np.isnan(float(x)) for x in out)  # every row has a NaN


@pytest.mark.parametrize("which,first_bad", [("negative", 0), ("nan_log_lik", 1), ("inf_log_lik", 2)])
def test_jitted_call_returns_the_marker(which, first_bad):
    """Unchecked under jit: NaN log-evidence and a NaN in every row (filters: from the first bad step on;
    viterbi: NaN log_prob; sampled paths: all -1)."""
    args = _bad(which)
    for name, fn in PASSES.items():
        out = jax.jit(fn)(*args)
        assert _looks_invalid(name, out, first_bad), (name, which, out)
    filtered = jax.jit(tm.filter)(*args).filtered
    np.testing.assert_allclose(filtered[:first_bad], tm.filter(PI, A, LL).filtered[:first_bad], atol=1e-6)


def test_checked_raises_inside_jit_and_agrees_otherwise():
    safe = checked(jax.vmap(tm.smoother, in_axes=(None, None, 0)))
    batch = jnp.stack([LL, LL[::-1]])
    got = safe(PI, A, batch)
    want = jax.vmap(tm.smoother, in_axes=(None, None, 0))(PI, A, batch)
    np.testing.assert_allclose(got.marginals, want.marginals, atol=1e-6)
    with pytest.raises(ValueError, match="log-likelihoods must be finite or -inf"):
        safe(PI, A, batch.at[1, 0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="transition has a negative or non-finite entry"):
        safe(PI, jnp.asarray(_bad("negative")[1]), batch)


def test_valid_results_unchanged_by_the_marker():
    """The marker leaves valid inputs alone: the smoother equals brute-force enumeration (float64)."""
    T, K = LL.shape
    lik = np.exp(LL.astype(np.float64))
    joint = np.zeros((K,) * T)
    for path in np.ndindex(*joint.shape):
        p = PI[path[0]] * lik[0, path[0]]
        for t in range(1, T):
            p *= A[path[t - 1], path[t]] * lik[t, path[t]]
        joint[path] = p
    post = tm.smoother(PI, A, LL)
    np.testing.assert_allclose(float(post.log_evidence), np.log(joint.sum()), atol=1e-5)
    np.testing.assert_allclose(post.marginals[1], joint.sum(axis=(0, 2)) / joint.sum(), atol=1e-5)
    impossible = tm.smoother(PI, A, np.where(np.arange(T)[:, None] == 1, -np.inf, LL))
    assert float(impossible.log_evidence) == -np.inf  # impossible evidence keeps its own flag, -inf


def test_int_and_bool_inputs_are_cast():
    post = tm.smoother(np.array([1, 0]), np.array([[True, False], [False, True]]), np.zeros((3, 2), int))
    np.testing.assert_allclose(post.marginals, [[1, 0]] * 3)
    with pytest.raises(TypeError, match="transition must be a real"):
        tm.smoother(PI, A.astype(np.complex64), LL)


@pytest.mark.parametrize("bad,message", [
    (np.zeros((3,)), r"log_lik must have shape \[T, K\]"),
    (np.zeros((0, 2)), "at least one time step"),
    (np.zeros((3, 3)), r"initial must have shape \[K\] = \(3,\)"),
])
def test_shapes_name_the_argument(bad, message):
    with pytest.raises(ValueError, match=message):
        tm.filter(PI, A, bad)


def test_sample_num_steps_and_values():
    with pytest.raises(ValueError, match="num_steps must be a positive int"):
        tm.sample(jax.random.key(0), PI, A, 0)
    with pytest.raises(ValueError, match=r"transition\[1, 1\] = -0.2"):
        tm.sample(jax.random.key(0), PI, _bad("negative")[1], 4)
    assert tm.sample(jax.random.key(0), np.array([0, 1]), np.eye(2, dtype=int), 3).states.tolist() == [1, 1, 1]


# ----------------------------------------------------------------------------------- emission families

FAMILY = tm.Categorical(3)
MODEL = tm.HMM(jnp.asarray(PI), jnp.asarray(A), tm.CategoricalParams(jnp.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])))


@pytest.mark.parametrize("symbol", [3, 7, -2])
def test_categorical_symbol_out_of_range(symbol):
    obs = np.array([0, symbol, 1], np.int32)
    for call in (lambda o: tm.posterior(FAMILY, MODEL, o), lambda o: FAMILY.log_likelihood(MODEL.emission, o)):
        with pytest.raises(ValueError, match=rf"obs\[1\] = {symbol} is not a symbol of Categorical\(3\)"):
            call(obs)
    # jitted: never clipped or dropped, the step's likelihood is NaN and so is the log-evidence
    assert np.isnan(float(jax.jit(lambda o: tm.posterior(FAMILY, MODEL, o).log_evidence)(obs)))
    assert np.all(np.isnan(jax.jit(lambda o: FAMILY.log_likelihood(MODEL.emission, o))(obs)[1]))
    with pytest.raises(ValueError, match="obs out of range"):
        checked(lambda o: tm.log_likelihood(FAMILY, MODEL, o))(obs)


def test_missing_symbol_is_still_missing():
    full = tm.posterior(FAMILY, MODEL, np.array([0, 2]))
    missing = tm.posterior(FAMILY, MODEL, np.array([0, -1, 2]))
    np.testing.assert_allclose(np.asarray(missing.marginals).sum(1), 1.0, atol=1e-6)
    assert np.isfinite(float(full.log_evidence)) and np.isfinite(float(missing.log_evidence))


def test_categorical_obs_dtype_and_rank():
    with pytest.raises(TypeError, match="obs must be an integer array"):
        tm.posterior(FAMILY, MODEL, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"obs must be one sequence of shape \[T\]"):
        tm.posterior(FAMILY, MODEL, np.zeros((2, 3), np.int32))


def test_continuous_families_reject_infinite_values():
    g = tm.Gaussian(2)
    params = tm.GaussianParams(jnp.zeros((2, 2)), jnp.ones((2, 2)))
    obs = np.array([[0.0, 1.0], [np.inf, 0.0]], np.float32)
    with pytest.raises(ValueError, match=r"obs\[1, 0\] = inf"):
        g.log_likelihood(params, obs)
    assert np.all(np.isnan(jax.jit(g.log_likelihood)(params, obs)[1]))
    p = tm.Poisson(1)
    with pytest.raises(ValueError, match=r"obs\[0, 0\] = -1.0: every entry must be a finite count"):
        p.log_likelihood(tm.PoissonParams(jnp.ones((2, 1))), np.array([[-1.0]]))


def test_log_prior_of_unseen_symbols_is_finite_and_fit_history_too():
    """0 log 0 = 0: a symbol never observed no longer makes the flat prior NaN (the history stayed NaN)."""
    params = tm.CategoricalParams(jnp.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]))
    assert float(FAMILY.log_prior(params)) == 0.0
    assert float(tm.Categorical(3, concentration=2.0).log_prior(params)) == -np.inf
    obs = np.array([[0, 0, 1, 1, 0, 0]], np.int32)  # symbol 2 never observed: EM drives its probability to 0
    result = learn.hmm.fit(FAMILY, MODEL, obs, num_iters=4)
    history = np.asarray(result.log_likelihood)
    assert np.all(np.isfinite(history)) and np.all(np.diff(history) >= -1e-4), history


@pytest.mark.slow  # one compile of the vmapped restarts (5-7 s); the root cause is in the default tier above
def test_fit_restarts_picks_the_best_finite_restart():
    obs = np.array([[0, 0, 1, 1, 0, 0, 1]], np.int32)
    result = learn.hmm.fit_restarts(jax.random.key(1), FAMILY, 2, obs, num_restarts=3, num_iters=5)
    final = np.asarray(result.log_likelihood)[:, -1]
    assert np.all(np.isfinite(final))
    best = learn.hmm.log_prior(FAMILY, result.model) + jnp.sum(jax.vmap(
        lambda o: tm.log_likelihood(FAMILY, result.model, o))(obs))
    np.testing.assert_allclose(float(best), final.max(), rtol=1e-5)


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(obs=np.array([0, 1, 2])), ValueError, r"obs must have shape \[B, T\].*add a batch axis"),
    (dict(obs=np.array([[0, 5]])), ValueError, r"obs\[0, 1\] = 5 is not a symbol"),
    (dict(weights=np.array([-1.0])), ValueError, "sequence 0 has weight -1.0"),
    (dict(weights=np.array([np.nan])), ValueError, "sequence 0 has weight nan"),
    (dict(mask=np.ones((1, 2), bool)), ValueError, r"mask must have shape \[B, T\]"),
])
def test_learn_hmm_entry_points(kwargs, error, message):
    args = dict(obs=np.array([[0, 1, 2]], np.int32))
    args.update(kwargs)
    obs = args.pop("obs")
    for fit in (learn.hmm.em_step, learn.hmm.fit, learn.hmm.fit_scan):
        with pytest.raises(error, match=message):
            fit(FAMILY, MODEL, obs, **args)
    with pytest.raises(error, match=message):
        learn.hmm.fit_restarts(jax.random.key(0), FAMILY, 2, obs, **args)


def test_learn_hmm_rejects_an_invalid_model():
    bad = MODEL._replace(transition=jnp.asarray(_bad("negative")[1]))
    with pytest.raises(ValueError, match=r"model.transition\[1, 1\] = -0.2"):
        learn.hmm.fit(FAMILY, bad, np.array([[0, 1]], np.int32), num_iters=1)


# ------------------------------------------------------------------------------------------------ DBN


def test_dbn_evidence_out_of_range():
    model = tm.factorial_hmm([np.ones(2) / 2] * 2, [np.eye(2) * 0.8 + 0.1] * 2, np.ones((2, 2, 3)) / 3)
    ev = np.full((3, len(model.names)), -1, np.int32)
    ev[1, -1] = 3
    with pytest.raises(ValueError, match=rf"evidence\[1, {len(model.names) - 1}\] = 3 for variable"):
        tm.dbn.log_evidence(model, ev)
    with pytest.raises(ValueError, match="out of range"):
        learn.dbn.em_step(model, ev[None])
    with pytest.raises(TypeError, match="evidence must be an integer array"):
        tm.dbn.smoother(model, ev.astype(np.float32))
    ev[1, -1] = -2  # below -1: impossible evidence under jit, never read as unobserved
    assert not np.isfinite(float(jax.jit(tm.dbn.log_evidence)(model, ev)))  # unobserved would give 0


FACTORIAL = tm.factorial_hmm([np.ones(2) / 2] * 2, [np.eye(2) * 0.8 + 0.1] * 2, np.full((2, 2, 3), 1 / 3))
COUPLED = tm.dbn.coupled_hmm(np.ones(2) / 2, np.ones(2) / 2, np.full((2, 2, 2), 0.5), np.full((2, 2, 2), 0.5),
                             np.array([[0.7, 0.3], [0.2, 0.8]]), np.array([[0.6, 0.4], [0.1, 0.9]]))
DBN_EVIDENCE = {"factorial": np.array([[-1, -1, 0], [-1, 1, 1], [-1, -1, 2], [0, -1, 0]], np.int32),
                "coupled": np.array([[-1, -1, 0, 1], [-1, 1, 1, -1], [-1, -1, 0, 0]], np.int32)}
DBN_CALLS = {
    "log_evidence": tm.dbn.log_evidence,
    "filter": tm.dbn.filter,
    "smoother": tm.dbn.smoother,
    "smoother_general": lambda m, e: tm.dbn.smoother(m, e, method="general"),
    "mpe": tm.dbn.mpe,
    "expected_counts": tm.dbn.expected_counts,
    "em_step": lambda m, e: learn.dbn.em_step(m, e[None]),
}


def _dbn_output_is_marker(name, out):
    if name == "log_evidence":
        return not np.isfinite(float(out))
    if name == "mpe":
        return np.isnan(float(out.log_prob))
    if name == "em_step":
        return not np.isfinite(float(out.log_likelihood))
    return not np.isfinite(float(out.log_evidence))


def _with_cpt(model, slice_name, var, value):
    initial, transition = list(model.initial_cpts), list(model.transition_cpts)
    (initial if slice_name == "initial_cpts" else transition)[model.index(var)] = jnp.asarray(value, jnp.float32)
    return tm.dbn.DBN(model.structure, initial, transition)  # the constructor: no check of its own


BAD_CPTS = [  # (model, slice, variable, value, message)
    ("factorial", "initial_cpts", "h1", [1.2, -0.2], r"model.initial_cpts\['h1'\]\[1\] = -0.2 is negative"),
    ("factorial", "transition_cpts", "h2", [[0.9, 0.1], [0.7, 0.2]],
     r"model.transition_cpts\['h2'\]\[1\] does not sum to 1: sum = 0.9"),
    ("factorial", "transition_cpts", "x", np.full((2, 2, 3), np.nan),
     r"model.transition_cpts\['x'\]\[0, 0, 0\] = nan is negative or not finite"),
    ("coupled", "transition_cpts", "v", np.stack([np.full((2, 2), 0.5), [[1.5, -0.5], [0.5, 0.5]]]),
     r"model.transition_cpts\['v'\]\[1, 0, 1\] = -0.5 is negative"),
]


@pytest.mark.parametrize("which,slice_name,var,value,message", BAD_CPTS)
def test_dbn_invalid_cpts_raise_eagerly(which, slice_name, var, value, message):
    """Factorial and coupled DBNs: a CPT built with the DBN constructor (or changed as a pytree) that is
    negative, NaN or unnormalised is named eagerly by every entry point (before anything compiles)."""
    model = _with_cpt(FACTORIAL if which == "factorial" else COUPLED, slice_name, var, value)
    for call in DBN_CALLS.values():
        with pytest.raises(ValueError, match=message):
            call(model, DBN_EVIDENCE[which])
    with pytest.raises(ValueError, match=message):
        tm.dbn.sample(jax.random.key(0), model, 3)


def _assert_cpt_marker_under_jit(which, slice_name, var, value):
    model = _with_cpt(FACTORIAL if which == "factorial" else COUPLED, slice_name, var, value)
    ev = DBN_EVIDENCE[which]
    for name, call in DBN_CALLS.items():
        assert _dbn_output_is_marker(name, jax.jit(call)(model, ev)), name
    assert np.all(np.asarray(jax.jit(lambda m: tm.dbn.sample(jax.random.key(0), m, 3))(model)) == -1)
    with pytest.raises(ValueError, match="out of range|negative|not sum"):
        checked(tm.dbn.log_evidence)(model, ev)


def test_dbn_invalid_cpt_marks_under_jit():
    """Under jit the output is the marker (NaN log-evidence / log_prob, sampled states -1), never the
    plausible numbers it used to be (marginals of 1.2, -0.2). One representative row here (the factorial
    path, compiled once); every row of the table in the slow tier below."""
    _assert_cpt_marker_under_jit(*BAD_CPTS[1][:4])


@pytest.mark.slow  # compiles every DBN entry point for both models (about 5 s)
@pytest.mark.parametrize("which,slice_name,var,value,message", BAD_CPTS)
def test_dbn_invalid_cpts_mark_under_jit_every_row(which, slice_name, var, value, message):
    _assert_cpt_marker_under_jit(which, slice_name, var, value)


@pytest.mark.parametrize("which,position", [("factorial", (2, 0)), ("factorial", (1, 2)), ("coupled", (1, 0)),
                                            ("coupled", (2, 3))])
@pytest.mark.parametrize("value", [-2, 7])
def test_dbn_evidence_out_of_range_on_chains_and_leaves(which, position, value):
    """A value out of range on a chain or a leaf: eager ValueError naming the step, the variable and the
    value; under jit impossible evidence (log p(e) NaN or -inf) on every path, the factorial fast path
    included (it used to read -2 as unobserved: log p(e) = -3.30 and marginals [0.5, 0.5])."""
    model = FACTORIAL if which == "factorial" else COUPLED
    ev = DBN_EVIDENCE[which].copy()
    ev[position] = value
    var = model.names[position[1]]
    for name, call in DBN_CALLS.items():
        with pytest.raises(ValueError, match=rf"evidence\[(0, )?{position[0]}, {position[1]}\] = {value} for variable "
                                             rf"'{var}' is out of range"):
            call(model, ev)
        assert _dbn_output_is_marker(name, jax.jit(call)(model, ev)), name
    batched = jax.jit(tm.dbn.smoother)(model, np.stack([DBN_EVIDENCE[which], ev]))
    assert np.isfinite(float(batched.log_evidence[0])) and not np.isfinite(float(batched.log_evidence[1]))


def test_dbn_valid_inputs_agree_with_the_unrolled_network():
    """The checks leave valid inputs alone: smoothing (both paths) equals gm.bn on the unrolled network."""
    from gm import bn

    ev = DBN_EVIDENCE["factorial"]
    net = tm.dbn.unroll(FACTORIAL, ev.shape[0])
    names = FACTORIAL.names
    flat = [ev[t, names.index(n.rsplit("_", 1)[0])] for t, n in ((int(n.rsplit("_", 1)[1]), n) for n in net.names)]
    want = bn.log_evidence(net, jnp.asarray(flat, jnp.int32))
    for method in ("factorial", "general"):
        got = tm.dbn.smoother(FACTORIAL, ev, method=method)
        np.testing.assert_allclose(float(got.log_evidence), float(want), rtol=1e-5)
    with pytest.raises(ValueError, match="num_steps must be a positive int"):
        tm.dbn.sample(jax.random.key(0), FACTORIAL, 0)


# ------------------------------------------------------------------------ emission parameters, settings

BAD_EMISSIONS = [  # (family, params, message): each used to give plausible numbers or NaN with no error
    (tm.Categorical(3), tm.CategoricalParams(jnp.array([[1.2, -0.2, 0.0], [0.3, 0.3, 0.4]])),
     r"model.emission.probs\[0, 1\] = -0.2 is negative"),
    (tm.Categorical(3), tm.CategoricalParams(jnp.array([[0.5, 0.2, 0.0], [0.3, 0.3, 0.4]])),
     r"model.emission.probs\[0\] does not sum to 1: sum = 0.7 \(rows are distributions over the V symbols\)"),
    (tm.Gaussian(1), tm.GaussianParams(jnp.zeros((2, 1)), jnp.array([[-1.0], [1.0]])),
     r"model.emission.covars \(variances\)\[0, 0\] = -1: every entry must be finite and > 0"),
    (tm.Gaussian(1), tm.GaussianParams(jnp.array([[np.nan], [0.0]]), jnp.ones((2, 1))),
     r"model.emission.means\[0, 0\] = nan: every entry must be finite"),
    (tm.Poisson(1), tm.PoissonParams(jnp.array([[0.0], [2.0]])), r"model.emission.rates\[0, 0\] = 0"),
    (tm.GaussianMixture(1, 2), tm.GaussianMixtureParams(jnp.array([[0.5, 0.6], [0.5, 0.5]]), jnp.zeros((2, 2, 1)),
                                                       jnp.ones((2, 2, 1))),
     r"model.emission.weights\[0\] does not sum to 1: sum = 1.1"),
]


@pytest.mark.parametrize("family,params,message", BAD_EMISSIONS)
def test_invalid_emission_parameters_raise_eagerly_and_mark_under_jit(family, params, message):
    model = tm.HMM(jnp.asarray(PI), jnp.asarray(A), params)
    obs = np.array([0, 2, 1], np.int32) if isinstance(family, tm.Categorical) else np.array([[1.0], [2.0], [0.0]],
                                                                                              np.float32)
    for call in (tm.posterior, tm.log_likelihood, tm.model.expected_counts):
        with pytest.raises(ValueError, match=message):
            call(family, model, obs)
    post = jax.jit(lambda m: tm.posterior(family, m, obs))(model)
    assert np.isnan(float(post.log_evidence)) and np.all(np.isnan(post.marginals))
    with pytest.raises(ValueError, match=message.replace("model.emission", "params")):
        family.log_likelihood(params, obs)


@pytest.mark.parametrize("covars,message", [
    ([[1.0, 2.0], [2.0, 1.0]], r"model.emission.covars\[0\] \(state 0\) is not positive definite: smallest eigenvalue -1"),
    ([[1.0, 0.9], [-0.9, 1.0]], r"model.emission.covars\[0\] \(state 0\) is not symmetric: \[0, 1\] = 0.9 but "
                                r"\[1, 0\] = -0.9"),
])
def test_full_covariance_must_be_symmetric_positive_definite(covars, message):
    """An indefinite covariance used to score partially observed vectors with finite numbers, and an
    asymmetric one everything (Cholesky reads one triangle): now an eager error naming the state, and
    under jit that state's log-likelihood column is NaN (so is the log-evidence)."""
    family = tm.Gaussian(2, covariance="full")
    params = tm.GaussianParams(jnp.zeros((2, 2)), jnp.asarray([covars, np.eye(2)], jnp.float32))
    model = tm.HMM(jnp.asarray(PI), jnp.asarray(A), params)
    obs = np.array([[0.1, 0.2], [np.nan, 0.3], [1.0, 1.0]], np.float32)
    for call in (tm.posterior, tm.log_likelihood):
        with pytest.raises(ValueError, match=message):
            call(family, model, obs)
    with pytest.raises(ValueError, match=message.replace("model.emission", "params")):
        family.log_likelihood(params, obs)


def test_full_covariance_marker_under_jit():
    family = tm.Gaussian(2, covariance="full")
    params = tm.GaussianParams(jnp.zeros((2, 2)), jnp.asarray([[[1.0, 0.9], [-0.9, 1.0]], np.eye(2)], jnp.float32))
    model = tm.HMM(jnp.asarray(PI), jnp.asarray(A), params)
    obs = np.array([[0.1, 0.2], [np.nan, 0.3], [1.0, 1.0]], np.float32)
    ll = jax.jit(family.log_likelihood)(params, obs)
    assert np.all(np.isnan(ll[:, 0])) and np.all(np.isfinite(ll[:, 1]))
    assert np.isnan(float(jax.jit(lambda m: tm.log_likelihood(family, m, obs))(model)))
    with pytest.raises(ValueError, match="not symmetric positive definite"):
        checked(lambda p: family.log_likelihood(p, obs))(params)
    valid = params._replace(covars=jnp.asarray([[[2.0, 0.5], [0.5, 1.0]], np.eye(2)], jnp.float32))
    want = scipy.stats.multivariate_normal(np.zeros(2), [[2.0, 0.5], [0.5, 1.0]]).logpdf([0.1, 0.2])
    np.testing.assert_allclose(family.log_likelihood(valid, obs)[0, 0], want, rtol=1e-5)  # valid: unchanged


@pytest.mark.parametrize("lengths,error,message", [
    (np.array([3, 5]), ValueError, r"length\[1\] = 5 \(sequence 1\) is out of range: every length must be in "
                                   r"\[0, num_steps\] = \[0, 4\]"),
    (np.array([2, 1, -1]), ValueError, r"length\[2\] = -1 \(sequence 2\) is out of range"),
    (7, ValueError, r"length = 7 is out of range"),
    (np.array([2.5]), TypeError, "length must be an integer array"),
])
def test_length_mask_checks_every_length(lengths, error, message):
    """A length above T used to give an all-True row and a negative one an all-False row, silently."""
    with pytest.raises(error, match=message):
        tm.length_mask(lengths, 4)
    with pytest.raises(ValueError, match="num_steps must be a positive int"):
        tm.length_mask(np.array([1]), 0)
    assert tm.length_mask(np.array([0, 4, 2]), 4).tolist() == [[False] * 4, [True] * 4, [True, True, False, False]]
    with pytest.raises(ValueError, match="length out of range"):
        checked(tm.length_mask, static_argnums=1)(jnp.array([1, 9]), 4)


@pytest.mark.parametrize("make,message", [
    (lambda: tm.Categorical(0), "Categorical.num_symbols must be positive int; got 0"),
    (lambda: tm.Categorical(3, concentration=-1.0), "Categorical.concentration must be positive; got -1.0"),
    (lambda: tm.Gaussian(2, min_covar=0.0), "Gaussian.min_covar must be positive"),
    (lambda: tm.Poisson(1, rate_prior=(0.0, 1.0)), r"Poisson.rate_prior must be \(shape > 0, rate >= 0\)"),
    (lambda: tm.GaussianMixture(1, 0), "GaussianMixture.num_components must be positive int"),
])
def test_family_settings_are_checked(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_learn_hmm_init_checks_its_data():
    """init used to start from symbols out of range (and from 0 states) without a word."""
    with pytest.raises(ValueError, match=r"obs\[0, 1\] = 5 is not a symbol of Categorical\(3\)"):
        learn.hmm.init(jax.random.key(0), FAMILY, 2, np.array([[0, 5, 1]], np.int32))
    with pytest.raises(ValueError, match="num_states must be a positive int; got 0"):
        learn.hmm.init(jax.random.key(0), FAMILY, 0, np.array([[0, 1, 1]], np.int32))


# ----------------------------------------------------------------------------------------- properties


@settings(max_examples=25, deadline=None)
@given(first=st.lists(st.floats(-0.5, 1.5, width=32), min_size=2, max_size=2),
       off=st.lists(st.sampled_from([0.0, 0.0, 0.3]), min_size=2, max_size=2), lls=st.lists(
    st.one_of(st.floats(-5, 0, width=32), st.just(float("nan")), st.just(float("inf"))), min_size=6, max_size=6))
def test_random_inputs_raise_exactly_when_invalid(first, off, lls):
    """Property: eager smoothing raises iff some input is invalid; otherwise marginals are probabilities
    (in [0, 1], rows summing to one) and the log-evidence is not NaN."""
    a = np.array([[f, 1 - f + o] for f, o in zip(first, off)], np.float32)
    ll = np.asarray(lls, np.float32).reshape(3, 2)
    invalid = (np.any(a < 0) or np.any(np.abs(a.sum(1) - 1) > 1e-3) or np.any(np.isnan(ll))
               or np.any(ll == np.inf))
    if invalid:
        with pytest.raises(ValueError):
            tm.smoother(PI, a, ll)
        out = jax.jit(tm.smoother)(PI, a, ll)
        assert np.isnan(float(out.log_evidence)) and np.all(np.isnan(out.marginals))
        return
    post = tm.smoother(PI, a, ll)
    m = np.asarray(post.marginals)
    assert not np.isnan(float(post.log_evidence))
    assert np.all(m >= 0) and np.all(m <= 1 + 1e-6)
    np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(values=st.lists(st.integers(-3, 4), min_size=6, max_size=6))
def test_dbn_evidence_raises_exactly_when_invalid(values):
    """Property: the factorial DBN smoother raises iff an evidence value is out of range for its variable;
    otherwise every marginal is a distribution and log p(e) is finite."""
    ev = np.asarray(values, np.int32).reshape(2, 3)
    cards = np.asarray(FACTORIAL.cards)
    if np.any((ev < -1) | (ev >= cards)):
        with pytest.raises(ValueError, match="is out of range"):
            tm.dbn.smoother(FACTORIAL, ev)
        return
    post = tm.dbn.smoother(FACTORIAL, ev)
    assert np.isfinite(float(post.log_evidence))
    for m in post.marginals.values():
        m = np.asarray(m)
        assert np.all((m >= 0) & (m <= 1 + 1e-6)) and np.allclose(m.sum(-1), 1.0, atol=1e-5)
