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


pytestmark = pytest.mark.usefixtures("pool_events")


class FakeSim:
    """The read-outs controllers use, set by hand: one scenario, queues placed on approaches."""

    def __init__(self, phase=(0, 0, 0), time_in_phase=30.0, amber=False):
        self.network = NETWORK
        self.config = SimConfig()
        self.phase = np.array([phase], dtype=np.int64)
        self.tip = np.full((1, NETWORK.n_signals), time_in_phase)
        self.amber = np.full((1, NETWORK.n_signals), amber)
        self.queues = np.zeros((1, len(NETWORK.approaches)))

    def queue_on(self, approach: int, vehicles: float) -> None:
        """Stand `vehicles` still on an approach link."""
        self.queues[0, approach] = vehicles

    def current_phase(self):
        return self.phase.copy()

    def in_amber(self):
        return self.amber.copy()

    def time_in_phase(self):
        return self.tip.copy()

    def approach_state(self):
        state = np.zeros((1, len(NETWORK.approaches), 3))
        state[:, :, 2] = self.queues
        return state

    def link_density(self):
        return np.zeros((1, NETWORK.n_links))


def fake_env(sim: FakeSim, config: EnvConfig | None = None):
    """Single-env API whose actions are the requested phases themselves (easy to assert)."""
    return SimpleNamespace(sim=sim, network=NETWORK, config=config or EnvConfig(), encode_phases=np.array)


def approach(signal: int, phase: int) -> int:
    return next(a.index for a in NETWORK.approaches if a.signal == signal and a.phase == phase)


def decide(controller, sim):
    env = fake_env(sim)
    controller.reset(env)
    return controller.act(None, env)


# --------------------------------------------------------------------------- Webster


def test_webster_formula_on_textbook_numbers():
    plan = ctl.webster_plan(np.array([0.3, 0.2]), lost_time_s=12.0)
    assert plan.cycle_s == pytest.approx((1.5 * 12 + 5) / (1 - 0.5))  # 46 s
    assert plan.greens_s == pytest.approx((20.4, 13.6))
    assert sum(plan.greens_s) + 12.0 == pytest.approx(plan.cycle_s)


def test_webster_saturated_and_min_green_cases():
    assert ctl.webster_plan(np.array([0.6, 0.5]), 6.0).cycle_s == ctl.WEBSTER_MAX_CYCLE_S
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


def test_webster_controller_switches_when_the_planned_phase_time_is_over():
    controller = ctl.WebsterFixedTime()
    env = fake_env(FakeSim(time_in_phase=0.0), EnvConfig(decision_interval=2.0))
    controller.reset(env)
    end = controller.plans[0].greens_s[0] + SimConfig().amber_s
    assert end - 1.5 >= SimConfig().amber_s + SimConfig().min_green_s
    env.sim.tip[:] = end - 0.5
    assert controller.act(None, env)[0] == 1  # within half a decision of the end: switch now
    env.sim.tip[:] = end - 1.5
    assert controller.act(None, env)[0] == 0


# --------------------------------------------------------------------------- max-pressure, actuated, random


def test_max_pressure_serves_the_loaded_approach():
    sim = FakeSim(phase=(0, 0, 0))
    sim.queue_on(approach(0, 1), 20.0)
    assert decide(ctl.MaxPressure(), sim).tolist() == [1, 0, 0]
    sim = FakeSim(phase=(1, 1, 1))
    sim.queue_on(approach(0, 1), 20.0)
    sim.queue_on(approach(2, 0), 20.0)
    assert decide(ctl.MaxPressure(), sim).tolist() == [1, 1, 0]


def test_actuated_gaps_out_extends_and_maxes_out():
    served, other = approach(0, 0), approach(0, 1)
    sim = FakeSim(time_in_phase=30.0)
    sim.queue_on(other, 10.0)
    assert decide(ctl.Actuated(), sim)[0] == 1  # served approach empty: gap-out
    sim.queue_on(served, 5.0)
    assert decide(ctl.Actuated(), sim)[0] == 0  # still queued, under max green: extend
    sim.tip[:] = 3.0 + 61.0
    assert decide(ctl.Actuated(max_green_s=60.0), sim)[0] == 1  # max-out
    quiet = FakeSim(time_in_phase=100.0)
    assert decide(ctl.Actuated(), quiet).tolist() == [0, 0, 0]  # nobody waits: keep


@pytest.mark.parametrize(
    "controller", [ctl.WebsterFixedTime(), ctl.MaxPressure(), ctl.Actuated(), ctl.RandomController(0)]
)
def test_no_controller_asks_for_a_change_in_amber_or_min_green(controller):
    for sim in (
        FakeSim(phase=(0, 1, 0), time_in_phase=5.0),
        FakeSim(phase=(0, 1, 0), time_in_phase=30.0, amber=True),
    ):
        sim.queue_on(approach(0, 1), 30.0)
        sim.queue_on(approach(1, 0), 30.0)
        for _ in range(5):
            assert decide(controller, sim).tolist() == [0, 1, 0]


def test_random_controller_uses_every_phase():
    controller = ctl.RandomController(seed=1)
    seen = {tuple(decide(controller, FakeSim(time_in_phase=30.0))) for _ in range(40)}
    assert len(seen) > 4


@pytest.mark.parametrize("name", ["webster", "max_pressure", "actuated", "random"])
def test_controllers_drive_the_real_env_without_ignored_requests(name):
    env = TrafficSignalEnv(backend="cpu", episode_seconds=600.0)
    controller = ctl.baselines(seed=0)[name]
    obs, info = env.reset(seed=2)
    controller.reset(env)
    done = False
    while not done:
        obs, _, _, done, info = env.step(controller.act(obs, env))
    env.close()
    assert info["ignored_requests"] == 0
    assert info["switches"] > 0
    assert info["exited"] > 0
