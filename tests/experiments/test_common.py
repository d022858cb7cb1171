"""The experiments' shared runner: results.json serialisation, batches per step, the resumable loop, grids."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import _common


def test_write_results_turns_numpy_and_jax_values_into_json(tmp_path):
    @dataclasses.dataclass(frozen=True)
    class Settings:
        widths: tuple = (2, 3)

    results = {"f32": np.float32(0.5), "i64": np.int64(3), "scalar": jnp.asarray(1.5), "array": np.arange(3),
               "jax": jnp.ones((2, 2)), "tuple": (1, (2, 3)), "settings": Settings(), "none": None,
               "flag": np.bool_(True), 7: "int key", "nested": [{"x": np.float64(2.0)}], "other": object}
    written = _common.write_results(str(tmp_path), results)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == written
    assert saved["f32"] == 0.5 and saved["i64"] == 3 and saved["scalar"] == 1.5 and saved["flag"] is True
    assert saved["array"] == [0, 1, 2] and saved["jax"] == [[1.0, 1.0], [1.0, 1.0]] and saved["tuple"] == [1, [2, 3]]
    assert saved["settings"] == {"widths": [2, 3]} and saved["7"] == "int key" and saved["none"] is None
    assert saved["nested"] == [{"x": 2.0}] and saved["other"] == str(object)
    # a file path is written as given
    _common.write_results(str(tmp_path / "summary.json"), {"a": 1})
    assert json.loads((tmp_path / "summary.json").read_text()) == {"a": 1}


def test_epoch_batches_reshuffle_per_epoch_and_cover_every_example_once():
    batches = _common.EpochBatches(lambda epoch: jax.random.permutation(jax.random.key(epoch), 10), 3, 3)
    first_epoch = np.concatenate([np.asarray(batches(s)) for s in range(3)])
    assert len(set(first_epoch.tolist())) == 9  # 3 batches of 3 from one permutation of 10: no repeats
    second = np.concatenate([np.asarray(batches(s)) for s in range(3, 6)])
    assert not np.array_equal(first_epoch, second)
    fresh = _common.EpochBatches(lambda epoch: jax.random.permutation(jax.random.key(epoch), 10), 3, 3)
    np.testing.assert_array_equal(fresh(4), batches(4))  # a run resumed at step 4 sees the same batch
    pair = _common.EpochBatches(lambda epoch: (jnp.arange(6), jnp.arange(6)[::-1]), 2, 3)
    a, b = pair(1)
    np.testing.assert_array_equal(a, [3, 4, 5])
    np.testing.assert_array_equal(b, [2, 1, 0])
    with pytest.raises(ValueError, match="batch"):
        _common.EpochBatches(lambda epoch: None, 0, 4)


def _counting_run(tmp_path, *, finish_at=None, **kw):
    """A toy run: the state is a running sum of the step indices; logs every 2 steps, keeps the best."""

    def step_fn(state, step):
        return state + step, {"loss": jnp.asarray(10.0 - step, jnp.float32)}

    def on_log(state, done, window, run):
        run.history.setdefault("loss", []).append(float(jnp.mean(window["loss"])))
        run.extra["logs"] += 1
        return _common.LogResult(new_best=done == 4, finished=finish_at == done)

    return _common.train_loop(jnp.asarray(0.0), step_fn, num_steps=6, log_every=2, on_log=on_log, keep_best=True,
                              checkpoint_dir=str(tmp_path / "ckpt"), extra={"logs": 0}, progress=False, **kw)


def test_train_loop_logs_checkpoints_and_resumes_exactly(tmp_path):
    straight = _counting_run(tmp_path / "a")
    assert straight.status == "finished" and float(straight.state) == sum(range(6))
    assert float(straight.best) == sum(range(4)) and straight.progress.extra["logs"] == 3
    assert straight.progress.history["step"] == [2, 4, 6] and straight.progress.history["loss"] == [9.5, 7.5, 5.5]
    stopped = _counting_run(tmp_path / "b", stop_after=3)  # stops at the first window at or after step 3
    assert stopped.status == "interrupted" and stopped.state is None and stopped.progress.step == 4
    resumed = _counting_run(tmp_path / "b", resume=True)
    assert resumed.status == "finished" and resumed.start_step == 4
    assert float(resumed.state) == float(straight.state) and float(resumed.best) == float(straight.best)
    assert resumed.progress.history["loss"] == straight.progress.history["loss"]
    assert resumed.progress.extra["logs"] == 3
    early = _counting_run(tmp_path / "c", finish_at=2)
    assert early.status == "finished" and early.progress.step == 2 and early.progress.finished


def test_train_loop_stops_without_a_checkpoint_when_training_diverges(tmp_path):
    def on_log(state, done, window, run):
        return _common.LogResult(diverged="a loss is NaN" if done == 4 else None)

    run = _common.train_loop(jnp.asarray(0.0), lambda s, step: (s + 1, {}), num_steps=6, log_every=2,
                             checkpoint_dir=str(tmp_path / "ckpt"), on_log=on_log, progress=False)
    assert run.status == "diverged" and run.reason == "a loss is NaN" and run.stopped_at == 4
    assert run.last_good_checkpoint == 2 and run.progress.history["step"] == [2]
    with pytest.raises(ValueError, match="multiple"):
        _common.train_loop(jnp.asarray(0.0), lambda s, step: (s, {}), num_steps=6, log_every=2, checkpoint_every=3,
                           checkpoint_dir=str(tmp_path / "other"), progress=False)


def test_image_grids():
    grey = np.zeros((4, 2, 2, 1))
    canvas = _common.grey_grid(grey, 2, 2)
    assert canvas.shape == (6, 6) and canvas[2, 0] == 1.0 and canvas[0, 0] == 0.0  # 2-pixel white gaps
    rgb = _common.colour_grid([[np.zeros((2, 2, 1)), np.zeros((2, 2, 3))]])
    assert rgb.shape == (4, 7, 3) and rgb[0, 0, 0] == 1.0 and rgb[1, 1, 0] == 0.0  # 1-pixel border and gaps
