"""Auth service domain layer: the audit event store's interface, its queries and cursors.

The store is a table, not keys in the KV backend: every search is one indexed,
limited query (`limit` honoured by the database, never by decoding a whole window
and filtering), run off the event loop that serves sessions. `EventStore` is the
interface; `wicket.auth.events_sqlite.SQLiteEventStore` is today's implementation
(issue 9 adds PostgreSQL behind the same interface).

Order and pages: events are ordered by `(time, seq)`, where `seq` is the store's
arrival number, so events with equal timestamps still have one stable order. A
search answers the newest `limit` matching events, oldest first (newest last, like
`tail`), and a cursor when older matches remain: passing that cursor with the same
filters answers the `limit` matches just before the page (the next page goes back in
time, which is what `wctl events ls` shows: the newest first, then "more before").
A cursor is an opaque string; it names a position, not a query.

Events are idempotent by id (agents resend after spooling); retention deletes events
`retention` after their time (or after receipt, when that is later).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from wicket.errors import BadParameter

DEFAULT_RETENTION = timedelta(days=30)
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
MAX_CURSOR_TEXT = 200


@dataclass(frozen=True)
class AppendResult:
    """How many events were new and how many were already stored."""

    accepted: int
    duplicates: int


@dataclass(frozen=True, order=True)
class Position:
    """Where an event sits in the store's order: its time (fixed-width UTC text) and seq."""

    time: str
    seq: int


def encode_cursor(position: Position) -> str:
    """An opaque cursor for "the events before `position`"."""
    raw = json.dumps([position.time, position.seq], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> Position:
    """The position a cursor names; BadParameter if it is not one of ours."""
    invalid = BadParameter("invalid cursor: pass the next_cursor of a previous answer")
    if not text or len(text) > MAX_CURSOR_TEXT:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = json.loads(raw)
    except (ValueError, binascii.Error):
        raise invalid from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], str)
        or len(value[0]) > 64
        or not isinstance(value[1], int)
        or isinstance(value[1], bool)
        or value[1] < 0
    ):
        raise invalid
    return Position(value[0], value[1])


def type_matches(wanted: str, actual: object) -> bool:
    """Exact, or a family with a trailing `.*` (`db.session.*` matches `db.session.start`)."""
    if not isinstance(actual, str):
        return False
    if wanted.endswith(".*"):
        return actual.startswith(wanted[:-1])
    return actual == wanted


@dataclass(frozen=True)
class EventQuery:
    """What to search: filters (all optional, combined with AND), a window, a page."""

    type: str | None = None
    user: str | None = None
    session_id: str | None = None
    db_service: str | None = None
    server_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise BadParameter(f"limit must be between 1 and {MAX_LIMIT}")
        for moment in (self.since, self.until):
            if moment is not None and moment.tzinfo is None:
                raise BadParameter("since and until must be timezone-aware")
        if self.cursor is not None:
            decode_cursor(self.cursor)

    @property
    def type_family(self) -> str | None:
        """The prefix of a family filter (`db.session.` for `db.session.*`), if it is one."""
        if self.type is not None and self.type.endswith(".*"):
            return self.type[:-1]
        return None


@dataclass(frozen=True)
class EventPage:
    """One page of a search: events oldest first, and the cursor to the page before."""

    events: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None


class EventStore(Protocol):
    """Where the auth service keeps audit events (append, search, a session's start)."""

    async def append(self, events: Iterable[Mapping[str, Any]]) -> AppendResult:
        """Store each event once (validated first; all or nothing on invalid input)."""

    async def search(self, query: EventQuery) -> EventPage:
        """The newest `query.limit` matches before the cursor, oldest first."""

    async def session_start(
        self, session_id: str, *, server_id: str | None = None
    ) -> dict[str, Any] | None:
        """The first stored `db.session.start` of a session (recorded by `server_id`, if given)."""

    async def sweep(self) -> int:
        """Delete events past their retention; how many were deleted."""

    async def close(self) -> None:
        """Stop background work and release the database."""
