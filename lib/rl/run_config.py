"""RunConfig: every setting of a training run, checked before anything is built or pushed.

It lives apart from lib/rl/train.py so that checking a configuration (push_kernel.py does it
before a Kaggle session is spent) imports neither torch nor Stable-Baselines3.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Literal

from lib.config import ConfigError, strict_config
from lib.rl import protocol
from lib.rl.env import EnvConfig

# The most steps a run may ask for: a Kaggle session (12 h) makes well under 10**8.
MAX_STEPS = 10**9
SANITY_SEED_OFFSET = 2_000_000
# DQN's warm-up when learning_starts is not set: shrunk (with a warning) when a budget is smaller.
DEFAULT_LEARNING_STARTS = 100
# The discount when gamma is not set: 0.95 per 15 s decision (a horizon of ~20 decisions = 5 min),
# the same time horizon at any decision interval: gamma = 0.95 ** (decision_interval / 15).
GAMMA_PER_REFERENCE, GAMMA_REFERENCE_S = 0.95, 15.0


@strict_config
class RunConfig:
    """Every setting of a run; docs/training.md gives each default's reason."""

    steps: int = 300  # total environment steps (transitions, all envs together)
    seed: int = 0
    algorithm: Literal["dqn", "ppo"] = "dqn"
    n_envs: int = 4  # scenarios stepped together by one simulator call
    eval_episodes: int = 5  # one per evaluation seed, the same for every controller
    output_dir: str = ""  # "" -> runs/<run_id>
    env: EnvConfig = EnvConfig()  # the environments (and, inside, the simulator: env.sim)
    checkpoint_every: int = 10_000  # steps between checkpoints (one is also saved at the end)
    keep_checkpoints: int = 3
    resume: bool = False  # continue from the newest complete checkpoint in output_dir
    resume_without_replay: bool = False  # accept a DQN checkpoint whose replay buffer is gone
    tensorboard: bool = False
    progress_bar: bool = True  # tqdm on stderr
    run_id: str = ""  # "" -> <UTC time>-<algorithm>-s<seed>
    commit: str = ""  # "" -> `git rev-parse HEAD`, else "unknown"
    torch_device: Literal["auto", "cpu", "cuda"] = "cpu"  # a 64x64 MLP is faster on the CPU
    torch_threads: int = 1  # more threads fight numba's OpenMP pool: 15 ms vs 0.5 ms per update here
    # both algorithms
    learning_rate: float = 5e-4
    gamma: float | None = None  # None: 0.95 per 15 s of decisions (discount()), 0.983 at 5 s
    batch_size: int = 64
    net_arch: tuple[int, ...] = (64, 64)
    # DQN
    buffer_size: int = 50_000
    learning_starts: int | None = None  # None: DEFAULT_LEARNING_STARTS, shrunk to fit a small budget
    train_freq: int = 1
    gradient_steps: int = 1
    target_update_interval: int = 200
    exploration_fraction: float = 0.3
    exploration_final_eps: float = 0.05
    # PPO
    n_steps: int = 128
    n_epochs: int = 10
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.01
    # the model kept and the comparison (issue 12)
    validation_every: int = 0  # steps between validation evaluations; 0: keep the final model
    validation_episodes: int = 5
    baselines: bool = True  # evaluate the classic controllers on the evaluation seeds too

    def validate(self) -> None:
        positive = (
            "torch_threads",
            "steps",
            "n_envs",
            "eval_episodes",
            "checkpoint_every",
            "keep_checkpoints",
            "batch_size",
            "buffer_size",
            "train_freq",
            "target_update_interval",
            "n_steps",
            "n_epochs",
            "validation_episodes",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"RunConfig.{name} must be >= 1, got {getattr(self, name)!r}.")
        if self.steps > MAX_STEPS:
            raise ConfigError(f"RunConfig.steps must be at most {MAX_STEPS:.0e} (a Kaggle session makes well "
                              f"under 1e8 in its 12 hours), got {self.steps!r}.")
        if not self.learning_rate > 0 or not 0 < self.discount() <= 1:
            raise ConfigError(
                f"RunConfig needs learning_rate > 0 and 0 < gamma <= 1, got "
                f"{self.learning_rate!r}, {self.gamma!r}."
            )
        largest_seed = protocol.TRAINING.stop - 1 - SANITY_SEED_OFFSET - self.n_envs
        if not 0 <= self.seed <= largest_seed:
            raise ConfigError(
                f"RunConfig.seed must be in 0..{largest_seed}: training and sanity seeds stay in the "
                f"protocol's training set, away from the tuning and evaluation seeds (lib/rl/protocol.py), "
                f"got {self.seed!r}."
            )
        if (self.learning_starts or 0) < 0 or not (self.gradient_steps >= 1 or self.gradient_steps == -1):
            raise ConfigError(f"RunConfig needs learning_starts >= 0 and gradient_steps >= 1 (or -1: as many "
                              f"as steps collected), got {self.learning_starts!r}, {self.gradient_steps!r}.")
        for name in ("exploration_fraction", "exploration_final_eps"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"RunConfig.{name} must be in [0, 1], got {getattr(self, name)!r}.")
        if not self.clip_range > 0 or not 0 <= self.gae_lambda <= 1 or self.ent_coef < 0:
            raise ConfigError(f"RunConfig needs clip_range > 0, 0 <= gae_lambda <= 1 and ent_coef >= 0, got "
                              f"{self.clip_range!r}, {self.gae_lambda!r}, {self.ent_coef!r}.")
        if not re.fullmatch(r"([A-Za-z0-9_-][A-Za-z0-9._-]*)?", self.run_id):
            raise ConfigError(f"RunConfig.run_id names a folder: use letters, digits, '.', '_' and '-' (not "
                              f"starting with '.'), got {self.run_id!r}.")
        if self.validation_every < 0:
            raise ConfigError(
                f"RunConfig.validation_every must be >= 0 (0: off), got {self.validation_every!r}."
            )
        if not self.net_arch or min(self.net_arch) < 1:
            raise ConfigError(f"RunConfig.net_arch needs layers of >= 1 units, got {self.net_arch!r}.")
        if self.algorithm == "dqn" and not self.resume:
            self._check_dqn_budget()
        if self.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise ConfigError(
                "RunConfig.tensorboard=True needs the tensorboard package: pip install tensorboard."
            )
        if self.algorithm == "dqn" and self.env.action_mode != "joint":
            raise ConfigError("DQN needs a Discrete action space: leave env.action_mode at 'joint'.")

    def discount(self) -> float:
        """The gamma used: the one set, else GAMMA_PER_REFERENCE per GAMMA_REFERENCE_S of simulated
        time, so that 5 s decisions look as far ahead (in seconds) as 15 s ones."""
        if self.gamma is not None:
            return self.gamma
        return GAMMA_PER_REFERENCE ** (self.env.decision_interval / GAMMA_REFERENCE_S)

    def warmup_steps(self) -> int:
        """DQN's learning_starts as used: the value set, else DEFAULT_LEARNING_STARTS shrunk so that
        the first gradient update (after one more round of train_freq steps per env) fits in steps."""
        if self.learning_starts is not None:
            return self.learning_starts
        return max(0, min(DEFAULT_LEARNING_STARTS, self.steps - self.train_freq * self.n_envs))

    def _check_dqn_budget(self) -> None:
        """A DQN budget must reach its first gradient update (SB3 would also overrun the budget to
        finish the round that makes it)."""
        warmup, explicit = self.warmup_steps(), self.learning_starts is not None
        if explicit and warmup >= self.steps:
            raise ConfigError(
                f"RunConfig.learning_starts ({warmup}) >= steps ({self.steps}): DQN would never make a "
                f"gradient update. Lower learning_starts below steps, leave it unset, or raise steps."
            )
        first_update = warmup + self.train_freq * self.n_envs
        if first_update > self.steps:
            given = f"learning_starts ({warmup})" if explicit else "no warm-up"
            lower = "train_freq, n_envs or learning_starts" if explicit else "train_freq or n_envs"
            raise ConfigError(
                f"RunConfig: DQN first trains after {given} plus train_freq ({self.train_freq}) steps of "
                f"each of the {self.n_envs} envs = {first_update} steps, more than steps ({self.steps}); "
                f"SB3 would also overrun the budget to finish that round. Raise steps or lower {lower}."
            )
