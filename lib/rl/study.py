"""The whole protocol of issue 12 from one call: tuned baselines and learners on the same episodes
of every demand level and profile, paired statistics, results.json and results.md.

    run_study(StudyConfig(levels=(1.0,), episodes=4, training_seeds=3, steps=2_000))

Order of work: the tuned baselines of this simulator version are loaded (or tuned once when
`tune` allows it); per level and profile every classic controller runs on the evaluation
episodes at its own control step; per level and learner each training seed trains one run
(lib.rl.train.run, the model kept being the best on the validation seeds) which then runs on
the same evaluation episodes of every profile. `study_progress` events report what is done and
an estimate of the time left.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from stable_baselines3 import DQN, PPO

from lib.config import ConfigError, strict_config
from lib.obs.events import emit, jsonable
from lib.obs.provenance import git_commit
from lib.rl import protocol, tuning
from lib.rl.controllers import critical_flow_ratios
from lib.rl.env import EnvConfig
from lib.rl.evaluate import METRICS, Evaluation, evaluate, evaluate_controllers, policy_actor
from lib.rl.protocol import pct
from lib.rl.train import RunConfig, run
from lib.rl.vecenv import TrafficVecEnv

TABLE_METRICS = ("mean_delay_s", "throughput_veh", "mean_entry_queue_veh", "max_entry_queue_veh", "switches")


@strict_config
class StudyConfig:
    """Every setting of a study; defaults are the full protocol (docs/RESULTS.md, "Protocol")."""

    levels: tuple[float, ...] = protocol.LEVELS
    profiles: tuple[str, ...] = protocol.PROFILES
    episodes: int = 30  # evaluation episodes per level and profile, the same for every controller
    learners: tuple[str, ...] = ("dqn",)
    training_seeds: int = 5  # per learner and level (>= 3; 5 for the headline)
    steps: int = 100_000
    n_envs: int = 8
    validation_every: int = 10_000
    validation_episodes: int = 10
    tune: Literal["missing", "always", "never"] = "missing"
    tuning_budget: int = tuning.DEFAULT_BUDGET
    tuning_episodes: int = tuning.DEFAULT_TUNING_EPISODES
    env: EnvConfig = EnvConfig(backend="cpu")  # the episodes; levels and profiles set its demand
    output_dir: str = "runs/experiment"
    run_options: dict | None = None  # further RunConfig fields for every learner run
    # EnvConfig fields for the learners only (training, validation and their evaluation): the
    # observation, decision interval and reward; the baselines keep `env` (docs/training.md)
    learner_env: dict | None = None
    # "per_level": one learner per seed and level, trained at that level; "across_levels": one
    # learner per seed trained on episodes of level ~ U[min level, max level] and every profile
    # asked, evaluated at every level (a generalist, len(levels) times cheaper)
    training: Literal["per_level", "across_levels"] = "per_level"

    def validate(self) -> None:
        for level in self.levels:
            for profile in self.profiles:
                protocol.check_level(level, profile)
        if not self.levels or not self.profiles:
            raise ConfigError("StudyConfig needs at least one level and one profile.")
        for name in ("episodes", "training_seeds", "validation_episodes", "tuning_episodes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"StudyConfig.{name} must be >= 1, got {getattr(self, name)!r}.")
        unknown = sorted(set(self.learners) - {"dqn", "ppo"})
        if unknown:
            raise ConfigError(f"StudyConfig.learners must be among dqn, ppo; got {unknown}.")
        self.learner_base()  # EnvConfig's checks of learner_env
        level = None if self.training == "across_levels" else self.levels[0]
        self.learner_config("dqn", 0, level, Path("."))  # RunConfig's own checks, before any work

    def learner_base(self) -> EnvConfig:
        """The learners' EnvConfig: `env` with `learner_env` applied (same demand, own observation,
        decision interval and reward)."""
        return self.env.replace(**(self.learner_env or {}))

    def learner_levels(self) -> list[float | None]:
        """The training levels of one learner seed: each level, or None (across all levels)."""
        return [None] if self.training == "across_levels" else list(self.levels)

    def learner_config(self, algorithm: str, seed: int, level: float | None, out: Path) -> RunConfig:
        """One learner run, best on validation: trained at `level` (flat and peak episodes), or
        with level None across the study's levels (level ~ U[min, max], every profile asked)."""
        base = self.learner_base()
        if level is None:
            profile = self.profiles[0] if len(self.profiles) == 1 else "random"
            low, high = min(self.levels), max(self.levels)
            env = base.replace(
                demand_scale=1.0, demand_level_range=(low, high), randomize_demand=True,
                demand_profile=profile,
            )
            name = f"{algorithm}-levels{low:g}-{high:g}-s{seed}"
        else:
            env = base.replace(demand_scale=level, demand_level_range=(1.0, 1.0))
            name = f"{algorithm}-level{level:g}-s{seed}"
        return RunConfig(
            **{"steps": self.steps, "n_envs": self.n_envs, "eval_episodes": 1, **(self.run_options or {})},
            algorithm=algorithm,
            seed=seed,
            env=env,
            validation_every=self.validation_every,
            validation_episodes=self.validation_episodes,
            baselines=False,
            progress_bar=False,
            output_dir=str(out / name),
        )


