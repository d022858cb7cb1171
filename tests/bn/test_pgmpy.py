"""gm.bn against pgmpy 1.1.0 on the bnlearn networks it ships, plus BIF and pgmpy round trips.

* Inference on asia, alarm, child, insurance: all posterior marginals under random evidence vs
  pgmpy's VariableElimination (1e-5), a joint query over two variables, MPE (compared by log-prob with
  a float64 max-product elimination of our own, and with pgmpy's map_query on asia) and MAP over two
  variables vs pgmpy's map_query (compared by value in pgmpy's joint posterior).
* Every bundled ``.bif.gz`` loads with ``bn.read_bif``: names, states, parents and CPT values equal our
  own independent BIF reader (tests/bn/oracle.py) and pgmpy's BIFReader (the slowest-to-parse networks
  for pgmpy are marked slow; our reader covers them in the fast run), and write_bif -> read_bif gives
  the same network.
* from_pgmpy / to_pgmpy round trips.
* The lecture's burglary network: P(Burglary = yes | JohnCalls = yes, MaryCalls = yes) = 0.284.
"""

from __future__ import annotations

import gzip
import logging
import os
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pgmpy = pytest.importorskip("pgmpy")

from gm import bn  # noqa: E402
from tests.bn import oracle as O  # noqa: E402

warnings.filterwarnings("ignore", module="pgmpy")
logging.getLogger("pgmpy").setLevel(logging.ERROR)
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

EXAMPLES = Path(pgmpy.__file__).parent / "utils" / "example_models"
ALL_BIF = sorted(p.name[: -len(".bif.gz")] for p in EXAMPLES.glob("*.bif.gz"))
# pgmpy's BIFReader needs more than ~2 s each for these (70 s for all 24 networks on 2 cores)
PGMPY_SLOW_TO_PARSE = {"andes", "barley", "diabetes", "link", "mildew", "munin", "munin1", "munin2", "munin3", "munin4",
                       "pathfinder", "pigs"}
INFERENCE_NETS = ["asia", "alarm", "child", "insurance"]


def bif_path(name: str) -> Path:
    return EXAMPLES / f"{name}.bif.gz"


def test_all_bundled_networks_listed():
    assert len(ALL_BIF) >= 20, ALL_BIF
    assert set(INFERENCE_NETS) <= set(ALL_BIF)


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def pgmpy_reader_spec(name: str) -> O.Spec:
    """pgmpy's BIFReader result as a float64 Spec (variable order: pgmpy's declaration order)."""
    from pgmpy.readwrite import BIFReader

    with gzip.open(bif_path(name), "rt") as fh:
        model = BIFReader(string=fh.read()).get_model()
    return spec_from_pgmpy_model(model)


def spec_from_pgmpy_model(model, names=None) -> O.Spec:
    names = list(names) if names is not None else list(model.nodes())
    index = {n: i for i, n in enumerate(names)}
    states, cards, parents, cpts = [], [], [], []
    for n in names:
        cpd = model.get_cpds(n)
        child, *pa = cpd.variables
        assert child == n
        values = np.asarray(cpd.get_values(), np.float64).reshape([cpd.cardinality[0], *cpd.cardinality[1:]])
        cpts.append(np.moveaxis(values, 0, -1))  # (*parent cards, card)
        parents.append(tuple(index[p] for p in pa))
        states.append(tuple(str(s) for s in cpd.state_names[n]))
        cards.append(int(cpd.cardinality[0]))
    return O.Spec(tuple(names), tuple(cards), tuple(parents), tuple(cpts), tuple(states))


