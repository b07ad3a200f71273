"""CPU backend: the whole substep loop of `advance` in one compiled call.

`prange` splits the scenarios into chunks; each chunk runs every substep in lockstep over its own
scenarios (no fork/join per substep), and the innermost loops run over the chunk's scenarios,
which are contiguous in memory ([class][cell][scenario] layout) so LLVM can vectorise them.
The per-cell math is lib/physics.py inlined. Kernels are cached on disk (`cache=True`); numba's
cache tracks this file only, so after editing lib/physics.py delete lib/__pycache__/cpu.*.nbi/nbc
(or touch this file) to force a rebuild.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from numba import njit, prange

from lib import physics

_P = physics.compile_for(njit(inline="always", cache=False))
eval_cell = _P.eval_cell
interior_flux = _P.interior_flux
junction_flow = _P.junction_flow
entry_flow = _P.entry_flow
exit_flow = _P.exit_flow
update_cell = _P.update_cell


@njit(parallel=True, cache=True, fastmath=True)
def advance_kernel(  # noqa: PLR0913
    rho, y, queue, rate, sig_phase, sig_amber, entered, exited, delay, link_out,
    cell_rj, cell_vf, cell_dx, cell_first, cell_link, interior,
    link_first, jn_mov_ptr, jn_out_ptr, jn_out_link, mov_in, mov_out, mov_ratio, mov_signal, mov_phase,
    entry_link, exit_link, exit_cap, kp, creep, tau,
    dem, wv, vel, phi, gout, gyout, lin, lyin, sd, sdw, sdp,
    alpha, gamma, eps, c_bound, dt, dt_last, n_steps, chunk,
):
    """Advance every scenario by n_steps substeps (the last one dt_last long)."""
    n_scen = rho.shape[2]
    n_cells = rho.shape[1]
    n_links = lin.shape[1]
    n_chunks = (n_scen + chunk - 1) // chunk
    for c in prange(n_chunks):
        s0 = c * chunk
        s1 = min(n_scen, s0 + chunk)
        for step in range(n_steps):
            h = dt if step < n_steps - 1 else dt_last
            t_local = step * dt
            decay_m = math.exp(-h / tau[0])
            decay_c = math.exp(-h / tau[1])
            for i in range(n_cells):
                for s in range(s0, s1):
                    eval_cell(i, s, rho, y, cell_rj, cell_vf, kp, creep, alpha, gamma, eps, dem, wv, vel, phi)
            for q in range(interior.shape[0]):
                i = interior[q]
                for s in range(s0, s1):
                    interior_flux(i, s, rho, cell_rj, kp, gamma, c_bound, dem, wv, vel, phi, gout, gyout)
            for lk in range(n_links):
                for k in range(2):
                    for s in range(s0, s1):
                        lin[k, lk, s] = 0.0
                        lyin[k, lk, s] = 0.0
            for n in range(jn_mov_ptr.shape[0] - 1):
                for s in range(s0, s1):
                    junction_flow(
                        n, s, t_local, rho, cell_rj, kp, gamma, c_bound, dem, wv, vel, phi, gout, gyout,
                        lin, lyin, jn_mov_ptr, jn_out_ptr, jn_out_link, mov_in, mov_out, mov_ratio,
                        mov_signal, mov_phase, sig_phase, sig_amber, link_first, sd, sdw, sdp,
                    )
            for e in range(entry_link.shape[0]):
                for s in range(s0, s1):
                    entered[s] += entry_flow(
                        e, s, h, rho, cell_rj, cell_vf, kp, creep, alpha, gamma, c_bound, vel, lin, lyin,
                        entry_link, link_first, queue, rate,
                    )
            for x in range(exit_link.shape[0]):
                for s in range(s0, s1):
                    exited[s] += exit_flow(x, s, h, dem, wv, gout, gyout, exit_link, exit_cap, link_first)
            for lk in range(n_links):
                last = link_first[lk + 1] - 1
                for s in range(s0, s1):
                    link_out[lk, s] += h * (gout[0, last, s] + gout[1, last, s])
            for i in range(n_cells):
                for s in range(s0, s1):
                    delay[s] += update_cell(
                        i, s, h, rho, y, cell_rj, cell_vf, cell_dx, cell_first, cell_link, kp, creep,
                        alpha, gamma, decay_m, decay_c, gout, gyout, lin, lyin,
                    )
            for e in range(entry_link.shape[0]):
                for s in range(s0, s1):
                    delay[s] += h * (queue[0, e, s] + queue[1, e, s])


def cache_hits() -> int:
    """How many kernel signatures this process loaded from numba's on-disk cache."""
    return int(sum(advance_kernel.stats.cache_hits.values()))


