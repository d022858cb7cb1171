"""Small helpers shared by the gm.bn test modules."""

from __future__ import annotations

import numpy as np

from tests.bn import oracle as O


def build(spec: O.Spec, *, int_states: bool = False):
    from gm import bn

    return bn.BayesNet.from_dict(**O.spec_to_dicts(spec, int_states=int_states))


def as_np(tree):
    import jax

    return jax.tree_util.tree_map(np.asarray, tree)


def assert_same_structure(net, spec: O.Spec):
    assert tuple(net.names) == spec.names
    assert tuple(int(c) for c in net.cards) == spec.cards
    assert tuple(tuple(int(p) for p in ps) for ps in net.parents) == spec.parents


def assert_marginals_close(got: dict, exact: dict, *, atol=1e-5, context=""):
    assert set(got) == set(exact), (sorted(got), sorted(exact))
    for name, p in exact.items():
        g = np.asarray(got[name])
        assert g.shape == p.shape, (name, g.shape, p.shape)
        assert not np.isnan(g).any(), f"NaN in marginal of {name} {context}"
        np.testing.assert_allclose(g, p, atol=atol, err_msg=f"marginal of {name} {context}")


def assert_log_close(got, exact, *, atol=5e-5, rtol=1e-5, context=""):
    got = float(np.asarray(got))
    if exact == -np.inf:
        assert got == -np.inf, f"expected -inf, got {got} {context}"
    else:
        assert np.isfinite(got), f"expected {exact}, got {got} {context}"
        assert abs(got - exact) <= atol + rtol * abs(exact), f"got {got}, expected {exact} {context}"
