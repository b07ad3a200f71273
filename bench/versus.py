"""This checkout's simulator against another checkout's, side by side: one simulated hour (B = 1,
the peer demand and cycle of bench/peer.py) and one hour of 15 s env decisions with random
actions, each tree in its own fresh process per run, alternating, medians.

    mkdir -p /tmp/before && git archive <commit> | tar -x -C /tmp/before
    python bench/versus.py /tmp/before [--reps 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SNIPPET = """
import json, time
import numpy as np
from lib.rl.env import EnvConfig, TrafficSignalEnv
from lib.sim.network import load_network
from lib.sim.simulator import Simulator
net = load_network()
demand = np.array([0.0 if net.nodes[e].osm_id == 36240960 else 1000.0 for e in net.entries])
sim = Simulator(net, backend="cpu")
def hour():
    sim.reset()
    sim.set_demand(demand)
    phases = np.zeros(net.n_signals, dtype=np.int64)
    start = time.perf_counter()
    for k in range(80):
        phases[:] = k % 2
        sim.set_phase(phases)
        sim.advance(45.0)
    return time.perf_counter() - start
hour()
env = TrafficSignalEnv(EnvConfig(backend="cpu", demand_veh_h=tuple(demand), randomize_demand=False))
actions = np.random.default_rng(0).integers(0, env.action_space.n, 100_000)
def decisions():
    env.reset(seed=0)
    start, k = time.perf_counter(), 0
    while not env.step(int(actions[k]))[3]:
        k += 1
    return (k + 1) / (time.perf_counter() - start)
decisions()
print("RESULT " + json.dumps({"hour_s": min(hour() for _ in range(3)),
                              "decisions_s": max(decisions() for _ in range(3))}))
"""


def run(tree: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", SNIPPET], cwd=tree, capture_output=True, text=True,
                          check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other checkout (a folder with lib/)")
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    trees = {"this": ROOT, "other": args.other.resolve()}
    for tree in trees.values():
        run(tree)  # warm-up: compiles (or loads) each tree's kernels
    results: dict[str, list[dict]] = {name: [] for name in trees}
    for _ in range(args.reps):
        for name, tree in trees.items():
            results[name].append(run(tree))
    print(f"{'checkout':<8} {'hour s (B = 1)':>15} {'decisions/s':>12}   "
          f"(best of 3 per process, median of {args.reps})")
    med = {}
    for name, rows in results.items():
        med[name] = (statistics.median(r["hour_s"] for r in rows),
                     statistics.median(r["decisions_s"] for r in rows))
        print(f"{name:<8} {med[name][0]:>15.4f} {med[name][1]:>12,.0f}")
    print(f"this vs other: hour {med['other'][0] / med['this'][0]:.2f}x the speed, decisions "
          f"{med['this'][1] / med['other'][1]:.2f}x")


if __name__ == "__main__":
    main()
