"""Storage layer: the audit event store in its own SQLite file (`EventStore` of `auth.events`).

Why its own file and not the KV backend: a search must be an indexed query whose
`LIMIT` the database honours, so `wctl events ls --limit 1` over 300,000 events
reads a handful of index entries and decodes one row. One table holds the events
(columns for every filter, the JSON body as text) with an index per filter, each
ending in the store's order `(time, seq)`.

Concurrency: the file is in WAL mode. All writes (appends, retention sweeps,
imports) run on one writer thread with its own connection; searches run on a
reader thread with a second connection, so a search never waits behind a write and
neither ever runs on the event loop that serves sessions.

Query plans are chosen here, not left to chance: an equality filter on
session/user/database/host picks that column's index (`INDEXED BY`); an exact type
picks the type index; a type family (`db.session.*`) with no other equality filter
is one indexed query per type of the family, merged (types are few); with no filter
the time index. Every plan walks its index backwards from the cursor and stops
after `limit + 1` rows (the extra row only says whether there is a page before).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from wicket.audit.events import format_time, parse_time, validate_event
from wicket.auth.events import (
    DEFAULT_RETENTION,
    AppendResult,
    EventPage,
    EventQuery,
    Position,
    decode_cursor,
    encode_cursor,
)
from wicket.auth.store import Clock, utc_now
from wicket.errors import BadParameter, WicketError

log = logging.getLogger("wicket.auth")

T = TypeVar("T")

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5000
SWEEP_INTERVAL = timedelta(hours=1)
SWEEP_BATCH = 10_000
EVENTS_FILE = "events.sqlite"
# The columns a search filters on by equality, in the order their index is preferred
# (most selective first).
EQUALITY_COLUMNS = ("session_id", "user", "db_service", "server_id")

_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    " time TEXT NOT NULL, type TEXT NOT NULL, user TEXT, session_id TEXT, db_service TEXT,"
    " server_id TEXT, expires TEXT NOT NULL, body TEXT NOT NULL)",
    "CREATE INDEX events_by_time ON events (time, seq)",
    "CREATE INDEX events_by_type ON events (type, time, seq)",
    "CREATE INDEX events_by_user ON events (user, time, seq)",
    "CREATE INDEX events_by_session_id ON events (session_id, time, seq)",
    "CREATE INDEX events_by_db_service ON events (db_service, time, seq)",
    "CREATE INDEX events_by_server_id ON events (server_id, time, seq)",
    "CREATE INDEX events_by_expiry ON events (expires)",
    "CREATE TABLE event_types (type TEXT PRIMARY KEY) WITHOUT ROWID",
    "INSERT INTO meta (name, value) VALUES ('schema_version', 1)",
)

assert SCHEMA_VERSION == 1  # the last statement of _SCHEMA writes it

_INSERT = (
    "INSERT OR IGNORE INTO events (id, time, type, user, session_id, db_service, server_id,"
    " expires, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def events_file(data_dir: Path) -> Path:
    """Where the auth service with `data_dir` keeps its audit events."""
    return Path(data_dir) / EVENTS_FILE


@dataclass
class StoreStats:
    """Counters for tests and status: rows decoded by searches, rows written."""

    decoded: int = 0
    appended: int = 0
    swept: int = 0


def _family_bounds(prefix: str) -> tuple[str, str]:
    """`type >= low AND type < high` selects the types starting with `prefix` (ends in `.`)."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if readonly:
        connection.execute("PRAGMA query_only = ON")
    return connection


