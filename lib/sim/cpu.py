"""CPU backend: the whole substep loop of `advance` in one compiled call per thread.

Layout: every per-scenario array is cut into chunks of W scenarios (SimConfig.cpu_chunk), chunk
first and the W scenarios ("lanes") last: rho[chunk, class, cell, lane]. One chunk runs all its
substeps in lockstep, and every stage loops over cells (or links, movements, entries) with the
lanes innermost; each lane loop is straight-line code over contiguous memory, which LLVM turns
into SIMD instructions. A chunk's arrays and one thread's scratch (about 1 MB at 16 lanes on the
corridor, order 1) stay in the core's L2 cache. Two kernels: `advance_kernel` (first order) and
`advance_kernel2` (SimConfig.order = 2, MUSCL + SSP-RK2); numba compiles the one in use.

Threads: the chunks are split into one contiguous range per thread; the kernel is compiled with
`nogil=True`, so plain Python threads run the ranges in parallel (no numba threading layer, whose
`parallel=True` compilation is slow). One chunk runs on the calling thread alone.
The per-cell math is lib/sim/physics.py inlined. The kernel is cached on disk (`cache=True`) in a
folder keyed by the hash of lib/sim/physics.py and this file (`kernel_cache.source_keyed`).
"""

from __future__ import annotations

import math
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numba import njit
from numba.core.compiler import Compiler

from lib.sim import physics
from lib.sim.kernel_cache import source_keyed

_INLINE = njit(forceinline=True, fastmath=True, error_model="numpy", cache=False)
_P = physics.compile_for(_INLINE)
eval_cell = _P.eval_cell
interior_flux = _P.interior_flux
junction_open = _P.junction_open
stream_open = _P.stream_open
movement_limit = _P.movement_limit
movement_demand = _P.movement_demand
outgoing_supply = _P.outgoing_supply
node_model = _P.node_model
pocket_coupling = _P.pocket_coupling
movement_flow = _P.movement_flow
entry_flow = _P.entry_flow
exit_flow = _P.exit_flow
transport_cell = _P.transport_cell
relax_cell = _P.relax_cell
update_cell = _P.update_cell
reconstruct_cell = _P.reconstruct_cell
face_speed = _P.face_speed
cell_speed = _P.cell_speed


class NoAliasCompiler(Compiler):
    """numba's default pipeline, with `noalias` on the kernel's array arguments.

    Why: without it LLVM must assume that a store to one array (dem, wv, ...) may change any
    other (rho, y, ...), and gives up vectorising the lane loops (measured 4x slower). numba makes
    the same promise for its own `prange` bodies. It is sound because the engine passes arrays that
    are separate allocations, never views of one another."""

    def __init__(self, typingctx, targetctx, library, args, return_type, flags, locals):  # noqa: ANN001, A002
        flags.noalias = True
        super().__init__(typingctx, targetctx, library, args, return_type, flags, locals)


KERNEL = njit(nogil=True, cache=True, fastmath=True, error_model="numpy", pipeline_class=NoAliasCompiler)
# Loop-carrying helpers inlined into the kernels: numba optimises (and vectorises) each function
# on its own before inlining, so they need the kernel's noalias promise too (measured: 2x slower
# per scenario without it). Arrays they receive twice (rho as rho_recv) are only read.
_INLINE_LOOPS = njit(forceinline=True, fastmath=True, error_model="numpy", cache=False,
                     pipeline_class=NoAliasCompiler)


