"""The translation experiment scripts run with --quick; --resume reproduces an uninterrupted run (slow)."""

import json

import pytest

from experiments import bicyclegan, cyclegan


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("translation_classifier"))


@pytest.mark.slow  # 14 s; the CycleGAN quick run below stays in the default tier
def test_bicyclegan_quick_run_writes_results_table_and_figures(tmp_path, classifier_dir):
    out = tmp_path / "bicyclegan"
    results = bicyclegan.main(["--model", "bicyclegan", "--quick", "--out", str(out),
                               "--classifier-dir", classifier_dir, "--no-progress"])
    for name in ("samples_bicyclegan", "diversity_bicyclegan", "comparison"):
        assert (out / f"{name}.png").stat().st_size > 1000
    saved = json.loads((out / "results.json").read_text())
    test = saved["test"]["bicyclegan"]
    assert 0.0 <= test["class_preservation"] <= 1.0 and test["frechet_distance"] >= 0
    assert test["diversity"] >= 0 and test["latent_recovery_error"] > 0
    assert test["frechet_distance_encoded"] >= 0 and 0.0 <= test["class_preservation_encoded"] <= 1.0
    assert test["frechet_distance_gap"] == test["frechet_distance"] - test["frechet_distance_encoded"]
    assert saved["models"]["bicyclegan"]["history"]["step"] == [3, 6]
    table = (out / "comparison.md").read_text()
    assert "| bicyclegan |" in table and "| pix2pix |" not in table
    assert saved == json.loads(json.dumps(results, default=str))


def test_seed_summary_gives_mean_and_sample_sd_per_model(tmp_path):
    import statistics

    def fake(seed, fd, kept, models=("cvae_gan", "bicyclegan")):
        return {"seed": seed, "reference": {"frechet_distance_recoloured": 4.5, "diversity_true": 0.038},
                "test": {m: {"frechet_distance": fd + i, "class_preservation": kept, "diversity": 0.04,
                             "colour_histogram": [1, 0]}
                         for i, m in enumerate(models)},
                "models": {m: {"train_seconds": 10.0 + seed} for m in models}}

    runs = [fake(2, 12.0, 0.9), fake(0, 11.0, 0.8), fake(1, 14.0, 0.7, models=("cvae_gan",))]
    for r in runs:
        (tmp_path / f"seed_{r['seed']}").mkdir()
        (tmp_path / f"seed_{r['seed']}" / "results.json").write_text(json.dumps(r))
    summary = bicyclegan.write_summary(str(tmp_path))
    assert summary["seeds"] == [0, 1, 2]
    assert summary["test"]["cvae_gan"]["frechet_distance"] == [11.0, 14.0, 12.0]
    assert summary["test"]["bicyclegan"]["frechet_distance"] == [12.0, 13.0]  # seed 1 did not train it
    assert "colour_histogram" not in summary["test"]["cvae_gan"]
    table = (tmp_path / "summary.md").read_text()
    fd_sd = statistics.stdev([11.0, 14.0, 12.0])
    kept_sd = 100 * statistics.stdev([0.8, 0.7, 0.9])
    assert f"| cvae_gan | {37 / 3:.3f} ± {fd_sd:.3f} | - |" in table
    assert f"80.0 ± {kept_sd:.1f}%" in table and "| bicyclegan | 12.500 ± 0.707 |" in table
    assert (tmp_path / "comparison.png").stat().st_size > 1000


@pytest.mark.slow  # 13 s; the translation models' unit tests (tests/deep) run in the default tier
def test_cyclegan_quick_run_writes_results_and_figures(tmp_path, classifier_dir):
    out = tmp_path / "cyclegan"
    results = cyclegan.main(["--quick", "--out", str(out), "--classifier-dir", classifier_dir, "--no-progress"])
    for name in ("translations", "training_curves"):
        assert (out / f"{name}.png").stat().st_size > 1000
    saved = json.loads((out / "results.json").read_text())
    for direction in ("a_to_b", "b_to_a"):
        entry = saved["test"][direction]
        assert 0.0 <= entry["class_preservation"] <= 1.0
        assert 0.0 <= entry["cycle_l1"] <= 1.0
    assert saved["model"]["history"]["step"] == [3, 6]
    assert saved == json.loads(json.dumps(results, default=str))


@pytest.mark.slow
@pytest.mark.parametrize("script", ["bicyclegan", "cyclegan"])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, classifier_dir, script):
    module = {"bicyclegan": bicyclegan, "cyclegan": cyclegan}[script]
    extra = ["--model", "cvae_gan"] if script == "bicyclegan" else []
    common = [*extra, "--quick", "--classifier-dir", classifier_dir, "--no-progress"]
    straight = module.main([*common, "--out", str(tmp_path / "straight")])
    out = str(tmp_path / "interrupted")
    assert module.main([*common, "--out", out, "--stop-after-steps", "3"]) is None
    resumed = module.main([*common, "--out", out, "--resume"])
    if script == "bicyclegan":
        a, b = straight["models"]["cvae_gan"], resumed["models"]["cvae_gan"]
        assert straight["test"]["cvae_gan"] == resumed["test"]["cvae_gan"]
    else:
        a, b = straight["model"], resumed["model"]
        assert straight["test"] == resumed["test"]
    for key in ("step", "d_loss", "g_loss"):
        assert a["history"][key] == b["history"][key]
