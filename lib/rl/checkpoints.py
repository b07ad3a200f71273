"""Rotated training checkpoints: the model and, for DQN, its replay buffer, saved every few steps.

A run saves one every `checkpoint_every` steps and at the end (also on Ctrl-C and SIGTERM) and
keeps the newest `keep_checkpoints`; `resume=True` continues from the latest.
"""

from __future__ import annotations

from pathlib import Path

from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from lib.obs.events import emit


class Checkpoints:
    """Rotated checkpoints in one folder: step_<n>.zip, plus step_<n>_replay.pkl for DQN."""

    def __init__(self, folder: Path, keep: int) -> None:
        self.folder, self.keep = folder, keep

    def all(self) -> list[Path]:
        return sorted(self.folder.glob("step_*[0-9].zip"))

    def latest(self) -> Path | None:
        found = self.all()
        return found[-1] if found else None

    @staticmethod
    def replay_path(path: Path) -> Path:
        return path.with_name(path.stem + "_replay.pkl")

    def save(self, model: BaseAlgorithm) -> Path:
        """Save the model (and DQN's replay buffer) at its step count, emit `checkpoint`, rotate."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"step_{model.num_timesteps:09d}.zip"
        model.save(path)
        if getattr(model, "replay_buffer", None) is not None:
            model.save_replay_buffer(self.replay_path(path))
        emit("checkpoint", path=str(path), steps=int(model.num_timesteps))
        for old in self.all()[: -self.keep]:
            old.unlink()
            self.replay_path(old).unlink(missing_ok=True)
        return path

    def load(self, path: Path, algorithm: str, env: VecEnv, device: str) -> BaseAlgorithm:
        """The model saved at `path` (its step counter intact), attached to `env`."""
        model = (DQN if algorithm == "dqn" else PPO).load(path, env=env, device=device)
        if self.replay_path(path).exists():
            model.load_replay_buffer(self.replay_path(path))
        return model
