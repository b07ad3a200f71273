"""The reinforcement-learning layer: pool, environments, controllers, training (docs/architecture.md).

TensorBoard is kept out before anything here imports Stable-Baselines3 (lib/rl/tensorboard.py).
"""

from lib.rl import tensorboard

tensorboard.block()
