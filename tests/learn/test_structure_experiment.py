"""experiments/structure.py runs end to end with --quick and its bookkeeping is sane."""

import json

import pytest


@pytest.mark.slow  # 15 s smoke run of experiments/structure.py (every search is tested in its own module)
def test_structure_quick(tmp_path):
    from experiments import structure

    out = structure.main(["--quick", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "shd.png").exists() and (tmp_path / "table.md").exists()
    methods = {r["method"] for r in saved["rows"]}
    assert set(structure.GM_METHODS) | set(structure.PGMPY_METHODS) == methods
    rows = {r["method"]: r for r in saved["rows"]}
    # exact search is optimal for BIC: no other BIC search scores higher
    for m in ("hc-bic", "hc-bic-r", "pgmpy-hc-bic", "chow-liu", "pc-chi2"):
        assert rows[m]["score_minus_true"] <= rows["exact-bic"]["score_minus_true"] + 1e-2
    assert rows["hc-bic-r"]["score_minus_true"] >= rows["hc-bic"]["score_minus_true"] - 1e-6
    assert {u["method"] for u in out["speedups"]} == {"hc-bic", "hc-bdeu", "hc-bic-g", "hc-bdeu-g", "hc-bic-r", "hc-bdeu-r",
                                                  "pc-chi2"}
