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
add the same numbers in the same order. Arguments travel as named tuples of arrays (Static,
State, Work, Stages, Params; the kernels unpack Work and Stages into the views Scratch and Heun).
The state stays on the device; read-outs are reduced there and copy back only their result.
Kernels are cached on disk in a folder keyed by the hash of lib/sim/physics.py
and this file (`kernel_cache.source_keyed`).
"""

from __future__ import annotations

import math
import types
from typing import Any, NamedTuple

import numpy as np
from numba import cuda

from lib.obs.events import emit
from lib.sim import physics
from lib.sim.kernel_cache import source_keyed
from lib.sim.physics import HALF, ONE, ZERO

_DEVICE = cuda.jit(device=True)
# float64 physics: the read-out kernels' `cell_speed`, and the names the fused kernels' source
# calls (`_family` rebinds them per precision)
_P = physics.compile_for(_DEVICE)
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
# numba-cuda's rule (dispatcher.py, _LaunchConfiguration): it warns of low occupancy below 128
# blocks, "ideally 2 times the number of SMs"; the device's own figure is used when it is known
NUMBA_MIN_GRID = 128


class Static(NamedTuple):
    """The network's arrays, fixed per Simulator (Simulator._static names)."""

    cell_rj: Any
    cell_vf: Any
    cell_dx: Any
    cell_first: Any
    cell_last: Any
    cell_link: Any
    interior: Any
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
    st_main: Any
    st_pocket: Any


class State(NamedTuple):
    """What evolves and what the host sets: cells, entry queues and rates, signals, counters."""

    rho: Any
    y: Any
    flux: Any
    queue: Any
    rate: Any
    sig_phase: Any
    sig_amber: Any
    entered: Any
    exited: Any
    delay: Any
    link_out: Any


class Scratch(NamedTuple):
    """One substep's intermediates, as the kernel sees them: views into Work's arrays."""

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


class Work(NamedTuple):
    """Scratch as the kernel receives it, packed into five arrays: kernel parameters are limited
    to 4 KB on sm_60 (a P100), and each array costs 56 to 88 bytes of them."""

    cells: Any  # (6, 2, n_cells, B): dem, wv, vel, phi, gout, gyout
    links: Any  # (5, 2, n_links, B): lin, lyin, sd, sdw, sdp
    streams: Any  # (2, n_streams, B): st_h, st_q
    supply: Any  # (2, n_links, B): rsup, rres
    cell_delay: Any  # (n_cells, B)


class Heun(NamedTuple):
    """Order 2 only, as the kernel sees it: MUSCL face states and the state saved at the start of
    the step (SSP-RK2); views into Stages' arrays."""

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


class Stages(NamedTuple):
    """Heun as the kernel receives it, packed like Work."""

    faces: Any  # (4, 2, n_cells, B): rho_l, y_l, rho_r, y_r
    cells0: Any  # (2, 2, n_cells, B): rho0, y0
    queue0: Any  # (2, n_entries, B)
    counters0: Any  # (2, B): entered0, exited0
    out0: Any  # (n_links, B)


class Params(NamedTuple):
    """The scalars of SimConfig the kernels use."""

    wave: float  # congested wave speed of the triangular diagram, m/s
    alpha: float
    eps_m: float  # a motorcycle's share of a car's space
    eps: float
    c_bound: float
    t_gap: float
    t_follow: float
    tau_m: float
    tau_c: float


def _slot(n_scen):
    """(scenario of this thread, or -1 past the last; first item; item stride): a block holds
    blockDim.x consecutive scenarios (coalesced in the scenario-fastest layout) times blockDim.y
    threads sharing out the cells, links or junctions of each stage. Threads past the last
    scenario still reach every barrier."""
    s = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    return (s if s < n_scen else -1), cuda.threadIdx.y, cuda.blockDim.y


