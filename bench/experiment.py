"""The evaluation protocol of issue 12 from one command: tuned baselines and learners on the same
episodes of every demand level and profile, with paired statistics (lib/rl/study.py).

    python bench/experiment.py                                   # the full protocol (hours)
    python bench/experiment.py --levels 1.0 --profiles flat --episodes 4 --training-seeds 3 \\
        --steps 2000 --validation-every 1000 --output runs/protocol-small   # a subset, minutes
    python bench/experiment.py --tune-only                       # measure and tune the baselines

The baselines tuned for this simulator version are read from lib/data/tuned_baselines.json; if
absent they are tuned first (`--tune` forces it, `--no-tune` refuses), `--tuning-budget`
candidate plans per level and profile. Progress and an estimate of the time left come as
`study_progress` events; results.json and results.md land in --output.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.rl import protocol, tuning  # noqa: E402
from lib.rl.env import EnvConfig  # noqa: E402
from lib.rl.study import StudyConfig, run_study  # noqa: E402
from lib.rl.vecenv import TrafficVecEnv  # noqa: E402


def floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


def names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--levels", type=floats, default=protocol.LEVELS, help="e.g. 0.6,1.0,1.4")
    p.add_argument("--profiles", type=names, default=protocol.PROFILES, help="flat,peak")
    p.add_argument("--episodes", type=int, default=30, help="evaluation episodes per level and profile")
    p.add_argument("--learners", type=names, default=("dqn",), help="dqn,ppo")
    p.add_argument("--training-seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--validation-every", type=int, default=10_000)
    p.add_argument("--validation-episodes", type=int, default=10)
    tune = p.add_mutually_exclusive_group()
    tune.add_argument(
        "--tune", action="store_const", const="always", dest="tune", help="re-tune the baselines"
    )
    tune.add_argument("--no-tune", action="store_const", const="never", dest="tune", help="fail if not tuned")
    p.add_argument("--tune-only", action="store_true", help="measure and tune the baselines, then stop")
    p.add_argument("--tuning-budget", type=int, default=tuning.DEFAULT_BUDGET)
    p.add_argument("--tuning-episodes", type=int, default=tuning.DEFAULT_TUNING_EPISODES)
    p.add_argument("--backend", default="cpu", choices=("auto", "cpu", "cuda"))
    p.add_argument("--output", default="runs/experiment")
    return p.parse_args()


def main() -> None:
    args = parse()
    config = StudyConfig(
        levels=args.levels,
        profiles=args.profiles,
        episodes=args.episodes,
        learners=args.learners,
        training_seeds=args.training_seeds,
        steps=args.steps,
        n_envs=args.n_envs,
        validation_every=args.validation_every,
        validation_episodes=args.validation_episodes,
        tune=args.tune or "missing",
        tuning_budget=args.tuning_budget,
        tuning_episodes=args.tuning_episodes,
        env=EnvConfig(backend=args.backend),
        output_dir=args.output,
    )
    started = time.monotonic()
    if args.tune_only:
        base = config.env
        cells = [(level, profile) for level in config.levels for profile in config.profiles]
        network = TrafficVecEnv(1, base).network
        entry = tuning.tune_all(base, network, cells, config.tuning_budget, config.tuning_episodes)
        tuning.save_tuned(entry)
        print(
            f"tuned {len(entry['levels'])} levels for simulator {entry['sim_version']} in "
            f"{time.monotonic() - started:.0f} s -> {tuning.TUNED_PATH}"
        )
        return
    run_study(config)
    print((Path(args.output) / "results.md").read_text())
    print(f"wall time {time.monotonic() - started:.0f} s; results in {args.output}/results.json")


if __name__ == "__main__":
    main()
