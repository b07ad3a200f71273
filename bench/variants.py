"""Learner variants against the tuned classic controllers, measured on the VALIDATION seeds only.

Each named variant (RunConfig and EnvConfig overrides, and per-level or across-levels training)
trains `--seeds` runs of `--steps` steps exactly as the study does (lib.rl.study's
learner_config: pooled envs, the model kept the best on the validation seeds). Its best model
then runs, per level, on `--episodes` validation episodes (lib.rl.protocol's tuning/validation
set, the seeds checkpoint selection uses), and so does every classic controller with the tuned
parameters stored for this simulator (lib.rl.tuning.classic_controllers, each at its own 1 s
control step). The evaluation seeds are never touched: these numbers choose a configuration.

    python bench/variants.py --variants baseline,extended --levels 0.6,1.0,1.4 --seeds 2 \\
        --steps 30000 --output runs/variants

Results accumulate in --output/variants.json (one entry per variant; baselines cached in
baselines.json); the markdown table of every variant stored there is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from stable_baselines3 import DQN, PPO  # noqa: E402

from bench.experiment import floats, names  # noqa: E402
from lib.obs import events  # noqa: E402
from lib.obs.events import jsonable  # noqa: E402
from lib.obs.provenance import git_commit  # noqa: E402
from lib.rl import protocol, tuning  # noqa: E402
from lib.rl.env import EnvConfig  # noqa: E402
from lib.rl.evaluate import evaluate, evaluate_controllers, policy_actor  # noqa: E402
from lib.rl.study import StudyConfig  # noqa: E402
from lib.rl.train import VALIDATION_SKIP, run  # noqa: E402
from lib.rl.vecenv import TrafficVecEnv  # noqa: E402

EXT = {"observation": "extended"}
EXT5 = {"observation": "extended", "decision_interval": 5.0}
# name -> (training, algorithm, learner_env overrides, RunConfig overrides). gamma is left unset:
# RunConfig.discount() keeps 0.95 per 15 s whatever the decision interval.
VARIANTS: dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]] = {
    "baseline": ("per_level", "dqn", {}, {}),
    "extended": ("per_level", "dqn", EXT, {}),
    "extended_5s": ("per_level", "dqn", EXT5, {}),
    "extended_queue": ("per_level", "dqn", {**EXT, "reward": "queue"}, {}),
    "extended_qpressure": ("per_level", "dqn", {**EXT, "reward": "queue_pressure"}, {}),
    "extended_pressure": ("per_level", "dqn", {**EXT, "reward": "pressure"}, {}),
    "extended_qpressure_generalist": ("across_levels", "dqn", {**EXT, "reward": "queue_pressure"}, {}),
    "extended_5s_queue": ("per_level", "dqn", {**EXT5, "reward": "queue"}, {}),
    "extended_5s_qpressure": ("per_level", "dqn", {**EXT5, "reward": "queue_pressure"}, {}),
    "extended_5s_pressure": ("per_level", "dqn", {**EXT5, "reward": "pressure"}, {}),
    "baseline_generalist": ("across_levels", "dqn", {}, {}),
    "extended_generalist": ("across_levels", "dqn", EXT, {}),
    "extended_5s_generalist": ("across_levels", "dqn", EXT5, {}),
    "extended_5s_queue_generalist": ("across_levels", "dqn", {**EXT5, "reward": "queue"}, {}),
    "extended_gs4": ("per_level", "dqn", EXT, {"gradient_steps": 4}),
    "extended_5s_gs4": ("per_level", "dqn", EXT5, {"gradient_steps": 4}),
    "extended_5s_ppo": ("per_level", "ppo", EXT5, {}),
    "extended_ppo": ("per_level", "ppo", EXT, {}),
    "extended_generalist_ppo": ("across_levels", "ppo", EXT, {}),
    # rewards and DQN hyperparameters on the default observation and 15 s decisions
    "baseline_queue": ("per_level", "dqn", {"reward": "queue"}, {}),
    "baseline_qpressure": ("per_level", "dqn", {"reward": "queue_pressure"}, {}),
    "baseline_gamma99": ("per_level", "dqn", {}, {"gamma": 0.99}),
    "baseline_lr1e4": ("per_level", "dqn", {}, {"learning_rate": 1e-4}),
    "baseline_explore": (
        "per_level", "dqn", {}, {"exploration_fraction": 0.5, "exploration_final_eps": 0.01}
    ),
    # a decision every 30 s: no more switches than max-pressure's tuned Delta allows
    "baseline_30s": ("per_level", "dqn", {"decision_interval": 30.0}, {}),
}
SAMPLE_S = 15.0  # entry queue sampled every 15 s for every controller (a multiple of 1, 5 and 15 s)


def sample_for(env: TrafficVecEnv) -> float:
    """The entry-queue sampling interval: SAMPLE_S, or the next multiple of it that the env's
    decision interval divides (30 s decisions sample every 30 s; delay and throughput are not
    sampled, so the table's columns do not depend on it)."""
    interval = env.config.decision_interval
    return SAMPLE_S * math.ceil(interval / SAMPLE_S - 1e-9) if interval > SAMPLE_S else SAMPLE_S


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", type=names, default=("baseline",), help=", ".join(VARIANTS))
    p.add_argument("--levels", type=floats, default=(0.6, 1.0, 1.4))
    p.add_argument("--profile", default="flat", choices=protocol.PROFILES)
    p.add_argument("--seeds", type=int, default=2, help="training seeds per variant (and level)")
    p.add_argument("--steps", type=int, default=30_000)
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--validation-every", type=int, default=5_000)
    p.add_argument("--validation-episodes", type=int, default=4, help="checkpoint selection episodes")
    p.add_argument("--episodes", type=int, default=8, help="validation episodes per level in the table")
    p.add_argument("--target-update-interval", type=int, default=1_000)
    p.add_argument("--output", default="runs/variants")
    p.add_argument("--table-only", action="store_true", help="print the stored table, run nothing")
    return p.parse_args()


def study_for(args: argparse.Namespace, name: str) -> tuple[StudyConfig, str]:
    training, algorithm, learner_env, run_options = VARIANTS[name]
    options = {"torch_threads": 1, **run_options}
    if algorithm == "dqn":
        options.setdefault("target_update_interval", args.target_update_interval)
    config = StudyConfig(
        levels=args.levels,
        profiles=(args.profile,),
        learners=(algorithm,),
        training_seeds=args.seeds,
        steps=args.steps,
        n_envs=args.n_envs,
        validation_every=args.validation_every,
        validation_episodes=args.validation_episodes,
        tune="never",
        env=EnvConfig(backend="cpu"),
        output_dir=str(Path(args.output) / name),
        run_options=options,
        learner_env=learner_env,
        training=training,
    )
    return config, algorithm


def classic_delays(args: argparse.Namespace, base: EnvConfig, seeds: list[int]) -> dict[str, Any]:
    """Every classic controller per level on the validation seeds (cached in baselines.json)."""
    path = Path(args.output) / "baselines.json"
    cache = json.loads(path.read_text()) if path.exists() else {}
    entry = tuning.load_tuned(base)
    network = TrafficVecEnv(1, base).network
    out = {}
    for level in args.levels:
        key = f"{entry['sim_version']}/{tuning.level_key(level, args.profile)}/{seeds[0]}x{len(seeds)}"
        if key not in cache:
            env_config = protocol.level_config(base, level, args.profile)
            controllers = tuning.classic_controllers(
                env_config, network, entry["signal_model"], tuning.tuned_level(entry, level, args.profile),
                seed=seeds[0],
            )
            classic = {n: c for n, c in controllers.items() if n in protocol.CLASSIC}
            evaluations = evaluate_controllers(classic, env_config, seeds, SAMPLE_S)  # one batch
            cache[key] = {name: ev.episodes for name, ev in evaluations.items()}
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(jsonable(cache), indent=1))
        out[f"{level:g}"] = cache[key]
    return out


