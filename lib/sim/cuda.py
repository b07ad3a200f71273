"""CUDA backend: numba.cuda kernels running the per-cell physics of lib/sim/physics.py.

One launch per `advance`, whatever its length: `k_advance` (first order) or `k_advance2`
(SimConfig.order = 2) runs every substep for all scenarios. A block holds up to 32 consecutive
scenarios (threadIdx.x: neighbouring threads touch neighbouring addresses in the
[class][cell][scenario] layout) times a few threads per scenario (threadIdx.y) that share out the
cells, links and junctions of each stage; `cuda.syncthreads()` separates the stages of a substep,
which is enough because a scenario never reads another scenario's data. Amber is timed inside the
kernel (physics.movement_gate compares the amber left with the substep's time); minimum green
only matters when `set_phase` is called, on the host. Per-scenario tallies (entries, exits, link
outflow, delay) run on one thread per scenario looping in the CPU kernel's order, so both backends
add the same numbers in the same order. Arguments travel as named tuples of arrays (Static, State,
Scratch, Heun, Params). The state stays on the device; read-outs are reduced there and copy back
only their result. Kernels are cached on disk in a folder keyed by the hash of lib/sim/physics.py
and this file (`kernel_cache.source_keyed`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numba import cuda

from lib.sim import physics
from lib.sim.kernel_cache import source_keyed

_P = physics.compile_for(cuda.jit(device=True))
eval_cell = _P.eval_cell
interior_flux = _P.interior_flux
junction_flow = _P.junction_flow
entry_flow = _P.entry_flow
exit_flow = _P.exit_flow
update_cell = _P.update_cell
transport_cell = _P.transport_cell
relax_cell = _P.relax_cell
reconstruct_cell = _P.reconstruct_cell
face_speed = _P.face_speed
cell_speed = _P.cell_speed

THREADS = 128


class Static(NamedTuple):
    """The network's arrays, fixed per Simulator (Simulator._static names)."""

    cell_rj: Any
    cell_vf: Any
    cell_dx: Any
    cell_first: Any
    cell_last: Any
    cell_link: Any
    interior: Any
    kp: Any
    creep: Any
    entry_link: Any
    exit_link: Any
    exit_cap: Any
    link_first: Any
    jn_mov_ptr: Any
    jn_out_ptr: Any
    jn_st_ptr: Any
    jn_out_link: Any
    mov_in: Any
    mov_out: Any
    mov_ratio: Any
    mov_signal: Any
    mov_phase: Any
    mov_stream: Any
    mov_yield: Any
    mov_yield_share: Any
    st_link: Any
    st_cap: Any


class State(NamedTuple):
    """What evolves and what the host sets: cells, entry queues and rates, signals, counters."""

    rho: Any
    y: Any
    queue: Any
    rate: Any
    sig_phase: Any
    sig_amber: Any
    entered: Any
    exited: Any
    delay: Any
    link_out: Any


class Scratch(NamedTuple):
    """One substep's intermediates: cell sending states, fluxes, the node model's sums."""

    dem: Any
    wv: Any
    vel: Any
    phi: Any
    gout: Any
    gyout: Any
    lin: Any
    lyin: Any
    sd: Any
    sdw: Any
    sdp: Any
    st_h: Any
    st_q: Any
    rsup: Any
    rres: Any
    cell_delay: Any


class Heun(NamedTuple):
    """Order 2 only: MUSCL face states and the state saved at the start of the step (SSP-RK2)."""

    rho_l: Any
    y_l: Any
    rho_r: Any
    y_r: Any
    rho0: Any
    y0: Any
    queue0: Any
    entered0: Any
    exited0: Any
    out0: Any


class Params(NamedTuple):
    """The scalars of SimConfig the kernels use (gamma an int: the powers stay multiplications)."""

    alpha: float
    gamma: int
    eps: float
    c_bound: float
    t_gap: float
    t_follow: float
    tau_m: float
    tau_c: float


_DEVICE = cuda.jit(device=True)


@_DEVICE
def _slot(n_scen):
    """(scenario of this thread, or -1 past the last; first item; item stride): a block holds
    blockDim.x consecutive scenarios (coalesced in the scenario-fastest layout) times blockDim.y
    threads sharing out the cells, links or junctions of each stage. Threads past the last
    scenario still reach every barrier."""
    s = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    return (s if s < n_scen else -1), cuda.threadIdx.y, cuda.blockDim.y