@_INLINE_LOOPS
def fluxes(  # noqa: PLR0913
    t_local, h, rho, rho_recv, vel, queue, rate, sig_phase, sig_amber, entered, exited, link_out,
    cell_rj, cell_vf, cell_dx, interior, link_first, jn_mov_ptr, jn_out_ptr, jn_st_ptr, jn_out_link, mov_in,
    mov_out,
    mov_ratio, mov_signal, mov_phase, mov_stream, mov_yield, mov_yield_share, st_link, st_cap, st_main,
    st_pocket, entry_link, exit_link, exit_cap, dem, wv, phi, gout, gyout, lin, lyin, sd, sdw, sdp,
    st_h, st_q, rsup, rres, alpha, eps_m, wave, c_bound, t_gap, t_follow,
):
    """Every flux of one substep of one chunk, from the sending states (dem, wv, phi) and the
    receiving states (rho_recv, vel) evaluated before: cell interfaces, junctions (each pass of
    physics.junction_flow over all junctions, scenarios innermost; the node model's iterations per
    junction and scenario), entries, exits; and the counters."""
    n_lanes = rho.shape[2]
    for q in range(interior.shape[0]):
        i = interior[q]
        for s in range(n_lanes):
            interior_flux(i, s, rho_recv, cell_rj, cell_vf, wave, eps_m, c_bound, dem, wv, vel, phi, gout,
                          gyout)
    for lk in range(lin.shape[1]):
        for k in range(2):
            for s in range(n_lanes):
                lin[k, lk, s] = 0.0
                lyin[k, lk, s] = 0.0
    for q in range(jn_out_link.shape[0]):
        for s in range(n_lanes):
            junction_open(q, s, jn_out_link, sd, sdw, sdp)
    for u in range(st_link.shape[0]):
        for s in range(n_lanes):
            stream_open(u, s, st_h)
    for m in range(mov_in.shape[0]):
        for s in range(n_lanes):
            movement_limit(m, s, t_local, dem, mov_in, mov_ratio, mov_signal, mov_phase, mov_stream,
                           mov_yield, mov_yield_share, sig_phase, sig_amber, link_first, t_gap, t_follow,
                           gout, gyout, st_h)
    for m in range(mov_in.shape[0]):
        for s in range(n_lanes):
            movement_demand(m, s, dem, wv, phi, cell_vf, mov_in, mov_out, mov_ratio, mov_stream, link_first,
                            st_h, sd, sdw, sdp)
    for q in range(jn_out_link.shape[0]):
        for s in range(n_lanes):
            outgoing_supply(q, s, rho, cell_rj, cell_vf, wave, eps_m, c_bound, vel, jn_out_link,
                            link_first, sd,
                            sdw, sdp, rsup)
    for n in range(jn_mov_ptr.shape[0] - 1):
        for s in range(n_lanes):
            node_model(n, s, dem, jn_mov_ptr, jn_out_ptr, jn_st_ptr, jn_out_link, mov_out, mov_ratio,
                       mov_stream, st_link, st_cap, link_first, st_h, st_q, rsup, rres)
    for u in range(st_link.shape[0]):
        if st_main[u] >= 0:
            for s in range(n_lanes):
                pocket_coupling(u, s, rho, cell_rj, cell_vf, cell_dx, wave, eps_m, link_first, st_link,
                                st_main, st_pocket, st_h)
    for m in range(mov_in.shape[0]):
        for s in range(n_lanes):
            movement_flow(m, s, dem, wv, cell_vf, mov_in, mov_out, mov_ratio, mov_stream, link_first, st_h,
                          gout, gyout, lin, lyin)
    for e in range(entry_link.shape[0]):
        for s in range(n_lanes):
            entered[s] += entry_flow(e, s, h, rho, cell_rj, cell_vf, wave, alpha, eps_m, c_bound, vel, lin,
                                     lyin, entry_link, link_first, queue, rate)
    for x in range(exit_link.shape[0]):
        for s in range(n_lanes):
            exited[s] += exit_flow(x, s, h, dem, wv, gout, gyout, exit_link, exit_cap, link_first, eps_m)
    for lk in range(link_out.shape[0]):
        last = link_first[lk + 1] - 1
        for s in range(n_lanes):
            link_out[lk, s] += h * (gout[0, last, s] + gout[1, last, s])


