"""The FIFO node model at junctions (docs/model.md): spill-back that blocks, turning fractions kept,
no flow outside movements.csv, no flow in amber, permitted left turns that yield, turn pockets."""

from __future__ import annotations

import numpy as np
import pytest

from lib.sim.network import build_network
from lib.sim.simulator import SimConfig, Simulator
from tests import junction_net
from tests.junction_net import link


def inflows(sim: Simulator) -> np.ndarray:
    """(n_links,) vehicles that have entered each link of scenario 0: on it now plus those that left."""
    length = np.array([lk.length_m for lk in sim.network.links])
    return sim.link_density()[0] * length + sim.cumulative_link_outflow()[0]


def held_red(net, minutes: int = 20, moto_share: float = 0.3) -> tuple[Simulator, list[np.ndarray]]:
    """Demand 1,200 veh/h at entry 1; K turns red for B after 10 s and stays red. Returns the
    simulator and each link's inflow over every minute."""
    sim = Simulator(net, backend="cpu")
    demand = np.array([1200.0 if net.nodes[e].osm_id == 1 else 0.0 for e in net.entries])
    sim.set_demand(demand, moto_share=moto_share)
    sim.advance(10.0)
    sim.set_phase(np.array([1]))
    per_minute = []
    for _ in range(minutes):
        before = inflows(sim)
        sim.advance(60.0)
        per_minute.append(inflows(sim) - before)
    return sim, per_minute


def test_jammed_receiving_link_stops_its_approach_and_blocks_the_upstream_junction() -> None:
    net = junction_net.network(fractions={"B": 0.3, "C": 0.7})
    sim, per_minute = held_red(net)
    L = {name: link(net, name) for name in "ZABCE"}
    total = inflows(sim)
    # what passed J before B jammed split 30/70 exactly
    assert total[L["C"]] > 10
    assert total[L["C"]] / total[L["B"]] == pytest.approx(0.7 / 0.3, rel=1e-9)
    # B at jam: A sends nothing to C either (strict FIFO), and the queue on A blocks U for E too
    last = per_minute[-1]
    assert last[L["B"]] < 1e-6 and last[L["C"]] < 1e-6, last
    assert last[L["E"]] < 1e-6, "the queue on A did not block the upstream junction U"
    assert per_minute[0][L["E"]] > 5  # E was flowing before the spill-back reached U
    assert sim.queue_lengths()[0].max() > 50  # and the queue reaches back to the entry
    rho, _ = sim.cell_state()
    rj = sim._static["cell_rj"]
    for name in "ABZ":
        lk = net.links[L[name]]
        cells = slice(lk.first_cell, lk.first_cell + lk.n_cells)
        assert rho[0, :, cells].sum(axis=0).min() > 0.9 * rj[lk.first_cell], name


def test_a_turn_pocket_lets_its_movement_pass_a_held_approach() -> None:
    net = junction_net.network(pocket="C")
    sim, per_minute = held_red(net)
    L = {name: link(net, name) for name in "BCE"}
    last = per_minute[-1]
    assert last[L["B"]] < 1e-6
    assert last[L["C"]] > 5, "the pocketed movement was held by the jammed through movement"
    assert last[L["E"]] > 5


def test_no_flow_between_links_that_movements_csv_does_not_join() -> None:
    """A crossing where each incoming link has only one listed way out: the other pair gets nothing."""
    nodes = [{"osm_id": i, "lat": 6.43 + 0.001 * y, "lon": 3.42 + 0.001 * x, "traffic_signals": False}
             for i, (x, y) in {1: (0, 0), 2: (-2, 2), 3: (0, 2), 4: (0, 4), 5: (2, 2)}.items()]
    edges = [{"u": u, "v": v, "name": f"r{u}{v}", "highway": "primary", "length_m": 200.0, "oneway": True,
              "osm_lanes": 1, "geometry_wkt": ""} for u, v in ((1, 3), (2, 3), (3, 4), (3, 5))]
    rows = [{"intersection": 3, "from_u": a, "from_v": 3, "to_u": 3, "to_v": b, "turn": "through",
             "fraction": 1, "phase": "", "storage_m": ""} for a, b in ((1, 4), (2, 5))]
    net = build_network(edges, nodes, movements=rows)
    assert len(net.movements) == 2
    sim = Simulator(net, backend="cpu")
    sim.set_demand(np.array([1500.0 if net.nodes[e].osm_id == 1 else 0.0 for e in net.entries]))
    sim.advance(600.0)
    to_5 = next(lk.index for lk in net.links if lk.edges[0] == (3, 5))
    to_4 = next(lk.index for lk in net.links if lk.edges[0] == (3, 4))
    got = inflows(sim)
    assert got[to_4] > 100
    assert got[to_5] == 0.0


