"""CUDA backend: numba.cuda kernels running the per-cell physics of lib/sim/physics.py.

One launch per stage per substep over all (cell, scenario) pairs, thread index with the scenario
fastest so neighbouring threads touch neighbouring addresses ([class][cell][scenario] layout).
Per-scenario tallies (entries, exits, link outflow, delay) run one thread per scenario looping in
the same order as the CPU kernel, so both backends add the same numbers in the same order. The
state stays on the device; read-outs are reduced on the device and copy back only their result.
The kernels are cached on disk in a folder keyed by the hash of lib/sim/physics.py and this file
(`kernel_cache.source_keyed`).
"""

from __future__ import annotations

import math
from typing import Any

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


@source_keyed(cuda.jit(cache=True), __file__)
def k_eval(rho, y, cell_rj, cell_vf, wave, alpha, eps_m, eps, dem, wv, vel, phi):
    t = cuda.grid(1)
    n_scen = rho.shape[2]
    if t < rho.shape[1] * n_scen:
        i = t // n_scen
        eval_cell(i, t % n_scen, rho, y, cell_rj, cell_vf, wave, alpha, eps_m, eps, dem, wv, vel, phi)


@source_keyed(cuda.jit(cache=True), __file__)
def k_interior(interior, rho, cell_rj, cell_vf, wave, eps_m, c_bound, dem, wv, vel, phi, gout, gyout):
    t = cuda.grid(1)
    n_scen = rho.shape[2]
    if t < interior.shape[0] * n_scen:
        i = interior[t // n_scen]
        interior_flux(i, t % n_scen, rho, cell_rj, cell_vf, wave, eps_m, c_bound, dem, wv, vel, phi, gout,
                      gyout)


@source_keyed(cuda.jit(cache=True), __file__)
def k_zero_links(lin, lyin):
    t = cuda.grid(1)
    n_scen = lin.shape[2]
    if t < lin.shape[1] * n_scen:
        lk = t // n_scen
        s = t % n_scen
        for k in range(2):
            lin[k, lk, s] = 0.0
            lyin[k, lk, s] = 0.0


@source_keyed(cuda.jit(cache=True), __file__)
def k_junctions(
    t_local, rho, cell_rj, cell_vf, wave, eps_m, c_bound, dem, wv, vel, phi, gout, gyout, lin, lyin,
    link_first, jn_mov_ptr, jn_out_ptr, jn_st_ptr, jn_out_link, mov_in, mov_out, mov_ratio, mov_signal,
    mov_phase, mov_stream, mov_yield, mov_yield_share, st_link, st_cap, sig_phase, sig_amber, t_gap, t_follow,
    sd, sdw, sdp, st_h, st_q, rsup, rres,
):
    """One thread per (junction, scenario): physics.junction_flow, all its passes."""
    t = cuda.grid(1)
    n_scen = rho.shape[2]
    if t < (jn_mov_ptr.shape[0] - 1) * n_scen:
        n = t // n_scen
        junction_flow(
            n, t % n_scen, t_local, rho, cell_rj, cell_vf, wave, eps_m, c_bound, dem, wv, vel, phi, gout,
            gyout,
            lin, lyin, jn_mov_ptr, jn_out_ptr, jn_st_ptr, jn_out_link, mov_in, mov_out, mov_ratio, mov_signal,
            mov_phase, mov_stream, mov_yield, mov_yield_share, st_link, st_cap, sig_phase, sig_amber,
            link_first, t_gap, t_follow, sd, sdw, sdp, st_h, st_q, rsup, rres,
        )


@source_keyed(cuda.jit(cache=True), __file__)
def k_boundaries(
    h, rho, cell_rj, cell_vf, wave, alpha, eps_m, c_bound, dem, wv, vel, gout, gyout, lin, lyin,
    entry_link, exit_link, exit_cap, link_first, queue, rate, entered, exited, link_out,
):
    """One thread per scenario: entries, exits and link outflow tallies, in the CPU's order."""
    s = cuda.grid(1)
    if s < rho.shape[2]:
        for e in range(entry_link.shape[0]):
            entered[s] += entry_flow(
                e, s, h, rho, cell_rj, cell_vf, wave, alpha, eps_m, c_bound, vel, lin, lyin, entry_link,
                link_first, queue, rate,
            )
        for x in range(exit_link.shape[0]):
            exited[s] += exit_flow(x, s, h, dem, wv, gout, gyout, exit_link, exit_cap, link_first, eps_m)
        for lk in range(link_out.shape[0]):
            last = link_first[lk + 1] - 1
            link_out[lk, s] += h * (gout[0, last, s] + gout[1, last, s])


@source_keyed(cuda.jit(cache=True), __file__)
def k_update(
    h, rho, y, flux, cell_rj, cell_vf, cell_dx, cell_first, cell_link, wave, alpha, eps_m, eps,
    decay_m, decay_c, gout, gyout, lin, lyin, cell_delay,
):
    t = cuda.grid(1)
    n_scen = rho.shape[2]
    if t < rho.shape[1] * n_scen:
        i = t // n_scen
        s = t % n_scen
        cell_delay[i, s] = update_cell(
            i, s, h, rho, y, flux, cell_rj, cell_vf, cell_dx, cell_first, cell_link, wave, alpha, eps_m, eps,
            decay_m, decay_c, gout, gyout, lin, lyin,
        )


@source_keyed(cuda.jit(cache=True), __file__)
def k_reconstruct(rho, y, cell_first, cell_last, eps_m, eps, rho_l, y_l, rho_r, y_r):
    """Order 2: MUSCL face states of every (cell, scenario)."""
    t = cuda.grid(1)
    n_scen = rho.shape[2]
    if t < rho.shape[1] * n_scen:
        reconstruct_cell(t // n_scen, t % n_scen, rho, y, cell_first, cell_last, eps_m, eps, rho_l, y_l,
                         rho_r,
                         y_r)


@source_keyed(cuda.jit(cache=True), __file__)
def k_face_speed(rho_f, y_f, cell_rj, cell_vf, wave, alpha, eps_m, eps, vel):
    t = cuda.grid(1)
    n_scen = rho_f.shape[2]
    if t < rho_f.shape[1] * n_scen:
        face_speed(t // n_scen, t % n_scen, rho_f, y_f, cell_rj, cell_vf, wave, alpha, eps_m, eps, vel)


@source_keyed(cuda.jit(cache=True), __file__)
def k_transport(h, rho, y, flux, keep, weight, cell_dx, cell_first, cell_link, gout, gyout, lin, lyin):
    t = cuda.grid(1)
    n_scen = rho.shape[2]
    if t < rho.shape[1] * n_scen:
        transport_cell(t // n_scen, t % n_scen, h, rho, y, flux, keep, weight, cell_dx, cell_first, cell_link,
                       gout, gyout, lin, lyin)


@source_keyed(cuda.jit(cache=True), __file__)
def k_relax(h, rho, y, flux, cell_rj, cell_vf, cell_dx, wave, alpha, eps_m, eps, decay_m, decay_c,
            cell_delay):
    t = cuda.grid(1)
    n_scen = rho.shape[2]
    if t < rho.shape[1] * n_scen:
        i = t // n_scen
        s = t % n_scen
        cell_delay[i, s] = relax_cell(i, s, h, rho, y, flux, cell_rj, cell_vf, cell_dx, wave, alpha, eps_m,
                                      eps,
                                      decay_m, decay_c)


@source_keyed(cuda.jit(cache=True), __file__)
def k_copy(src, dst):
    """dst <- src over flat (1-D views of contiguous) arrays."""
    t = cuda.grid(1)
    if t < src.shape[0]:
        dst[t] = src[t]


@source_keyed(cuda.jit(cache=True), __file__)
def k_average(a, b):
    """a <- (a + b) / 2 over flat arrays: the last stage of SSP-RK2 (Heun), as on the CPU."""
    t = cuda.grid(1)
    if t < a.shape[0]:
        a[t] = 0.5 * (a[t] + b[t])


@source_keyed(cuda.jit(cache=True), __file__)
def k_tally_delay(h, cell_delay, queue, delay):
    """One thread per scenario: cells' delay in cell order, then the entry queues (as on the CPU)."""
    s = cuda.grid(1)
    if s < delay.shape[0]:
        acc = delay[s]
        for i in range(cell_delay.shape[0]):
            acc += cell_delay[i, s]
        for e in range(queue.shape[1]):
            acc += h * (queue[0, e, s] + queue[1, e, s])
        delay[s] = acc


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


def _blocks(n: int) -> int:
    return max(1, (n + THREADS - 1) // THREADS)


class CudaEngine:
    """State, scratch and static arrays of a Simulator on the GPU."""

    def __init__(self, sim: Any) -> None:
        st, B = sim._static, sim.n_scenarios
        nc, nl = len(st["cell_rj"]), len(st["link_first"]) - 1
        ne = len(st["entry_link"])
        ns = len(sim.network.signals)
        self._cfg = sim.config
        self._st = st
        self.B = B
        arrays = {name: v for name, v in st.items() if isinstance(v, np.ndarray)}
        self.d = {name: cuda.to_device(np.ascontiguousarray(v)) for name, v in arrays.items()}
        zeros = cuda.device_array
        self.rho = cuda.to_device(np.zeros((2, nc, B)))
        self.y = cuda.to_device(np.zeros((2, nc, B)))
        self.flux = cuda.to_device(np.zeros((2, nc, B)))
        self.queue_ = cuda.to_device(np.zeros((2, ne, B)))
        self.rate = cuda.to_device(np.zeros((2, ne, B)))
        self.counters = {name: cuda.to_device(np.zeros(B)) for name in ("entered", "exited", "delay")}
        self.link_out = cuda.to_device(np.zeros((nl, B)))
        self.ns = ns  # the signal arrays keep one row even without signals (physics.movement_gate)
        self.sig_phase = cuda.to_device(np.zeros((max(ns, 1), B), dtype=np.int64))
        self.sig_amber = cuda.to_device(np.zeros((max(ns, 1), B)))
        self.cell_scr = [zeros((2, nc, B)) for _ in range(6)]
        self.link_scr = [zeros((2, nl, B)) for _ in range(5)]
        n_st = len(st["st_link"])
        self.node_scr = [zeros((n_st, B)) for _ in range(2)] + [zeros((nl, B)) for _ in range(2)]
        self.cell_delay = zeros((nc, B))
        self.face_scr: list[Any] = []
        self.saved: list[Any] = []
        if sim.config.order == 2:
            self.face_scr = [zeros((2, nc, B)) for _ in range(4)]
            self.saved = [zeros(a.size) for a in self._evolving()]
        self.rho0 = None
        self.y0 = None
        self.flux0 = None
        self._app_cells = None

    @property
    def nbytes(self) -> int:
        arrays = [self.rho, self.y, self.flux, self.queue_, self.rate, self.link_out, self.sig_phase,
                  self.sig_amber,
                  self.cell_delay, *self.cell_scr, *self.link_scr, *self.node_scr, *self.counters.values(),
                  *self.d.values(),
                  *self.face_scr, *self.saved]
        return int(sum(a.nbytes for a in arrays))

    def reset(self, idx: np.ndarray, rho0: np.ndarray, y0: np.ndarray, flux0: np.ndarray) -> None:
        if self.rho0 is None:
            self.rho0 = cuda.to_device(np.ascontiguousarray(rho0))
            self.y0 = cuda.to_device(np.ascontiguousarray(y0))
            self.flux0 = cuda.to_device(np.ascontiguousarray(flux0))
        mask = np.zeros(self.B, dtype=np.uint8)
        mask[idx] = 1
        n = self.rho.shape[1] * self.B
        k_reset[_blocks(n), THREADS](
            self.rho, self.y, self.flux, self.queue_, self.rho0, self.y0, self.flux0, cuda.to_device(mask),
            self.counters["entered"], self.counters["exited"], self.counters["delay"], self.link_out,
        )

    def upload_signals(self, phase: np.ndarray, amber: np.ndarray) -> None:
        rows = self.sig_phase.shape[0]
        padded_phase = np.zeros((rows, self.B), dtype=np.int64)
        padded_amber = np.zeros((rows, self.B))
        padded_phase[: self.ns] = phase
        padded_amber[: self.ns] = amber
        self.sig_phase.copy_to_device(padded_phase)
        self.sig_amber.copy_to_device(padded_amber)

    def set_rate(self, rate: np.ndarray) -> None:
        self.rate.copy_to_device(np.ascontiguousarray(rate))

    def set_cells(self, rho: np.ndarray, y: np.ndarray, flux: np.ndarray) -> None:
        self.rho.copy_to_device(np.ascontiguousarray(rho))
        self.y.copy_to_device(np.ascontiguousarray(y))
        self.flux.copy_to_device(np.ascontiguousarray(flux))

    def cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.rho.copy_to_host(), self.y.copy_to_host(), self.flux.copy_to_host()

    def queue(self) -> np.ndarray:
        return self.queue_.copy_to_host()

    # Read-outs reduced on the device: each copies back only the (B,), (B, n_links) or
    # (B, n_approaches, 3) numbers it returns, never the cell state.

    def vehicles(self) -> np.ndarray:
        out = cuda.device_array(self.B)
        k_vehicles[_blocks(self.B), THREADS](self.rho, self.queue_, self.d["cell_dx"], out)
        return out.copy_to_host()

    def link_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """(B, n_links) vehicles and sum of speeds (veh m/s) per link."""
        d = self.d
        nl = d["link_first"].shape[0] - 1
        mass, flow = cuda.device_array((nl, self.B)), cuda.device_array((nl, self.B))
        k_link_sums[_blocks(nl * self.B), THREADS](
            self.rho, self.y, self.flux, d["cell_rj"], d["cell_vf"], d["cell_dx"], d["link_first"],
            *self._scalars(),
            mass, flow,
        )
        return mass.copy_to_host().T, flow.copy_to_host().T

    def _device_copy(self, app_cells: np.ndarray) -> Any:
        """The approach cell table on the device, uploaded once (it is fixed per Simulator)."""
        if self._app_cells is None:
            self._app_cells = cuda.to_device(np.ascontiguousarray(app_cells))
        return self._app_cells

    def approach_sums(self, app_cells: np.ndarray) -> np.ndarray:
        """(B, n_approaches, 3): near-stop-line vehicles and speed sum, and queued vehicles."""
        d, cfg = self.d, self._cfg
        n_app = app_cells.shape[0]
        out = cuda.device_array((n_app, self.B, 3))
        if n_app:
            k_approach_sums[_blocks(n_app * self.B), THREADS](
                self.rho, self.y, self.flux, d["cell_rj"], d["cell_vf"], d["cell_dx"],
                self._device_copy(app_cells),
                *self._scalars(), float(cfg.queue_speed_mps),
                float(cfg.queue_min_density), out,
            )
        return out.copy_to_host().transpose(1, 0, 2)

    def counter(self, name: str) -> np.ndarray:
        return self.counters[name].copy_to_host()

    def link_outflow(self) -> np.ndarray:
        return self.link_out.copy_to_host().T.copy()

    def advance(self, n_steps: int, dt: float, dt_last: float) -> None:
        d, cfg, B = self.d, self._cfg, self.B
        dem, wv, vel, phi, gout, gyout = self.cell_scr
        lin, lyin = self.link_scr[:2]
        nc = self.rho.shape[1]
        tau = self._st["tau"]
        wave, alpha, eps_m, eps = self._scalars()
        cell_args = (d["cell_rj"], d["cell_vf"], wave, alpha, eps_m, eps)
        for step in range(n_steps):
            h = dt if step < n_steps - 1 else dt_last
            decay_m, decay_c = math.exp(-h / tau[0]), math.exp(-h / tau[1])
            if cfg.order == 1:
                k_eval[_blocks(nc * B), THREADS](self.rho, self.y, *cell_args, dem, wv, vel, phi)
                self._fluxes(step * dt, h, self.rho)
                k_update[_blocks(nc * B), THREADS](
                    h, self.rho, self.y, self.flux, d["cell_rj"], d["cell_vf"], d["cell_dx"], d["cell_first"],
                    d["cell_link"], wave, alpha, eps_m, eps, decay_m, decay_c, gout, gyout, lin, lyin,
                    self.cell_delay,
                )
            else:
                self._heun_step(step * dt, h, cell_args)
                k_relax[_blocks(nc * B), THREADS](
                    h, self.rho, self.y, self.flux, d["cell_rj"], d["cell_vf"], d["cell_dx"], wave, alpha,
                    eps_m,
                    eps, decay_m, decay_c, self.cell_delay,
                )
            k_tally_delay[_blocks(B), THREADS](h, self.cell_delay, self.queue_, self.counters["delay"])

    def _scalars(self) -> tuple[float, float, float, float]:
        """(wave speed, alpha, motorcycle space weight, eps_density): the kernels' model scalars."""
        cfg = self._cfg
        return (float(cfg.wave_speed_mps), float(cfg.alpha), float(cfg.moto_space_weight),
                float(cfg.eps_density))

    def _evolving(self) -> list[Any]:
        """Flat views of everything one Euler stage changes: cells, queues, counters."""
        counters = [self.counters["entered"], self.counters["exited"], self.link_out]
        arrays = [self.rho, self.y, self.queue_, *counters]
        return [a.reshape(a.size) for a in arrays]

    def _heun_step(self, t_local: float, h: float, cell_args: tuple) -> None:
        """Order 2 transport, as the CPU kernel does it: save, two Euler stages on MUSCL faces,
        average with the saved state (SSP-RK2)."""
        d, B = self.d, self.B
        dem, wv, vel, phi, gout, gyout = self.cell_scr
        lin, lyin = self.link_scr[:2]
        rho_l, y_l, rho_r, y_r = self.face_scr
        nc = self.rho.shape[1]
        for now, saved in zip(self._evolving(), self.saved, strict=True):
            k_copy[_blocks(now.size), THREADS](now, saved)
        for stage in range(2):
            k_reconstruct[_blocks(nc * B), THREADS](
                self.rho, self.y, d["cell_first"], d["cell_last"], cell_args[-2], cell_args[-1], rho_l, y_l,
                rho_r, y_r,
            )
            k_eval[_blocks(nc * B), THREADS](rho_r, y_r, *cell_args, dem, wv, vel, phi)
            k_face_speed[_blocks(nc * B), THREADS](rho_l, y_l, *cell_args, vel)
            self._fluxes(t_local, h, rho_l)
            k_transport[_blocks(nc * B), THREADS](
                h, self.rho, self.y, self.flux, 0.0 if stage == 0 else 1.0, 0.5, d["cell_dx"],
                d["cell_first"],
                d["cell_link"], gout, gyout, lin, lyin,
            )
        for now, saved in zip(self._evolving(), self.saved, strict=True):
            k_average[_blocks(now.size), THREADS](now, saved)

    def _fluxes(self, t_local: float, h: float, rho_recv: Any) -> None:
        """Every flux of one substep from the sending states (dem, wv, phi) and the receiving ones
        (rho_recv at interior interfaces, vel): interfaces, junctions, entries, exits, counters."""
        d, cfg, B = self.d, self._cfg, self.B
        wave, alpha, eps_m, _ = self._scalars()
        c_bound = float(self._st["c_bound"])
        dem, wv, vel, phi, gout, gyout = self.cell_scr
        lin, lyin, sd, sdw, sdp = self.link_scr
        nl = lin.shape[1]
        n_int, n_jn = d["interior"].shape[0], d["jn_mov_ptr"].shape[0] - 1
        if n_int:
            k_interior[_blocks(n_int * B), THREADS](
                d["interior"], rho_recv, d["cell_rj"], d["cell_vf"], wave, eps_m, c_bound, dem, wv, vel, phi,
                gout, gyout,
            )
        k_zero_links[_blocks(nl * B), THREADS](lin, lyin)
        if n_jn:
            k_junctions[_blocks(n_jn * B), THREADS](
                t_local, self.rho, d["cell_rj"], d["cell_vf"], wave, eps_m, c_bound, dem, wv, vel, phi, gout,
                gyout, lin, lyin, *(d[name] for name in physics.JUNCTION_ARRAYS), self.sig_phase,
                self.sig_amber,
                float(cfg.left_gap_s), float(cfg.left_followup_s), sd, sdw, sdp, *self.node_scr,
            )
        k_boundaries[_blocks(B), THREADS](
            h, self.rho, d["cell_rj"], d["cell_vf"], wave, alpha, eps_m, c_bound, dem, wv, vel, gout,
            gyout, lin, lyin, d["entry_link"], d["exit_link"], d["exit_cap"],
            d["link_first"], self.queue_, self.rate, self.counters["entered"], self.counters["exited"],
            self.link_out,
        )


KERNELS = (k_eval, k_interior, k_zero_links, k_junctions, k_boundaries, k_update, k_tally_delay, k_reset,
           k_reconstruct, k_face_speed, k_transport, k_relax, k_copy, k_average, k_vehicles, k_link_sums,
           k_approach_sums)


def cache_hits() -> int:
    """How many kernels this process loaded from numba's on-disk cache instead of compiling."""
    return sum(sum(getattr(k, "_cache_hits", {}).values()) for k in KERNELS)