def run_variant(args: argparse.Namespace, name: str, seeds: list[int]) -> dict[str, Any]:
    """Train the variant's runs and evaluate each best model per level on the validation seeds."""
    config, algorithm = study_for(args, name)
    out = Path(config.output_dir)
    learner_base = config.learner_base()
    per_level: dict[str, list[list[dict[str, float]]]] = {f"{lv:g}": [] for lv in args.levels}
    runs = []
    for train_level in config.learner_levels():
        for seed in protocol.TRAINING.take(config.training_seeds):
            run_config = config.learner_config(algorithm, seed, train_level, out)
            started = time.monotonic()
            result = run(run_config)
            seconds = time.monotonic() - started
            train_s = phase_seconds(Path(run_config.output_dir), "train")
            runs.append({"seed": seed, "train_level": train_level, "steps": result.steps,
                         "run_s": round(seconds, 1), "train_s": train_s,
                         "steps_per_s": round(result.steps / train_s, 1) if train_s else None,
                         "validation": result.validation, "model": str(result.model_path)})
            model = (DQN if algorithm == "dqn" else PPO).load(result.model_path, device="cpu")
            for level in [train_level] if train_level is not None else args.levels:
                env = TrafficVecEnv(len(seeds), protocol.level_config(learner_base, level, args.profile))
                try:
                    actor = policy_actor(model)
                    ev = evaluate(name, actor, env, seeds, progress_bar=False, sample_s=sample_for(env))
                finally:
                    env.close()
                per_level[f"{level:g}"].append(ev.episodes)
    return {"config": {"training": config.training, "algorithm": algorithm,
                       "learner_env": config.learner_env, "run_options": config.run_options,
                       "steps": args.steps, "seeds": args.seeds, "n_envs": args.n_envs,
                       "validation_every": args.validation_every,
                       "validation_episodes": args.validation_episodes},
            "runs": runs, "levels": per_level}