def _open_writer(path: Path) -> sqlite3.Connection:
    """Open (creating 0600 and migrating if needed) the events file for writing."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    try:
        connection = _connect(path, readonly=False)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        tables = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if "meta" not in tables:
            connection.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                connection.execute(statement)
            connection.execute("COMMIT")
        version = connection.execute(
            "SELECT value FROM meta WHERE name = 'schema_version'"
        ).fetchone()[0]
    except sqlite3.Error as error:
        raise WicketError(f"cannot open the audit event store {path}: {error}") from None
    if version != SCHEMA_VERSION:
        connection.close()
        raise WicketError(
            f"the audit event store {path} has schema version {version}, this Wicket "
            f"knows {SCHEMA_VERSION}: run the Wicket version that wrote it, or move the file away"
        )
    return connection


class SQLiteEventStore:
    """Audit events in one SQLite file: one writer thread, one reader thread."""

    def __init__(
        self,
        path: Path,
        writer: sqlite3.Connection,
        reader: sqlite3.Connection,
        *,
        retention: timedelta,
        clock: Clock,
    ) -> None:
        self.path = path
        self.retention = retention
        self.clock = clock
        self.stats = StoreStats()
        self._writer = writer
        self._reader = reader
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="wicket-events-write")
        self._read_thread = ThreadPoolExecutor(1, thread_name_prefix="wicket-events-read")
        self._closed = False
        self._sweeper: asyncio.Task[None] | None = None
        self._lock = threading.Lock()  # guards stats across the two threads

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        retention: timedelta = DEFAULT_RETENTION,
        clock: Clock = utc_now,
        sweep_interval: timedelta | None = SWEEP_INTERVAL,
    ) -> SQLiteEventStore:
        """Open or create the store; sweep expired events now and every `sweep_interval`."""
        if retention <= timedelta(0):
            raise BadParameter("event retention must be positive")

        def work() -> tuple[sqlite3.Connection, sqlite3.Connection]:
            writer = _open_writer(path)
            return writer, _connect(path, readonly=True)

        writer, reader = await asyncio.to_thread(work)
        store = cls(path, writer, reader, retention=retention, clock=clock)
        await store.sweep()
        if sweep_interval is not None:
            store._sweeper = asyncio.create_task(
                store._sweep_forever(sweep_interval.total_seconds()), name="audit event retention"
            )
        return store

    async def _on(self, thread: ThreadPoolExecutor, work: Callable[[], T]) -> T:
        if self._closed:
            raise WicketError("the audit event store is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(thread, work)
        except sqlite3.Error as error:
            raise WicketError(f"audit event store {self.path}: {error}") from None

    # -- writes ---------------------------------------------------------------------------

    async def append(self, events: Iterable[Mapping[str, Any]]) -> AppendResult:
        """Store each event once (validated first; all or nothing on invalid input)."""
        valid = [validate_event(dict(event)) for event in events]
        if not valid:
            return AppendResult(0, 0)
        now = self.clock()
        # Encoding up to 16 MiB of events happens on the writer thread, not the loop.
        accepted = await self._on(
            self._write_thread, lambda: self._insert([self._row(event, now) for event in valid])
        )
        return AppendResult(accepted, len(valid) - accepted)

    def _row(self, event: dict[str, Any], now: datetime) -> tuple[Any, ...]:
        moment = parse_time(event["time"])
        expires = max(moment, now) + self.retention
        return (
            event["id"],
            event["time"],
            event["type"],
            event.get("user"),
            event.get("session_id"),
            event.get("db_service"),
            event.get("server_id"),
            format_time(expires),
            json.dumps(event, separators=(",", ":")),
        )

    def _insert(self, rows: list[tuple[Any, ...]]) -> int:
        """One transaction; the number of rows that were new (ids seen before are ignored)."""
        connection = self._writer
        connection.execute("BEGIN IMMEDIATE")
        try:
            accepted = 0
            for row in rows:
                accepted += connection.execute(_INSERT, row).rowcount
            connection.executemany(
                "INSERT OR IGNORE INTO event_types (type) VALUES (?)",
                [(kind,) for kind in {row[2] for row in rows}],
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        with self._lock:
            self.stats.appended += accepted
        return accepted

    async def sweep(self) -> int:
        """Delete events past their retention (in batches); how many were deleted."""
        cutoff = format_time(self.clock())

        def work() -> int:
            deleted = 0
            while True:
                connection = self._writer
                connection.execute("BEGIN IMMEDIATE")
                try:
                    count = connection.execute(
                        "DELETE FROM events WHERE seq IN (SELECT seq FROM events"
                        " INDEXED BY events_by_expiry WHERE expires <= ? LIMIT ?)",
                        (cutoff, SWEEP_BATCH),
                    ).rowcount
                    connection.execute("COMMIT")
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                deleted += count
                if count < SWEEP_BATCH:
                    return deleted

        deleted = await self._on(self._write_thread, work)
        with self._lock:
            self.stats.swept += deleted
        if deleted:
            log.info("audit retention: deleted %d events older than %s", deleted, self.retention)
        return deleted

    async def _sweep_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except WicketError as error:  # keep sweeping; the next round may succeed
                log.error("audit retention sweep failed: %s", error)

    # -- reads ----------------------------------------------------------------------------

    async def search(self, query: EventQuery) -> EventPage:
        """The newest `query.limit` matches before the cursor, oldest first."""
        return await self._on(self._read_thread, lambda: self._search(query))

    def _plan(self, query: EventQuery) -> list[tuple[str, str, list[Any]]]:
        """(index, WHERE clause, parameters) of each indexed query the search runs."""
        conditions: list[str] = []
        parameters: list[Any] = []
        index = "events_by_time"
        for column in EQUALITY_COLUMNS:
            value = getattr(query, column)
            if value is not None:
                conditions.append(f"{column} = ?")
                parameters.append(value)
                if index == "events_by_time":
                    index = f"events_by_{column}"
        if query.since is not None:
            conditions.append("time >= ?")
            parameters.append(format_time(query.since))
        if query.until is not None:
            conditions.append("time < ?")
            parameters.append(format_time(query.until))
        if query.cursor is not None:
            position = decode_cursor(query.cursor)
            conditions.append("(time, seq) < (?, ?)")
            parameters.extend([position.time, position.seq])
        family = query.type_family
        if query.type is not None and family is None:
            conditions.append("type = ?")
            parameters.append(query.type)
            if index == "events_by_time":
                index = "events_by_type"
        elif family is not None and index != "events_by_time":
            conditions.append("type >= ? AND type < ?")
            parameters.extend(_family_bounds(family))
        elif family is not None:  # one indexed query per type of the family
            low, high = _family_bounds(family)
            types = [
                row[0]
                for row in self._reader.execute(
                    "SELECT type FROM event_types WHERE type >= ? AND type < ?", (low, high)
                )
            ]
            return [
                ("events_by_type", " AND ".join(["type = ?", *conditions]), [kind, *parameters])
                for kind in types
            ]
        return [(index, " AND ".join(conditions) or "1", parameters)]

    def _search(self, query: EventQuery) -> EventPage:
        wanted = query.limit + 1
        positions: list[Position] = []
        for index, where, parameters in self._plan(query):
            rows = self._reader.execute(
                f"SELECT time, seq FROM events INDEXED BY {index} WHERE {where}"  # noqa: S608
                " ORDER BY time DESC, seq DESC LIMIT ?",
                [*parameters, wanted],
            ).fetchall()
            positions.extend(Position(row[0], row[1]) for row in rows)
        positions.sort(reverse=True)
        page = positions[: query.limit]
        more = len(positions) > query.limit
        if not page:
            return EventPage([], None)
        seqs = [position.seq for position in page]
        marks = ",".join("?" * len(seqs))
        bodies = dict(
            self._reader.execute(
                f"SELECT seq, body FROM events WHERE seq IN ({marks})",  # noqa: S608
                seqs,
            ).fetchall()
        )
        events = [json.loads(bodies[seq]) for seq in reversed(seqs) if seq in bodies]
        with self._lock:
            self.stats.decoded += len(events)
        return EventPage(events, encode_cursor(page[-1]) if more else None)

    def query_plan(self, query: EventQuery) -> list[str]:
        """SQLite's plan for each query of a search (for tests and troubleshooting)."""
        details: list[str] = []
        for index, where, parameters in self._plan(query):
            rows = self._reader.execute(
                "EXPLAIN QUERY PLAN SELECT time, seq FROM events"  # noqa: S608
                f" INDEXED BY {index} WHERE {where} ORDER BY time DESC, seq DESC LIMIT ?",
                [*parameters, query.limit + 1],
            ).fetchall()
            details.append("; ".join(str(row[-1]) for row in rows))
        return details

    async def session_start(
        self, session_id: str, *, server_id: str | None = None
    ) -> dict[str, Any] | None:
        """The first stored `db.session.start` of a session (recorded by `server_id`, if given)."""

        def work() -> dict[str, Any] | None:
            sql = (
                "SELECT body FROM events INDEXED BY events_by_session_id WHERE session_id = ?"
                " AND type = 'db.session.start'"
            )
            parameters: list[Any] = [session_id]
            if server_id is not None:
                sql += " AND server_id = ?"
                parameters.append(server_id)
            row = self._reader.execute(sql + " ORDER BY time, seq LIMIT 1", parameters).fetchone()
            if row is None:
                return None
            with self._lock:
                self.stats.decoded += 1
            found: dict[str, Any] = json.loads(row[0])
            return found

        return await self._on(self._read_thread, work)

    async def count(self) -> int:
        """How many events are stored (for tests and status)."""

        def work() -> int:
            value: int = self._reader.execute("SELECT count(*) FROM events").fetchone()[0]
            return value

        return await self._on(self._read_thread, work)

    async def close(self) -> None:
        """Stop the retention task, finish pending work, close both connections."""
        if self._closed:
            return
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        self._closed = True

        def shut(thread: ThreadPoolExecutor, connection: sqlite3.Connection) -> None:
            thread.submit(connection.close).result()
            thread.shutdown(wait=True)

        await asyncio.to_thread(shut, self._read_thread, self._reader)
        await asyncio.to_thread(shut, self._write_thread, self._writer)
