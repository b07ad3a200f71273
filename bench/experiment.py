"""DQN trained long enough to matter on the default scenario, against every baseline.

    python bench/experiment.py                     # 100,000 steps, 8 envs, 5 evaluation seeds
    python bench/experiment.py --steps 50000 --output runs/experiment

Runs lib.train.run on the default scenario (1 h episodes, 15 s decisions, randomised demand) and
prints the controllers' table (mean ± sample std over the same 5 evaluation seeds) with the
relative change of DQN vs Webster fixed-time and max-pressure, the training budget and the wall
time. The run folder keeps results.json/.md, the plots and the model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.rl.evaluate import results_markdown  # noqa: E402
from lib.rl.train import REFERENCES, RunConfig, run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gradient-steps", type=int, default=2)
    parser.add_argument("--output", default="runs/experiment")
    args = parser.parse_args()
    started = time.monotonic()
    config = RunConfig(
        steps=args.steps,
        n_envs=args.n_envs,
        eval_episodes=args.eval_episodes,
        seed=args.seed,
        gradient_steps=args.gradient_steps,
        buffer_size=min(100_000, args.steps),
        learning_starts=1_000,
        exploration_fraction=0.2,
        target_update_interval=1_000,
        checkpoint_every=max(args.steps // 4, 1),
        output_dir=args.output,
        env={"backend": "cpu"},
        progress_bar=False,
    )
    result = run(config)
    wall = time.monotonic() - started
    print()
    print(
        f"DQN, {result.steps} steps ({result.updates} gradient updates), n_envs={args.n_envs}, "
        f"{args.eval_episodes} evaluation seeds, wall time {wall:.0f} s on this machine"
    )
    print(results_markdown(result.results, result.policy, REFERENCES))


if __name__ == "__main__":
    main()