def phase_seconds(folder: Path, phase: str) -> float | None:
    log = folder / "events.log"
    if not log.exists():
        return None
    for line in log.read_text().splitlines():
        text = line.split("[event] ", 1)[-1]
        if '"phase_end"' in text and f'"phase": "{phase}"' in text:
            return float(json.loads(text)["seconds"])
    return None


def table(stored: dict[str, Any], baselines: dict[str, Any]) -> str:
    lines = [
        "| variant | level | best classic (s/veh) | learner (s/veh, per seed) | learner mean | "
        "change vs best [95 % CI] | throughput ratio | steps/s (train) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, result in stored.items():
        speed = [r["steps_per_s"] for r in result["runs"] if r["steps_per_s"]]
        for level, runs in result["levels"].items():
            if level not in baselines or not runs:
                continue
            classic = baselines[level]
            means = {n: np.mean([e["mean_delay_s"] for e in eps]) for n, eps in classic.items()}
            best = min(means, key=means.get)
            best_eps = classic[best]
            delay = np.array([[e["mean_delay_s"] for e in run] for run in runs])
            stats = protocol.paired_statistics(delay, np.array([e["mean_delay_s"] for e in best_eps]))
            thr = np.mean([[e["throughput_veh"] for e in run] for run in runs]) / np.mean(
                [e["throughput_veh"] for e in best_eps]
            )
            seeds = ", ".join(f"{d:.1f}" for d in delay.mean(axis=1))
            lines.append(
                f"| {name} | {level} | {best} {means[best]:.1f} | {seeds} | {delay.mean():.1f} | "
                f"{protocol.pct(stats['mean_rel_change'])} [{protocol.pct(stats['ci_low'])}, "
                f"{protocol.pct(stats['ci_high'])}] | {thr:.3f} | {np.mean(speed):.0f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse()
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    base = EnvConfig(backend="cpu")
    seeds = protocol.TUNING.take(args.episodes, skip=VALIDATION_SKIP)
    store_path = out / "variants.json"
    stored = json.loads(store_path.read_text()) if store_path.exists() else {}
    commit = git_commit()  # the code this process loaded, not what is checked in when it ends
    with events.copy_to(out / "events.log"):
        for name in [] if args.table_only else args.variants:
            started = time.monotonic()
            result = run_variant(args, name, seeds)
            result.update(commit=commit, seconds=round(time.monotonic() - started, 1),
                          command=" ".join(sys.argv), validation_seeds=seeds)
            stored[name] = result
            store_path.write_text(json.dumps(jsonable(stored), indent=1))
            print(f"variant {name}: {result['seconds']:.0f} s", flush=True)
        baselines = classic_delays(args, base, seeds)  # after training: the tuning may land meanwhile
    markdown = table(stored, baselines)
    (out / "variants.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