@_DEVICE
def _eval_cells(s, j, nj, rho, y, st, w, p):
    for i in range(j, rho.shape[1], nj):
        eval_cell(i, s, rho, y, st.cell_rj, st.cell_vf, st.kp, st.creep, p.alpha, p.gamma, p.eps, w.dem, w.wv,
                  w.vel, w.phi)


@_DEVICE
def _fluxes(s, j, nj, t_local, h, rho_recv, x, st, w, p):
    """Every flux of one substep (as cpu.fluxes), the stages separated by block barriers: cell
    interfaces and cleared link inflows, junctions (physics.junction_flow, one thread each),
    then entries, exits and link outflow tallied by one thread per scenario in the CPU's order."""
    if s >= 0:
        for q in range(j, st.interior.shape[0], nj):
            interior_flux(st.interior[q], s, rho_recv, st.cell_rj, st.kp, p.gamma, p.c_bound, w.dem, w.wv,
                          w.vel, w.phi, w.gout, w.gyout)
        for lk in range(j, w.lin.shape[1], nj):
            for k in range(2):
                w.lin[k, lk, s] = 0.0
                w.lyin[k, lk, s] = 0.0
    cuda.syncthreads()
    if s >= 0:
        for n in range(j, st.jn_mov_ptr.shape[0] - 1, nj):
            junction_flow(
                n, s, t_local, x.rho, st.cell_rj, st.kp, p.gamma, p.c_bound, w.dem, w.wv, w.vel, w.phi,
                w.gout, w.gyout, w.lin, w.lyin, st.jn_mov_ptr, st.jn_out_ptr, st.jn_st_ptr, st.jn_out_link,
                st.mov_in, st.mov_out, st.mov_ratio, st.mov_signal, st.mov_phase, st.mov_stream, st.mov_yield,
                st.mov_yield_share, st.st_link, st.st_cap, x.sig_phase, x.sig_amber, st.link_first, p.t_gap,
                p.t_follow, w.sd, w.sdw, w.sdp, w.st_h, w.st_q, w.rsup, w.rres,
            )
    cuda.syncthreads()
    if s >= 0 and j == 0:
        _boundaries(s, h, x, st, w, p)
    cuda.syncthreads()


@_DEVICE
def _boundaries(s, h, x, st, w, p):
    for e in range(st.entry_link.shape[0]):
        x.entered[s] += entry_flow(e, s, h, x.rho, st.cell_rj, st.cell_vf, st.kp, st.creep, p.alpha,
                                   p.gamma, p.c_bound, w.vel, w.lin, w.lyin, st.entry_link, st.link_first,
                                   x.queue, x.rate)
    for e in range(st.exit_link.shape[0]):
        x.exited[s] += exit_flow(e, s, h, w.dem, w.wv, w.gout, w.gyout, st.exit_link, st.exit_cap,
                                 st.link_first)
    for lk in range(x.link_out.shape[0]):
        last = st.link_first[lk + 1] - 1
        x.link_out[lk, s] += h * (w.gout[0, last, s] + w.gout[1, last, s])


@_DEVICE
def _tally_delay(s, h, x, w):
    """Cells' delay in cell order, then the entry queues (as on the CPU)."""
    acc = x.delay[s]
    for i in range(w.cell_delay.shape[0]):
        acc += w.cell_delay[i, s]
    for e in range(x.queue.shape[1]):
        acc += h * (x.queue[0, e, s] + x.queue[1, e, s])
    x.delay[s] = acc


@source_keyed(cuda.jit(cache=True), __file__)
def k_advance(n_steps, dt, dt_last, st, x, w, p):
    """First order: every substep of one `advance` for the block's scenarios, in one launch."""
    s, j, nj = _slot(x.rho.shape[2])
    for step in range(n_steps):
        h = dt if step < n_steps - 1 else dt_last
        decay_m, decay_c = math.exp(-h / p.tau_m), math.exp(-h / p.tau_c)
        if s >= 0:
            _eval_cells(s, j, nj, x.rho, x.y, st, w, p)
        cuda.syncthreads()
        _fluxes(s, j, nj, step * dt, h, x.rho, x, st, w, p)
        if s >= 0:
            for i in range(j, x.rho.shape[1], nj):
                w.cell_delay[i, s] = update_cell(
                    i, s, h, x.rho, x.y, st.cell_rj, st.cell_vf, st.cell_dx, st.cell_first, st.cell_link,
                    st.kp, st.creep, p.alpha, p.gamma, decay_m, decay_c, w.gout, w.gyout, w.lin, w.lyin,
                )
        cuda.syncthreads()
        if s >= 0 and j == 0:
            _tally_delay(s, h, x, w)


