"""The getting-started page is a program: its python code blocks run top to bottom in one namespace,
so a newcomer following the site gets what the page promises (issue 21)."""
from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "getting-started.md"


def test_getting_started_code_runs():
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) >= 5, "the page lost its code"
    namespace: dict = {"__name__": "getting_started"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{PAGE.name}[block {i}]", "exec"), namespace)  # noqa: S102
    # what the page promises
    assert namespace["posts"]["LVFAILURE"].shape == (1000, 2)
    history = namespace["fit"].log_likelihood
    assert float(history[-1]) > float(history[0])
    assert namespace["samples"].shape == (16, 8, 8, 1)
