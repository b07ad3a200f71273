"""Will a Simulator fit? An estimate of its memory, checked before anything is allocated.

Why: the simulator's arrays grow with cells x scenarios, and an input that is merely large (a
million scenarios, a network of tiny cells) used to be found out by the kernel's OOM killer
minutes later, after the machine had been swapping. Refusing what would not fit in half of the
machine (the rest is left to torch, the replay buffer and the system) turns that into an
immediate error that says which number to lower.
"""

from __future__ import annotations

import os
from typing import Any

# Measured with tracemalloc (order 1 and 2, B = 2048, the corridor): 35-37 bytes per cell and
# scenario on the host; the margin covers the CUDA engine's device copies and the readouts.
BYTES_PER_CELL_SCENARIO = 64
BYTES_PER_LINK_SCENARIO = 256  # per-link and per-signal state, demand and counters
BYTES_PER_CELL = 128  # the static per-cell arrays, shared by all scenarios
FRACTION = 0.5


def estimate_bytes(n_cells: int, n_links: int, n_scenarios: int) -> int:
    per_scenario = n_cells * BYTES_PER_CELL_SCENARIO + n_links * BYTES_PER_LINK_SCENARIO
    return n_scenarios * per_scenario + n_cells * BYTES_PER_CELL


def machine_bytes(backend: str) -> float:
    """The memory the arrays go to: the host's RAM, or the GPU's for the CUDA backend (numba's CUDA
    simulator reports an unbounded device: infinity)."""
    if backend == "cuda":
        from numba import cuda

        return float(cuda.current_context().get_memory_info().total)
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_fits(network: Any, n_scenarios: int, backend: str) -> None:
    """Raise MemoryError naming the sizes and the fix when the Simulator would need more than
    half of the machine; the call costs no allocation."""
    need = estimate_bytes(network.n_cells, network.n_links, n_scenarios)
    have = machine_bytes(backend)
    if need > FRACTION * have:
        raise MemoryError(
            f"a Simulator of {n_scenarios} scenarios on {network.n_cells} cells would need about "
            f"{need / 2**30:.1f} GiB, more than half of this machine's {have / 2**30:.1f} GiB "
            f"({'GPU' if backend == 'cuda' else 'RAM'}): lower n_scenarios (n_envs, eval_episodes) or "
            "use longer cells (cell_length_m).")