class Progress:
    """`study_progress` events: units done of the total and the time left, estimated per kind of
    unit (baseline evaluations, learner runs) from those already done."""

    def __init__(self, totals: dict[str, int]) -> None:
        self.totals, self.done = totals, dict.fromkeys(totals, 0)
        self.seconds = dict.fromkeys(totals, 0.0)
        self.started = time.monotonic()

    def finished(self, kind: str, seconds: float, what: str) -> None:
        self.done[kind] += 1
        self.seconds[kind] += seconds
        left = 0.0
        for k, total in self.totals.items():
            mean = self.seconds[k] / self.done[k] if self.done[k] else None
            left += (total - self.done[k]) * (mean if mean is not None else 0.0)
        unknown = [k for k in self.totals if not self.done[k] and self.totals[k]]
        emit(
            "study_progress",
            what=what,
            done=sum(self.done.values()),
            total=sum(self.totals.values()),
            elapsed_s=round(time.monotonic() - self.started, 1),
            eta_s=round(left, 1),
            eta_excludes=unknown,
        )


def run_study(config: StudyConfig) -> dict[str, Any]:
    """Run the protocol as `config` says; write results.json and results.md; return the payload."""
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    protocol.check_disjoint()
    commit = git_commit()  # the code this process loaded: HEAD may move during an hour-long study
    base = config.env
    network = TrafficVecEnv(1, base).network  # leases the one pooled build
    entry = tuned_entry(config, base, network)
    eval_seeds = protocol.EVALUATION.take(config.episodes)
    n_cells = len(config.levels) * len(config.profiles)
    progress = Progress(
        {
            "baseline": n_cells * len(tuning.BASELINES),
            "learner": len(config.learners) * config.training_seeds * len(config.learner_levels()),
        }
    )
    cells = {}
    for level in config.levels:
        for profile in config.profiles:
            cells[(level, profile)] = evaluate_baselines(
                config, base, network, entry, level, profile, eval_seeds, progress
            )
    for train_level in config.learner_levels():
        for learner in config.learners:
            for seed in protocol.TRAINING.take(config.training_seeds):
                evaluate_learner(config, learner, seed, train_level, cells, eval_seeds, out, progress)
    payload = {
        "protocol": protocol_record(config, entry, eval_seeds, commit),
        "levels": [finish_cell(cell, config.learners) for cell in cells.values()],
    }
    (out / "results.json").write_text(json.dumps(jsonable(payload), indent=1, allow_nan=False))
    (out / "results.md").write_text(study_markdown(payload))
    return payload


