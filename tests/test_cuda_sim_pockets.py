"""A turn pocket whose queue outgrows it (physics.pocket_coupling), in numba's CUDA simulator:
the CUDA backend matches the CPU and both keep the mass balance exact."""

from __future__ import annotations

from tests.test_sim_cuda import run_simulated

FRACTIONS = {"B": 0.85, "C": 0.15}  # more arrives on A than C alone discharges: A's queue fills it

SCRIPT = r"""
import json
import numpy as np
from lib.sim.simulator import Simulator
from tests import junction_net
from tests.test_cuda_sim_pockets import FRACTIONS

# B held red from 10 s; a 30 m pocket for A -> B, shorter than A's queue after a minute or two
out = {}
nets = {s: junction_net.network(length_m=100.0, cell_length_m=50.0, fractions=FRACTIONS, pocket="B",
                                storage_m=s) for s in (30.0, 1e6)}
sims = {(b, s): Simulator(nets[s], n_scenarios=2, backend=b) for b in ("cpu", "cuda") for s in nets}
for sim in sims.values():
    sim.set_demand(np.array([[2400.0, 0.0], [1500.0, 600.0]]), moto_share=np.array([0.3, 0.6]))
    start = sim.vehicles()
    sim.advance(10.0)
    sim.set_phase(np.array([[1], [1]], dtype=np.int64))
    for _ in range(6):
        sim.advance(30.0)
    balance = start + sim.cumulative_entered() - sim.cumulative_exited()
    out.setdefault("mass_error", 0.0)
    out["mass_error"] = max(out["mass_error"], float(np.max(np.abs(sim.vehicles() - balance))))
cpu, gpu = sims[("cpu", 30.0)], sims[("cuda", 30.0)]
rho_c, rho_g = cpu.cell_state()[0], gpu.cell_state()[0]
out["cells"] = float(np.max(np.abs(rho_c - rho_g)) / np.max(rho_c))
out["outflow"] = float(np.max(np.abs(cpu.cumulative_link_outflow() - gpu.cumulative_link_outflow())))
c = junction_net.link(nets[30.0], "C")
short, long = (sims[("cpu", s)].cumulative_link_outflow()[:, c].sum() for s in (30.0, 1e6))
out["coupled"] = float(short / long)
print("RESULT " + json.dumps(out))
"""


def test_a_filled_pocket_matches_the_cpu_and_keeps_mass_in_the_cuda_simulator() -> None:
    result = run_simulated(SCRIPT)
    assert result["coupled"] < 0.9, "the pocket never filled: the comparison would miss the coupling"
    assert result["cells"] <= 1e-10 and result["outflow"] <= 1e-9, result
    assert result["mass_error"] <= 1e-9, result
