"""gm.parallel on 4 simulated devices (one subprocess) and across two processes on 127.0.0.1.

JAX fixes its device count when its backend starts, so the multi-device checks run in subprocesses with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``: ``four_devices.py`` (all single-host checks in one
process, to pay JAX's start-up once) and two copies of ``multihost.py`` joined by
``jax.distributed.initialize``. Each prints a JSON line; the assertions are here. The references are the
same functions on one device (in the subprocess, or in this process for the two-process test).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
F32 = 1e-5  # float32 rounding with a different summation order


def _env(devices: int) -> dict:
    env = dict(os.environ)
    # appended: tests/conftest.py's compile flags stay
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _result(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, stdout[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.fixture(scope="module")
def four():
    proc = subprocess.run([sys.executable, os.path.join(HERE, "four_devices.py")], env=_env(4), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _result(proc.stdout)


def test_four_devices_are_simulated(four):
    assert four["device_count"] == 4 and four["mesh_size"] == 4


def test_bn_sharded_marginals_and_log_evidence_equal_single_device(four):
    for key in ("bn_marginals_diff", "bn_marginals_big_cpt_diff", "bn_log_evidence_padded_diff",
                "bn_log_evidence_chunked_diff", "sharded_sum_diff", "learn_counts_diff"):
        assert four[key] <= F32, (key, four[key])
    assert four["bn_cpt_grad_big_cpt_rel_diff"] <= 1e-5, four["bn_cpt_grad_big_cpt_rel_diff"]
    assert four["bn_log_evidence_rows"] == four["bn_log_evidence_chunked_rows"] == 10  # padding removed


def test_outputs_are_sharded_over_the_batch_and_sums_replicated(four):
    for key, rows in (("bn_marginals_sharding", 8), ("smoother_sharding", 8)):
        facts = four[key]
        assert facts["spec"] == "P('batch',)" and facts["devices"] == 4 and not facts["replicated"], facts
        assert facts["rows"] == rows and facts["shard_rows"] == [rows // 4], facts
    for key in ("sharded_sum_sharding", "em_step_params_sharding", "train_params_sharding", "learn_counts_sharding"):
        assert four[key]["replicated"] and four[key]["devices"] == 4, (key, four[key])


def test_loops_from_constants_and_gradients_of_replicated_parameters_stay_per_set(four):
    for key in ("bn_mpe_program_diff", "bn_sample_diff", "bn_likelihood_weighting_diff", "dbn_expected_counts_diff",
                "learn_expected_counts_shard_map_diff"):
        assert four[key] <= F32, (key, four[key])


def test_temporal_smoother_and_em_equal_single_device(four):
    assert four["smoother_diff"] <= F32
    for name in ("masked", "unmasked"):
        assert four[f"em_step_{name}_params_diff"] <= F32, name
        assert four[f"em_step_{name}_rel_loglik_diff"] <= F32, name
        assert four[f"em_step_{name}_log_prior_diff"] <= F32, name
    assert four["em_fit_diff"] <= F32 and four["em_fit_history_rel_diff"] <= F32
    assert four["em_step_hlo_all_reduce"], "the sharded E-step should sum counts with an all-reduce"


def test_loops_run_inside_shard_map_and_equal_single_device(four):
    # before gm.loops these (and vae.iwae_bound) raised a carry-type TypeError inside shard_map
    for name in ("filter", "smoother", "expected_counts", "viterbi", "sample_posterior", "posterior"):
        assert four[f"shard_map_{name}_diff"] <= F32, (name, four[f"shard_map_{name}_diff"])
    for name in ("factorial", "zipper"):
        assert four[f"sharded_dbn_{name}_diff"] <= F32, (name, four[f"sharded_dbn_{name}_diff"])
    assert four["shard_map_iwae_diff"] <= 1e-4  # a sum of log-weights over the image's pixels


def test_data_parallel_training_step_equals_single_device_step(four):
    assert four["train_params_moved"] > 100 * F32  # three steps really changed the parameters
    assert four["train_params_diff"] <= F32 * max(1.0, four["train_params_scale"])
    assert four["train_metrics_diff"] <= 1e-4  # batch-mean losses in nats (~50), float32
    assert four["train_step_count"] == 3
    assert four["train_bad_batch_raises"]
    assert four["gan_step_is_data_parallel"] and four["gan_params_moved"] > 100 * F32
    assert four["gan_params_diff"] <= 10 * F32, four["gan_params_diff"]  # Adam steps of size ~lr
    assert four["vae_mnist_step_is_data_parallel"]


# ------------------------------------------------------------------------------------ multi-host


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(extra=()):
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "multihost.py"), "--coordinator",
                               f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i), *extra],
                              env=_env(2), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=240)
            assert p.returncode == 0, stderr[-3000:]
            outs.append(_result(stdout))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return outs


def _check_against_one_process(outs, *, training=False):
    sys.path.insert(0, HERE)
    try:
        import multihost
    finally:
        sys.path.remove(HERE)
    # the same functions on one device of this process
    ref, _ = multihost.compute(multihost.parallel.batch_mesh(jax.devices()[:1]), training=training)
    for i, out in enumerate(outs):
        assert out["process_index"] == i and out["process_count"] == 2 and out["distributed"]
        assert out["device_count"] == 4 and out["local_device_count"] == 2 and out["mesh_size"] == 4
        assert out["marginals_spec"] == "P('batch',)" and out["marginals_devices"] == 4
        assert out["marginals_addressable_shards"] == 2  # each process holds its half
        assert set(out["values"]) == set(ref)
        for key, value in ref.items():
            got = out["values"][key]
            if isinstance(value, dict):
                for name, arr in value.items():
                    np.testing.assert_allclose(got[name], arr, atol=F32, err_msg=f"{key}[{name}]")
            else:
                np.testing.assert_allclose(got, value, atol=F32, rtol=F32, err_msg=key)


def test_two_processes_give_the_single_process_answer():
    _check_against_one_process(_two_processes())


@pytest.mark.slow
def test_two_processes_data_parallel_training_gives_the_single_process_parameters():
    _check_against_one_process(_two_processes(["--training"]), training=True)


def test_distributed_args_and_validation():
    from gm import parallel

    parser = parallel.add_distributed_args(argparse.ArgumentParser())
    args = parser.parse_args([])
    assert parallel.initialize_from_args(args) is False  # single process: no-op
    args = parser.parse_args(["--coordinator", "127.0.0.1:1234", "--num-processes", "2", "--process-id", "2"])
    with pytest.raises(ValueError, match="process-id"):
        parallel.initialize_from_args(args)
    with pytest.raises(ValueError, match="coordinator"):
        parallel.initialize_from_args(parser.parse_args(["--num-processes", "2", "--process-id", "1"]))


def test_padding_repeats_the_last_row_and_unpads():
    from gm import parallel

    x = np.arange(10).reshape(5, 2)
    padded, n = parallel.pad_batch({"x": x, "m": np.ones(5, bool)}, 4)
    assert n == 5 and padded["x"].shape == (8, 2)
    np.testing.assert_array_equal(padded["x"][5:], np.repeat(x[-1:], 3, axis=0))
    masks, _ = parallel.pad_batch(np.ones((5, 3), bool), 4, fill=False)
    assert masks[5:].sum() == 0 and masks[:5].all()
    np.testing.assert_array_equal(parallel.unpad(padded, n)["x"], x)
    with pytest.raises(ValueError, match="leading"):
        parallel.pad_batch({"a": np.zeros(3), "b": np.zeros(4)}, 2)
    with pytest.raises(ValueError, match="fill"):
        parallel.pad_batch(np.zeros(3), 2, fill="zeros")


def test_single_device_mesh_paths_run_in_process():
    """The same helpers on this process's first device (whatever the device count)."""
    from gm import parallel

    mesh = parallel.batch_mesh(jax.devices()[:1])
    x = np.arange(6, dtype=np.float32)
    np.testing.assert_allclose(parallel.sharded_map(lambda a, s: a * s, mesh, in_axes=(0, None))(x, 2.0), 2 * x)
    np.testing.assert_allclose(parallel.sharded_sum(lambda a: a**2, mesh)(x), np.sum(x**2))
    with pytest.raises(ValueError, match="in_axes"):
        parallel.sharded_map(lambda a: a, mesh, in_axes=1)(x)
    with pytest.raises(ValueError, match="one-dimensional"):
        parallel.batch_sharding(jax.sharding.Mesh(np.asarray(jax.devices()[:1]).reshape(1, 1), ("a", "b")))
