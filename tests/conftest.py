"""Shared fixtures."""

from __future__ import annotations

import io

import pytest

from lib import events, pool


@pytest.fixture
def quiet_pool():
    """A fresh simulator pool, with its event lines kept off the test output."""
    pool.reset_pool()
    events.set_stream(io.StringIO())
    yield
    events.set_stream(None)
    pool.reset_pool()
