"""Small pieces the log analysis shares: a bounded list and None-tolerant arithmetic.

A log may say anything, so every number read from it may be missing; these helpers pass None
through instead of raising.
"""

from __future__ import annotations

import math
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
    """A finite number as float, else None (text, bools, NaN, infinities, huge ints)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        result = float(value)
    except OverflowError:
        return None
    return result if math.isfinite(result) else None


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


# What an event's fields may hold, for `clean_event`: a log may say anything (a field "big" where
# a byte count belongs, 1e999, NaN, JSON nested 100,000 deep), and the analysis and the report
# must read such a log with a note, never a traceback.
TEXT_FIELDS = frozenset({"event", "phase", "status", "error", "controller", "path", "category", "message",
                         "run_id", "commit", "backend", "device", "key", "check", "detail", "source",
                         "lib_hash", "name", "requested", "reason"})
NUMERIC_FIELDS = frozenset({"t", "seconds", "bytes", "cells", "links", "nodes", "scenarios", "n", "steps",
                            "total", "steps_per_s", "builds", "count", "episodes", "updates", "launches",
                            "decisions", "launches_per_decision"})
MAX_DEPTH = 6
MAX_TEXT = 2000


def clean_event(record: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The event with every field of a usable type, and the names of fields that were not.

    Text fields become text; numeric ones (and all but `controller` in eval_result, whose fields
    are metrics) finite numbers or None; other values keep their JSON shape down to MAX_DEPTH."""
    metrics = record.get("event") == "eval_result"
    cleaned: dict[str, Any] = {}
    bad = []
    for key, value in record.items():
        key = str(key)[:100]
        if key in TEXT_FIELDS:
            text = isinstance(value, str)
            cleaned[key] = value[:MAX_TEXT] if text else repr(_plain(value, 2))[:200]
        elif key in NUMERIC_FIELDS or metrics:
            cleaned[key] = value if type(value) is int and abs(value) < 2**63 else number(value)
            text = cleaned[key] is not None or value is None
        else:
            cleaned[key], text = _plain(value, MAX_DEPTH), True
        if not text:
            bad.append(key)
    return cleaned, bad


def _plain(value: Any, depth: int) -> Any:
    """`value` with non-finite floats as None and anything deeper than `depth` as '...'."""
    if isinstance(value, float):
        return number(value)
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if not isinstance(value, (dict, list)):
        return value
    if depth <= 0:
        return "..."
    if isinstance(value, dict):
        return {str(k)[:100]: _plain(v, depth - 1) for k, v in list(value.items())[:200]}
    return [_plain(v, depth - 1) for v in value[:200]]
