"""Sanity checks run before training: each targets one way the earlier system failed silently.

The earlier system's checks passed on frozen physics. Each check here compares two things that
must differ (or must agree) if the physics and the environment work, and each is tested against
the fault it targets (tests/test_sanity.py):

- `state_changes`: advancing time moves traffic (a simulator whose advance does nothing fails);
- `actions_matter`: keeping every phase and switching every phase give different rewards (an
  environment that drops its actions fails);
- `mass_balance`: vehicles now = vehicles at the start + entered - exited (a leak fails);
- `horizon`: an episode truncates exactly after episode_seconds / decision_interval decisions
  (an episode that never ends fails, instead of hanging the evaluation);
- `observations`: observations and rewards are finite and inside the observation space.

Each check emits a `sanity` event; `run_checks` raises SanityError naming every failed check.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lib.obs.events import emit

# Decisions the comparative checks may take before they must have seen a difference.
PROBE_DECISIONS = 40
# Mass balance tolerance relative to the vehicles that entered (the simulator conserves to ~1e-12).
MASS_TOLERANCE = 1e-6


class SanityError(RuntimeError):
    """A sanity check failed: the run stops before training."""


@dataclass(frozen=True)
class CheckResult:
    check: str
    passed: bool
    detail: str


def state_changes(env: Any, seed: int) -> tuple[bool, str]:
    env.reset(seed=seed)
    sim = env.sim
    before = (sim.time.copy(), sim.link_density().copy(), sim.cumulative_entered().copy())
    for _ in range(2):
        env.step(_keep(env))
    after = (sim.time, sim.link_density(), sim.cumulative_entered())
    expected = 2 * env.config.decision_interval
    advanced = float(after[0][0] - before[0][0])
    moved = float(np.abs(after[1] - before[1]).max())
    entered = float(after[2][0] - before[2][0])
    passed = math.isclose(advanced, expected, rel_tol=1e-9) and moved > 0 and entered > 0
    detail = f"time +{advanced:.1f} s (expected {expected:.1f}), max density change {moved:.3g} veh/m"
    return passed, f"{detail}, {entered:.1f} vehicles entered"


def _rollout(env: Any, seed: int, policy: Callable[[Any], Any], decisions: int) -> np.ndarray:
    env.reset(seed=seed)
    rewards = []
    for _ in range(decisions):
        _, reward, terminated, truncated, _ = env.step(policy(env))
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.cumsum(rewards)


def actions_matter(env: Any, seed: int) -> tuple[bool, str]:
    decisions = min(PROBE_DECISIONS, _horizon(env))
    n_phases = np.array([s.n_phases for s in env.network.signals])
    keep = _rollout(env, seed, _keep, decisions)
    switch = _rollout(env, seed, lambda e: e.encode_phases((_phases(e) + 1) % n_phases), decisions)
    n = min(len(keep), len(switch))
    gap = float(np.abs(keep[:n] - switch[:n]).max())
    scale = max(float(np.abs(keep[:n]).max()), 1e-12)
    passed = gap > 1e-9 * scale
    return passed, f"largest return gap keep vs switch over {n} decisions: {gap:.4g} (keep {keep[n - 1]:.4g})"


def mass_balance(env: Any, seed: int) -> tuple[bool, str]:
    env.reset(seed=seed)
    sim = env.sim
    start = sim.vehicles()[0] - sim.cumulative_entered()[0] + sim.cumulative_exited()[0]
    rng = np.random.default_rng(seed)
    for _ in range(min(PROBE_DECISIONS, _horizon(env))):
        env.step(env.action_space.sample() if rng.random() < 0.5 else _keep(env))
    entered = float(sim.cumulative_entered()[0])
    error = abs(float(sim.vehicles()[0] - sim.cumulative_entered()[0] + sim.cumulative_exited()[0] - start))
    passed = entered > 0 and error <= MASS_TOLERANCE * entered
    return passed, f"|vehicles - entered + exited - initial| = {error:.3g} for {entered:.1f} entered"


def horizon(env: Any, seed: int) -> tuple[bool, str]:
    env.reset(seed=seed)
    expected = _horizon(env)
    steps, ended, info = 0, False, {}
    while steps < expected + 5 and not ended:
        _, _, terminated, truncated, info = env.step(_keep(env))
        steps += 1
        ended = terminated or truncated
    sim_time = float(info.get("sim_time", math.nan))
    passed = ended and steps == expected and math.isclose(sim_time, expected * env.config.decision_interval)
    state = f"ended after {steps}" if ended else f"still running after {steps}"
    return passed, f"{state} decisions (expected {expected}), sim_time {sim_time:.1f} s"


def observations(env: Any, seed: int) -> tuple[bool, str]:
    obs, _ = env.reset(seed=seed)
    space = env.observation_space
    bad: list[str] = []
    for step in range(min(PROBE_DECISIONS, _horizon(env))):
        if not (np.all(np.isfinite(obs)) and space.contains(obs)):
            bad.append(f"observation at decision {step} not finite or outside {space}: {np.asarray(obs)[:6]}")
            break
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        if not math.isfinite(reward):
            bad.append(f"reward {reward} at decision {step}")
            break
        if terminated or truncated:
            break
    return not bad, bad[0] if bad else f"{step + 1} observations finite and inside the observation space"


CHECKS: dict[str, Callable[[Any, int], tuple[bool, str]]] = {
    "state_changes": state_changes,
    "actions_matter": actions_matter,
    "mass_balance": mass_balance,
    "horizon": horizon,
    "observations": observations,
}


def run_checks(env: Any, seed: int = 0) -> list[CheckResult]:
    """Run every check on the single environment `env`; raise SanityError if any failed."""
    env.action_space.seed(seed)
    results = []
    for name, check in CHECKS.items():
        try:
            passed, detail = check(env, seed)
        except Exception as exc:  # noqa: BLE001 - a crashing check is a failed check, reported by name
            passed, detail = False, f"raised {type(exc).__name__}: {exc}"
        results.append(CheckResult(name, bool(passed), detail))
        emit("sanity", check=name, passed=bool(passed), detail=detail)
    failed = [r for r in results if not r.passed]
    if failed:
        lines = "; ".join(f"{r.check}: {r.detail}" for r in failed)
        raise SanityError(f"{len(failed)} sanity check(s) failed, training would be meaningless: {lines}")
    return results


def _phases(env: Any) -> np.ndarray:
    return env.sim.current_phase()[0]


def _keep(env: Any) -> Any:
    """The action that keeps every signal's current phase."""
    return env.encode_phases(_phases(env))


def _horizon(env: Any) -> int:
    return env.config.horizon
