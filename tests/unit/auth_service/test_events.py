"""Auth service domain: the audit event store (dedupe by id, indexed filters, pages, retention,
the move of events older versions kept in the KV backend)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.unit.auth_service.conftest import START, FakeClock

from wicket.audit.events import AuditEvent, EventType, format_time, user_login
from wicket.auth.events import EventQuery, Position, decode_cursor, encode_cursor
from wicket.auth.events_legacy import import_kv_events
from wicket.auth.events_sqlite import SQLiteEventStore
from wicket.backend.sqlite import SQLiteBackend
from wicket.errors import BadParameter


def make(kind: EventType, user: str, minutes: float, **fields: Any) -> dict[str, Any]:
    event = AuditEvent(type=kind, user=user, time=START + timedelta(minutes=minutes)).to_json()
    event.update(fields)
    return event


@pytest.fixture
async def events(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SQLiteEventStore]:
    store = await SQLiteEventStore.open(tmp_path / "events.sqlite", clock=clock)
    try:
        yield store
    finally:
        await store.close()


async def search(store: SQLiteEventStore, **filters: Any) -> list[dict[str, Any]]:
    return (await store.search(EventQuery(**filters))).events


async def test_append_dedupes_by_id(events: SQLiteEventStore) -> None:
    batch = [make(EventType.SESSION_START, "alice", m) for m in range(3)]
    first = await events.append(batch)
    assert (first.accepted, first.duplicates) == (3, 0)
    again = await events.append([*batch, make(EventType.SESSION_END, "alice", 4)])
    assert (again.accepted, again.duplicates) == (1, 3)
    stored = await search(events)
    assert [item["id"] for item in stored] == [item["id"] for item in batch] + [stored[-1]["id"]]
    assert await events.count() == 4


async def test_search_filters_and_order(events: SQLiteEventStore) -> None:
    batch = [
        make(EventType.SESSION_START, "alice", 90, session_id="s1", db_service="docdb"),
        make(EventType.SESSION_QUERY, "alice", 91, session_id="s1", db_service="docdb"),
        make(EventType.SESSION_QUERY_FAILED, "alice", 92, session_id="s1", db_service="docdb"),
        make(EventType.SESSION_START, "bob", 30, session_id="s2", db_service="other"),
        user_login(
            cluster="c", user="bob", success=True, now=START + timedelta(minutes=200)
        ).to_json(),
        make(EventType.SESSION_END, "alice", 300, session_id="s1", db_service="docdb"),
    ]
    await events.append(list(reversed(batch)))  # arrival order does not matter
    times = [item["time"] for item in await search(events)]
    assert times == sorted(times) and len(times) == 6
    assert [e["type"] for e in await search(events, user="bob")] == [
        "db.session.start",
        "user.login",
    ]
    assert len(await search(events, type="db.session.query")) == 1  # exact ...
    assert len(await search(events, type="db.session.*")) == 5  # ... or a family
    assert len(await search(events, type="db.session.query.*")) == 1
    assert len(await search(events, type="db.*", user="alice")) == 4  # family + equality
    assert len(await search(events, session_id="s1")) == 4
    assert [e["user"] for e in await search(events, db_service="other")] == ["bob"]
    assert await search(events, session_id="s1", user="bob") == []
    window = await search(
        events, since=START + timedelta(minutes=91), until=START + timedelta(minutes=200)
    )
    assert [e["type"] for e in window] == ["db.session.query", "db.session.query.failed"]
    newest = await search(events, limit=2)
    assert [e["type"] for e in newest] == ["user.login", "db.session.end"]
    with pytest.raises(BadParameter):
        EventQuery(limit=0)
    start = await events.session_start("s1")
    assert start is not None and start["type"] == "db.session.start"
    assert await events.session_start("s1", server_id="someone-else") is None


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"type": "db.session.query"},
        {"type": "db.session.*"},
        {"user": "u1"},
        {"type": "db.session.*", "user": "u2"},
        {"db_service": "db1", "type": "db.session.end"},
    ],
)
async def test_pages_cover_every_match_once_with_equal_times(
    events: SQLiteEventStore, filters: dict[str, Any]
) -> None:
    kinds = [EventType.SESSION_START, EventType.SESSION_QUERY, EventType.SESSION_END]
    batch = [  # many events share one timestamp: the order must still be total
        make(kinds[n % 3], f"u{n % 4}", n // 50, db_service=f"db{n % 2}", n=n) for n in range(600)
    ]
    for start in range(0, len(batch), 100):
        await events.append(batch[start : start + 100])
    everything = await search(events, **filters, limit=10_000)
    expected = [
        event
        for event in batch
        if all(
            (event["type"].startswith(value[:-1]) if value.endswith(".*") else event[name] == value)
            for name, value in filters.items()
        )
    ]
    assert [e["n"] for e in everything] == [e["n"] for e in expected]  # (time, arrival) order
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        page = await events.search(EventQuery(**filters, limit=37, cursor=cursor))
        assert len(page.events) <= 37
        pages.insert(0, page.events)
        cursor = page.next_cursor
        if cursor is None:
            break
        assert len(page.events) == 37
    walked = [e["n"] for page in pages for e in page]
    assert walked == [e["n"] for e in expected]  # no gap, no repeat, oldest first


async def test_a_search_decodes_only_what_it_returns(events: SQLiteEventStore) -> None:
    for start in range(0, 3000, 500):
        await events.append(
            [make(EventType.SESSION_QUERY, "alice", n / 100) for n in range(start, start + 500)]
        )
    await events.append([make(EventType.SESSION_END, "bob", 1)])
    before = events.stats.decoded
    page = await events.search(EventQuery(limit=1))
    assert len(page.events) == 1 and page.next_cursor is not None
    assert events.stats.decoded - before == 1
    assert len((await events.search(EventQuery(user="bob", limit=1))).events) == 1
    assert events.stats.decoded - before == 2
    queries = [
        EventQuery(limit=1),
        EventQuery(user="alice", limit=1, cursor=page.next_cursor),
        EventQuery(type="db.session.*", limit=1),
        EventQuery(type="db.session.end", since=START, limit=1),
        EventQuery(session_id="s", type="db.*", limit=1),
    ]
    for query in queries:
        for plan in events.query_plan(query):
            assert "USING" in plan and "INDEX" in plan, plan  # an index walk ...
            assert "TEMP B-TREE" not in plan, plan  # ... in order: LIMIT stops it early


def test_cursors_are_opaque_and_checked() -> None:
    position = Position(format_time(START), 42)
    assert decode_cursor(encode_cursor(position)) == position
    for bad in ["", "x", "bm90IGpzb24", encode_cursor(position) + "A" * 300]:
        with pytest.raises(BadParameter, match="invalid cursor"):
            EventQuery(cursor=bad)


async def test_retention_deletes_by_time(tmp_path: Path, clock: FakeClock) -> None:
    store = await SQLiteEventStore.open(
        tmp_path / "r.sqlite", clock=clock, retention=timedelta(days=30)
    )
    try:
        await store.append([make(EventType.SESSION_START, "alice", 0)])
        late = make(EventType.SESSION_START, "bob", -60 * 24 * 20)  # spooled for 20 days
        await store.append([late])
        clock.advance(timedelta(days=29))
        assert await store.sweep() == 0
        assert len(await search(store)) == 2
        clock.advance(timedelta(days=2))
        assert await store.sweep() == 2  # kept 30 days after receipt, not after its time
        assert await search(store) == []
    finally:
        await store.close()
    with pytest.raises(BadParameter):
        await SQLiteEventStore.open(tmp_path / "r.sqlite", retention=timedelta(0))


async def test_invalid_batch_stores_nothing(events: SQLiteEventStore) -> None:
    good = make(EventType.SESSION_START, "alice", 1)
    with pytest.raises(BadParameter):
        await events.append([good, {"type": "db.session.start", "id": "x", "time": "now"}])
    assert await search(events) == []


async def test_events_survive_a_reopen(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "e.sqlite"
    store = await SQLiteEventStore.open(path, clock=clock)
    event = make(EventType.SESSION_START, "alice", 1)
    await store.append([event])
    await store.close()
    store = await SQLiteEventStore.open(path, clock=clock)
    try:
        assert [e["id"] for e in await search(store)] == [event["id"]]
        assert (await store.append([event])).duplicates == 1
    finally:
        await store.close()


async def test_events_of_older_versions_move_from_the_backend(
    events: SQLiteEventStore, backend: SQLiteBackend
) -> None:
    old = [make(EventType.SESSION_QUERY, "alice", n) for n in range(1200)]
    for event in old:  # how Wicket before the event store kept them
        key = f"/events/{event['time']}-{event['id']}"
        await backend.put(key, json.dumps(event).encode())
    await backend.put("/events/broken", b"{not json")
    already = old[0]
    await events.append([already])
    assert await import_kv_events(backend, events) == 1201
    assert await backend.list_prefix("/events/") == []
    assert await events.count() == 1200
    stored = await search(events, limit=10_000)
    assert [e["id"] for e in stored] == [e["id"] for e in old]
    assert await import_kv_events(backend, events) == 0  # once: the prefix is empty now
