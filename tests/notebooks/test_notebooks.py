"""Every notebook in notebooks/ executes from top to bottom at its quick size.

Each notebook is a jupytext percent-format ``.py`` file: jupytext reads it into an nbformat notebook,
nbclient runs it on a ``python3`` kernel (jupyter_client starts it with this interpreter, so the current
virtual environment) whose working directory is notebooks/, and any cell that raises fails the test
with the cell's traceback. The kernel inherits this process's environment: ``GM_NOTEBOOK_QUICK=1``
(the notebooks' small sizes), ``PYTHONPATH`` with the checkout first, the XLA settings and the JAX
compilation cache of tests/conftest.py. Figures go to the inline backend, as in Jupyter.

The deep-model notebooks (04-06) train networks, 02 runs NUTS and 03 fits HMMs (20 s): they run in the slow
tier (``pytest -m slow``); 01 runs in the default tier.
"""

from __future__ import annotations

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SLOW = {"02_learning.py", "03_hmms.py", "04_autoencoders.py", "05_gans.py", "06_translation.py"}  # 02: NUTS, 20-50 s; 03: 20 s
TIMEOUT_PER_CELL = 600


def notebook_params():
    """One parameter per notebook, the deep-model ones marked slow."""
    return [pytest.param(path, id=path.stem, marks=[pytest.mark.slow] if path.name in SLOW else [])
            for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))]


@pytest.mark.parametrize("path", notebook_params())
def test_notebook_executes(path, monkeypatch):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("GM_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    notebook = jupytext.read(path)
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=TIMEOUT_PER_CELL,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    errors = [out for cell in notebook.cells if cell.cell_type == "code"
              for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors, errors


def test_every_notebook_is_collected():
    """The six lecture parts are all here (a renamed file would otherwise drop out silently)."""
    names = [p.values[0].name for p in notebook_params()]
    assert len(names) == 6, names
