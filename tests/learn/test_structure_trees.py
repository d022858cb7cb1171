"""Chow-Liu and TAN against pgmpy's TreeSearch and scikit-learn's mutual information."""

import warnings

import jax
import numpy as np
import pytest

from gm import bn
from gm.data.networks import load_network
from gm.learn.structure import chow_liu, mutual_information, tan
from gm.learn.structure.search import structure_edges


@pytest.fixture(scope="module")
def asia_data():
    net = load_network("asia")
    return net, np.asarray(bn.sample(jax.random.key(2), net, 3000))


def named_edges(net, structure):
    return {(net.names[a], net.names[b]) for a, b in structure_edges(structure)}


def test_mutual_information_matches_sklearn(asia_data):
    metrics = pytest.importorskip("sklearn.metrics")
    net, data = asia_data
    mi = mutual_information(data, net)
    for i, j in [(0, 1), (2, 5), (3, 4), (6, 7)]:
        np.testing.assert_allclose(mi[i, j], metrics.mutual_info_score(data[:, i], data[:, j]), rtol=1e-9, atol=1e-12)
    cond = mutual_information(data, net, given="either")
    c = net.index("either")
    for i, j in [(0, 1), (6, 7)]:
        want = sum(np.mean(data[:, c] == v) * metrics.mutual_info_score(data[data[:, c] == v, i], data[data[:, c] == v, j])
                   for v in range(net.cards[c]))
        np.testing.assert_allclose(cond[i, j], want, rtol=1e-9, atol=1e-12)


def test_chow_liu_and_tan_equal_pgmpy(asia_data):
    pd = pytest.importorskip("pandas")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgmpy.estimators import TreeSearch
    net, data = asia_data
    df = pd.DataFrame(data, columns=net.names)
    ours = chow_liu(data, net)
    theirs = TreeSearch(df, n_jobs=1).estimate(estimator_type="chow-liu", show_progress=False)
    assert named_edges(net, ours.structure) == set(theirs.edges())
    ours_tan = tan(data, net, class_variable="dysp", root="either")
    theirs_tan = TreeSearch(df, root_node="either", n_jobs=1).estimate(
        estimator_type="tan", class_node="dysp", show_progress=False)
    assert named_edges(net, ours_tan.structure) == set(theirs_tan.edges())
    with pytest.raises(ValueError, match="same variable"):
        tan(data, net, class_variable="dysp", root="dysp")
