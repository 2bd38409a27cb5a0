"""Locks: targets, matching, expiry, the refusal text and the stored resource."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.unit.auth_service.conftest import FakeClock

from wicket.auth.locks import Lock, Locked, LockService, first_matching
from wicket.backend.sqlite import SQLiteBackend
from wicket.errors import BadParameter, NotFound


@pytest.fixture
def locks(backend: SQLiteBackend, clock: FakeClock) -> LockService:
    return LockService(backend, clock=clock)


async def test_a_user_lock_stops_that_user_only(locks: LockService) -> None:
    lock = await locks.create(user="bob", message="incident 42", created_by="wicket-admin")
    with pytest.raises(Locked) as refused:
        await locks.check(user="bob", roles=["access"], database="prod")
    assert refused.value.lock == lock
    assert "incident 42" in str(refused.value) and lock.id in str(refused.value)
    await locks.check(user="alice", roles=["access"], database="prod")


async def test_role_and_db_locks_match_what_they_name(locks: LockService) -> None:
    await locks.create(role="dev")
    await locks.create(db="prod")
    with pytest.raises(Locked):
        await locks.check(user="carol", roles=["access", "dev"])
    with pytest.raises(Locked):
        await locks.check(user="dave", roles=["access"], database="prod")
    await locks.check(user="dave", roles=["access"], database="staging")
    await locks.check(user="dave", roles=["access"])  # a db lock needs a database


async def test_expiry_ends_a_lock(locks: LockService, clock: FakeClock) -> None:
    lock = await locks.create(user="bob", ttl=timedelta(minutes=5))
    assert [found.id for found in await locks.list()] == [lock.id]
    clock.advance(timedelta(minutes=5))
    assert await locks.list() == []
    await locks.check(user="bob", roles=[])
    with pytest.raises(NotFound):
        await locks.get(lock.id)


async def test_delete_restores_access(locks: LockService) -> None:
    lock = await locks.create(user="bob")
    assert (await locks.delete(lock.id)).id == lock.id
    await locks.check(user="bob", roles=[])
    with pytest.raises(NotFound):
        await locks.delete(lock.id)


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"user": "bob", "role": "dev"},
        {"user": "../etc"},
        {"user": "bob", "ttl": timedelta(0)},
        {"user": "bob", "ttl": timedelta(hours=1), "expires": None, "message": "x" * 2000},
    ],
)
async def test_bad_locks_are_refused(locks: LockService, arguments: dict[str, object]) -> None:
    with pytest.raises(BadParameter):
        await locks.create(**arguments)  # type: ignore[arg-type]


async def test_resource_round_trip(locks: LockService, clock: FakeClock) -> None:
    lock = await locks.create(db="prod", message="maintenance", ttl=timedelta(hours=1))
    again = Lock.from_resource(lock.to_resource())
    assert again == lock
    assert first_matching([again], user="x", roles=[], database="prod", now=clock.now) == lock
    with pytest.raises(BadParameter, match=r"spec\.target"):
        Lock.from_resource({**lock.to_resource(), "spec": {"target": {}}})
