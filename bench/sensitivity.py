"""How the best tuned baseline's delay moves with the model's assumptions (docs/calibration.md).

The deployed controller is fixed: the best classic controller at the level, with the plan and
parameters tuned on the default model (lib/data/tuned_baselines.json). Only the model under it
changes, one assumption at a time: the motorcycle share (0-0.5), the capacity (+/-10 %, through
the jam spacing: capacity is proportional to the jam density) and the congested wave speed
(+/-30 %). Every variant runs the same evaluation episodes.

    python bench/sensitivity.py [--level 1.0] [--profile flat] [--episodes 10]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib.obs import events  # noqa: E402
from lib.rl import protocol, tuning  # noqa: E402
from lib.rl.env import EnvConfig  # noqa: E402
from lib.rl.evaluate import evaluate_controller  # noqa: E402
from lib.rl.vecenv import TrafficVecEnv  # noqa: E402


def variants(base: EnvConfig) -> list[tuple[str, EnvConfig]]:
    sim = base.sim
    return [
        ("default model", base),
        ("motorcycle share 0", base.replace(moto_share=0.0)),
        ("motorcycle share 0.3", base.replace(moto_share=0.3)),
        ("motorcycle share 0.5", base.replace(moto_share=0.5)),
        ("capacity -10 %", base.replace(**{"sim.jam_spacing_m": sim.jam_spacing_m / 0.9})),
        ("capacity +10 %", base.replace(**{"sim.jam_spacing_m": sim.jam_spacing_m / 1.1})),
        ("wave speed -30 %", base.replace(**{"sim.wave_speed_mps": 0.7 * sim.wave_speed_mps})),
        ("wave speed +30 %", base.replace(**{"sim.wave_speed_mps": 1.3 * sim.wave_speed_mps})),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", type=float, default=1.0)
    parser.add_argument("--profile", default="flat", choices=protocol.PROFILES)
    parser.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args()
    events.set_stream(io.StringIO())
    started = time.monotonic()
    base = protocol.level_config(EnvConfig(backend="cpu"), args.level, args.profile)
    network = TrafficVecEnv(1, base).network
    entry = tuning.load_tuned(base)
    tuned = tuning.tuned_level(entry, args.level, args.profile)
    controllers = tuning.classic_controllers(base, network, entry["signal_model"], tuned, seed=0)
    seeds = protocol.EVALUATION.take(args.episodes)
    delays = {name: evaluate_controller(controllers[name], base, seeds, base.decision_interval).summary()
              for name in protocol.CLASSIC}
    best = protocol.best_classic(delays)
    print(f"best tuned classic controller at level {args.level} {args.profile}: {best} "
          f"({args.episodes} evaluation episodes, the same for every variant)")
    print(f"{'model':<22} {'mean delay s/veh':>17} {'vs default':>11} {'throughput veh':>15}")
    reference = None
    for label, config in variants(base):
        result = evaluate_controller(controllers[best], config, seeds, base.decision_interval).summary()
        delay = result["mean_delay_s"]
        reference = reference if reference is not None else delay
        print(f"{label:<22} {delay:>17.1f} {100 * (delay / reference - 1):>+10.1f}% "
              f"{result['throughput_veh']:>15.0f}")
    print(f"wall time {time.monotonic() - started:.0f} s; delays of the classic controllers at the default: "
          + ", ".join(f"{n} {d['mean_delay_s']:.1f}" for n, d in delays.items()))


if __name__ == "__main__":
    main()
