"""Bad values given to the estimators (issue 18): eager calls raise naming the record, the variable and
the value; jitted calls return all-NaN tables (never a plausible estimate); `checked` raises in jit."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gm import bn, learn
from gm.learn import Prior
from gm.validation import checked


def rain():
    return bn.BayesNet.from_dict(
        states={"Rain": ["no", "yes"], "Sprinkler": ["off", "on"], "Wet": ["no", "yes"]},
        parents={"Sprinkler": ["Rain"], "Wet": ["Rain", "Sprinkler"]},
        cpts={"Rain": [0.8, 0.2], "Sprinkler": [[0.6, 0.4], [0.99, 0.01]],
              "Wet": [[[1.0, 0.0], [0.1, 0.9]], [[0.2, 0.8], [0.01, 0.99]]]})


ESTIMATORS = {
    "family_counts": lambda net, d, **k: learn.family_counts(net, d, **k),
    "mle": lambda net, d, **k: learn.mle(net, d, **k),
    "dirichlet": lambda net, d, **k: learn.dirichlet(net, d, prior=Prior.k2(), **k),
    "em_step": lambda net, d, **k: learn.em_step(net, d, **k),
    "log_likelihood": lambda net, d, **k: learn.log_likelihood(net, d, **k),
    "dirichlet_posterior": lambda net, d, **k: learn.bayes.dirichlet_posterior(jax.random.key(0), net, d, 3, **k),
}


@pytest.mark.parametrize("fn", sorted(ESTIMATORS))
@pytest.mark.parametrize("row,col,value,name", [(0, 1, 2, "Sprinkler"), (1, 0, -2, "Rain"), (1, 2, 7, "Wet")])
def test_data_out_of_range_names_record_and_variable(fn, row, col, value, name):
    data = np.array([[0, 1, 0], [1, 0, 1]], np.int32)
    data[row, col] = value
    with pytest.raises(ValueError, match=rf"data\[{row}, {col}\] = {value} is not a state of '{name}'"):
        ESTIMATORS[fn](rain(), data)


@pytest.mark.parametrize("fn", ["family_counts", "mle", "dirichlet", "em_step", "log_likelihood"])
@pytest.mark.parametrize("weights,record", [([1.0, -1.0], 1), ([np.nan, 1.0], 0), ([1.0, np.inf], 1)])
def test_bad_weights_name_the_record(fn, weights, record):
    data = np.array([[0, 1, 0], [1, 0, 1]], np.int32)
    with pytest.raises(ValueError, match=rf"record {record} has weight"):
        ESTIMATORS[fn](rain(), data, weights=np.asarray(weights, np.float32))


@pytest.mark.parametrize("data,weights", [
    ([[0, 2, 0]], None),      # the record of the issue: Sprinkler = 2, cardinality 2
    ([[0, 1, 0]], [-1.0]),
    ([[0, 1, 0]], [np.nan]),
])
def test_jitted_bad_values_give_nan_tables(data, weights):
    net = rain()
    w = None if weights is None else jnp.asarray(weights, jnp.float32)
    counts = jax.jit(lambda d, w: learn.family_counts(net, d, weights=w))(jnp.asarray(data, jnp.int32), w)
    assert np.isnan(np.asarray(counts[1])).all()  # Sprinkler's family: never a plausible count
    fitted = jax.jit(lambda d, w: learn.mle(net, d, weights=w))(jnp.asarray(data, jnp.int32), w)
    assert np.isnan(np.asarray(fitted.cpts[1])).all()


def test_checked_raises_in_jit():
    net = rain()
    with pytest.raises(ValueError, match="data out of range"):
        checked(lambda d: learn.mle(net, d))(jnp.asarray([[0, 2, 0]], jnp.int32))
    with pytest.raises(ValueError, match="weights must be finite and non-negative"):
        checked(lambda d, w: learn.mle(net, d, weights=w))(jnp.asarray([[0, 1, 0]], jnp.int32), jnp.array([-1.0]))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.integers(-2, 2), min_size=3, max_size=3), min_size=1, max_size=6))
def test_mle_raises_exactly_when_a_value_is_invalid(rows):
    data = np.asarray(rows, np.int32)
    invalid = np.any((data < -1) | (data >= 2))
    if invalid:
        with pytest.raises(ValueError, match="is not a state of"):
            learn.mle(rain(), data)
        return
    fitted = learn.mle(rain(), data)
    for cpt in fitted.cpts:
        cpt = np.asarray(cpt)
        assert np.all((cpt >= 0) & (cpt <= 1)) and np.allclose(cpt.sum(-1), 1.0, atol=1e-5)


# ------------------------------------------------------------------------------------- linear Gaussian


@pytest.mark.parametrize("fit", ["fit", "fit_map"])
def test_linear_gaussian_rejects_bad_data_and_weights(fit):
    from gm.learn import linear_gaussian as lg

    fn = lg.fit if fit == "fit" else lg.bayes.fit_map
    x = np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"data\[3, 1\] = nan \(record 3, column 1\)"):
        fn(bad, [[], [0]])
    with pytest.raises(ValueError, match="data has no records"):
        fn(x[:0], [[], [0]])
    for w, shown in ((-1.0, "-1.0"), (np.inf, "inf")):
        weights = np.ones(6, np.float32)
        weights[2] = w
        with pytest.raises(ValueError, match=rf"record 2 has weight {shown}"):
            fn(x, [[], [0]], weights=weights)


def test_sharded_family_counts_checks_records():
    from gm.parallel.networks import sharded_family_counts

    net = bn.BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
                                {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
    with pytest.raises(ValueError, match=r"data\[0, 1\] = 2 is not a state of 'Wet'"):
        sharded_family_counts(net, np.array([[0, 2]]))
    with pytest.raises(ValueError, match="record 0 has weight nan"):
        sharded_family_counts(net, np.array([[0, 1]]), weights=np.array([np.nan]))


# ------------------------------------------------------------------------------------ structure learning


@pytest.mark.parametrize("value,message", [
    (2, r"data\[3, 1\] = 2: variable column 1 has no such state \(cardinality 2; record 3\)"),
    (-2, r"data\[3, 1\] = -2: variable column 1 has no such state"),  # used to be called 'missing (-1)'
    (-1, r"variable column 1 has missing values \(-1\) in 1 records"),
])
def test_structure_learning_names_the_record_and_value(value, message):
    from gm.learn import structure

    data = np.random.default_rng(0).integers(0, 2, size=(20, 3)).astype(np.int32)
    data[3, 1] = value
    for call in (lambda d: structure.chow_liu(d, [2, 2, 2]), lambda d: structure.pc(d, [2, 2, 2]),
                 lambda d: structure.network_score(d, [[], [0], [1]], variables=[2, 2, 2])):
        with pytest.raises(ValueError, match=message):
            call(data)


# ------------------------------------------------------------------------ naive Bayes, HMM EM settings

_X = np.array([[0, 1], [0, 0], [1, 1], [1, 0]], np.int32)
_Y = np.array([0, 0, 1, 1], np.int32)
_NB = learn.naive_bayes.fit(_X, _Y)

BAD_NAIVE_BAYES = [  # (call, error, message): each used to be cast, clipped, read as missing or a bare crash
    (lambda: learn.naive_bayes.fit(_X, np.array([0, 5, 1, 1]), num_classes=2), ValueError,
     r"labels\[1\] = 5 is not a class index in \[0, 2\)"),
    (lambda: learn.naive_bayes.fit(_X, np.array([0, -2, 1, 1])), ValueError, r"labels\[1\] = -2"),
    (lambda: learn.naive_bayes.fit(np.array([[0, 3], [0, 0]]), np.array([0, 1]), num_categories=2), ValueError,
     r"data\[0, 1\] = 3 is not a value of feature 'x1'"),
    (lambda: learn.naive_bayes.fit(_X + 0.5, _Y), TypeError, "data must be an integer array"),
    (lambda: learn.naive_bayes.fit(_X, _Y + 0.5), TypeError, "labels must be an integer array"),
    (lambda: learn.naive_bayes.fit(_X, _Y, alpha=float("nan")), ValueError, "alpha must be non-negative"),
    (lambda: learn.naive_bayes.fit(np.zeros((0, 2), np.int32), np.zeros((0,), np.int32)), ValueError,
     "no records: pass num_classes and num_categories"),
    (lambda: learn.naive_bayes.log_joint(_NB, np.array([[0, 5]])), ValueError,
     r"data\[0, 1\] = 5 is not a value of feature 'x1'"),
    (lambda: learn.naive_bayes.predict_proba(_NB, np.array([[0, 1], [-3, 0]])), ValueError, r"data\[1, 0\] = -3"),
    (lambda: learn.naive_bayes.predict(_NB, np.array([[0.0, 1.0]])), TypeError, "data must be an integer array"),
]


@pytest.mark.parametrize("index", range(len(BAD_NAIVE_BAYES)))
def test_naive_bayes_rejects_bad_inputs(index):
    call, error, message = BAD_NAIVE_BAYES[index]
    with pytest.raises(error, match=message):
        call()


def test_naive_bayes_marker_under_jit():
    """Under jit an out-of-range feature gives a NaN row and the prediction -1 (it used to be clipped to
    the last value: a confident, plausible posterior); valid rows are unchanged."""
    data = np.array([[0, 1], [0, 5], [-1, 1]], np.int32)
    proba = np.asarray(jax.jit(learn.naive_bayes.predict_proba)(_NB, data))
    assert np.all(np.isnan(proba[1])) and np.all(np.isfinite(proba[[0, 2]]))
    np.testing.assert_allclose(proba[[0, 2]], learn.naive_bayes.predict_proba(_NB, data[[0, 2]]), atol=1e-6)
    assert jax.jit(learn.naive_bayes.predict)(_NB, data).tolist()[1] == -1


@pytest.mark.parametrize("kwargs,message", [
    (dict(num_iters=-1), "num_iters must be an int >= 0; got -1"),
    (dict(num_iters=2, tol=float("nan")), "tol must be None or a finite number >= 0; got nan"),
    (dict(num_iters=2, tol=-1.0), "tol must be None or a finite number >= 0"),
])
def test_em_loop_settings_are_checked(kwargs, message):
    """A negative num_iters used to run no iteration (fit) or crash in MLIR (fit_scan); a NaN tol never
    converged; both silently."""
    from gm import temporal as tm

    family = tm.Categorical(2)
    model = tm.HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.2, 0.8]]), tm.CategoricalParams(jnp.full((2, 2), 0.5)))
    for fit in (learn.hmm.fit, learn.hmm.fit_scan):
        with pytest.raises(ValueError, match=message):
            fit(family, model, np.array([[0, 1, 1]], np.int32), **kwargs)
    with pytest.raises(ValueError, match=message):
        learn.em(rain(), np.array([[0, 1, -1]], np.int32), **kwargs)
    bad = model._replace(emission=tm.CategoricalParams(jnp.array([[1.2, -0.2], [0.5, 0.5]])))
    with pytest.raises(ValueError, match=r"model.emission.probs\[0, 1\] = -0.2"):  # used to give a NaN model
        learn.hmm.em_step(family, bad, np.array([[0, 1, 1]], np.int32))
