"""The GAN experiment runs with --quick, resumes exactly, and stops with a message when training diverges."""

import json

import numpy as np
import pytest

from experiments import _common, gan_mnist
from gm.deep import train


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("gan_classifier"))


def _run(model, out, classifier_dir, *extra):
    return gan_mnist.main(["--model", model, "--quick", "--out", str(out), "--classifier-dir", classifier_dir,
                           "--no-progress", *extra])


@pytest.mark.slow  # 9 s; tests/deep covers the GAN family's steps
def test_quick_cgan_run_writes_results_and_figures(tmp_path, classifier_dir):
    results = _run("cgan", tmp_path, classifier_dir)
    for name in ("samples", "loss_curves"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == json.loads(json.dumps(results, default=str))
    m = saved["metrics"]
    assert 0.0 <= m["conditional_accuracy"] <= 1.0 and len(m["conditional_accuracy_per_class"]) == 10
    assert m["frechet_distance"] > 0 and 1 <= m["mode_coverage"] <= 10
    assert saved["training"]["history"]["step"] == list(range(10, 61, 10))
    assert saved["training"]["steps_per_second"] > 0
    assert train.latest_checkpoint_step(str(tmp_path / "checkpoints")) == 60


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gan", "infogan", "bigan"])
def test_quick_runs_of_the_other_models(tmp_path, classifier_dir, model):
    saved = _run(model, tmp_path, classifier_dir)
    m = saved["metrics"]
    if model == "infogan":
        assert 0.0 <= m["code_matched_accuracy"] <= 1.0 and 0.0 <= m["q_matched_accuracy_on_test_digits"] <= 1.0
        assert 0.0 <= m["q_code_information_on_train_digits"] <= np.log(10) + 1e-9
        assert saved["model_config"]["architecture"] == "dcgan" and saved["model_config"]["normalization"] == "batch"
        assert (tmp_path / "code_sweep_categorical.png").exists() and (tmp_path / "code_sweep_continuous.png").exists()
    if model == "bigan":
        assert 0.0 <= m["linear_probe_trained_encoder"] <= 1.0 and 0.0 <= m["linear_probe_random_encoder"] <= 1.0
        assert m["reconstruction_mse"] > 0 and (tmp_path / "reconstructions.png").exists()
        # The step is chosen by the probe on the validation digits, which the encoder never trained on.
        assert saved["data"] == {"train": 3500, "validation": 500, "test": 1000}
        mon = saved["training"]["monitored"]
        assert mon["step"] == [30, 60] and saved["training"]["chosen_step"] == mon["step"][int(np.argmax(mon["value"]))]
        assert m["validation_linear_probe_trained_encoder"] == max(mon["value"])


@pytest.mark.slow
def test_resume_reproduces_the_uninterrupted_run(tmp_path, classifier_dir):
    straight = _run("gan", tmp_path / "straight", classifier_dir)
    assert _run("gan", tmp_path / "resumed", classifier_dir, "--stop-after-steps", "30") is None
    resumed = _run("gan", tmp_path / "resumed", classifier_dir, "--resume")
    a, b = straight["training"]["history"], resumed["training"]["history"]
    assert a["step"] == b["step"]
    np.testing.assert_allclose(a["d_loss"], b["d_loss"], rtol=1e-6)
    np.testing.assert_allclose(a["g_loss"], b["g_loss"], rtol=1e-6)
    assert straight["metrics"]["frechet_distance"] == pytest.approx(resumed["metrics"]["frechet_distance"], rel=1e-5)


def test_code_information_is_the_mutual_information_of_q():
    uniform = np.zeros((4, 3))
    assert gan_mnist.code_information(uniform) == pytest.approx(0.0, abs=1e-12)  # Q says nothing
    confident = np.log(np.eye(3)[[0, 1, 2, 0, 1, 2]] + 1e-30)
    assert gan_mnist.code_information(confident) == pytest.approx(np.log(3), abs=1e-6)  # balanced, certain
    one_code = np.log(np.eye(3)[[0, 0, 0]] + 1e-30)
    assert gan_mnist.code_information(one_code) == pytest.approx(0.0, abs=1e-6)  # certain but all the same


def test_divergence_detection_names_the_reason():
    cfg = gan_mnist.quick_config("gan")
    healthy = {"d_loss": [0.6, 0.7], "g_loss": [1.0, 0.9], "d_real_accuracy": [0.8, 0.7],
               "d_fake_accuracy": [0.7, 0.8]}
    assert gan_mnist.divergence(healthy, cfg, 3) == (None, 0)
    perfect = {**healthy, "d_real_accuracy": [1.0, 1.0], "d_fake_accuracy": [1.0, 1.0]}
    reason, count = gan_mnist.divergence(perfect, cfg, 0)
    assert reason is None and count == 1
    reason, count = gan_mnist.divergence(perfect, cfg, cfg["collapse_windows"] - 1)
    assert "collapsed" in reason and count == cfg["collapse_windows"]


@pytest.mark.slow
def test_a_diverging_run_stops_and_keeps_the_last_good_checkpoint(tmp_path, classifier_dir, monkeypatch):
    calls = {"n": 0}
    real = gan_mnist.divergence

    def fail_after_first_checkpoint(window, cfg, collapsed):
        calls["n"] += 1
        if calls["n"] > 3:  # windows at steps 10, 20, 30 are healthy; step 40 "diverges"
            return "a loss is NaN or infinite", collapsed
        return real(window, cfg, collapsed)

    monkeypatch.setattr(gan_mnist, "divergence", fail_after_first_checkpoint)
    with pytest.raises(_common.TrainingDiverged, match=r"diverged at step 40: a loss is NaN or infinite; the last "
                                                       r"good checkpoint is step 30"):
        _run("gan", tmp_path, classifier_dir)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "diverged" and results["training"]["last_good_checkpoint"] == 30
    assert "NaN" in results["training"]["message"]
    assert train.latest_checkpoint_step(str(tmp_path / "checkpoints")) == 30
