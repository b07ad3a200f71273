"""run(): one build, phases and events in order, learning happens, checkpoints, resume, interrupt."""

from __future__ import annotations

import json
import os
import signal
import warnings

import pytest
from stable_baselines3 import DQN

from lib.config import ConfigError
from lib.obs.warn import LIB_DIR as LIB
from lib.obs.warn import capture_warnings, numba_performance_warnings
from lib.rl import protocol
from lib.rl.callbacks import ProgressCallback
from lib.rl.evaluate import evaluate, policy_actor
from lib.rl.train import RunConfig, RunFailed, run
from lib.rl.vecenv import TrafficVecEnv
from lib.runlog.analysis import analyse_path
from lib.runlog.reader import find_log
from lib.runlog.report import render_text
from lib.sim.simulator import Simulator

SMALL = {
    "steps": 300,
    "n_envs": 2,
    "eval_episodes": 2,
    "progress_bar": False,
    "seed": 1,
    "env": {"episode_seconds": 300.0, "backend": "cpu"},
}
CONTROLLERS = {"dqn", "webster", "max_pressure", "actuated", "random"}
PHASES = ["config", "build", "sanity", "train", "eval", "baselines", "save"]


def test_run_start_says_which_backend_auto_chose(tmp_path, pool_events):
    run(RunConfig.from_dict(SMALL, output_dir=str(tmp_path)).replace(**{"env.backend": "auto"}))
    records = pool_events()
    start, build = records[0], pool_events("network_build")[0]
    assert start["params"]["env"]["backend"] == "auto"
    assert start["backend"] == build["backend"] and start["backend"] in ("cpu", "cuda")
    assert (start["device"] == "cpu") == (start["backend"] == "cpu")
    (said,) = pool_events("backend")  # and why: the device, or why CUDA is not used
    assert said["requested"] == "auto" and said["backend"] == start["backend"]
    assert said["device"] == start["device"] and (said["reason"] == "") == (said["backend"] == "cuda")
    end = records[-1]  # the run's kernel launches, per decision step, and their grid sizes
    assert end["decisions"] > 0 and end["launches"] >= end["decisions"] and end["grid_sizes"]
    assert end["launches_per_decision"] == round(end["launches"] / end["decisions"], 2)
    summary = render_text(analyse_path(find_log(tmp_path))).split("== ")[1]
    assert f"kernel launches: {end['launches']} over {end['decisions']} decision steps" in summary


def test_a_300_step_dqn_run_learns_builds_once_and_writes_everything(tmp_path, pool_events):
    result = run(RunConfig(**SMALL, output_dir=str(tmp_path)))
    records = pool_events()
    assert result.status == "ok"
    assert records[0]["event"] == "run_start" and records[-1]["event"] == "run_end"
    assert records[-1]["status"] == "ok"
    assert set(records[0]["versions"]) >= {"python", "numba", "torch", "stable_baselines3", "gymnasium"}
    assert len(pool_events("network_build")) == 1 and result.builds == 1
    assert [r["phase"] for r in pool_events("phase_start")] == PHASES
    assert [r["phase"] for r in pool_events("phase_end")] == PHASES
    assert len(pool_events("sanity")) == 5 and all(r["passed"] for r in pool_events("sanity"))
    assert result.steps == 300 and result.updates >= 1
    assert pool_events("train_progress")[-1]["steps"] == 300
    assert {r["controller"] for r in pool_events("eval_result")} == CONTROLLERS
    for name in ("model.zip", "results.json", "results.md", "training_curve.png", "comparison.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert list((tmp_path / "checkpoints").glob("step_000000300*")), "final checkpoint with replay buffer"
    log = find_log(tmp_path)  # a library run leaves a log fetch_logs.py reads, like a notebook run
    assert log == tmp_path / "events.log"
    analysis = analyse_path(log)
    assert analysis["ending"]["status"] == "completed" and analysis["builds"]["count"] == 1
    assert analysis["events"] == len(records)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["results"]) == CONTROLLERS
    for metrics in saved["results"].values():
        assert metrics["episodes"] == 2
        assert {"mean_delay_s", "throughput_veh", "mean_queue_veh", "mean_reward", "mean_delay_s_std"} <= set(
            metrics
        )
    assert set(saved["relative_change"]) == CONTROLLERS - {"dqn"}  # untuned here: no fixed_time plan
    assert any(r["category"] == "UntunedBaselines" for r in pool_events("warning"))
    n_links = len(saved["link_names"])
    assert (
        len(result.link_metrics["mean_speed_mps"]) == len(result.link_metrics["mean_density_vpm"]) == n_links
    )


