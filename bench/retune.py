"""Does a finished study's result survive stronger baselines? Re-tune the classic controllers with
a larger budget for some cells and score the study's learners against them again, on the same
evaluation episodes (the learners' per-episode results are read from the study's results.json;
nothing is trained, nothing is stored in lib/data/tuned_baselines.json).

    python bench/retune.py runs/protocol-A/results.json --cells 0.8/flat,0.8/peak,0.6/peak \\
        --tuning-budget 64 --tuning-episodes 5

Prints, per cell, every classic controller's mean delay with the study's tuning and with the
re-tuning, and each learner's headline against the best classic controller of each.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.obs import events  # noqa: E402
from lib.rl import protocol, tuning  # noqa: E402
from lib.rl.env import EnvConfig  # noqa: E402
from lib.rl.evaluate import evaluate_controllers  # noqa: E402
from lib.rl.vecenv import TrafficVecEnv  # noqa: E402


def cells(text: str) -> list[tuple[float, str]]:
    """'0.8/flat,0.6/peak' -> [(0.8, 'flat'), (0.6, 'peak')]."""
    out = []
    for item in text.split(","):
        level, profile = item.strip().split("/")
        out.append((float(level), profile))
    return out


def pct(x: float) -> str:
    return f"{100 * x:+.1f} %"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path, help="a study's results.json")
    p.add_argument("--cells", type=cells, required=True, help="level/profile,...")
    p.add_argument("--tuning-budget", type=int, default=64)
    p.add_argument("--tuning-episodes", type=int, default=5)
    args = p.parse_args()
    events.set_stream(io.StringIO())
    started = time.monotonic()
    study = json.loads(args.results.read_text())
    base = EnvConfig.from_dict(study["protocol"]["config"]["env"])
    if tuning.sim_version(base) != study["protocol"]["sim_version"]:
        raise SystemExit(f"{args.results} was measured on another simulator version; re-run the study")
    network = TrafficVecEnv(1, base).network
    entry = tuning.tune_all(base, network, args.cells, args.tuning_budget, args.tuning_episodes)
    by_cell = {(c["level"], c["profile"]): c for c in study["levels"]}
    seeds = study["protocol"]["evaluation_seeds"]
    for level, profile in args.cells:
        cell = by_cell[(level, profile)]
        config = protocol.level_config(base, level, profile)
        tuned = tuning.tuned_level(entry, level, profile)
        controllers = tuning.classic_controllers(config, network, entry["signal_model"], tuned, seed=seeds[0])
        results = evaluate_controllers(controllers, config, seeds, base.decision_interval)
        summaries = {name: r.summary() for name, r in results.items()}
        episodes = {name: r.episodes for name, r in results.items()}
        budget = f"budget {args.tuning_budget}, {args.tuning_episodes} tuning episodes"
        print(f"\n## {level:g} {profile}: {budget}")
        print("| controller | study's tuning (s/veh) | re-tuned (s/veh) |\n| --- | --- | --- |")
        for name in protocol.CLASSIC:
            print(f"| {name} | {cell['summaries'][name]['mean_delay_s']:.1f} | "
                  f"{summaries[name]['mean_delay_s']:.1f} |")
        for learner, record in cell["learners"].items():
            h = protocol.compare([run["episodes"] for run in record["runs"]], episodes, summaries)["headline"]
            old = record["headline"]
            print(f"{learner}: vs {old['best_classic']} {pct(old['mean_rel_change'])} in the study; vs the "
                  f"re-tuned {h['best_classic']} {pct(h['mean_rel_change'])} [{pct(h['ci_low'])}, "
                  f"{pct(h['ci_high'])}], win rate {100 * h['win_rate']:.0f} %, throughput ratio "
                  f"{h['throughput_ratio']:.3f}")
    print(f"\nwall time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
