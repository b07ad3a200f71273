"""The simulator on the Victoria Island network: conservation, bounds, signals, spill-back, no
gridlock of the intersections, and the read-out API shapes."""

from __future__ import annotations

import numpy as np
import pytest

from lib.config import ConfigError
from lib.sim.network import load_network
from lib.sim.simulator import SimConfig, Simulator, capacity_veh_s

B = 4


@pytest.fixture(scope="module")
def net():
    return load_network()


def check_bounds(sim: Simulator) -> None:
    rho, v = sim.cell_state()
    rj, vf = sim._static["cell_rj"], sim._static["cell_vf"]
    assert np.isfinite(rho).all() and np.isfinite(v).all()
    assert rho.min() >= 0.0
    assert np.all(sim.config.moto_space_weight * rho[:, 0] + rho[:, 1] <= rj * (1 + 1e-12))
    assert v.min() >= 0.0 and np.all(v <= vf * (1 + 1e-12))
    assert sim.queue_lengths().min() >= -1e-9


def random_hour(sim: Simulator, rng: np.random.Generator, check_every: int = 6) -> None:
    """One hour of random demands and random phase requests every 10 s, bounds checked every minute."""
    ne, ns = sim.network.n_entries, sim.network.n_signals
    for step in range(360):
        if step % 60 == 0:
            share = rng.uniform(0.1, 0.6, sim.n_scenarios)
            sim.set_demand(rng.uniform(0.0, 1800.0, (sim.n_scenarios, ne)), share)
        sim.set_phase(rng.integers(0, 2, (sim.n_scenarios, ns)))
        sim.advance(10.0)
        if step % check_every == 0:
            check_bounds(sim)


@pytest.mark.parametrize("order", [1, 2])
def test_mass_balance_bounds_and_no_gridlock_over_a_random_hour(net, order: int) -> None:
    sim = Simulator(net, n_scenarios=B, backend="cpu", config=SimConfig(initial_load=0.1, order=order))
    start = sim.vehicles()
    random_hour(sim, np.random.default_rng(3))
    entered, exited = sim.cumulative_entered(), sim.cumulative_exited()
    assert np.all(entered > 1000)
    balance = np.abs(sim.vehicles() - start - entered + exited)
    assert np.all(balance <= 1e-9 * entered), balance / entered
    assert np.allclose(sim.time, 3600.0)
    assert np.all(sim.switches() > 0) and np.all(sim.ignored_requests() > 0)
    # no gridlock: with the demand off and the phases alternating, every approach holding
    # vehicles discharges through its intersection within 5 minutes
    sim.set_demand(np.zeros(net.n_entries))
    approach_links = [a.link for a in net.approaches]
    busy = sim.link_density()[:, approach_links] > 0.01
    before = sim.cumulative_link_outflow()[:, approach_links]
    for k in range(10):
        sim.set_phase(np.full(net.n_signals, k % 2))
        sim.advance(30.0)
    moved = sim.cumulative_link_outflow()[:, approach_links] - before
    assert np.all(moved[busy] > 1.0), "an occupied approach sent nothing for 5 minutes: gridlock"


def test_red_light_queue_spills_back_and_discharges_near_capacity(net) -> None:
    cfg = SimConfig()
    sim = Simulator(net, n_scenarios=1, backend="cpu", config=cfg)
    fed = [a for a in net.approaches if net.nodes[net.links[a.link].from_node].in_links]
    approach = max(fed, key=lambda a: net.links[a.link].length_m)
    lk = net.links[approach.link]
    upstream = net.nodes[lk.from_node].in_links
    red = (approach.phase + 1) % net.signals[approach.signal].n_phases
    phases = np.zeros(net.n_signals, dtype=np.int64)
    sim.set_demand(np.full(net.n_entries, 1500.0), moto_share=0.0)  # cars only: capacity is exact
    sim.advance(cfg.min_green_s)
    phases[approach.signal] = red
    sim.set_phase(phases)
    sim.advance(1200.0)
    rj = sim._static["cell_rj"]
    rho, _ = sim.cell_state()
    total = rho[0].sum(axis=0)
    assert total[lk.first_cell + lk.n_cells - 1] > 0.95 * rj[lk.first_cell], "no queue at the red stop line"
    assert sim.approach_state()[0, approach.index, 2] > 0.5 * lk.length_m * rj[lk.first_cell]
    spilled = [u for u in upstream if total[net.links[u].first_cell + net.links[u].n_cells - 1]
               > 0.8 * rj[net.links[u].first_cell]]
    assert spilled, "the queue did not spill back into the upstream link"
    sim.advance(cfg.min_green_s)
    phases[approach.signal] = approach.phase
    sim.set_phase(phases)
    sim.advance(cfg.amber_s)
    before = sim.cumulative_link_outflow()[0, lk.index]
    sim.advance(60.0)
    rate = (sim.cumulative_link_outflow()[0, lk.index] - before) / 60.0
    capacity = capacity_veh_s(lk.free_speed_mps, rj[lk.first_cell], cfg)
    assert 0.95 * capacity <= rate <= 1.05 * capacity, (rate, capacity)


