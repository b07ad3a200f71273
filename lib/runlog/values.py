"""Small pieces the log analysis shares: a bounded list and None-tolerant arithmetic.

A log may say anything, so every number read from it may be missing; these helpers pass None
through instead of raising.
"""

from __future__ import annotations

from typing import Any

MAX_ITEMS = 10_000

# A phase as the analysis sees it: (name, start s, end s, still open at the end of the log).
Interval = tuple[str, float, float, bool]


class Bounded(list):
    """A list that keeps its first MAX_ITEMS items but counts every item added (bounded memory)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def add(self, item: Any) -> None:
        self.total += 1
        if len(self) < MAX_ITEMS:
            self.append(item)


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def number_text(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def difference(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def rounded(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None
