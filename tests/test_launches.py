"""Every kernel launch is counted with its grid size, per simulator and for the process: a run's
launches per decision and grid sizes (run_end) come from these counters."""

from __future__ import annotations

import numpy as np

from lib.rl.env import DECISION_STEPS
from lib.rl.train import launch_report
from lib.sim import launches
from lib.sim.simulator import SimConfig, Simulator
from tests import junction_net


def test_the_cpu_counts_one_launch_per_advance_and_per_read_out() -> None:
    sim = Simulator(junction_net.network(), n_scenarios=5, backend="cpu", config=SimConfig(cpu_chunk=2))
    sim.set_demand(np.full(sim.network.n_entries, 900.0))
    before = launches.TOTAL.snapshot()
    sim.advance(40.0)
    sim.advance(0.5)
    sim.approach_state()
    chunks = -(-5 // sim._engine.W)
    assert sim.launches.by_kernel == {"advance_kernel": 2, "approach_kernel": 1}
    assert sim.launches.grids == {chunks: 3}
    assert launches.since(before) == {"launches": 3, "grids": {chunks: 3}}, "the process total follows"


def test_the_run_reports_launches_per_decision_step(monkeypatch) -> None:
    counter = launches.LaunchCounter()
    monkeypatch.setattr(launches, "TOTAL", counter)
    counter.add("k_reset", 4)
    before = counter.snapshot()
    for _ in range(6):
        counter.add("k_advance", 1)
    counter.add("k_vehicles", 4)
    start = DECISION_STEPS[0]
    monkeypatch.setattr("lib.rl.train.DECISION_STEPS", [start + 3])  # three decision steps in the run
    report = launch_report(before, start)
    assert report == {"launches": 7, "decisions": 3, "launches_per_decision": 2.33,
                      "grid_sizes": {"1": 6, "4": 1}}
