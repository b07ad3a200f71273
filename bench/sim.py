"""Simulator throughput: B = 1, 16, 64 (and more on a GPU) scenarios of the Victoria Island corridor.

Prints, all measured in this one run after JIT warm-up: simulated seconds per wall second,
cell-updates per second, scenario-seconds per second and the batched-vs-single ratio; then one
simulated hour of ours (B = 1) and of UXsim's C++ engine on the same network, demand and cycle
(bench/peer.py), run interleaved --reps times, medians and their ratio; then the JIT compile
time cold (empty cache dir) and cached (second process), each in a fresh process.

    python bench/sim.py [--backend cpu|cuda|auto] [--hours 1] [--sizes 1 16 64] [--order 1|2]
                        [--reps 5] [--peer-python ../.peers/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import peer  # noqa: E402
from lib.sim.network import load_network  # noqa: E402
from lib.sim.simulator import SimConfig, Simulator, compile_kernels  # noqa: E402

COMPILE_SNIPPET = """
import json
from lib.sim.simulator import SimConfig, compile_kernels
seconds, cached = compile_kernels({backend!r}, SimConfig(order={order}))
mix = None
if {backend!r} == "cpu" and not cached:
    from lib.sim import cpu
    mix = cpu.instruction_mix()
print(json.dumps([seconds, cached, mix]))
"""


def run_hour(sim: Simulator, hours: float, phase_s: float = peer.PEER_PHASE_S) -> float:
    """Wall seconds to simulate `hours` with the peer's demand and phases flipping every phase_s."""
    net = sim.network
    sim.reset()
    sim.set_demand(peer.peer_demand(net))
    phases = np.zeros(net.n_signals, dtype=np.int64)
    start = time.perf_counter()
    for k in range(int(hours * 3600 / phase_s)):
        phases[:] = k % 2
        sim.set_phase(phases)
        sim.advance(phase_s)
    return time.perf_counter() - start


def side_by_side(net, backend: str, config: SimConfig, python: Path, reps: int) -> None:
    """One simulated hour, ours (B = 1) and UXsim's C++ engine, alternating, `reps` times each."""
    sim = Simulator(net, backend=backend, config=config)
    run_hour(sim, 0.05)
    ours, theirs = [], []
    for _ in range(reps):
        ours.append(run_hour(sim, 1.0))
        theirs.append(peer.run_peer(python, "full")["run"])
    mine, peer_s = float(np.median(ours)), float(np.median(theirs))
    print(f"\none simulated hour, same network, demand and cycle, {reps} interleaved runs each, medians")
    print(f"{'simulator':<28} {'wall s':>8} {'real-time factor':>17}")
    print(f"{'ours (B = 1, ' + backend + ')':<28} {mine:>8.4f} {3600 / mine:>17,.0f}")
    print(f"{'UXsim C++ (World(cpp=True))':<28} {peer_s:>8.4f} {3600 / peer_s:>17,.0f}")
    print(f"ours vs UXsim: {peer_s / mine:.2f}x its speed (runs: ours {np.round(ours, 4).tolist()}, "
          f"UXsim {np.round(theirs, 4).tolist()})")


def compile_times(backend: str, order: int) -> list[list]:
    """[seconds, cache hit, instruction mix] of a cold and then a cached compile, each in a fresh
    process, sharing a new, empty numba cache directory."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        results = []
        for _ in range(2):
            snippet = COMPILE_SNIPPET.format(backend=backend, order=order)
            done = subprocess.run([sys.executable, "-c", snippet], cwd=ROOT, env=env, capture_output=True,
                                  text=True, check=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--order", type=int, default=1, choices=(1, 2), help="SimConfig.order")
    parser.add_argument("--reps", type=int, default=5, help="interleaved runs of ours and UXsim")
    parser.add_argument("--peer-python", type=Path, default=peer.DEFAULT_PYTHON,
                        help="python of the venv holding uxsim (bench/peer.py)")
    args = parser.parse_args()
    net = load_network()
    config = SimConfig(order=args.order)
    probe = Simulator(net, backend=args.backend, config=config)
    backend = probe.backend
    sizes = args.sizes or ([1, 16, 64] if backend == "cpu" else [1, 16, 64, 256, 1024, 4096])
    compile_kernels(backend, config)
    steps_per_hour = int(np.ceil(3600.0 / probe.dt))
    print(f"backend {backend}, order {args.order}; {net.n_cells} cells, {net.n_links} links; "
          f"dt {probe.dt:.4f} s ({steps_per_hour} steps per simulated hour); {os.cpu_count()} CPU cores; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'B':>6} {'wall s':>8} {'sim s/wall s':>13} {'scen-s/s':>11} {'Mcell-upd/s':>12} {'vs B=1':>7}")
    base = None
    for b in sizes:
        sim = Simulator(net, n_scenarios=b, backend=backend, config=config)
        run_hour(sim, min(args.hours, 0.05))  # warm-up: caches, threads, first touch
        wall = run_hour(sim, args.hours)
        sim_s = args.hours * 3600.0
        scen_rate = b * sim_s / wall
        phase_s = peer.PEER_PHASE_S
        steps = int(args.hours * 3600 / phase_s) * int(np.ceil(phase_s / sim.dt - 1e-9))
        mcups = net.n_cells * steps * b / wall / 1e6
        base = base or scen_rate
        ratio = scen_rate / base
        print(f"{b:>6} {wall:>8.3f} {sim_s / wall:>13.0f} {scen_rate:>11.0f} {mcups:>12.1f} {ratio:>7.2f}")
    if peer.available(args.peer_python):
        side_by_side(net, backend, config, args.peer_python, args.reps)
    else:
        print(f"\nUXsim side by side skipped: no {args.peer_python} or {peer.PEER_SCRIPT} (bench/peer.py)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    (cold_s, cold_hit, mix), (warm_s, warm_hit, _) = compile_times(backend, args.order)
    print(f"JIT compile ({backend}): cold {cold_s:.1f} s (cache hit: {cold_hit}), "
          f"cached {warm_s:.2f} s (cache hit: {warm_hit})")
    if mix:
        print(f"kernel double-precision arithmetic: {mix['packed']} packed (SIMD) and {mix['scalar']} scalar "
              "instructions")


if __name__ == "__main__":
    main()
