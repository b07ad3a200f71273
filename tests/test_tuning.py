"""Tuned baselines: the signal model measured from discharge, storage keyed by simulator version."""

from __future__ import annotations

import numpy as np
import pytest

from lib.rl import protocol, tuning
from lib.rl.controllers import CONTROL_STEP_S, FixedTimePlan
from lib.rl.env import EnvConfig
from lib.sim.network import load_network

NETWORK = load_network()
pytestmark = pytest.mark.usefixtures("pool_events")


def synthetic_discharge(rate_veh_s: float, lag_s: int = 2, seconds: int = 60):
    """Each approach gets green at 0 s (first phase) or 13 s (after min green and amber) and
    discharges `rate` from `lag_s` after that (a start-up loss of exactly lag_s)."""
    t = np.arange(seconds)[:, None]
    start = np.array([0 if a.phase == 0 else 13 for a in NETWORK.approaches])[None, :]
    green = t >= start
    served = np.cumsum((t >= start + lag_s) * rate_veh_s, axis=0)
    return served, green


def test_saturation_flow_and_lost_time_from_a_known_discharge():
    served, green = synthetic_discharge(0.5)
    model = tuning._discharge_model(NETWORK, served, green, amber_s=3.0)
    assert model["saturation_veh_h"] == pytest.approx([1800.0] * len(NETWORK.approaches))
    assert model["lost_time_s"] == pytest.approx([2 * (3.0 + 2.0)] * NETWORK.n_signals)  # amber + start-up


def test_a_measurement_without_green_or_discharge_is_refused():
    served, green = synthetic_discharge(0.5)
    green[:, 0] = False
    with pytest.raises(RuntimeError, match="no .*green"):
        tuning._discharge_model(NETWORK, served, green, amber_s=3.0)
    served, green = synthetic_discharge(0.0)
    with pytest.raises(RuntimeError, match="discharged nothing"):
        tuning._discharge_model(NETWORK, served, green, amber_s=3.0)


def test_tuned_parameters_are_keyed_by_simulator_version(tmp_path, monkeypatch):
    base = EnvConfig(backend="cpu")
    path = tmp_path / "tuned.json"
    entry = {"sim_version": tuning.sim_version(base), "env": tuning.env_key(base), "levels": {"1/flat": {}}}
    tuning.save_tuned(entry, path)
    assert tuning.load_tuned(base, path) == entry
    with pytest.raises(LookupError, match="tuned for"):
        tuning.load_tuned(base.replace(moto_share=0.5), path)
    other = base.replace(sim={"amber_s": 4.0})
    assert tuning.sim_version(other) != tuning.sim_version(base)
    with pytest.raises(LookupError, match="--tune"):
        tuning.load_tuned(other, path)
    with pytest.raises(LookupError, match="not tuned"):
        tuning.tuned_level(entry, 1.2, "flat")
    tuning.save_tuned({**entry, "levels": {"1.2/flat": {"x": 1}}}, path)  # another level: both kept
    assert set(tuning.load_tuned(base, path)["levels"]) == {"1/flat", "1.2/flat"}


def test_tuning_refuses_other_seed_sets():
    with pytest.raises(ValueError, match="tuning seed set"):
        tuning.tune_level(EnvConfig(), NETWORK, {}, protocol.EVALUATION.take(2))


def test_coordinated_plans_keep_every_phase_above_amber_and_min_green():
    plan = tuning.plan_from(
        40.0,
        [np.array([1e-3, 5.0]), np.array([1.0, 1.0]), np.array([3.0, 1.0])],
        np.array([0.0, 55.0, -5.0]),
        floor=13.0,
    )
    assert plan.cycle_s == pytest.approx((40.0,) * 3)
    assert min(min(p) for p in plan.phase_s) >= 13.0
    assert plan.offset_s == pytest.approx((0.0, 15.0, 35.0))


def test_tuned_values_on_a_grid_edge_are_named():
    tuned = {
        "max_pressure": {"delta_s": max(tuning.DELTA_GRID_S)},
        "actuated": {
            "gap_veh_h_lane": tuning.GAP_GRID_VEH_H_LANE[1],
            "max_green_s": min(tuning.MAX_GREEN_GRID_S),
        },
    }
    assert tuning.grid_edges(tuned) == ["max_pressure.delta_s=120", "actuated.max_green_s=15"]
    tuned["max_pressure"]["delta_s"] = min(tuning.DELTA_GRID_S)  # the control step: no lower Delta
    tuned["actuated"]["gap_veh_h_lane"] = min(tuning.GAP_GRID_VEH_H_LANE)
    assert tuning.grid_edges(tuned) == ["actuated.gap_veh_h_lane=100", "actuated.max_green_s=15"]


def test_the_grids_reach_past_the_edges_tuned_before():
    """Issue 12: tunings picked Delta 2 s, 30 s and (once widened) 60 s, max green 20 s and 80 s,
    gap 300 and 1200 veh/h/lane, all edges then; each must now lie strictly inside its grid."""
    for grid, picked in (
        (tuning.DELTA_GRID_S, (2.0, 30.0, 60.0)),
        (tuning.MAX_GREEN_GRID_S, (20.0, 80.0, 120.0)),
        (tuning.GAP_GRID_VEH_H_LANE, (300.0, 1200.0)),
    ):
        assert all(min(grid) < value < max(grid) for value in picked), grid
    assert min(tuning.DELTA_GRID_S) == CONTROL_STEP_S


def test_the_fixed_time_search_also_starts_from_long_cycles(monkeypatch):
    """Delay made up to be least at a 90 s cycle: a search started only from a 30 s Webster plan
    would creep there in 4 rounds of shrinking steps at best; it starts there as well."""
    monkeypatch.setattr(
        tuning,
        "batch_delays",
        lambda make, plans, config, seeds: np.array([abs(p.cycle_s[0] - 90.0) + 1.0 for p in plans]),
    )
    start = FixedTimePlan(((15.0, 15.0),) * 3, (0.0,) * 3)
    plan, delay = tuning.tune_fixed_time(
        EnvConfig(), NETWORK, start, [10_000_000], 16, np.random.default_rng(0)
    )
    assert abs(plan.cycle_s[0] - 90.0) <= 1.0 + 1e-9 and delay <= 2.0
