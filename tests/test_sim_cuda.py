"""The CUDA backend agrees with the CPU backend, run in numba's CUDA simulator (no GPU needed).

NUMBA_ENABLE_CUDASIM must be set before numba is imported, so the comparison runs in a
subprocess on a tiny network (tests/junction_net.py: two diverges and a signal, 14 cells) for
three minutes in which a red light's queue spills back through both diverges and the entries
queue, for the first-order scheme; for 30 s, with entry queues, for the second-order one
(SimConfig.order = 2; slow in the CUDA simulator). Each `advance`, 30 s or 0.1 s, is one kernel
launch (the fused kernel), each read-out at most one, and the read-outs must not copy the cell
state from the device (they are reduced there)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib.config import ConfigError
from lib.sim.simulator import SimConfig, Simulator
from tests import junction_net

SCRIPT = r"""
import json
import sys
import numpy as np
from lib.sim.simulator import SimConfig, Simulator, compile_kernels
from tests import junction_net

# two diverges and a signal (tests/junction_net.py), 100 m links of 2 cells: B is held red, so
# its queue spills back through J and U to the entry, which queues; F's entry queues at its red
net = junction_net.network(length_m=100.0, cell_length_m=50.0)
seconds, cached = compile_kernels("cuda")
out = {"compile_s": seconds, "cached": cached, "cells": net.n_cells}
config = SimConfig(order=int(sys.argv[1]))
sims = {b: Simulator(net, n_scenarios=2, backend=b, config=config) for b in ("cpu", "cuda")}
demand = np.array([[3000.0, 900.0], [1800.0, 1500.0]])
for sim in sims.values():
    sim.set_demand(demand, moto_share=np.array([0.3, 0.6]))
# order 1: three minutes, long enough for the spill-back; order 2 (twice the substeps, each two
# stages, slow in the CUDA simulator): 30 s, in which the entry queue forms
# the fused kernel: one launch per advance whatever its length (30 s is many substeps, 0.1 s one)
per_advance = []
for phase in (0, 1, 1, 1, 1, 1)[: 6 if config.order == 1 else 1]:
    for sim in sims.values():
        sim.set_phase(np.array([[phase], [0]], dtype=np.int64))
        before = sim.launches.count
        sim.advance(30.0)
        per_advance.append(sim.launches.count - before)
for sim in sims.values():
    before = sim.launches.count
    sim.advance(0.1)
    per_advance.append(sim.launches.count - before)
out["launches_per_advance"] = max(per_advance)
def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-300))
cpu, gpu = sims["cpu"], sims["cuda"]
out["backend"] = gpu.backend
def whole_state_copied():
    raise AssertionError("a read-out copied the whole cell state to the host")
cells = gpu._engine.cells
gpu._engine.cells = whole_state_copied  # the read-outs below must reduce on the device
read_out_launches = {}
for name in ("vehicles", "cumulative_entered", "cumulative_exited", "cumulative_delay", "queue_lengths",
             "link_density", "link_speed", "cumulative_link_outflow", "approach_state"):
    before = gpu.launches.count
    out[name] = rel(getattr(cpu, name)(), getattr(gpu, name)())
    read_out_launches[name] = gpu.launches.count - before
gpu._engine.cells = cells
out["cells"] = max(rel(a, b) for a, b in zip(cpu.cell_state(), gpu.cell_state()))
out["moving"] = float(cpu.cumulative_exited().min())
out["entry_queue"] = float(cpu.queue_lengths()[0].max())
rho, _ = cpu.cell_state()
first_of_a = net.links[junction_net.link(net, "A")].first_cell
out["spilled"] = float(rho[0, :, first_of_a].sum() / cpu._static["cell_rj"][first_of_a])
print("RESULT " + json.dumps({"counts": {"launches": read_out_launches}, **out}))
"""


@pytest.mark.parametrize("order", [1, 2])
def test_cuda_backend_matches_cpu_in_the_cuda_simulator(order: int) -> None:
    result = run_simulated(SCRIPT, str(order))
    assert result["backend"] == "cuda"
    assert result["moving"] > 0, "nothing left the network: the comparison would be vacuous"
    assert result["entry_queue"] > 1, "no entry queue formed: the comparison would miss them"
    if order == 1:
        assert result["spilled"] > 0.9, "the queue did not spill back to the first diverge"
    assert result["launches_per_advance"] == 1, "one fused launch per advance, whatever its length"
    assert max(result.pop("counts")["launches"].values()) <= 1, "a read-out is one launch, or a copy"
    for name, value in result.items():
        if name not in ("backend", "compile_s", "cached", "moving", "entry_queue", "spilled",
                        "launches_per_advance"):
            assert value <= 1e-10, (name, value, result)


FLOAT32 = r"""
import json
import numpy as np
from lib.sim.simulator import SimConfig, Simulator
from tests import junction_net

