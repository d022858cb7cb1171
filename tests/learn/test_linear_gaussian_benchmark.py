"""experiments.bench_linear_gaussian: a tiny run of the gm-vs-pgmpy benchmark (the full run is by hand)."""

import json

import pytest


def test_benchmark_quick_run(tmp_path):
    pytest.importorskip("pgmpy")
    from experiments import bench_linear_gaussian

    rows = bench_linear_gaussian.main(["--networks", "ecoli70", "--batch", "20", "--repeats", "1",
                                       "--pgmpy-sets", "2", "--out", str(tmp_path)])
    (row,) = rows
    assert row["rows_gm_sets_per_s"] > 0 and row["one_pgmpy_sets_per_s"] > 0
    assert row["rows_mean_diff"] < 1e-5 and row["rows_var_diff"] < 1e-5
    assert row["one_mean_diff"] < 1e-5 and row["one_var_diff"] < 1e-5
    assert "| ecoli70 | 46 | 20 |" in (tmp_path / "table.md").read_text()
    assert json.loads((tmp_path / "results.json").read_text())["rows"][0]["network"] == "ecoli70"
