"""Audit layer: the writer never blocks, spools on failure, drains in order, loses nothing."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from wicket.audit.events import AuditEvent, EventType
from wicket.audit.spool import Spool
from wicket.audit.writer import AuditWriter
from wicket.auth.events import EventQuery
from wicket.auth.events_sqlite import SQLiteEventStore
from wicket.errors import BadParameter, UpstreamError

WAIT = 20.0


def event(index: int) -> AuditEvent:
    return AuditEvent(type=EventType.SESSION_QUERY, user="alice", details={"n": index})


async def eventually(check: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def spooled(directory: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for path in sorted(directory.glob("[0-9]*.jsonl")):
        events.extend(Spool.read(path))
    return events


class Receiver:
    """A send function standing in for the network: can be down, records what arrives."""

    def __init__(self) -> None:
        self.down = False
        self.received: list[dict[str, Any]] = []
        self.calls = 0

    async def __call__(self, events: list[dict[str, Any]]) -> None:
        self.calls += 1
        if self.down:
            raise UpstreamError("cannot reach the auth service at 127.0.0.1:1: refused")
        self.received.extend(events)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteEventStore]:
    events = await SQLiteEventStore.open(tmp_path / "events.sqlite")
    try:
        yield events
    finally:
        await events.close()


async def test_emit_never_blocks_and_everything_ends_in_the_spool(tmp_path: Path) -> None:
    hang = asyncio.Event()

    async def hanging_send(events: list[dict[str, Any]]) -> None:
        await hang.wait()

    spool_dir = tmp_path / "audit-spool"
    writer = AuditWriter(send=hanging_send, spool_dir=spool_dir, flush_interval=0.05)
    task = writer.start()
    await asyncio.sleep(0.1)
    emitted = [event(i) for i in range(100_000)]
    slowest = 0.0
    started = time.perf_counter()
    for item in emitted:
        before = time.perf_counter()
        writer.emit(item)
        slowest = max(slowest, time.perf_counter() - before)
        assert writer.queued <= 10_000  # memory is bounded by the queue
    elapsed = time.perf_counter() - started
    assert elapsed < 10.0, elapsed
    assert slowest < 0.05, slowest  # no emit waits (overflow writes are buffered)
    assert writer.stats.overflowed >= 90_000
    await writer.close(timeout=0.5)
    assert task.done()
    ids = [item["id"] for item in spooled(spool_dir)]
    assert len(ids) == 100_000
    assert set(ids) == {item.id for item in emitted}


async def test_send_failure_spools_then_recovery_drains_in_order(tmp_path: Path) -> None:
    receiver = Receiver()
    receiver.down = True
    spool_dir = tmp_path / "spool"
    writer = AuditWriter(
        send=receiver,
        spool_dir=spool_dir,
        batch_size=10,
        flush_interval=0.02,
        retry_initial=0.05,
        retry_max=0.2,
    )
    writer.start()
    emitted: list[AuditEvent] = []
    for index in range(57):
        emitted.append(event(index))
        writer.emit(emitted[-1])
        if index % 7 == 0:
            await asyncio.sleep(0.01)
    await eventually(lambda: len(spooled(spool_dir)) == 57, "every event on disk")
    assert receiver.received == [] and writer.stats.send_failures >= 1
    receiver.down = False
    await eventually(lambda: len(receiver.received) == 57, "delivery after recovery")
    assert [item["id"] for item in receiver.received] == [item.id for item in emitted]
    await eventually(lambda: not list(spool_dir.glob("*.jsonl")), "spool files deleted")
    await writer.close()


async def test_killed_mid_send_every_event_stored_exactly_once(
    tmp_path: Path, store: SQLiteEventStore
) -> None:
    spool_dir = tmp_path / "spool"
    acknowledgement_lost = asyncio.Event()

    async def store_then_hang(events: list[dict[str, Any]]) -> None:
        await store.append(events)  # the server stored them ...
        acknowledgement_lost.set()
        await asyncio.Event().wait()  # ... and the acknowledgement never comes

    first = AuditWriter(
        send=store_then_hang, spool_dir=spool_dir, batch_size=10, flush_interval=0.02
    )
    task = first.start()
    emitted = [event(i) for i in range(35)]
    for item in emitted:
        first.emit(item)
    await asyncio.wait_for(acknowledgement_lost.wait(), WAIT)
    await eventually(lambda: first.queued == 0, "the queue journaled")
    task.cancel()  # the process dies here: no close(), nothing flushed
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len((await store.search(EventQuery())).events) == 10

    results: list[tuple[int, int]] = []

    async def send(events: list[dict[str, Any]]) -> None:
        result = await store.append(events)
        results.append((result.accepted, result.duplicates))

    second = AuditWriter(send=send, spool_dir=spool_dir, batch_size=10, flush_interval=0.02)
    second.start()
    await eventually(lambda: not list(spool_dir.glob("*.jsonl")), "the spool drained")
    await second.close()
    stored = (await store.search(EventQuery())).events
    assert sorted(item["id"] for item in stored) == sorted(item.id for item in emitted)
    assert sum(duplicates for _, duplicates in results) == 10  # the resent, unacknowledged batch


async def test_file_modes_and_jsonl_copy(tmp_path: Path) -> None:
    receiver = Receiver()
    receiver.down = True
    spool_dir = tmp_path / "data" / "audit-spool"
    jsonl = tmp_path / "data" / "log" / "events.jsonl"
    writer = AuditWriter(
        send=receiver,
        spool_dir=spool_dir,
        queue_size=5,
        batch_size=5,
        flush_interval=0.02,
        jsonl_path=jsonl,
    )
    writer.start()
    emitted = [event(i) for i in range(12)]
    for item in emitted:  # 5 queued, 7 overflow straight to disk
        writer.emit(item)
    await writer.close(timeout=0.5)
    assert stat.S_IMODE(os.stat(spool_dir).st_mode) == 0o700
    files = list(spool_dir.iterdir())
    assert files
    for path in [*files, jsonl]:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert sorted(item["id"] for item in lines) == sorted(item.id for item in emitted)
    assert sorted(item["id"] for item in spooled(spool_dir)) == sorted(i.id for i in emitted)


async def test_refused_events_are_set_aside_alone_and_delivery_goes_on(tmp_path: Path) -> None:
    received: list[dict[str, Any]] = []

    async def picky(events: list[dict[str, Any]]) -> None:
        if any(item.get("n") == 3 for item in events):
            raise BadParameter("invalid event")
        received.extend(events)

    spool_dir = tmp_path / "spool"
    writer = AuditWriter(send=picky, spool_dir=spool_dir, batch_size=2, flush_interval=0.02)
    writer.start()
    for pair in range(3):  # batches of two: [0, 1], [2, 3], [4, 5]
        writer.emit(event(2 * pair))
        writer.emit(event(2 * pair + 1))
        await asyncio.sleep(0.1)
    await eventually(lambda: len(received) == 5, "every other event")
    await writer.close()
    assert [item["n"] for item in received] == [0, 1, 2, 4, 5]  # 2 went alone, after [2, 3]
    rejected = list(spool_dir.glob("rejected-*.jsonl"))
    assert len(rejected) == 1
    assert [item["n"] for item in Spool.read(rejected[0])] == [3]
    assert writer.stats.rejected == 1
    assert not list(spool_dir.glob("[0-9]*.jsonl"))  # nothing left to retry


async def test_close_delivers_what_it_can(tmp_path: Path) -> None:
    receiver = Receiver()
    writer = AuditWriter(send=receiver, spool_dir=tmp_path / "spool", flush_interval=10.0)
    writer.start()
    for index in range(20):
        writer.emit(event(index))
    await writer.close()
    assert [item["n"] for item in receiver.received] == list(range(20))
    assert not list((tmp_path / "spool").glob("*.jsonl"))
    writer.emit(event(99))  # after close: straight to disk, not lost
    assert [item["n"] for item in spooled(tmp_path / "spool")] == [99]


async def test_torn_spool_line_is_skipped(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir)
    good = event(1).to_json()
    path = spool.allocate()
    path.write_bytes(json.dumps(good).encode() + b"\n" + b'{"type": "db.sess')
    receiver = Receiver()
    writer = AuditWriter(send=receiver, spool_dir=spool_dir, flush_interval=0.02)
    writer.start()
    await eventually(lambda: len(receiver.received) == 1, "the good line")
    await writer.close()
    assert receiver.received == [good]


async def test_overflow_never_overtakes_queued_events(tmp_path: Path) -> None:
    """The auth service takes a session's events only after its start: the spool drains
    in emit order even when the queue overflowed."""
    receiver = Receiver()
    writer = AuditWriter(
        send=receiver, spool_dir=tmp_path / "spool", queue_size=4, batch_size=2, flush_interval=0.02
    )
    writer.start()
    for index in range(10):  # no await: 0-3 queued, 4-9 overflow
        writer.emit(event(index))
    assert writer.stats.overflowed == 6
    await asyncio.sleep(0)
    for index in range(10, 13):
        writer.emit(event(index))
    await eventually(lambda: len(receiver.received) == 13, "every event")
    assert [item["n"] for item in receiver.received] == list(range(13))
    await writer.close()


def test_an_overflow_segment_left_open_by_a_crash_is_drained(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append_overflow([event(1).to_json()])
    spool.sync()  # the process dies here, the segment still open
    again = Spool(tmp_path / "spool")
    assert [item["n"] for path in again.segments() for item in Spool.read(path)] == [1]
