"""Batched two-class ARZ simulator: B independent scenarios of one network advanced in lockstep.

The Simulator owns the state of all scenarios in flat arrays laid out [class][cell][scenario]
(scenario fastest), the signal state, and the backend (lib/sim/cpu.py or lib/sim/cuda.py) that advances
it; the model and the scheme are in docs/model.md. Signal logic (amber, minimum green) lives
here on the host: it only changes when `set_phase` is called, and the kernels read the phase and
the amber left to gate movements per substep.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lib.config import ConfigError, strict_config
from lib.sim import launches, memory, physics
from lib.sim.network import Network, build_network

# Motorcycles' share of the demand: an assumption, docs/calibration.md (Lagos State restricted
# commercial motorcycles in Eti-Osa, which includes Victoria Island, from 1 June 2022).
DEFAULT_MOTO_SHARE = 0.15


@strict_config
class SimConfig:
    """Model parameters (SI units) and numerics options; defaults are justified in docs/model.md."""

    jam_spacing_m: float = 7.0  # m of lane per car at a standstill: k_j = lanes / jam_spacing_m
    wave_speed_mps: float = 5.0  # congested (backward) wave speed W of the triangular diagram
    moto_space_weight: float = 0.4  # a motorcycle's share of a car's space (docs/calibration.md)
    alpha: float = 0.5  # weight of a car in the density motorcycles perceive (they filter)
    tau_m: float = 5.0  # relaxation time of motorcycles, s
    tau_c: float = 10.0  # relaxation time of cars, s
    cfl: float = 0.9  # dt = cfl * min(dx) / c_bound (order 2: half that, see docs/model.md)
    order: int = 1  # 1: first-order Godunov; 2: MUSCL (MC limiter) inside links + SSP-RK2
    amber_s: float = 3.0
    min_green_s: float = 10.0
    exit_capacity_factor: float = 1.0  # exit supply as a multiple of the exit link's capacity
    initial_load: float = 0.0  # initial density as a fraction of rho_jam, at equilibrium
    initial_moto_share: float = DEFAULT_MOTO_SHARE
    observe_length_m: float = 100.0  # approach_state looks at this many metres before the stop line
    queue_speed_mps: float = 2.0  # a cell where a class present moves slower than this is queued
    queue_min_density: float = 1e-6  # veh/m: a class this sparse is a numerical trace, not a queue
    eps_density: float = 1e-12  # veh/m below which a class is treated as absent from a cell
    cpu_chunk: int = 16  # most scenarios per CPU chunk (SIMD lanes advanced together, docs/PERFORMANCE.md)
    cpu_threads: int = 0  # CPU threads for one Simulator; 0 = every core this process may use
    # "float32": the CUDA backend keeps cells, queues and scratch in float32 (half the memory
    # traffic); counters and balances stay float64. Mass error measured in docs/PERFORMANCE.md.
    precision: str = "float64"
    left_gap_s: float = 4.5  # critical gap of a permitted left turn, s (HCM 2000; docs/model.md)
    left_followup_s: float = 2.5  # its follow-up headway, s (HCM 2000)

    @property
    def rho_jam_per_lane(self) -> float:
        """Jam density per lane, veh/m (cars; a motorcycle takes moto_space_weight of a car)."""
        return 1.0 / self.jam_spacing_m

    def validate(self) -> None:
        positive = (
            "jam_spacing_m", "wave_speed_mps", "moto_space_weight", "tau_m", "tau_c", "observe_length_m",
            "eps_density", "exit_capacity_factor", "queue_min_density", "left_gap_s", "left_followup_s",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"SimConfig.{name} must be > 0, got {getattr(self, name)!r}.")
        if self.moto_space_weight > 1.0:  # a motorcycle takes at most a car's space
            raise ConfigError(f"SimConfig.moto_space_weight must be <= 1, got {self.moto_space_weight!r}.")
        if self.order not in (1, 2):
            raise ConfigError(f"SimConfig.order must be 1 or 2, got {self.order!r}.")
        if not 0.0 < self.cfl <= 1.0:
            raise ConfigError(f"SimConfig.cfl must be in (0, 1] for stability, got {self.cfl!r}.")
        for name in ("alpha", "initial_load", "initial_moto_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"SimConfig.{name} must be in [0, 1], got {getattr(self, name)!r}.")
        for name in ("amber_s", "min_green_s", "queue_speed_mps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"SimConfig.{name} must be >= 0, got {getattr(self, name)!r}.")
        if self.cpu_chunk < 1:
            raise ConfigError(f"SimConfig.cpu_chunk must be >= 1, got {self.cpu_chunk!r}.")
        if self.precision not in ("float64", "float32"):
            raise ConfigError(f"SimConfig.precision must be 'float64' or 'float32', got {self.precision!r}.")
        if self.cpu_threads < 0:
            raise ConfigError(f"SimConfig.cpu_threads must be >= 0 (0: all cores), got {self.cpu_threads!r}")


@dataclasses.dataclass(frozen=True)
class BackendChoice:
    """What a backend request resolved to and why: the content of the run's `backend` event, so
    that a run on the CPU says whether it asked for it or CUDA failed (and with what error)."""

    requested: str  # "auto", "cpu" or "cuda"
    backend: str  # "cpu" or "cuda"
    device: str  # the GPU's name, or "cpu"
    reason: str  # why CUDA is not used: numba's exception text, or "asked for the CPU"; "" on CUDA
    gpu_unused: bool  # a Kaggle GPU accelerator is attached and the run is on the CPU all the same


def cuda_status() -> tuple[str | None, str]:
    """(GPU name, "") when numba can run CUDA kernels (or its CUDA simulator), else (None, why not).

    numba's own `cuda.is_available()` swallows the driver's error; asking for the device keeps it,
    so a broken CUDA set-up is reported with its text instead of silently running on the CPU."""
    try:
        from numba import config, cuda

        if config.ENABLE_CUDASIM:  # its fake device has no name
            return "numba CUDA simulator", ""
        name = cuda.current_context().device.name
    except Exception as exc:  # noqa: BLE001 - every failure is an answer, reported with its text
        return None, " ".join(f"{type(exc).__name__}: {exc}".split())
    return (name.decode() if isinstance(name, bytes) else str(name)), ""


def cuda_available() -> bool:
    """Whether numba sees a usable CUDA GPU (or the CUDA simulator)."""
    return cuda_status()[0] is not None


def kaggle_gpu_attached(environ: Mapping[str, str] | None = None, root: Path = Path("/")) -> bool:
    """Whether this is a Kaggle session with a GPU accelerator (docs/architecture.md, "Backends").

    The rule: Kaggle sets KAGGLE_KERNEL_RUN_TYPE in every session (interactive or batch), and a GPU
    session has the NVIDIA driver's device node /dev/nvidia0 or an entry in /proc/driver/nvidia/gpus,
    which a CPU session lacks; both are visible even when numba cannot load CUDA."""
    environ = os.environ if environ is None else environ
    if not environ.get("KAGGLE_KERNEL_RUN_TYPE"):
        return False
    gpus = root / "proc/driver/nvidia/gpus"
    return (root / "dev/nvidia0").exists() or (gpus.is_dir() and any(gpus.iterdir()))


def choose_backend(backend: str) -> BackendChoice:
    """Resolve `backend` ("auto" takes CUDA when numba can use it) and say why; "cuda" without a
    usable GPU is an error that carries numba's reason."""
    if backend not in ("auto", "cpu", "cuda"):
        raise ValueError(f"backend must be 'auto', 'cpu' or 'cuda', got {backend!r}")
    device, reason = cuda_status() if backend != "cpu" else (None, "asked for the CPU")
    if device is not None:
        return BackendChoice(backend, "cuda", device, "", gpu_unused=False)
    if backend == "cuda":
        raise ValueError(f"backend='cuda' but numba finds no CUDA GPU ({reason}); use 'cpu' or 'auto'")
    return BackendChoice(backend, "cpu", "cpu", reason, gpu_unused=kaggle_gpu_attached())


