"""Environment throughput: single env vs the batched VecEnv, plus build, reset and read costs.

    python bench/env.py [--seconds 3] [--backend cpu] [--sizes 1 16 64 256] [--reps 5]
                        [--peer-python ../.peers/bin/python]

All rows are measured in one run after a warm-up, with random actions drawn beforehand, so the
ratios compare like with like. Build times run in fresh subprocesses: "cold" with an empty
Numba cache directory (full JIT compile), "warm" reusing the cache the cold run wrote. Last, one
hour of 15 s decisions with random actions, ours (single env) and UXsim's C++ engine on the same
network, demand and cycle (bench/peer.py), alternating --reps times: medians and their ratio.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import peer  # noqa: E402
from lib.obs import events  # noqa: E402
from lib.rl.env import EnvConfig, TrafficSignalEnv  # noqa: E402
from lib.rl.vecenv import TrafficVecEnv  # noqa: E402

BUILD_SNIPPET = """
import io, json, time
from lib.obs import events
from lib.rl import pool
stream = io.StringIO(); events.set_stream(stream)
start = time.perf_counter()
pool.acquire(1, backend={backend!r})
wall = time.perf_counter() - start
records = [events.parse_line(line) for line in stream.getvalue().splitlines()]
print(json.dumps({{"wall": wall, **{{r["event"]: r for r in records if r}}}}))
"""


def timed_loop(step: Callable[[int], None], seconds: float, warmup: int = 5) -> tuple[int, float]:
    """Run `step(k)` for about `seconds` after `warmup` calls: (calls, wall seconds)."""
    for k in range(warmup):
        step(k)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(warmup + calls)
        calls += 1
    return calls, time.perf_counter() - start


def single_env(backend: str, seconds: float) -> dict[str, float]:
    env = TrafficSignalEnv(backend=backend)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, env.action_space.n, size=100_000)

    def step(k: int) -> None:
        if env.step(int(actions[k % actions.size]))[3]:
            env.reset()

    calls, wall, in_advance = timed_with_advance(env.sim, step, seconds)
    resets, reset_wall = timed_loop(lambda k: env.reset(seed=k), seconds / 4)
    reads, read_wall = timed_loop(lambda k: env._batch.observe(), seconds / 4)
    env.close()
    return {
        "steps_per_s": calls / wall,
        "advance_share": in_advance / wall,
        "layer_us": 1e6 * (wall - in_advance) / calls,
        "reset_ms": 1e3 * reset_wall / resets,
        "observe_ms": 1e3 * read_wall / reads,
    }


def timed_with_advance(sim: object, step: Callable[[int], None], seconds: float) -> tuple[int, float, float]:
    """`timed_loop`, also summing the wall time spent inside `sim.advance` (the compiled kernel)."""
    spent = [0.0]
    advance = sim.advance

    def timed(interval: float) -> None:
        start = time.perf_counter()
        advance(interval)
        spent[0] += time.perf_counter() - start

    sim.advance = timed
    timed_loop(step, 0.0)  # warm-up calls, not counted
    spent[0] = 0.0
    calls, wall = timed_loop(step, seconds, warmup=0)
    del sim.advance  # back to the class method
    return calls, wall, spent[0]


def vec_env(n: int, backend: str, seconds: float) -> dict[str, float]:
    vec = TrafficVecEnv(n, backend=backend)
    vec.seed(0)
    vec.reset()
    actions = np.random.default_rng(0).integers(0, vec.action_space.n, size=(64, n))
    calls, wall, in_advance = timed_with_advance(vec.sim, lambda k: vec.step(actions[k % 64]), seconds)
    resets, reset_wall = timed_loop(lambda k: vec.reset(), seconds / 4, warmup=1)
    vec.close()
    return {
        "steps_per_s": n * calls / wall,
        "advance_share": in_advance / wall,
        "layer_us": 1e6 * (wall - in_advance) / calls,
        "reset_ms": 1e3 * reset_wall / resets,
    }


def hour_of_decisions(env: TrafficSignalEnv, rng: np.random.Generator) -> float:
    """Wall seconds for one episode (an hour of 15 s decisions) with random actions."""
    env.reset(seed=0)
    actions = rng.integers(0, env.action_space.n, size=100_000)
    start, k = time.perf_counter(), 0
    while True:
        _, _, terminated, truncated, _ = env.step(int(actions[k]))
        k += 1
        if terminated or truncated:
            return time.perf_counter() - start


def side_by_side(backend: str, python: Path, reps: int) -> None:
    """Decisions per second of one hour of 15 s steps with random actions: our single env on the
    peer's demand (fixed, not randomised) and UXsim's C++ engine, alternating `reps` times."""
    probe = TrafficSignalEnv(backend=backend)
    demand = tuple(float(q) for q in peer.peer_demand(probe.network))
    probe.close()
    env = TrafficSignalEnv(EnvConfig(backend=backend, demand_veh_h=demand, randomize_demand=False))
    rng = np.random.default_rng(0)
    hour_of_decisions(env, rng)  # warm-up
    steps = round(env.config.episode_seconds / env.config.decision_interval)
    ours, theirs = [], []
    for _ in range(reps):
        ours.append(steps / hour_of_decisions(env, rng))
        theirs.append(peer.run_peer(python, "step15act")["dps"])
    env.close()
    mine, peer_dps = float(np.median(ours)), float(np.median(theirs))
    print(f"\none hour of 15 s decisions, random actions, same network, demand and cycle, {reps} "
          "interleaved runs each, medians")
    print(f"{'simulator':<34} {'decisions/s':>12}")
    print(f"{'ours (TrafficSignalEnv, ' + backend + ')':<34} {mine:>12,.0f}")
    print(f"{'UXsim C++ (240 x exec_simulation)':<34} {peer_dps:>12,.0f}")
    print(f"ours vs UXsim: {mine / peer_dps:.2f}x its speed (runs: ours {np.round(ours).tolist()}, "
          f"UXsim {np.round(theirs).tolist()})")


def first_build(backend: str) -> dict[str, dict]:
    """Cold (empty Numba cache) and warm (cache filled by the cold run) builds, each in a new process."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold", "warm"):
            code = BUILD_SNIPPET.format(backend=backend)
            done = subprocess.run(
                [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
            )
            out[label] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured wall seconds per row")
    parser.add_argument("--backend", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--reps", type=int, default=5, help="interleaved hours of ours and UXsim")
    parser.add_argument("--peer-python", type=Path, default=peer.DEFAULT_PYTHON,
                        help="python of the venv holding uxsim (bench/peer.py)")
    args = parser.parse_args()
    events.set_stream(io.StringIO())

    builds = first_build(args.backend)
    print(f"first build, backend {args.backend} (fresh process; seconds)")
    print(f"{'cache':<6} {'kernel compile':>15} {'network_build':>14} {'acquire wall':>13}")
    for label, rec in builds.items():
        compile_s = rec["kernel_compile"]["seconds"]
        build_s = rec["network_build"]["seconds"]
        print(f"{label:<6} {compile_s:>15.3f} {build_s:>14.3f} {rec['wall']:>13.3f}")

    single = single_env(args.backend, args.seconds)
    rows = [("TrafficSignalEnv", 1, single)]
    rows += [(f"TrafficVecEnv({n})", n, vec_env(n, args.backend, args.seconds)) for n in args.sizes]
    print(f"\nenv steps per second, random actions, 15 s decisions (backend {args.backend})")
    print("(in advance: share of the wall time inside Simulator.advance; outside: the rest, per step call)")
    head = f"{'environment':<20} {'env-steps/s':>12} {'vs single':>10} {'in advance':>11} {'outside us':>11}"
    print(f"{head} {'reset ms':>9}")
    for name, _, r in rows:
        ratio = r["steps_per_s"] / single["steps_per_s"]
        print(
            f"{name:<20} {r['steps_per_s']:>12,.0f} {ratio:>9.2f}x {r['advance_share']:>11.0%} "
            f"{r['layer_us']:>11,.0f} {r['reset_ms']:>9.3f}"
        )
    print(f"\nsingle env: observation read {single['observe_ms']:.3f} ms, reset {single['reset_ms']:.3f} ms")
    if peer.available(args.peer_python):
        side_by_side(args.backend, args.peer_python, args.reps)
    else:
        print(f"\nUXsim side by side skipped: no {args.peer_python} or {peer.PEER_SCRIPT} (bench/peer.py)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (this machine: {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