def tuned_entry(config: StudyConfig, base: EnvConfig, network: Any) -> dict[str, Any]:
    """The stored tuning of this simulator version; the levels it lacks (all of them with
    tune="always") are tuned now, unless tune="never", which raises instead."""
    cells = [(lv, p) for lv in config.levels for p in config.profiles]
    try:
        entry = tuning.load_tuned(base)
        stored = set() if config.tune == "always" else set(entry["levels"])
    except LookupError:
        if config.tune == "never":
            raise
        stored = set()
    missing = [c for c in cells if tuning.level_key(*c) not in stored]
    if missing and config.tune == "never":
        raise LookupError(f"levels {missing} were not tuned for this simulator; run with --tune")
    if missing:
        tuning.save_tuned(
            tuning.tune_all(base, network, missing, config.tuning_budget, config.tuning_episodes)
        )
    return tuning.load_tuned(base)


def evaluate_baselines(
    config: StudyConfig,
    base: EnvConfig,
    network: Any,
    entry: dict[str, Any],
    level: float,
    profile: str,
    seeds: list[int],
    progress: Progress,
) -> dict[str, Any]:
    """Every tuned classic controller of one level and profile on the evaluation episodes, all of
    them x all episodes as one batch (evaluate_controllers: the same episodes as one at a time,
    about 1.9x faster); each controller is reported with its share of the batch's time."""
    env_config = protocol.level_config(base, level, profile)
    model = entry["signal_model"]
    y = critical_flow_ratios(
        network, protocol.design_demand(env_config, network), np.array(model["saturation_veh_h"])
    ).sum(axis=1)
    cell: dict[str, Any] = {
        "level": level,
        "profile": profile,
        "critical_flow_ratio": y.round(4).tolist(),
        "grid_edges": tuning.grid_edges(tuning.tuned_level(entry, level, profile)),
        "summaries": {},
        "episodes": {},
        "learner_runs": {},
    }
    controllers = tuning.classic_controllers(
        env_config, network, model, tuning.tuned_level(entry, level, profile), seed=seeds[0]
    )
    started = time.monotonic()
    results = evaluate_controllers(controllers, env_config, seeds, sample_s=config.env.decision_interval)
    share = (time.monotonic() - started) / len(results)  # one batch: each its share of the time
    for name, result in results.items():
        cell["summaries"][name] = result.summary()
        cell["episodes"][name] = result.episodes
        progress.finished("baseline", share, f"{name} level {level:g} {profile}")
    return cell


def evaluate_learner(
    config: StudyConfig,
    algorithm: str,
    seed: int,
    level: float | None,
    cells: dict[tuple[float, str], dict[str, Any]],
    seeds: list[int],
    out: Path,
    progress: Progress,
) -> None:
    """Train one learner run at `level` (None: across all levels) and run its best model on the
    episodes of every profile of that level (of every level)."""
    started = time.monotonic()
    result = run(config.learner_config(algorithm, seed, level, out))
    model = (DQN if algorithm == "dqn" else PPO).load(result.model_path, device="cpu")
    base = config.learner_base()
    for level_now, profile in [(lv, p) for lv in ([level] if level is not None else config.levels)
                               for p in config.profiles]:
        env = TrafficVecEnv(len(seeds), protocol.level_config(base, level_now, profile))
        try:
            evaluation = evaluate(
                f"{algorithm}-s{seed}",
                policy_actor(model),
                env,
                seeds,
                progress_bar=False,
            )
        finally:
            env.close()
        runs = cells[(level_now, profile)]["learner_runs"].setdefault(algorithm, [])
        runs.append(
            {
                "seed": seed,
                "episodes": evaluation.episodes,
                "validation": result.validation,
                "model": str(result.model_path),
                "steps": result.steps,
            }
        )
    where = "all levels" if level is None else f"level {level:g}"
    progress.finished("learner", time.monotonic() - started, f"{algorithm} seed {seed} {where}")


