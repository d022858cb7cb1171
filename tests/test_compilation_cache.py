"""gm.enable_compilation_cache: a second process loads the compiled program from disk."""

import json
import os
import subprocess
import sys

SCRIPT = r"""
import json, sys, time
import gm
import jax, jax.numpy as jnp
from gm import bn
d = gm.enable_compilation_cache(sys.argv[1], min_compile_seconds=0.0)
net = bn.BayesNet.from_dict(states={"A": 2, "B": 3}, parents={"B": ["A"]},
                            cpts={"A": [0.4, 0.6], "B": [[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]})
out = jax.jit(bn.marginals)(net, net.evidence({"B": 1}))
print(json.dumps({"dir": d, "A": [float(v) for v in out["A"]]}))
"""


def _run(cache):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    res = subprocess.run([sys.executable, "-c", SCRIPT, cache], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_second_process_reuses_the_compiled_program(tmp_path):
    cache = str(tmp_path / "xla")
    first = _run(cache)
    assert first["dir"] == cache
    entries = set(os.listdir(cache))
    assert entries, "nothing was written to the compilation cache"
    second = _run(cache)
    assert second["A"] == first["A"]
    assert set(os.listdir(cache)) == entries  # the second process found its program, added nothing new
