"""experiments.bench_all: a cheap smoke test in the default suite, the whole --quick run marked slow."""

import json
import os
import time

import pytest


def test_bench_all_smoke(tmp_path):
    """The deep-model section (a few timed VAE steps) and the report files; the gpu section skips on CPU."""
    import jax

    from experiments import bench_all

    res = bench_all.main(["--quick", "--sections", "deep,gpu", "--vae-steps", "2", "--out", str(tmp_path)])
    rows = res["sections"]["deep"]["rows"]
    assert rows[0]["model"].startswith("VAE") and rows[0]["steps_per_s"] > 0
    assert rows[0]["examples_per_s"] == pytest.approx(rows[0]["steps_per_s"] * rows[0]["batch"])
    gan_present = any(r["model"].startswith("GAN") for r in rows)
    assert gan_present or "GAN skipped" in res["sections"]["deep"]["markdown"]
    if jax.default_backend() != "gpu":
        assert "Skipped" in res["sections"]["gpu"]["markdown"]
    report = (tmp_path / "bench_all.md").read_text()
    assert "training steps per second" in report and "| model |" in report
    with open(tmp_path / "results.json") as f:
        assert set(json.load(f)["sections"]) == {"deep", "gpu"}


@pytest.mark.slow
def test_bench_all_quick_runs_every_section_under_five_minutes(tmp_path):
    pytest.importorskip("pgmpy")
    from experiments import bench_all

    start = time.time()
    res = bench_all.main(["--quick", "--peaks", "--out", str(tmp_path)])
    assert time.time() - start < 300
    sections = res["sections"]
    assert set(sections) == set(bench_all.SECTIONS)
    for row in sections["bn"]["rows"]:
        assert row["max_abs_diff"] < 1e-5 and not row["nan"]
    for agree in sections["hmm"]["agreement"].values():
        assert agree["max |marginals gm - dynamax|"] < 1e-4
    assert [r["devices"] for r in sections["scaling"]["rows"]] == [1, 2, 4]
    assert all(r["bn_sets_per_s"] > 0 and r["hmm_sequences_per_s"] > 0 for r in sections["scaling"]["rows"])
    assert all(r["flops"] > 0 for r in sections["gpu"]["rows"])
    assert os.path.exists(tmp_path / "bench_all.md")