def assert_net_matches_spec(net, spec: O.Spec, *, rtol=1e-6, atol=1e-7, exact_parent_order=False, what=""):
    """Same variables (any order), same state lists, same parent sets, equal CPTs after aligning axes."""
    assert set(net.names) == set(spec.names), f"{what}: names differ: {set(net.names) ^ set(spec.names)}"
    for name in spec.names:
        i, k = net.index(name), spec.index(name)
        assert tuple(net.states[i]) == spec.states[k], f"{what}: states of {name}: {net.states[i]} vs {spec.states[k]}"
        got_pa = [net.names[p] for p in net.parents[i]]
        exp_pa = [spec.names[p] for p in spec.parents[k]]
        if exact_parent_order:
            assert got_pa == exp_pa, f"{what}: parents of {name}: {got_pa} vs {exp_pa}"
        else:
            assert sorted(got_pa) == sorted(exp_pa), f"{what}: parents of {name}: {got_pa} vs {exp_pa}"
        cpt = np.asarray(net.cpts[i], np.float64)
        perm = [got_pa.index(p) for p in exp_pa] + [len(exp_pa)]
        cpt = np.transpose(cpt, perm)
        assert cpt.shape == spec.cpts[k].shape, f"{what}: CPT shape of {name}"
        np.testing.assert_allclose(cpt, spec.cpts[k], rtol=rtol, atol=atol, err_msg=f"{what}: CPT of {name}")


def assert_nets_identical(a, b, *, rtol=1e-6, atol=1e-8, what=""):
    assert tuple(a.names) == tuple(b.names), what
    assert tuple(map(tuple, a.states)) == tuple(map(tuple, b.states)), what
    assert tuple(map(tuple, a.parents)) == tuple(map(tuple, b.parents)), what
    for name, x, y in zip(a.names, a.cpts, b.cpts):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol, err_msg=f"{what}: CPT of {name}")


# ------------------------------------------------------------------------------------------------
# reading every bundled network
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_BIF)
def test_read_bif_matches_independent_reader(name):
    net = bn.read_bif(bif_path(name))
    assert_net_matches_spec(net, O.read_bif_file(bif_path(name)), what=f"{name} vs tests' BIF reader")
    assert len(net.names) == len(set(net.names))
    for c in net.cpts:
        assert c.dtype == jnp.float32


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in PGMPY_SLOW_TO_PARSE else n for n in ALL_BIF]
)
def test_read_bif_matches_pgmpy_bifreader(name):
    pg = pgmpy_reader_spec(name)
    # our independent reader agrees with pgmpy (validates the oracle used in the fast test above)
    assert_net_matches_spec_spec(O.read_bif_file(bif_path(name)), pg, what=f"{name}: tests' reader vs pgmpy")
    assert_net_matches_spec(bn.read_bif(bif_path(name)), pg, what=f"{name} vs pgmpy BIFReader")


def assert_net_matches_spec_spec(a: O.Spec, b: O.Spec, what=""):
    class _View:  # present a Spec through the BayesNet attributes used above
        names, states, parents, cpts = a.names, a.states, a.parents, a.cpts

        @staticmethod
        def index(n):
            return a.names.index(n)

    assert_net_matches_spec(_View, b, rtol=1e-12, atol=0, what=what)


@pytest.mark.parametrize("name", ALL_BIF)
def test_write_then_read_bif_is_identity(name, tmp_path):
    net = bn.read_bif(bif_path(name))
    suffix = ".bif.gz" if name in {"asia", "alarm", "munin1"} else ".bif"
    out = tmp_path / f"{name}{suffix}"
    bn.write_bif(net, out)
    if suffix == ".bif.gz":
        with gzip.open(out, "rt") as fh:  # really gzip
            assert "probability" in fh.read()
    again = bn.read_bif(str(out))  # str paths as well as Path objects
    assert_nets_identical(net, again, what=f"{name} written and read back")


@pytest.mark.parametrize("name", ["asia", "child"])
def test_written_bif_reads_in_pgmpy(name, tmp_path):
    from pgmpy.readwrite import BIFReader

    net = bn.read_bif(bif_path(name))
    out = tmp_path / f"{name}.bif"
    bn.write_bif(net, out)
    model = BIFReader(path=str(out)).get_model()
    assert_net_matches_spec(net, spec_from_pgmpy_model(model), what=f"{name} written, read by pgmpy")


# ------------------------------------------------------------------------------------------------
# from_pgmpy / to_pgmpy
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pgmpy_models():
    from pgmpy.utils import get_example_model

    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = get_example_model(name)
        return cache[name]

    return get


