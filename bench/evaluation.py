"""The classic controllers' evaluation, one controller at a time against all of them in one batch.

The study evaluates every classic controller on the same episodes of each level and profile
(lib/rl/study.py, evaluate_baselines). One at a time is one VecEnv of `episodes` scenarios per
controller (lib.rl.evaluate.evaluate_controller); batched is one VecEnv of controllers x
episodes scenarios (evaluate_controllers). Both run here side by side, on the same episodes, and
must give the same per-episode results; the table prints the seconds of each and their ratio.

    python bench/evaluation.py [--episodes 30] [--level 1.0] [--profile flat] [--episode-seconds 3600]

The controllers are the tuned ones of this simulator version when stored, else Webster from a
fresh measurement, its plan also standing in for the coordinated plan, and default parameters
(the speed does not depend on them).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib.obs import events  # noqa: E402
from lib.rl import protocol, tuning  # noqa: E402
from lib.rl.env import EnvConfig  # noqa: E402
from lib.rl.evaluate import evaluate_controller, evaluate_controllers  # noqa: E402
from lib.rl.vecenv import TrafficVecEnv  # noqa: E402

# The same scenario differs in the last bits at another batch size (the CPU kernel's chunk
# width follows B, docs/PERFORMANCE.md "Batched baselines"); anything larger is a fault.
TOLERANCE = 1e-9


def controllers(config: EnvConfig, network: Any, level: float, profile: str) -> dict[str, Any]:
    """The five baselines of the level: tuned when stored for this simulator, else stand-ins."""
    try:
        entry = tuning.load_tuned(config)
        return tuning.classic_controllers(
            config, network, entry["signal_model"], tuning.tuned_level(entry, level, profile), seed=0
        )
    except LookupError:
        model = tuning.measure_signals(config)
        stand_in = {
            "fixed_time": tuning.webster_for(config, network, model).to_dict(),
            "max_pressure": {"delta_s": 10.0},
            "actuated": {"gap_veh_h_lane": 300.0, "max_green_s": 60.0},
        }
        return tuning.classic_controllers(config, network, model, stand_in, seed=0)


def largest_difference(alone: dict[str, Any], batched: dict[str, Any]) -> float:
    """The largest relative difference of any per-episode metric between the two evaluations."""
    return max(
        abs(a[k] - b[k]) / max(abs(a[k]), 1e-12)
        for n in alone
        for a, b in zip(alone[n].episodes, batched[n].episodes, strict=True)
        for k in a
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--level", type=float, default=1.0)
    parser.add_argument("--profile", default="flat", choices=protocol.PROFILES)
    parser.add_argument("--episode-seconds", type=float, default=EnvConfig().episode_seconds)
    args = parser.parse_args()
    events.set_stream(io.StringIO())
    base = EnvConfig(backend="cpu", episode_seconds=args.episode_seconds)
    config = protocol.level_config(base, args.level, args.profile)
    network = TrafficVecEnv(1, config).network
    seeds = protocol.EVALUATION.take(args.episodes)
    make = lambda: controllers(config, network, args.level, args.profile)  # noqa: E731
    evaluate_controllers(make(), config.replace(episode_seconds=30.0), seeds[:1], sample_s=1.0)  # compile
    started = time.monotonic()
    alone = {n: evaluate_controller(c, config, seeds, config.decision_interval) for n, c in make().items()}
    one_at_a_time = time.monotonic() - started
    started = time.monotonic()
    batched = evaluate_controllers(make(), config, seeds, config.decision_interval)
    together = time.monotonic() - started
    gap = largest_difference(alone, batched)
    print(
        f"{len(alone)} controllers x {args.episodes} episodes of {args.episode_seconds:g} s, "
        f"level {args.level:g} {args.profile}, 1 s control step (CPU)"
    )
    print("| evaluation | scenarios per batch | seconds | ratio |")
    print("| --- | --- | --- | --- |")
    print(f"| one controller at a time | {args.episodes} | {one_at_a_time:.1f} | 1.00 |")
    ratio = one_at_a_time / together
    print(f"| all in one batch | {len(alone) * args.episodes} | {together:.1f} | {ratio:.2f} |")
    print(f"largest relative difference of a per-episode metric, batched vs alone: {gap:.1e}")
    if gap > TOLERANCE:
        raise SystemExit(f"the batched episodes differ from one at a time by more than {TOLERANCE:g}")


if __name__ == "__main__":
    main()
