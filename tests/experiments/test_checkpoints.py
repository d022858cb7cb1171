"""Issue 18: checkpoints you can trust, and training loops that stop on a non-finite value."""
from __future__ import annotations

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import _common
from gm.deep import train, vae

TREE = {"w": jnp.arange(3.0), "b": jnp.zeros(2)}


def test_restore_verifies_every_leaf(tmp_path):
    folder = str(tmp_path / "ckpt")
    train.save_checkpoint(folder, 1, TREE, {"seed": 0})
    train.save_checkpoint(folder, 2, {"w": jnp.arange(3.0), "b": jnp.array([0.0, jnp.inf])}, {"seed": 0})
    with pytest.raises(ValueError, match=r"checkpoint step 2 in .*ckpt.*: leaf \['b'\] has a non-finite value inf"):
        train.restore_checkpoint(folder, TREE)
    restored = train.restore_checkpoint(folder, TREE, 1)
    np.testing.assert_array_equal(restored.tree["w"], TREE["w"])
    assert restored.metadata == {"seed": 0}
    with pytest.raises(ValueError, match=r"leaf \['w'\] has shape \(3,\) and dtype float32, the template \(3,\) "
                                         r"and int32"):
        train.restore_checkpoint(folder, {"w": jnp.arange(3), "b": jnp.zeros(2)}, 1)


def test_a_flipped_byte_in_a_stored_array_file_is_an_error_naming_the_folder(tmp_path):
    """A real corruption: one byte flipped in the middle of the largest array file orbax/tensorstore wrote.
    It decodes to plausible numbers (a 6e-8 change when this test was written: no NaN, so only the CRC-32
    written with the leaf catches it); restoring, directly or by a --resume of the runner, names the step's
    folder."""
    folder = str(tmp_path / "ckpt")
    tree = {"w": jnp.linspace(0.0, 1.0, 4096), "b": jnp.zeros(2)}
    train.save_checkpoint(folder, 1, tree, {"seed": 0})
    files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(folder, "1", "tree")) for f in fs
             if os.path.basename(d) == "d"]  # tensorstore's data files (ocdbt.process_0/d/<hash>)
    assert files, "orbax wrote no array data files"
    target = max(files, key=os.path.getsize)
    data = bytearray(open(target, "rb").read())
    data[len(data) // 2] ^= 0x10
    with open(target, "wb") as f:
        f.write(bytes(data))
    where = re.escape(os.path.join(folder, "1", "tree"))
    with pytest.raises(ValueError, match=rf"checkpoint step 1 in .*ckpt.*: leaf \['w'\] does not match the checksum "
                                         rf"written with it: a file under '{where}' is corrupt"):
        train.restore_checkpoint(folder, tree)
    with pytest.raises(ValueError, match=rf"'{where}' is corrupt.*delete that step's folder"):
        _common.train_loop(tree, lambda s, step: (s, {}), num_steps=2, log_every=1, checkpoint_dir=folder,
                           progress=False, resume=True)


def test_corrupt_metadata_and_empty_step_name_the_folder(tmp_path):
    folder = str(tmp_path / "ckpt")
    train.save_checkpoint(folder, 1, TREE, {"seed": 0})
    meta = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(folder, "1", "metadata")) for f in fs
            if f == "metadata"]
    assert meta, "orbax wrote no metadata file"
    with open(meta[0], "w") as f:
        f.write("{not json")
    with pytest.raises(ValueError, match=r"cannot restore checkpoint step 1 from '.*ckpt/1'.*JSONDecodeError.*"
                                         r"corrupt or incomplete"):
        train.restore_checkpoint(folder, TREE)
    os.makedirs(os.path.join(folder, "7"))  # an empty step folder (a run killed while saving)
    with pytest.raises(ValueError, match=r"checkpoint step 7 from '.*ckpt/7'.*delete that step's folder"):
        train.restore_checkpoint(folder, TREE)


def _counting(tmp_path, *, info, **kw):
    return _common.train_loop(jnp.asarray(0.0), lambda s, step: (s + step, {"loss": jnp.asarray(1.0)}), num_steps=4,
                              log_every=2, checkpoint_dir=str(tmp_path / "ckpt"), progress=False, run_info=info, **kw)


def test_resume_refuses_another_seed_or_size(tmp_path):
    first = {"seed": 0, "config": {"steps": 4, "width": 8}}
    assert _counting(tmp_path, info=first, stop_after=2).status == "interrupted"
    with pytest.raises(ValueError) as info:
        _counting(tmp_path, info={"seed": 1, "config": {"steps": 4, "width": 16}}, resume=True)
    message = str(info.value)
    assert re.search(r"--resume refused: the checkpoints in '.*ckpt' belong to another run", message), message
    assert "seed: checkpoint 0, now 1" in message and "config" in message and "--force" in message
    forced = _counting(tmp_path, info={"seed": 1, "config": first["config"]}, resume=True, force=True)
    assert forced.status == "finished" and forced.start_step == 2
    again = _counting(tmp_path, info=first, resume=True)  # the same flags resume (here: a finished run)
    assert again.status == "finished" and float(again.state) == sum(range(4))


SHAPE = (4, 4, 1)
CONFIG = vae.VAEConfig(likelihood="gaussian", binarize=False, image_shape=SHAPE, hidden=(8,), latent_dim=2)


def test_a_nan_batch_stops_the_run_and_keeps_the_last_checkpoint(tmp_path):
    """A quick VAE run whose step 5 (of 8) sees a NaN pixel: TrainingDiverged names the step, the metric and
    the last good checkpoint (step 4), which restores finite; nothing after it was written."""
    images = jnp.asarray(np.random.default_rng(0).uniform(size=(4,) + SHAPE), jnp.float32)
    state = vae.create_state(jax.random.key(0), CONFIG, {"image": images})
    folder = str(tmp_path / "ckpt")

    def step_fn(state, step):
        batch = images.at[0, 0, 0, 0].set(jnp.nan) if step == 4 else images  # global step 4 = the 5th step
        return vae.train_step(jax.random.key(step), CONFIG, state, {"image": batch})

    with pytest.raises(_common.TrainingDiverged) as info:
        _common.train_loop(state, step_fn, num_steps=8, log_every=2, checkpoint_dir=folder, progress=False,
                           raise_on_divergence=True)
    message = str(info.value)
    assert "training diverged at step 6" in message and "metric 'loss' is nan at step 5" in message, message
    assert "the last good checkpoint is step 4" in message and folder in message, message
    assert info.value.run.status == "diverged" and info.value.run.last_good_checkpoint == 4
    assert train.latest_checkpoint_step(folder) == 4
    restored = train.restore_checkpoint(folder, state).tree
    assert int(restored.step) == 4 and bool(train.all_finite(restored.params))
    # returned rather than raised by default, with the same reason
    run = _common.train_loop(state, step_fn, num_steps=8, log_every=2, checkpoint_dir=str(tmp_path / "other"),
                             progress=False)
    assert run.status == "diverged" and "step 5" in run.reason and run.last_good_checkpoint == 4