def pick_backend(backend: str) -> str:
    return choose_backend(backend).backend


def compile_kernels(backend: str, config: SimConfig | None = None) -> tuple[float, bool]:
    """Compile the kernels of `backend` once per process, by running a one-road network for a
    second: (seconds, whether numba's on-disk cache served the kernels). The kernels compiled are
    the ones `config` uses (its order; default SimConfig())."""
    chosen = pick_backend(backend)
    start = time.perf_counter()
    sim = Simulator(_tiny_network(), backend=chosen, config=config)
    sim.set_demand(np.full(sim.network.n_entries, 600.0))
    sim.advance(1.0)
    seconds = time.perf_counter() - start
    if chosen == "cpu":
        from lib.sim import cpu as module
    else:
        from lib.sim import cuda as module
    return seconds, module.cache_hits() > 0


def _tiny_network() -> Network:
    nodes = [{"osm_id": i, "lat": 6.43 + 0.001 * i, "lon": 3.42, "traffic_signals": False} for i in (1, 2)]
    edges = [{"u": 1, "v": 2, "name": "warm-up", "highway": "primary", "length_m": 100.0, "oneway": True,
              "osm_lanes": 1, "geometry_wkt": ""}]
    return build_network(edges, nodes, source="<compile_kernels>")


class Simulator:
    """B scenarios of the two-class ARZ model on one network; see docs/api.md for the contract."""

    def __init__(
        self,
        network: Network,
        n_scenarios: int = 1,
        backend: Literal["auto", "cpu", "cuda"] = "auto",
        config: SimConfig | None = None,
    ) -> None:
        if not isinstance(network, Network):
            raise TypeError(f"network must be a lib.network.Network, got {type(network).__name__}")
        if not (isinstance(n_scenarios, (int, np.integer)) and n_scenarios >= 1):
            raise ValueError(f"n_scenarios must be a positive integer, got {n_scenarios!r}")
        if config is not None and not isinstance(config, SimConfig):
            raise TypeError(f"config must be a SimConfig (or None for defaults), got {type(config).__name__}")
        self.network = network
        self.n_scenarios = int(n_scenarios)
        self.config = config or SimConfig()
        self.backend = pick_backend(backend)
        if self.config.precision == "float32" and self.backend != "cuda":
            raise ConfigError("SimConfig.precision='float32' is implemented on the CUDA backend only "
                              f"(this Simulator runs on {self.backend}); use precision='float64'.")
        memory.check_fits(network, self.n_scenarios, self.backend)
        self._static = _static_arrays(network, self.config)
        # Order 2 halves the step: each Euler stage then keeps every bound (docs/model.md).
        cfl = self.config.cfl / self.config.order
        self.dt = cfl * float(self._static["cell_dx"].min()) / self._static["c_bound"]
        self._approach_cells = self._approach_table()
        self._approach_gather = self._approach_weights()
        self._init_state()
        self.launches = launches.LaunchCounter(parent=launches.TOTAL)  # kernel launches and their grids
        self._engine = _make_engine(self.backend, self)
        self.reset()

    # ------------------------------------------------------------------ state

    def _init_state(self) -> None:
        net, cfg, B = self.network, self.config, self.n_scenarios
        st = self._static
        share, eps_m = cfg.initial_moto_share, cfg.moto_space_weight
        vehicles = cfg.initial_load * st["cell_rj"] / (eps_m * share + 1.0 - share)  # space: load x k_j
        rho0 = np.stack([share * vehicles, (1.0 - share) * vehicles])
        p0 = self._pressures(rho0[..., None])[..., 0]
        self._rho0 = rho0
        self._y0 = rho0 * st["cell_vf"]  # at equilibrium w = V_e + p = v_f
        self._flux0 = rho0 * (st["cell_vf"] - p0)  # moving at V_e
        self.time = np.zeros(B)
        self._sig_phase = np.zeros((net.n_signals, B), dtype=np.int64)
        self._sig_amber = np.zeros((net.n_signals, B))
        self._amber_len = np.zeros((net.n_signals, B))
        self._tip = np.zeros((net.n_signals, B))
        self._switches = np.zeros(B, dtype=np.int64)
        self._ignored = np.zeros(B, dtype=np.int64)
        self._n_phases = np.array([s.n_phases for s in net.signals], dtype=np.int64)

    def reset(self, seed: int | None = None, scenarios: Any = None) -> None:
        """Scenarios (all, or the given indices) back to the initial state, time and counters 0.

        The initial state is deterministic (SimConfig.initial_load at equilibrium); `seed` is
        accepted for the Gymnasium-style call and does not change it."""
        idx = self._scenario_index(scenarios)
        self._engine.reset(idx, self._rho0, self._y0, self._flux0)
        self.time[idx] = 0.0
        for a in (self._sig_phase, self._sig_amber, self._amber_len, self._tip):
            a[:, idx] = 0
        self._switches[idx] = 0
        self._ignored[idx] = 0
        self._engine.upload_signals(self._sig_phase, self._sig_amber)

    def _scenario_index(self, scenarios: Any) -> np.ndarray:
        if scenarios is None:
            return np.arange(self.n_scenarios)
        idx = np.atleast_1d(np.asarray(scenarios, dtype=np.int64))
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_scenarios):
            raise ValueError(f"scenarios must be indices in [0, {self.n_scenarios}), got {idx.tolist()}")
        return idx

    # ------------------------------------------------------------------ inputs

    def set_demand(self, veh_per_hour: Any, moto_share: Any = DEFAULT_MOTO_SHARE) -> None:
        """Arrival rate per entry (veh/h, both classes), (n_entries,) or (B, n_entries)."""
        B, ne = self.n_scenarios, self.network.n_entries
        q = np.asarray(veh_per_hour, dtype=np.float64)
        if q.shape not in ((ne,), (B, ne)):
            raise ValueError(f"veh_per_hour must have shape ({ne},) or ({B}, {ne}), got {q.shape}")
        if not (q >= 0).all() or not np.isfinite(q).all():
            raise ValueError("veh_per_hour must be finite and >= 0")
        share = np.asarray(moto_share, dtype=np.float64)
        if share.shape not in ((), (B,)) or not ((share >= 0) & (share <= 1)).all():
            raise ValueError(f"moto_share must be a float or a ({B},) array in [0, 1], got {moto_share!r}")
        per_s = (q.T if q.ndim == 2 else q[:, None]) / 3600.0  # (n_entries, B or 1)
        rate = np.empty((2, ne, B))
        rate[0] = per_s * share
        rate[1] = per_s * (1.0 - share)
        self._engine.set_rate(rate)

    def set_phase(self, phase: Any) -> None:
        """Request a phase per signal ((n_signals,) or (B, n_signals)); amber and min green apply."""
        B, ns = self.n_scenarios, self.network.n_signals
        req = np.asarray(phase)
        if req.shape not in ((ns,), (B, ns)) or req.dtype.kind not in "iu":
            raise ValueError(f"phase must be an int array of shape ({ns},) or ({B}, {ns}), got {req!r}")
        req = req.astype(np.int64).T if req.ndim == 2 else req.astype(np.int64)[:, None]  # (ns, B or 1)
        if (req < 0).any() or (req >= self._n_phases[:, None]).any():
            raise ValueError(f"phase indices must be in [0, n_phases) per signal {self._n_phases.tolist()}")
        change = req != self._sig_phase
        if not change.any():
            return  # nothing to switch, nothing refused (the usual case between decisions)
        allowed = (self._sig_amber <= 0.0) & (self._tip - self._amber_len >= self.config.min_green_s)
        accept = change & allowed
        self._ignored += (change & ~allowed).sum(axis=0)
        self._switches += accept.sum(axis=0)
        self._sig_phase[accept] = np.broadcast_to(req, accept.shape)[accept]
        self._sig_amber[accept] = self.config.amber_s
        self._amber_len[accept] = self.config.amber_s
        self._tip[accept] = 0.0
        self._engine.upload_signals(self._sig_phase, self._sig_amber)

    def advance(self, seconds: float) -> None:
        """Advance all scenarios by `seconds`, in whole steps of dt with the last one shortened."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"seconds must be finite and >= 0, got {seconds!r}")
        if seconds == 0:
            return
        n_steps = max(1, math.ceil(seconds / self.dt - 1e-9))
        dt_last = seconds - (n_steps - 1) * self.dt
        self._engine.advance(n_steps, self.dt, dt_last)
        self.time += seconds
        self._tip += seconds
        if self._sig_amber.any():
            np.maximum(self._sig_amber - seconds, 0.0, out=self._sig_amber)
            self._engine.upload_signals(self._sig_phase, self._sig_amber)

    # ------------------------------------------------------------------ read-outs

    def vehicles(self) -> np.ndarray:
        if self.backend == "cuda":
            return self._engine.vehicles()
        rho = self._engine.cells()[0]
        queue = self._engine.queue()
        return np.einsum("kis,i->s", rho, self._static["cell_dx"]) + queue.sum(axis=(0, 1))

    def cumulative_entered(self) -> np.ndarray:
        return self._engine.counter("entered")

    def cumulative_exited(self) -> np.ndarray:
        return self._engine.counter("exited")

    def cumulative_delay(self) -> np.ndarray:
        return self._engine.counter("delay")

    def cumulative_link_outflow(self) -> np.ndarray:
        """(B, n_links) vehicles that have left each link through its downstream end."""
        return self._engine.link_outflow()

    def queue_lengths(self) -> np.ndarray:
        return self._engine.queue().sum(axis=0).T.copy()

    def cell_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Per class density (veh/m) and speed (m/s), each (B, 2, n_cells); for tests and plots.
        The speed is the one the model reports everywhere: the speed at which the class's mass
        moved in the last step (physics.cell_speed)."""
        rho, y, flux = self._engine.cells()
        return rho.transpose(2, 0, 1).copy(), self._speeds(rho, y, flux).transpose(2, 0, 1).copy()

    def set_state(self, rho: Any, v: Any) -> None:
        """Set every scenario's cells: per class density and speed, shape (2, n_cells) or (B, 2, n_cells).

        Speeds are stored through w = v + p (and as the last outflow rho v); meant for tests and
        custom initial conditions. Every w must keep the waves within the CFL bound c_bound."""
        B, nc = self.n_scenarios, self.network.n_cells
        rho = np.broadcast_to(np.asarray(rho, dtype=np.float64), (B, 2, nc)).transpose(1, 2, 0)
        v = np.broadcast_to(np.asarray(v, dtype=np.float64), (B, 2, nc)).transpose(1, 2, 0)
        st, eps_m = self._static, self.config.moto_space_weight
        rj = st["cell_rj"][None, :, None]
        if np.any(rho < 0) or np.any(eps_m * rho[0] + rho[1] > rj[0] * (1 + 1e-12)) or np.any(v < 0):
            raise ValueError("set_state needs 0 <= rho, space density eps_m rho_m + rho_c <= k_j and v >= 0")
        p = self._pressures(rho)
        w = v + p
        c, vf = st["c_bound"] * (1 + 1e-12), st["cell_vf"][None, :, None]
        congested = p > 0.0  # there the 1-waves run at w - v_f - W
        if np.any((rho > 0) & ((w > c) | (congested & (vf + self.config.wave_speed_mps - w > c)))):
            raise ValueError(f"set_state: w = v + p gives a wave faster than the CFL bound {c:.3f} m/s "
                             "(keep w <= max v_f and, congested, w >= v_f + W - c_bound)")
        self._engine.set_cells(np.ascontiguousarray(rho), np.ascontiguousarray(rho * w),
                               np.ascontiguousarray(rho * v))

    def link_density(self) -> np.ndarray:
        mass, _ = self._link_sums()
        return mass / self._link_length()

    def link_speed(self) -> np.ndarray:
        mass, flow = self._link_sums()
        free = np.broadcast_to(self._static["link_vf"], mass.shape)
        return np.where(mass > 1e-9, flow / np.maximum(mass, 1e-300), free)

    def _link_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """(B, n_links) vehicles on each link and their sum of speeds (veh m/s); on the GPU reduced
        there, so only these numbers cross to the host."""
        if self.backend == "cuda":
            return self._engine.link_sums()
        rho, y, flux = self._engine.cells()
        dx = self._static["cell_dx"][:, None]
        mass = self._link_sum(rho.sum(axis=0) * dx)
        flow = self._link_sum((rho * self._speeds(rho, y, flux)).sum(axis=0) * dx)
        return mass, flow

    def current_phase(self) -> np.ndarray:
        return self._sig_phase.T.copy()

    def in_amber(self) -> np.ndarray:
        return (self._sig_amber > 0.0).T.copy()

    def time_in_phase(self) -> np.ndarray:
        return self._tip.T.copy()

    def switches(self) -> np.ndarray:
        return self._switches.copy()

    def ignored_requests(self) -> np.ndarray:
        return self._ignored.copy()

    def approach_state(self) -> np.ndarray:
        """(B, n_approaches, 3): density, flow-weighted speed over the last observe_length_m of each
        approach link, and its queue: every vehicle in the link's standing cells, those where a
        class present (above queue_min_density) moves slower than queue_speed_mps. Per class,
        because motorcycles filtering through a standing car queue lift the cell's mean speed."""
        sums = self._approach_sums()
        mass, flow = sums[..., 0], sums[..., 1]
        out = np.empty_like(sums)
        out[..., 0] = mass / self._approach_gather["near_length"]
        out[..., 1] = np.where(mass > 1e-9, flow / np.maximum(mass, 1e-300), self._approach_gather["free"])
        out[..., 2] = sums[..., 2]
        return out

    def _approach_sums(self) -> np.ndarray:
        """(B, n_approaches, 3): vehicles and their sum of speeds near each stop line, and the
        vehicles in standing cells of the link; reduced by the backend (compiled loops)."""
        return self._engine.approach_sums(self._approach_cells)

    @property
    def nbytes(self) -> int:
        """Bytes of the state, scratch and static buffers this simulator allocated."""
        return self._engine.nbytes

    # ------------------------------------------------------------------ helpers

    def _pressures(self, rho: np.ndarray) -> np.ndarray:
        """p_k per class, cell and scenario of a (2, n_cells, B) density array (physics.pressure)."""
        cfg, st = self.config, self._static
        rj, vf, wave = st["cell_rj"][:, None], st["cell_vf"][:, None], cfg.wave_speed_mps
        eff = [physics.effective_density(rho[0], rho[1], k, cfg.alpha,
                                         cfg.moto_space_weight) for k in range(2)]
        return np.stack([np.maximum(vf + wave - wave * rj / np.maximum(r, 1e-300), 0.0) for r in eff])

    def _speeds(self, rho: np.ndarray, y: np.ndarray, flux: np.ndarray) -> np.ndarray:
        """Per class speeds as physics.cell_speed computes them: min(v, F / rho), 0 if absent."""
        present = rho > self.config.eps_density
        safe = np.where(present, rho, 1.0)
        v = np.maximum(y / safe - self._pressures(rho), 0.0)
        return np.where(present, np.minimum(v, flux / safe), 0.0)

    def _link_sum(self, per_cell: np.ndarray) -> np.ndarray:
        """(n_cells, B) -> (B, n_links) sums over each link's cells."""
        first = self._static["link_first"]
        return np.add.reduceat(per_cell, first[:-1], axis=0).T

    def _approach_table(self) -> np.ndarray:
        """(n_approaches, 3) int64: per approach link its first cell, the first cell within
        observe_length_m of the stop line, and one past its last cell."""
        rows = []
        for appr in self.network.approaches:
            lk = self.network.links[appr.link]
            end = lk.first_cell + lk.n_cells
            near = end - min(lk.n_cells, max(1, math.ceil(self.config.observe_length_m / lk.dx_m)))
            rows.append((lk.first_cell, near, end))
        return np.array(rows, dtype=np.int64).reshape(len(rows), 3)

    def _approach_weights(self) -> dict[str, np.ndarray]:
        """Per approach: the length observed before its stop line, and its free speed."""
        dx = self._static["cell_dx"]
        return {
            "near_length": np.array([dx[near:end].sum() for _, near, end in self._approach_cells]),
            "free": np.array([self.network.links[a.link].free_speed_mps for a in self.network.approaches]),
        }

    def _link_length(self) -> np.ndarray:
        return np.array([lk.n_cells * lk.dx_m for lk in self.network.links])


