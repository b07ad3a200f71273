"""Victoria Island signal control: network, batched ARZ simulator, RL environments and training.

Map data © OpenStreetMap contributors, ODbL 1.0 (see lib/data/victoria_island/README.md).

The layers (docs/architecture.md): `lib.config` and `lib.obs` at the bottom, `lib.sim` (the
simulator), `lib.rl` (environments, controllers, training), and on top `lib.runlog` (reading run
logs) and `lib.remote` (the Kaggle bundle and API).

The public names below are imported lazily, on first use, so `import lib` (and fetch_logs.py,
which only reads logs) pays for neither numba nor torch. Importing lib registers the Gymnasium
id, so `gym.make("VictoriaIsland-v0")` works after `import lib`, and
`gym.make("lib:VictoriaIsland-v0")` in a fresh process.
"""

from __future__ import annotations

import importlib
from typing import Any

ENV_ID = "VictoriaIsland-v0"

# public name -> the module that defines it
PUBLIC = {
    "load_network": "lib.sim.network",
    "Network": "lib.sim.network",
    "Simulator": "lib.sim.simulator",
    "SimConfig": "lib.sim.simulator",
    "EnvConfig": "lib.rl.env",
    "TrafficSignalEnv": "lib.rl.env",
    "TrafficVecEnv": "lib.rl.vecenv",
    "RunConfig": "lib.rl.run_config",
    "run": "lib.rl.train",
}
__all__ = sorted(PUBLIC)


def __getattr__(name: str) -> Any:
    if name in PUBLIC:
        value = getattr(importlib.import_module(PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lib' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(PUBLIC))


def _register() -> None:
    """Register the environment id with Gymnasium (its entry point is imported only by make)."""
    try:
        import gymnasium
    except ImportError:  # reading logs needs no gymnasium
        return
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point="lib.rl.env:TrafficSignalEnv")


_register()