@source_keyed(KERNEL, __file__)
def advance_kernel(  # noqa: PLR0913
    c0, c1, n_steps, dt, dt_last,
    rho_all, y_all, flux_all, queue_all, rate_all, phase_all, amber_all, entered_all, exited_all, delay_all,
    out_all, cell_rj, cell_vf, cell_dx, cell_first, cell_link, interior,
    link_first, jn_mov_ptr, jn_out_ptr, jn_st_ptr, jn_out_link, mov_in, mov_out, mov_ratio, mov_signal,
    mov_phase, mov_stream, mov_yield, mov_yield_share, st_link, st_cap, st_main, st_pocket,
    entry_link, exit_link, exit_cap, tau,
    dem, wv, vel, phi, gout, gyout, lin, lyin, sd, sdw, sdp, st_h, st_q, rsup, rres,
    alpha, eps_m, wave, eps, c_bound, t_gap, t_follow,
):
    """First order: advance chunks c0..c1-1 by n_steps substeps (the last one dt_last long)."""
    n_cells = rho_all.shape[2]
    n_lanes = rho_all.shape[3]
    for c in range(c0, c1):
        rho, y, flux, queue, delay = rho_all[c], y_all[c], flux_all[c], queue_all[c], delay_all[c]
        for step in range(n_steps):
            h = dt if step < n_steps - 1 else dt_last
            decay_m = math.exp(-h / tau[0])
            decay_c = math.exp(-h / tau[1])
            for i in range(n_cells):
                for s in range(n_lanes):
                    eval_cell(i, s, rho, y, cell_rj, cell_vf, wave, alpha, eps_m, eps, dem, wv, vel, phi)
            fluxes(step * dt, h, rho, rho, vel, queue, rate_all[c], phase_all[c], amber_all[c],
                   entered_all[c], exited_all[c], out_all[c], cell_rj, cell_vf, cell_dx, interior, link_first,
                   jn_mov_ptr, jn_out_ptr, jn_st_ptr, jn_out_link, mov_in, mov_out, mov_ratio, mov_signal,
                   mov_phase, mov_stream, mov_yield, mov_yield_share, st_link, st_cap, st_main, st_pocket,
                   entry_link, exit_link,
                   exit_cap, dem, wv, phi, gout, gyout, lin, lyin, sd, sdw, sdp, st_h, st_q, rsup, rres,
                   alpha,
                   eps_m, wave, c_bound, t_gap, t_follow)
            for i in range(n_cells):
                for s in range(n_lanes):
                    delay[s] += update_cell(
                        i, s, h, rho, y, flux, cell_rj, cell_vf, cell_dx, cell_first, cell_link, wave, alpha,
                        eps_m, eps, decay_m, decay_c, gout, gyout, lin, lyin,
                    )
            for e in range(entry_link.shape[0]):
                for s in range(n_lanes):
                    delay[s] += h * (queue[0, e, s] + queue[1, e, s])


@_INLINE_LOOPS
def average_into(a, b):
    """a <- (a + b) / 2, elementwise: the last stage of SSP-RK2 (Heun)."""
    flat_a = a.reshape(a.size)
    flat_b = b.reshape(b.size)
    for j in range(flat_a.size):
        flat_a[j] = 0.5 * (flat_a[j] + flat_b[j])