def _static_arrays(network: Network, cfg: SimConfig) -> dict[str, Any]:
    """Kernel-ready copies of the network arrays plus derived per-cell constants and bounds."""
    a = network.arrays
    cell_link = np.array(a["cell_link"], dtype=np.int64)
    link_first = np.array(a["link_first_cell"], dtype=np.int64)
    cell_dx = np.array(a["link_dx"][cell_link], dtype=np.float64)
    cell_rj = np.array(cfg.rho_jam_per_lane * a["link_lanes"][cell_link], dtype=np.float64)
    cell_vf = np.array(a["link_free_speed"][cell_link], dtype=np.float64)
    cell_first = np.zeros(len(cell_link), dtype=np.bool_)
    cell_first[link_first[:-1]] = True
    last = np.zeros(len(cell_link), dtype=np.bool_)
    last[link_first[1:] - 1] = True
    interior = np.flatnonzero(~last).astype(np.int64)

    # movements and streams come in junction order (lib/sim/network.py): CSR pointers per junction
    junctions = np.array([n.index for n in network.nodes if n.kind == "junction"] + [len(network.nodes)])
    jn_mov_ptr = np.searchsorted(a["mov_node"], junctions).astype(np.int64)
    jn_st_ptr = np.searchsorted(a["stream_node"], junctions).astype(np.int64)
    outs = [network.nodes[n].out_links for n in junctions[:-1]]
    jn_out_ptr = np.zeros(len(outs) + 1, dtype=np.int64)
    jn_out_ptr[1:] = np.cumsum([len(o) for o in outs])
    jn_out_link = np.array([lk for o in outs for lk in o], dtype=np.int64)

    # Wave speeds (docs/model.md): lambda_2 = v <= w and, congested, lambda_1 = w - v_f - W. Every
    # w lies in [min v_f, max v_f] (vehicles enter at w = v_f, relax toward it, and take
    # min(w, v_f) onto a new link), so |lambda| <= max(max v_f, max(v_f + W) - min v_f).
    w_max, w_min = float(cell_vf.max()), float(cell_vf.min())
    c_bound = max(w_max, float((cell_vf + cfg.wave_speed_mps).max()) - w_min)
    exit_links = np.array(network.exit_links, dtype=np.int64)
    ends = link_first[exit_links + 1] - 1
    factor = cfg.exit_capacity_factor
    capacity = capacity_veh_s(cell_vf, cell_rj, cfg)  # per cell, all lanes
    exit_cap = factor * capacity[ends]
    # node-model priorities: the capacity of each stream's approach (its last cell)
    st_cap = np.array(capacity[link_first[a["stream_link"] + 1] - 1], dtype=np.float64)
    # turn pockets (physics.pocket_coupling): storage L_p, and the pocketed movement's queue length
    # (f lanes) and the shared movements' (1 - f) per metre of the approach's jammed length
    ratio = a["stream_ratio"]
    lanes = a["link_lanes"][a["stream_link"]]
    st_pocket = np.stack([a["stream_storage"], ratio * lanes, 1.0 - ratio], axis=1)
    return {
        "cell_rj": cell_rj, "cell_vf": cell_vf, "cell_dx": cell_dx, "cell_first": cell_first,
        "cell_last": last, "cell_link": cell_link, "interior": interior, "link_first": link_first,
        "jn_mov_ptr": jn_mov_ptr, "jn_out_ptr": jn_out_ptr, "jn_st_ptr": jn_st_ptr,
        "jn_out_link": jn_out_link,
        **{name: np.array(a[name]) for name in (
            "mov_in", "mov_out", "mov_ratio", "mov_signal", "mov_phase", "mov_stream", "mov_yield",
            "mov_yield_share")},
        "st_link": np.array(a["stream_link"]), "st_cap": st_cap, "st_main": np.array(a["stream_main"]),
        "st_pocket": np.ascontiguousarray(st_pocket, dtype=np.float64),
        "entry_link": np.array(network.entry_links, dtype=np.int64), "exit_link": exit_links,
        "exit_cap": exit_cap,
        "tau": np.array([cfg.tau_m, cfg.tau_c]), "c_bound": float(c_bound), "w_max": w_max,
        "link_vf": np.array(a["link_free_speed"], dtype=np.float64),
    }


def capacity_veh_s(free_speed_mps: Any, rho_jam: Any, config: SimConfig) -> Any:
    """Capacity (veh/s) of the triangular diagram, v_f W k_j / (v_f + W), for jam density rho_jam
    (veh/m, all lanes): the most cars a link discharges, the saturation flow of its approach."""
    wave = config.wave_speed_mps
    return free_speed_mps * wave * rho_jam / (free_speed_mps + wave)


def _make_engine(backend: str, sim: Simulator) -> Any:
    if backend == "cpu":
        from lib.sim.cpu import CpuEngine

        return CpuEngine(sim)
    from lib.sim.cuda import CudaEngine

    return CudaEngine(sim)
