"""The backend contract, as tests any `wicket.backend.base.Backend` must pass.

A test module subclasses `BackendConformance` and provides a `harness` fixture (see
`conftest.py`, parametrized by backend kind) that opens a fresh backend on a movable
clock with a small watch queue and a short sweep interval.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from wicket.backend.base import Backend, Event, EventKind, Watcher, WatchExpired, WatchOverflow
from wicket.errors import BadParameter, WicketError

START = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
WAIT = 5.0
MiB = 1024 * 1024


class FakeClock:
    """A clock tests move by hand; backends read it for expiry and log age."""

    def __init__(self, now: datetime.datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += datetime.timedelta(seconds=seconds)


@dataclass
class Harness:
    """A fresh backend, its clock, and the watch queue size it was opened with."""

    backend: Backend
    clock: FakeClock
    watch_queue_size: int


async def next_event(watcher: Watcher, within: float = WAIT) -> Event:
    """The watcher's next event, failing the test if none comes in time."""
    iterator = aiter(watcher)
    return await asyncio.wait_for(anext(iterator), within)


async def collect(watcher: Watcher, count: int, within: float = WAIT) -> list[Event]:
    """The watcher's next `count` events."""
    return [await next_event(watcher, within) for _ in range(count)]


async def assert_quiet(watcher: Watcher, seconds: float = 0.1) -> None:
    """Nothing arrives on `watcher` for a moment."""
    iterator: AsyncIterator[Event] = aiter(watcher)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(iterator), seconds)


