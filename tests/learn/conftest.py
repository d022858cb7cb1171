"""Fixtures shared by the gm.learn tests."""

import jax
import pytest


@pytest.fixture
def x64():
    """Float64 for the duration of one test (the library itself is float32)."""
    with jax.enable_x64(True):
        yield
