"""gm.learn.naive_bayes against scikit-learn's CategoricalNB and against gm.bn inference."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from gm import bn
from gm.learn import naive_bayes as nb

sklearn_nb = pytest.importorskip("sklearn.naive_bayes")


def _data(seed, n=400, cards=(3, 4, 2, 5, 3), classes=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    # features depend on the class so that the classifier has something to learn
    x = np.stack([(rng.integers(0, c, n) + (y if f % 2 == 0 else 0)) % c for f, c in enumerate(cards)], axis=1)
    return x.astype(np.int32), y.astype(np.int32), cards, classes


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_agrees_with_sklearn_categorical_nb(alpha):
    x, y, cards, classes = _data(0)
    xt, _, _, _ = _data(1, n=200)
    model = nb.fit(x, y, alpha=alpha, num_classes=classes, num_categories=cards)
    ref = sklearn_nb.CategoricalNB(alpha=alpha, min_categories=np.asarray(cards)).fit(x, y)
    np.testing.assert_allclose(np.asarray(nb.predict_proba(model, xt)), ref.predict_proba(xt), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(nb.predict(model, xt)), ref.predict(xt))
    for f in range(len(cards)):
        np.testing.assert_allclose(np.log(np.asarray(model.net.cpts[f + 1])), ref.feature_log_prob_[f], atol=1e-5)
    np.testing.assert_allclose(np.log(np.asarray(model.net.cpts[0])), ref.class_log_prior_, atol=1e-5)


def test_is_a_bayes_net_and_missing_features_are_summed_out():
    x, y, cards, classes = _data(2)
    model = nb.fit(x, y, alpha=1.0)
    assert isinstance(model.net, bn.BayesNet) and model.net.parents[1:] == ((0,),) * len(cards)
    xt = x[:20].copy()
    xt[::2, 1] = -1
    xt[::3, 3] = -1
    ev = np.concatenate([np.full((20, 1), -1, np.int32), xt], axis=1)
    post = jax.jit(jax.vmap(bn.marginals, in_axes=(None, 0)))(model.net, ev)["class"]
    np.testing.assert_allclose(np.asarray(nb.predict_proba(model, xt)), np.asarray(post), atol=1e-5)
    jitted = jax.jit(nb.predict_proba)(model, xt)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(post), atol=1e-5)


def test_errors():
    x, y, _, _ = _data(3, n=10)
    with pytest.raises(ValueError, match="labels must have shape"):
        nb.fit(x, y[:5])
    with pytest.raises(ValueError, match="num_categories has 2 entries"):
        nb.fit(x, y, num_categories=[3, 4])
    model = nb.fit(x, y)
    with pytest.raises(ValueError, match=r"data must have shape \(N, 5\)"):
        nb.predict(model, x[:, :3])
