"""Classic signal controllers, the baselines every learned policy is reported against, each as a
practitioner would deploy it (issue 12; protocol in lib/rl/protocol.py, tuning in lib/rl/tuning.py).

All use the same API as a policy: `reset(env)` at the start of an episode, then
`act(obs, env) -> action` every decision, built with `env.encode_phases`. They read the
simulator behind the env (`env.sim`) and decide one phase per signal per scenario, so the same
controller drives a single `TrafficSignalEnv` (1 scenario) or a `TrafficVecEnv` (B scenarios).

Why an own control step: a controller that acts only on the learner's 15 s grid cannot realise
its own plan (Webster's 16.7 s green became 12 s). Each controller acts every `control_step_s`
(default 1 s) and refuses an env that decides at another interval; lib.rl.evaluate builds the
env at the controller's step. A controller only asks for a change where the signal may change
(not in amber, minimum green served): the simulator enforces both anyway, but asking in vain
would count as ignored requests and muddy the comparison.

Parameters may be given per scenario (a leading axis of length B), so the tuner evaluates many
candidates in one batched simulator call. Only the stable network API is read (movements with
in_link/out_link/ratio/signal/phase, approaches, signals), never how a junction is built.

- `FixedTime`: a plan of phase times and offsets per signal (Webster's, or the tuned
  coordinated plan); `webster_fixed_time` makes Webster's.
- `MaxPressure`: Varaiya (2013), saturation-flow weighted, re-decided every `delta_s`.
- `Actuated`: a virtual detector near the stop line; gap-out below a flow, max-out at a green.
- `RandomController`: a random phase wherever a change is allowed (the sanity floor).
- `Blocks`: several controllers on one batched env, each on its own block of scenarios (the
  evaluation runs every baseline x episode in one simulator call).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lib.sim.network import Network

CONTROL_STEP_S = 1.0
# Webster's classic bounds: below ~30 s a cycle is mostly lost time; above ~120 s delay grows
# with the cycle while capacity barely does (Webster 1958, Road Research Technical Paper 39).
WEBSTER_MIN_CYCLE_S = 30.0
WEBSTER_MAX_CYCLE_S = 120.0
# A phase "calls" (asks for green) when this many vehicles stand on one of its approaches.
CALL_VEH = 1.0


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


def per_scenario(values: Any, n: int, what: str) -> np.ndarray:
    """`values` with a leading axis of 1 or `n` scenarios, checked (clear error otherwise)."""
    a = np.asarray(values, dtype=np.float64)
    if a.shape[0] not in (1, n):
        raise ValueError(f"{what}: parameters for {a.shape[0]} scenarios but the env runs {n}")
    return a


class PhaseController:
    """Base: subclasses choose the phases (B, n_signals) wanted now; this class applies the rules."""

    name = "controller"

    def __init__(self, control_step_s: float = CONTROL_STEP_S) -> None:
        if not (math.isfinite(control_step_s) and control_step_s > 0):
            raise ValueError(f"control_step_s must be a positive number of seconds, got {control_step_s!r}")
        self.control_step_s = float(control_step_s)

    def reset(self, env: Any) -> None:
        interval = float(env.config.decision_interval)
        if not math.isclose(interval, self.control_step_s):
            raise ValueError(
                f"{self.name} acts every {self.control_step_s} s but this env decides every {interval} s; "
                f"run it on an env with decision_interval={self.control_step_s} "
                f"(lib.rl.evaluate.evaluate_controller builds one)"
            )
        self.network: Network = env.network
        self.n_scenarios = int(getattr(env, "num_envs", 1))

    def act(self, obs: Any, env: Any) -> Any:
        sim = env.sim
        current = sim.current_phase().astype(np.int64)
        wanted = self.wanted_phases(sim, current)
        return encode(env, np.where(may_switch(sim), wanted, current))

    def wanted_phases(self, sim: Any, current: np.ndarray) -> np.ndarray:
        raise NotImplementedError


# --------------------------------------------------------------------------- fixed time


@dataclass(frozen=True)
class FixedTimePlan:
    """Every signal's plan: each phase's time (s, amber + green; the phases run in order, so a
    signal's cycle is their sum) and the offset (s) at which its phase 0 starts."""

    phase_s: tuple[tuple[float, ...], ...]
    offset_s: tuple[float, ...]

    @property
    def cycle_s(self) -> tuple[float, ...]:
        return tuple(float(sum(p)) for p in self.phase_s)

    def to_dict(self) -> dict[str, Any]:
        return {"phase_s": [list(p) for p in self.phase_s], "offset_s": list(self.offset_s)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FixedTimePlan:
        return cls(
            tuple(tuple(float(v) for v in p) for p in data["phase_s"]),
            tuple(float(v) for v in data["offset_s"]),
        )


class FixedTime(PhaseController):
    """Run a fixed-time plan (or one plan per scenario) against the simulator's clock.

    The phase wanted at time t is the one whose window holds (t - offset) mod cycle, shifted by
    half a control step so each change lands on the nearest step: the realised phases then equal
    the plan within one control step, whatever the step."""

    def __init__(
        self,
        plan: FixedTimePlan | Sequence[FixedTimePlan],
        name: str = "fixed_time",
        control_step_s: float = CONTROL_STEP_S,
    ) -> None:
        super().__init__(control_step_s)
        self.name = name
        self.plans = [plan] if isinstance(plan, FixedTimePlan) else list(plan)
        if not self.plans:
            raise ValueError("FixedTime needs at least one plan")

    def reset(self, env: Any) -> None:
        super().reset(env)
        amber_s, min_green_s = signal_timing(env.sim)
        phases = [s.n_phases for s in self.network.signals]
        for plan in self.plans:
            if [len(p) for p in plan.phase_s] != phases or len(plan.offset_s) != len(phases):
                raise ValueError(
                    f"a plan needs {phases} phase times per signal and one offset each, got {plan}"
                )
            if min(min(p) for p in plan.phase_s) < amber_s + min_green_s - 1e-9:
                raise ValueError(
                    f"every phase needs >= amber + min green = {amber_s + min_green_s} s, got {plan}"
                )
        width = max(phases)
        ends = np.full((len(self.plans), len(phases), width), np.inf)
        for i, plan in enumerate(self.plans):
            for s, times in enumerate(plan.phase_s):
                ends[i, s, : len(times)] = np.cumsum(times)
        self.ends = per_scenario(ends, self.n_scenarios, self.name)
        self.cycle = np.array([p.cycle_s for p in self.plans])
        self.offset = np.array([p.offset_s for p in self.plans])
        self.last_phase = np.array(phases, dtype=np.int64) - 1

    def wanted_phases(self, sim: Any, current: np.ndarray) -> np.ndarray:
        t = np.asarray(sim.time, dtype=np.float64)[:, None] + 0.5 * self.control_step_s
        position = np.mod(t - self.offset, self.cycle)
        phase = (position[:, :, None] >= self.ends).sum(axis=2)
        return np.minimum(phase, self.last_phase[None, :])


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
    clamped to [min_cycle_s, max_cycle_s]; when Y reaches 1 (oversaturated: the formula has no
    finite answer) it is the maximum, greens still in proportion to the ratios. Greens shorter
    than `min_green_s` are raised to it, the cycle growing by what that adds."""
    y = np.asarray(flow_ratios, dtype=np.float64)
    if y.ndim != 1 or y.size == 0 or np.any(y < 0) or not np.all(np.isfinite(y)):
        raise ValueError(f"flow_ratios must be a non-empty 1-D array of finite values >= 0, got {y!r}")
    if not lost_time_s >= 0:
        raise ValueError(f"lost_time_s must be >= 0, got {lost_time_s}")
    total = float(y.sum())
    cycle = max_cycle_s if total >= 1.0 else (1.5 * lost_time_s + 5.0) / (1.0 - total)
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
    inflow = np.zeros(network.n_links)
    np.add.at(inflow, np.asarray(network.entry_links), entry_veh_h)
    return np.linalg.solve(np.eye(network.n_links) - turning_matrix(network).T, inflow)


def turning_matrix(network: Network) -> np.ndarray:
    """(n_links, n_links): R[i, j] is the share of link i's flow that turns into link j."""
    ratios = np.zeros((network.n_links, network.n_links))
    for m in network.movements:
        ratios[m.in_link, m.out_link] += m.ratio
    return ratios


def critical_flow_ratios(
    network: Network, entry_veh_h: np.ndarray, saturation_veh_h: np.ndarray
) -> np.ndarray:
    """(n_signals, max phases): each phase's critical q/s, its busiest approach's flow (entry
    demand propagated through the turning fractions) over that approach's saturation flow
    (`saturation_veh_h`, one per approach); phases a signal lacks are 0."""
    flows = link_flows(network, entry_veh_h)
    y = np.zeros((network.n_signals, max(s.n_phases for s in network.signals)))
    for a in network.approaches:
        y[a.signal, a.phase] = max(y[a.signal, a.phase], flows[a.link] / saturation_veh_h[a.index])
    return y


def webster_fixed_time(
    network: Network,
    entry_veh_h: np.ndarray,
    saturation_veh_h: np.ndarray,
    lost_time_s: np.ndarray,
    amber_s: float,
    min_green_s: float,
) -> FixedTimePlan:
    """Webster's plan for every signal (offsets 0) from the design demand per entry, the
    saturation flow of every approach and the lost time per cycle of every signal (both measured
    on the model, lib.rl.tuning). A phase's time is its effective green plus its share of the
    lost time, and at least amber + minimum green."""
    y = critical_flow_ratios(network, entry_veh_h, saturation_veh_h)
    phases = []
    for signal, lost in zip(network.signals, np.asarray(lost_time_s, dtype=np.float64), strict=True):
        per_phase_lost = lost / signal.n_phases
        plan = webster_plan(y[signal.index, : signal.n_phases], lost, amber_s + min_green_s - per_phase_lost)
        phases.append(tuple(float(g + per_phase_lost) for g in plan.greens_s))
    return FixedTimePlan(tuple(phases), tuple(0.0 for _ in phases))


# --------------------------------------------------------------------------- max-pressure


def downstream_shares(network: Network) -> np.ndarray:
    """(n_links, n_approaches): where a vehicle on each link next stands in a signal queue.

    An approach link is its own queue; an exit link leads to no queue (0); any other link (inside
    a junction, or between junctions without a signal) passes its vehicles on by the turning
    ratios until they reach an approach or leave. So the downstream term of max-pressure is the
    receiving link's standing queue however a junction is built."""
    n = network.n_links
    approach_of = {a.link: a.index for a in network.approaches}
    target = np.zeros((n, len(network.approaches)))
    for link, a in approach_of.items():
        target[link, a] = 1.0
    passing = np.array([i not in approach_of and i not in set(network.exit_links) for i in range(n)])
    ratios = turning_matrix(network)
    inner = ratios[np.ix_(passing, passing)]
    onward = ratios[np.ix_(passing, ~passing)] @ target[~passing]
    target[passing] = np.linalg.solve(np.eye(int(passing.sum())) - inner, onward)
    return target


class MaxPressure(PhaseController):
    """Max-pressure (Varaiya 2013): every `delta_s` seconds of simulated time, serve the phase of
    largest pressure, sum over its movements (l, m) of c_l (r_lm Q_l - Q_m): Q_l the standing queue
    on approach l, r_lm the turning fraction (so r_lm Q_l is the movement's queue), Q_m the
    receiving link's standing queue (0 for an exit) and c_l the approach's saturation flow
    (movements sharing an approach discharge together at it). Ties keep the current phase."""

    name = "max_pressure"

    def __init__(
        self,
        saturation_veh_h: np.ndarray | None = None,
        delta_s: float | Sequence[float] = 10.0,
        control_step_s: float = CONTROL_STEP_S,
    ) -> None:
        super().__init__(control_step_s)
        self.delta_s = np.atleast_1d(np.asarray(delta_s, dtype=np.float64))
        if self.delta_s.ndim != 1 or not np.all(self.delta_s >= control_step_s):
            raise ValueError(f"delta_s must be >= control_step_s ({control_step_s} s), got {delta_s!r}")
        self.saturation_veh_h = saturation_veh_h

    def reset(self, env: Any) -> None:
        super().reset(env)
        net = self.network
        self.delta = per_scenario(self.delta_s, self.n_scenarios, self.name)[:, None]
        approach_of = {a.link: a.index for a in net.approaches}
        rows = [
            (m.signal, m.phase, approach_of[m.in_link], m.out_link, m.ratio)
            for m in net.movements
            if m.signal >= 0 and m.phase >= 0 and m.in_link in approach_of and m.ratio > 0
        ]
        self.m_group = np.array([r[0] * self.width(net) + r[1] for r in rows], dtype=np.int64)
        self.m_approach = np.array([r[2] for r in rows], dtype=np.int64)
        self.m_ratio = np.array([r[4] for r in rows])
        self.m_downstream = downstream_shares(net)[[r[3] for r in rows]]
        saturation = np.ones(len(net.approaches)) if self.saturation_veh_h is None else self.saturation_veh_h
        self.m_weight = np.asarray(saturation, dtype=np.float64)[self.m_approach] / 3600.0
        self.missing = np.array([[p >= s.n_phases for p in range(self.width(net))] for s in net.signals])

    @staticmethod
    def width(network: Network) -> int:
        return max(s.n_phases for s in network.signals)

    def pressures(self, sim: Any) -> np.ndarray:
        """(B, n_signals, n_phases) pressure of every phase (phases a signal lacks: -inf)."""
        queue = approach_queues(sim)
        load = self.m_weight * (self.m_ratio * queue[:, self.m_approach] - queue @ self.m_downstream.T)
        size = self.network.n_signals * self.width(self.network)
        out = np.stack([np.bincount(self.m_group, weights=row, minlength=size) for row in load])
        out = out.reshape(queue.shape[0], self.network.n_signals, -1)
        return np.where(self.missing[None], -np.inf, out)

    def wanted_phases(self, sim: Any, current: np.ndarray) -> np.ndarray:
        t = np.asarray(sim.time, dtype=np.float64)[:, None]
        due = np.mod(t + 0.5 * self.control_step_s, self.delta) < self.control_step_s
        pressure = self.pressures(sim)
        current_p = np.take_along_axis(pressure, current[:, :, None], axis=2)[:, :, 0]
        better = pressure.max(axis=2) > current_p
        return np.where(due & better, pressure.argmax(axis=2), current)


# --------------------------------------------------------------------------- actuated


class Actuated(PhaseController):
    """Gap-out / max-out on a virtual detector: the flow (veh/h per lane) over the last
    SimConfig.observe_length_m before each stop line. The green is kept while a served approach
    still carries at least `gap_veh_h_lane`; it ends when every served flow is below it (gap-out)
    or when the green has run `max_green_s` (max-out), in both cases only if another phase calls
    (CALL_VEH standing on one of its approaches), to the phase that calls most."""

    name = "actuated"

    def __init__(
        self,
        gap_veh_h_lane: float | Sequence[float] = 300.0,
        max_green_s: float | Sequence[float] = 60.0,
        control_step_s: float = CONTROL_STEP_S,
    ) -> None:
        super().__init__(control_step_s)
        self.gap = np.atleast_1d(np.asarray(gap_veh_h_lane, dtype=np.float64))
        self.max_green = np.atleast_1d(np.asarray(max_green_s, dtype=np.float64))
        if self.gap.shape != self.max_green.shape or np.any(self.gap < 0) or np.any(self.max_green <= 0):
            raise ValueError(
                f"need gap_veh_h_lane >= 0 and max_green_s > 0, one value each or one per scenario, "
                f"got {gap_veh_h_lane!r}, {max_green_s!r}"
            )

    def reset(self, env: Any) -> None:
        super().reset(env)
        net = self.network
        self.gap_b = per_scenario(self.gap, self.n_scenarios, self.name)[:, None]
        self.max_green_b = per_scenario(self.max_green, self.n_scenarios, self.name)[:, None]
        self.width = max(s.n_phases for s in net.signals)
        self.a_index = np.array([a.signal * self.width + a.phase for a in net.approaches], dtype=np.int64)
        self.lanes = np.array([net.links[a.link].lanes for a in net.approaches], dtype=np.float64)
        self.amber_s = signal_timing(env.sim)[0]

    def by_phase(self, per_approach: np.ndarray, reduce: str) -> np.ndarray:
        """(B, n_signals, n_phases): the max or sum over each phase's approaches."""
        out = np.full((per_approach.shape[0], self.network.n_signals * self.width), 0.0)
        if reduce == "max":
            np.maximum.at(out, (slice(None), self.a_index), per_approach)
        else:
            np.add.at(out, (slice(None), self.a_index), per_approach)
        return out.reshape(-1, self.network.n_signals, self.width)

    def detector_flow(self, sim: Any) -> np.ndarray:
        """(B, n_approaches) veh/h per lane at the virtual detectors (density x speed)."""
        state = sim.approach_state()
        return 3600.0 * state[:, :, 0] * state[:, :, 1] / self.lanes

    def wanted_phases(self, sim: Any, current: np.ndarray) -> np.ndarray:
        flow = np.take_along_axis(self.by_phase(self.detector_flow(sim), "max"), current[:, :, None], axis=2)
        calls = self.by_phase(approach_queues(sim), "sum")
        np.put_along_axis(calls, current[:, :, None], -np.inf, axis=2)
        calling = calls.max(axis=2) >= CALL_VEH
        gap_out = flow[:, :, 0] < self.gap_b
        max_out = sim.time_in_phase() - self.amber_s >= self.max_green_b
        return np.where(calling & (gap_out | max_out), calls.argmax(axis=2), current)


# --------------------------------------------------------------------------- random


class RandomController(PhaseController):
    """A uniformly random phase per signal wherever a change is allowed (seeded)."""

    name = "random"

    def __init__(self, seed: int | None = None, control_step_s: float = CONTROL_STEP_S) -> None:
        super().__init__(control_step_s)
        self.rng = np.random.default_rng(seed)

    def wanted_phases(self, sim: Any, current: np.ndarray) -> np.ndarray:
        n_phases = np.array([s.n_phases for s in self.network.signals])
        return (self.rng.random(current.shape) * n_phases[None, :]).astype(np.int64)


# --------------------------------------------------------------------------- blocks


class ScenarioRows:
    """The read-outs of a simulator that controllers use, restricted to a block of its scenarios
    (rows), so a controller driving that block sees exactly what it would see alone."""

    def __init__(self, sim: Any, rows: slice) -> None:
        self.sim, self.rows, self.config = sim, rows, sim.config

    @property
    def time(self) -> np.ndarray:
        return np.asarray(self.sim.time)[self.rows]

    def current_phase(self) -> np.ndarray:
        return self.sim.current_phase()[self.rows]

    def in_amber(self) -> np.ndarray:
        return self.sim.in_amber()[self.rows]

    def time_in_phase(self) -> np.ndarray:
        return self.sim.time_in_phase()[self.rows]

    def approach_state(self) -> np.ndarray:
        return self.sim.approach_state()[self.rows]


@dataclass(frozen=True)
class EnvRows:
    """What a controller's `reset` reads of an env, for one block of its scenarios."""

    config: Any
    network: Network
    sim: ScenarioRows
    num_envs: int


class Blocks(PhaseController):
    """Several controllers sharing one control step on one batched env: member i drives scenarios
    [i * block, (i + 1) * block). Why: the simulator is cheaper per scenario in a larger batch,
    and every baseline acts on the same step, so all of them x all episodes run as one batch.
    Each member reads and decides only its rows (its own random draws, parameters and state), so
    its episodes are those it would have alone."""

    name = "blocks"

    def __init__(self, members: Sequence[PhaseController], block: int) -> None:
        steps = {m.control_step_s for m in members}
        if len(steps) != 1 or block < 1:
            raise ValueError(f"Blocks needs members of one control step and block >= 1, got {steps}, {block}")
        super().__init__(steps.pop())
        self.members, self.block = list(members), int(block)

    def rows(self, i: int) -> slice:
        """The scenarios of member i."""
        return slice(i * self.block, (i + 1) * self.block)

    def reset(self, env: Any) -> None:
        super().reset(env)
        if self.n_scenarios != len(self.members) * self.block:
            raise ValueError(
                f"{len(self.members)} members x {self.block} scenarios need an env of "
                f"{len(self.members) * self.block}, got {self.n_scenarios}"
            )
        for i, member in enumerate(self.members):
            member.reset(EnvRows(env.config, env.network, ScenarioRows(env.sim, self.rows(i)), self.block))

    def wanted_phases(self, sim: Any, current: np.ndarray) -> np.ndarray:
        wanted = []
        for i, member in enumerate(self.members):
            rows = self.rows(i)
            wanted.append(member.wanted_phases(ScenarioRows(sim, rows), current[rows]))
        return np.concatenate(wanted)
