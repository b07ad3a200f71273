"""Each sanity check passes on the real simulation and fails on the fault it targets."""

from __future__ import annotations

import numpy as np
import pytest

from lib.rl import sanity
from lib.rl.env import SignalBatch, TrafficSignalEnv
from lib.sim.simulator import Simulator

pytestmark = pytest.mark.usefixtures("pool_events")


@pytest.fixture
def env():
    environment = TrafficSignalEnv(backend="cpu", episode_seconds=300.0)
    yield environment
    environment.close()


def test_all_checks_pass_on_the_real_simulation(env):
    results = sanity.run_checks(env, seed=3)
    assert [r.check for r in results] == list(sanity.CHECKS)
    assert all(r.passed for r in results), results


def _frozen_advance(self, seconds):
    """A simulator whose advance does nothing."""


def _ignored_phase(self, phase):
    """A simulator that drops every phase request."""


def _leaky_vehicles(self):
    return 1.01 * _real_vehicles(self) + 1.0


_real_vehicles = Simulator.vehicles
_real_batch_step = SignalBatch.step


def _never_truncates(self, bits):
    obs, reward, truncated = _real_batch_step(self, bits)
    return obs, reward, np.zeros_like(truncated)


def _nan_state(self):
    return np.full((self.n_scenarios, len(self.network.approaches), 3), np.nan)


FAULTS = {
    "state_changes": (Simulator, "advance", _frozen_advance),
    "actions_matter": (Simulator, "set_phase", _ignored_phase),
    "mass_balance": (Simulator, "vehicles", _leaky_vehicles),
    "horizon": (SignalBatch, "step", _never_truncates),
    "observations": (Simulator, "approach_state", _nan_state),
}


@pytest.mark.parametrize("check", list(FAULTS))
def test_each_check_fails_on_its_fault(check, env, monkeypatch):
    owner, name, fault = FAULTS[check]
    assert sanity.CHECKS[check](env, 5)[0], "the check must pass before the fault is injected"
    monkeypatch.setattr(owner, name, fault)
    passed, detail = sanity.CHECKS[check](env, 5)
    assert not passed, detail


def test_run_checks_names_the_failed_check_and_emits_events(env, monkeypatch, pool_events):
    monkeypatch.setattr(Simulator, "advance", _frozen_advance)
    with pytest.raises(sanity.SanityError, match="state_changes"):
        sanity.run_checks(env, seed=1)
    checks = {r["check"]: r["passed"] for r in pool_events("sanity")}
    assert set(checks) == set(sanity.CHECKS)
    assert checks["state_changes"] is False