@_DEVICE
def _save_or_average(s, j, nj, x, u, average):
    """SSP-RK2's bookkeeping over everything an Euler stage changes (cells, queues, counters):
    save the state (average False) or average it with the saved one (True), as cpu.average_into."""
    for i in range(j, x.rho.shape[1], nj):
        for k in range(2):
            x.rho[k, i, s], u.rho0[k, i, s] = _mix(x.rho[k, i, s], u.rho0[k, i, s], average)
            x.y[k, i, s], u.y0[k, i, s] = _mix(x.y[k, i, s], u.y0[k, i, s], average)
    for e in range(j, x.queue.shape[1], nj):
        for k in range(2):
            x.queue[k, e, s], u.queue0[k, e, s] = _mix(x.queue[k, e, s], u.queue0[k, e, s], average)
    for lk in range(j, x.link_out.shape[0], nj):
        x.link_out[lk, s], u.out0[lk, s] = _mix(x.link_out[lk, s], u.out0[lk, s], average)
    if j == 0:
        x.entered[s], u.entered0[s] = _mix(x.entered[s], u.entered0[s], average)
        x.exited[s], u.exited0[s] = _mix(x.exited[s], u.exited0[s], average)


@_DEVICE
def _mix(now, saved, average):
    """(new value, new save) of one element: saved (average False) or averaged with its save."""
    return (0.5 * (now + saved), saved) if average else (now, now)


@source_keyed(cuda.jit(cache=True), __file__)
def k_advance2(n_steps, dt, dt_last, st, x, w, u, p):
    """Order 2 (MUSCL + SSP-RK2, as cpu.advance_kernel2): every substep of one `advance`, one launch."""
    s, j, nj = _slot(x.rho.shape[2])
    for step in range(n_steps):
        h = dt if step < n_steps - 1 else dt_last
        if s >= 0:
            _save_or_average(s, j, nj, x, u, False)
        cuda.syncthreads()
        for _ in range(2):
            if s >= 0:
                for i in range(j, x.rho.shape[1], nj):
                    reconstruct_cell(i, s, x.rho, x.y, st.cell_first, st.cell_last, p.eps, u.rho_l, u.y_l,
                                     u.rho_r, u.y_r)
            cuda.syncthreads()
            if s >= 0:
                for i in range(j, x.rho.shape[1], nj):  # eval then face_speed: both write vel, in this order
                    eval_cell(i, s, u.rho_r, u.y_r, st.cell_rj, st.cell_vf, st.kp, st.creep, p.alpha,
                              p.gamma, p.eps, w.dem, w.wv, w.vel, w.phi)
                    face_speed(i, s, u.rho_l, u.y_l, st.cell_rj, st.cell_vf, st.kp, st.creep, p.alpha,
                               p.gamma, p.eps, w.vel)
            cuda.syncthreads()
            _fluxes(s, j, nj, step * dt, h, u.rho_l, x, st, w, p)
            if s >= 0:
                for i in range(j, x.rho.shape[1], nj):
                    transport_cell(i, s, h, x.rho, x.y, st.cell_dx, st.cell_first, st.cell_link, w.gout,
                                   w.gyout, w.lin, w.lyin)
            cuda.syncthreads()
        _relax(s, j, nj, h, x, w, u, st, p)


