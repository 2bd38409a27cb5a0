"""Auth service domain: the audit event store (dedupe by id, search filters, order, retention)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.unit.auth_service.conftest import START, FakeClock

from wicket.audit.events import AuditEvent, EventType, user_login
from wicket.auth.events import EventStore, event_key
from wicket.backend.sqlite import SQLiteBackend
from wicket.errors import BadParameter


def make(kind: EventType, user: str, minutes: float) -> dict[str, object]:
    return AuditEvent(type=kind, user=user, time=START + timedelta(minutes=minutes)).to_json()


@pytest.fixture
def events(backend: SQLiteBackend, clock: FakeClock) -> EventStore:
    return EventStore(backend, clock=clock)


async def test_append_dedupes_by_id(events: EventStore) -> None:
    batch = [make(EventType.SESSION_START, "alice", m) for m in range(3)]
    first = await events.append(batch)
    assert (first.accepted, first.duplicates) == (3, 0)
    again = await events.append([*batch, make(EventType.SESSION_END, "alice", 4)])
    assert (again.accepted, again.duplicates) == (1, 3)
    stored = await events.search()
    assert [item["id"] for item in stored] == [item["id"] for item in batch] + [stored[-1]["id"]]


async def test_keys_sort_by_time(events: EventStore, backend: SQLiteBackend) -> None:
    event = make(EventType.USER_LOGIN, "bob", 0.5)
    await events.append([event])
    key = event_key(event)
    assert key == f"/events/20260301T102730.000000Z-{event['id']}"
    assert await backend.get(key) is not None


async def test_search_filters_and_order(events: EventStore) -> None:
    batch = [
        make(EventType.SESSION_START, "alice", 90),
        make(EventType.SESSION_QUERY, "alice", 91),
        make(EventType.SESSION_QUERY_FAILED, "alice", 92),
        make(EventType.SESSION_START, "bob", 30),
        user_login(
            cluster="c", user="bob", success=True, now=START + timedelta(minutes=200)
        ).to_json(),
        make(EventType.SESSION_END, "alice", 300),
    ]
    await events.append(list(reversed(batch)))  # arrival order does not matter
    times = [item["time"] for item in await events.search()]
    assert times == sorted(times) and len(times) == 6
    assert [e["type"] for e in await events.search(user="bob")] == [
        "db.session.start",
        "user.login",
    ]
    assert len(await events.search(type="db.session.query")) == 1  # exact ...
    assert len(await events.search(type="db.session.*")) == 5  # ... or a family
    assert len(await events.search(type="db.session.query.*")) == 1
    window = await events.search(
        since=START + timedelta(minutes=91), until=START + timedelta(minutes=200)
    )
    assert [e["type"] for e in window] == ["db.session.query", "db.session.query.failed"]
    newest = await events.search(limit=2)
    assert [e["type"] for e in newest] == ["user.login", "db.session.end"]
    with pytest.raises(BadParameter):
        await events.search(limit=0)


async def test_retention_by_backend_expiry(
    events: EventStore, clock: FakeClock, backend: SQLiteBackend
) -> None:
    await events.append([make(EventType.SESSION_START, "alice", 0)])
    clock.advance(timedelta(days=29))
    assert len(await events.search(since=START - timedelta(days=1))) == 1
    clock.advance(timedelta(days=2))
    await backend.sweep()
    assert await backend.list_prefix("/events/") == []


async def test_invalid_batch_stores_nothing(events: EventStore) -> None:
    good = make(EventType.SESSION_START, "alice", 1)
    with pytest.raises(BadParameter):
        await events.append([good, {"type": "db.session.start", "id": "x", "time": "now"}])
    assert await events.search() == []
