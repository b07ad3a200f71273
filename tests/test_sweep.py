"""Sweeps (lib/remote/sweep.py): a grid of settings as Kaggle sessions, at most so many at once, or
here with several jobs; every combination and its state in a manifest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lib.remote import sweep as sweep_mod
from lib.remote.bundle import REPO_ROOT, SLUG_PATTERN
from lib.remote.sweep import SweepError

pytest_plugins = ("tests.kaggle_stub",)

SCRIPT = REPO_ROOT / "push_kernel.py"
FETCH = REPO_ROOT / "fetch_logs.py"


def fetch_cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**env, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, str(FETCH), *args, "--runs-dir", str(cwd / "runs")], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def push_cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**env, "PYTHONPATH": str(REPO_ROOT)}
    # --allow-dirty: lib/ may have uncommitted changes while one works (tests/test_faults.py checks
    # the refusal of a dirty lib/).
    folders = ["--runs-dir", str(cwd / "runs"), "--build-dir", str(cwd / "build"), "--allow-dirty"]
    return subprocess.run([sys.executable, str(SCRIPT), *args, *folders], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def manifest(cwd: Path) -> dict:
    [path] = (cwd / "runs" / "sweeps").glob("*/manifest.json")
    return json.loads(path.read_text())


def test_grid_values_are_typed_like_options_and_bad_ones_named() -> None:
    grid = sweep_mod.parse_grid(["seed=0,1,2", "env.demand-scale=0.6,1.4", "env.reward=delay,queue",
                                 "env.demand_level_range=[0.9,1.1],[1,1]"])
    assert grid == {"seed": [0, 1, 2], "env.demand_scale": [0.6, 1.4], "env.reward": ["delay", "queue"],
                    "env.demand_level_range": [(0.9, 1.1), (1, 1)]}
    with pytest.raises(SweepError, match="Did you mean 'env.sim.order'"):
        sweep_mod.parse_grid(["env.sim.ordr=1,2"])
    with pytest.raises(SweepError, match="NAME=V1,V2"):
        sweep_mod.parse_grid(["seed"])
    with pytest.raises(SweepError, match="twice"):
        sweep_mod.parse_grid(["seed=1", "seed=2"])


def test_a_plan_names_each_run_and_continues_only_the_same_sweep(tmp_path: Path) -> None:
    grid = sweep_mod.parse_grid(["seed=0,1,2", "env.demand_scale=0.6,1.0"])
    plan = sweep_mod.plan(tmp_path, grid, {"steps": 500}, "kaggle")
    slugs = [c.slug for c in plan.combinations]
    assert len(slugs) == 6 == len(set(slugs)) and all(SLUG_PATTERN.match(s) for s in slugs)
    assert plan.combinations[4].values == {"seed": 2, "env.demand_scale": 0.6}
    assert plan.settings_of(plan.combinations[4]) == {"steps": 500, "seed": 2, "env.demand_scale": 0.6,
                                                       "run_id": slugs[4]}
    plan.combinations[0].state = "complete"
    plan.save()
    again = sweep_mod.plan(tmp_path, grid, {"steps": 500}, "kaggle")
    assert again.name == plan.name and again.combinations[0].state == "complete"
    with pytest.raises(SweepError, match="exists with other settings"):
        sweep_mod.plan(tmp_path, grid, {"steps": 600}, "kaggle", name=plan.name)
    with pytest.raises(SweepError, match="runs on kaggle, not local"):
        sweep_mod.plan(tmp_path, grid, {"steps": 500}, "local")
    assert sweep_mod.default_name(grid, {"steps": 600}) != plan.name


def test_kaggle_sweep_pushes_up_to_the_limit_then_the_next_ones(kaggle_stub, tmp_path: Path) -> None:
    env = kaggle_stub.client_env(tmp_path / "home", credentials="key")
    kaggle_stub.default_statuses = ["RUNNING"]
    args = ["--target", "kaggle", "--sweep", "seed=0,1,2", "--steps", "64", "--max-concurrent", "2",
            "--sweep-name", "seeds"]
    done = push_cli(args, tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "3 runs (3 of seed) on kaggle" in done.stdout and "session hours" in done.stdout
    pushed = [c.body["slug"] for c in kaggle_stub.calls("SaveKernel")]
    assert pushed == ["stubuser/seeds-00", "stubuser/seeds-01"]
    assert [c["state"] for c in manifest(tmp_path)["combinations"]] == ["queued", "queued", "pending"]
    done = push_cli(args, tmp_path, env)  # both still running: nothing more is pushed
    assert len(kaggle_stub.calls("SaveKernel")) == 2
    assert [c["state"] for c in manifest(tmp_path)["combinations"]] == ["running", "running", "pending"]
    for ref in ("stubuser/seeds-00", "stubuser/seeds-01"):
        kaggle_stub.kernels[ref].statuses = ["COMPLETE"]
    done = push_cli(args, tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert [c.body["slug"] for c in kaggle_stub.calls("SaveKernel")][-1] == "stubuser/seeds-02"
    assert [c["state"] for c in manifest(tmp_path)["combinations"]] == ["complete", "complete", "queued"]
    injected = kaggle_stub.calls("SaveKernel")[-1].body["text"]
    assert '"seed": 2' in injected and '"run_id": "seeds-02"' in injected
    kaggle_stub.kernels["stubuser/seeds-02"].statuses = ["ERROR"]
    for ref, kernel in kaggle_stub.kernels.items():
        kernel.outputs = {"run.log": b"[]", "note.txt": ref.encode()}
    done = fetch_cli(["--sweep", "seeds"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    combos = manifest(tmp_path)["combinations"]
    assert [c["state"] for c in combos] == ["complete", "complete", "error"]
    for c in combos:  # every ended run downloaded into the sweep's folder, once
        assert (Path(c["folder"]) / "note.txt").read_text() == f"stubuser/{c['slug']}"
    assert "No run of this sweep has results yet" in done.stdout and "1 error" in done.stdout
    downloads = len(kaggle_stub.calls("download"))
    assert fetch_cli(["--sweep", "seeds"], tmp_path, env).returncode == 0
    assert len(kaggle_stub.calls("download")) == downloads


def test_a_sweep_refuses_a_run_id_and_a_bad_value_before_pushing(kaggle_stub, tmp_path: Path) -> None:
    env = kaggle_stub.client_env(tmp_path / "home", credentials="key")
    done = push_cli(["--target", "kaggle", "--sweep", "seed=0,1", "--run-id", "x"], tmp_path, env)
    assert done.returncode == 2 and "leave --run-id out" in done.stderr
    done = push_cli(["--target", "kaggle", "--sweep", "n_envs=2,0"], tmp_path, env)
    assert done.returncode == 2 and "n_envs must be >= 1" in done.stderr  # a usage error
    assert kaggle_stub.requests == []


@pytest.mark.slow
def test_local_sweep_runs_every_combination_here_with_jobs(kaggle_stub, tmp_path: Path) -> None:
    env = kaggle_stub.client_env(tmp_path / "home", credentials=None)
    done = push_cli(["--target", "local", "--sweep", "seed=0,1", "--jobs", "2", "--steps", "16",
                     "--n-envs", "2", "--eval-episodes", "1", "--env.episode-seconds", "60",
                     "--sweep-name", "tiny"], tmp_path, env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    combos = manifest(tmp_path)["combinations"]
    assert [c["state"] for c in combos] == ["complete", "complete"]
    for c in combos:
        results = json.loads((Path(c["folder"]) / "results.json").read_text())
        assert results["config"]["seed"] == c["values"]["seed"] and results["run_id"] == c["slug"]
    done = fetch_cli(["--sweep", "tiny"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "runs" / "sweeps" / "tiny"
    aggregated = json.loads((folder / "sweep_results.json").read_text())
    [level] = aggregated["levels"].values()
    assert level["runs"] == 2 and level["controllers"]["dqn"]["runs"] == 2
    assert level["controllers"]["webster"]["runs"] == 1  # baselines once per level
    head = level["comparison"]["headline"]
    assert head["training_seeds"] == 2 and head["best_classic"] in ("webster", "fixed_time", "max_pressure",
                                                                     "actuated")
    assert "| all runs | 2 |" in (folder / "sweep_results.md").read_text()
    assert (folder / "sweep_mean_delay_s.png").is_file()
    assert kaggle_stub.requests == []
