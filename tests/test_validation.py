"""gm.validation: `require` raises eagerly at the first failing position, is a no-op when traced, and
`checked` turns it into a compiled check."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm.validation import checked, checks_enabled, is_concrete, require


def positive(x):
    require(x > 0, lambda at: f"x[{at[0]}] = {float(x[at[0]])} is not positive" if at else "x must be positive")
    return jnp.log(x)


def test_eager_names_the_first_position():
    with pytest.raises(ValueError, match=r"x\[2\] = -1.0 is not positive"):
        positive(np.array([1.0, 2.0, -1.0, -3.0]))


def test_traced_is_unchecked_and_checked_raises():
    x = jnp.array([1.0, -1.0])
    out = jax.jit(positive)(x)  # the fast path: no check, the documented marker (NaN here)
    assert np.isnan(np.asarray(out)[1])
    with pytest.raises(ValueError, match="x must be positive"):
        checked(positive)(x)
    np.testing.assert_allclose(checked(positive)(jnp.array([1.0, np.e])), [0.0, 1.0], atol=1e-6)


def test_flags():
    assert is_concrete(np.ones(2), {"a": jnp.ones(2)})
    assert not checks_enabled()
    seen = []
    jax.jit(lambda x: (seen.append(is_concrete(x)), x)[1])(jnp.ones(2))
    assert seen == [False]
