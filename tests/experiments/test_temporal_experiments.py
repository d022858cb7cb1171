"""The temporal experiment scripts run end to end with --quick."""

import json

import numpy as np

import pytest


def test_casino_quick(tmp_path):
    from experiments import casino

    res = casino.main(["--quick", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "posterior.png").exists()
    assert saved["accuracy_viterbi_true_params"] > 0.7
    # EM from random starts reaches at least the likelihood of the true parameters (up to a little)
    assert res["log_likelihood_fitted"] > res["log_likelihood_true_params"] - 5.0
    hist = saved["em_history_best"]
    assert all(b >= a - 1e-3 for a, b in zip(hist, hist[1:]))


@pytest.mark.slow
def test_bench_quick(tmp_path):
    from experiments import bench_hmm

    res = bench_hmm.main(["--quick", "--out", str(tmp_path)])
    assert (tmp_path / "results.json").exists()
    for agree in res["agreement"].values():
        assert agree["max |marginals gm - dynamax|"] < 1e-4
        assert agree["max |marginals gm - hmmlearn|"] < 1e-4
        assert agree["max |marginals gm posterior - dynamax|"] < 1e-4
        assert agree["max |log-ev gm posterior - dynamax| (rel)"] < 1e-5
    assert res["long_abs_error_nats"]["gm"] < 1e-2
    assert res["factorial_max_abs_diff"]["max |marginals|"] < 1e-5
    assert all(r["max_abs_marginal_diff"] < 1e-5 for r in res["factorial_scaling"])


@pytest.mark.slow  # about 20 s of compiles (every task and side on one cell)
def test_bench_grid_quick(tmp_path):
    from experiments import bench_hmm

    res = bench_hmm.main(["--grid", "--quick", "--out", str(tmp_path)])
    assert (tmp_path / "grid_speedup.png").exists() and (tmp_path / "results.md").exists()
    saved = json.loads((tmp_path / "results.json").read_text())
    (cell,) = saved["cells"].values()
    for task in bench_hmm.GRID_TASKS:  # every task timed for gm and dynamax
        assert f"{task} | gm" in cell["timings"]
        assert f"{'smoother' if task == 'posterior' else task} | dynamax" in cell["timings"]
    for name, diff in res["worst_agreement"].items():
        assert diff < 1e-5, name
    assert res["long_abs_error_nats"]["gm"] < 1e-2


@pytest.mark.slow  # about 35 s of compiles (three sides on eight small cells)
def test_bench_dbn_scaling_quick(tmp_path):
    from experiments import bench_hmm

    res = bench_hmm.main(["--only", "dbn-scaling", "--quick", "--out", str(tmp_path)])
    assert (tmp_path / "dbn_scaling.png").exists() and (tmp_path / "results.md").exists()
    assert {r["kind"] for r in res["rows"]} == set(bench_hmm.DBN_KINDS)
    for r in res["rows"]:  # every side timed on the small cells, and the structured path exact
        assert {"structured", "flattened", "general"} <= set(r)
        assert r["max |marginals - flattened|"] < 1e-5


@pytest.mark.slow  # 20 to 35 s; the suite must stay under 15 min on 2 cores
def test_audio_visual_quick(tmp_path):
    from experiments import audio_visual

    out = audio_visual.main(["--quick", "--out", str(tmp_path)])
    res = out["results"]
    assert len(res) == 6
    for name, r in res.items():
        assert np.isfinite(r["heldout_loglik_per_step"]) and 0 <= r["state_accuracy"] <= 1
        if r["fit_seconds"] > 0:  # fitted models cannot beat the data-generating model by much
            assert r["heldout_loglik_per_step"] < res["true coupled HMM (reference)"]["heldout_loglik_per_step"] + 0.2
