"""Repeated warnings become `warning` events: the first of each category, then one final count.

Why: the earlier system's logs were flooded by thousands of identical lines (Numba's
low-occupancy `NumbaPerformanceWarning` once per small kernel launch, TensorBoard import noise).
Inside `capture_warnings()` every warning is counted by category; the first occurrence of a
category emits `warning` (count 1, its message) and leaving the block emits one `warning` per
category with the total count, so the log says what happened and how often in a few lines.

`NumbaPerformanceWarning` lives in `numba.cuda.core.errors` in the numba-cuda package (Kaggle's
image) and in `numba.core.errors` in numba's built-in CUDA target (this venv); the two are
different classes, so both are looked up and named the same way.

Deprecation warnings raised by other packages' code (Python 3.12's `datetime.utcnow` notice from
jupyter_client was counted 93 times in one Kaggle run) say nothing about the run: they are
dropped, not reported. Those raised from lib/ itself are reported like any other.
"""

from __future__ import annotations

import importlib
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.obs.events import emit

_NUMBA_WARNING_MODULES = ("numba.cuda.core.errors", "numba.core.errors")
LIB_DIR = Path(__file__).resolve().parents[1]
QUIET_ELSEWHERE = (DeprecationWarning, PendingDeprecationWarning)


def says_nothing_about_the_run(category: type[Warning], filename: str) -> bool:
    """A deprecation notice from another package's code (not from lib/)."""
    if not issubclass(category, QUIET_ELSEWHERE):
        return False
    try:
        return not Path(filename).resolve().is_relative_to(LIB_DIR)
    except (OSError, ValueError):
        return True


def numba_performance_warnings() -> tuple[type[Warning], ...]:
    """Every NumbaPerformanceWarning class importable here (none when numba is missing)."""
    found: list[type[Warning]] = []
    for module_name in _NUMBA_WARNING_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        cls = getattr(module, "NumbaPerformanceWarning", None)
        if cls is not None and cls not in found:
            found.append(cls)
    return tuple(found)


def category_name(category: type[Warning]) -> str:
    """A stable label: Numba's performance warnings share one name whichever package raised them."""
    if category in numba_performance_warnings():
        return "NumbaPerformanceWarning"
    return category.__name__


@dataclass
class WarningTally:
    """Counts per category name and the first message of each."""

    counts: Counter[str] = field(default_factory=Counter)
    first: dict[str, str] = field(default_factory=dict)

    def record(self, category: type[Warning], message: Any) -> None:
        name = category_name(category)
        self.counts[name] += 1
        if name not in self.first:
            self.first[name] = str(message)
            emit("warning", category=name, count=1, message=self.first[name])

    def emit_counts(self) -> None:
        for name, count in self.counts.items():
            emit("warning", category=name, count=count, message=self.first[name], final=True)


@contextmanager
def capture_warnings() -> Iterator[WarningTally]:
    """Route every warning raised inside the block to `warning` events (first + final count)."""
    tally = WarningTally()

    def show(message: Any, category: type[Warning], filename: str = "", *_: Any, **__: Any) -> None:
        if not says_nothing_about_the_run(category, filename):
            tally.record(category, message)

    with warnings.catch_warnings():
        # "always": repeats must reach `show` to be counted; only the first is printed.
        warnings.simplefilter("always")
        warnings.showwarning = show
        try:
            yield tally
        finally:
            tally.emit_counts()
