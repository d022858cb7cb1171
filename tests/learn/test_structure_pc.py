"""PC against pgmpy: CI test p-values, skeleton, and orientation from the same separating sets."""

import logging
import warnings

import jax
import numpy as np
import pytest

from gm import bn
from gm.data.networks import load_network
from gm.learn.structure import ci_tests, pc
from gm.learn.structure.pc import dag_extension, orient
from gm.learn.structure.search import structure_edges


def pgmpy_pc(net, data, test, **kw):
    pd = pytest.importorskip("pandas")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        from pgmpy.estimators import PC
        df = pd.DataFrame(np.asarray(data), columns=net.names)
        out = PC(df).estimate(ci_test=test, significance_level=0.01, show_progress=False, n_jobs=1, **kw)
        logging.disable(logging.NOTSET)
    return out


@pytest.mark.parametrize("test", ["chi_square", "g_sq"])
def test_p_values_equal_pgmpy(test):
    pd = pytest.importorskip("pandas")
    from pgmpy.ci_tests import ChiSquare, GSq
    net = load_network("asia")
    data = np.asarray(bn.sample(jax.random.key(5), net, 3000))
    oracle = (ChiSquare if test == "chi_square" else GSq)(pd.DataFrame(data, columns=net.names))
    cases = [(0, 1, ()), (3, 5, ()), (6, 7, (5,)), (2, 7, (3, 4)), (1, 6, (5, 3)), (4, 7, (0, 2, 6))]
    ours = ci_tests(data, cases, net, test=test)
    for (x, y, z), p in zip(cases, ours):
        oracle.run_test(net.names[x], net.names[y], [net.names[v] for v in z])
        np.testing.assert_allclose(p, oracle.p_value_, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name,n,test", [("asia", 5000, "chi_square"),
                                         pytest.param("sachs", 3000, "g_sq", marks=pytest.mark.slow)])
def test_skeleton_and_orientation_equal_pgmpy(name, n, test):
    net = load_network(name)
    data = np.asarray(bn.sample(jax.random.key(5), net, n))
    ours = pc(data, net, test=test)
    skel, seps = pgmpy_pc(net, data, test, return_type="skeleton")
    ix = net.index
    assert {tuple(sorted((ix(a), ix(b)))) for a, b in skel.edges()} == ours.skeleton
    # orientation: the same separating sets give pgmpy's CPDAG
    from pgmpy.estimators import PC
    pdag = PC.orient_colliders(skel, seps).apply_meeks_rules(apply_r4=False).apply_meeks_rules(apply_r4=True)
    sep = {tuple(sorted(ix(v) for v in k)): tuple(ix(v) for v in s) for k, s in seps.items()}
    directed, undirected = orient(net.n_vars, ours.skeleton, sep)
    assert directed == {(ix(a), ix(b)) for a, b in pdag.directed_edges}
    assert undirected == {tuple(sorted((ix(a), ix(b)))) for a, b in pdag.undirected_edges}
    # the DAG extension keeps the CPDAG's directed edges and skeleton
    edges = structure_edges(ours.dag)
    assert ours.directed <= edges
    assert {tuple(sorted(e)) for e in edges} == {tuple(sorted(e)) for e in ours.directed} | ours.undirected


def test_dag_extension_of_a_chain():
    parents = dag_extension(3, set(), {(0, 1), (1, 2)})
    assert sum(map(len, parents)) == 2
    assert not (0 in parents[1] and 2 in parents[1])  # no new v-structure


def test_bad_arguments():
    net = load_network("asia")
    data = np.asarray(bn.sample(jax.random.key(0), net, 100))
    with pytest.raises(ValueError, match="test must be one of"):
        pc(data, net, test="fisher")
    with pytest.raises(ValueError, match="significance_level"):
        pc(data, net, significance_level=1.5)
