"""gm.temporal.associative (passes parallel over time) against the sequential passes; the enumeration
oracle for both is tests/temporal/test_hmm.py::test_every_function_matches_enumeration."""

import jax.numpy as jnp
import numpy as np
import pytest

from gm import temporal as tm
from oracles import random_hmm


@pytest.mark.slow  # 20 to 35 s; the suite must stay under 15 min on 2 cores
def test_associative_matches_sequential_longer():
    rng = np.random.default_rng(2)
    for tv, masked in ((True, True),):  # the unmasked constant-transition case is in the enumeration test
        pi, A, ll = random_hmm(rng, 5, 60, tv)
        mask = jnp.asarray(np.arange(60) < 45)
        for m in [mask] if masked else [None]:
            s, p = tm.smoother(pi, A, ll, mask=m), tm.associative_smoother(pi, A, ll, mask=m)
            np.testing.assert_allclose(p.log_evidence, s.log_evidence, rtol=1e-5)
            np.testing.assert_allclose(p.marginals, s.marginals, atol=1e-5)
            f, pf = tm.filter(pi, A, ll, mask=m), tm.associative_filter(pi, A, ll, mask=m)
            np.testing.assert_allclose(pf.filtered, f.filtered, atol=1e-5)
            np.testing.assert_allclose(pf.log_normalizers, f.log_normalizers, atol=1e-4)
            v, pv = tm.viterbi(pi, A, ll, mask=m), tm.associative_viterbi(pi, A, ll, mask=m)
            np.testing.assert_array_equal(pv.states, v.states)
            np.testing.assert_allclose(pv.log_prob, v.log_prob, rtol=1e-5)
