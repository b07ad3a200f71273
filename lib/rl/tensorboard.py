"""TensorBoard stays out of a run unless the run asks for it.

Why: Stable-Baselines3's logger imports `torch.utils.tensorboard` when SB3 is imported, and on
Kaggle's image that pulls TensorBoard and with it TensorFlow: about 6 s per run and oneDNN,
CPU-feature and cuDNN "factory" lines on stderr, although TensorBoard logging is off. SB3 treats
a failed import of `torch.utils.tensorboard` as "not installed", so until a run asks for
TensorBoard (`RunConfig.tensorboard`) that import fails here, before SB3 is first imported
(lib/rl/__init__.py), and nothing imports TensorBoard or TensorFlow.
"""

from __future__ import annotations

import importlib.abc
import sys
from typing import Any

BLOCKED = "torch.utils.tensorboard"


class _Blocker(importlib.abc.MetaPathFinder):
    """Refuses `torch.utils.tensorboard` (and its submodules) while installed."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == BLOCKED or name.startswith(BLOCKED + "."):
            raise ImportError(f"{name} is off: TensorBoard logging was not asked for (RunConfig.tensorboard)")


_BLOCKER = _Blocker()


def block() -> None:
    """Keep TensorBoard out (idempotent): from now on SB3 finds it not installed."""
    if _BLOCKER not in sys.meta_path:
        sys.meta_path.insert(0, _BLOCKER)


def enable() -> None:
    """A run asked for TensorBoard: lift the block and give SB3's logger the real writer."""
    if _BLOCKER in sys.meta_path:
        sys.meta_path.remove(_BLOCKER)
    from stable_baselines3.common import logger
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    logger.SummaryWriter, logger.hparams = SummaryWriter, hparams
