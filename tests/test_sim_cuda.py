"""The CUDA backend agrees with the CPU backend, run in numba's CUDA simulator (no GPU needed).

NUMBA_ENABLE_CUDASIM must be set before numba is imported, so the comparison runs in a
subprocess on a tiny network (a signalised merge/diverge, 23 cells) for a few steps, for the
first-order scheme and for the second-order one (SimConfig.order = 2). The read-outs must not
copy the cell state from the device (they are reduced there)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
import json
import sys
import numpy as np
from lib.sim.network import build_network
from lib.sim.simulator import SimConfig, Simulator, compile_kernels

def node(i, dy, dx, signal=False):
    return {"osm_id": i, "lat": 6.43 + dy, "lon": 3.42 + dx, "traffic_signals": signal}

def edge(u, v, length):
    return {"u": u, "v": v, "name": f"r{u}{v}", "highway": "primary", "length_m": length, "oneway": True,
            "osm_lanes": 1, "geometry_wkt": ""}

nodes = [node(1, 0, -0.002), node(2, 0.002, 0), node(3, 0, 0.002), node(4, -0.002, 0), node(5, 0, 0, True),
         node(6, -0.004, 0), node(7, 0, 0.004)]
edges = [edge(1, 5, 200.0), edge(2, 5, 200.0), edge(5, 3, 200.0), edge(5, 4, 150.0), edge(4, 6, 100.0),
         edge(3, 7, 300.0)]
net = build_network(edges, nodes, cell_length_m=50.0)
seconds, cached = compile_kernels("cuda")
out = {"compile_s": seconds, "cached": cached, "cells": net.n_cells}
config = SimConfig(order=int(sys.argv[1]))
sims = {b: Simulator(net, n_scenarios=2, backend=b, config=config) for b in ("cpu", "cuda")}
rng = np.random.default_rng(1)
demand = rng.uniform(300, 1500, (2, net.n_entries))
for sim in sims.values():
    sim.set_demand(demand, moto_share=np.array([0.3, 0.6]))
for step in range(3):
    phase = np.array([[step % 2], [0]], dtype=np.int64)
    for sim in sims.values():
        sim.set_phase(phase)
        sim.advance(12.0)
def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-300))
cpu, gpu = sims["cpu"], sims["cuda"]
out["backend"] = gpu.backend
def whole_state_copied():
    raise AssertionError("a read-out copied the whole cell state to the host")
cells = gpu._engine.cells
gpu._engine.cells = whole_state_copied  # the read-outs below must reduce on the device
for name in ("vehicles", "cumulative_entered", "cumulative_exited", "cumulative_delay", "queue_lengths",
             "link_density", "link_speed", "cumulative_link_outflow", "approach_state"):
    out[name] = rel(getattr(cpu, name)(), getattr(gpu, name)())
gpu._engine.cells = cells
out["cells"] = max(rel(a, b) for a, b in zip(cpu.cell_state(), gpu.cell_state()))
out["moving"] = float(cpu.cumulative_exited().min())
print("RESULT " + json.dumps(out))
"""


@pytest.mark.parametrize("order", [1, 2])
def test_cuda_backend_matches_cpu_in_the_cuda_simulator(order: int) -> None:
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(order)], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert result["backend"] == "cuda"
    assert result["moving"] > 0, "nothing left the network: the comparison would be vacuous"
    for name, value in result.items():
        if name not in ("backend", "compile_s", "cached", "moving"):
            assert value <= 1e-10, (name, value, result)
