"""Classic signal controllers, the baselines every learned policy is reported against.

All four use the same API as a policy: `reset(env)` at the start of an episode, then
`act(obs, env) -> action` every decision, built with `env.encode_phases`. They read the
simulator behind the env (`env.sim`) and decide one phase per signal per scenario, so the same
controller drives a single `TrafficSignalEnv` (1 scenario) or a `TrafficVecEnv` (B scenarios).
A controller only asks for a change where the signal may change (not in amber, minimum green
served); the simulator enforces both anyway, but asking in vain would count as ignored requests
and muddy the comparison.

Queues are the vehicles standing on each approach link, as the simulator reads them
(`Simulator.approach_state()[..., 2]`: cells where a class present moves slower than
`SimConfig.queue_speed_mps`, every vehicle in them counted).

- `WebsterFixedTime`: cycle and green splits by Webster's method from the scenario's demand.
- `MaxPressure`: the phase whose movements have the largest upstream-minus-downstream load.
- `Actuated`: keep green while the served approaches still queue (gap-out), up to a maximum green.
- `RandomController`: a random phase wherever a change is allowed (the sanity floor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lib.rl.env import base_demand
from lib.sim.network import Network
from lib.sim.simulator import SimConfig, capacity_veh_s

# Webster's classic bounds: below ~30 s a cycle is mostly lost time; above ~120 s delay grows
# with the cycle while capacity barely does (Webster 1958, Road Research Technical Paper 39).
WEBSTER_MIN_CYCLE_S = 30.0
WEBSTER_MAX_CYCLE_S = 120.0
# Above this critical flow ratio sum the formula's cycle explodes: use the maximum cycle.
WEBSTER_MAX_Y = 0.95


def signal_timing(sim: Any) -> tuple[float, float]:
    """(amber_s, min_green_s) the simulator enforces."""
    return float(sim.config.amber_s), float(sim.config.min_green_s)


def may_switch(sim: Any) -> np.ndarray:
    """(B, n_signals) bool: the signal is out of amber and has served its minimum green."""
    amber_s, min_green_s = signal_timing(sim)
    return ~sim.in_amber() & (sim.time_in_phase() >= amber_s + min_green_s - 1e-9)


def encode(env: Any, phases: np.ndarray) -> Any:
    """The action requesting `phases` (B, n_signals): batched for a VecEnv, row 0 for one env."""
    phases = np.asarray(phases, dtype=np.int64)
    if hasattr(env, "num_envs"):
        return env.encode_phases(phases)
    return env.encode_phases(phases[0])


def approach_queues(sim: Any) -> np.ndarray:
    """(B, n_approaches) vehicles standing on each approach link."""
    return sim.approach_state()[:, :, 2]


class PhaseController:
    """Base: subclasses choose the phases (B, n_signals) wanted now; this class applies the rules."""

    name = "controller"

    def reset(self, env: Any) -> None:
        self.network: Network = env.network

    def act(self, obs: Any, env: Any) -> Any:
        sim = env.sim
        current = sim.current_phase().astype(np.int64)
        wanted = self.wanted_phases(sim, current)
        return encode(env, np.where(may_switch(sim), wanted, current))

    def wanted_phases(self, sim: Any, current: np.ndarray) -> np.ndarray:
        raise NotImplementedError


# --------------------------------------------------------------------------- Webster fixed-time


@dataclass(frozen=True)
class WebsterPlan:
    """One signal's plan: the cycle and each phase's effective green (s)."""

    cycle_s: float
    greens_s: tuple[float, ...]
    flow_ratios: tuple[float, ...]


def webster_plan(
    flow_ratios: np.ndarray,
    lost_time_s: float,
    min_green_s: float = 0.0,
    min_cycle_s: float = WEBSTER_MIN_CYCLE_S,
    max_cycle_s: float = WEBSTER_MAX_CYCLE_S,
) -> WebsterPlan:
    """Webster's optimum cycle C0 = (1.5 L + 5) / (1 - Y) and greens g_i = (C - L) y_i / Y.

    `flow_ratios` are the critical q/s of each phase, L the lost time per cycle. The cycle is
    clamped to [min_cycle_s, max_cycle_s] (the maximum when Y is near or above 1, where the
    formula has no finite answer); greens shorter than `min_green_s` are raised to it, the cycle
    growing by what that adds."""
    y = np.asarray(flow_ratios, dtype=np.float64)
    if y.ndim != 1 or y.size == 0 or np.any(y < 0) or not np.all(np.isfinite(y)):
        raise ValueError(f"flow_ratios must be a non-empty 1-D array of finite values >= 0, got {y!r}")
    if lost_time_s < 0:
        raise ValueError(f"lost_time_s must be >= 0, got {lost_time_s}")
    total = float(y.sum())
    cycle = max_cycle_s if total >= WEBSTER_MAX_Y else (1.5 * lost_time_s + 5.0) / (1.0 - total)
    cycle = min(max(cycle, min_cycle_s), max_cycle_s)
    shares = y / total if total > 0 else np.full(y.size, 1.0 / y.size)
    greens = np.maximum((cycle - lost_time_s) * shares, min_green_s)
    cycle = max(cycle, float(greens.sum()) + lost_time_s)
    return WebsterPlan(float(cycle), tuple(float(g) for g in greens), tuple(float(v) for v in y))


def link_flows(network: Network, entry_veh_h: np.ndarray) -> np.ndarray:
    """Mean flow (veh/h) on every link: entry demands propagated by the turning ratios.

    Solves f = e + R^T f, where R[i, j] is the share of link i's flow turning into link j; every
    path reaches an exit (the loader checks it), so I - R^T is invertible."""
    entry_veh_h = np.asarray(entry_veh_h, dtype=np.float64)
    if entry_veh_h.shape != (network.n_entries,):
        raise ValueError(
            f"entry demand must have shape ({network.n_entries},) (one value per entry), "
            f"got {entry_veh_h.shape}"
        )
    ratios = np.zeros((network.n_links, network.n_links))
    for m in network.movements:
        ratios[m.in_link, m.out_link] += m.ratio
    inflow = np.zeros(network.n_links)
    np.add.at(inflow, np.asarray(network.entry_links), entry_veh_h)
    return np.linalg.solve(np.eye(network.n_links) - ratios.T, inflow)


def webster_plans(
    network: Network,
    entry_veh_h: np.ndarray,
    saturation_veh_h: np.ndarray,
    amber_s: float,
    min_green_s: float,
) -> list[WebsterPlan]:
    """One plan per signal: each phase's critical ratio is its busiest approach's flow over that
    link's saturation flow (`saturation_veh_h`, per link, all lanes); the lost time is one amber
    per phase (controlled approaches send nothing during amber)."""
    flows = link_flows(network, entry_veh_h)
    plans = []
    for signal in network.signals:
        y = np.zeros(signal.n_phases)
        for a in signal.approaches:
            approach = network.approaches[a]
            y[approach.phase] = max(y[approach.phase], flows[approach.link] / saturation_veh_h[approach.link])
        plans.append(webster_plan(y, signal.n_phases * amber_s, min_green_s))
    return plans


def saturation_flow_veh_h(network: Network, config: SimConfig) -> np.ndarray:
    """Saturation flow (veh/h, all lanes) of every link: the capacity of the model's triangular
    fundamental diagram, v_f W k_j / (v_f + W), at the link's free speed and lanes (cars;
    motorcycles filtering past a queue only add to what is served)."""
    free = np.array([lk.free_speed_mps for lk in network.links])
    jam = config.rho_jam_per_lane * np.array([lk.lanes for lk in network.links], dtype=np.float64)
    return 3600.0 * capacity_veh_s(free, jam, config)


def scenario_demand(env: Any) -> np.ndarray:
    """The mean demand (veh/h per entry) of the env's episodes: its base demand x demand_scale."""
    return base_demand(env.config, env.network)