# the network and demand of SCRIPT, three minutes (spill-back, entry queues), per precision
net = junction_net.network(length_m=100.0, cell_length_m=50.0)
out = {}
for precision in ("float64", "float32"):
    sim = Simulator(net, n_scenarios=2, backend="cuda", config=SimConfig(precision=precision))
    sim.set_demand(np.array([[3000.0, 900.0], [1800.0, 1500.0]]), moto_share=np.array([0.3, 0.6]))
    start = sim.vehicles()
    for phase in (0, 1, 1, 1, 1, 1):
        sim.set_phase(np.array([[phase], [0]], dtype=np.int64))
        sim.advance(30.0)
    balance = start + sim.cumulative_entered() - sim.cumulative_exited()
    error = np.abs(sim.vehicles() - balance) / sim.cumulative_entered()
    out[precision] = {"mass_error": float(error.max()), "dtype": str(sim._engine.state.rho.dtype),
                      "exited": float(sim.cumulative_exited().min())}
print("RESULT " + json.dumps(out))
"""


def test_float32_state_keeps_the_mass_balance_in_the_cuda_simulator() -> None:
    """SimConfig.precision = "float32" stores the cells in float32 and keeps the counters in
    float64: vehicles in the network stay the initial ones plus entered minus exited to float32
    round-off per vehicle entered (docs/PERFORMANCE.md has the figure)."""
    result = run_simulated(FLOAT32)
    single, double = result["float32"], result["float64"]
    assert single["dtype"] == "float32" and double["dtype"] == "float64"
    assert min(single["exited"], double["exited"]) > 0, "nothing left the network: a vacuous balance"
    assert double["mass_error"] < 1e-12, result
    assert 0 < single["mass_error"] < 1e-6, result
    print("mass error per vehicle entered, 180 s:", {k: v["mass_error"] for k, v in result.items()})


def run_simulated(script: str, *args: str) -> dict:
    """Run `script` in numba's CUDA simulator (a fresh process) and return its RESULT line."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_precision_is_checked_and_float32_is_cuda_only() -> None:
    with pytest.raises(ConfigError, match="precision must be 'float64' or 'float32'"):
        SimConfig(precision="float16")
    with pytest.raises(ConfigError, match="CUDA backend only"):
        Simulator(junction_net.network(), backend="cpu", config=SimConfig(precision="float32"))


BLOCKS = r"""
import json
import numpy as np
from lib.sim.simulator import Simulator
from tests import junction_net

# 33 scenarios: one full block of 32 and one with a single scenario, whose 31 idle slots must
# still reach every barrier and write nothing; each scenario its own demand, entry queues form
net = junction_net.network(length_m=100.0, cell_length_m=50.0)
sims = {b: Simulator(net, n_scenarios=33, backend=b) for b in ("cpu", "cuda")}
demand = np.random.default_rng(1).uniform(500.0, 3000.0, size=(33, net.n_entries))
for sim in sims.values():
    sim.set_demand(demand)
    sim.advance(20.0)
cpu, gpu = (sims[b].cell_state()[0] for b in ("cpu", "cuda"))
print("RESULT " + json.dumps({"blocks": sims["cuda"]._engine._shape[0],
                              "cells": float(np.max(np.abs(cpu - gpu)) / np.max(cpu)),
                              "entry_queue": float(sims["cpu"].queue_lengths().max())}))
"""


def test_scenarios_spread_over_several_blocks_match_the_cpu() -> None:
    result = run_simulated(BLOCKS)
    assert result["blocks"] == 2 and result["entry_queue"] > 1, result
    assert result["cells"] <= 1e-10, result


OCCUPANCY = r"""
import io
import json
import numpy as np
from lib.obs import events
from lib.sim.simulator import Simulator
from tests import junction_net

# 3 scenarios: one block, far below numba's 128; two advances and a read-out, three launches
stream = io.StringIO()
events.set_stream(stream)
sim = Simulator(junction_net.network(length_m=100.0, cell_length_m=50.0), n_scenarios=3, backend="cuda")
sim.set_demand(np.full(sim.network.n_entries, 900.0))
sim.advance(5.0)
sim.advance(5.0)
sim.vehicles()
events.set_stream(None)
records = [events.parse_line(line) for line in stream.getvalue().splitlines()]
warnings = [r for r in records if r and r["event"] == "warning" and r["category"] == "low_occupancy"]
print("RESULT " + json.dumps({"warnings": warnings, "launches": sim.launches.count}))
"""


def test_a_low_occupancy_grid_is_reported_once_with_its_cause() -> None:
    """A grid below the device's occupancy threshold emits one `warning` event (category
    low_occupancy) naming B, the grid, the block, the threshold and the fix; not one per launch."""
    result = run_simulated(OCCUPANCY)
    assert result["launches"] >= 3
    (warning,) = result["warnings"]
    assert warning["scenarios"] == 3 and warning["blocks"] == 1 and warning["threshold"] == 128, warning
    for part in ("B = 3", "1 block(s)", "128 blocks", "n_envs"):
        assert part in warning["message"], warning["message"]
