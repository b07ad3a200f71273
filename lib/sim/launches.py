"""Kernel launches counted, with the grid sizes launched.

Why: a GPU sits idle when each step launches many small kernels (launch cost dominates) or
launches grids too small to fill the device; both show in these numbers, on every run's
`run_end` (docs/events.md). Each Simulator counts its own (`Simulator.launches`); `TOTAL` adds
up every simulator of the process, for the run. A CPU "launch" is one call of a compiled kernel
and its grid the number of scenario chunks that call advances.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


class LaunchCounter:
    """Launches per kernel name and the grid sizes (blocks) they used."""

    def __init__(self, parent: LaunchCounter | None = None) -> None:
        self.count = 0
        self.by_kernel: Counter[str] = Counter()
        self.grids: Counter[int] = Counter()
        self._parent = parent

    def add(self, kernel: str, blocks: int) -> None:
        self.count += 1
        self.by_kernel[kernel] += 1
        self.grids[int(blocks)] += 1
        if self._parent is not None:
            self._parent.add(kernel, blocks)

    def snapshot(self) -> dict[str, Any]:
        """Plain values: launches, launches per kernel, launches per grid size."""
        return {"launches": self.count, "by_kernel": dict(self.by_kernel), "grids": dict(self.grids)}


TOTAL = LaunchCounter()


def since(before: dict[str, Any]) -> dict[str, Any]:
    """TOTAL's launches after the snapshot `before`: a run's own, in a process that ran others."""
    now = TOTAL.snapshot()
    grids = {g: n - before["grids"].get(g, 0) for g, n in now["grids"].items()}
    return {"launches": now["launches"] - before["launches"], "grids": {g: n for g, n in grids.items() if n}}
