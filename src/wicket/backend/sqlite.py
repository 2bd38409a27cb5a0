"""Storage layer: the auth service's default backend, one SQLite file.

Durability: the file is in WAL mode with `synchronous=NORMAL`. Every committed
transaction is in the WAL before the call returns, so it survives the process
crashing or being killed (`kill -9`); only an operating-system crash or power loss
can lose the last transactions (the database itself stays consistent).

Concurrency: all SQLite work runs on one dedicated thread, so the event loop never
blocks on disk; each public method is one transaction (`BEGIN IMMEDIATE` for
writes). One process owns the file: watchers are fed in-process from the writes of
this process (a second process writing the same file would not wake them).

Tables: `items` (the live key space), `events` (the change log watchers resume
from, kept to the last 10,000 events and at most one hour), `meta` (schema
version, revision counter, highest pruned revision).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import sqlite3
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from wicket.backend.base import Event, EventKind, Item, Watcher, WatchExpired
from wicket.backend.validation import (
    check_expires,
    check_key,
    check_limit,
    check_prefix,
    check_revision,
    check_value,
)
from wicket.backend.watchers import DEFAULT_QUEUE_SIZE, ReplayPage, WatchHub
from wicket.errors import BadParameter, WicketError

_log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5000
DEFAULT_EVENT_LOG_SIZE = 10_000
DEFAULT_EVENT_LOG_AGE = datetime.timedelta(hours=1)
SWEEP_BATCH = 1000
REPLAY_PAGE_EVENTS = 256
REPLAY_PAGE_BYTES = 32 * 1024 * 1024

# Migration N takes the schema from version N to N + 1; each runs in one transaction.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        "CREATE TABLE items (key TEXT PRIMARY KEY, value BLOB NOT NULL,"
        " revision INTEGER NOT NULL, expires TEXT NULL)",
        "CREATE INDEX items_by_expiry ON items (expires) WHERE expires IS NOT NULL",
        "CREATE TABLE events (revision INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
        " key TEXT NOT NULL, value BLOB NOT NULL, expires TEXT NULL, created TEXT NOT NULL)",
        "CREATE INDEX events_by_creation ON events (created)",
        "INSERT INTO meta (name, value) VALUES"
        " ('schema_version', 0), ('revision', 0), ('compacted_revision', 0)",
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION


def utc_now() -> datetime.datetime:
    """The current time in UTC (the default clock)."""
    return datetime.datetime.now(datetime.UTC)


def _format_time(moment: datetime.datetime) -> str:
    """Fixed-width UTC text, so SQLite compares times as strings correctly."""
    naive = moment.astimezone(datetime.UTC).replace(tzinfo=None)
    return naive.isoformat(timespec="microseconds") + "Z"


def _parse_time(text: str | None) -> datetime.datetime | None:
    if text is None:
        return None
    return datetime.datetime.fromisoformat(text)


def _prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix`, if any."""
    last = ord(prefix[-1])
    if last >= 0x10FFFF:
        return None
    following = last + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates cannot be stored as UTF-8
        following = 0xE000
    return prefix[:-1] + chr(following)


def _key_range(prefix: str) -> tuple[str, tuple[object, ...]]:
    """SQL (on column `key`) selecting keys that start with `prefix`, as an index range."""
    upper = _prefix_upper_bound(prefix)
    if upper is None:
        return "key >= ? AND substr(key, 1, ?) = ?", (prefix, len(prefix), prefix)
    return "key >= ? AND key < ?", (prefix, upper)