@pytest.fixture(scope="module")
def nets():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = bn.read_bif(bif_path(name))
        return cache[name]

    return get


@pytest.mark.parametrize("name", INFERENCE_NETS)
def test_from_pgmpy_to_pgmpy_round_trip(name, pgmpy_models, nets):
    model = pgmpy_models(name)
    net = nets(name)
    from_pg = bn.from_pgmpy(model)
    assert_net_matches_spec(from_pg, spec_from_pgmpy_model(model), what=f"from_pgmpy({name})")
    assert_net_matches_spec(from_pg, O.spec_from_net(net), what=f"from_pgmpy({name}) vs read_bif")
    back = bn.to_pgmpy(net)
    assert back.check_model()
    assert set(back.nodes()) == set(net.names)
    assert_net_matches_spec(net, spec_from_pgmpy_model(back), what=f"to_pgmpy({name})")
    # net -> pgmpy -> net is the identity (names, order, parents, CPTs)
    assert_nets_identical(bn.from_pgmpy(back), net, what=f"from_pgmpy(to_pgmpy({name}))")


# ------------------------------------------------------------------------------------------------
# inference vs pgmpy VariableElimination
# ------------------------------------------------------------------------------------------------


def random_evidence_sets(net, n_sets, seed, fraction=0.2):
    spec = O.spec_from_net(net)
    rng = np.random.default_rng(seed)
    x = O.ancestral_sample(spec, rng, n_sets)
    evs = np.full((n_sets, spec.n), -1, np.int32)
    for b in range(n_sets):
        k = max(1, int(round(fraction * spec.n)))
        obs = rng.choice(spec.n, size=k, replace=False)
        evs[b, obs] = x[b, obs]
    return evs


def pgmpy_evidence(net, ev):
    return {net.names[i]: net.states[i][v] for i, v in enumerate(ev) if v >= 0}


def pgmpy_table(factor, names, net):
    """A pgmpy DiscreteFactor's values with axes in ``names`` order and states in the net's order."""
    vals = np.asarray(factor.values, np.float64)
    vals = np.transpose(vals, [list(factor.variables).index(n) for n in names])
    for ax, n in enumerate(names):
        order = [list(factor.state_names[n]).index(s) for s in net.states[net.index(n)]]
        vals = np.take(vals, order, axis=ax)
    return vals


@pytest.fixture(scope="module")
def inference_results(nets):
    """One compiled function per network answering all queries for a batch of evidence sets."""
    cache = {}

    def get(name):
        if name in cache:
            return cache[name]
        net = nets(name)
        evs = random_evidence_sets(net, 3, seed=sum(map(ord, name)))
        rng = np.random.default_rng(len(name))
        pairs = []
        for ev in evs:  # two unobserved variables per evidence set, shared across the batch
            free = [i for i in range(len(net.names)) if ev[i] < 0]
            pairs.append(tuple(rng.choice(free, size=2, replace=False)))
        pair = tuple(net.names[i] for i in pairs[0])

        # tiny soft evidence on every variable: P(e) far below float32's smallest normal number
        soft = {
            v: (rng.uniform(0.2, 1.0, size=(len(evs), net.cards[i])) * TINY).astype(np.float32)
            for i, v in enumerate(net.names)
        }

        def run(n, e, s):
            return dict(
                marginals=bn.marginals(n, e),
                log_evidence=bn.log_evidence(n, e),
                query=bn.query(n, pair, e),
                mpe=bn.mpe(n, e),
                map=bn.map_query(n, pair, e),
                soft_marginals=bn.marginals(n, e, soft=s),
                soft_log_evidence=bn.log_evidence(n, e, soft=s),
            )

        out = jax.jit(jax.vmap(run, in_axes=(None, 0, 0)))(net, jnp.asarray(evs), soft)
        out = jax.tree_util.tree_map(np.asarray, out)
        out["soft"] = soft
        cache[name] = (net, evs, pair, out)
        return cache[name]

    return get


TINY = 1e-6


