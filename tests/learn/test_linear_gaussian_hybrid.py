"""Conditional linear-Gaussian networks: discrete posteriors against enumeration with numerical integration."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.stats import norm

from gm import bn
from gm.learn.linear_gaussian import hybrid

CONT = ("X", "Y", "Z")


def build(seed, card_b, dpa, cpa, dtype=jnp.float64):
    rng = np.random.default_rng(seed)
    pa_b = rng.random() < 0.5
    disc = bn.BayesNet.from_dict(
        states={"A": ["a0", "a1"], "B": [f"b{i}" for i in range(card_b)]},
        parents={"B": ["A"]} if pa_b else {},
        cpts={"A": rng.dirichlet([2, 2]),
              "B": rng.dirichlet(np.full(card_b, 2.0), size=2) if pa_b else rng.dirichlet(np.full(card_b, 2.0))})
    cards = {"A": 2, "B": card_b}
    bias, var, weights, parents = {}, {}, {}, {}
    for x in CONT:
        shape = tuple(cards[d] for d in dpa[x])
        bias[x] = rng.normal(0, 2, size=shape)
        var[x] = rng.uniform(0.3, 1.5, size=shape)
        weights[x] = rng.normal(0, 1, size=shape + (len(cpa[x]),))
        parents[x] = list(dpa[x]) + list(cpa[x])
    net = hybrid.CLGNet.from_dict(disc, parents=parents, bias=bias, variance=var, weights=weights, names=CONT,
                                  dtype=dtype)
    return net, (disc, bias, var, weights, dpa, cpa)


def brute_force(spec, card_b, disc_ev, cont_ev):
    """P(A, B | evidence) and log p(evidence) by enumeration; unobserved continuous variables by quad."""
    disc, bias, var, weights, dpa, cpa = spec
    table = np.zeros((2, card_b))
    for a, b in itertools.product(range(2), range(card_b)):
        if any(disc_ev.get(k, v) != v for k, v in (("A", a), ("B", b))):
            continue
        p = float(disc.cpt("A")[a]) * float(np.asarray(disc.cpt("B"))[(a, b) if disc.parents[1] else (b,)])
        state = {"A": a, "B": b}

        def density(free):
            x = dict(cont_ev)
            x.update(free)
            out = 1.0
            for name in CONT:
                d = tuple(state[k] for k in dpa[name])
                mean = bias[name][d] + sum(w * x[c] for w, c in zip(weights[name][d], cpa[name]))
                out *= norm.pdf(x[name], mean, np.sqrt(var[name][d]))
            return out

        hidden = [x for x in CONT if x not in cont_ev]
        if not hidden:
            dens = density({})
        else:
            (h,) = hidden
            dens = integrate.quad(lambda t: density({h: t}), -np.inf, np.inf, epsabs=1e-13, epsrel=1e-10)[0]
        table[a, b] = p * dens
    return table / table.sum(), np.log(table.sum())


@st.composite
def cases(draw):
    card_b = draw(st.sampled_from([2, 3]))
    dsets = [(), ("A",), ("B",), ("A", "B")]
    dpa = {x: draw(st.sampled_from(dsets)) for x in CONT}
    cpa = {"X": (), "Y": draw(st.sampled_from([(), ("X",)])), "Z": draw(st.sampled_from([(), ("Y",), ("X", "Y")]))}
    hidden = draw(st.sampled_from([None, "X", "Y", "Z"]))
    disc_ev = draw(st.sampled_from([{}, {"B": 1}, {"A": 0}]))
    seed = draw(st.integers(0, 10_000))
    return card_b, dpa, cpa, hidden, disc_ev, seed


def _check_against_enumeration(case):
    card_b, dpa, cpa, hidden, disc_ev, seed = case
    with jax.enable_x64(True):
        net, spec = build(seed, card_b, dpa, cpa)
        rng = np.random.default_rng(seed + 1)
        cont_ev = {x: float(rng.normal(0, 2)) for x in CONT if x != hidden}
        ev_d, ev_c = net.evidence({**{k: int(v) for k, v in disc_ev.items()}, **cont_ev})
        answer = hybrid.discrete_query(net, ["A", "B"], ev_d, ev_c)
        table, log_ev = brute_force(spec, card_b, disc_ev, cont_ev)
        np.testing.assert_allclose(answer.table, table, atol=1e-7)
        # quad's relative error on a peaked integrand far in the tail reaches ~1e-5
        np.testing.assert_allclose(answer.log_evidence, log_ev, atol=1e-4)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_discrete_posterior_equals_enumeration_with_integration(case):
    _check_against_enumeration(case)  # each example compiles a new structure: a few here, more in -m slow


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_discrete_posterior_equals_enumeration_many_networks(case):
    _check_against_enumeration(case)


def test_jit_and_vmap_over_continuous_evidence():
    dpa = {"X": ("A",), "Y": ("B",), "Z": ("A", "B")}
    cpa = {"X": (), "Y": ("X",), "Z": ()}  # two components: {X, Y} and {Z}
    net, _ = build(3, 3, dpa, cpa, dtype=jnp.float32)
    assert net.structure.components == ((0, 1), (2,))
    ev_d, _ = net.evidence({})
    values = jnp.asarray(np.random.default_rng(0).normal(size=(8, 3)), jnp.float32)
    observed = jnp.asarray(np.random.default_rng(1).random((8, 3)) < 0.6)
    from gm.learn.linear_gaussian import Evidence

    batched = jax.jit(jax.vmap(lambda v, o: hybrid.discrete_query(net, ("A",), ev_d, Evidence(v, o))))(values, observed)
    for k in range(8):
        one = hybrid.discrete_query(net, ["A"], ev_d, Evidence(values[k], observed[k]))
        np.testing.assert_allclose(batched.table[k], one.table, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batched.table.sum(-1), 1.0, rtol=1e-5)


def test_clg_errors():
    disc = bn.BayesNet.from_dict(states={"A": ["0", "1"]}, parents={}, cpts={"A": [0.5, 0.5]})
    with pytest.raises(ValueError, match="parents of 'X' name unknown variables"):
        hybrid.CLGNet.from_dict(disc, parents={"X": ["Q"]}, bias={"X": 0.0}, variance={"X": 1.0})
    with pytest.raises(ValueError, match="variance of 'X' must be positive"):
        hybrid.CLGNet.from_dict(disc, parents={"X": ["A"]}, bias={"X": [0.0, 1.0]}, variance={"X": [1.0, 0.0]})
    with pytest.raises(ValueError, match=r"CLG parameters of 'X'.*shape \(2,\)"):
        hybrid.CLGNet.from_dict(disc, parents={"X": ["A"]}, bias={"X": [0.0, 1.0, 2.0]}, variance={"X": 1.0})
