"""Classic controllers on situations with a known right answer."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from lib.rl import controllers as ctl
from lib.rl.env import EnvConfig, TrafficSignalEnv
from lib.sim.network import load_network
from lib.sim.simulator import SimConfig

NETWORK = load_network()
STEP = EnvConfig(decision_interval=1.0)

pytestmark = pytest.mark.usefixtures("pool_events")


class FakeSim:
    """The read-outs controllers use, set by hand: one scenario, queues placed on approaches."""

    def __init__(self, phase=(0, 0, 0), time_in_phase=30.0, amber=False, time=100.0):
        self.network = NETWORK
        self.config = SimConfig()
        self.time = np.array([time])
        self.phase = np.array([phase], dtype=np.int64)
        self.tip = np.full((1, NETWORK.n_signals), time_in_phase)
        self.amber = np.full((1, NETWORK.n_signals), amber)
        self.state = np.zeros((1, len(NETWORK.approaches), 3))

    def queue_on(self, approach: int, vehicles: float) -> None:
        """Stand `vehicles` still on an approach link."""
        self.state[0, approach, 2] = vehicles

    def current_phase(self):
        return self.phase.copy()

    def in_amber(self):
        return self.amber.copy()

    def time_in_phase(self):
        return self.tip.copy()

    def approach_state(self):
        return self.state.copy()


def fake_env(sim: FakeSim, config: EnvConfig = STEP):
    """Single-env API whose actions are the requested phases themselves (easy to assert)."""
    return SimpleNamespace(sim=sim, network=NETWORK, config=config, encode_phases=np.array)


def approach(signal: int, phase: int) -> int:
    return next(a.index for a in NETWORK.approaches if a.signal == signal and a.phase == phase)


def decide(controller, sim):
    env = fake_env(sim)
    controller.reset(env)
    return controller.act(None, env)


# --------------------------------------------------------------------------- Webster and fixed time


def test_webster_formula_on_textbook_numbers():
    plan = ctl.webster_plan(np.array([0.3, 0.2]), lost_time_s=12.0)
    assert plan.cycle_s == pytest.approx((1.5 * 12 + 5) / (1 - 0.5))  # 46 s
    assert plan.greens_s == pytest.approx((20.4, 13.6))
    assert sum(plan.greens_s) + 12.0 == pytest.approx(plan.cycle_s)


def test_webster_bounds_oversaturation_and_min_green():
    short = ctl.webster_plan(np.array([0.05, 0.05]), 4.0)
    assert short.cycle_s == ctl.WEBSTER_MIN_CYCLE_S
    over = ctl.webster_plan(np.array([0.7, 0.35]), 6.0)  # Y = 1.05: the maximum, greens in proportion
    assert over.cycle_s == pytest.approx(ctl.WEBSTER_MAX_CYCLE_S)
    assert over.greens_s == pytest.approx((76.0, 38.0))
    plan = ctl.webster_plan(np.array([0.05, 0.45]), 6.0, min_green_s=10.0)
    assert min(plan.greens_s) == pytest.approx(10.0)
    assert plan.cycle_s == pytest.approx(sum(plan.greens_s) + 6.0)
    with pytest.raises(ValueError, match="flow_ratios"):
        ctl.webster_plan(np.array([-0.1, 0.2]), 6.0)


def test_link_flows_conserve_vehicles_at_every_junction():
    demand = np.array([300.0, 500.0, 700.0, 400.0, 600.0])
    flows = ctl.link_flows(NETWORK, demand)
    for node in NETWORK.nodes:
        if node.kind == "junction":
            assert sum(flows[i] for i in node.in_links) == pytest.approx(
                sum(flows[o] for o in node.out_links)
            )
    assert flows[list(NETWORK.exit_links)].sum() == pytest.approx(demand.sum())
    with pytest.raises(ValueError, match="one value per entry"):
        ctl.link_flows(NETWORK, demand[:3])


def test_webster_plan_from_measured_saturation_and_lost_time():
    saturation = np.full(len(NETWORK.approaches), 3600.0)
    demand = np.full(NETWORK.n_entries, 500.0)
    plan = ctl.webster_fixed_time(NETWORK, demand, saturation, np.full(3, 6.0), 3.0, 10.0)
    y = ctl.critical_flow_ratios(NETWORK, demand, saturation)
    for s, times in enumerate(plan.phase_s):
        expected = ctl.webster_plan(y[s], 6.0, 13.0 - 3.0)
        assert sum(times) == pytest.approx(expected.cycle_s)
        assert times == pytest.approx(tuple(g + 3.0 for g in expected.greens_s))


@pytest.mark.parametrize("step", [1.0, 2.0])
def test_webster_realised_cycle_and_greens_equal_the_plan_within_one_control_step(step):
    plan = ctl.FixedTimePlan(((16.7, 21.4), (15.2, 31.9), (15.0, 20.6)), (0.0, 0.0, 0.0))  # >= 13 s + a step
    env = TrafficSignalEnv(backend="cpu", episode_seconds=400.0, decision_interval=step)
    controller = ctl.FixedTime(plan, name="webster", control_step_s=step)
    obs, _ = env.reset(seed=3)
    controller.reset(env)
    phases = []
    for _ in range(int(400 / step)):
        obs, *_ = env.step(controller.act(obs, env))
        phases.append(env.sim.current_phase()[0].copy())
    env.close()
    for s, times in enumerate(plan.phase_s):
        flags = np.array([p[s] for p in phases])
        changes = np.flatnonzero(np.diff(flags)) + 1
        durations = np.diff(changes) * step
        assert len(durations) >= 6
        for k, d in enumerate(durations):
            assert abs(d - times[int(flags[changes[k]])]) <= step + 1e-9
        cycles = durations[: 2 * (len(durations) // 2)].reshape(-1, 2).sum(axis=1)
        assert np.all(np.abs(cycles - sum(times)) <= step + 1e-9)


def test_fixed_time_refuses_the_learners_decision_grid_and_bad_plans():
    plan = ctl.FixedTimePlan(((20.0, 20.0),) * 3, (0.0, 5.0, 10.0))
    with pytest.raises(ValueError, match="decision_interval=1.0"):
        ctl.FixedTime(plan).reset(fake_env(FakeSim(), EnvConfig(decision_interval=15.0)))
    with pytest.raises(ValueError, match="amber"):
        ctl.FixedTime(ctl.FixedTimePlan(((5.0, 20.0),) * 3, (0.0,) * 3)).reset(fake_env(FakeSim()))
    assert ctl.FixedTimePlan.from_dict(plan.to_dict()) == plan


def test_fixed_time_follows_offsets_on_the_clock():
    plan = ctl.FixedTimePlan(((20.0, 20.0),) * 3, (0.0, 10.0, 30.0))
    # t = 35: signal 0 at 35 -> phase 1; signal 1 at 25 -> phase 1; signal 2 at 5 -> phase 0
    assert decide(ctl.FixedTime(plan), FakeSim(time=35.0)).tolist() == [1, 1, 0]


# --------------------------------------------------------------------------- max-pressure


def test_downstream_share_of_a_receiving_link_follows_its_ratios_to_the_next_queue():
    """Signal 2's box (this network): link 12 reaches approach 2 (link 13) with share 1/7 by hand
    (x12 = x14 / 2, x14 = x11, x11 = x1 / 2, x1 = x12 / 2 + 1 / 2); an exit reaches none."""
    shares = ctl.downstream_shares(NETWORK)
    a2 = approach(1, 0)
    assert NETWORK.approaches[a2].link == 13
    assert shares[12, a2] == pytest.approx(1 / 7)
    assert shares[13, a2] == 1.0
    assert not shares[list(NETWORK.exit_links)].any()


def test_max_pressure_on_constructed_queues():
    saturation = np.linspace(2000.0, 3600.0, len(NETWORK.approaches))
    sim = FakeSim(phase=(0, 0, 0))
    sim.queue_on(approach(1, 0), 14.0)  # downstream of signal 2's phase 1 (links 16 -> 13, 12, 23 -> 11)
    controller = ctl.MaxPressure(saturation, delta_s=10.0)
    controller.reset(fake_env(sim))
    pressure = controller.pressures(sim)
    s3, s8 = saturation[approach(2, 1)] / 3600, saturation[8] / 3600
    assert NETWORK.approaches[8].link == 23
    assert pressure[0, 2, 1] == pytest.approx(s3 * (-14.0 - 14.0 / 7) + s8 * (-14.0 * 2 / 7))
    sim.queue_on(approach(2, 1), 40.0)  # upstream queue: 0.5 x 40 into 13 and 0.5 x 40 into 12
    pressure = controller.pressures(sim)
    assert pressure[0, 2, 1] == pytest.approx(s3 * (20 - 14 + 20 - 2) + s8 * -4.0)
    assert controller.act(None, fake_env(sim)).tolist() == [0, 0, 1]
    sim.time[:] = 105.0  # off the Delta grid: no new decision
    assert controller.act(None, fake_env(sim)).tolist() == [0, 0, 0]


def test_max_pressure_weighs_movements_by_saturation_flow():
    a, b = approach(0, 0), approach(0, 1)
    sim = FakeSim(phase=(0, 0, 0))
    sim.queue_on(approach(0, 0), 0.0)
    saturation = np.full(len(NETWORK.approaches), 1800.0)
    controller = ctl.MaxPressure(saturation)
    controller.reset(fake_env(sim))
    base = controller.pressures(sim)[0, 0].copy()
    saturation[b] = 3600.0
    sim.queue_on(b, 10.0)
    doubled = ctl.MaxPressure(saturation)
    doubled.reset(fake_env(sim))
    plain = ctl.MaxPressure(np.full(len(NETWORK.approaches), 1800.0))
    plain.reset(fake_env(sim))
    assert doubled.pressures(sim)[0, 0, 1] == pytest.approx(2 * plain.pressures(sim)[0, 0, 1])
    assert base[1] == 0.0 and a != b


# --------------------------------------------------------------------------- actuated, random, all


def test_actuated_gaps_out_only_below_the_threshold_and_maxes_out():
    served, other = approach(0, 0), approach(0, 1)
    lanes = NETWORK.links[NETWORK.approaches[served].link].lanes
    sim = FakeSim(time_in_phase=30.0)
    sim.queue_on(other, 10.0)
    sim.state[0, served, 0], sim.state[0, served, 1] = 0.125, 2.0  # 900 veh/h over all lanes
    threshold = 900.0 / lanes
    assert decide(ctl.Actuated(gap_veh_h_lane=threshold), sim)[0] == 0  # exactly at it: extend
    assert decide(ctl.Actuated(gap_veh_h_lane=np.nextafter(threshold, np.inf)), sim)[0] == 1  # gap-out
    sim.tip[:] = 3.0 + 60.0
    assert decide(ctl.Actuated(gap_veh_h_lane=threshold, max_green_s=60.0), sim)[0] == 1  # max-out
    sim.tip[:] = 3.0 + 59.0
    assert decide(ctl.Actuated(gap_veh_h_lane=threshold, max_green_s=60.0), sim)[0] == 0
    quiet = FakeSim(time_in_phase=100.0)
    assert decide(ctl.Actuated(), quiet).tolist() == [0, 0, 0]  # nobody calls: keep


def test_parameters_per_scenario_must_match_the_batch():
    with pytest.raises(ValueError, match="2 scenarios"):
        ctl.Actuated([300.0, 600.0], [30.0, 60.0]).reset(fake_env(FakeSim()))
    with pytest.raises(ValueError, match="delta_s"):
        ctl.MaxPressure(delta_s=0.5)


@pytest.mark.parametrize(
    "controller",
    [
        ctl.FixedTime(ctl.FixedTimePlan(((20.0, 20.0),) * 3, (0.0, 0.0, 0.0))),
        ctl.MaxPressure(),
        ctl.Actuated(),
        ctl.RandomController(0),
    ],
)
def test_no_controller_asks_for_a_change_in_amber_or_min_green(controller):
    for sim in (
        FakeSim(phase=(0, 1, 0), time_in_phase=5.0, time=30.0),
        FakeSim(phase=(0, 1, 0), time_in_phase=30.0, amber=True, time=30.0),
    ):
        sim.queue_on(approach(0, 1), 30.0)
        sim.queue_on(approach(1, 0), 30.0)
        for _ in range(5):
            assert decide(controller, sim).tolist() == [0, 1, 0]


def test_random_controller_uses_every_phase():
    controller = ctl.RandomController(seed=1)
    seen = {tuple(decide(controller, FakeSim(time_in_phase=30.0))) for _ in range(40)}
    assert len(seen) > 4


@pytest.mark.parametrize(
    "controller",
    [
        ctl.FixedTime(ctl.FixedTimePlan(((20.0, 25.0),) * 3, (0.0, 10.0, 20.0))),
        ctl.MaxPressure(delta_s=10.0),
        ctl.Actuated(),
        ctl.RandomController(0),
    ],
)
def test_controllers_drive_the_real_env_without_ignored_requests(controller):
    env = TrafficSignalEnv(backend="cpu", episode_seconds=300.0, decision_interval=1.0)
    obs, info = env.reset(seed=2)
    controller.reset(env)
    done = False
    while not done:
        obs, _, _, done, info = env.step(controller.act(obs, env))
    env.close()
    assert info["ignored_requests"] == 0
    assert info["switches"] > 0
    assert info["exited"] > 0