def _scratch(k):
    c, lk = k.cells, k.links
    return Scratch(c[0], c[1], c[2], c[3], c[4], c[5], lk[0], lk[1], lk[2], lk[3], lk[4], k.streams[0],
                   k.streams[1], k.supply[0], k.supply[1], k.cell_delay)


def _heun(g):
    f = g.faces
    return Heun(f[0], f[1], f[2], f[3], g.cells0[0], g.cells0[1], g.queue0, g.counters0[0], g.counters0[1],
                g.out0)


def _eval_cells(s, j, nj, rho, y, st, w, p):
    for i in range(j, rho.shape[1], nj):
        eval_cell(i, s, rho, y, st.cell_rj, st.cell_vf, p.wave, p.alpha, p.eps_m, p.eps, w.dem, w.wv, w.vel,
                  w.phi)


def _fluxes(s, j, nj, t_local, h, rho_recv, x, st, w, p):
    """Every flux of one substep (as cpu.fluxes), the stages separated by block barriers: cell
    interfaces and cleared link inflows, junctions (physics.junction_flow, one thread each),
    then entries, exits and link outflow tallied by one thread per scenario in the CPU's order."""
    if s >= 0:
        for q in range(j, st.interior.shape[0], nj):
            interior_flux(st.interior[q], s, rho_recv, st.cell_rj, st.cell_vf, p.wave, p.eps_m, p.c_bound,
                          w.dem, w.wv, w.vel, w.phi, w.gout, w.gyout)
        for lk in range(j, w.lin.shape[1], nj):
            for k in range(2):
                w.lin[k, lk, s] = ZERO
                w.lyin[k, lk, s] = ZERO
    cuda.syncthreads()
    if s >= 0:
        for n in range(j, st.jn_mov_ptr.shape[0] - 1, nj):
            junction_flow(
                n, s, t_local, x.rho, st.cell_rj, st.cell_vf, st.cell_dx, p.wave, p.eps_m, p.c_bound, w.dem,
                w.wv, w.vel, w.phi, w.gout, w.gyout, w.lin, w.lyin, st.jn_mov_ptr, st.jn_out_ptr,
                st.jn_st_ptr, st.jn_out_link, st.mov_in, st.mov_out, st.mov_ratio, st.mov_signal,
                st.mov_phase, st.mov_stream, st.mov_yield, st.mov_yield_share, st.st_link, st.st_cap,
                st.st_main, st.st_pocket, x.sig_phase, x.sig_amber, st.link_first, p.t_gap, p.t_follow,
                w.sd, w.sdw, w.sdp, w.st_h, w.st_q, w.rsup, w.rres,
            )
    cuda.syncthreads()
    if s >= 0 and j == 0:
        _boundaries(s, h, x, st, w, p)
    cuda.syncthreads()


def _boundaries(s, h, x, st, w, p):
    for e in range(st.entry_link.shape[0]):
        x.entered[s] += entry_flow(e, s, h, x.rho, st.cell_rj, st.cell_vf, p.wave, p.alpha, p.eps_m,
                                   p.c_bound, w.vel, w.lin, w.lyin, st.entry_link, st.link_first,
                                   x.queue, x.rate)
    for e in range(st.exit_link.shape[0]):
        x.exited[s] += exit_flow(e, s, h, w.dem, w.wv, w.gout, w.gyout, st.exit_link, st.exit_cap,
                                 st.link_first, p.eps_m)
    for lk in range(x.link_out.shape[0]):
        last = st.link_first[lk + 1] - 1
        x.link_out[lk, s] += h * (w.gout[0, last, s] + w.gout[1, last, s])


def _tally_delay(s, h, x, w):
    """Cells' delay in cell order, then the entry queues (as on the CPU)."""
    acc = x.delay[s]
    for i in range(w.cell_delay.shape[0]):
        acc += w.cell_delay[i, s]
    for e in range(x.queue.shape[1]):
        acc += h * (x.queue[0, e, s] + x.queue[1, e, s])
    x.delay[s] = acc


