"""The translation steps data-parallel over 4 simulated devices equal the single-device steps (slow).

JAX fixes its device count when its backend starts, so the check runs in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``; it prints one JSON line, the assertions are here.
The reference is the same step on one device in that subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
F32 = 1e-5  # float32 rounding with a different summation order

SCRIPT = r'''
import json
import jax, jax.numpy as jnp, numpy as np
from gm import parallel
from gm.deep import translate_cyclegan, translate_paired

def max_diff(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) for x, y in zip(la, lb))

rng = np.random.default_rng(0)
x = jnp.asarray(rng.uniform(size=(16, 8, 8, 1)), jnp.float32)
y = jnp.asarray(rng.uniform(size=(16, 8, 8, 3)), jnp.float32)
out = {"devices": jax.device_count()}
config = translate_paired.TranslationConfig(model="bicyclegan", image_size=8, latent_dim=3,
                                            generator_features=(4, 8), encoder_features=(4,),
                                            discriminator_features=(4,))
state0 = translate_paired.create_state(jax.random.key(0), config, {"input": x, "target": y})
step = parallel.data_parallel_over_devices(translate_paired.train_step, 16, batch_argnums=3)
single, sharded = state0, state0
for i in range(2):
    batch = {"input": x[::-1] if i else x, "target": y[::-1] if i else y}
    key = jax.random.key(10 + i)
    single, _ = translate_paired.train_step(key, config, single, batch)
    sharded, _ = step(key, config, sharded, batch)
out["paired_is_data_parallel"] = step is not translate_paired.train_step
out["paired_diff"] = max_diff(sharded, single)
out["paired_moved"] = max_diff(single, state0)
cyc = translate_cyclegan.CycleGANConfig(image_size=8, generator_features=(4, 8), discriminator_features=(4,))
ub = {"a": x, "b": y[..., :1]}
c0 = translate_cyclegan.create_state(jax.random.key(1), cyc, ub)
cstep = parallel.data_parallel_over_devices(translate_cyclegan.train_step, 16, batch_argnums=2)
c_single, c_sharded = c0, c0
for i in range(2):
    c_single, _ = translate_cyclegan.train_step(cyc, c_single, ub)
    c_sharded, _ = cstep(cyc, c_sharded, ub)
out["cycle_diff"] = max_diff(c_sharded, c_single)
out["cycle_moved"] = max_diff(c_single, c0)
print("RESULT " + json.dumps(out))
'''


@pytest.mark.slow
def test_translation_steps_on_four_devices_equal_one_device():
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4".strip()
    env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert out["devices"] == 4 and out["paired_is_data_parallel"]
    for name in ("paired", "cycle"):
        assert out[f"{name}_moved"] > 100 * F32, out
        assert out[f"{name}_diff"] <= 10 * F32, out  # Adam steps of size ~lr, as for the GAN step