class _Transaction:
    """One write transaction on the worker thread: reads, writes and the events they log."""

    def __init__(self, connection: sqlite3.Connection, now: datetime.datetime) -> None:
        self._connection = connection
        self._now = _format_time(now)
        row = connection.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()
        self._revision: int = row[0]
        self.events: list[Event] = []

    def _next_revision(self) -> int:
        self._revision += 1
        return self._revision

    def _log(self, kind: EventKind, item: Item) -> None:
        expires = None if item.expires is None else _format_time(item.expires)
        self._connection.execute(
            "INSERT INTO events (revision, kind, key, value, expires, created)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (item.revision, kind.value, item.key, item.value, expires, self._now),
        )
        self.events.append(Event(kind, item))

    def current(self, key: str) -> Item | None:
        """The live item at `key`; an expired one is deleted here (with its DELETE event)."""
        row = self._connection.execute(
            "SELECT value, revision, expires FROM items WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        value, revision, expires = row
        if expires is not None and expires <= self._now:
            self.remove(key)
            return None
        return Item(key, bytes(value), revision, _parse_time(expires))

    def store(self, key: str, value: bytes, expires: datetime.datetime | None) -> Item:
        """Write `key` at a new revision and log the PUT."""
        item = Item(key, value, self._next_revision(), expires)
        self._connection.execute(
            "INSERT INTO items (key, value, revision, expires) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
            " revision = excluded.revision, expires = excluded.expires",
            (key, value, item.revision, None if expires is None else _format_time(expires)),
        )
        self._log(EventKind.PUT, item)
        return item

    def remove(self, key: str) -> None:
        """Delete `key` at a new revision and log the DELETE."""
        self._connection.execute("DELETE FROM items WHERE key = ?", (key,))
        self._log(EventKind.DELETE, Item(key, b"", self._next_revision(), None))

    def expired_keys(self, limit: int) -> list[str]:
        """Keys whose expiry has passed, soonest first."""
        rows = self._connection.execute(
            "SELECT key FROM items WHERE expires IS NOT NULL AND expires <= ?"
            " ORDER BY expires LIMIT ?",
            (self._now, limit),
        ).fetchall()
        return [row[0] for row in rows]

    def finish(self) -> None:
        """Persist the revision counter if anything was written."""
        if self.events:
            self._connection.execute(
                "UPDATE meta SET value = ? WHERE name = 'revision'", (self._revision,)
            )


class SQLiteBackend:
    """The `Backend` on one SQLite file: WAL, one worker thread, expiry sweeper, watches."""

    def __init__(
        self,
        path: Path,
        connection: sqlite3.Connection,
        executor: ThreadPoolExecutor,
        revision: int,
        *,
        clock: Callable[[], datetime.datetime],
        sweep_interval: float,
        watch_queue_size: int,
        event_log_size: int,
        event_log_age: datetime.timedelta,
    ) -> None:
        self.path = path
        self._connection = connection
        self._executor = executor
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._event_log_size = event_log_size
        self._event_log_age = event_log_age
        self._loop = asyncio.get_running_loop()
        self._hub = WatchHub(revision=revision, queue_size=watch_queue_size)
        self._closed = False
        self._sweeper: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        clock: Callable[[], datetime.datetime] = utc_now,
        sweep_interval: float = 1.0,
        watch_queue_size: int = DEFAULT_QUEUE_SIZE,
        event_log_size: int = DEFAULT_EVENT_LOG_SIZE,
        event_log_age: datetime.timedelta = DEFAULT_EVENT_LOG_AGE,
    ) -> SQLiteBackend:
        """Open (creating 0600 if needed) and migrate the file, then start the sweeper."""
        if sweep_interval <= 0:
            raise BadParameter("sweep_interval must be positive")
        if watch_queue_size < 1 or event_log_size < 1:
            raise BadParameter("watch_queue_size and event_log_size must be at least 1")
        path = Path(path)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wicket-sqlite")
        loop = asyncio.get_running_loop()
        try:
            connection, revision = await loop.run_in_executor(executor, _open_file, path)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        backend = cls(
            path,
            connection,
            executor,
            revision,
            clock=clock,
            sweep_interval=sweep_interval,
            watch_queue_size=watch_queue_size,
            event_log_size=event_log_size,
            event_log_age=event_log_age,
        )
        backend._sweeper = asyncio.create_task(backend._sweep_forever(), name=f"sweep {path}")
        return backend

    # -- plumbing -----------------------------------------------------------------------

    def _now(self) -> datetime.datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise WicketError("the backend clock returned a naive datetime; it must be UTC-aware")
        return now

    async def _run(self, work: Callable[[], T]) -> T:
        """Run `work` on the SQLite thread; SQLite errors become a WicketError naming the file."""
        if self._closed:
            raise WicketError(f"the backend {self.path} is closed")
        try:
            return await self._loop.run_in_executor(self._executor, work)
        except sqlite3.Error as exc:
            raise WicketError(f"SQLite backend {self.path}: {exc}") from exc

    async def _write(self, operation: Callable[[_Transaction], T]) -> T:
        """Run `operation` in one BEGIN IMMEDIATE transaction, then publish its events."""
        now = self._now()
        connection = self._connection

        def work() -> T:
            connection.execute("BEGIN IMMEDIATE")
            try:
                transaction = _Transaction(connection, now)
                result = operation(transaction)
                transaction.finish()
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            if transaction.events:
                # Queued from this single thread in commit order, so watchers see revisions
                # in order, and before the caller's own await resumes.
                self._loop.call_soon_threadsafe(self._hub.publish, tuple(transaction.events))
            return result

        return await self._run(work)

    # -- the Backend interface ----------------------------------------------------------

    async def get(self, key: str) -> Item | None:
        """The item at `key`, or None if absent or expired."""
        check_key(key)
        now = _format_time(self._now())
        connection = self._connection

        def work() -> Item | None:
            row = connection.execute(
                "SELECT value, revision, expires FROM items"
                " WHERE key = ? AND (expires IS NULL OR expires > ?)",
                (key, now),
            ).fetchone()
            if row is None:
                return None
            return Item(key, bytes(row[0]), row[1], _parse_time(row[2]))

        return await self._run(work)

    async def put(
        self, key: str, value: bytes, *, expires: datetime.datetime | None = None
    ) -> Item:
        """Create or replace `key`; returns the stored item with its new revision."""
        check_key(key)
        check_value(value)
        expires = check_expires(expires)

        def operation(transaction: _Transaction) -> Item:
            transaction.current(key)
            return transaction.store(key, value, expires)

        return await self._write(operation)

    async def create(
        self, key: str, value: bytes, *, expires: datetime.datetime | None = None
    ) -> Item | None:
        """Create `key` only if absent (or expired); None if it exists."""
        check_key(key)
        check_value(value)
        expires = check_expires(expires)

        def operation(transaction: _Transaction) -> Item | None:
            if transaction.current(key) is not None:
                return None
            return transaction.store(key, value, expires)

        return await self._write(operation)

    async def compare_and_swap(
        self,
        key: str,
        expected_revision: int,
        value: bytes,
        *,
        expires: datetime.datetime | None = None,
    ) -> Item | None:
        """Replace `key` only if its current revision is `expected_revision`; None otherwise."""
        check_key(key)
        check_revision(expected_revision, "expected_revision")
        check_value(value)
        expires = check_expires(expires)

        def operation(transaction: _Transaction) -> Item | None:
            current = transaction.current(key)
            if current is None or current.revision != expected_revision:
                return None
            return transaction.store(key, value, expires)

        return await self._write(operation)

    async def delete(self, key: str) -> bool:
        """Delete `key`; False if it did not exist."""
        check_key(key)

        def operation(transaction: _Transaction) -> bool:
            if transaction.current(key) is None:
                return False
            transaction.remove(key)
            return True

        return await self._write(operation)

    async def compare_and_delete(self, key: str, expected_revision: int) -> bool:
        """Delete `key` only at `expected_revision` (single-use tokens are consumed this way)."""
        check_key(key)
        check_revision(expected_revision, "expected_revision")

        def operation(transaction: _Transaction) -> bool:
            current = transaction.current(key)
            if current is None or current.revision != expected_revision:
                return False
            transaction.remove(key)
            return True

        return await self._write(operation)

    async def list_prefix(self, prefix: str, *, limit: int | None = None) -> list[Item]:
        """Live items whose keys start with `prefix`, in key order."""
        check_prefix(prefix)
        limit = check_limit(limit)
        now = _format_time(self._now())
        connection = self._connection
        range_sql, range_args = _key_range(prefix)

        def work() -> list[Item]:
            rows = connection.execute(
                f"SELECT key, value, revision, expires FROM items WHERE {range_sql}"  # noqa: S608
                " AND (expires IS NULL OR expires > ?) ORDER BY key LIMIT ?",
                (*range_args, now, -1 if limit is None else limit),
            ).fetchall()
            return [Item(row[0], bytes(row[1]), row[2], _parse_time(row[3])) for row in rows]

        return await self._run(work)

    async def watch(self, prefix: str, *, from_revision: int | None = None) -> Watcher:
        """Events under `prefix` after `from_revision` (default: from now on)."""
        check_prefix(prefix)
        if self._closed:
            raise WicketError(f"the backend {self.path} is closed")
        if from_revision is None:
            return self._hub.watch_live(prefix)
        check_revision(from_revision, "from_revision")
        return await self._hub.watch_from(prefix, from_revision, self._replay_page)

    async def close(self) -> None:
        """Stop the sweeper, end the watchers, and close the file."""
        if self._closed:
            return
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        self._closed = True
        self._hub.close_all()
        # Runs after every transaction already queued on the thread.
        await self._loop.run_in_executor(self._executor, self._connection.close)
        self._executor.shutdown(wait=True)

    # -- SQLite-specific ----------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The last revision published to watchers (the backend's current revision)."""
        return self._hub.revision

    async def sweep(self) -> int:
        """Delete expired items (DELETE events) and prune the event log; returns items deleted."""
        deleted = 0
        while True:
            batch = await self._write(self._sweep_batch)
            deleted += batch
            if batch < SWEEP_BATCH:
                break
        await self._prune_events()
        return deleted

    @staticmethod
    def _sweep_batch(transaction: _Transaction) -> int:
        keys = transaction.expired_keys(SWEEP_BATCH)
        for key in keys:
            transaction.remove(key)
        return len(keys)

    async def _prune_events(self) -> None:
        """Keep the last `event_log_size` events, none older than `event_log_age`."""
        oldest_kept = _format_time(self._now() - self._event_log_age)
        keep = self._event_log_size
        connection = self._connection

        def work() -> None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                revision = _meta(connection, "revision")
                compacted = _meta(connection, "compacted_revision")
                by_age = connection.execute(
                    "SELECT max(revision) FROM events WHERE created < ?", (oldest_kept,)
                ).fetchone()[0]
                cutoff = max(revision - keep, by_age or 0)
                if cutoff > compacted:
                    connection.execute("DELETE FROM events WHERE revision <= ?", (cutoff,))
                    connection.execute(
                        "UPDATE meta SET value = ? WHERE name = 'compacted_revision'", (cutoff,)
                    )
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

        await self._run(work)

    async def _sweep_forever(self) -> None:
        """The sweeper task: a failed sweep is logged and retried on the next tick."""
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                await self.sweep()
            except WicketError as exc:
                _log.warning("expiry sweep of %s failed: %s", self.path, exc)

    async def _replay_page(self, prefix: str, after: int) -> ReplayPage:
        """The next events under `prefix` after `after`, read from the log."""
        range_sql, range_args = _key_range(prefix)
        connection = self._connection

        def work() -> ReplayPage:
            connection.execute("BEGIN")  # one snapshot for the check and the page
            try:
                compacted = _meta(connection, "compacted_revision")
                if after < compacted:
                    raise WatchExpired(
                        f"events after revision {after} were pruned from the log of "
                        f"{self.path} (it now starts after {compacted}); list and re-watch"
                    )
                cursor = connection.execute(
                    "SELECT revision, kind, key, value, expires FROM events"  # noqa: S608
                    f" WHERE revision > ? AND {range_sql} ORDER BY revision",
                    (after, *range_args),
                )
                events: list[Event] = []
                size = 0
                for revision, kind, key, value, expires in cursor:
                    if len(events) >= REPLAY_PAGE_EVENTS or size >= REPLAY_PAGE_BYTES:
                        return ReplayPage(tuple(events), exhausted=False)
                    item = Item(key, bytes(value), revision, _parse_time(expires))
                    events.append(Event(EventKind(kind), item))
                    size += len(value)
                return ReplayPage(tuple(events), exhausted=True)
            finally:
                connection.execute("COMMIT")

        return await self._run(work)