def k_advance(n_steps, dt, dt_last, st, x, work, p):
    """First order: every substep of one `advance` for the block's scenarios, in one launch."""
    s, j, nj = _slot(x.rho.shape[2])
    w = _scratch(work)
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
                    i, s, h, x.rho, x.y, x.flux, st.cell_rj, st.cell_vf, st.cell_dx, st.cell_first,
                    st.cell_link, p.wave, p.alpha, p.eps_m, p.eps, decay_m, decay_c, w.gout, w.gyout, w.lin,
                    w.lyin,
                )
        cuda.syncthreads()
        if s >= 0 and j == 0:
            _tally_delay(s, h, x, w)


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


def _mix(now, saved, average):
    """(new value, new save) of one element: saved (average False) or averaged with its save."""
    return (HALF * (now + saved), saved) if average else (now, now)


def k_advance2(n_steps, dt, dt_last, st, x, work, stages, p):
    """Order 2 (MUSCL + SSP-RK2, as cpu.advance_kernel2): every substep of one `advance`, one launch."""
    s, j, nj = _slot(x.rho.shape[2])
    w, u = _scratch(work), _heun(stages)
    for step in range(n_steps):
        h = dt if step < n_steps - 1 else dt_last
        if s >= 0:
            _save_or_average(s, j, nj, x, u, False)
        cuda.syncthreads()
        for stage in range(2):
            if s >= 0:
                for i in range(j, x.rho.shape[1], nj):
                    reconstruct_cell(i, s, x.rho, x.y, st.cell_first, st.cell_last, p.eps_m, p.eps, u.rho_l,
                                     u.y_l, u.rho_r, u.y_r)
            cuda.syncthreads()
            if s >= 0:
                for i in range(j, x.rho.shape[1], nj):  # eval then face_speed: both write vel, in this order
                    eval_cell(i, s, u.rho_r, u.y_r, st.cell_rj, st.cell_vf, p.wave, p.alpha, p.eps_m, p.eps,
                              w.dem, w.wv, w.vel, w.phi)
                    face_speed(i, s, u.rho_l, u.y_l, st.cell_rj, st.cell_vf, p.wave, p.alpha, p.eps_m, p.eps,
                               w.vel)
            cuda.syncthreads()
            _fluxes(s, j, nj, step * dt, h, u.rho_l, x, st, w, p)
            keep = ZERO if stage == 0 else ONE  # x.flux: the mean of the two stages' outflow
            if s >= 0:
                for i in range(j, x.rho.shape[1], nj):
                    transport_cell(i, s, h, x.rho, x.y, x.flux, keep, HALF, st.cell_dx, st.cell_first,
                                   st.cell_link, w.gout, w.gyout, w.lin, w.lyin)
            cuda.syncthreads()
        _relax(s, j, nj, h, x, w, u, st, p)


def _relax(s, j, nj, h, x, w, u, st, p):
    """Order 2's step end: SSP-RK2's average, exact relaxation, the delay tally."""
    decay_m, decay_c = math.exp(-h / p.tau_m), math.exp(-h / p.tau_c)
    if s >= 0:
        _save_or_average(s, j, nj, x, u, True)
    cuda.syncthreads()
    if s >= 0:
        for i in range(j, x.rho.shape[1], nj):
            w.cell_delay[i, s] = relax_cell(i, s, h, x.rho, x.y, x.flux, st.cell_rj, st.cell_vf, st.cell_dx,
                                            p.wave, p.alpha, p.eps_m, p.eps, decay_m, decay_c)
    cuda.syncthreads()
    if s >= 0 and j == 0:
        _tally_delay(s, h, x, w)


# The fused kernels and their helpers, compiled once per precision from the functions above.
FAMILY_HELPERS = ("_slot", "_scratch", "_heun", "_eval_cells", "_fluxes", "_boundaries", "_tally_delay",
                  "_save_or_average", "_mix", "_relax")
FAMILY_KERNELS = ("k_advance", "k_advance2")