@_DEVICE
def _relax(s, j, nj, h, x, w, u, st, p):
    """Order 2's step end: SSP-RK2's average, exact relaxation, the delay tally."""
    decay_m, decay_c = math.exp(-h / p.tau_m), math.exp(-h / p.tau_c)
    if s >= 0:
        _save_or_average(s, j, nj, x, u, True)
    cuda.syncthreads()
    if s >= 0:
        for i in range(j, x.rho.shape[1], nj):
            w.cell_delay[i, s] = relax_cell(i, s, h, x.rho, x.y, st.cell_rj, st.cell_vf, st.cell_dx, st.kp,
                                            st.creep, p.alpha, p.gamma, decay_m, decay_c)
    cuda.syncthreads()
    if s >= 0 and j == 0:
        _tally_delay(s, h, x, w)


@source_keyed(cuda.jit(cache=True), __file__)
def k_vehicles(rho, queue, cell_dx, out):
    """Read-out: vehicles per scenario (cells and entry queues), one thread per scenario."""
    s = cuda.grid(1)
    if s < rho.shape[2]:
        total = 0.0
        for i in range(rho.shape[1]):
            total += (rho[0, i, s] + rho[1, i, s]) * cell_dx[i]
        for e in range(queue.shape[1]):
            total += queue[0, e, s] + queue[1, e, s]
        out[s] = total


@source_keyed(cuda.jit(cache=True), __file__)
def k_link_sums(rho, y, cell_rj, kp, cell_dx, link_first, alpha, gamma, eps, mass, flow):
    """Read-out: per (link, scenario) the vehicles on the link and their sum of speeds (veh m/s)."""
    t = cuda.grid(1)
    n_scen = rho.shape[2]
    if t < mass.shape[0] * n_scen:
        lk = t // n_scen
        s = t % n_scen
        m = 0.0
        f = 0.0
        for i in range(link_first[lk], link_first[lk + 1]):
            for k in range(2):
                m += rho[k, i, s] * cell_dx[i]
                f += rho[k, i, s] * cell_speed(k, i, s, rho, y, cell_rj, kp, alpha, gamma, eps) * cell_dx[i]
        mass[lk, s] = m
        flow[lk, s] = f


@source_keyed(cuda.jit(cache=True), __file__)
def k_approach_sums(rho, y, cell_rj, kp, cell_dx, app_cells, alpha, gamma, eps, queue_speed, queue_min, out):
    """Read-out: per (approach, scenario) the vehicles and their sum of speeds over the cells near
    the stop line, and the vehicles in standing cells (a class present above queue_min moving
    slower than queue_speed) on the whole link.
    app_cells[a] = (first cell of the link, first cell near the stop line, one past the last)."""
    t = cuda.grid(1)
    n_scen = rho.shape[2]
    if t < app_cells.shape[0] * n_scen:
        a = t // n_scen
        s = t % n_scen
        near_mass = 0.0
        near_flow = 0.0
        queued = 0.0
        for i in range(app_cells[a, 0], app_cells[a, 2]):
            v_m = cell_speed(0, i, s, rho, y, cell_rj, kp, alpha, gamma, eps)
            v_c = cell_speed(1, i, s, rho, y, cell_rj, kp, alpha, gamma, eps)
            cell_mass = rho[0, i, s] + rho[1, i, s]
            cell_flow = rho[0, i, s] * v_m + rho[1, i, s] * v_c
            if i >= app_cells[a, 1]:
                near_mass += cell_mass * cell_dx[i]
                near_flow += cell_flow * cell_dx[i]
            standing_m = rho[0, i, s] > queue_min and v_m < queue_speed
            standing_c = rho[1, i, s] > queue_min and v_c < queue_speed
            if standing_m or standing_c:
                queued += cell_mass * cell_dx[i]
        out[a, s, 0] = near_mass
        out[a, s, 1] = near_flow
        out[a, s, 2] = queued


@source_keyed(cuda.jit(cache=True), __file__)
def k_reset(rho, y, queue, rho0, y0, mask, entered, exited, delay, link_out):
    t = cuda.grid(1)
    n_scen = rho.shape[2]
    if t < rho.shape[1] * n_scen:
        i = t // n_scen
        s = t % n_scen
        if mask[s]:
            for k in range(2):
                rho[k, i, s] = rho0[k, i]
                y[k, i, s] = y0[k, i]
            if i == 0:
                entered[s] = 0.0
                exited[s] = 0.0
                delay[s] = 0.0
                for e in range(queue.shape[1]):
                    queue[0, e, s] = 0.0
                    queue[1, e, s] = 0.0
                for lk in range(link_out.shape[0]):
                    link_out[lk, s] = 0.0


