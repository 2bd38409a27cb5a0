"""The SQLite backend: the conformance suite, plus durability, files, corruption, pruning."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.backend.conformance import BackendConformance, FakeClock, next_event

from wicket.backend.base import EventKind, WatchExpired
from wicket.backend.sqlite import SCHEMA_VERSION, SQLiteBackend
from wicket.errors import BadParameter, WicketError

ROOT = Path(__file__).resolve().parents[3]


class TestSQLiteConformance(BackendConformance):
    """The backend contract, run by the `harness` fixture (parametrized in conftest.py)."""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- durability -------------------------------------------------------------------------

CHILD = r"""
import asyncio, sys
from pathlib import Path
from wicket.backend.sqlite import SQLiteBackend

async def main() -> None:
    backend = await SQLiteBackend.open(Path(sys.argv[1]))
    for index in range(int(sys.argv[2])):
        await backend.put(f"/durable/{index:05d}", b"value-%d" % index)
    print("written", backend.revision, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _write_then_kill(path: Path, count: int) -> int:
    """Run a child that writes `count` keys, SIGKILL it after it says so; its last revision."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(count)],
        stdout=subprocess.PIPE,
        env=environment,
    )
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 60)
        assert ready, "the child never reported its writes"
        line = child.stdout.readline().decode().split()
        assert line[0] == "written", line
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
        assert Path(f"{path}-wal").exists()  # killed: nothing checkpointed the log on close
        return int(line[1])
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)


async def test_every_awaited_write_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "backend.sqlite"
    count = 300
    last_revision = _write_then_kill(path, count)
    assert last_revision == count
    backend = await SQLiteBackend.open(path)
    try:
        items = await backend.list_prefix("/durable/")
        assert [item.key for item in items] == [f"/durable/{index:05d}" for index in range(count)]
        assert [item.value for item in items] == [b"value-%d" % index for index in range(count)]
        assert backend.revision == last_revision
        after = await backend.put("/durable/next", b"n")
        assert after.revision == last_revision + 1
        # The log survived too: a watcher resumes from before the crash.
        watcher = await backend.watch("/durable/", from_revision=count - 2)
        assert (await next_event(watcher)).item.key == f"/durable/{count - 2:05d}"
        await watcher.close()
    finally:
        await backend.close()


async def test_reopen_keeps_items_expiry_and_revisions(tmp_path: Path) -> None:
    path = tmp_path / "backend.sqlite"
    clock = FakeClock()
    backend = await SQLiteBackend.open(path, clock=clock)
    kept = await backend.put("/cas/user", b"pem")
    expiring = await backend.put("/invites/x", b"i", expires=clock.now.replace(hour=13))
    await backend.close()

    backend = await SQLiteBackend.open(path, clock=clock, sweep_interval=0.02)
    try:
        assert await backend.get("/cas/user") == kept
        assert await backend.get("/invites/x") == expiring
        assert backend.revision == expiring.revision
        watcher = await backend.watch("/invites/")
        clock.advance(3601)
        event = await next_event(watcher)
        assert event.kind is EventKind.DELETE and event.item.revision == expiring.revision + 1
        await watcher.close()
    finally:
        await backend.close()


async def test_explicit_sweep_reports_what_it_deleted(tmp_path: Path) -> None:
    clock = FakeClock()
    backend = await SQLiteBackend.open(tmp_path / "b.sqlite", clock=clock, sweep_interval=3600)
    try:
        soon = clock.now.replace(minute=1)
        for index in range(2500):  # more than one sweep batch
            await backend.put(f"/hb/{index}", b"", expires=soon)
        await backend.put("/hb/forever", b"")
        assert await backend.sweep() == 0
        clock.advance(120)
        assert await backend.sweep() == 2500
        assert [item.key for item in await backend.list_prefix("/hb/")] == ["/hb/forever"]
    finally:
        await backend.close()


# -- files ------------------------------------------------------------------------------


async def test_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "backend.sqlite"
    backend = await SQLiteBackend.open(path)
    try:
        await backend.put("/cas/host", b"secret key")
        assert _mode(path.parent) == 0o700
        assert _mode(path) == 0o600
        assert _mode(Path(f"{path}-wal")) == 0o600
    finally:
        await backend.close()


async def test_a_loose_file_mode_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "backend.sqlite"
    backend = await SQLiteBackend.open(path)
    await backend.put("/k", b"v")
    await backend.close()
    path.chmod(0o644)
    backend = await SQLiteBackend.open(path)
    try:
        assert _mode(path) == 0o600
        assert await backend.get("/k") is not None
    finally:
        await backend.close()


async def test_wal_mode_normal_sync_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "backend.sqlite"
    backend = await SQLiteBackend.open(path)
    try:
        connection = backend._connection
        synchronous = await backend._run(
            lambda: connection.execute("PRAGMA synchronous").fetchone()[0]
        )
        assert synchronous == 1  # NORMAL
        with sqlite3.connect(path) as other:
            assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            version = other.execute(
                "SELECT value FROM meta WHERE name = 'schema_version'"
            ).fetchone()[0]
            assert version == SCHEMA_VERSION
        other.close()
    finally:
        await backend.close()


# -- broken files -----------------------------------------------------------------------


async def _open_fails(path: Path) -> WicketError:
    with pytest.raises(WicketError) as caught:
        backend = await SQLiteBackend.open(path)
        await backend.close()
    assert str(path) in str(caught.value)
    assert not isinstance(caught.value, sqlite3.Error)
    return caught.value


async def test_a_non_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "backend.sqlite"
    path.write_bytes(b"this is a text file, not a database\n" * 200)
    error = await _open_fails(path)
    assert "not a usable Wicket backend database" in str(error)


async def test_a_damaged_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "backend.sqlite"
    backend = await SQLiteBackend.open(path)
    for index in range(200):
        await backend.put(f"/users/u{index}", b"x" * 500)
    await backend.close()
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 6 * page
    data[2 * page : 5 * page] = bytes([0xA5]) * (3 * page)
    path.write_bytes(bytes(data))
    await _open_fails(path)


async def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    connection.close()
    error = await _open_fails(path)
    assert "not a Wicket backend" in str(error)


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "backend.sqlite"
    backend = await SQLiteBackend.open(path)
    await backend.close()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE meta SET value = 99 WHERE name = 'schema_version'")
    connection.close()
    error = await _open_fails(path)
    assert "newer" in str(error)


async def test_open_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(BadParameter):
        await SQLiteBackend.open(tmp_path / "b.sqlite", sweep_interval=0)
    with pytest.raises(BadParameter):
        await SQLiteBackend.open(tmp_path / "b.sqlite", watch_queue_size=0)


# -- the event log ----------------------------------------------------------------------


async def test_the_log_is_pruned_to_its_size(tmp_path: Path) -> None:
    backend = await SQLiteBackend.open(tmp_path / "b.sqlite", sweep_interval=3600, event_log_size=5)
    try:
        revisions = [(await backend.put(f"/l/{index}", b"v")).revision for index in range(20)]
        # Before pruning the whole log is there.
        watcher = await backend.watch("/l/", from_revision=0)
        assert (await next_event(watcher)).item.revision == revisions[0]
        await watcher.close()
        await backend.sweep()
        with pytest.raises(WatchExpired, match="pruned"):
            await backend.watch("/l/", from_revision=0)
        with pytest.raises(WatchExpired):
            await backend.watch("/l/", from_revision=revisions[13])
        watcher = await backend.watch("/l/", from_revision=revisions[14])
        replayed = [await next_event(watcher) for _ in range(5)]
        assert [event.item.revision for event in replayed] == revisions[15:]
        await watcher.close()
        # Pruning is persistent.
        await backend.close()
        backend = await SQLiteBackend.open(tmp_path / "b.sqlite", sweep_interval=3600)
        with pytest.raises(WatchExpired):
            await backend.watch("/l/", from_revision=revisions[10])
    finally:
        await backend.close()


async def test_a_replay_spanning_many_pages(tmp_path: Path) -> None:
    backend = await SQLiteBackend.open(tmp_path / "b.sqlite", watch_queue_size=8)
    try:
        revisions = [(await backend.put(f"/p/{index % 50}", b"v")).revision for index in range(700)]
        watcher = await backend.watch("/p/", from_revision=0)
        events = [await next_event(watcher) for _ in range(700)]
        assert [event.item.revision for event in events] == revisions
        await watcher.close()
    finally:
        await backend.close()


async def test_event_loop_keeps_running_during_a_large_write(tmp_path: Path) -> None:
    backend = await SQLiteBackend.open(tmp_path / "b.sqlite")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        for index in range(4):
            await backend.put(f"/big/{index}", os.urandom(16 * 1024 * 1024))
        assert ticks > 4  # the loop ran while SQLite worked on its own thread
    finally:
        task.cancel()
        await backend.close()


# -- key order as a property ------------------------------------------------------------

_EDGE_CHARACTERS = ["a", "b", "0", "-", ".", "é", "\ud7ff", "\ue000", "\uffff", "\U0010ffff"]
_SEGMENT = st.text(
    alphabet=st.one_of(
        st.sampled_from(_EDGE_CHARACTERS),
        st.characters(min_codepoint=0x20, exclude_characters="/\x7f", exclude_categories=["Cs"]),
    ),
    min_size=1,
    max_size=4,
)
_KEY = st.lists(_SEGMENT, min_size=1, max_size=3).map(lambda segments: "/" + "/".join(segments))


@settings(max_examples=40, deadline=None)
@given(keys=st.lists(_KEY, min_size=1, max_size=12, unique=True), data=st.data())
def test_list_prefix_matches_sorted_startswith(keys: list[str], data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(keys))
    prefix = key[: data.draw(st.integers(min_value=1, max_value=len(key)))]

    async def check(directory: Path) -> None:
        backend = await SQLiteBackend.open(directory / "b.sqlite")
        try:
            for each in keys:
                await backend.put(each, each.encode())
            listed = [item.key for item in await backend.list_prefix("/")]
            assert listed == sorted(keys)
            matching = [item.key for item in await backend.list_prefix(prefix)]
            assert matching == sorted(each for each in keys if each.startswith(prefix))
        finally:
            await backend.close()

    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(check(Path(directory)))
