"""Auth service domain layer: audit events stored under `/events/` in the backend.

Keys are `/events/<UTC time, YYYYMMDDTHHMMSS.ffffffZ>-<uuid>`, so key order is time
order and a time range is a few key prefixes (one per hour). The key is made of the
event's own time and id: a resend of the same event finds its key taken and is
counted as a duplicate (events are idempotent by id). Retention is backend expiry:
`retention` after the event's time (or after receipt, when that is later, so a
long-spooled event is still kept for the full retention).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from wicket.audit.events import parse_time, validate_event
from wicket.auth.store import Clock, JsonStore, utc_now
from wicket.backend.base import Backend
from wicket.errors import BadParameter

EVENTS = "/events/"
DEFAULT_RETENTION = timedelta(days=30)
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
FUTURE_SLACK = timedelta(days=1)  # agents' clocks may run ahead a little


@dataclass(frozen=True)
class AppendResult:
    """How many events were new and how many were already stored."""

    accepted: int
    duplicates: int


def _key_time(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S.%fZ")


def event_key(event: Mapping[str, Any]) -> str:
    """The backend key of a validated event."""
    return f"{EVENTS}{_key_time(parse_time(event['time']))}-{event['id']}"


def type_matches(wanted: str, actual: object) -> bool:
    """Exact, or a family with a trailing `.*` (`db.session.*` matches `db.session.start`)."""
    if not isinstance(actual, str):
        return False
    if wanted.endswith(".*"):
        return actual.startswith(wanted[:-1])
    return actual == wanted


class EventStore:
    """Appends (deduplicated) and searches audit events."""

    def __init__(
        self, backend: Backend, *, retention: timedelta = DEFAULT_RETENTION, clock: Clock = utc_now
    ) -> None:
        if retention <= timedelta(0):
            raise BadParameter("event retention must be positive")
        self.store = JsonStore(backend)
        self.retention = retention
        self.clock = clock

    async def append(self, events: Iterable[Mapping[str, Any]]) -> AppendResult:
        """Store each event once (validated first; all or nothing on invalid input)."""
        valid = [validate_event(dict(event)) for event in events]
        now = self.clock()
        accepted = 0
        for event in valid:
            moment = parse_time(event["time"])
            expires = max(moment, now) + self.retention
            if await self.store.create(event_key(event), event, expires=expires) is not None:
                accepted += 1
        return AppendResult(accepted, len(valid) - accepted)

    async def search(
        self,
        *,
        type: str | None = None,
        user: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[dict[str, Any]]:
        """The newest `limit` matching events in `[since, until)`, oldest first."""
        if not 1 <= limit <= MAX_LIMIT:
            raise BadParameter(f"limit must be between 1 and {MAX_LIMIT}")
        now = self.clock()
        low = since if since is not None else now - self.retention - FUTURE_SLACK
        high = until if until is not None else now + FUTURE_SLACK
        if low.tzinfo is None or high.tzinfo is None:
            raise BadParameter("since and until must be timezone-aware")
        low_key, high_key = EVENTS + _key_time(low), EVENTS + _key_time(high)
        found: list[dict[str, Any]] = []
        hour = high.replace(minute=0, second=0, microsecond=0)
        while hour >= low.replace(minute=0, second=0, microsecond=0) and len(found) < limit:
            items = await self.store.list(EVENTS + hour.strftime("%Y%m%dT%H"))
            for item in reversed(items):
                if not low_key <= item.key < high_key:
                    continue
                data = item.data
                if type is not None and not type_matches(type, data.get("type")):
                    continue
                if user is not None and data.get("user") != user:
                    continue
                found.append(data)
                if len(found) >= limit:
                    break
            hour -= timedelta(hours=1)
        found.reverse()
        return found
