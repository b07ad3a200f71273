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

    def encode_phases(self, phases: Any) -> np.ndarray:
        """Actions (n_envs,) or (n_envs, n_signals) requesting `phases` (n_envs, n_signals)."""
        return self._batch.encode(phases)

    def close(self) -> None:
        """Give the simulator back to the pool (idempotent)."""
        self._lease.release()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Attributes are shared by the batch: the same value for every index."""
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if len(list(self._get_indices(indices))) != self.num_envs:
            raise ValueError("the scenarios share their attributes: set_attr applies to all indices or none")
        setattr(self, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **kwargs: Any
    ) -> list:
        return [getattr(self, method_name)(*method_args, **kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def _check_open(self) -> None:
        if self._lease.released:
            raise RuntimeError("this TrafficVecEnv is closed; create a new one")