def _blocks(n: int) -> int:
    return max(1, (n + THREADS - 1) // THREADS)


def advance_shape(n_scen: int, n_items: int) -> tuple[int, tuple[int, int]]:
    """(blocks, (scenarios per block, threads per scenario)) of the fused kernel: up to 32
    consecutive scenarios per block (one warp's width along the scenario-fastest layout), and as
    many threads per scenario as fill THREADS, but no more than the widest stage has items."""
    tile = min(32, n_scen)
    lanes = max(1, min(THREADS // tile, n_items))
    return (n_scen + tile - 1) // tile, (tile, lanes)


class CudaEngine:
    """State, scratch and static arrays of a Simulator on the GPU; `launches` counts its kernels."""

    def __init__(self, sim: Any) -> None:
        st, B = sim._static, sim.n_scenarios
        nc, nl = len(st["cell_rj"]), len(st["link_first"]) - 1
        ne = len(st["entry_link"])
        self._cfg = sim.config
        self.B = B
        self.launches = sim.launches
        arrays = {name: v for name, v in st.items() if isinstance(v, np.ndarray)}
        self.d = {name: cuda.to_device(np.ascontiguousarray(v)) for name, v in arrays.items()}
        self.static = Static(*(self.d[name] for name in Static._fields))
        zeros = cuda.device_array
        self.ns = len(sim.network.signals)  # signal arrays keep a row without signals (physics.movement_gate)
        self.state = State(
            rho=cuda.to_device(np.zeros((2, nc, B))), y=cuda.to_device(np.zeros((2, nc, B))),
            queue=cuda.to_device(np.zeros((2, ne, B))), rate=cuda.to_device(np.zeros((2, ne, B))),
            sig_phase=cuda.to_device(np.zeros((max(self.ns, 1), B), dtype=np.int64)),
            sig_amber=cuda.to_device(np.zeros((max(self.ns, 1), B))),
            entered=cuda.to_device(np.zeros(B)), exited=cuda.to_device(np.zeros(B)),
            delay=cuda.to_device(np.zeros(B)), link_out=cuda.to_device(np.zeros((nl, B))),
        )
        n_st = len(st["st_link"])
        self.scratch = Scratch(
            *(zeros((2, nc, B)) for _ in range(6)), *(zeros((2, nl, B)) for _ in range(5)),
            zeros((n_st, B)), zeros((n_st, B)), zeros((nl, B)), zeros((nl, B)), zeros((nc, B)),
        )
        self.heun = None
        if sim.config.order == 2:
            self.heun = Heun(*(zeros((2, nc, B)) for _ in range(6)), zeros((2, ne, B)), zeros(B), zeros(B),
                             zeros((nl, B)))
        cfg = sim.config
        self.params = Params(float(cfg.alpha), int(cfg.gamma), float(cfg.eps_density), float(st["c_bound"]),
                             float(cfg.left_gap_s), float(cfg.left_followup_s), float(cfg.tau_m),
                             float(cfg.tau_c))
        n_jn = len(st["jn_mov_ptr"]) - 1
        self._shape = advance_shape(B, max(nc, nl, n_jn, ne))
        self.rho0 = None
        self.y0 = None
        self._app_cells = None

    def _launch(self, kernel: Any, blocks: int, threads: Any, *args: Any) -> None:
        """Launch `kernel` and count it, with its grid size."""
        self.launches.add(kernel.__name__, blocks)
        kernel[blocks, threads](*args)

    @property
    def nbytes(self) -> int:
        arrays = [*self.state, *self.scratch, *self.d.values(), *(self.heun or ())]
        return int(sum(a.nbytes for a in arrays))

    def reset(self, idx: np.ndarray, rho0: np.ndarray, y0: np.ndarray) -> None:
        if self.rho0 is None:
            self.rho0 = cuda.to_device(np.ascontiguousarray(rho0))
            self.y0 = cuda.to_device(np.ascontiguousarray(y0))
        mask = np.zeros(self.B, dtype=np.uint8)
        mask[idx] = 1
        x = self.state
        n = x.rho.shape[1] * self.B
        self._launch(k_reset, _blocks(n), THREADS, x.rho, x.y, x.queue, self.rho0, self.y0,
                     cuda.to_device(mask), x.entered, x.exited, x.delay, x.link_out)

    def upload_signals(self, phase: np.ndarray, amber: np.ndarray) -> None:
        rows = self.state.sig_phase.shape[0]
        padded_phase = np.zeros((rows, self.B), dtype=np.int64)
        padded_amber = np.zeros((rows, self.B))
        padded_phase[: self.ns] = phase
        padded_amber[: self.ns] = amber
        self.state.sig_phase.copy_to_device(padded_phase)
        self.state.sig_amber.copy_to_device(padded_amber)

    def set_rate(self, rate: np.ndarray) -> None:
        self.state.rate.copy_to_device(np.ascontiguousarray(rate))

    def set_cells(self, rho: np.ndarray, y: np.ndarray) -> None:
        self.state.rho.copy_to_device(np.ascontiguousarray(rho))
        self.state.y.copy_to_device(np.ascontiguousarray(y))

    def cells(self) -> tuple[np.ndarray, np.ndarray]:
        return self.state.rho.copy_to_host(), self.state.y.copy_to_host()

    def queue(self) -> np.ndarray:
        return self.state.queue.copy_to_host()

    # Read-outs reduced on the device: each copies back only the (B,), (B, n_links) or
    # (B, n_approaches, 3) numbers it returns, never the cell state.

    def vehicles(self) -> np.ndarray:
        out = cuda.device_array(self.B)
        x = self.state
        self._launch(k_vehicles, _blocks(self.B), THREADS, x.rho, x.queue, self.d["cell_dx"], out)
        return out.copy_to_host()

    def link_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """(B, n_links) vehicles and sum of speeds (veh m/s) per link."""
        d, p = self.d, self.params
        nl = d["link_first"].shape[0] - 1
        mass, flow = cuda.device_array((nl, self.B)), cuda.device_array((nl, self.B))
        self._launch(k_link_sums, _blocks(nl * self.B), THREADS, self.state.rho, self.state.y, d["cell_rj"],
                     d["kp"], d["cell_dx"], d["link_first"], p.alpha, p.gamma, p.eps, mass, flow)
        return mass.copy_to_host().T, flow.copy_to_host().T

    def _device_copy(self, app_cells: np.ndarray) -> Any:
        """The approach cell table on the device, uploaded once (it is fixed per Simulator)."""
        if self._app_cells is None:
            self._app_cells = cuda.to_device(np.ascontiguousarray(app_cells))
        return self._app_cells

    def approach_sums(self, app_cells: np.ndarray) -> np.ndarray:
        """(B, n_approaches, 3): near-stop-line vehicles and speed sum, and queued vehicles."""
        d, cfg, p = self.d, self._cfg, self.params
        n_app = app_cells.shape[0]
        out = cuda.device_array((n_app, self.B, 3))
        if n_app:
            self._launch(
                k_approach_sums, _blocks(n_app * self.B), THREADS, self.state.rho, self.state.y, d["cell_rj"],
                d["kp"], d["cell_dx"], self._device_copy(app_cells), p.alpha, p.gamma, p.eps,
                float(cfg.queue_speed_mps), float(cfg.queue_min_density), out,
            )
        return out.copy_to_host().transpose(1, 0, 2)

    def counter(self, name: str) -> np.ndarray:
        return getattr(self.state, name).copy_to_host()

    def link_outflow(self) -> np.ndarray:
        return self.state.link_out.copy_to_host().T.copy()

    def advance(self, n_steps: int, dt: float, dt_last: float) -> None:
        """All n_steps substeps for all scenarios in one launch (k_advance or k_advance2)."""
        blocks, threads = self._shape
        args = (n_steps, float(dt), float(dt_last), self.static, self.state, self.scratch)
        if self.heun is None:
            self._launch(k_advance, blocks, threads, *args, self.params)
        else:
            self._launch(k_advance2, blocks, threads, *args, self.heun, self.params)


KERNELS = (k_advance, k_advance2, k_reset, k_vehicles, k_link_sums, k_approach_sums)


def cache_hits() -> int:
    """How many kernels this process loaded from numba's on-disk cache instead of compiling."""
    return sum(sum(getattr(k, "_cache_hits", {}).values()) for k in KERNELS)
