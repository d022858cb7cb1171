"""The documentation checks of issue 21: every public name has a docstring, the cheap examples in the
docstrings run (doctest), and the site builds with ``mkdocs build --strict`` (a broken reference, a bad
docstring section or a missing page fails)."""
from __future__ import annotations

import doctest
import importlib
import inspect
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gm

ROOT = Path(__file__).resolve().parents[2]

# Modules whose docstring examples are self-contained and cheap: doctest runs them all.
DOCTEST_MODULES = ["gm.learn.common", "gm.bn.evidence", "gm.types"]


def _public_names():
    for info in pkgutil.walk_packages(gm.__path__, "gm."):
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            yield module, name, getattr(module, name)


def test_every_exported_name_has_a_docstring():
    missing = []
    for module, name, obj in _public_names():
        if inspect.ismodule(obj) or not callable(obj) or type(obj).__module__ in ("typing", "collections.abc"):
            continue  # constants, type aliases and submodules (a module's docstring is checked below)
        if not (inspect.getdoc(obj) or "").strip():
            missing.append(f"{module.__name__}.{name}")
    assert not missing, f"{len(missing)} public names without a docstring:\n" + "\n".join(sorted(set(missing)))


def test_every_module_has_a_docstring():
    missing = [info.name for info in pkgutil.walk_packages(gm.__path__, "gm.")
               if not (importlib.import_module(info.name).__doc__ or "").strip()]
    assert not missing, f"modules without a docstring: {missing}"


@pytest.mark.parametrize("name", DOCTEST_MODULES)
def test_cheap_examples_run(name):
    module = importlib.import_module(name)
    globs = dict(vars(module), jax=jax, jnp=jnp, np=np)
    result = doctest.testmod(module, globs=globs, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False)
    assert result.attempted > 0, f"{name} has no examples to run"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


@pytest.mark.skipif(shutil.which("mkdocs") is None and importlib.util.find_spec("mkdocs") is None,
                    reason="mkdocs is not installed (pip install -e '.[docs]')")
def test_site_builds_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(ROOT))
    env.pop("GM_DOCS_EXECUTE", None)  # notebooks are executed by tests/notebooks, not here
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").exists()
