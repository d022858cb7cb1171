"""The documentation checks of issue 21: every public name has a docstring, the cheap examples in the
docstrings run (doctest), and the site builds with ``mkdocs build --strict`` (a broken reference, a bad
docstring section or a missing page fails)."""
from __future__ import annotations

import doctest
import importlib
import inspect
import os
import pkgutil
import re
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
        if inspect.ismodule(obj) or not callable(obj):
            continue  # constants and submodules (a submodule's docstring is checked as a module below)
        if not (inspect.getdoc(obj) or "").strip():
            missing.append(f"{module.__name__}.{name}")
    assert not missing, f"{len(missing)} public names without a docstring:\n" + "\n".join(sorted(set(missing)))


def test_every_module_has_a_docstring():
    missing = [info.name for info in pkgutil.walk_packages(gm.__path__, "gm.")
               if not (importlib.import_module(info.name).__doc__ or "").strip()]
    assert not missing, f"modules without a docstring: {missing}"


_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


class NumberChecker(doctest.OutputChecker):
    """doctest's checker, plus pytest's ``NUMBER`` rule: a float written in the expected output matches
    any number that agrees with it to the precision written (``0.3333`` matches float32's ``0.33333334``,
    ``-1.6094`` matches ``-1.6093999``); a float written without decimals (numpy's ``1.``) must equal the
    number up to 1e-6 relative; integers and all other text must match (whitespace normalised)."""

    def check_output(self, want, got, optionflags):
        if super().check_output(want, got, optionflags):
            return True
        wanted, found = _NUMBER.findall(want), _NUMBER.findall(got)
        if len(wanted) != len(found) or "".join(_NUMBER.sub("#", want).split()) != "".join(
                _NUMBER.sub("#", got).split()):
            return False
        for w, g in zip(wanted, found):
            mantissa = w.lower().split("e")[0]
            if "." not in mantissa:
                if w != g:
                    return False
                continue
            exponent = int(w.lower().split("e")[1]) if "e" in w.lower() else 0
            decimals = len(mantissa.split(".")[1])
            # numpy's "1." or "0." states no rounding: it must be that number (up to float32 noise)
            tolerance = 0.5 * 10.0 ** (exponent - decimals) * (1 + 1e-9) if decimals else 1e-6 * max(1.0, abs(float(w)))
            if abs(float(w) - float(g)) > tolerance:
                return False
        return True


@pytest.mark.parametrize("name", DOCTEST_MODULES)
def test_cheap_examples_run(name):
    module = importlib.import_module(name)
    globs = dict(vars(module), jax=jax, jnp=jnp, np=np)
    runner = doctest.DocTestRunner(checker=NumberChecker(), verbose=False,
                                   optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = doctest.DocTestFinder().find(module, name, globs=globs)
    report = []
    for test in tests:
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0, f"{name} has no examples to run"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}:\n" + "".join(report)


@pytest.mark.skipif(shutil.which("mkdocs") is None and importlib.util.find_spec("mkdocs") is None,
                    reason="mkdocs is not installed (pip install -e '.[docs]')")
def test_site_builds_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(ROOT))
    env.pop("GM_DOCS_EXECUTE", None)  # notebooks are executed by tests/notebooks, not here
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").exists()
