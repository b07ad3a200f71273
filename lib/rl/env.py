"""Gymnasium environment: control the corridor's signals, one decision every few simulated seconds.

Layout of observations, actions, rewards, demand and info keys: docs/env.md. The control loop
(actions -> phase requests, demand, advance, observation, reward, metrics) lives in
`SignalBatch`, written once for B scenarios: the single env runs it with B = 1 and
lib/rl/vecenv.py with B = n_envs, so both give the same numbers for the same seed and actions.
The simulator comes from lib.rl.pool, so any number of environments share one network build.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from lib.config import ConfigError, strict_config
from lib.rl import pool
from lib.rl.demand import default_demand, draw_episode, mean_profile_factor
from lib.rl.reward import Reward, RewardName, row_sum
from lib.sim.network import DEFAULT_CELL_LENGTH_M, Network
from lib.sim.simulator import DEFAULT_MOTO_SHARE, SimConfig, Simulator

MIN_DECISION_S, MAX_DECISION_S = 1.0, 3600.0
MIN_CELL_M, MAX_CELL_M = 1.0, 1000.0


@strict_config
class EnvConfig:
    """Every setting of the environments (docs/env.md explains each choice)."""

    decision_interval: float = 15.0  # simulated s between decisions
    episode_seconds: float = 3600.0  # horizon -> truncated=True
    action_mode: Literal["joint", "multibinary"] = "joint"  # Discrete(2**n) | MultiBinary(n)
    reward: RewardName = "delay"  # lib/rl/reward.py
    demand_scale: float = 1.0  # multiplies the per-entry demand
    moto_share: float = DEFAULT_MOTO_SHARE  # docs/calibration.md
    randomize_demand: bool = True  # per-episode level, jitter and profile from the seeded RNG
    backend: Literal["auto", "cpu", "cuda"] = "auto"
    data_path: str | None = None  # None: lib/data/victoria_island
    sim: SimConfig = SimConfig()  # the simulator's model and numerics (lib/sim/simulator.py)
    demand_veh_h: tuple[float, ...] | None = None  # per entry (network.entries order); None: default
    demand_profile: Literal["random", "flat", "peak"] = "random"  # "random" is flat when not randomized
    demand_level_range: tuple[float, float] = (0.7, 1.3)  # episode level ~ U[lo, hi]
    demand_jitter: float = 0.15  # each entry x U[1 - jitter, 1 + jitter]
    cell_length_m: float = DEFAULT_CELL_LENGTH_M
    # advance each decision in pieces that end where an amber can end, so an amber lasts amber_s
    # and not the simulator's next whole substep (docs/env.md, "Actions"); False: one advance
    align_amber: bool = True
    max_time_in_phase_s: float = 120.0  # observation: time in phase / this, capped at 1
    queue_norm_m: float = 500.0  # observation: queue / jam storage of min(link length, this)
    # "extended" appends per signal whether a switch is allowed now, per approach the moving
    # (not queued) vehicles on its link, and per entry its vertical queue (docs/env.md)
    observation: Literal["basic", "extended"] = "basic"
    entry_queue_norm_veh: float = 50.0  # extended observation: entry queue q reads q / (q + this)

    def validate(self) -> None:
        positive = (
            "decision_interval",
            "episode_seconds",
            "max_time_in_phase_s",
            "queue_norm_m",
            "cell_length_m",
            "entry_queue_norm_veh",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"EnvConfig.{name} must be > 0, got {getattr(self, name)!r}.")
        if not MIN_DECISION_S <= self.decision_interval <= MAX_DECISION_S:
            raise ConfigError(
                f"EnvConfig.decision_interval must be {MIN_DECISION_S:g}..{MAX_DECISION_S:g} simulated s "
                f"(a signal cannot switch faster than its amber; an hour is a whole episode), got "
                f"{self.decision_interval!r}."
            )
        if not MIN_CELL_M <= self.cell_length_m <= MAX_CELL_M:
            raise ConfigError(
                f"EnvConfig.cell_length_m must be {MIN_CELL_M:g}..{MAX_CELL_M:g} m (shorter cells multiply "
                f"the memory and shrink the time step), got {self.cell_length_m!r}."
            )
        if self.episode_seconds < self.decision_interval:
            raise ConfigError(
                f"EnvConfig.episode_seconds ({self.episode_seconds}) must be >= decision_interval "
                f"({self.decision_interval}): an episode needs at least one decision."
            )
        if not self.demand_scale >= 0:
            raise ConfigError(
                f"EnvConfig.demand_scale must be >= 0 (negative demand), got {self.demand_scale!r}."
            )
        if not 0.0 <= self.moto_share <= 1.0:
            raise ConfigError(f"EnvConfig.moto_share must be a fraction in [0, 1], got {self.moto_share!r}.")
        if self.demand_veh_h is not None and not all(v >= 0 for v in self.demand_veh_h):
            raise ConfigError(
                f"EnvConfig.demand_veh_h must be >= 0 veh/h per entry, got {self.demand_veh_h}."
            )
        low, high = self.demand_level_range
        if not 0 <= low <= high:
            raise ConfigError(
                f"EnvConfig.demand_level_range must be (low, high) with 0 <= low <= high, got {(low, high)}."
            )
        if not 0 <= self.demand_jitter < 1:
            raise ConfigError(f"EnvConfig.demand_jitter must be in [0, 1), got {self.demand_jitter!r}.")

    @property
    def horizon(self) -> int:
        """Decisions in one episode: episode_seconds over decision_interval, rounded up."""
        return math.ceil(self.episode_seconds / self.decision_interval - 1e-9)


def make_config(config: EnvConfig | Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> EnvConfig:
    """An EnvConfig from a config (or a dict of its fields, or None) plus keyword overrides."""
    if config is None:
        return EnvConfig(**overrides)
    if isinstance(config, EnvConfig):
        return config.replace(**overrides) if overrides else config
    if isinstance(config, Mapping):
        return EnvConfig.from_dict(config, **overrides)
    raise TypeError(f"config must be an EnvConfig, a dict of its fields or None, got {type(config).__name__}")


def lease_for(config: EnvConfig, n_slots: int) -> pool.Lease:
    """A pooled simulator of `n_slots` scenarios for this config."""
    return pool.acquire(
        n_slots,
        data_path=config.data_path,
        sim_config=config.sim,
        backend=config.backend,
        cell_length_m=config.cell_length_m,
    )


DECISION_STEPS = [0]  # SignalBatch.step calls in this process: a run's launches per decision divide by it


class SignalBatch:
    """The control loop for the B scenarios of one simulator (B = 1 for the single env)."""

    def __init__(self, sim: Simulator, config: EnvConfig) -> None:
        network = sim.network
        self.sim, self.network, self.config = sim, network, config
        self.n = sim.n_scenarios
        self.n_signals = network.n_signals
        self.n_phases = np.array([s.n_phases for s in network.signals], dtype=np.int64)
        self.interval = float(config.decision_interval)
        self.horizon = config.horizon
        self.base_demand = base_demand(config, network)
        self.reward = Reward(config.reward, network, self.interval)
        self._bits = np.arange(self.n_signals, dtype=np.int64)
        self.pieces = advance_pieces(self.interval, float(sim.config.amber_s)) if config.align_amber else [
            self.interval
        ]
        self._init_observation(network, sim.config)
        self.steps = np.zeros(self.n, dtype=np.int64)
        self.demand = np.zeros((self.n, network.n_entries))
        self.peak = np.zeros(self.n, dtype=bool)
        self.level = np.ones(self.n)
        self.delay_prev = np.zeros(self.n)
        self.exited_prev = np.zeros(self.n)
        self.queue_sum = np.zeros(self.n)
        self.queue_max = np.zeros(self.n)
        self.reads: dict[str, np.ndarray] = {}
        # per signal: has it changed phase this episode (its minimum green then counts its amber)
        self._changed = np.zeros((self.n, self.n_signals), dtype=bool)
        self._last_phase = np.zeros((self.n, self.n_signals), dtype=np.int64)
        self._sent_demand: tuple[np.ndarray, float] | None = None  # last rates sent (_send_demand)

    # ------------------------------------------------------------------ spaces and actions

    @property
    def observation_space(self) -> spaces.Box:
        return spaces.Box(0.0, 1.0, shape=(self.obs_size,), dtype=np.float32)

    @property
    def action_space(self) -> spaces.Space:
        if self.config.action_mode == "joint":
            return spaces.Discrete(2**self.n_signals)
        return spaces.MultiBinary(self.n_signals)

    def switch_bits(self, actions: Any) -> np.ndarray:
        """(B, n_signals) 0/1 switch requests from B actions, with a clear error for bad ones."""
        a = np.asarray(actions)
        joint = self.config.action_mode == "joint"
        shape = (self.n,) if joint else (self.n, self.n_signals)
        if a.shape != shape or a.dtype.kind not in "biuf":
            raise ValueError(
                self._action_help(f"got {a.dtype} array of shape {a.shape}, expected shape {shape}")
            )
        ints = a.astype(np.int64)
        limit = 2**self.n_signals if joint else 2
        if (a.dtype.kind == "f" and not np.array_equal(ints, a)) or ints.min() < 0 or ints.max() >= limit:
            raise ValueError(self._action_help(f"got values {a.ravel()[:8].tolist()}"))
        return (ints[:, None] >> self._bits) & 1 if joint else ints

    def _action_help(self, problem: str) -> str:
        if self.config.action_mode == "joint":
            rule = f"an integer in [0, {2**self.n_signals}) whose bit i = 1 asks signal i to switch"
        else:
            rule = f"{self.n_signals} values of 0 (keep) or 1 (switch), one per signal"
        return f"invalid action: each action must be {rule}; {problem}"

    def encode(self, phases: Any) -> np.ndarray:
        """Actions (B,) or (B, n_signals) that request `phases` (B, n_signals) from the current ones."""
        p = np.asarray(phases)
        if p.shape != (self.n, self.n_signals) or p.dtype.kind not in "iu":
            raise ValueError(
                f"phases must be ints of shape {(self.n, self.n_signals)}, got {p.dtype} {p.shape}"
            )
        if (p < 0).any() or (p >= self.n_phases).any():
            raise ValueError(
                f"phases must lie in [0, n_phases) per signal (n_phases {self.n_phases.tolist()})"
            )
        bits = (p != self.reads["phase"]).astype(np.int64)
        if self.config.action_mode == "joint":
            return (bits << self._bits).sum(axis=1)
        return bits.astype(np.int8)

    def decode(self, bits: np.ndarray) -> np.ndarray:
        """Requested phases (B, n_signals): the next phase where a bit asks to switch."""
        current = self.reads["phase"]
        return np.where(bits == 1, (current + 1) % self.n_phases, current)

    # ------------------------------------------------------------------ episodes and steps

    def begin(self, index: int, rng: np.random.Generator) -> None:
        """Start a new episode in scenario `index`: draw its demand, restore the initial state."""
        c = self.config
        if c.randomize_demand:
            level_range, jitter, profile = c.demand_level_range, c.demand_jitter, c.demand_profile
        else:
            level_range, jitter = (1.0, 1.0), 0.0
            profile = "flat" if c.demand_profile == "random" else c.demand_profile
        episode = draw_episode(rng, self.base_demand, level_range, jitter, profile)
        self.sim.reset(seed=int(rng.integers(2**31)), scenarios=np.array([index]))
        self.demand[index] = episode.base
        self.peak[index] = episode.profile == "peak"
        self.level[index] = episode.level
        for acc in (self.steps, self.delay_prev, self.exited_prev, self.queue_sum, self.queue_max):
            acc[index] = 0
        self._changed[index] = False
        self._last_phase[index] = self.sim.current_phase()[index]
        self._sent_demand = None  # a new episode sends its rates whatever the simulator held

    def step(self, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply switch bits, advance one decision interval; (observations, rewards, truncated)."""
        sim = self.sim
        sim.set_phase(self.decode(bits))
        self._send_demand()
        for piece in self.pieces:
            sim.advance(piece)
        DECISION_STEPS[0] += 1
        self.steps += 1
        obs = self.observe()
        r = self.reads
        reward = self.reward(
            sim, r["delay"] - self.delay_prev, r["exited"] - self.exited_prev, r["queue"], r["approach_queue"]
        )
        self.delay_prev = r["delay"].copy()
        self.exited_prev = r["exited"].copy()
        self.queue_sum += r["queue"]
        np.maximum(self.queue_max, r["queue"], out=self.queue_max)
        return obs, reward, self.steps >= self.horizon

    def _send_demand(self) -> None:
        """Set this interval's arrival rates: the episode's demand times its profile's mean over
        the interval. Sent only when it differs from what this batch last sent in the episode (a
        flat episode's rates change only at a reset), which saves the simulator's checks on most
        decisions; the product is the same numbers as before (x 1.0 is exact)."""
        demand = self.demand
        if self.peak.any():
            start = self.steps * self.interval
            peak = mean_profile_factor("peak", start, start + self.interval, self.config.episode_seconds)
            demand = demand * np.where(self.peak, peak, 1.0)[:, None]
        sent = self._sent_demand
        if sent is None or sent[1] != self.config.moto_share or not np.array_equal(demand, sent[0]):
            self.sim.set_demand(demand, self.config.moto_share)
            self._sent_demand = (demand.copy(), self.config.moto_share)

    # ------------------------------------------------------------------ observation and info

    def _init_observation(self, network: Network, sim_config: SimConfig) -> None:
        links = [network.links[a.link] for a in network.approaches]
        jam = float(sim_config.rho_jam_per_lane)
        lanes = np.array([lk.lanes for lk in links], dtype=np.float64)
        length = np.array([lk.length_m for lk in links])
        self._scale = np.stack(
            [
                1.0 / (jam * lanes),
                1.0 / np.array([lk.free_speed_mps for lk in links]),
                1.0 / (jam * lanes * np.minimum(length, self.config.queue_norm_m)),
            ],
            axis=1,
        )
        self._phase_offset = np.cumsum(np.concatenate([[0], self.n_phases[:-1] + 2]))
        self._signal_base = 3 * len(links)
        self.basic_size = self._signal_base + int((self.n_phases + 2).sum())
        self.obs_size = self.basic_size
        self._rows = np.arange(self.n)[:, None]
        if self.config.observation == "extended":
            # switch allowed (n_signals), moving vehicles per approach link (n_approaches), entry
            # queues (n_entries); the moving vehicles use the queue's scale (jam storage)
            self._approach_links = np.array([a.link for a in network.approaches], dtype=np.int64)
            self._link_length = np.array([lk.length_m for lk in network.links])
            self.obs_size += self.n_signals + len(links) + network.n_entries

    def observe(self) -> np.ndarray:
        """Read the simulator into `self.reads` and return observations (B, obs_size) float32."""
        sim, r = self.sim, self.reads
        state = sim.approach_state()
        phase = sim.current_phase().astype(np.int64)
        r["phase"] = phase
        self._changed |= phase != self._last_phase
        self._last_phase = phase
        r["delay"] = sim.cumulative_delay()
        r["exited"] = sim.cumulative_exited()
        entry = sim.queue_lengths()
        r["entry_queue"] = row_sum(entry)
        r["approach_queue"] = state[:, :, 2]
        r["queue"] = row_sum(np.concatenate([state[:, :, 2], entry], axis=1))
        obs = np.zeros((self.n, self.obs_size), dtype=np.float32)
        obs[:, : self._signal_base] = (state * self._scale).reshape(self.n, -1)
        base = self._signal_base + self._phase_offset
        obs[self._rows, base + phase] = 1.0
        obs[:, base + self.n_phases] = sim.time_in_phase() / self.config.max_time_in_phase_s
        obs[:, base + self.n_phases + 1] = sim.in_amber()
        if self.config.observation == "extended":
            self._observe_extended(obs, state, entry)
        np.clip(obs, 0.0, 1.0, out=obs)
        return obs

    def _observe_extended(self, obs: np.ndarray, state: np.ndarray, entry: np.ndarray) -> None:
        """The extended block after the basic one: per signal whether a switch request would be
        accepted now (`switch_allowed`), per approach its
        link's vehicles not standing in a queue (vehicles on the link minus its standing queue,
        on the queue's scale), per entry its vertical queue q as q / (q + entry_queue_norm_veh)."""
        sim, k = self.sim, self.basic_size
        obs[:, k : k + self.n_signals] = self.switch_allowed()
        k += self.n_signals
        on_link = sim.link_density()[:, self._approach_links] * self._link_length[self._approach_links]
        moving = np.maximum(on_link - state[:, :, 2], 0.0)
        obs[:, k : k + moving.shape[1]] = moving * self._scale[:, 2]
        k += moving.shape[1]
        obs[:, k:] = entry / (entry + self.config.entry_queue_norm_veh)

    def switch_allowed(self) -> np.ndarray:
        """(B, n_signals) bool: a switch request made now would be accepted. The simulator's rule
        (Simulator.set_phase): out of amber, and the minimum green served, counted from the last
        change including its amber, or from t = 0 for a signal that has not changed yet."""
        sim = self.sim
        amber_s, min_green_s = float(sim.config.amber_s), float(sim.config.min_green_s)
        needed = min_green_s + np.where(self._changed, amber_s, 0.0)
        return ~sim.in_amber() & (sim.time_in_phase() - needed >= -1e-9)

    def infos(self, indices: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """The info dict of each scenario (keys: docs/env.md, "Info")."""
        sim, r = self.sim, self.reads
        entered = sim.cumulative_entered()
        done = np.maximum(self.steps, 1)
        columns = {
            "delay_s": r["delay"],
            "mean_delay_s": np.where(entered > 0, r["delay"] / np.maximum(entered, 1e-300), 0.0),
            "entered": entered,
            "exited": r["exited"],
            "mean_queue_veh": self.queue_sum / done,
            "max_queue_veh": self.queue_max,
            "queue_veh": r["queue"],
            "entry_queue_veh": r["entry_queue"],
            "switches": sim.switches(),
            "ignored_requests": sim.ignored_requests(),
            "sim_time": self.steps * self.interval,
            "demand_level": self.level,
            "demand_peak": self.peak,
        }
        keys = list(columns)
        rows = zip(*(columns[k].tolist() for k in keys), strict=True)
        every = [dict(zip(keys, row, strict=True)) for row in rows]
        return every if indices is None else [every[i] for i in indices]


def advance_pieces(interval: float, amber_s: float) -> list[float]:
    """The pieces one decision interval is advanced in: split where an amber started at a
    decision (amber_s - k * interval after it, for the ambers carried over) ends inside it.

    Why: the simulator gates a movement per substep (dt = 2.5 s here) by comparing the amber left
    with the substep's start, so inside one `advance(15)` a 3 s amber keeps the movement closed
    for two substeps, 5 s; an `advance(3)` then `advance(12)` closes it exactly 3 s, as a
    controller stepping every 1 s gets (the amber is counted down between calls). The pieces
    depend only on the interval and the amber, never on the batch, so the single env and the
    VecEnv stay bit for bit equal."""
    ends = sorted({round(amber_s - k * interval, 9) for k in range(int(amber_s // interval) + 1)})
    cuts = [e for e in ends if 1e-9 < e < interval - 1e-9]
    edges = [0.0, *cuts, interval]
    return [b - a for a, b in zip(edges, edges[1:], strict=False)]


def base_demand(config: EnvConfig, network: Network) -> np.ndarray:
    """The mean demand (veh/h per entry) of the episodes: configured or default, x demand_scale."""
    if config.demand_veh_h is None:
        base = default_demand(network)
    elif len(config.demand_veh_h) != network.n_entries:
        raise ConfigError(
            f"EnvConfig.demand_veh_h has {len(config.demand_veh_h)} values but the network has "
            f"{network.n_entries} entries; give one veh/h value per entry in network.entries order."
        )
    else:
        base = np.array(config.demand_veh_h, dtype=np.float64)
    return base * config.demand_scale


class TrafficSignalEnv(gym.Env):
    """One scenario of the pooled simulator as a Gymnasium env (spaces and keys: docs/env.md)."""

    metadata = {"render_modes": []}

    def __init__(self, config: EnvConfig | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        self.config = make_config(config, overrides)
        self._lease = lease_for(self.config, 1)
        self.sim = self._lease.sim
        self.network = self.sim.network
        self.n_signals = self.network.n_signals
        self._batch = SignalBatch(self.sim, self.config)
        self.observation_space = self._batch.observation_space
        self.action_space = self._batch.action_space
        self._batch.observe()
        self._state = "new"

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        self._check_open()
        super().reset(seed=seed)
        self._batch.begin(0, self.np_random)
        obs = self._batch.observe()[0]
        self._state = "running"
        return obs, self._batch.infos()[0]

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._check_open()
        if self._state != "running":
            raise RuntimeError("call reset() before step(): the episode has not started or has ended")
        action = np.asarray(action)
        bits = self._batch.switch_bits(
            action[None] if action.ndim == len(self.action_space.shape) else action
        )
        obs, reward, truncated = self._batch.step(bits)
        if truncated[0]:
            self._state = "ended"
        return obs[0], float(reward[0]), False, bool(truncated[0]), self._batch.infos()[0]

    def encode_phases(self, phases: Any) -> Any:
        """The action requesting `phases` (n_signals,): switch bits where they differ from now."""
        self._check_open()
        action = self._batch.encode(np.asarray(phases)[None])[0]
        return int(action) if self.config.action_mode == "joint" else action

    def decode_action(self, action: Any) -> np.ndarray:
        """The phases (n_signals,) that `action` requests from the current ones."""
        self._check_open()
        action = np.asarray(action)
        return self._batch.decode(self._batch.switch_bits(action[None]))[0]

    @property
    def demand_veh_h(self) -> np.ndarray:
        """This episode's base demand per entry (veh/h, before the profile factor)."""
        return self._batch.demand[0].copy()

    def close(self) -> None:
        """Give the simulator back to the pool (idempotent)."""
        self._lease.release()
        self._state = "closed"

    def _check_open(self) -> None:
        if self._state == "closed":
            raise RuntimeError("this environment is closed; create a new TrafficSignalEnv")