def test_signal_rules_amber_and_min_green(net) -> None:
    cfg = SimConfig(amber_s=3.0, min_green_s=10.0)
    sim = Simulator(net, n_scenarios=2, backend="cpu", config=cfg)
    ns = net.n_signals
    sim.set_phase(np.ones(ns, dtype=np.int64))
    assert sim.ignored_requests().tolist() == [ns, ns] and np.all(sim.current_phase() == 0)
    sim.advance(10.0)
    sim.set_phase(np.array([np.ones(ns), np.zeros(ns)], dtype=np.int64))
    assert sim.switches().tolist() == [ns, 0]
    assert np.all(sim.in_amber()[0]) and not np.any(sim.in_amber()[1])
    assert np.all(sim.current_phase()[0] == 1)
    sim.advance(2.0)
    sim.set_phase(np.zeros((2, ns), dtype=np.int64))
    assert sim.ignored_requests()[0] == 2 * ns
    sim.advance(1.0)
    assert not np.any(sim.in_amber())
    np.testing.assert_allclose(sim.time_in_phase()[0], 3.0)
    np.testing.assert_allclose(sim.time_in_phase()[1], 13.0)


def test_read_out_shapes_reset_and_partial_reset(net) -> None:
    sim = Simulator(net, n_scenarios=3, backend="cpu")
    assert sim.backend == "cpu" and sim.nbytes > 0
    sim.set_demand(np.full((3, net.n_entries), 900.0), moto_share=np.array([0.2, 0.4, 0.6]))
    sim.advance(120.0)
    shapes = {
        "vehicles": (3,), "cumulative_entered": (3,), "cumulative_exited": (3,), "cumulative_delay": (3,),
        "link_density": (3, net.n_links), "link_speed": (3, net.n_links),
        "queue_lengths": (3, net.n_entries), "current_phase": (3, net.n_signals),
        "in_amber": (3, net.n_signals), "time_in_phase": (3, net.n_signals), "switches": (3,),
        "ignored_requests": (3,), "approach_state": (3, len(net.approaches), 3),
        "cumulative_link_outflow": (3, net.n_links),
    }
    for name, shape in shapes.items():
        assert getattr(sim, name)().shape == shape, name
    assert sim.time.shape == (3,)
    assert np.all(sim.cumulative_delay() > 0) and np.all(sim.vehicles() > 0)
    sim.reset(scenarios=[1])
    assert sim.vehicles()[1] == 0 and sim.vehicles()[0] > 0 and sim.time.tolist() == [120.0, 0.0, 120.0]
    sim.reset()
    assert np.all(sim.vehicles() == 0) and np.all(sim.cumulative_entered() == 0)


def test_bad_config_and_inputs_give_clear_errors(net) -> None:
    with pytest.raises(ConfigError, match="did you mean 'wave_speed_mps'|Did you mean 'wave_speed_mps'"):
        SimConfig.from_dict({"wave_speed_mp": 5.0})
    with pytest.raises(ConfigError, match="cfl"):
        SimConfig(cfl=1.5)
    with pytest.raises(ConfigError, match="tau_c"):
        SimConfig(tau_c=0.0)
    with pytest.raises(ConfigError, match="moto_space_weight"):
        SimConfig(moto_space_weight=1.5)
    with pytest.raises(ConfigError, match="order"):
        SimConfig(order=3)
    with pytest.raises(ValueError, match="backend"):
        Simulator(net, backend="gpu")
    sim = Simulator(net, n_scenarios=2, backend="cpu")
    with pytest.raises(ValueError, match="veh_per_hour"):
        sim.set_demand(np.ones(net.n_entries + 1))
    with pytest.raises(ValueError, match="phase"):
        sim.set_phase(np.full(net.n_signals, 5))
    with pytest.raises(ValueError, match="seconds"):
        sim.advance(float("nan"))
