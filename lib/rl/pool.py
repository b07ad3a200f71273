"""One network build per (data, simulation config, backend) per process; scenario slots on lease.

Why: the earlier system rebuilt the network for every environment and every reset (9 builds in
a 300-step run). Here the first request for a key loads the data, builds the topology, compiles
the kernels and allocates; later requests reuse that build. A released simulator goes back to
its entry's free list and is handed to the next request for the same number of slots, after a
`reset()` that copies the initial state in (no rebuild, no reallocation).

The key is the content of the data files (not their path), the cell length, every SimConfig
value and the resolved backend, so nothing built for one network or config serves another.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lib.obs.events import emit
from lib.sim import simulator as simulation
from lib.sim.movements import MOVEMENTS_FILE
from lib.sim.network import DEFAULT_CELL_LENGTH_M, DEFAULT_DATA, Network, load_network
from lib.sim.network_data import DATA_FILES


@dataclass
class _Entry:
    network: Network
    config: simulation.SimConfig
    backend: str
    free: dict[int, list[simulation.Simulator]] = field(default_factory=dict)


class Lease:
    """A simulator with `n_slots` scenarios, held until `release()` (idempotent) or `with` exit."""

    def __init__(self, sim: simulation.Simulator, entry: _Entry) -> None:
        self.sim = sim
        self.network = entry.network
        self._entry = entry
        self.released = False

    def release(self) -> None:
        with _lock:
            if self.released:
                return
            self.released = True
            self._entry.free.setdefault(self.sim.n_scenarios, []).append(self.sim)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_lock = threading.RLock()
_entries: dict[tuple[str, str, str], _Entry] = {}
_compiled: set[tuple[str, int]] = set()  # (backend, order) of kernels compiled here
_builds = 0


def acquire(
    n_slots: int,
    data_path: str | Path | None = None,
    sim_config: simulation.SimConfig | dict | None = None,
    backend: str = "auto",
    cell_length_m: float = DEFAULT_CELL_LENGTH_M,
) -> Lease:
    """Lease a simulator of `n_slots` scenarios on the pooled build for this data and config."""
    if not isinstance(n_slots, int) or isinstance(n_slots, bool) or n_slots < 1:
        raise ValueError(f"n_slots must be a positive int (scenarios to lease), got {n_slots!r}")
    config = _sim_config(sim_config)
    folder = Path(data_path) if data_path is not None else DEFAULT_DATA
    key = (_data_key(folder, cell_length_m), repr(sorted(config.to_dict().items())), _resolve(backend))
    with _lock:
        entry = _entries.get(key)
        if entry is None:
            entry, sim = _build(key, folder, cell_length_m, config, n_slots)
            _entries[key] = entry
            return Lease(sim, entry)
        free = entry.free.get(n_slots)
        if free:
            sim = free.pop()
            sim.reset()
        else:
            sim = simulation.Simulator(entry.network, n_slots, entry.backend, entry.config)
        return Lease(sim, entry)


def build_count() -> int:
    """Network builds made by this process (each one printed a `network_build` event)."""
    return _builds


def reset_pool() -> None:
    """Forget every build and lease, as in a fresh process (tests only)."""
    global _builds
    with _lock:
        _entries.clear()
        _compiled.clear()
        _builds = 0


def _build(
    key: tuple[str, str, str], folder: Path, cell_length_m: float, config: simulation.SimConfig, n_slots: int
) -> tuple[_Entry, simulation.Simulator]:
    global _builds
    start = time.perf_counter()
    network = load_network(folder, cell_length_m)
    backend = key[2]
    kernels = (backend, config.order)  # what selects a compiled kernel
    if kernels not in _compiled:
        seconds, cached = simulation.compile_kernels(backend, config)
        emit("kernel_compile", seconds=round(seconds, 3), cached=bool(cached), backend=backend)
        _compiled.add(kernels)
    sim = simulation.Simulator(network, n_slots, backend, config)
    _builds += 1
    emit(
        "network_build",
        n=_builds,
        key=network.key,
        links=network.n_links,
        nodes=len(network.nodes),
        cells=network.n_cells,
        scenarios=n_slots,
        backend=sim.backend,
        seconds=round(time.perf_counter() - start, 3),
        bytes=int(sim.nbytes),
    )
    return _Entry(network, config, sim.backend), sim


def _sim_config(value: simulation.SimConfig | dict | None) -> simulation.SimConfig:
    if value is None:
        return simulation.SimConfig()
    if isinstance(value, simulation.SimConfig):
        return value
    if isinstance(value, dict):
        return simulation.SimConfig.from_dict(value)
    raise TypeError(
        f"sim_config must be a SimConfig, a dict of its fields or None, got {type(value).__name__}"
    )


def _data_key(folder: Path, cell_length_m: float) -> str:
    """Hash of the data files' content and the cell length: equal data in two folders share a build."""
    if not folder.is_dir():
        raise ValueError(
            f"network folder {folder} does not exist; pass a folder holding edges.csv and nodes.csv"
        )
    digest = hashlib.sha256(f"cell_length_m={float(cell_length_m)!r}".encode())
    for name in (*DATA_FILES, MOVEMENTS_FILE):
        path = folder / name
        digest.update(name.encode() + (path.read_bytes() if path.exists() else b"<absent>"))
    return digest.hexdigest()


def _resolve(backend: str) -> str:
    return simulation.pick_backend(backend)
