"""The experiment script runs with --quick, and --resume reproduces an uninterrupted run exactly."""

import json

import pytest

from experiments import vae_mnist


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("vae_mnist")
    out = root / "straight"
    results = vae_mnist.main(["--quick", "--out", str(out), "--classifier-dir", str(root / "classifier"),
                              "--no-progress"])
    return root, out, results


@pytest.mark.slow  # 28 s (AE, VAE, CVAE and the digit classifier); tests/deep covers the models and steps
def test_quick_run_writes_results_and_figures(uninterrupted):
    _, out, results = uninterrupted
    for name in ("reconstructions", "prior_samples", "interpolations", "latent_scatter", "cvae_samples",
                 "training_curves"):
        assert (out / f"{name}.png").stat().st_size > 1000
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["models"]) == {"ae", "vae", "cvae"}
    vae_test = saved["test"]["vae"]
    iwae_key = [k for k in vae_test if k.startswith("iwae_")][0]
    assert 0 < vae_test[iwae_key] <= vae_test["negative_elbo"] + 1.0  # IWAE tightens the bound
    assert 0.0 <= saved["sample_metrics"]["cvae"]["conditional_accuracy"] <= 1.0
    assert saved["sample_metrics"]["vae"]["frechet_distance"] > 0
    assert saved["models"]["vae"]["history"]["epoch"] == [1, 2, 3]
    assert saved == json.loads(json.dumps(results, default=str))


@pytest.mark.slow  # 5 s; checkpoint resume is also tested in tests/experiments/test_checkpoints.py
def test_resume_reproduces_the_uninterrupted_run(uninterrupted):
    root, _, straight = uninterrupted
    out = root / "interrupted"
    common = ["--quick", "--models", "vae", "--out", str(out), "--classifier-dir", str(root / "classifier"),
              "--no-progress"]
    assert vae_mnist.main(common + ["--stop-after-epochs", "1"]) is None
    assert not (out / "results.json").exists()
    resumed = vae_mnist.main(common + ["--resume"])
    a, b = straight["models"]["vae"], resumed["models"]["vae"]
    assert b["history"]["epoch"] == [1, 2, 3]
    assert a["history"]["train_loss"] == b["history"]["train_loss"]
    assert a["history"]["validation_loss"] == b["history"]["validation_loss"]
    assert a["best_epoch"] == b["best_epoch"]
    assert straight["test"]["vae"] == resumed["test"]["vae"]
    assert straight["sample_metrics"]["vae"] == resumed["sample_metrics"]["vae"]
