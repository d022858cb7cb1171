"""Large bundled networks: batched gradient inference runs (no crash) and agrees with pgmpy.

jaxlib 0.10's CPU backend segfaulted in jit(vmap(value_and_grad(...))) on pathfinder (B >= 10) and andes
unless the experimental YNN fusion is off (gm/xla.py). Each case runs in a subprocess so that a crash
fails the test instead of killing pytest. Compiling these networks takes minutes on 2 cores, so they are
marked slow (run with ``pytest -m slow``); experiments/bench_bn.py measures them in full.
"""

import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
import jax, numpy as np
from gm import bn
from gm.data.networks import load_network
from experiments.bench_bn import evidence_sets, time_pgmpy
net = load_network(sys.argv[1])
evs = evidence_sets(net, jax.random.PRNGKey(0), int(sys.argv[2]))
out = jax.jit(jax.vmap(bn.marginals, in_axes=(None, 0)))(net, evs)
ref, _ = time_pgmpy(net, evs, 1)
diff = max(float(np.max(np.abs(np.asarray(out[v][0], np.float64) - p))) for v, p in ref[0].items())
print(json.dumps({"diff": diff, "nan": any(bool(np.isnan(np.asarray(v)).any()) for v in out.values())}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name,batch", [("pathfinder", 16), ("andes", 16)])
def test_batched_marginals_large_network(name, batch):
    pytest.importorskip("pgmpy")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, name, str(batch)], capture_output=True, text=True, env=env, cwd=root)
    assert proc.returncode == 0, f"{name}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not result["nan"]
    assert result["diff"] < 1e-5
