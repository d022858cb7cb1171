"""experiments/emotion.py runs end to end with --quick; its simulation and models are sane."""

import json

import numpy as np


def test_emotion_quick(tmp_path):
    from experiments import emotion

    out = emotion.main(["--quick", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "accuracy.png").exists() and (tmp_path / "table.md").exists()
    res = saved["results"]
    assert set(res) == {"baseline", "naive_bayes", "bayes_net", "learned_bn", "dynamic_bn"}
    assert res["bayes_net"]["shd"] == 0 and res["naive_bayes"]["shd"] == 4
    for name in ("naive_bayes", "bayes_net", "learned_bn", "dynamic_bn"):
        r = res[name]
        for what in ("emotion", "valence"):
            lo, hi = r[f"{what}_interval"]
            assert 0.0 <= lo <= hi <= 1.0
        # every learned model beats guessing the majority emotion
        assert r["emotion"] > res["baseline"]["emotion"]
    assert "| Dynamic BN |" in out["table"]


def test_simulation_logs_are_valid_and_emotions_persist():
    from experiments import emotion

    logs = emotion.simulate(np.random.default_rng(0), 50, 30)
    assert logs.shape == (50, 30, 4)
    for col, card in enumerate((2, 2, 6, 7)):
        assert logs[..., col].min() >= 0 and logs[..., col].max() < card
    # survey answers are constant per student; the emotion persists more often than chance
    assert np.all(logs[:, :, :2] == logs[:, :1, :2])
    same = np.mean(logs[:, 1:, 3] == logs[:, :-1, 3])
    assert same > 0.6