class WebsterFixedTime(PhaseController):
    """Fixed-time plan by Webster's method, one per signal, from the scenario's demand.

    The demand is the environment's base per-entry demand times its `demand_scale` (the mean
    of its randomised episodes) unless `entry_veh_h` is given. Phases rotate in order; a
    phase ends once it has had its green (amber included), to the nearest decision."""

    name = "webster"

    def __init__(self, entry_veh_h: np.ndarray | None = None) -> None:
        self.entry_veh_h = entry_veh_h

    def reset(self, env: Any) -> None:
        super().reset(env)
        sim = env.sim
        demand = scenario_demand(env) if self.entry_veh_h is None else self.entry_veh_h
        amber_s, min_green_s = signal_timing(sim)
        saturation = saturation_flow_veh_h(self.network, sim.config)
        self.plans = webster_plans(self.network, demand, saturation, amber_s, min_green_s)
        self.half_decision_s = 0.5 * float(env.config.decision_interval)
        width = max(len(p.greens_s) for p in self.plans)
        self.phase_s = np.full((len(self.plans), width), np.inf)
        for s, plan in enumerate(self.plans):
            self.phase_s[s, : len(plan.greens_s)] = np.asarray(plan.greens_s) + amber_s
        self.n_phases = np.array([len(p.greens_s) for p in self.plans], dtype=np.int64)

    def wanted_phases(self, sim: Any, current: np.ndarray) -> np.ndarray:
        signals = np.arange(current.shape[1])
        due = self.phase_s[signals[None, :], current]
        done = sim.time_in_phase() + self.half_decision_s >= due
        return np.where(done, (current + 1) % self.n_phases[None, :], current)


# --------------------------------------------------------------------------- max-pressure


