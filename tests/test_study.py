"""The whole protocol end to end at a tiny scale: one build, paired tables, nothing re-tuned."""

from __future__ import annotations

import json

import pytest

from lib.rl import study, tuning
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
    head = {"commit": "at start"}  # HEAD moves while a long study runs: record what it loaded
    monkeypatch.setattr(study, "git_commit", lambda: head["commit"])
    evaluate_baselines = study.evaluate_baselines

    def while_head_moves(*args, **kwargs):
        head["commit"] = "moved on"
        return evaluate_baselines(*args, **kwargs)

    monkeypatch.setattr(study, "evaluate_baselines", while_head_moves)
    again = run_study(StudyConfig(**TINY, tune="never", learners=(), output_dir=str(tmp_path / "again")))
    assert json.loads((tmp_path / "tuned.json").read_text()) == tuned_at  # read, not re-tuned
    assert again["protocol"]["commit"] == "at start"


def test_learner_config_per_level_and_across_levels_with_learner_env(tmp_path):
    learner_env = {"observation": "extended", "decision_interval": 5.0}
    base = {**TINY, "levels": (0.6, 1.0, 1.4), "learner_env": learner_env}
    per_level = StudyConfig(**base)
    run = per_level.learner_config("dqn", 3, 1.0, tmp_path)
    assert run.env.demand_scale == 1.0 and run.env.demand_level_range == (1.0, 1.0)
    assert run.env.observation == "extended" and run.env.decision_interval == 5.0
    assert per_level.env.observation == "basic"  # the baselines keep the study's env
    assert per_level.learner_levels() == [0.6, 1.0, 1.4]
    across = StudyConfig(**base, training="across_levels")
    assert across.learner_levels() == [None]
    run = across.learner_config("dqn", 3, None, tmp_path)
    assert run.env.demand_scale == 1.0 and run.env.demand_level_range == (0.6, 1.4)
    assert run.env.randomize_demand and run.env.demand_profile == "random"  # flat and peak
    assert run.env.observation == "extended" and run.output_dir.endswith("dqn-levels0.6-1.4-s3")
    flat = StudyConfig(**{**base, "profiles": ("flat",)}, training="across_levels")
    assert flat.learner_config("dqn", 3, None, tmp_path).env.demand_profile == "flat"
    with pytest.raises(Exception, match="observation"):
        StudyConfig(**{**base, "learner_env": {"observation": "full"}})


def test_an_across_levels_study_trains_one_learner_per_seed_for_every_level(
    tmp_path, monkeypatch, pool_events
):
    monkeypatch.setattr(tuning, "TUNED_PATH", tmp_path / "tuned.json")
    config = StudyConfig(
        **{**TINY, "levels": (0.8, 1.2), "profiles": ("flat",)},
        training="across_levels",
        learner_env={"observation": "extended", "decision_interval": 5.0},
        output_dir=str(tmp_path / "study"),
    )
    payload = run_study(config)
    assert len(pool_events("network_build")) == 1
    assert len(pool_events("run_start")) == 2  # one run per seed, not per level
    models = []
    for cell in payload["levels"]:
        runs = cell["learners"]["dqn"]["runs"]
        assert [r["seed"] for r in runs] == [0, 1] and all(len(r["episodes"]) == 2 for r in runs)
        models.append([r["model"] for r in runs])
    assert models[0] == models[1]  # the same generalist evaluated at both levels
    assert all("levels0.8-1.2" in m for m in models[0])
    progress = pool_events("study_progress")
    assert progress[-1]["done"] == progress[-1]["total"] == 2 * len(tuning.BASELINES) + 2