@pytest.mark.parametrize("name", INFERENCE_NETS)
def test_no_underflow_with_tiny_soft_evidence(name, inference_results):
    """Soft evidence of order 1e-6 on every variable puts P(e) below 1e-50 (asia) and near 1e-230
    (alarm): the scaled float32 contraction must still give log P(e) and the posteriors (vs float64
    log-space variable elimination; marginals checked on six variables per evidence set)."""
    net, evs, _, out = inference_results(name)
    spec = O.spec_from_net(net)
    for b, ev in enumerate(evs):
        soft = {k: v[b].astype(np.float64) for k, v in out["soft"].items()}
        exact = O.log_evidence_ve(spec, ev, soft)
        assert exact < np.log(1e-38), exact  # really beyond float32's range
        got = float(out["soft_log_evidence"][b])
        assert np.isfinite(got) and abs(got - exact) < 1e-3 + 1e-5 * abs(exact), f"{name}: log P(e) {got} vs {exact}"
        rng = np.random.default_rng(b)
        check = set(rng.choice(net.names, size=min(6, len(net.names)), replace=False))
        exact_m = O.marginals_ve(spec, ev, soft, names=check)
        for var, p in exact_m.items():
            np.testing.assert_allclose(out["soft_marginals"][var][b], p, atol=1e-5, err_msg=f"{name}: P({var} | e, soft)")


@pytest.mark.parametrize("name", INFERENCE_NETS)
def test_marginals_match_variable_elimination(name, inference_results, pgmpy_models):
    from pgmpy.inference import VariableElimination

    net, evs, _, out = inference_results(name)
    ve = VariableElimination(pgmpy_models(name))
    for b, ev in enumerate(evs):
        evidence = pgmpy_evidence(net, ev)
        for i, var in enumerate(net.names):
            got = out["marginals"][var][b]
            if ev[i] >= 0:
                np.testing.assert_array_equal(got, np.eye(net.cards[i])[ev[i]])
                continue
            factor = ve.query([var], evidence=evidence, show_progress=False)
            exact = pgmpy_table(factor, [var], net)
            np.testing.assert_allclose(got, exact, atol=1e-5, err_msg=f"{name}: P({var} | {evidence})")


@pytest.mark.parametrize("name", INFERENCE_NETS)
def test_log_evidence_matches_pgmpy(name, inference_results, pgmpy_models):
    """log P(e) = sum of log P(e_k | e_1..e_{k-1}) by the chain rule over pgmpy queries."""
    from pgmpy.inference import VariableElimination

    net, evs, _, out = inference_results(name)
    ve = VariableElimination(pgmpy_models(name))
    for b, ev in enumerate(evs):
        total, so_far = 0.0, {}
        for i in np.flatnonzero(ev >= 0):
            var, state = net.names[i], net.states[i][ev[i]]
            f = ve.query([var], evidence=dict(so_far) or None, show_progress=False)
            total += np.log(pgmpy_table(f, [var], net)[ev[i]])
            so_far[var] = state
        assert abs(float(out["log_evidence"][b]) - total) < 1e-4 + 1e-5 * abs(total), (name, b, total)


@pytest.mark.parametrize("name", INFERENCE_NETS)
def test_joint_query_matches_variable_elimination(name, inference_results, pgmpy_models):
    from pgmpy.inference import VariableElimination

    net, evs, pair, out = inference_results(name)
    ve = VariableElimination(pgmpy_models(name))
    for b, ev in enumerate(evs):
        evidence = pgmpy_evidence(net, ev)
        if any(p in evidence for p in pair):
            continue
        factor = ve.query(list(pair), evidence=evidence, joint=True, show_progress=False)
        exact = pgmpy_table(factor, list(pair), net)
        np.testing.assert_allclose(out["query"][b], exact, atol=1e-5, err_msg=f"{name}: P({pair} | {evidence})")


