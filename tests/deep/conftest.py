import jax
import pytest


@pytest.fixture(autouse=True)
def _no_x64_leak():
    """Deep-model tests run in float32 like the library; a float64 oracle converts with numpy."""
    assert not jax.config.jax_enable_x64
    yield
