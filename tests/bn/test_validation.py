"""Construction and argument errors: a ValueError whose message names the fault."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm import bn
from tests.bn import oracle as O


def base():
    """A small valid network: Rain, Sprinkler -> Wet; Wet -> Slippery (names chosen to be distinct)."""
    return dict(
        states={"Rain": ["dry", "rainy"], "Sprinkler": ["off", "on", "broken"], "Wet": ["wno", "wyes"], "Slippery": 2},
        parents={"Wet": ["Rain", "Sprinkler"], "Slippery": ["Wet"]},
        cpts={
            "Rain": [0.7, 0.3],
            "Sprinkler": [0.5, 0.4, 0.1],
            "Wet": np.array([[[0.99, 0.01], [0.1, 0.9], [0.8, 0.2]], [[0.2, 0.8], [0.05, 0.95], [0.1, 0.9]]]),
            "Slippery": [[0.9, 0.1], [0.3, 0.7]],
        },
    )


def test_base_is_valid():
    net = bn.BayesNet.from_dict(**base())
    assert net.names == ("Rain", "Sprinkler", "Wet", "Slippery")
    assert net.cards == (2, 3, 2, 2)
    assert net.parents == ((), (), (0, 1), (2,))


def raises_naming(*needles, kwargs):
    with pytest.raises(ValueError) as info:
        bn.BayesNet.from_dict(**kwargs)
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, f"message {msg!r} does not name {needle!r}"
    return msg


# ------------------------------------------------------------------------------------------------
# structure
# ------------------------------------------------------------------------------------------------


def test_cycle_names_a_variable_on_it():
    kw = dict(
        states={"Outside": 2, "Alpha": 2, "Beta": 2, "Gamma": 2},
        parents={"Alpha": ["Gamma", "Outside"], "Beta": ["Alpha"], "Gamma": ["Beta"]},
        cpts={"Outside": [0.5, 0.5], "Alpha": np.full((2, 2, 2), 0.5), "Beta": np.full((2, 2), 0.5), "Gamma": np.full((2, 2), 0.5)},
    )
    with pytest.raises(ValueError, match=r"(?i)cycl") as info:
        bn.BayesNet.from_dict(**kw)
    assert re.search(r"Alpha|Beta|Gamma", str(info.value)), info.value


def test_self_loop_is_a_cycle():
    kw = dict(states={"Loop": 2}, parents={"Loop": ["Loop"]}, cpts={"Loop": np.full((2, 2), 0.5)})
    raises_naming("Loop", kwargs=kw)


def test_unknown_parent_is_named():
    kw = base()
    kw["parents"]["Slippery"] = ["Wet", "Ice"]
    kw["cpts"]["Slippery"] = np.full((2, 2, 2), 0.5)
    raises_naming("Ice", kwargs=kw)


def test_duplicate_parent_is_named():
    kw = base()
    kw["parents"]["Slippery"] = ["Wet", "Wet"]
    kw["cpts"]["Slippery"] = np.full((2, 2, 2), 0.5)
    raises_naming("Wet", kwargs=kw)


def test_duplicate_state_names_are_named():
    kw = base()
    kw["states"]["Rain"] = ["dry", "dry"]
    raises_naming("dry", kwargs=kw)


def test_parents_of_unknown_variable_are_named():
    kw = base()
    kw["parents"]["Ghost"] = ["Rain"]
    raises_naming("Ghost", kwargs=kw)


def test_cpt_of_unknown_variable_is_named():
    kw = base()
    kw["cpts"]["Ghost"] = [0.5, 0.5]
    raises_naming("Ghost", kwargs=kw)


def test_missing_cpt_is_named():
    kw = base()
    del kw["cpts"]["Sprinkler"]
    raises_naming("Sprinkler", kwargs=kw)


# ------------------------------------------------------------------------------------------------
# CPT values and shapes
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,bad",
    [
        ("Rain", [0.2, 0.3, 0.5]),  # three entries for two states
        ("Wet", np.full((3, 2, 2), 0.5)),  # parent axes swapped: expected (2, 3, 2)
        ("Wet", np.full((2, 3), 0.5)),  # child axis missing
        ("Slippery", np.full((2,), 0.5)),  # parent axis missing
        ("Slippery", np.full((2, 2, 1), 0.5)),  # extra axis
    ],
)
def test_wrong_cpt_shape_names_the_variable(name, bad):
    kw = base()
    kw["cpts"][name] = bad
    raises_naming(name, kwargs=kw)


def _names_configuration(msg: str, state_names: list[str], indices: tuple[int, ...]) -> bool:
    """The parent configuration is named by its state names or by its index tuple."""
    if all(s in msg for s in state_names):
        return True
    idx = r"\s*,?\s*".join(str(k) for k in indices)
    return re.search(r"[\(\[]\s*" + idx + r"\s*,?\s*[\)\]]", msg) is not None


def test_row_not_summing_to_one_names_variable_and_configuration():
    kw = base()
    wet = np.array(kw["cpts"]["Wet"], dtype=float)
    wet[1, 2] = [0.5, 0.2]  # Rain=rainy, Sprinkler=broken sums to 0.7
    kw["cpts"]["Wet"] = wet
    msg = raises_naming("Wet", kwargs=kw)
    assert _names_configuration(msg, ["rainy", "broken"], (1, 2)), f"message {msg!r} does not name the row Rain=rainy, Sprinkler=broken"


def test_row_not_summing_to_one_other_configuration():
    kw = base()
    wet = np.array(kw["cpts"]["Wet"], dtype=float)
    wet[0, 1] = [0.6, 0.6]  # Rain=dry, Sprinkler=on sums to 1.2
    kw["cpts"]["Wet"] = wet
    msg = raises_naming("Wet", kwargs=kw)
    assert _names_configuration(msg, ["dry", "on"], (0, 1)), f"message {msg!r} does not name the row Rain=dry, Sprinkler=on"


def test_root_cpt_not_summing_to_one():
    kw = base()
    kw["cpts"]["Sprinkler"] = [0.5, 0.4, 0.4]
    raises_naming("Sprinkler", kwargs=kw)


def test_negative_entry_names_the_variable():
    kw = base()
    kw["cpts"]["Slippery"] = [[1.2, -0.2], [0.3, 0.7]]  # the row still sums to one
    raises_naming("Slippery", kwargs=kw)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_entry_names_the_variable(value):
    kw = base()
    kw["cpts"]["Rain"] = [value, 0.3]
    raises_naming("Rain", kwargs=kw)


def test_small_rounding_is_accepted():
    """Rows that sum to one up to float32 rounding (as in the bnlearn files) are valid."""
    kw = base()
    kw["cpts"]["Sprinkler"] = np.array([1 / 3, 1 / 3, 1 / 3], np.float32)
    kw["cpts"]["Rain"] = [0.3333333, 0.6666667]
    bn.BayesNet.from_dict(**kw)


# ------------------------------------------------------------------------------------------------
# evidence and query arguments
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def net():
    return bn.BayesNet.from_dict(**base())


def test_evidence_unknown_variable(net):
    with pytest.raises(ValueError, match="Snow"):
        net.evidence({"Snow": "yes"})


def test_evidence_unknown_state(net):
    with pytest.raises(ValueError, match="drizzle"):
        net.evidence({"Rain": "drizzle"})


def test_evidence_state_index_out_of_range(net):
    with pytest.raises(ValueError, match="Sprinkler"):
        net.evidence({"Sprinkler": 3})
    with pytest.raises(ValueError, match="Sprinkler"):
        net.evidence({"Sprinkler": -2})


def test_state_name_of_another_variable_is_unknown(net):
    with pytest.raises(ValueError, match="rainy"):
        net.evidence({"Wet": "rainy"})


@pytest.mark.parametrize("length", [3, 5])
@pytest.mark.parametrize("fn", ["log_evidence", "marginals", "mpe"])
def test_evidence_of_wrong_length(net, fn, length):
    ev = jnp.full((length,), -1, jnp.int32)
    with pytest.raises(ValueError):
        getattr(bn, fn)(net, ev)
    with pytest.raises(ValueError):  # raised while tracing, too
        jax.jit(getattr(bn, fn))(net, ev)


def test_evidence_of_wrong_length_query_and_map(net):
    ev = jnp.full((5,), -1, jnp.int32)
    with pytest.raises(ValueError):
        bn.query(net, ["Rain"], ev)
    with pytest.raises(ValueError):
        bn.map_query(net, ["Rain"], ev)
    with pytest.raises(ValueError):
        bn.likelihood_weighting(jax.random.key(0), net, ev, 10)


def test_log_prob_of_wrong_length(net):
    with pytest.raises(ValueError):
        bn.log_prob(net, jnp.zeros((3,), jnp.int32))


def test_query_unknown_name(net):
    ev = net.evidence({})
    with pytest.raises(ValueError, match="Snow"):
        bn.query(net, ["Rain", "Snow"], ev)
    with pytest.raises(ValueError, match="Snow"):
        bn.map_query(net, ["Snow"], ev)


def test_soft_evidence_unknown_name_and_wrong_length(net):
    ev = net.evidence({})
    with pytest.raises(ValueError, match="Snow"):
        bn.marginals(net, ev, soft={"Snow": jnp.ones(2)})
    with pytest.raises(ValueError, match="Sprinkler"):
        bn.marginals(net, ev, soft={"Sprinkler": jnp.ones(2)})
    with pytest.raises(ValueError, match="Sprinkler"):
        bn.log_evidence(net, ev, soft={"Sprinkler": jnp.ones(4)})


def test_graph_queries_unknown_name(net):
    with pytest.raises(ValueError, match="Snow"):
        bn.markov_blanket(net, "Snow")
    with pytest.raises(ValueError, match="Snow"):
        bn.d_separated(net, ["Rain"], ["Snow"], [])
    with pytest.raises(ValueError, match="Snow"):
        bn.d_separated(net, ["Rain"], ["Sprinkler"], ["Snow"])


def test_read_bif_rejects_a_broken_row(tmp_path):
    """A BIF file whose CPT row does not sum to one fails with the variable named."""
    d = O.burglary_dicts()
    net = bn.BayesNet.from_dict(**d)
    path = tmp_path / "burglary.bif"
    bn.write_bif(net, path)
    text = path.read_text()
    # break MaryCalls' row for Alarm=yes: 0.3, 0.7 -> 0.3, 0.3
    text2 = re.sub(r"(probability\s*\(\s*MaryCalls[^{]*\{[^}]*\(\s*yes\s*\)\s*)([^;]*);", r"\g<1>0.3, 0.3;", text)
    assert text2 != text, text
    path.write_text(text2)
    with pytest.raises(ValueError, match="MaryCalls"):
        bn.read_bif(path)


# ------------------------------------------------------------------------------------------------
# values past construction (issue 18): eager calls raise naming the culprit; jitted calls return the
# documented marker; gm.validation.checked raises inside jit
# ------------------------------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gm.validation import checked  # noqa: E402

QUERIES = {
    "log_evidence": lambda net, e, **k: bn.log_evidence(net, e, **k),
    "marginals": lambda net, e, **k: bn.marginals(net, e, **k),
    "marginals_and_log_evidence": lambda net, e, **k: bn.marginals_and_log_evidence(net, e, **k),
    "query": lambda net, e, **k: bn.query(net, ["Wet"], e, **k),
    "mpe": lambda net, e, **k: bn.mpe(net, e, **k),
    "map_query": lambda net, e, **k: bn.map_query(net, ["Rain"], e, **k),
    "pruned_query": lambda net, e, **k: bn.pruned_query(net, ["Rain"], e, observed=["Slippery"]),
}


@pytest.mark.parametrize("fn", sorted(QUERIES))
@pytest.mark.parametrize("value,position,name", [(2, 2, "Wet"), (-2, 0, "Rain"), (3, 1, "Sprinkler"), (9, 3, "Slippery")])
def test_evidence_value_out_of_range_names_the_variable(fn, value, position, name):
    net = bn.BayesNet.from_dict(**base())
    ev = net.evidence({"Slippery": 1})
    ev[position] = value
    with pytest.raises(ValueError, match=rf"evidence {value} for variable '{name}' is out of range"):
        QUERIES[fn](net, ev)


@pytest.mark.parametrize("fn", ["log_evidence", "marginals", "query"])
@pytest.mark.parametrize("bad", [[-0.5, 1.0], [np.nan, 1.0], [np.inf, 1.0]])
def test_soft_evidence_must_be_finite_and_non_negative(fn, bad):
    net = bn.BayesNet.from_dict(**base())
    with pytest.raises(ValueError, match="soft evidence for 'Rain' must be finite and non-negative"):
        QUERIES[fn](net, net.evidence({}), soft={"Rain": np.asarray(bad, np.float32)})


def test_log_prob_names_the_state_out_of_range():
    net = bn.BayesNet.from_dict(**base())
    with pytest.raises(ValueError, match=r"x\[1\] = 3 is not a state of 'Sprinkler'"):
        bn.log_prob(net, np.array([0, 3, 0, 0], np.int32))
    with pytest.raises(TypeError, match="integer"):
        bn.log_prob(net, np.zeros(4, np.float32))


@pytest.mark.parametrize("cpts,needle", [
    ({"Rain": [0.5, 0.6]}, r"CPT of 'Rain' does not sum to 1"),
    ({"Rain": [1.2, -0.2]}, r"CPT of 'Rain' has a negative entry"),
    ({"Rain": [np.nan, 1.0]}, r"CPT of 'Rain' has a non-finite entry"),
    ({"Slippery": [[0.9, 0.1]]}, r"CPT of 'Slippery' has shape \(1, 2\), expected \(2, 2\)"),
])
def test_replace_and_constructor_validate(cpts, needle):
    net = bn.BayesNet.from_dict(**base())
    with pytest.raises(ValueError, match=needle):
        net.replace({k: jnp.asarray(v, jnp.float32) for k, v in cpts.items()})
    name, value = next(iter(cpts.items()))
    tables = list(net.cpts)
    tables[net.index(name)] = jnp.asarray(value, jnp.float32)
    with pytest.raises(ValueError, match=needle):
        bn.BayesNet(net.structure, tables)


def test_constructor_accepts_batches_and_tracers():
    net = bn.BayesNet.from_dict(**base())
    stacked = bn.BayesNet(net.structure, [jnp.stack([c, c]) for c in net.cpts])  # posterior draws: [S, ...]
    assert stacked.cpts[2].shape == (2, 2, 3, 2)
    grads = jax.grad(lambda n: bn.log_evidence(n, n.evidence({"Wet": 1})))(net)  # rows do not sum to 1
    assert isinstance(grads, bn.BayesNet)


@pytest.mark.parametrize("value", [2, 5, -2, -7])
def test_jitted_out_of_range_evidence_is_impossible_evidence(value):
    """Unchecked under jit: any value outside [-1, card) is impossible evidence, never a plausible answer."""
    net = bn.BayesNet.from_dict(**base())
    ev = jnp.asarray(net.evidence({}))
    ev = ev.at[2].set(value)
    for method in ("unrolled", "program"):
        post, log_z = jax.jit(lambda n, e: bn.marginals_and_log_evidence(n, e, method=method))(net, ev)
        assert float(log_z) == -np.inf, (method, value)
        assert all(np.all(np.asarray(p) == 0) for p in post.values()), (method, value)
        best = jax.jit(lambda n, e: bn.mpe(n, e, method=method))(net, ev)
        assert float(best.log_prob) == -np.inf, (method, value)


def test_checked_raises_inside_jit_and_agrees_otherwise():
    net = bn.BayesNet.from_dict(**base())
    safe = checked(jax.vmap(bn.marginals, in_axes=(None, 0)))
    good = jnp.asarray(np.stack([net.evidence({}), net.evidence({"Wet": 1})]))
    got = safe(net, good)
    want = jax.vmap(bn.marginals, in_axes=(None, 0))(net, good)
    for name in net.names:
        np.testing.assert_allclose(np.asarray(got[name]), np.asarray(want[name]), atol=1e-6)
    with pytest.raises(ValueError, match="evidence out of range"):
        safe(net, good.at[1, 1].set(3))
    with pytest.raises(ValueError, match="soft evidence for 'Rain' must be finite and non-negative"):
        checked(lambda n, e, s: bn.log_evidence(n, e, soft={"Rain": s}))(net, good[0], jnp.array([1.0, -1.0]))


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.integers(-3, 4), min_size=4, max_size=4))
def test_random_evidence_raises_exactly_when_invalid(values):
    """Property: eager marginals raise iff some value is outside [-1, card); otherwise they are
    probabilities (in [0, 1], rows summing to one or all zero for impossible evidence), never NaN."""
    net = bn.BayesNet.from_dict(**base())
    ev = np.asarray(values, np.int32)
    invalid = np.any((ev < -1) | (ev >= np.asarray(net.cards)))
    if invalid:
        with pytest.raises(ValueError, match="out of range"):
            bn.marginals(net, ev)
        return
    post, log_z = bn.marginals_and_log_evidence(net, ev)
    for p in post.values():
        p = np.asarray(p)
        assert np.all(np.isfinite(p)) and np.all(p >= 0) and np.all(p <= 1 + 1e-6)
        assert abs(p.sum() - 1) < 1e-5 or (p.sum() == 0 and float(log_z) == -np.inf)


def test_a_network_without_variables_is_refused_by_inference():
    """0 variables: sampling works (tests/bn/test_sampling.py); inference raises a clear error, not a crash
    inside the contraction."""
    empty = bn.BayesNet.from_dict(states={})
    for call in (bn.log_evidence, bn.marginals, bn.mpe, bn.log_prob):
        with pytest.raises(ValueError, match="the network has 0 variables"):
            call(empty, np.zeros(0, np.int32))
