"""How the best tuned baseline's delay moves with the model's assumptions (docs/calibration.md).

The deployed controller is fixed: the best classic controller at the level, with the plan and
parameters tuned on the default model (lib/data/tuned_baselines.json). Only the model under it
changes, one assumption at a time: the motorcycle share (0-0.5), the capacity (+/-10 %, through
the jam spacing: capacity is proportional to the jam density) and the congested wave speed
(+/-30 %), and left-turn pockets: OpenStreetMap has no turn-lane data, so by default a left
turner waiting for a gap holds its whole approach (strict FIFO); the last variant gives every
permitted (opposed) left turn a 60 m pocket, a copy of the data folder with `storage_m` set.
Every variant runs the same evaluation episodes.

    python bench/sensitivity.py [--level 1.0] [--profile flat] [--episodes 10]
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib.obs import events  # noqa: E402
from lib.rl import protocol, tuning  # noqa: E402
from lib.rl.env import EnvConfig  # noqa: E402
from lib.rl.evaluate import evaluate_controller  # noqa: E402
from lib.rl.vecenv import TrafficVecEnv  # noqa: E402
from lib.sim.network import Network  # noqa: E402

POCKET_M = 60.0  # a short left-turn bay: about 8 cars at 7 m


def pocket_data(network: Network, folder: Path) -> Path:
    """A copy of the default data folder in `folder` whose permitted left turns (a `left` movement
    that yields to an opposing approach) have a POCKET_M turn pocket."""
    source = tuning.DEFAULT_DATA
    shutil.copytree(source, folder, dirs_exist_ok=True)
    opposed = {(m.in_link, m.out_link) for m in network.movements if m.turn == "left" and m.yields_to >= 0}
    last = {link.edges[-1]: link.index for link in network.links}  # from_u, from_v: its last edge
    first = {link.edges[0]: link.index for link in network.links}  # to_u, to_v: its first edge
    with (source / "movements.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        pair = (last[(int(row["from_u"]), int(row["from_v"]))], first[(int(row["to_u"]), int(row["to_v"]))])
        if pair in opposed:
            row["storage_m"] = f"{POCKET_M:g}"
    with (folder / "movements.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


def variants(base: EnvConfig, pockets: Path) -> list[tuple[str, EnvConfig]]:
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
        (f"{POCKET_M:g} m left-turn pockets", base.replace(data_path=str(pockets))),
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
    pockets = pocket_data(network, Path(tempfile.mkdtemp(prefix="pockets-")))
    for label, config in variants(base, pockets):
        result = evaluate_controller(controllers[best], config, seeds, base.decision_interval).summary()
        delay = result["mean_delay_s"]
        reference = reference if reference is not None else delay
        print(f"{label:<22} {delay:>17.1f} {100 * (delay / reference - 1):>+10.1f}% "
              f"{result['throughput_veh']:>15.0f}")
    print(f"wall time {time.monotonic() - started:.0f} s; delays of the classic controllers at the default: "
          + ", ".join(f"{n} {d['mean_delay_s']:.1f}" for n, d in delays.items()))


if __name__ == "__main__":
    main()
