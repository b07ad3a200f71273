"""The fundamental diagram (v_f, jam spacing, wave speed W) as a traffic engineer measures it:
saturation flow at a green and the start-up wave, speeds bounded by the road, one speed per
class, and the delay from the same transport (docs/model.md, docs/calibration.md)."""

from __future__ import annotations

import numpy as np
import pytest

from lib.sim.network import load_network
from lib.sim.simulator import SimConfig, Simulator, capacity_veh_s
from tests.test_sim_physics import ring, road


@pytest.fixture(scope="module")
def net():
    return load_network()


def jammed_approach(net, approach, cfg: SimConfig) -> tuple[Simulator, float]:
    """A simulator whose only traffic is a standing queue of cars filling `approach`'s link, red
    until the returned green start time (s)."""
    sim = Simulator(net, backend="cpu", config=cfg)
    lk = net.links[approach.link]
    rho = np.zeros((2, net.n_cells))
    rho[1, lk.first_cell: lk.first_cell + lk.n_cells] = sim._static["cell_rj"][lk.first_cell]
    sim.set_state(rho, np.zeros((2, net.n_cells)))
    phases = np.zeros(net.n_signals, dtype=np.int64)
    if approach.phase == 0:
        return sim, 0.0
    sim.advance(cfg.min_green_s)
    phases[approach.signal] = approach.phase
    sim.set_phase(phases)
    return sim, cfg.min_green_s + cfg.amber_s


def test_saturation_flow_at_a_green_is_the_derived_capacity_on_every_signalised_approach(net) -> None:
    cfg = SimConfig()
    for approach in net.approaches:
        sim, green = jammed_approach(net, approach, cfg)
        lk = net.links[approach.link]
        sim.advance(green + 5.0 - float(sim.time[0]))
        before = sim.cumulative_link_outflow()[0, lk.index]
        sim.advance(30.0)
        rate = (sim.cumulative_link_outflow()[0, lk.index] - before) / 30.0
        capacity = capacity_veh_s(lk.free_speed_mps, cfg.rho_jam_per_lane * lk.lanes, cfg)
        assert rate == pytest.approx(capacity, rel=0.05), (lk.name, approach.index, 3600 * rate,
                                                           3600 * capacity)


def test_start_up_wave_runs_back_at_the_wave_speed() -> None:
    """A queue on a long road released at t = 0: the discharge front (density half-way between
    jam and critical) passes 200 m and 800 m upstream of the release point W apart in time."""
    net = road(80)  # 4 km, 50 m cells
    cfg = SimConfig()
    sim = Simulator(net, backend="cpu", config=cfg)
    rj = float(sim._static["cell_rj"][0])
    centres = (np.arange(net.n_cells) + 0.5) * (4000.0 / net.n_cells)
    release = 3000.0
    rho = np.zeros((2, net.n_cells))
    rho[1, centres < release] = rj
    sim.set_state(rho, np.zeros((2, net.n_cells)))
    wave = cfg.wave_speed_mps
    vf = float(sim._static["cell_vf"][0])
    middle = 0.5 * (rj + wave * rj / (vf + wave))
    watched = [int(np.argmin(np.abs(centres - (release - d)))) for d in (200.0, 800.0)]
    passed = [None, None]
    t = 0.0
    while None in passed and t < 400.0:
        sim.advance(1.0)
        t += 1.0
        density = sim.cell_state()[0][0, 1]
        for j, cell in enumerate(watched):
            if passed[j] is None and density[cell] < middle:
                passed[j] = t
    speed = (centres[watched[0]] - centres[watched[1]]) / (passed[1] - passed[0])
    assert speed == pytest.approx(wave, rel=0.2), (speed, passed)