@source_keyed(KERNEL, __file__)
def advance_kernel2(  # noqa: PLR0913
    c0, c1, n_steps, dt, dt_last,
    rho_all, y_all, flux_all, queue_all, rate_all, phase_all, amber_all, entered_all, exited_all, delay_all,
    out_all, cell_rj, cell_vf, cell_dx, cell_first, cell_last, cell_link, interior,
    link_first, jn_mov_ptr, jn_out_ptr, jn_st_ptr, jn_out_link, mov_in, mov_out, mov_ratio, mov_signal,
    mov_phase, mov_stream, mov_yield, mov_yield_share, st_link, st_cap, st_main, st_pocket,
    entry_link, exit_link, exit_cap, tau,
    dem, wv, vel, phi, gout, gyout, lin, lyin, sd, sdw, sdp, st_h, st_q, rsup, rres,
    rho_l, y_l, rho_r, y_r, rho0, y0, queue0, entered0, exited0, out0,
    alpha, eps_m, wave, eps, c_bound, t_gap, t_follow,
):
    """Second order (SimConfig.order = 2): MUSCL faces inside links and SSP-RK2 (Heun) in time:
    u1 = u + h L(u), u <- (u + u1 + h L(u1)) / 2, for the cells and for the entry queues and
    counters alike (so mass stays exact; the recorded outflow is the mean of the two stages');
    then exact relaxation and the delay tally."""
    n_cells = rho_all.shape[2]
    n_lanes = rho_all.shape[3]
    for c in range(c0, c1):
        rho, y, flux, queue, delay = rho_all[c], y_all[c], flux_all[c], queue_all[c], delay_all[c]
        entered, exited, link_out = entered_all[c], exited_all[c], out_all[c]
        for step in range(n_steps):
            h = dt if step < n_steps - 1 else dt_last
            rho0[...] = rho
            y0[...] = y
            queue0[...] = queue
            entered0[...] = entered
            exited0[...] = exited
            out0[...] = link_out
            for stage in range(2):
                for i in range(n_cells):
                    for s in range(n_lanes):
                        reconstruct_cell(i, s, rho, y, cell_first, cell_last, eps_m, eps, rho_l, y_l,
                                         rho_r, y_r)
                for i in range(n_cells):
                    for s in range(n_lanes):
                        eval_cell(i, s, rho_r, y_r, cell_rj, cell_vf, wave, alpha, eps_m, eps, dem, wv,
                                  vel, phi)
                for i in range(n_cells):
                    for s in range(n_lanes):
                        face_speed(i, s, rho_l, y_l, cell_rj, cell_vf, wave, alpha, eps_m, eps, vel)
                fluxes(step * dt, h, rho, rho_l, vel, queue, rate_all[c], phase_all[c], amber_all[c],
                       entered, exited, link_out, cell_rj, cell_vf, cell_dx, interior, link_first, jn_mov_ptr,
                       jn_out_ptr, jn_st_ptr, jn_out_link, mov_in, mov_out, mov_ratio, mov_signal, mov_phase,
                       mov_stream, mov_yield, mov_yield_share, st_link, st_cap, st_main, st_pocket,
                       entry_link, exit_link,
                       exit_cap, dem, wv, phi, gout, gyout, lin, lyin, sd, sdw, sdp, st_h, st_q, rsup, rres,
                       alpha, eps_m, wave, c_bound, t_gap, t_follow)
                keep = 0.0 if stage == 0 else 1.0
                for i in range(n_cells):
                    for s in range(n_lanes):
                        transport_cell(i, s, h, rho, y, flux, keep, 0.5, cell_dx, cell_first, cell_link, gout,
                                       gyout, lin, lyin)
            average_into(rho, rho0)
            average_into(y, y0)
            average_into(queue, queue0)
            average_into(entered, entered0)
            average_into(exited, exited0)
            average_into(link_out, out0)
            decay_m = math.exp(-h / tau[0])
            decay_c = math.exp(-h / tau[1])
            for i in range(n_cells):
                for s in range(n_lanes):
                    delay[s] += relax_cell(i, s, h, rho, y, flux, cell_rj, cell_vf, cell_dx, wave, alpha,
                                           eps_m,
                                           eps, decay_m, decay_c)
            for e in range(entry_link.shape[0]):
                for s in range(n_lanes):
                    delay[s] += h * (queue[0, e, s] + queue[1, e, s])


