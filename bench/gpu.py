"""The first GPU's figures, in one JSON: is the CUDA path right, and is it faster than this host's CPU?

    python bench/gpu.py [--out runs/bench/gpu.json] [--sizes 1 4 16 64 256 1024 4096]
                        [--seconds 2] [--vec-sizes 1 64 4096] [--budget 270] [--parity-minutes 20]

On the Victoria Island corridor, all in this one run: the device's name (or why there is none);
CPU-vs-GPU parity of vehicles, counters and cells after 20 simulated minutes with signals
switching, as relative error per simulated hour; scenario-seconds per second (B scenarios x
15 s per `advance` over wall time, after a warm-up) for each B in float64 and float32 on the
GPU, float64 on the CPU; VecEnv steps per second with random actions; kernel launches per
decision step and the grid sizes launched; the low-occupancy warnings numba raised. Each
measurement runs about --seconds; sizes are skipped (and listed) once --budget seconds are spent,
so the run stays under 5 minutes. Without a GPU it still writes the CPU figures and the reason.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import peer  # noqa: E402
from lib.rl.env import EnvConfig  # noqa: E402
from lib.rl.vecenv import TrafficVecEnv  # noqa: E402
from lib.sim.network import load_network  # noqa: E402
from lib.sim.simulator import SimConfig, Simulator, compile_kernels, cuda_status  # noqa: E402

DECISION_S = 15.0


class Budget:
    """Wall seconds left for the whole run; measurements past it are skipped and named."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.skipped: list[str] = []

    def allows(self, what: str) -> bool:
        if time.monotonic() < self.end:
            return True
        self.skipped.append(what)
        return False


def parity(net: Any, minutes: float) -> dict[str, float]:
    """Max relative CPU-vs-CUDA difference per read-out, per simulated hour (round-off and fused
    multiply-adds grow with the steps taken; the CUDA simulator test holds 1e-10 at 3 minutes)."""
    sims = {b: Simulator(net, n_scenarios=4, backend=b) for b in ("cpu", "cuda")}
    demand = peer.peer_demand(net) * np.array([[0.5], [1.0], [1.5], [2.0]])
    for sim in sims.values():
        sim.set_demand(demand)
    phases = np.zeros(net.n_signals, dtype=np.int64)
    for k in range(max(1, round(minutes * 2))):
        phases[:] = k % 2
        for sim in sims.values():
            sim.set_phase(phases)
            sim.advance(30.0)
    hours = max(1, round(minutes * 2)) * 30 / 3600
    out = {}
    for name in ("vehicles", "cumulative_entered", "cumulative_exited", "cumulative_delay", "link_density",
                 "approach_state"):
        a, b = getattr(sims["cpu"], name)(), getattr(sims["cuda"], name)()
        out[name] = _relative(a, b) / hours
    cells = zip(sims["cpu"].cell_state(), sims["cuda"].cell_state(), strict=True)
    out["cells"] = max(_relative(a, b) for a, b in cells) / hours
    return out


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-300))


def throughput(net: Any, backend: str, precision: str, sizes: list[int], seconds: float,
               budget: Budget) -> dict[str, Any]:
    """Scenario-seconds per wall second per B, and the launches per advance and their grids."""
    rows: dict[str, Any] = {}
    for n in sizes:
        if not budget.allows(f"{backend} {precision} B={n}"):
            continue
        sim = Simulator(net, n_scenarios=n, backend=backend, config=SimConfig(precision=precision))
        sim.set_demand(peer.peer_demand(net))
        sim.advance(DECISION_S)  # warm-up: compile, first copies
        before = sim.launches.count
        calls, start = 0, time.perf_counter()
        while calls == 0 or time.perf_counter() - start < seconds:
            sim.set_phase(np.full(net.n_signals, calls % 2, dtype=np.int64))
            sim.advance(DECISION_S)
            sim.vehicles()  # a read-out waits for the device: the time is the work's, not the queue's
            calls += 1
        wall = time.perf_counter() - start
        rows[str(n)] = {"scenario_s_per_s": n * DECISION_S * calls / wall, "calls": calls,
                        "launches_per_advance_and_read_out": (sim.launches.count - before) / calls,
                        "grids": dict(sim.launches.grids)}
    return rows


def vecenv_steps(backend: str, sizes: list[int], seconds: float, budget: Budget) -> dict[str, Any]:
    """VecEnv steps per second (one step = one env's decision) and kernel launches per step call."""
    rows: dict[str, Any] = {}
    for n in sizes:
        if not budget.allows(f"vecenv {backend} n={n}"):
            continue
        env = TrafficVecEnv(n, EnvConfig(backend=backend, decision_interval=DECISION_S))
        rng = np.random.default_rng(0)
        actions = [np.stack([env.action_space.sample() for _ in range(n)]) for _ in range(8)]
        env.reset()
        env.step(actions[0])
        before = env.sim.launches.count
        steps, start = 0, time.perf_counter()
        while steps == 0 or time.perf_counter() - start < seconds:
            env.step(actions[int(rng.integers(len(actions)))])
            steps += 1
        wall = time.perf_counter() - start
        launched = env.sim.launches.count - before
        rows[str(n)] = {"steps_per_s": n * steps / wall, "launches_per_decision": launched / steps}
        env.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "gpu.json")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16, 64, 256, 1024, 4096])
    parser.add_argument("--vec-sizes", type=int, nargs="+", default=[1, 64, 4096])
    parser.add_argument("--seconds", type=float, default=2.0, help="wall seconds per measurement")
    parser.add_argument("--budget", type=float, default=270.0, help="wall seconds for all measurements")
    parser.add_argument("--parity-minutes", type=float, default=20.0, help="simulated minutes compared")
    args = parser.parse_args(argv)
    budget = Budget(args.budget)
    device, reason = cuda_status()
    report: dict[str, Any] = {"device": device, "cuda_unavailable": reason or None, "decision_s": DECISION_S}
    net = load_network()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backends = ["cpu"] + (["cuda"] if device else [])
        report["compile_s"] = {b: compile_kernels(b)[0] for b in backends}
        if device:
            report["parity_per_hour"] = parity(net, args.parity_minutes)
        report["cpu"] = {"float64": throughput(net, "cpu", "float64", args.sizes, args.seconds, budget),
                         "vecenv": vecenv_steps("cpu", args.vec_sizes, args.seconds, budget)}
        if device:
            report["cuda"] = {p: throughput(net, "cuda", p, args.sizes, args.seconds, budget)
                              for p in ("float64", "float32")}
            report["cuda"]["vecenv"] = vecenv_steps("cuda", args.vec_sizes, args.seconds, budget)
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report["occupancy_warnings"] = sorted({str(w.message)[:300] for w in caught
                                           if "occupancy" in str(w.message).lower()
                                           or "Grid size" in str(w.message)})
    report["skipped_for_budget"] = budget.skipped
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