def test_no_class_ever_exceeds_its_links_free_speed(net) -> None:
    """Random hours with random, also heavy, demand and random phases, 8 scenarios: neither the
    reported speed nor the ARZ speed w - p of any class in any cell passes 1.05 v_f of its link."""
    B = 8
    sim = Simulator(net, n_scenarios=B, backend="cpu")
    rng = np.random.default_rng(11)
    vf = sim._static["cell_vf"]
    worst = 0.0
    for step in range(360):
        if step % 60 == 0:
            sim.set_demand(rng.uniform(0.0, 3000.0, (B, net.n_entries)), rng.uniform(0.0, 0.6, B))
        sim.set_phase(rng.integers(0, 2, (B, net.n_signals)))
        sim.advance(10.0)
        if step % 3 == 0:
            _, v = sim.cell_state()
            rho, y, _ = sim._engine.cells()
            present = rho > sim.config.eps_density
            arz = np.where(present, y / np.where(present, rho, 1.0) - sim._pressures(rho), 0.0)
            worst = max(worst, float((v / vf).max()), float((arz / vf[None, :, None]).max()))
    assert worst <= 1.05, worst
    assert sim.cumulative_exited().min() > 1000


def test_a_total_jam_accrues_one_vehicle_second_per_second_per_vehicle() -> None:
    """Both classes at jam (space density k_j) on a closed ring: nothing moves, motorcycles
    included (their ARZ speed is positive, but there is no space), so the delay is 1 veh-s/s."""
    net = ring()
    cfg = SimConfig()
    sim = Simulator(net, backend="cpu", config=cfg)
    rj = sim._static["cell_rj"]
    share = 0.3  # of the space
    rho = np.stack([share * rj / cfg.moto_space_weight, (1 - share) * rj])
    sim.set_state(rho, np.zeros_like(rho))
    sim.advance(60.0)
    before = sim.cumulative_delay()[0]
    sim.advance(120.0)
    rate = (sim.cumulative_delay()[0] - before) / 120.0
    assert rate == pytest.approx(sim.vehicles()[0], rel=0.01)
    rho_now, v = sim.cell_state()
    assert np.abs(rho_now[0] - rho).max() <= 1e-12 * rho.max() and v.max() == 0.0


def test_delay_and_queue_read_outs_match_an_independent_sum_over_cell_state(net) -> None:
    """One substep's delay is sum_k,i dx rho_k (1 - v_k / v_f) dt + the entry queues x dt, with
    rho_k and v_k from cell_state() after it, for both classes; the approach queues are every
    vehicle in cells where a class present moves slower than queue_speed_mps."""
    cfg = SimConfig()
    sim = Simulator(net, n_scenarios=3, backend="cpu", config=cfg)
    # the third scenario is motorcycles only: a read-out that ignores them reads nothing there
    sim.set_demand(np.full((3, net.n_entries), 1800.0), moto_share=np.array([0.3, 0.6, 1.0]))
    for k in range(30):
        sim.set_phase(np.full((3, net.n_signals), (k // 3) % 2))
        sim.advance(10.0)
    before = sim.cumulative_delay()
    sim.advance(sim.dt)
    rho, v = sim.cell_state()
    dx, vf = sim._static["cell_dx"], sim._static["cell_vf"]
    per_class = (rho * np.maximum(1.0 - v / vf, 0.0) * dx).sum(axis=2) * sim.dt  # (B, 2)
    queued = sim.queue_lengths().sum(axis=1) * sim.dt
    assert np.all(per_class[:, 0] > 0.05 * per_class[:, 1]), per_class  # motorcycles are delayed too
    np.testing.assert_allclose(sim.cumulative_delay() - before, per_class.sum(axis=1) + queued, rtol=1e-9)
    standing = ((rho > cfg.queue_min_density) & (v < cfg.queue_speed_mps)).any(axis=1)  # (B, cells)
    mass = rho.sum(axis=1) * dx
    for a in net.approaches:
        lk = net.links[a.link]
        cells = slice(lk.first_cell, lk.first_cell + lk.n_cells)
        expected = np.where(standing[:, cells], mass[:, cells], 0.0).sum(axis=1)
        np.testing.assert_allclose(sim.approach_state()[:, a.index, 2], expected, rtol=1e-9, atol=1e-12)
    assert np.all(sim.approach_state()[:, :, 2].sum(axis=1) > 10)
