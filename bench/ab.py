"""Two checkouts side by side: the simulator's and the environments' speed, runs interleaved.

A refactoring or a model change must show what it does to speed against the commit before it,
measured in the same run on the same machine (a loaded machine slows both alike when the runs
alternate). Each run is a fresh process on one checkout that times, after warm-up:

- `sim B=1`, `sim B=64`: scenario-seconds simulated per wall second (one hour, 800 veh/h per
  entry, phases flipping every 30 s; bench/sim.py's workload);
- `env`, `vecenv 64`: environment steps per second with random actions and 15 s decisions
  (bench/env.py's workload);
- `peer hour`, `peer decisions`: the same two on the UXsim peer's demand and 90 s cycle
  (bench/peer.py: 1,000 veh/h on each entry but the map-boundary one, phases flipping every 45 s;
  decisions with the demand held fixed).

    python bench/ab.py --base HEAD~1            # this checkout against a commit (a temporary worktree)
    python bench/ab.py --base ../other-checkout --runs 7
    python bench/ab.py --base 8c7431b --this 7ce0a3b   # two commits, neither checked out

Prints the median of each figure per checkout, the ratio (this / base) and the spread (min-max
over runs as a share of the median).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Works on both layouts: lib/ as packages (now) and the flat lib/ of before.
SNIPPET = r"""
import io, json, time
import numpy as np
try:
    from lib.obs import events
    from lib.sim.network import load_network
    from lib.sim.simulator import Simulator
    from lib.rl.env import TrafficSignalEnv
    from lib.rl.vecenv import TrafficVecEnv
except ImportError:
    from lib import events
    from lib.network import load_network
    from lib.sim import Simulator
    from lib.env import TrafficSignalEnv
    from lib.vecenv import TrafficVecEnv
events.set_stream(io.StringIO())
SECONDS = {seconds}

def flip_hour(sim, demand, phase_s):  # wall s of one simulated hour, signals flipping every phase_s
    sim.reset()
    sim.set_demand(demand)
    phases = np.zeros(sim.network.n_signals, dtype=np.int64)
    start = time.perf_counter()
    for k in range(round(3600.0 / phase_s)):
        phases[:] = k % 2
        sim.set_phase(phases)
        sim.advance(phase_s)
    return time.perf_counter() - start

def sim_rate(n):
    sim = Simulator(load_network(), n_scenarios=n, backend="cpu")
    demand = np.full(sim.network.n_entries, 800.0)
    flip_hour(sim, demand, 30.0)
    walls = [flip_hour(sim, demand, 30.0)
             for _ in range(max(1, int(SECONDS / max(flip_hour(sim, demand, 30.0), 1e-3))))]
    return n * 3600.0 / min(walls)

def timed(step):
    for _ in range(10):
        step()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < SECONDS:
        step()
        calls += 1
    return calls / (time.perf_counter() - start)

def single_rate():
    env = TrafficSignalEnv(backend="cpu")
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    def step():
        if env.step(int(rng.integers(0, env.action_space.n)))[3]:
            env.reset()
    rate = timed(step)
    env.close()
    return rate

def vec_rate(n):
    env = TrafficVecEnv(n, backend="cpu")
    rng = np.random.default_rng(0)
    env.seed(0)
    env.reset()
    rate = n * timed(lambda: env.step(rng.integers(0, env.action_space.n, size=n)))
    env.close()
    return rate

def peer_demand(net):
    return np.array([0.0 if net.nodes[e].osm_id == 36240960 else 1000.0 for e in net.entries])

def peer_hour():
    net = load_network()
    sim = Simulator(net, backend="cpu")
    demand = peer_demand(net)
    flip_hour(sim, demand, 45.0)
    return 3600.0 / min(flip_hour(sim, demand, 45.0) for _ in range(3))

def peer_decisions():
    demand = tuple(peer_demand(load_network()))
    env = TrafficSignalEnv(backend="cpu", demand_veh_h=demand, randomize_demand=False)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    def step():
        if env.step(int(rng.integers(0, env.action_space.n)))[3]:
            env.reset(seed=0)
    rate = timed(step)
    env.close()
    return rate

print(json.dumps({{
    "sim B=1": sim_rate(1),
    "sim B=64": sim_rate(64),
    "env": single_rate(),
    "vecenv 64": vec_rate(64),
    "peer hour": peer_hour(),
    "peer decisions": peer_decisions(),
}}))
"""
UNITS = {"sim B=1": "scenario-s/s", "sim B=64": "scenario-s/s", "env": "steps/s", "vecenv 64": "steps/s",
         "peer hour": "scenario-s/s", "peer decisions": "decisions/s"}


def measure(checkout: Path, seconds: float) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", SNIPPET.format(seconds=seconds)], cwd=checkout,
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"the benchmark failed in {checkout}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextmanager
def checkout_of(base: str) -> Iterator[Path]:
    """`base` as a folder: itself when it is one, else a temporary git worktree of that commit."""
    if Path(base).is_dir():
        yield Path(base).resolve()
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "checkout"
        subprocess.run(["git", "worktree", "add", "--detach", str(folder), base], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            yield folder
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="a commit (temporary worktree) or a checkout folder")
    parser.add_argument("--this", default=str(ROOT), help="the other side: commit or folder (default: here)")
    parser.add_argument("--runs", type=int, default=5, help="runs per checkout, interleaved (default 5)")
    parser.add_argument("--seconds", type=float, default=1.5, help="timed wall seconds per figure per run")
    args = parser.parse_args()
    with checkout_of(args.base) as base, checkout_of(args.this) as this:
        trees = {"this": this, "base": base}
        results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for run in range(args.runs):
            for name, tree in trees.items():
                results[name].append(measure(tree, args.seconds))
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr, flush=True)
    print(f"medians of {args.runs} interleaved runs per checkout (this: {args.this}, base: {args.base}); "
          f"load average at the end {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'figure':<14} {'unit':<13} {'this':>10} {'base':>10} {'this/base':>10} {'spread this':>12} "
          f"{'spread base':>12}")
    for figure, unit in UNITS.items():
        this = [r[figure] for r in results["this"]]
        base_values = [r[figure] for r in results["base"]]
        a, b = statistics.median(this), statistics.median(base_values)
        print(f"{figure:<14} {unit:<13} {a:>10,.0f} {b:>10,.0f} {a / b:>9.3f}x "
              f"{(max(this) - min(this)) / a:>11.0%} {(max(base_values) - min(base_values)) / b:>11.0%}")


if __name__ == "__main__":
    main()
