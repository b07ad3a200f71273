"""Shared fixtures."""

from __future__ import annotations

import io
from typing import Any

import pytest

from lib.obs import events
from lib.rl import pool


class EventLog:
    """The `[event]` lines printed while a test ran, parsed; `log("name")` keeps one event's."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def __call__(self, name: str | None = None) -> list[dict[str, Any]]:
        records = [r for r in map(events.parse_line, self.stream.getvalue().splitlines()) if r]
        return records if name is None else [r for r in records if r["event"] == name]


@pytest.fixture
def pool_events():
    """A fresh simulator pool (as in a new process), and the event lines printed meanwhile."""
    pool.reset_pool()
    log = EventLog()
    events.set_stream(log.stream)
    yield log
    events.set_stream(None)
    pool.reset_pool()
