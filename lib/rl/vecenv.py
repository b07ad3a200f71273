"""Stable-Baselines3 VecEnv over the B scenarios of one pooled simulator.

Why: stepping n_envs separate envs costs n_envs simulator calls per step and leaves a GPU idle.
Here one `advance` moves all B scenarios; the control loop is lib.env.SignalBatch, the same code
the single env runs, so env i of `TrafficVecEnv(n).seed(s)` reproduces
`TrafficSignalEnv().reset(seed=s + i)` step for step. Finished scenarios reset automatically
with `terminal_observation` in their info, per SB3's convention.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils.seeding import np_random
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from lib.rl.env import EnvConfig, SignalBatch, lease_for, make_config


class TrafficVecEnv(VecEnv):
    """`n_envs` scenarios stepped by one simulator call; same spaces and info keys as the env."""

    def __init__(
        self, n_envs: int, config: EnvConfig | Mapping[str, Any] | None = None, **overrides: Any
    ) -> None:
        if not isinstance(n_envs, (int, np.integer)) or isinstance(n_envs, bool) or n_envs < 1:
            raise ValueError(f"n_envs must be a positive int (scenarios stepped together), got {n_envs!r}")
        self.config = make_config(config, overrides)
        self._lease = lease_for(self.config, int(n_envs))
        self.sim = self._lease.sim
        self.network = self.sim.network
        self.n_signals = self.network.n_signals
        self._batch = SignalBatch(self.sim, self.config)
        self._batch.observe()
        self._rngs: list[np.random.Generator | None] = [None] * int(n_envs)
        self._scenario_attrs: list[dict[str, Any]] = [{} for _ in range(int(n_envs))]
        self._actions: np.ndarray | None = None
        self._started = False
        self.render_mode = None
        super().__init__(int(n_envs), self._batch.observation_space, self._batch.action_space)

    def reset(self) -> np.ndarray:
        self._check_open()
        for i in range(self.num_envs):
            if self._seeds[i] is not None or self._rngs[i] is None:
                self._rngs[i] = np_random(self._seeds[i])[0]
            self._batch.begin(i, self._rngs[i])
        self._reset_seeds()
        self._reset_options()
        obs = self._batch.observe()
        self.reset_infos = self._batch.infos()
        self._started = True
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._check_open()
        if not self._started:
            raise RuntimeError("call reset() before step(): the scenarios have not started")
        self._actions = self._batch.switch_bits(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() needs a step_async(actions) first")
        obs, rewards, dones = self._batch.step(self._actions)
        self._actions = None
        infos = self._batch.infos()
        finished = np.flatnonzero(dones)
        if finished.size:
            for i in finished:
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = True
                self._batch.begin(int(i), self._rngs[i])
            obs = self._batch.observe()
            fresh = self._batch.infos(finished)
            for i, info in zip(finished, fresh, strict=True):
                self.reset_infos[i] = info
        return obs, rewards.astype(np.float32), dones.copy(), infos

    def seed_each(self, seeds: list[int]) -> None:
        """Seed scenario i with `seeds[i]` at the next reset (`seed(s)` gives s, s + 1, ...): a paired
        evaluation repeats the same episodes in scenarios of its own choosing."""
        if len(seeds) != self.num_envs:
            raise ValueError(f"seed_each needs {self.num_envs} seeds, one per scenario, got {len(seeds)}")
        self._seeds = [int(s) for s in seeds]

    def encode_phases(self, phases: Any) -> np.ndarray:
        """Actions (n_envs,) or (n_envs, n_signals) requesting `phases` (n_envs, n_signals)."""
        return self._batch.encode(phases)

    def close(self) -> None:
        """Give the simulator back to the pool (idempotent)."""
        self._lease.release()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute of each sub-environment (`Scenario`), as DummyVecEnv reads its envs'."""
        return [getattr(self.scenario(i), attr_name) for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set the attribute of each sub-environment named; a setting the scenarios share (their
        config, network, spaces) can only be set for all of them at once."""
        chosen = list(self._get_indices(indices))
        if attr_name in Scenario.SHARED:
            if sorted(chosen) != list(range(self.num_envs)):
                raise ValueError(
                    f"the {self.num_envs} scenarios of a TrafficVecEnv share '{attr_name}' (one simulator "
                    f"call steps them all): set it for all indices (indices=None), or use separate VecEnvs"
                )
            setattr(self, attr_name, value)
            return
        for i in chosen:
            setattr(self.scenario(i), attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **kwargs: Any
    ) -> list:
        """Call the method on each sub-environment named (`env_method("reset", indices=[2])` resets
        scenario 2 alone and returns its (obs, info), as a TrafficSignalEnv would)."""
        chosen = self._get_indices(indices)
        return [getattr(self.scenario(i), method_name)(*method_args, **kwargs) for i in chosen]

    def scenario(self, index: int) -> Scenario:
        """Scenario `index` seen as one environment (what DummyVecEnv's envs[index] would be)."""
        if not 0 <= int(index) < self.num_envs:
            raise IndexError(f"scenario index {index} is out of range for {self.num_envs} scenarios")
        return Scenario(self, int(index))

    def reset_scenario(self, index: int, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode in one scenario (the others keep theirs); its (obs, info)."""
        self._check_open()
        if seed is not None or self._rngs[index] is None:
            self._rngs[index] = np_random(seed)[0]
        self._batch.begin(index, self._rngs[index])
        obs = self._batch.observe()[index]
        self.reset_infos[index] = self._batch.infos([index])[0]
        return obs, self.reset_infos[index]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def _check_open(self) -> None:
        if self._lease.released:
            raise RuntimeError("this TrafficVecEnv is closed; create a new one")


class Scenario:
    """One scenario of a TrafficVecEnv as the environment SB3's per-index calls expect.

    DummyVecEnv answers `get_attr`, `set_attr` and `env_method` from its i-th environment; here
    every scenario lives in one batched simulator, so this view answers for scenario i: its own
    demand, RNG, reset, encode and decode, plus the settings all scenarios share (read from the
    VecEnv). Attributes set on it are kept per scenario.
    """

    SHARED = ("config", "network", "sim", "n_signals", "observation_space", "action_space", "render_mode")

    def __init__(self, vec: TrafficVecEnv, index: int) -> None:
        object.__setattr__(self, "_vec", vec)
        object.__setattr__(self, "index", index)

    def __getattr__(self, name: str) -> Any:
        if name in Scenario.SHARED:
            return getattr(self._vec, name)
        extra = self._vec._scenario_attrs[self.index]
        if name in extra:
            return extra[name]
        raise AttributeError(f"scenario {self.index} of a TrafficVecEnv has no attribute '{name}'")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in Scenario.SHARED or hasattr(type(self), name):
            raise AttributeError(f"'{name}' of a TrafficVecEnv scenario cannot be set per scenario")
        self._vec._scenario_attrs[self.index][name] = value

    @property
    def unwrapped(self) -> Scenario:
        return self

    @property
    def np_random(self) -> np.random.Generator | None:
        return self._vec._rngs[self.index]

    @property
    def demand_veh_h(self) -> np.ndarray:
        """This scenario's base demand per entry (veh/h, before the profile factor)."""
        return self._vec._batch.demand[self.index].copy()

    def get_wrapper_attr(self, name: str) -> Any:
        return getattr(self, name)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        return self._vec.reset_scenario(self.index, seed)

    def encode_phases(self, phases: Any) -> Any:
        """The action requesting `phases` (n_signals,) in this scenario."""
        batch = self._vec._batch
        every = batch.reads["phase"].copy()
        every[self.index] = np.asarray(phases)
        action = batch.encode(every)[self.index]
        return int(action) if self._vec.config.action_mode == "joint" else action

    def decode_action(self, action: Any) -> np.ndarray:
        """The phases (n_signals,) that `action` requests from this scenario's current ones."""
        batch = self._vec._batch
        every = np.zeros((batch.n, *batch.action_space.shape), dtype=np.int64)
        every[self.index] = np.asarray(action)
        return batch.decode(batch.switch_bits(every))[self.index]

    def step(self, action: Any) -> Any:
        raise RuntimeError("a scenario of a TrafficVecEnv cannot step alone: one simulator call advances "
                           "them all; call step() on the VecEnv")

    def close(self) -> None:
        raise RuntimeError("a scenario of a TrafficVecEnv cannot close alone: close() the VecEnv")
