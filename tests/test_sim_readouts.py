"""Approach read-outs: a standing queue is counted even where motorcycles filter through it."""

from __future__ import annotations

import numpy as np
import pytest

from lib.sim.network import load_network
from lib.sim.simulator import Simulator


@pytest.fixture(scope="module")
def net():
    return load_network()


def _approach_cells(net, approach: int, n_last: int) -> tuple[slice, float]:
    link = net.links[net.approaches[approach].link]
    end = link.first_cell + link.n_cells
    return slice(end - n_last, end), link.dx_m


def test_cars_standing_while_motorcycles_filter_are_a_queue(net):
    sim = Simulator(net, backend="cpu")
    rho = np.zeros((2, net.n_cells))
    v = np.zeros((2, net.n_cells))
    cells, dx = _approach_cells(net, 0, 4)
    rho[0, cells], v[0, cells] = 0.10, 5.8  # motorcycles moving through the queue
    rho[1, cells], v[1, cells] = 0.10, 0.0  # cars standing
    sim.set_state(rho, v)
    queue = sim.approach_state()[0, :, 2]
    assert queue[0] == pytest.approx(4 * dx * 0.20, rel=1e-12)
    assert np.all(queue[1:] == 0.0)
    mean_speed = (0.10 * 5.8) / 0.20
    assert mean_speed > sim.config.queue_speed_mps, "the cells' mean speed alone would hide this queue"


def test_motorcycles_standing_alone_are_a_queue_and_traces_are_not(net):
    sim = Simulator(net, backend="cpu")
    rho = np.zeros((2, net.n_cells))
    v = np.full((2, net.n_cells), 10.0)
    moto, dx = _approach_cells(net, 1, 2)
    rho[0, moto], v[0, moto] = 0.1, 0.5
    trace, _ = _approach_cells(net, 2, 3)
    rho[0, trace], v[0, trace] = 0.1, 10.0
    rho[1, trace], v[1, trace] = 1e-9, 0.0  # a numerical trace of standing cars
    sim.set_state(rho, v)
    queue = sim.approach_state()[0, :, 2]
    assert queue[1] == pytest.approx(2 * dx * 0.1, rel=1e-12)
    assert queue[2] == 0.0


def test_readouts_agree_across_batch_sizes(net):
    """Scenario b of a batch reads exactly what the same scenario reads alone."""
    rng = np.random.default_rng(3)
    demand = rng.uniform(300, 900, size=(3, net.n_entries))
    phases = rng.integers(0, 2, size=(3, net.n_signals))
    batch = Simulator(net, n_scenarios=3, backend="cpu")
    batch.set_demand(demand)
    batch.set_phase(phases)
    batch.advance(240.0)
    for b in range(3):
        alone = Simulator(net, backend="cpu")
        alone.set_demand(demand[b])
        alone.set_phase(phases[b])
        alone.advance(240.0)
        assert np.array_equal(alone.approach_state()[0], batch.approach_state()[b])