def test_resume_continues_from_the_latest_checkpoint(tmp_path, pool_events):
    first = run(
        RunConfig(
            **{**SMALL, "steps": 200}, checkpoint_every=100, keep_checkpoints=2, output_dir=str(tmp_path)
        )
    )
    assert first.steps == 200
    with pytest.raises(RunFailed, match="resume=True"):
        run(RunConfig(**{**SMALL, "steps": 400}, output_dir=str(tmp_path)))
    second = run(
        RunConfig(
            **{**SMALL, "steps": 400},
            checkpoint_every=100,
            keep_checkpoints=2,
            resume=True,
            output_dir=str(tmp_path),
        )
    )
    assert second.status == "ok" and second.steps == 400 and second.updates > first.updates
    train_end = [r for r in pool_events("phase_end") if r["phase"] == "train"][-1]
    assert train_end["resumed_from"].endswith("step_000000200.zip")
    assert pool_events("train_progress")[-1]["steps"] == 400
    assert [p.name for p in sorted((tmp_path / "checkpoints").glob("*.zip"))] == [
        "step_000000300.zip",
        "step_000000400.zip",
    ]


def test_sigterm_saves_a_checkpoint_and_reports_interrupted(tmp_path, pool_events, monkeypatch):
    real_on_step = ProgressCallback._on_step

    def on_step(self):
        if self.model.num_timesteps >= 150:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_on_step(self)

    monkeypatch.setattr(ProgressCallback, "_on_step", on_step)
    previous = signal.getsignal(signal.SIGTERM)
    result = run(RunConfig(**SMALL, output_dir=str(tmp_path)))
    records = pool_events()
    assert signal.getsignal(signal.SIGTERM) is previous
    assert result.status == "interrupted"
    assert records[-1]["event"] == "run_end" and records[-1]["status"] == "interrupted"
    saved = pool_events("checkpoint")
    assert saved and 150 <= saved[-1]["steps"] < 300
    assert os.path.exists(saved[-1]["path"])
    assert pool_events("phase_end")[-1] == {
        **pool_events("phase_end")[-1],
        "phase": "train",
        "status": "interrupted",
    }


def test_a_failed_sanity_check_stops_before_training(tmp_path, pool_events, monkeypatch):
    monkeypatch.setattr(Simulator, "advance", lambda self, seconds: None)
    with pytest.raises(RunFailed, match="state_changes") as failure:
        run(RunConfig(**SMALL, output_dir=str(tmp_path)))
    records = pool_events()
    assert failure.value.result.status == "error"
    assert records[-1]["event"] == "run_end" and records[-1]["status"] == "error"
    assert "state_changes" in records[-1]["error"]
    assert "train" not in [r["phase"] for r in pool_events("phase_start")]


def test_strict_config_names_the_closest_key_and_refuses_a_run_that_cannot_learn():
    with pytest.raises(ConfigError, match="'steps'"):
        RunConfig(stpes=10)
    with pytest.raises(ConfigError, match="'learning_starts'"):
        RunConfig.from_dict({"learning_start": 10})
    with pytest.raises(ConfigError, match="never make a gradient update"):
        RunConfig(steps=100, learning_starts=100)
    with pytest.raises(ConfigError, match="moto_share"):
        RunConfig(env={"moto_share": 2.0})
    with pytest.raises(ConfigError, match="Did you mean 'env.sim.order'"):
        RunConfig.from_dict({"env.sim.ordr": 2})
    with pytest.raises(ConfigError, match="DQN needs a Discrete action space"):
        RunConfig.from_dict({"env.action_mode": "multibinary"})
    assert RunConfig().warmup_steps() < RunConfig().steps


def test_a_tiny_budget_shrinks_the_default_warm_up_with_a_warning(tmp_path, pool_events):
    """`--steps 10` works when learning_starts was left unset; set explicitly, it is still refused."""
    result = run(RunConfig(**{**SMALL, "steps": 10, "eval_episodes": 1}, output_dir=str(tmp_path)))
    assert result.status == "ok" and result.updates > 0
    [shrunk] = [w for w in pool_events("warning") if w["category"] == "learning_starts"]
    assert "shrunk from 100 to 8" in shrunk["message"]
    with pytest.raises(ConfigError, match="learning_starts \\(10\\) >= steps \\(10\\)"):
        RunConfig(steps=10, learning_starts=10)
    with pytest.raises(ConfigError, match="more than steps \\(3\\).*lower train_freq or n_envs"):
        RunConfig(steps=3, n_envs=4)


def test_repeated_warnings_become_one_event_each_plus_a_count(pool_events):
    perf = numba_performance_warnings()
    assert perf, "numba's NumbaPerformanceWarning must be importable"
    with capture_warnings():
        for grid in range(40):
            warnings.warn(
                perf[0](f"Grid size {grid} will likely result in GPU under-utilization"), stacklevel=1
            )
        warnings.warn("something else", UserWarning, stacklevel=1)
        warnings.warn("something else", UserWarning, stacklevel=1)
    records = pool_events("warning")
    first = [r for r in records if not r.get("final")]
    final = {r["category"]: r["count"] for r in records if r.get("final")}
    assert [r["category"] for r in first] == ["NumbaPerformanceWarning", "UserWarning"]
    assert "Grid size 0" in first[0]["message"]
    assert final == {"NumbaPerformanceWarning": 40, "UserWarning": 2}


