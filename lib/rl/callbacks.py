"""SB3 callbacks of a training run: progress (bar, events, curve), periodic checkpoints and the
best model on the validation seeds."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from lib.obs.events import emit
from lib.obs.progress import progress_bar
from lib.rl.checkpoints import Checkpoints

# Seconds between `train_progress` events: well inside the 10 s the log format promises.
PROGRESS_EVERY_S = 5.0


class ProgressCallback(BaseCallback):
    """tqdm bar on stderr, `train_progress` every PROGRESS_EVERY_S, the curve at each episode end.

    Why not SB3's progress_bar=True: its rich bar draws on stdout, where the events go."""

    def __init__(self, total: int, bar: bool, curve: list[tuple[int, float]]) -> None:
        super().__init__()
        self.total, self.show_bar, self.curve = total, bar, curve
        self.last_emit = 0.0

    def _on_training_start(self) -> None:
        self.start_steps = self.model.num_timesteps
        self.started = time.monotonic()
        self.last_emit = self.started
        self.bar = progress_bar(
            total=self.total, initial=self.start_steps, desc="train", disable=not self.show_bar, unit="step"
        )

    def _on_step(self) -> bool:
        self.bar.update(self.model.num_timesteps - self.bar.n)
        if np.any(self.locals.get("dones", False)) and self.model.ep_info_buffer:
            self.curve.append((int(self.model.num_timesteps), self.ep_rew_mean()))
        if time.monotonic() - self.last_emit >= PROGRESS_EVERY_S:
            self.report()
        return True

    def _on_training_end(self) -> None:
        self.report()
        self.bar.close()

    def ep_rew_mean(self) -> float:
        return float(np.mean([ep["r"] for ep in self.model.ep_info_buffer]))

    def report(self) -> None:
        now = time.monotonic()
        self.last_emit = now
        steps = int(self.model.num_timesteps)
        rate = (steps - self.start_steps) / max(now - self.started, 1e-9)
        extra: dict[str, float] = {}
        if self.model.ep_info_buffer:
            extra["ep_rew_mean"] = round(self.ep_rew_mean(), 4)
        loss = self.model.logger.name_to_value.get("train/loss")
        if loss is not None:
            extra["loss"] = round(float(loss), 6)
        if hasattr(self.model, "exploration_rate"):
            extra["exploration_rate"] = round(float(self.model.exploration_rate), 4)
        emit(
            "train_progress",
            steps=steps,
            total=self.total,
            steps_per_s=round(rate, 2),
            eta_s=round(max(self.total - steps, 0) / rate, 1) if rate > 0 else None,
            updates=int(getattr(self.model, "_n_updates", 0)),
            **extra,
        )


class CheckpointCallback(BaseCallback):
    """Save a checkpoint each time the step counter crosses a multiple of `every`."""

    def __init__(self, store: Checkpoints, every: int) -> None:
        super().__init__()
        self.store, self.every = store, every

    def _on_training_start(self) -> None:
        self.next_at = (self.model.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.model.num_timesteps >= self.next_at:
            self.store.save(self.model)
            self.next_at = (self.model.num_timesteps // self.every + 1) * self.every
        return True


class BestModelCallback(BaseCallback):
    """Every `every` steps, evaluate the policy on the validation episodes and keep the best.

    Why: a training run's reward peaks and drifts (runs here peaked at 60-65k of 100k steps),
    so the model reported is the one of lowest mean delay on the validation seeds, never the
    last one nor one chosen on the evaluation seeds. `validate(model) -> mean delay` runs on a
    pooled env (no network build); the best is saved to `path` and a `validation` event tells
    each score."""

    def __init__(self, validate: Callable[[Any], float], every: int, path: Path) -> None:
        super().__init__()
        self.validate, self.every, self.path = validate, every, path
        self.best = math.inf
        self.scores: list[tuple[int, float]] = []

    def _on_training_start(self) -> None:
        self.next_at = (self.model.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.model.num_timesteps >= self.next_at:
            self.check()
            self.next_at = (self.model.num_timesteps // self.every + 1) * self.every
        return True

    def _on_training_end(self) -> None:
        if not self.scores or self.scores[-1][0] != self.model.num_timesteps:
            self.check()

    def check(self) -> None:
        steps = int(self.model.num_timesteps)
        delay = float(self.validate(self.model))
        self.scores.append((steps, delay))
        better = delay < self.best
        if better:
            self.best = delay
            self.model.save(self.path)
        emit(
            "validation",
            steps=steps,
            mean_delay_s=round(delay, 4),
            best=better,
            best_mean_delay_s=round(self.best, 4),
        )
