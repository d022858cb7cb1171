"""Issue 18 in gm.parallel: the sharded entry points check their inputs eagerly, as the one-device
functions they map do (inside the sharded map a bad value could only give the marker)."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from gm import bn, parallel
from gm import temporal as tm

NET = bn.BayesNet.from_dict({"Rain": ["no", "yes"], "Wet": ["no", "yes"]}, {"Wet": ["Rain"]},
                            {"Rain": [0.8, 0.2], "Wet": [[0.9, 0.1], [0.2, 0.8]]})
PI = np.array([0.6, 0.4], np.float32)
A = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)
A_BAD = np.array([[0.9, 0.1], [1.2, -0.2]], np.float32)
LL = np.log(np.array([[[0.7, 0.2], [0.1, 0.5], [0.4, 0.4]]], np.float32))
LL_NAN = LL.copy()
LL_NAN[0, 1, 0] = np.nan
FAMILY = tm.Categorical(3)
MODEL = tm.HMM(jnp.asarray(PI), jnp.asarray(A), tm.CategoricalParams(jnp.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])))
OBS = np.array([[0, 2, 1]], np.int32)

BAD = [  # (call, error, message): the first six used to return the marker (zeros, -inf, NaN) with no error
    (lambda: parallel.sharded_marginals(NET, np.array([[-1, 1], [-1, 2]])), ValueError,
     "evidence set 1: evidence 2 for variable 'Wet' is out of range"),
    (lambda: parallel.sharded_log_evidence(NET, np.array([[-2, 1]])), ValueError,
     "evidence set 0: evidence -2 for variable 'Rain'"),
    (lambda: parallel.sharded_smoother(PI, A_BAD, LL), ValueError, r"transition\[1, 1\] = -0.2"),
    (lambda: parallel.sharded_smoother(PI, A, LL_NAN), ValueError, r"log_liks\[0, 1, 0\] = nan"),
    (lambda: parallel.sharded_em_step(FAMILY, MODEL._replace(transition=jnp.asarray(A_BAD)), OBS), ValueError,
     r"model.transition\[1, 1\] = -0.2"),
    (lambda: parallel.sharded_em_step(FAMILY, MODEL._replace(emission=tm.CategoricalParams(
        jnp.array([[1.2, -0.2, 0.0], [0.1, 0.1, 0.8]]))), OBS), ValueError, r"model.emission.probs\[0, 1\] = -0.2"),
    (lambda: parallel.sharded_fit(FAMILY, MODEL, OBS, num_iters=-1), ValueError, "num_iters must be an int >= 0"),
    (lambda: parallel.unpad(np.zeros((3, 2)), -1), ValueError, "size must be an int >= 0"),  # dropped a row
    (lambda: parallel.unpad(np.zeros((3, 2)), 5), ValueError, "size = 5 is above the batch's leading size 3"),
    (lambda: parallel.sharded_marginals(NET, np.array([[-1, 1.0]])), TypeError, "evidence must be an integer"),
    (lambda: parallel.sharded_em_step(FAMILY, MODEL, np.array([[0, 5, 1]], np.int32)), ValueError,
     r"obs\[0, 1\] = 5 is not a symbol"),
    (lambda: parallel.sharded_smoother(PI, A, np.zeros((0, 3, 2), np.float32)), ValueError, "at least one example"),
]


@pytest.mark.parametrize("index", range(len(BAD)))
def test_sharded_entry_points_reject_bad_inputs(index):
    call, error, message = BAD[index]
    with pytest.raises(error, match=message):
        call()


def test_valid_inputs_agree_with_one_device():
    got = parallel.sharded_log_evidence(NET, np.array([[-1, 1], [0, -1]], np.int32))
    np.testing.assert_allclose(got, [np.log(0.8 * 0.1 + 0.2 * 0.8), np.log(0.8)], rtol=1e-5)
    np.testing.assert_allclose(parallel.sharded_smoother(PI, A, LL).log_evidence[0],
                               tm.smoother(PI, A, LL[0]).log_evidence, rtol=1e-5)