@source_keyed(KERNEL, __file__)
def approach_kernel(rho_all, y_all, flux_all, cell_rj, cell_vf, cell_dx, app_cells, alpha, eps_m, wave, eps,
                    queue_speed, queue_min, out):
    """Read-out: per chunk, approach and lane the vehicles and their sum of speeds over the cells
    near the stop line, and the vehicles in standing cells (a class present above queue_min
    moving slower than queue_speed) on the whole link: lib/sim/cuda.py's k_approach_sums, in the
    same cell order. app_cells[a] = (first cell of the link, first near the stop line, end)."""
    for c in range(rho_all.shape[0]):
        rho, y, flux = rho_all[c], y_all[c], flux_all[c]
        for a in range(app_cells.shape[0]):
            for s in range(rho.shape[2]):
                out[c, a, 0, s] = 0.0
                out[c, a, 1, s] = 0.0
                out[c, a, 2, s] = 0.0
            for i in range(app_cells[a, 0], app_cells[a, 2]):
                near = 1.0 if i >= app_cells[a, 1] else 0.0
                for s in range(rho.shape[2]):
                    v_m = cell_speed(0, i, s, rho, y, flux, cell_rj, cell_vf, wave, alpha, eps_m, eps)
                    v_c = cell_speed(1, i, s, rho, y, flux, cell_rj, cell_vf, wave, alpha, eps_m, eps)
                    mass = (rho[0, i, s] + rho[1, i, s]) * cell_dx[i]
                    standing = ((rho[0, i, s] > queue_min) & (v_m < queue_speed)) | (
                        (rho[1, i, s] > queue_min) & (v_c < queue_speed))
                    out[c, a, 0, s] += near * mass
                    out[c, a, 1, s] += near * (rho[0, i, s] * v_m + rho[1, i, s] * v_c) * cell_dx[i]
                    out[c, a, 2, s] += mass if standing else 0.0


def cache_hits() -> int:
    """How many kernel signatures this process loaded from numba's on-disk cache."""
    kernels = (advance_kernel, advance_kernel2, approach_kernel)
    return int(sum(sum(k.stats.cache_hits.values()) for k in kernels))


_ARITHMETIC = re.compile(r"^\s+v?(?:add|sub|mul|div|max|min|sqrt|fn?m(?:add|sub)\w*)(pd|sd)\s", re.M)


def instruction_mix() -> dict[str, int]:
    """Double-precision arithmetic instructions in the compiled kernels: packed (SIMD, several
    scenarios per instruction) and scalar. The check that the lane loops really vectorise.
    Needs the kernel compiled in this process: numba keeps no assembly for cached code."""
    if cache_hits():
        raise RuntimeError("instruction_mix() needs a kernel compiled in this process, not loaded from "
                           "numba's cache: run it with NUMBA_CACHE_DIR set to an empty folder.")
    counts = {"packed": 0, "scalar": 0}
    for asm in [*advance_kernel.inspect_asm().values(), *advance_kernel2.inspect_asm().values()]:
        for kind in _ARITHMETIC.findall(asm):
            counts["packed" if kind == "pd" else "scalar"] += 1
    return counts


def cpu_threads() -> int:
    """Cores this process may use (the affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """One shared pool of helper threads; the calling thread always runs a share itself."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(1, cpu_threads() - 1), thread_name_prefix="sim-cpu")
        return _POOL