def _meta(connection: sqlite3.Connection, name: str) -> int:
    """One counter from the meta table."""
    row = connection.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise WicketError(f"the backend's meta table has no {name!r} row")
    value: int = row[0]
    return value


def _open_file(path: Path) -> tuple[sqlite3.Connection, int]:
    """On the SQLite thread: create the file 0600, set WAL, check and migrate the schema."""
    try:
        _create_file(path)
    except OSError as exc:
        raise WicketError(f"cannot create the backend database {path}: {exc}") from exc
    try:
        connection = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise WicketError(f"cannot open the backend database {path}: {exc}") from exc
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise WicketError(f"the backend database {path} cannot use WAL mode (got {mode})")
        connection.execute("PRAGMA synchronous = NORMAL")
        problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise WicketError(f"the backend database {path} is corrupt: {'; '.join(problems[:5])}")
        revision = _migrate(connection, path)
    except sqlite3.Error as exc:
        connection.close()
        raise WicketError(
            f"{path} is not a usable Wicket backend database ({exc}); "
            "restore it from a backup or move it aside to start empty"
        ) from exc
    except BaseException:
        connection.close()
        raise
    return connection, revision


def _create_file(path: Path) -> None:
    """Create the parent directory 0700 and the file 0600 if missing; tighten a loose mode."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
        path.parent.chmod(0o700)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        mode = stat.S_IMODE(os.fstat(descriptor).st_mode)
        if mode & 0o077:
            os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)


def _migrate(connection: sqlite3.Connection, path: Path) -> int:
    """Bring the schema to SCHEMA_VERSION (each step one transaction); returns the revision."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        has_meta = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        if has_meta is None:
            other = connection.execute("SELECT name FROM sqlite_master LIMIT 1").fetchone()
            if other is not None:
                raise WicketError(
                    f"{path} is an SQLite database but not a Wicket backend (no meta table)"
                )
            version = 0
        else:
            version = connection.execute(
                "SELECT value FROM meta WHERE name = 'schema_version'"
            ).fetchone()[0]
        if version > SCHEMA_VERSION:
            raise WicketError(
                f"{path} has backend schema version {version}, newer than this Wicket "
                f"understands ({SCHEMA_VERSION}); upgrade Wicket"
            )
        for step in range(version, SCHEMA_VERSION):
            for statement in _MIGRATIONS[step]:
                connection.execute(statement)
            connection.execute(
                "UPDATE meta SET value = ? WHERE name = 'schema_version'", (step + 1,)
            )
        revision: int = connection.execute(
            "SELECT value FROM meta WHERE name = 'revision'"
        ).fetchone()[0]
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return revision