def test_third_party_deprecations_are_dropped_but_ours_are_reported(pool_events):
    with capture_warnings():
        warnings.warn_explicit("datetime.datetime.utcnow() is deprecated", DeprecationWarning,
                               "/site-packages/jupyter_client/session.py", 1)
        warnings.warn_explicit("old call", DeprecationWarning, str(LIB / "rl" / "env.py"), 1)
        warnings.warn_explicit("not a deprecation", UserWarning, "/site-packages/other.py", 1)
    reported = [(r["category"], r["message"]) for r in pool_events("warning") if not r.get("final")]
    assert reported == [("DeprecationWarning", "old call"), ("UserWarning", "not a deprecation")]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"gradient_steps": 0}, "gradient_steps >= 1"),
        ({"learning_starts": -5}, "learning_starts >= 0"),
        ({"train_freq": 200}, "DQN first trains after no warm-up plus train_freq"),
        ({"train_freq": 200, "learning_starts": 10}, "DQN first trains after learning_starts"),
        ({"exploration_fraction": -1.0}, r"exploration_fraction must be in \[0, 1\]"),
        ({"exploration_final_eps": 2.0}, r"exploration_final_eps must be in \[0, 1\]"),
        ({"algorithm": "ppo", "clip_range": -1.0}, "clip_range > 0"),
        ({"net_arch": (0,)}, "net_arch needs layers"),
        ({"seed": -1}, r"seed must be in 0\.\."),
        ({"seed": 2**32 - 1}, r"seed must be in 0\.\."),
        ({"run_id": "../../etc"}, "run_id names a folder"),
    ],
)
def test_settings_that_would_fail_late_or_never_learn_are_rejected(changes, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(**{**SMALL, **changes})


def test_the_model_kept_is_the_best_on_the_validation_seeds(tmp_path, pool_events, monkeypatch):
    """Validation delays made up to fall then rise: the model of the lowest one is evaluated."""
    scores = iter([50.0, 40.0, 45.0])
    used = []
    monkeypatch.setattr(
        "lib.rl.train.validation_delay", lambda model, env, seeds: used.append(seeds) or next(scores)
    )
    result = run(RunConfig(**SMALL, validation_every=100, baselines=False, output_dir=str(tmp_path)))
    assert protocol.TUNING.holds(used[0]) and len(used[0]) == 5  # validation seeds, never evaluation ones
    checks = pool_events("validation")
    assert [(r["steps"], r["best"]) for r in checks] == [(100, True), (200, True), (300, False)]
    assert result.model_path == tmp_path / "best_model.zip" and result.validation[1] == (200, 40.0)
    best = DQN.load(result.model_path)
    assert best.num_timesteps == 200
    env = TrafficVecEnv(2, RunConfig(**SMALL).env)  # the evaluation episodes: the best model's numbers
    again = evaluate("dqn", policy_actor(best), env, protocol.EVALUATION.start, progress_bar=False)
    env.close()
    assert result.results["dqn"]["mean_delay_s"] == pytest.approx(again.summary()["mean_delay_s"])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["model"].endswith("best_model.zip") and "webster" not in saved["results"]
    assert "baselines" not in [r["phase"] for r in pool_events("phase_start")]
    assert len(pool_events("network_build")) == 1
    with pytest.raises(ConfigError, match="validation_every"):
        RunConfig(**SMALL, validation_every=-1)


def test_gamma_keeps_its_time_horizon_at_any_decision_interval():
    """gamma unset: 0.95 per 15 s of decisions, so 5 s decisions discount 0.95 ** (1/3) each and
    look as far ahead in simulated time; a gamma set is used as given; the model gets it."""
    from lib.rl.train import new_model

    assert RunConfig().discount() == 0.95
    five = RunConfig(**{**SMALL, "env": {**SMALL["env"], "decision_interval": 5.0}})
    assert five.discount() == pytest.approx(0.95 ** (1 / 3)) and round(five.discount(), 3) == 0.983
    assert five.discount() ** 3 == pytest.approx(RunConfig().discount())
    assert five.replace(gamma=0.9).discount() == 0.9
    env = TrafficVecEnv(2, five.env)
    try:
        assert new_model(five, env).gamma == pytest.approx(five.discount())
        assert new_model(five.replace(algorithm="ppo"), env).gamma == pytest.approx(five.discount())
    finally:
        env.close()
    with pytest.raises(ConfigError, match="gamma <= 1"):
        RunConfig(gamma=1.5)
