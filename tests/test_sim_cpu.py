"""The CPU backend's batching: chunked scenario layout, threads, and SIMD code in the kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lib.sim.network import load_network
from lib.sim.simulator import SimConfig, Simulator

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def net():
    return load_network()


def run(net, n_scenarios: int, config: SimConfig, demand: np.ndarray, phases: np.ndarray) -> dict:
    """Ten 20 s periods with the given per-scenario demands and phase requests; the read-outs."""
    sim = Simulator(net, n_scenarios=n_scenarios, backend="cpu", config=config)
    sim.set_demand(demand, moto_share=0.4)
    for period in range(10):
        sim.set_phase(phases[period])
        sim.advance(20.0)
    rho, v = sim.cell_state()
    return {"rho": rho, "v": v, "vehicles": sim.vehicles(), "entered": sim.cumulative_entered(),
            "exited": sim.cumulative_exited(), "delay": sim.cumulative_delay(), "queues": sim.queue_lengths(),
            "outflow": sim.cumulative_link_outflow()}


def test_scenarios_are_independent_of_chunking_and_threads(net) -> None:
    """Five different scenarios give the same results alone, in one 16-lane chunk, and in chunks of
    2 lanes (the last one padded) on 2 threads: lanes never mix, padding does nothing."""
    rng = np.random.default_rng(5)
    B = 5
    demand = rng.uniform(200.0, 1500.0, (B, net.n_entries))
    phases = rng.integers(0, 2, (10, B, net.n_signals))
    together = run(net, B, SimConfig(cpu_chunk=16, cpu_threads=1), demand, phases)
    chunked = run(net, B, SimConfig(cpu_chunk=2, cpu_threads=2), demand, phases)
    assert together["exited"].min() > 0
    for name, value in together.items():
        np.testing.assert_allclose(chunked[name], value, rtol=1e-12, atol=1e-15, err_msg=name)
    for s in (0, 3):
        alone = run(net, 1, SimConfig(), demand[s : s + 1], phases[:, s : s + 1])
        for name, value in together.items():
            np.testing.assert_allclose(alone[name][0], value[s], rtol=1e-12, atol=1e-15, err_msg=name)


def test_partial_reset_touches_only_its_lanes(net) -> None:
    sim = Simulator(net, n_scenarios=6, backend="cpu", config=SimConfig(cpu_chunk=4))
    sim.set_demand(np.full(net.n_entries, 900.0))
    sim.advance(60.0)
    before = sim.vehicles()
    sim.reset(scenarios=[1, 4])
    after = sim.vehicles()
    assert after[1] == 0 and after[4] == 0
    np.testing.assert_array_equal(np.delete(after, [1, 4]), np.delete(before, [1, 4]))


def test_kernel_lane_loops_compile_to_simd_instructions(tmp_path) -> None:
    """Compiled fresh (empty cache), much of the kernel's arithmetic is packed: the scenario loops
    vectorise. (Scalar code remains: the remainder loops, used for B = 1, and per-cell set-up.)"""
    snippet = ("import json; from lib.sim.simulator import compile_kernels; compile_kernels('cpu'); "
               "from lib.sim import cpu; print(json.dumps(cpu.instruction_mix()))")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", snippet], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    mix = json.loads(done.stdout.strip().splitlines()[-1])
    assert mix["packed"] >= 150, mix
    assert mix["packed"] >= 0.4 * mix["scalar"], mix
