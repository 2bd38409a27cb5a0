"""Auth service domain layer: which audit events a host may record (`POST /v1/events`).

A host certificate says which host is calling and for what (`host_role`), never
what the events claim. So an event a host posts is stamped with that host
(`server_id`) and must be one the host could have produced:

- a db agent (`host_role: db`) records only the events of the database sessions it
  serves (`HOST_EVENT_TYPES`): the session's database must be one the agent serves
  (see `ServedDatabases`), and every event of a session other than its start
  belongs to a session whose `db.session.start` this same host recorded (earlier in
  the batch, or stored before), for the same user and database;
- a proxy records nothing today (it emits no audit events; the agents behind it do);
- the auth host's own events (logins, locks, users, roles, tokens, certificates) are
  written by the auth service itself, never through the API.
The local admin identity may record anything (bulk imports, tests), as before.

Agents spool events while the auth service is unreachable and send them later, by
which time the database may no longer be served (config change, agent restart).
So "serves" means: heartbeats now, or heartbeated within the event retention
(`/audit_served/<host_id>/<database>`, refreshed from the live heartbeats whenever
the host records events, expiring after the retention).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from wicket.audit.events import EventType
from wicket.auth.events import DEFAULT_RETENTION, EventStore
from wicket.auth.store import DB_SERVERS, Clock, JsonStore, encode_time, key, utc_now
from wicket.backend.base import Backend
from wicket.identity import HostRole

SERVED = "/audit_served/"
REFRESH = timedelta(hours=1)  # rewrite a remembered pair at most this often per process
MAX_CACHED_PAIRS = 100_000

SESSION_TYPES = frozenset(
    {
        EventType.SESSION_START.value,
        EventType.SESSION_QUERY.value,
        EventType.SESSION_QUERY_FAILED.value,
        EventType.SESSION_END.value,
    }
)
# What each kind of host emits (grep `emit(` in agent/ and proxy/); everything else
# is recorded by the auth service itself.
HOST_EVENT_TYPES: Mapping[HostRole, frozenset[str]] = {
    HostRole.DB: SESSION_TYPES,
    HostRole.PROXY: frozenset(),
    HostRole.AUTH: frozenset(),
}


@dataclass(frozen=True)
class Refusal:
    """One event a host may not record, and why (no body: events may carry queries)."""

    event_id: str
    type: str
    reason: str

    def describe(self) -> str:
        """`event <id> (<type>): <reason>`."""
        return f"event {self.event_id} ({self.type}): {self.reason}"


class ServedDatabases:
    """The databases a host serves now (heartbeats) or served within the retention."""

    def __init__(
        self, backend: Backend, *, retention: timedelta = DEFAULT_RETENTION, clock: Clock = utc_now
    ) -> None:
        self.store = JsonStore(backend)
        self.retention = retention
        self.clock = clock
        self._written: dict[tuple[str, str], datetime] = {}

    async def of(self, host_id: str) -> set[str]:
        """Names of the databases `host_id` serves or served recently."""
        now = self.clock()
        live = {
            item.key.rsplit("/", 1)[-1]
            for item in await self.store.list(key(DB_SERVERS, host_id) + "/")
        }
        for name in live:
            written = self._written.get((host_id, name))
            if written is None or now - written >= REFRESH:
                await self.store.put(
                    key(SERVED, host_id, name),
                    {"host_id": host_id, "database": name, "seen": encode_time(now)},
                    expires=now + self.retention,
                )
                if len(self._written) >= MAX_CACHED_PAIRS:
                    self._written.clear()
                self._written[(host_id, name)] = now
        remembered = {
            item.key.rsplit("/", 1)[-1]
            for item in await self.store.list(key(SERVED, host_id) + "/")
        }
        return live | remembered


class HostEventPolicy:
    """Checks a host's batch against what that host may record."""

    def __init__(self, events: EventStore, served: ServedDatabases) -> None:
        self.events = events
        self.served = served

    async def refusals(
        self, host_id: str, role: HostRole | None, events: Sequence[Mapping[str, Any]]
    ) -> list[Refusal]:
        """Every event of the batch `host_id` may not record (empty: all allowed)."""
        allowed_types = HOST_EVENT_TYPES.get(role, frozenset()) if role else frozenset()
        who = f"host {host_id} ({role.value if role else 'no role'})"
        refused: list[Refusal] = []
        served: set[str] | None = None
        starts: dict[str, Mapping[str, Any]] = {}  # session id -> start seen in this batch
        for event in events:
            kind = str(event.get("type"))
            event_id = str(event.get("id"))
            if kind not in allowed_types:
                refused.append(
                    Refusal(
                        event_id,
                        kind,
                        f"{who} may not record {kind} events"
                        + (
                            ": only the db.session.* events of the sessions it serves"
                            if allowed_types
                            else ": those are recorded by the auth service itself"
                        ),
                    )
                )
                continue
            session_id, database = event.get("session_id"), event.get("db_service")
            if not isinstance(session_id, str) or not session_id:
                refused.append(Refusal(event_id, kind, f"{who}: a {kind} event needs a session_id"))
                continue
            if served is None:
                served = await self.served.of(host_id)
            if not isinstance(database, str) or database not in served:
                refused.append(
                    Refusal(event_id, kind, f"{who} does not serve database {database!r}")
                )
                continue
            if kind == EventType.SESSION_START.value:
                starts.setdefault(session_id, event)
                continue
            start = starts.get(session_id)
            if start is None:
                start = await self.events.session_start(session_id, server_id=host_id)
                if start is not None:
                    starts[session_id] = start
            if start is None:
                refused.append(
                    Refusal(event_id, kind, f"{who} recorded no start of session {session_id!r}")
                )
            elif start.get("db_service") != database or start.get("user") != event.get("user"):
                refused.append(
                    Refusal(
                        event_id,
                        kind,
                        f"session {session_id!r} was started for another user or database",
                    )
                )
        return refused