def finish_cell(cell: dict[str, Any], learners: tuple[str, ...]) -> dict[str, Any]:
    """The cell's learners: pooled summary, per-seed runs and paired statistics."""
    out = {
        k: cell[k] for k in ("level", "profile", "critical_flow_ratio", "grid_edges", "summaries", "episodes")
    }
    out["y_max"] = max(cell["critical_flow_ratio"])
    out["learners"] = {}
    for name in learners:
        runs = cell["learner_runs"].get(name, [])
        if not runs:
            continue
        pooled = Evaluation(
            name, [ep for r in runs for ep in r["episodes"]], np.zeros(1), np.zeros(1)
        ).summary()
        out["learners"][name] = {
            "summary": pooled,
            "runs": runs,
            **protocol.compare([r["episodes"] for r in runs], cell["episodes"], cell["summaries"]),
        }
    return out


def protocol_record(
    config: StudyConfig, entry: dict[str, Any], eval_seeds: list[int], commit: str
) -> dict[str, Any]:
    return {
        "commit": commit,
        "config": config.to_dict(),
        "sim_version": entry["sim_version"],
        "tuning": {k: entry[k] for k in ("budget", "tuning_seeds", "tuned_at", "signal_model")},
        "seed_sets": {s.name: [s.start, s.stop] for s in protocol.SEED_SETS},
        "evaluation_seeds": eval_seeds,
        "training_seeds": protocol.TRAINING.take(config.training_seeds),
        "metrics": list(METRICS),
    }


# --------------------------------------------------------------------------- tables


FULL_EPISODES, FULL_SEEDS = 30, 5  # the protocol's evaluation episodes and headline training seeds


def scale_note(episodes: int, seeds: int) -> str:
    """What the tables are worth: the full protocol, or a check of the pipeline."""
    if episodes >= FULL_EPISODES and seeds >= FULL_SEEDS:
        return f"Full protocol: {episodes} evaluation episodes per level and profile, {seeds} training seeds."
    return (
        f"**Below the full protocol** ({episodes} evaluation episodes, {seeds} training seeds; the protocol "
        f"asks {FULL_EPISODES} and {FULL_SEEDS}): a check of the pipeline, not a result."
    )


def study_markdown(payload: dict[str, Any]) -> str:
    """Headline table (each learner vs the best classic controller per level), then per level and
    profile every controller's metrics and each learner's paired comparison with every baseline."""
    config = payload["protocol"]["config"]
    lines = ["# Results", "", scale_note(config["episodes"], config["training_seeds"]), ""]
    lines += [
        "## Headline: each learner against the best classic controller at that level",
        "",
        "| level | profile | Y (max signal) | learner | best classic | delay change [95 % CI] | win rate | "
        "median ratio | throughput ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for cell in payload["levels"]:
        for name, learner in cell["learners"].items():
            h = learner["headline"]
            lines.append(
                f"| {cell['level']:g} | {cell['profile']} | {cell['y_max']:.2f} | {name} "
                f"({h['training_seeds']} seeds) | {h['best_classic']} | {pct(h['mean_rel_change'])} "
                f"[{pct(h['ci_low'])}, {pct(h['ci_high'])}] | {100 * h['win_rate']:.0f} % | "
                f"{h['median_ratio']:.3f} | {h['throughput_ratio']:.3f} |"
            )
    for cell in payload["levels"]:
        lines += [
            "",
            f"## Level {cell['level']:g}, {cell['profile']} (critical flow ratio Y per signal: "
            f"{', '.join(f'{y:.2f}' for y in cell['critical_flow_ratio'])})",
            "",
            *(
                [f"Tuned at a grid edge (the optimum may lie beyond): {', '.join(cell['grid_edges'])}.", ""]
                if cell["grid_edges"]
                else []
            ),
            "| controller | episodes | mean delay (s/veh) | throughput (veh) | mean entry queue (veh) | "
            "max entry queue (veh) | switches |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        rows = {**cell["summaries"], **{n: lr["summary"] for n, lr in cell["learners"].items()}}
        for name, s in rows.items():
            cells = [f"{s[k]:.1f} ± {s[k + '_std']:.1f}" for k in TABLE_METRICS]
            lines.append(f"| {name} | {int(s['episodes'])} | " + " | ".join(cells) + " |")
        for name, learner in cell["learners"].items():
            lines += ["", *protocol.paired_markdown(name, learner)]
    return "\n".join(lines) + "\n"