def _family(real: Any = None) -> types.SimpleNamespace:
    """k_advance and k_advance2 compiled with physics.compile_for(_, real): with real = np.float32
    every constant of the physics and of these kernels is a float32 scalar, so a float32 state is
    computed in float32 (docs/PERFORMANCE.md counts the float64 instructions left); without, the
    float64 kernels are what the literals compiled to. Each function is cloned with its own
    globals, as physics.compile_for does."""
    namespace = dict(globals())
    namespace.update(vars(physics.compile_for(_DEVICE, real)))
    if real is not None:
        namespace.update(physics.constants(real))
    kernel = source_keyed(cuda.jit(cache=True), __file__)
    compiled = {}
    for name in FAMILY_HELPERS + FAMILY_KERNELS:
        f = globals()[name]
        clone = types.FunctionType(f.__code__, namespace, name, f.__defaults__, f.__closure__)
        clone.__qualname__ = f.__qualname__
        clone.__module__ = f.__module__
        compiled[name] = (_DEVICE if name in FAMILY_HELPERS else kernel)(clone)
    namespace.update(compiled)
    return types.SimpleNamespace(**{name: compiled[name] for name in FAMILY_KERNELS})


FLOAT64 = _family()
FLOAT32 = _family(np.float32)


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
def k_link_sums(rho, y, flux, cell_rj, cell_vf, cell_dx, link_first, wave, alpha, eps_m, eps, mass, flow):
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
                v = cell_speed(k, i, s, rho, y, flux, cell_rj, cell_vf, wave, alpha, eps_m, eps)
                f += rho[k, i, s] * v * cell_dx[i]
        mass[lk, s] = m
        flow[lk, s] = f


@source_keyed(cuda.jit(cache=True), __file__)
def k_approach_sums(rho, y, flux, cell_rj, cell_vf, cell_dx, app_cells, wave, alpha, eps_m, eps, queue_speed,
                    queue_min, out):
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
            v_m = cell_speed(0, i, s, rho, y, flux, cell_rj, cell_vf, wave, alpha, eps_m, eps)
            v_c = cell_speed(1, i, s, rho, y, flux, cell_rj, cell_vf, wave, alpha, eps_m, eps)
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
def k_reset(rho, y, flux, queue, rho0, y0, flux0, mask, entered, exited, delay, link_out):
    t = cuda.grid(1)
    n_scen = rho.shape[2]
    if t < rho.shape[1] * n_scen:
        i = t // n_scen
        s = t % n_scen
        if mask[s]:
            for k in range(2):
                rho[k, i, s] = rho0[k, i]
                y[k, i, s] = y0[k, i]
                flux[k, i, s] = flux0[k, i]
            if i == 0:
                entered[s] = 0.0
                exited[s] = 0.0
                delay[s] = 0.0
                for e in range(queue.shape[1]):
                    queue[0, e, s] = 0.0
                    queue[1, e, s] = 0.0
                for lk in range(link_out.shape[0]):
                    link_out[lk, s] = 0.0


def min_grid() -> tuple[int, str]:
    """(blocks below which a grid leaves the device underused, the rule that gave it): 2 x the
    device's SMs when it reports them, else numba's fixed NUMBA_MIN_GRID (the CUDA simulator)."""
    sms = getattr(cuda.current_context().device, "MULTIPROCESSOR_COUNT", None)
    if isinstance(sms, int) and sms > 0:
        return 2 * sms, f"2 x the device's {sms} SMs"
    return NUMBA_MIN_GRID, "numba's 128 blocks; the device's SM count is unknown"