@pytest.mark.parametrize("name", INFERENCE_NETS)
def test_mpe_log_prob_is_maximal(name, inference_results, pgmpy_models):
    net, evs, _, out = inference_results(name)
    spec = O.read_bif_file(bif_path(name))  # float64 values from the file
    order = [spec.index(n) for n in net.names]
    for b, ev in enumerate(evs):
        x = out["mpe"].states[b]
        assert O.consistent(x, ev), (name, x, ev)
        x_spec = np.empty(spec.n, np.int64)
        ev_spec = np.full(spec.n, -1)
        for i, k in enumerate(order):  # net order -> file order (same states)
            x_spec[k], ev_spec[k] = x[i], ev[i]
        got = O.log_prob(spec, x_spec)
        best = O.mpe_log_value_ve(spec, ev_spec)
        assert got >= best - 1e-4, f"{name}: MPE has log P(x, e) = {got}, the maximum is {best}"
        mpe_log_prob = float(out["mpe"].log_prob[b])
        assert abs(mpe_log_prob - best) <= 1e-4 + 1e-5 * abs(best), (name, mpe_log_prob, best)
        if name == "asia":  # pgmpy's map_query over all unobserved variables is fast only here
            from pgmpy.inference import VariableElimination

            evidence = pgmpy_evidence(net, ev)
            free = [n for n in net.names if n not in evidence]
            pg = VariableElimination(pgmpy_models(name)).map_query(free, evidence=evidence, show_progress=False)
            x_pg = x_spec.copy()
            for n, s in pg.items():
                x_pg[spec.index(n)] = spec.states[spec.index(n)].index(s)
            assert abs(O.log_prob(spec, x_pg) - best) < 1e-9  # pgmpy agrees with our elimination
            assert abs(got - O.log_prob(spec, x_pg)) < 1e-4


@pytest.mark.parametrize("name", INFERENCE_NETS)
def test_map_query_matches_pgmpy(name, inference_results, pgmpy_models):
    from pgmpy.inference import VariableElimination

    net, evs, pair, out = inference_results(name)
    ve = VariableElimination(pgmpy_models(name))
    for b, ev in enumerate(evs):
        evidence = pgmpy_evidence(net, ev)
        if any(p in evidence for p in pair):
            continue
        table = pgmpy_table(ve.query(list(pair), evidence=evidence, joint=True, show_progress=False), list(pair), net)
        pg = ve.map_query(list(pair), evidence=evidence, show_progress=False)
        y_pg = tuple(net.states[net.index(n)].index(pg[n]) for n in pair)
        y = tuple(int(v) for v in out["map"][b])
        assert table[y] >= table.max() * (1 - 1e-4), f"{name}: MAP {pair}={y} has {table[y]}, max {table.max()}"
        assert abs(table[y] - table[y_pg]) <= 1e-4 * table.max(), (name, y, y_pg, table)


# ------------------------------------------------------------------------------------------------
# the lecture's burglary network
# ------------------------------------------------------------------------------------------------


def test_burglary_network_posterior():
    net = bn.BayesNet.from_dict(**O.burglary_dicts())
    ev = net.evidence({"JohnCalls": "yes", "MaryCalls": "yes"})
    p = float(bn.marginals(net, ev)["Burglary"][1])
    assert abs(p - 0.284) < 5e-4, p
    q = np.asarray(bn.query(net, ["Burglary"], ev))
    assert abs(float(q[1]) - 0.28417184) < 1e-5, q
    # and pgmpy agrees on the same network via to_pgmpy
    from pgmpy.inference import VariableElimination

    f = VariableElimination(bn.to_pgmpy(net)).query(["Burglary"], evidence={"JohnCalls": "yes", "MaryCalls": "yes"}, show_progress=False)
    assert abs(pgmpy_table(f, ["Burglary"], net)[1] - p) < 1e-6
    # the joint of one assignment: P(j, m, a, not b, not e) = 0.90 * 0.70 * 0.001 * 0.999 * 0.998
    x = jnp.array([0, 0, 1, 1, 1], jnp.int32)
    assert abs(float(jnp.exp(bn.log_prob(net, x))) - 0.90 * 0.70 * 0.001 * 0.999 * 0.998) < 1e-8
