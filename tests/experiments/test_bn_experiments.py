"""The BN experiment scripts run end to end (the demo and the benchmark's --quick mode)."""

import json
import os

import numpy as np
import pytest


def test_burglary_report(tmp_path, capsys):
    from experiments import burglary

    results = burglary.main(["--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "0.284" in out
    np.testing.assert_allclose(results["p_burglary_given_j_m"], 0.284172, atol=1e-4)
    # marginalising the joint by hand and bn.query agree
    np.testing.assert_allclose(
        results["p_burglary_given_j_not_m"]["marginalised"], results["p_burglary_given_j_not_m"]["query"], atol=1e-6
    )
    assert results["mpe"]["JohnCalls"] == "yes" and results["mpe"]["MaryCalls"] == "no"
    with open(os.path.join(tmp_path, "results.json")) as f:
        assert json.load(f)["mpe"] == results["mpe"]


def test_bench_bn_quick(tmp_path):
    pytest.importorskip("pgmpy")
    from experiments import bench_bn

    rows = bench_bn.main(["--networks", "asia,alarm", "--batch", "64", "--repeats", "1", "--out", str(tmp_path)])
    assert [r["network"] for r in rows] == ["asia", "alarm"]
    for r in rows:
        assert r["max_abs_diff"] < 1e-5
        assert not r["nan"]
        assert r["gm_sets_per_s"] > 0 and r["pgmpy_sets_per_s"] > 0
    assert os.path.exists(os.path.join(tmp_path, "table.md"))


def test_bench_xla_cpu_on_water(tmp_path):
    from experiments import bench_xla_cpu

    (row,) = bench_xla_cpu.main(["--networks", "water", "--out", str(tmp_path)])
    # water's largest step: both operands carry the evidence, so the chunk multiplies the batch of products
    assert row["both_batched"] and row["H"] * row["M"] * row["K"] * row["N"] == row["chunk"] * row["madds"]
    from gm import bn
    from gm.data.networks import load_network

    p = bn.network_plan(load_network("water").structure)
    grids = [np.prod([p.sizes[l] for l in set(s.out) | set(p.labels[s.a]) | set(p.labels[s.b])]) for s in p.steps if s.b >= 0]
    assert row["madds"] == max(grids) and row["steps_madds"] <= row["plan_madds"] == p.flops
    for key in ("fwd", "dx", "dy", "2-D"):
        assert row[f"{key}_gmac_s"] > 0
    assert 0 < row["products_ms_per_1000"] and 0 < row["budget_ms_per_1000"]
    assert os.path.exists(os.path.join(tmp_path, "table.md"))