class CpuEngine:
    """State and scratch buffers of a Simulator on the host, advanced by the compiled kernels."""

    def __init__(self, sim: Any) -> None:
        st, B = sim._static, sim.n_scenarios
        nc, nl = len(st["cell_rj"]), len(st["link_first"]) - 1
        ne = len(st["entry_link"])
        self._cfg = sim.config
        self._st = st
        self.rho = np.zeros((2, nc, B))
        self.y = np.zeros((2, nc, B))
        self.queue_ = np.zeros((2, ne, B))
        self.rate = np.zeros((2, ne, B))
        self.counters = {name: np.zeros(B) for name in ("entered", "exited", "delay")}
        self.link_out = np.zeros((nl, B))
        self.sig_phase = np.zeros((len(sim.network.signals), B), dtype=np.int64)
        self.sig_amber = np.zeros((len(sim.network.signals), B))
        self.scratch = [np.zeros((2, nc, B)) for _ in range(6)] + [np.zeros((2, nl, B)) for _ in range(5)]

    @property
    def nbytes(self) -> int:
        arrays = [self.rho, self.y, self.queue_, self.rate, self.sig_phase, self.sig_amber, self.link_out]
        arrays += self.scratch
        arrays += list(self.counters.values())
        arrays += [v for v in self._st.values() if isinstance(v, np.ndarray)]
        return int(sum(a.nbytes for a in arrays))

    def reset(self, idx: np.ndarray, rho0: np.ndarray, y0: np.ndarray) -> None:
        self.rho[:, :, idx] = rho0[:, :, None]
        self.y[:, :, idx] = y0[:, :, None]
        self.queue_[:, :, idx] = 0.0
        for c in self.counters.values():
            c[idx] = 0.0
        self.link_out[:, idx] = 0.0

    def upload_signals(self, phase: np.ndarray, amber: np.ndarray) -> None:
        self.sig_phase[...] = phase
        self.sig_amber[...] = amber

    def set_rate(self, rate: np.ndarray) -> None:
        self.rate[...] = rate

    def set_cells(self, rho: np.ndarray, y: np.ndarray) -> None:
        self.rho[...] = rho
        self.y[...] = y

    def cells(self) -> tuple[np.ndarray, np.ndarray]:
        return self.rho, self.y

    def queue(self) -> np.ndarray:
        return self.queue_

    def counter(self, name: str) -> np.ndarray:
        return self.counters[name].copy()

    def link_outflow(self) -> np.ndarray:
        return self.link_out.T.copy()

    def advance(self, n_steps: int, dt: float, dt_last: float) -> None:
        cfg = self._cfg
        n_chunks = -(-self.rho.shape[2] // cfg.cpu_chunk)
        threads = numba.get_num_threads()
        # Waking idle pool threads costs 10+ ms per call on a busy 2-core machine (more than a 30 s
        # advance of one scenario takes), so use no more threads than there are chunks.
        numba.set_num_threads(max(1, min(threads, n_chunks)))
        try:
            self._launch(n_steps, dt, dt_last)
        finally:
            numba.set_num_threads(threads)

    def _launch(self, n_steps: int, dt: float, dt_last: float) -> None:
        st, cfg = self._st, self._cfg
        advance_kernel(
            self.rho, self.y, self.queue_, self.rate, self.sig_phase, self.sig_amber,
            self.counters["entered"], self.counters["exited"], self.counters["delay"], self.link_out,
            st["cell_rj"], st["cell_vf"], st["cell_dx"], st["cell_first"], st["cell_link"], st["interior"],
            st["link_first"], st["jn_mov_ptr"], st["jn_out_ptr"], st["jn_out_link"], st["mov_in"],
            st["mov_out"], st["mov_ratio"], st["mov_signal"], st["mov_phase"],
            st["entry_link"], st["exit_link"], st["exit_cap"], st["kp"], st["creep"], st["tau"],
            *self.scratch,
            float(cfg.alpha), int(cfg.gamma), float(cfg.eps_density), float(st["c_bound"]),
            float(dt), float(dt_last), int(n_steps), int(cfg.cpu_chunk),
        )
