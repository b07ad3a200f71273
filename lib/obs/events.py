"""The only writer of `[event]` lines (format: docs/events.md).

A run prints its notable moments as `[event] {json}` lines on stdout, flushed at once, so that a
log cut off mid-run still parses up to its last whole line and `fetch_logs.py` can rebuild the
run's timeline. `t` counts seconds from `start_clock()` (called by the run at its start; the
import time of this module before that) on a monotonic clock.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

PREFIX = "[event] "

_t0 = time.monotonic()
_stream: TextIO | None = None
_copies: list[TextIO] = []


def start_clock() -> None:
    """Make `t` count from now: called once when a run starts."""
    global _t0
    _t0 = time.monotonic()


def elapsed() -> float:
    return time.monotonic() - _t0


def set_stream(stream: TextIO | None) -> None:
    """Send events to `stream` instead of sys.stdout (None restores stdout); used by tests."""
    global _stream
    _stream = stream


def emit(event: str, **keys: Any) -> dict[str, Any]:
    """Print one event line and return the record that was printed."""
    record = {"event": event, "t": round(elapsed(), 3), **keys}
    line = PREFIX + json.dumps(jsonable(record), allow_nan=False)
    stream = _stream if _stream is not None else sys.stdout
    for sink in (stream, *_copies):
        sink.write(line + "\n")
        sink.flush()
    return record


@contextlib.contextmanager
def copy_to(path: Path) -> Iterator[Path]:
    """Inside the block every event is also appended to `path`: a run made by the library or a
    benchmark leaves a log in its folder that fetch_logs.py reads, as a notebook run leaves run.log."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as sink:
        _copies.append(sink)
        try:
            yield path
        finally:
            _copies.remove(sink)


def parse_line(line: str) -> dict[str, Any] | None:
    """The event of one log line, or None when the line is not a well-formed event."""
    start = line.find(PREFIX)
    if start != 0:
        return None
    try:
        record = json.loads(line[len(PREFIX) :])
    except (json.JSONDecodeError, RecursionError):  # RecursionError: nested too deep to parse
        return None
    if not isinstance(record, dict) or "event" not in record:
        return None
    return record


def jsonable(value: Any) -> Any:
    """Plain (strict) JSON types: numpy scalars and arrays become Python ones, NaN and inf become None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