class BackendConformance:
    """Every method's contract; run against each backend by subclassing."""

    # -- get / put ----------------------------------------------------------------------

    async def test_get_absent_is_none(self, harness: Harness) -> None:
        assert await harness.backend.get("/nothing/here") is None

    async def test_put_then_get(self, harness: Harness) -> None:
        backend = harness.backend
        stored = await backend.put("/users/alice", b'{"roles": ["access"]}')
        assert stored.key == "/users/alice"
        assert stored.value == b'{"roles": ["access"]}'
        assert stored.expires is None
        assert stored.revision > 0
        assert await backend.get("/users/alice") == stored

    async def test_put_replaces_with_a_higher_revision(self, harness: Harness) -> None:
        backend = harness.backend
        first = await backend.put("/k", b"1")
        second = await backend.put("/k", b"2")
        assert second.revision > first.revision
        assert await backend.get("/k") == second

    async def test_empty_and_binary_values_round_trip(self, harness: Harness) -> None:
        backend = harness.backend
        await backend.put("/empty", b"")
        await backend.put("/binary", bytes(range(256)))
        empty = await backend.get("/empty")
        binary = await backend.get("/binary")
        assert empty is not None and empty.value == b""
        assert binary is not None and binary.value == bytes(range(256))

    async def test_revisions_strictly_increase_across_keys_and_operations(
        self, harness: Harness
    ) -> None:
        backend = harness.backend
        revisions = [(await backend.put("/a", b"x")).revision]
        revisions.append((await backend.put("/b", b"x")).revision)
        created = await backend.create("/c", b"x")
        assert created is not None
        revisions.append(created.revision)
        swapped = await backend.compare_and_swap("/a", revisions[0], b"y")
        assert swapped is not None
        revisions.append(swapped.revision)
        assert await backend.delete("/b")
        revisions.append((await backend.put("/b", b"again")).revision)
        assert revisions == sorted(set(revisions))

    # -- create / CAS / delete ----------------------------------------------------------

    async def test_create_only_if_absent(self, harness: Harness) -> None:
        backend = harness.backend
        created = await backend.create("/tokens/t1", b"one")
        assert created is not None and created.value == b"one"
        assert await backend.create("/tokens/t1", b"two") is None
        assert await backend.get("/tokens/t1") == created

    async def test_create_over_an_expired_item(self, harness: Harness) -> None:
        backend = harness.backend
        await backend.put(
            "/lock", b"old", expires=harness.clock.now + datetime.timedelta(seconds=5)
        )
        assert await backend.create("/lock", b"new") is None
        harness.clock.advance(6)
        created = await backend.create("/lock", b"new")
        assert created is not None and created.value == b"new" and created.expires is None

    async def test_compare_and_swap(self, harness: Harness) -> None:
        backend = harness.backend
        first = await backend.put("/counter", b"1")
        assert await backend.compare_and_swap("/counter", first.revision + 1000, b"x") is None
        second = await backend.compare_and_swap("/counter", first.revision, b"2")
        assert second is not None and second.value == b"2"
        assert second.revision > first.revision
        # The old revision no longer matches.
        assert await backend.compare_and_swap("/counter", first.revision, b"3") is None
        assert await backend.get("/counter") == second
        assert await backend.compare_and_swap("/absent", 0, b"x") is None
        assert await backend.get("/absent") is None

    async def test_compare_and_swap_sets_expiry(self, harness: Harness) -> None:
        backend = harness.backend
        first = await backend.put("/session", b"1")
        later = harness.clock.now + datetime.timedelta(seconds=30)
        second = await backend.compare_and_swap("/session", first.revision, b"2", expires=later)
        assert second is not None and second.expires == later

    async def test_compare_and_swap_on_an_expired_item_fails(self, harness: Harness) -> None:
        backend = harness.backend
        soon = harness.clock.now + datetime.timedelta(seconds=1)
        item = await backend.put("/heartbeat", b"1", expires=soon)
        harness.clock.advance(2)
        assert await backend.compare_and_swap("/heartbeat", item.revision, b"2") is None
        assert await backend.get("/heartbeat") is None

    async def test_delete(self, harness: Harness) -> None:
        backend = harness.backend
        await backend.put("/roles/dev", b"r")
        assert await backend.delete("/roles/dev") is True
        assert await backend.get("/roles/dev") is None
        assert await backend.delete("/roles/dev") is False

    async def test_compare_and_delete(self, harness: Harness) -> None:
        backend = harness.backend
        item = await backend.put("/tokens/abc", b"t")
        assert await backend.compare_and_delete("/tokens/abc", item.revision + 1) is False
        assert await backend.get("/tokens/abc") == item
        assert await backend.compare_and_delete("/tokens/abc", item.revision) is True
        assert await backend.get("/tokens/abc") is None
        # A single-use token is consumed once.
        assert await backend.compare_and_delete("/tokens/abc", item.revision) is False

    async def test_concurrent_cas_increments_never_lose_an_update(self, harness: Harness) -> None:
        backend = harness.backend
        await backend.put("/counter", b"0")
        workers, increments = 12, 15
        conflicts = 0

        async def increment() -> None:
            nonlocal conflicts
            for _ in range(increments):
                while True:
                    current = await backend.get("/counter")
                    assert current is not None
                    value = str(int(current.value) + 1).encode()
                    if await backend.compare_and_swap("/counter", current.revision, value):
                        break
                    conflicts += 1

        await asyncio.gather(*(increment() for _ in range(workers)))
        final = await backend.get("/counter")
        assert final is not None and int(final.value) == workers * increments
        assert conflicts > 0  # the workers really did race

    # -- list_prefix --------------------------------------------------------------------

    async def test_list_prefix_key_order_and_boundaries(self, harness: Harness) -> None:
        backend = harness.backend
        keys = ["/users/bob", "/users/alice", "/users/é", "/users/Zed", "/users/alice0"]
        for key in keys:
            await backend.put(key, key.encode())
        for outside in ("/users", "/usersx/a", "/user/a", "/roles/alice"):
            await backend.put(outside, b"no")
        listed = await backend.list_prefix("/users/")
        assert [item.key for item in listed] == sorted(keys)
        assert all(item.value == item.key.encode() for item in listed)
        everything = await backend.list_prefix("/")
        assert len(everything) == len(keys) + 4
        assert [item.key for item in everything] == sorted(item.key for item in everything)
        assert [item.key for item in await backend.list_prefix("/users/alice")] == [
            "/users/alice",
            "/users/alice0",
        ]
        assert await backend.list_prefix("/nothing/") == []

    async def test_list_prefix_limit(self, harness: Harness) -> None:
        backend = harness.backend
        for index in range(10):
            await backend.put(f"/items/{index:02d}", b"v")
        limited = await backend.list_prefix("/items/", limit=3)
        assert [item.key for item in limited] == ["/items/00", "/items/01", "/items/02"]
        assert len(await backend.list_prefix("/items/", limit=100)) == 10
        for bad in (0, -1, True, "3"):
            with pytest.raises(BadParameter):
                await backend.list_prefix("/items/", limit=bad)  # type: ignore[arg-type]

    # -- expiry -------------------------------------------------------------------------

    async def test_expired_items_are_invisible(self, harness: Harness) -> None:
        backend = harness.backend
        expires = harness.clock.now + datetime.timedelta(seconds=90)
        stored = await backend.put("/db_servers/h1/db", b"hb", expires=expires)
        await backend.put("/db_servers/h1/other", b"forever")
        assert stored.expires == expires
        assert await backend.get("/db_servers/h1/db") == stored
        assert len(await backend.list_prefix("/db_servers/")) == 2
        harness.clock.advance(89)
        assert await backend.get("/db_servers/h1/db") is not None
        harness.clock.advance(2)
        assert await backend.get("/db_servers/h1/db") is None
        listed = await backend.list_prefix("/db_servers/")
        assert [item.key for item in listed] == ["/db_servers/h1/other"]

    async def test_expiry_in_another_timezone_is_the_same_instant(self, harness: Harness) -> None:
        backend = harness.backend
        plus_two = datetime.timezone(datetime.timedelta(hours=2))
        expires = (harness.clock.now + datetime.timedelta(seconds=10)).astimezone(plus_two)
        stored = await backend.put("/k", b"v", expires=expires)
        assert stored.expires == expires
        harness.clock.advance(11)
        assert await backend.get("/k") is None

    async def test_sweeper_deletes_expired_items_with_delete_events(self, harness: Harness) -> None:
        backend = harness.backend
        watcher = await backend.watch("/invites/")
        soon = harness.clock.now + datetime.timedelta(seconds=60)
        put = await backend.put("/invites/abc", b"i", expires=soon)
        assert (await next_event(watcher)).item == put
        harness.clock.advance(61)
        event = await next_event(watcher)  # the sweeper runs on its own
        assert event.kind is EventKind.DELETE
        assert event.item.key == "/invites/abc"
        assert event.item.value == b""
        assert event.item.revision > put.revision
        assert await backend.delete("/invites/abc") is False
        await watcher.close()

    # -- argument checks ----------------------------------------------------------------

    async def test_bad_keys_are_refused(self, harness: Harness) -> None:
        backend = harness.backend
        bad_keys: list[object] = ["", "users", "/", "/a//b", "/a/", "//a", "/a\x00b", "/a\nb", 7]
        bad_keys.append("/" + "x" * 5000)
        bad_keys.append("/\ud800")
        for key in bad_keys:
            with pytest.raises(BadParameter):
                await backend.put(key, b"v")  # type: ignore[arg-type]
            with pytest.raises(BadParameter):
                await backend.get(key)  # type: ignore[arg-type]
        for prefix in ("", "users/", "/a//"):
            with pytest.raises(BadParameter):
                await backend.list_prefix(prefix)
            with pytest.raises(BadParameter):
                await backend.watch(prefix)

    async def test_bad_values_and_expiry_are_refused(self, harness: Harness) -> None:
        backend = harness.backend
        for value in ("text", bytearray(b"x"), None, 5):
            with pytest.raises(BadParameter):
                await backend.put("/k", value)  # type: ignore[arg-type]
        with pytest.raises(BadParameter):
            await backend.put("/k", b"v", expires=datetime.datetime(2030, 1, 1))  # naive
        with pytest.raises(BadParameter):
            await backend.compare_and_swap("/k", -1, b"v")
        with pytest.raises(BadParameter):
            await backend.watch("/k", from_revision=-5)
        assert await backend.get("/k") is None

    async def test_value_size_limit_is_16_mib(self, harness: Harness) -> None:
        backend = harness.backend
        largest = bytes(16 * MiB)
        stored = await backend.put("/big", largest)
        fetched = await backend.get("/big")
        assert fetched is not None and fetched.value == largest
        assert stored.revision == fetched.revision
        with pytest.raises(BadParameter, match="16 MiB"):
            await backend.put("/big", largest + b"x")
        with pytest.raises(BadParameter):
            await backend.create("/big2", largest + b"x")

    # -- watch --------------------------------------------------------------------------

    async def test_watch_live_events_in_order_filtered_by_prefix(self, harness: Harness) -> None:
        backend = harness.backend
        watcher = await backend.watch("/roles/")
        first = await backend.put("/roles/dev", b"1")
        await backend.put("/users/alice", b"not watched")
        await backend.put("/rolesx", b"not watched")
        second = await backend.put("/roles/dev", b"2")
        assert await backend.delete("/roles/dev")
        created = await backend.create("/roles/ops", b"3")
        events = await collect(watcher, 4)
        assert [event.kind for event in events] == [
            EventKind.PUT,
            EventKind.PUT,
            EventKind.DELETE,
            EventKind.PUT,
        ]
        assert events[0].item == first
        assert events[1].item == second
        assert events[2].item.key == "/roles/dev" and events[2].item.value == b""
        assert events[3].item == created
        revisions = [event.item.revision for event in events]
        assert revisions == sorted(set(revisions))
        await assert_quiet(watcher)
        await watcher.close()

    async def test_watch_without_revision_starts_now(self, harness: Harness) -> None:
        backend = harness.backend
        await backend.put("/w/before", b"old")
        watcher = await backend.watch("/w/")
        after = await backend.put("/w/after", b"new")
        assert (await next_event(watcher)).item == after
        await watcher.close()

    async def test_watch_resumes_from_a_revision_then_continues_live(
        self, harness: Harness
    ) -> None:
        backend = harness.backend
        items = [await backend.put(f"/r/{index}", b"%d" % index) for index in range(5)]
        await backend.put("/other/x", b"filtered")
        watcher = await backend.watch("/r/", from_revision=items[1].revision)
        replayed = await collect(watcher, 3)
        assert [event.item for event in replayed] == items[2:]
        live = await backend.put("/r/live", b"L")
        assert (await next_event(watcher)).item == live
        await assert_quiet(watcher)
        await watcher.close()

    async def test_watch_from_zero_replays_deletes_too(self, harness: Harness) -> None:
        backend = harness.backend
        put = await backend.put("/d/k", b"v")
        assert await backend.delete("/d/k")
        watcher = await backend.watch("/d/", from_revision=0)
        events = await collect(watcher, 2)
        assert events[0].item == put
        assert events[1].kind is EventKind.DELETE and events[1].item.key == "/d/k"
        await watcher.close()

    async def test_watch_resume_has_no_gap_and_no_duplicate_under_writes(
        self, harness: Harness
    ) -> None:
        backend = harness.backend
        total = 300
        written: list[int] = []
        under_way = asyncio.Event()

        async def writer() -> None:
            for index in range(total):
                written.append((await backend.put(f"/race/{index % 7}", b"%d" % index)).revision)
                if len(written) == 50:
                    under_way.set()

        task = asyncio.create_task(writer())
        await asyncio.wait_for(under_way.wait(), WAIT)
        start = written[20]
        watcher = await backend.watch("/race/", from_revision=start)
        await task
        expected = [revision for revision in written if revision > start]
        events = await collect(watcher, len(expected))
        assert [event.item.revision for event in events] == expected
        await assert_quiet(watcher)
        await watcher.close()

    async def test_watch_resume_races_with_writes_in_flight(self, harness: Harness) -> None:
        backend = harness.backend
        half = max(1, min(6, (harness.watch_queue_size - 1) // 2))
        for round_number in range(30):
            prefix = f"/round/{round_number}/"
            start = (await backend.put("/round-marker", b"")).revision

            async def write(index: int, prefix: str = prefix) -> int:
                return (await backend.put(f"{prefix}{index}", b"v")).revision

            # Writes queued before and after the watch's own log read, all at once.
            results = await asyncio.gather(
                *(write(index) for index in range(half)),
                backend.watch(prefix, from_revision=start),
                *(write(index) for index in range(half, 2 * half)),
            )
            watcher = results[half]
            assert not isinstance(watcher, int)
            revisions = sorted(result for result in results if isinstance(result, int))
            events = await collect(watcher, len(revisions))
            assert [event.item.revision for event in events] == revisions, round_number
            await assert_quiet(watcher, 0.01)
            await watcher.close()

    async def test_watch_replay_longer_than_the_queue_does_not_overflow(
        self, harness: Harness
    ) -> None:
        backend = harness.backend
        count = harness.watch_queue_size * 4
        revisions = [(await backend.put(f"/long/{index}", b"v")).revision for index in range(count)]
        watcher = await backend.watch("/long/", from_revision=0)
        # More live writes than the queue holds arrive while the replay is unread.
        revisions += [
            (await backend.put(f"/long/x{index}", b"v")).revision for index in range(count)
        ]
        events = await collect(watcher, len(revisions))
        assert [event.item.revision for event in events] == revisions
        await watcher.close()

    async def test_watch_from_a_pruned_revision_is_expired(self, harness: Harness) -> None:
        backend = harness.backend
        first = await backend.put("/old/a", b"1")
        await backend.put("/old/b", b"2")
        harness.clock.advance(2 * 3600)  # the log keeps at most one hour
        latest = await backend.put("/old/c", b"3")
        deadline = asyncio.get_running_loop().time() + WAIT
        while True:
            try:
                watcher = await backend.watch("/old/", from_revision=first.revision - 1)
            except WatchExpired as error:
                assert isinstance(error, WicketError)
                break
            await watcher.close()
            assert asyncio.get_running_loop().time() < deadline, "the log was never pruned"
            await asyncio.sleep(0.02)
        # Resuming from what the log still holds works.
        watcher = await backend.watch("/old/", from_revision=latest.revision)
        later = await backend.put("/old/d", b"4")
        assert (await next_event(watcher)).item == later
        await watcher.close()

    async def test_watch_close_ends_iteration(self, harness: Harness) -> None:
        backend = harness.backend
        watcher = await backend.watch("/c/")
        await backend.put("/c/1", b"x")
        await watcher.close()
        await backend.put("/c/2", b"x")
        remaining = [event async for event in watcher]
        assert remaining == []

    async def test_close_wakes_a_waiting_consumer(self, harness: Harness) -> None:
        backend = harness.backend
        watcher = await backend.watch("/c/")

        async def consume() -> list[Event]:
            return [event async for event in watcher]

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        await watcher.close()
        assert await asyncio.wait_for(consumer, WAIT) == []

    async def test_slow_watcher_overflows_with_a_visible_error(self, harness: Harness) -> None:
        backend = harness.backend
        slow = await backend.watch("/o/")
        fast = await backend.watch("/o/")
        count = harness.watch_queue_size + 5
        fast_events: list[Event] = []
        revisions = []
        for index in range(count):
            revisions.append((await backend.put(f"/o/{index}", b"v")).revision)
            fast_events.append(await next_event(fast))
        assert [event.item.revision for event in fast_events] == revisions
        received: list[Event] = []
        with pytest.raises(WatchOverflow) as caught:
            async for event in slow:
                received.append(event)
        assert isinstance(caught.value, WicketError)
        # What it did receive is a gap-free start of the stream.
        assert [event.item.revision for event in received] == revisions[: len(received)]
        assert len(received) <= harness.watch_queue_size
        # The consumer resumes from the last revision it saw and misses nothing.
        resumed = await backend.watch("/o/", from_revision=received[-1].item.revision)
        rest = await collect(resumed, count - len(received))
        assert [event.item.revision for event in rest] == revisions[len(received) :]
        for watcher in (slow, fast, resumed):
            await watcher.close()

    async def test_many_watchers_each_see_their_prefix(self, harness: Harness) -> None:
        backend = harness.backend
        watchers = {prefix: await backend.watch(prefix) for prefix in ("/", "/a/", "/a/b/", "/b/")}
        await backend.put("/a/b/c", b"1")
        await backend.put("/b/x", b"2")
        assert (await next_event(watchers["/a/b/"])).item.key == "/a/b/c"
        assert (await next_event(watchers["/a/"])).item.key == "/a/b/c"
        assert (await next_event(watchers["/b/"])).item.key == "/b/x"
        assert [event.item.key for event in await collect(watchers["/"], 2)] == [
            "/a/b/c",
            "/b/x",
        ]
        await assert_quiet(watchers["/a/"])
        for watcher in watchers.values():
            await watcher.close()

    async def test_backend_close_ends_watchers_and_is_idempotent(self, harness: Harness) -> None:
        backend = harness.backend
        live = await backend.watch("/z/")
        await backend.put("/z/1", b"x")
        resumed = await backend.watch("/z/", from_revision=0)
        await backend.close()
        assert [event async for event in live] == []
        assert [event async for event in resumed] == []
        await backend.close()
        with pytest.raises(WicketError):
            await backend.get("/z/1")
