"""Fixtures for the auth service's domain tests: a real SQLiteBackend and a movable clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from wicket.auth.passwords import Passwords
from wicket.auth.roles import RoleService
from wicket.backend.sqlite import SQLiteBackend

START = datetime(2026, 3, 1, 10, 27, 0, tzinfo=UTC)


class FakeClock:
    """A clock tests move by hand; shared by the backend and the services."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def backend(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SQLiteBackend]:
    opened = await SQLiteBackend.open(tmp_path / "wicket.db", clock=clock, sweep_interval=3600)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def passwords() -> Passwords:
    """Real argon2id, with cheap parameters so tests stay fast."""
    return Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def roles(backend: SQLiteBackend) -> RoleService:
    return RoleService(backend)