def test_no_flow_through_any_movement_during_amber() -> None:
    """Kernel-level amber: after a switch no movement of the signal passes anything for amber_s,
    then the new phase flows."""
    net = junction_net.network(length_m=100.0)
    cfg = SimConfig(amber_s=3.0)
    sim = Simulator(net, backend="cpu", config=cfg)
    sim.set_demand(np.full(net.n_entries, 900.0))
    sim.advance(120.0)  # phase 0: B flows, F queues at its red
    served = [link(net, "B"), link(net, "F")]
    assert sim.cumulative_link_outflow()[0, served[0]] > 5
    sim.set_phase(np.array([1]))
    before = sim.cumulative_link_outflow()[0, served].copy()
    for _ in range(3):
        sim.advance(1.0)
        np.testing.assert_array_equal(sim.cumulative_link_outflow()[0, served], before)
    assert not sim.in_amber()[0, 0]
    sim.advance(5.0)
    after = sim.cumulative_link_outflow()[0, served]
    assert after[1] > before[1] + 1 and after[0] == before[0]


def test_permitted_left_turn_yields_to_the_opposing_through_flow() -> None:
    """Two opposing approaches in one phase: the left turn's flow falls as the opposing flow rises,
    to the gap-acceptance capacity q e^{-q t_c} / (1 - e^{-q t_f})."""
    # south (1) and north (2) approaches to junction 3 (signalised), exits west (4), north (5), south (6)
    pos = {1: (0, 0), 2: (0, 4), 3: (0, 2), 4: (-2, 2), 5: (0, 6), 6: (0, -2)}
    signal = {3}
    nodes = [{"osm_id": i, "lat": 6.43 + 0.001 * y, "lon": 3.42 + 0.001 * x, "traffic_signals": i in signal}
             for i, (x, y) in pos.items()]
    edges = [{"u": u, "v": v, "name": f"r{u}{v}", "highway": "primary", "length_m": 300.0, "oneway": True,
              "osm_lanes": 1, "geometry_wkt": ""} for u, v in ((1, 3), (2, 3), (3, 4), (3, 5), (3, 6))]

    def row(a, b, turn, fraction):
        return {"intersection": 3, "from_u": a, "from_v": 3, "to_u": 3, "to_v": b, "turn": turn,
                "fraction": fraction, "phase": 0, "storage_m": 0}

    rows = [row(1, 4, "left", 0.5), row(1, 5, "through", 0.5), row(2, 6, "through", 1.0)]
    net = build_network(edges, nodes, movements=rows)
    left = next(m for m in net.movements if m.turn == "left")
    assert net.links[left.yields_to].edges[-1] == (2, 3)
    cfg = SimConfig()
    west = next(lk.index for lk in net.links if lk.edges[0] == (3, 4))
    rates = []
    for opposing in (0.0, 600.0, 1500.0):
        sim = Simulator(net, backend="cpu", config=cfg)
        sim.set_demand(np.array([1800.0 if net.nodes[e].osm_id == 1 else opposing for e in net.entries]),
                       moto_share=0.0)
        sim.advance(900.0)
        before = inflows(sim)[west]
        opp_before = sim.cumulative_link_outflow()[0, left.yields_to]
        sim.advance(600.0)
        q_opp = (sim.cumulative_link_outflow()[0, left.yields_to] - opp_before) / 600.0
        rates.append(((inflows(sim)[west] - before) / 600.0, q_opp))
    (free, _), (mid, _), (busy, q_busy) = rates
    assert free > mid > busy > 0
    gap = q_busy * np.exp(-q_busy * cfg.left_gap_s) / -np.expm1(-q_busy * cfg.left_followup_s)
    assert busy == pytest.approx(gap, rel=0.05), (busy, gap, rates)