def _blocks(n: int) -> int:
    return max(1, (n + THREADS - 1) // THREADS)


def advance_shape(n_scen: int, n_items: int) -> tuple[int, tuple[int, int]]:
    """(blocks, (scenarios per block, threads per scenario)) of the fused kernel: up to 32
    consecutive scenarios per block (one warp's width along the scenario-fastest layout), and as
    many threads per scenario as fill THREADS, but no more than the widest stage has items."""
    tile = min(32, n_scen)
    lanes = max(1, min(THREADS // tile, n_items))
    return (n_scen + tile - 1) // tile, (tile, lanes)


class DeviceMemory:
    """Where CudaEngine puts its arrays: the GPU."""

    @staticmethod
    def zeros(shape: Any, dtype: Any = np.float64) -> Any:
        return cuda.to_device(np.zeros(shape, dtype=dtype))

    @staticmethod
    def copy(array: np.ndarray) -> Any:
        return cuda.to_device(np.ascontiguousarray(array))


class HostMemory:
    """numpy arrays of the same dtypes and layouts as DeviceMemory's: an engine built on them
    gives every kernel's real argument types (`launch_arguments`) without a GPU, for compiling
    to PTX (tests/test_ptx.py)."""

    zeros = staticmethod(np.zeros)
    copy = staticmethod(np.ascontiguousarray)


class CudaEngine:
    """State, scratch and static arrays of a Simulator on the GPU; `launches` counts its kernels."""

    def __init__(self, sim: Any, memory: Any = DeviceMemory) -> None:
        st, B, cfg = sim._static, sim.n_scenarios, sim.config
        nc, nl = len(st["cell_rj"]), len(st["link_first"]) - 1
        ne, n_st, n_jn = len(st["entry_link"]), len(st["st_link"]), len(st["jn_mov_ptr"]) - 1
        self._cfg = cfg
        self.B = B
        self.launches = sim.launches
        self._warned_occupancy = False  # low occupancy is reported once per engine (`_check_occupancy`)
        self.memory = memory
        real = np.float32 if cfg.precision == "float32" else np.float64  # cells, queues, scratch, constants
        self._real = real
        self._kernels = FLOAT32 if real == np.float32 else FLOAT64
        self.d = {name: memory.copy(v) for name, v in st.items() if isinstance(v, np.ndarray)}
        # the fused kernels read the float statics in the state's precision (float32: no promotion)
        self.static = Static(*(self._in_precision(name, st[name]) for name in Static._fields))
        zeros = memory.zeros

        def cells(shape: tuple) -> Any:
            return zeros(shape, dtype=real)

        self.ns = len(sim.network.signals)  # signal arrays keep a row without signals (physics.movement_gate)
        rows = max(self.ns, 1)
        self.state = State(
            rho=cells((2, nc, B)), y=cells((2, nc, B)), flux=cells((2, nc, B)), queue=cells((2, ne, B)),
            rate=cells((2, ne, B)),
            sig_phase=zeros((rows, B), dtype=np.int64), sig_amber=zeros((rows, B)), entered=zeros(B),
            exited=zeros(B), delay=zeros(B), link_out=zeros((nl, B)),
        )
        self.work = Work(cells((6, 2, nc, B)), cells((5, 2, nl, B)), cells((2, n_st, B)), cells((2, nl, B)),
                         cells((nc, B)))
        self.stages = None
        if cfg.order == 2:
            self.stages = Stages(cells((4, 2, nc, B)), cells((2, 2, nc, B)), cells((2, ne, B)), zeros((2, B)),
                                 zeros((nl, B)))
        self.params = Params(*(real(v) for v in (
            cfg.wave_speed_mps, cfg.alpha, cfg.moto_space_weight, cfg.eps_density, st["c_bound"],
            cfg.left_gap_s, cfg.left_followup_s, cfg.tau_m, cfg.tau_c)))
        self._shape = advance_shape(B, max(nc, nl, n_jn, ne))
        self.rho0 = memory.copy(sim._rho0)
        self.y0 = memory.copy(sim._y0)
        self.flux0 = memory.copy(sim._flux0)
        self._app_cells = memory.copy(sim._approach_cells)

    def _in_precision(self, name: str, host: np.ndarray) -> Any:
        """Static array `name` for the fused kernels: a float array in the state's precision (a
        float32 copy uploaded for float32), any other the one uploaded for the read-outs."""
        if host.dtype.kind == "f" and host.dtype != self._real:
            return self.memory.copy(host.astype(self._real))
        return self.d[name]

    def _launch(self, kernel: Any, blocks: int, threads: Any, *args: Any) -> None:
        """Launch `kernel` and count it, with its grid size."""
        self.launches.add(kernel.__name__, blocks)
        if not self._warned_occupancy:
            self._check_occupancy(kernel.__name__, blocks, threads)
        kernel[blocks, threads](*args)

    def _check_occupancy(self, name: str, blocks: int, threads: Any) -> None:
        """One `warning` event (category low_occupancy) the first time a grid is too small to fill
        the device. Why: numba's own warning repeats on every launch without the cause, and a run
        that leaves the GPU mostly idle should say so once, with the fix."""
        minimum, rule = min_grid()
        if blocks >= minimum:
            return
        self._warned_occupancy = True
        emit("warning", category="low_occupancy", count=1, kernel=name, scenarios=self.B, blocks=int(blocks),
             threads=str(threads), threshold=minimum,
             message=f"{name} launched {blocks} block(s) of {threads} threads for B = {self.B} scenarios, "
                     f"below {minimum} blocks ({rule}): the GPU is mostly idle. Run more scenarios at "
                     f"once (n_envs, eval_episodes; the fused kernel puts 32 per block) to fill it.")

    @property
    def nbytes(self) -> int:
        arrays = [*self.state, *self.work, *self.d.values(), *(self.stages or ())]
        return int(sum(a.nbytes for a in arrays))

    def reset(self, idx: np.ndarray, rho0: np.ndarray, y0: np.ndarray, flux0: np.ndarray) -> None:
        """Scenarios `idx` back to the initial state (rho0, y0, flux0: the Simulator's, uploaded at
        build)."""
        mask = np.zeros(self.B, dtype=np.uint8)
        mask[idx] = 1
        self._launch(k_reset, _blocks(self.state.rho.shape[1] * self.B), THREADS,
                     *self._reset_args(self.memory.copy(mask)))

    def _reset_args(self, mask: Any) -> tuple:
        x = self.state
        return (x.rho, x.y, x.flux, x.queue, self.rho0, self.y0, self.flux0, mask, x.entered, x.exited,
                x.delay, x.link_out)

    def upload_signals(self, phase: np.ndarray, amber: np.ndarray) -> None:
        rows = self.state.sig_phase.shape[0]
        padded_phase = np.zeros((rows, self.B), dtype=np.int64)
        padded_amber = np.zeros((rows, self.B))
        padded_phase[: self.ns] = phase
        padded_amber[: self.ns] = amber
        self.state.sig_phase.copy_to_device(padded_phase)
        self.state.sig_amber.copy_to_device(padded_amber)

    def set_rate(self, rate: np.ndarray) -> None:
        self.state.rate.copy_to_device(np.ascontiguousarray(rate, dtype=self.state.rate.dtype))

    def set_cells(self, rho: np.ndarray, y: np.ndarray, flux: np.ndarray) -> None:
        x = self.state
        for now, new in ((x.rho, rho), (x.y, y), (x.flux, flux)):
            now.copy_to_device(np.ascontiguousarray(new, dtype=now.dtype))

    def cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.state.rho.copy_to_host(), self.state.y.copy_to_host(), self.state.flux.copy_to_host()

    def queue(self) -> np.ndarray:
        return self.state.queue.copy_to_host()

    # Read-outs reduced on the device: each copies back only the (B,), (B, n_links) or
    # (B, n_approaches, 3) numbers it returns, never the cell state.

    def vehicles(self) -> np.ndarray:
        out = cuda.device_array(self.B)
        self._launch(k_vehicles, _blocks(self.B), THREADS, *self._vehicles_args(out))
        return out.copy_to_host()

    def _vehicles_args(self, out: Any) -> tuple:
        return self.state.rho, self.state.queue, self.d["cell_dx"], out

    def link_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """(B, n_links) vehicles and sum of speeds (veh m/s) per link."""
        nl = self.state.link_out.shape[0]
        mass, flow = cuda.device_array((nl, self.B)), cuda.device_array((nl, self.B))
        self._launch(k_link_sums, _blocks(nl * self.B), THREADS, *self._link_sums_args(mass, flow))
        return mass.copy_to_host().T, flow.copy_to_host().T

    def _link_sums_args(self, mass: Any, flow: Any) -> tuple:
        d, p, x = self.d, self.params, self.state
        return (x.rho, x.y, x.flux, d["cell_rj"], d["cell_vf"], d["cell_dx"], d["link_first"], p.wave,
                p.alpha, p.eps_m, p.eps, mass, flow)

    def approach_sums(self, app_cells: np.ndarray) -> np.ndarray:
        """(B, n_approaches, 3): near-stop-line vehicles and speed sum, and queued vehicles (the
        approach table `app_cells` is the Simulator's, uploaded at build)."""
        n_app = app_cells.shape[0]
        out = cuda.device_array((n_app, self.B, 3))
        if n_app:
            self._launch(k_approach_sums, _blocks(n_app * self.B), THREADS, *self._approach_args(out))
        return out.copy_to_host().transpose(1, 0, 2)

    def _approach_args(self, out: Any) -> tuple:
        d, cfg, p, x = self.d, self._cfg, self.params, self.state
        return (x.rho, x.y, x.flux, d["cell_rj"], d["cell_vf"], d["cell_dx"], self._app_cells, p.wave,
                p.alpha, p.eps_m, p.eps, float(cfg.queue_speed_mps), float(cfg.queue_min_density), out)

    def counter(self, name: str) -> np.ndarray:
        return getattr(self.state, name).copy_to_host()

    def link_outflow(self) -> np.ndarray:
        return self.state.link_out.copy_to_host().T.copy()

    def advance(self, n_steps: int, dt: float, dt_last: float) -> None:
        """All n_steps substeps for all scenarios in one launch (k_advance or k_advance2)."""
        blocks, threads = self._shape
        kernel = self._kernels.k_advance if self.stages is None else self._kernels.k_advance2
        self._launch(kernel, blocks, threads, *self._advance_args(n_steps, dt, dt_last))

    def _advance_args(self, n_steps: int, dt: float, dt_last: float) -> tuple:
        stages = () if self.stages is None else (self.stages,)
        return (int(n_steps), self._real(dt), self._real(dt_last), self.static, self.state, self.work,
                *stages, self.params)

    def launch_arguments(self) -> dict[str, tuple[Any, tuple]]:
        """Every kernel this engine launches, with arguments of the types it launches them with
        (on a HostMemory engine: numpy stand-ins), so each compiles to PTX without a GPU."""
        zeros, B = self.memory.zeros, self.B
        nl, n_app = self.state.link_out.shape[0], self._app_cells.shape[0]
        advance = self._kernels.k_advance if self.stages is None else self._kernels.k_advance2
        return {
            advance.__name__: (advance, self._advance_args(3, 1.0, 0.5)),
            "k_reset": (k_reset, self._reset_args(zeros(B, dtype=np.uint8))),
            "k_vehicles": (k_vehicles, self._vehicles_args(zeros(B))),
            "k_link_sums": (k_link_sums, self._link_sums_args(zeros((nl, B)), zeros((nl, B)))),
            "k_approach_sums": (k_approach_sums, self._approach_args(zeros((n_app, B, 3)))),
        }


KERNELS = (FLOAT64.k_advance, FLOAT64.k_advance2, FLOAT32.k_advance, FLOAT32.k_advance2, k_reset, k_vehicles,
           k_link_sums, k_approach_sums)


def cache_hits() -> int:
    """How many kernels this process loaded from numba's on-disk cache instead of compiling."""
    return sum(sum(getattr(k, "_cache_hits", {}).values()) for k in KERNELS)