class CpuEngine:
    """State and scratch buffers of a Simulator on the host, in the chunked layout, advanced by
    the compiled kernel. Every array is its own allocation (the kernel's noalias promise)."""

    def __init__(self, sim: Any) -> None:
        st, B = sim._static, sim.n_scenarios
        nc, nl = len(st["cell_rj"]), len(st["link_first"]) - 1
        ne, ns = len(st["entry_link"]), len(sim.network.signals)
        self._cfg = sim.config
        self._st = st
        self.B = B
        self.launches = sim.launches
        threads = sim.config.cpu_threads or cpu_threads()
        # lanes per chunk: up to cpu_chunk, but narrow enough that every thread gets a chunk
        self.W = max(1, min(sim.config.cpu_chunk, -(-B // threads)))
        self.n_chunks = -(-B // self.W)
        chunked = (self.n_chunks,)
        W = (self.W,)
        self.rho = np.zeros(chunked + (2, nc) + W)
        self.y = np.zeros(chunked + (2, nc) + W)
        self.flux = np.zeros(chunked + (2, nc) + W)
        self.queue_ = np.zeros(chunked + (2, ne) + W)
        self.rate = np.zeros(chunked + (2, ne) + W)
        self.counters = {name: np.zeros(chunked + W) for name in ("entered", "exited", "delay")}
        self.link_out = np.zeros(chunked + (nl,) + W)
        self.ns = ns  # the signal arrays keep one row even without signals (physics.movement_gate)
        self.sig_phase = np.zeros(chunked + (max(ns, 1),) + W, dtype=np.int64)
        self.sig_amber = np.zeros(chunked + (max(ns, 1),) + W)
        self.n_threads = max(1, min(threads, self.n_chunks))
        self.scratch = [self._scratch(nc, nl, ne) for _ in range(self.n_threads)]
        self._jobs: list[tuple[int, int, int]] | None = None
        self._args: dict[int, tuple] = {}

    def _scratch(self, nc: int, nl: int, ne: int) -> list[np.ndarray]:
        """One thread's scratch: cell and link stage arrays, and for order 2 the face states and
        the state at the start of the step (cells, queues, counters)."""
        W = (self.W,)
        n_st = len(self._st["st_link"])
        arrays = [np.zeros((2, nc) + W) for _ in range(6)] + [np.zeros((2, nl) + W) for _ in range(5)]
        arrays += [np.zeros((n_st,) + W) for _ in range(2)] + [np.zeros((nl,) + W) for _ in range(2)]
        if self._cfg.order == 2:
            arrays += [np.zeros((2, nc) + W) for _ in range(6)]
            arrays += [np.zeros((2, ne) + W), np.zeros(W), np.zeros(W), np.zeros((nl,) + W)]
        return arrays

    @property
    def nbytes(self) -> int:
        arrays = [self.rho, self.y, self.flux, self.queue_, self.rate, self.sig_phase, self.sig_amber,
                  self.link_out]
        arrays += [a for per_thread in self.scratch for a in per_thread]
        arrays += list(self.counters.values())
        arrays += [v for v in self._st.values() if isinstance(v, np.ndarray)]
        return int(sum(a.nbytes for a in arrays))

    # ------------------------------------------------------------------ layout

    def _to_chunks(self, a: np.ndarray) -> np.ndarray:
        """(..., B) -> (n_chunks, ..., W), padding lanes past B with zeros."""
        pad = self.n_chunks * self.W - self.B
        a = np.concatenate([a, np.zeros(a.shape[:-1] + (pad,), dtype=a.dtype)], axis=-1) if pad else a
        a = a.reshape(a.shape[:-1] + (self.n_chunks, self.W))
        n = a.ndim  # plain transposes: np.moveaxis costs ~7 us a call in argument checks
        return a.transpose((n - 2, *range(n - 2), n - 1))

    def _from_chunks(self, a: np.ndarray) -> np.ndarray:
        """(n_chunks, ..., W) -> (..., B), a new array."""
        n = a.ndim
        a = a.transpose((*range(1, n - 1), 0, n - 1))
        return a.reshape(a.shape[:-2] + (self.n_chunks * self.W,))[..., : self.B].copy()

    def _lanes(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return idx // self.W, idx % self.W

    # ------------------------------------------------------------------ engine interface

    def reset(self, idx: np.ndarray, rho0: np.ndarray, y0: np.ndarray, flux0: np.ndarray) -> None:
        c, lane = self._lanes(idx)
        self.rho[c, :, :, lane] = rho0
        self.y[c, :, :, lane] = y0
        self.flux[c, :, :, lane] = flux0
        self.queue_[c, :, :, lane] = 0.0
        for counter in self.counters.values():
            counter[c, lane] = 0.0
        self.link_out[c, :, lane] = 0.0

    def upload_signals(self, phase: np.ndarray, amber: np.ndarray) -> None:
        self.sig_phase[:, : self.ns] = self._to_chunks(phase)
        self.sig_amber[:, : self.ns] = self._to_chunks(amber)

    def set_rate(self, rate: np.ndarray) -> None:
        self.rate[...] = self._to_chunks(rate)

    def set_cells(self, rho: np.ndarray, y: np.ndarray, flux: np.ndarray) -> None:
        self.rho[...] = self._to_chunks(rho)
        self.y[...] = self._to_chunks(y)
        self.flux[...] = self._to_chunks(flux)

    def cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rho, y, flux), each (2, n_cells, B): densities, y and each class's last outflow."""
        return self._from_chunks(self.rho), self._from_chunks(self.y), self._from_chunks(self.flux)

    def queue(self) -> np.ndarray:
        return self._from_chunks(self.queue_)

    def counter(self, name: str) -> np.ndarray:
        return self._from_chunks(self.counters[name])

    def link_outflow(self) -> np.ndarray:
        return self._from_chunks(self.link_out).T.copy()

    def approach_sums(self, app_cells: np.ndarray) -> np.ndarray:
        """(B, n_approaches, 3): near-stop-line vehicles and speed sum, and queued vehicles."""
        st, cfg = self._st, self._cfg
        out = np.empty((self.n_chunks, len(app_cells), 3, self.W))
        self.launches.add("approach_kernel", self.n_chunks)
        approach_kernel(self.rho, self.y, self.flux, st["cell_rj"], st["cell_vf"], st["cell_dx"], app_cells,
                        float(cfg.alpha), float(cfg.moto_space_weight), float(cfg.wave_speed_mps),
                        float(cfg.eps_density), float(cfg.queue_speed_mps), float(cfg.queue_min_density), out)
        return self._from_chunks(out).transpose(2, 0, 1)

    def advance(self, n_steps: int, dt: float, dt_last: float) -> None:
        """One launch (counted once, its grid the chunks) split into one range of chunks per thread."""
        self.launches.add("advance_kernel2" if self._cfg.order == 2 else "advance_kernel", self.n_chunks)
        if self._jobs is None:
            bounds = np.linspace(0, self.n_chunks, self.n_threads + 1).round().astype(int)
            pairs = zip(bounds[:-1], bounds[1:], strict=True)
            self._jobs = [(int(a), int(b), t) for t, (a, b) in enumerate(pairs)]
        helpers = [_pool().submit(self._launch, *job, n_steps, dt, dt_last) for job in self._jobs[1:]]
        self._launch(*self._jobs[0], n_steps, dt, dt_last)
        for future in helpers:
            future.result()

    def _launch(self, c0: int, c1: int, thread: int, n_steps: int, dt: float, dt_last: float) -> None:
        (advance_kernel2 if self._cfg.order == 2 else advance_kernel)(
            c0, c1, int(n_steps), float(dt), float(dt_last), *self._kernel_args(thread)
        )

    def _kernel_args(self, thread: int) -> tuple:
        """Every kernel argument after the step counts, built once per thread: the state, static and
        scratch arrays are updated in place, never replaced (saves ~20 us of Python per call)."""
        if thread not in self._args:
            st, cfg = self._st, self._cfg
            cells = (st["cell_rj"], st["cell_vf"], st["cell_dx"], st["cell_first"])
            cells += (st["cell_last"], st["cell_link"]) if cfg.order == 2 else (st["cell_link"],)
            self._args[thread] = (
                self.rho, self.y, self.flux, self.queue_, self.rate, self.sig_phase, self.sig_amber,
                self.counters["entered"], self.counters["exited"], self.counters["delay"], self.link_out,
                *cells, st["interior"], *(st[name] for name in physics.JUNCTION_ARRAYS),
                st["entry_link"], st["exit_link"], st["exit_cap"], st["tau"], *self.scratch[thread],
                float(cfg.alpha), float(cfg.moto_space_weight), float(cfg.wave_speed_mps),
                float(cfg.eps_density),
                float(st["c_bound"]), float(cfg.left_gap_s), float(cfg.left_followup_s),
            )
        return self._args[thread]
