"""The whole protocol end to end at a tiny scale: one build, paired tables, nothing re-tuned."""

from __future__ import annotations

import json

import pytest

from lib.rl import tuning
from lib.rl.study import StudyConfig, run_study

TINY = {
    "levels": (1.2,),
    "profiles": ("flat", "peak"),
    "episodes": 2,
    "training_seeds": 2,
    "steps": 200,
    "n_envs": 2,
    "validation_every": 100,
    "validation_episodes": 1,
    "tuning_budget": 4,
    "tuning_episodes": 1,
    "env": {"backend": "cpu", "episode_seconds": 120.0},
}


def test_a_tiny_study_runs_the_protocol_on_one_build(tmp_path, monkeypatch, pool_events):
    monkeypatch.setattr(tuning, "TUNED_PATH", tmp_path / "tuned.json")
    with pytest.raises(LookupError, match="--tune"):
        run_study(StudyConfig(**TINY, tune="never", output_dir=str(tmp_path / "refused")))
    payload = run_study(StudyConfig(**TINY, output_dir=str(tmp_path / "study")))
    assert len(pool_events("network_build")) == 1
    assert len(pool_events("validation")) >= 4  # 2 seeds x (100, 200 steps)
    saved = json.loads((tmp_path / "study" / "results.json").read_text())
    assert saved == json.loads(json.dumps(payload))
    assert [(c["level"], c["profile"]) for c in saved["levels"]] == [(1.2, "flat"), (1.2, "peak")]
    for cell in saved["levels"]:
        assert set(cell["summaries"]) == set(tuning.BASELINES)
        learner = cell["learners"]["dqn"]
        assert learner["headline"]["best_classic"] in ("webster", "fixed_time", "max_pressure", "actuated")
        assert learner["headline"]["training_seeds"] == 2 and learner["headline"]["episodes"] == 2
        assert set(learner["vs"]) == set(tuning.BASELINES)
        assert all(run["model"].endswith("best_model.zip") for run in learner["runs"])
    table = (tmp_path / "study" / "results.md").read_text()
    assert "against the best classic controller" in table and "| 1.2 | peak |" in table
    assert "Below the full protocol" in table
    tuned_at = json.loads((tmp_path / "tuned.json").read_text())
    run_study(StudyConfig(**TINY, tune="never", learners=(), output_dir=str(tmp_path / "again")))
    assert json.loads((tmp_path / "tuned.json").read_text()) == tuned_at  # read, not re-tuned