class MaxPressure(PhaseController):
    """Serve the phase of largest pressure: over its movements, ratio x (standing queue on the
    incoming approach - vehicles on the receiving link). Ties keep the current phase."""

    name = "max_pressure"

    def reset(self, env: Any) -> None:
        super().reset(env)
        net = self.network
        approach_of_link = {a.link: a.index for a in net.approaches}
        rows = [
            (m.signal, m.phase, approach_of_link[m.in_link], m.out_link, m.ratio)
            for m in net.movements
            if m.signal >= 0 and m.phase >= 0 and m.in_link in approach_of_link
        ]
        self.m_signal, self.m_phase, self.m_approach, self.m_out = (
            np.array([r[i] for r in rows], dtype=np.int64) for i in range(4)
        )
        self.m_ratio = np.array([r[4] for r in rows], dtype=np.float64)
        self.link_length = np.array([lk.length_m for lk in net.links])
        self.width = max(s.n_phases for s in net.signals)

    def pressures(self, sim: Any) -> np.ndarray:
        """(B, n_signals, n_phases) pressure of every phase (phases a signal lacks: -inf)."""
        queue = approach_queues(sim)
        downstream = sim.link_density() * self.link_length[None, :]
        load = self.m_ratio[None, :] * (queue[:, self.m_approach] - downstream[:, self.m_out])
        n_signals = self.network.n_signals
        out = np.zeros((queue.shape[0], n_signals * self.width))
        for b in range(queue.shape[0]):
            out[b] = np.bincount(
                self.m_signal * self.width + self.m_phase, weights=load[b], minlength=n_signals * self.width
            )
        out = out.reshape(-1, n_signals, self.width)
        for s, signal in enumerate(self.network.signals):
            out[:, s, signal.n_phases :] = -np.inf
        return out

    def wanted_phases(self, sim: Any, current: np.ndarray) -> np.ndarray:
        pressure = self.pressures(sim)
        best = pressure.argmax(axis=2)
        current_p = np.take_along_axis(pressure, current[:, :, None], axis=2)[:, :, 0]
        best_p = pressure.max(axis=2)
        return np.where(best_p > current_p, best, current)


# --------------------------------------------------------------------------- actuated


class Actuated(PhaseController):
    """Gap-out / max-green on approach queues: keep the green while the served approaches still
    hold more than `gap_veh` queued vehicles; change when they are cleared (gap-out) or when the
    green has run `max_green_s` (max-out), in both cases only if another phase has a queue."""

    name = "actuated"

    def __init__(self, gap_veh: float = 1.0, max_green_s: float = 60.0) -> None:
        if gap_veh < 0 or max_green_s <= 0:
            raise ValueError(f"need gap_veh >= 0 and max_green_s > 0, got {gap_veh}, {max_green_s}")
        self.gap_veh = gap_veh
        self.max_green_s = max_green_s

    def reset(self, env: Any) -> None:
        super().reset(env)
        net = self.network
        self.width = max(s.n_phases for s in net.signals)
        self.a_index = np.array([a.signal * self.width + a.phase for a in net.approaches], dtype=np.int64)
        self.amber_s = signal_timing(env.sim)[0]

    def phase_queues(self, sim: Any) -> np.ndarray:
        """(B, n_signals, n_phases) queued vehicles on each phase's approaches."""
        queue = approach_queues(sim)
        size = self.network.n_signals * self.width
        out = np.stack([np.bincount(self.a_index, weights=q, minlength=size) for q in queue])
        return out.reshape(-1, self.network.n_signals, self.width)

    def wanted_phases(self, sim: Any, current: np.ndarray) -> np.ndarray:
        queues = self.phase_queues(sim)
        served = np.take_along_axis(queues, current[:, :, None], axis=2)[:, :, 0]
        others = queues.copy()
        np.put_along_axis(others, current[:, :, None], -np.inf, axis=2)
        busiest = others.argmax(axis=2)
        waiting = others.max(axis=2) > self.gap_veh
        gap_out = served <= self.gap_veh
        max_out = sim.time_in_phase() - self.amber_s >= self.max_green_s
        return np.where(waiting & (gap_out | max_out), busiest, current)


# --------------------------------------------------------------------------- random


class RandomController(PhaseController):
    """A uniformly random phase per signal wherever a change is allowed (seeded)."""

    name = "random"

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def wanted_phases(self, sim: Any, current: np.ndarray) -> np.ndarray:
        n_phases = np.array([s.n_phases for s in self.network.signals])
        return (self.rng.random(current.shape) * n_phases[None, :]).astype(np.int64)


def baselines(seed: int) -> dict[str, PhaseController]:
    """The classic controllers every result is reported against, by name."""
    return {
        "webster": WebsterFixedTime(),
        "max_pressure": MaxPressure(),
        "actuated": Actuated(),
        "random": RandomController(seed),
    }
