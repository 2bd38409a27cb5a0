"""The `harness` fixture: a fresh backend of each kind the conformance suite runs against."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from tests.unit.backend.conformance import FakeClock, Harness

from wicket.backend.base import Backend
from wicket.backend.sqlite import SQLiteBackend

WATCH_QUEUE_SIZE = 16
SWEEP_INTERVAL = 0.02


async def open_sqlite(directory: Path, clock: FakeClock) -> Backend:
    """A SQLite backend in a fresh file, sweeping often, with a small watch queue."""
    return await SQLiteBackend.open(
        directory / "state" / "backend.sqlite",
        clock=clock,
        sweep_interval=SWEEP_INTERVAL,
        watch_queue_size=WATCH_QUEUE_SIZE,
    )


# A PostgreSQL backend joins the suite by adding an entry here.
BACKEND_FACTORIES: dict[str, Callable[[Path, FakeClock], Awaitable[Backend]]] = {
    "sqlite": open_sqlite,
}


@pytest.fixture(params=sorted(BACKEND_FACTORIES))
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    """A fresh backend on a movable clock; closed after the test."""
    clock = FakeClock()
    backend = await BACKEND_FACTORIES[request.param](tmp_path, clock)
    yield Harness(backend, clock, WATCH_QUEUE_SIZE)
    await backend.close()
