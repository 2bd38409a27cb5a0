"""Audit layer (pure): the audit event model, its JSON form, and its validation on receipt.

Field names are stable (docs/audit.md lists them): every event has the common fields
(`type`, `id`, `time`, `cluster`, `user`, `roles`, `session_id`, `db_service`,
`db_protocol`, `db_user`, `db_name`, `client_addr`, `server_id`), unset ones as
null, plus the fields of its type. `time` is UTC with microseconds
(`2026-11-24T08:35:00.123456Z`); `id` is a UUID and makes an event idempotent: the
store keeps one event per id however often it is sent.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from types import MappingProxyType
from typing import Any

from wicket.audit.redaction import DEFAULT_LIMIT, command_json, json_size
from wicket.errors import BadParameter

MAX_EVENT_BYTES = 64 * 1024
MAX_TEXT = 1024
MAX_ERROR_TEXT = 4096
MAX_ROLES = 256
TYPE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}(\.[a-z0-9_-]{1,32}){0,7}$")

COMMON_FIELDS = (
    "type",
    "id",
    "time",
    "cluster",
    "user",
    "roles",
    "session_id",
    "db_service",
    "db_protocol",
    "db_user",
    "db_name",
    "client_addr",
    "server_id",
)
_TEXT_FIELDS = COMMON_FIELDS[3:5] + COMMON_FIELDS[6:]


class EventType(Enum):
    """What an event records."""

    SESSION_START = "db.session.start"
    SESSION_QUERY = "db.session.query"
    SESSION_QUERY_FAILED = "db.session.query.failed"
    SESSION_END = "db.session.end"
    USER_LOGIN = "user.login"
    USER_LOCKED = "user.locked"
    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_DELETED = "user.deleted"
    USER_RESET = "user.reset"
    ROLE_CREATED = "role.created"
    ROLE_UPDATED = "role.updated"
    ROLE_DELETED = "role.deleted"
    TOKEN_CREATED = "token.created"  # noqa: S105 - an event name, not a secret
    TOKEN_DELETED = "token.deleted"  # noqa: S105 - an event name, not a secret
    DATABASE_CREATED = "database.created"
    DATABASE_UPDATED = "database.updated"
    DATABASE_DELETED = "database.deleted"
    LOCK_CREATED = "lock.created"
    LOCK_DELETED = "lock.deleted"
    CERT_ISSUED = "cert.issued"


class ResourceAction(Enum):
    """What an administrative event did to a resource."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    RESET = "reset"


ADMIN_EVENTS: dict[tuple[str, ResourceAction], EventType] = {
    ("user", ResourceAction.CREATED): EventType.USER_CREATED,
    ("user", ResourceAction.UPDATED): EventType.USER_UPDATED,
    ("user", ResourceAction.DELETED): EventType.USER_DELETED,
    ("user", ResourceAction.RESET): EventType.USER_RESET,
    ("role", ResourceAction.CREATED): EventType.ROLE_CREATED,
    ("role", ResourceAction.UPDATED): EventType.ROLE_UPDATED,
    ("role", ResourceAction.DELETED): EventType.ROLE_DELETED,
    ("token", ResourceAction.CREATED): EventType.TOKEN_CREATED,
    ("token", ResourceAction.DELETED): EventType.TOKEN_DELETED,
    ("database", ResourceAction.CREATED): EventType.DATABASE_CREATED,
    ("database", ResourceAction.UPDATED): EventType.DATABASE_UPDATED,
    ("database", ResourceAction.DELETED): EventType.DATABASE_DELETED,
    ("lock", ResourceAction.CREATED): EventType.LOCK_CREATED,
    ("lock", ResourceAction.DELETED): EventType.LOCK_DELETED,
}


def format_time(moment: datetime) -> str:
    """UTC with microseconds and a `Z`: the one time format of events."""
    if moment.tzinfo is None:
        raise BadParameter("event times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: object) -> datetime:
    """An ISO 8601 time (`Z` or offset; naive means UTC) as aware UTC."""
    if not isinstance(text, str) or not text or len(text) > 64:
        raise BadParameter(f"invalid time {text!r}: use ISO 8601 like 2026-11-24T08:00:00Z")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadParameter(
            f"invalid time {text!r}: use ISO 8601 like 2026-11-24T08:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AuditEvent:
    """One audit record; `details` holds the fields of its type (see docs/audit.md)."""

    type: EventType
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=_now)
    cluster: str | None = None
    user: str | None = None
    roles: tuple[str, ...] = ()
    session_id: str | None = None
    db_service: str | None = None
    db_protocol: str | None = None
    db_user: str | None = None
    db_name: str | None = None
    client_addr: str | None = None
    server_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        clash = set(self.details) & set(COMMON_FIELDS)
        if clash:
            raise BadParameter(f"event details may not redefine {', '.join(sorted(clash))}")

    def to_json(self) -> dict[str, Any]:
        """The event as plain JSON data (what is sent, spooled and stored)."""
        data: dict[str, Any] = {
            "type": self.type.value,
            "id": self.id,
            "time": format_time(self.time),
            "cluster": self.cluster,
            "user": self.user,
            "roles": list(self.roles),
            "session_id": self.session_id,
            "db_service": self.db_service,
            "db_protocol": self.db_protocol,
            "db_user": self.db_user,
            "db_name": self.db_name,
            "client_addr": self.client_addr,
            "server_id": self.server_id,
        }
        data.update(self.details)
        if json_size(data) > MAX_EVENT_BYTES:  # only oversized free text can get here
            for name, value in list(data.items()):
                if name not in COMMON_FIELDS and isinstance(value, str | dict | list):
                    data[name] = "<dropped: event larger than 64 KiB>"
            data["truncated"] = True
        return data


@dataclass(frozen=True)
class SessionCounters:
    """Traffic of one database session, for its end event."""

    messages_from_client: int = 0
    messages_from_server: int = 0
    bytes_from_client: int = 0
    bytes_from_server: int = 0


def _error_text(error: str | BaseException | None) -> str | None:
    if error is None:
        return None
    text = str(error)
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "..."


@dataclass(frozen=True)
class SessionAudit:
    """Who and what a database session is; builds that session's events."""

    cluster: str
    user: str
    roles: tuple[str, ...]
    session_id: str
    db_service: str
    db_protocol: str
    db_user: str | None
    db_name: str | None
    client_addr: str | None
    server_id: str | None
    query_limit: int = DEFAULT_LIMIT

    def _event(self, kind: EventType, now: datetime | None, **details: Any) -> AuditEvent:
        return AuditEvent(
            type=kind,
            time=now or _now(),
            cluster=self.cluster,
            user=self.user,
            roles=self.roles,
            session_id=self.session_id,
            db_service=self.db_service,
            db_protocol=self.db_protocol,
            db_user=self.db_user,
            db_name=self.db_name,
            client_addr=self.client_addr,
            server_id=self.server_id,
            details=MappingProxyType(details),
        )

    def start(
        self,
        *,
        success: bool,
        error: str | BaseException | None = None,
        now: datetime | None = None,
    ) -> AuditEvent:
        """`db.session.start`: the session was authorized (or refused, with why)."""
        return self._event(EventType.SESSION_START, now, success=success, error=_error_text(error))

    def query(
        self,
        *,
        command: str,
        database: str | None,
        namespaces: Sequence[str],
        body: Mapping[str, Any] | bytes | None,
        now: datetime | None = None,
    ) -> AuditEvent:
        """`db.session.query`: one client message that was allowed and forwarded."""
        return self._event(
            EventType.SESSION_QUERY,
            now,
            **self._query_fields(command, database, namespaces, body),
        )

    def query_failed(
        self,
        *,
        command: str,
        database: str | None,
        namespaces: Sequence[str],
        body: Mapping[str, Any] | bytes | None,
        error: str | BaseException,
        now: datetime | None = None,
    ) -> AuditEvent:
        """`db.session.query.failed`: one client message that was refused, and why."""
        return self._event(
            EventType.SESSION_QUERY_FAILED,
            now,
            **self._query_fields(command, database, namespaces, body),
            error=_error_text(error),
        )

    def end(
        self,
        *,
        duration: timedelta,
        counters: SessionCounters,
        error: str | BaseException | None = None,
        now: datetime | None = None,
    ) -> AuditEvent:
        """`db.session.end`: how long the session lasted and what it carried."""
        return self._event(
            EventType.SESSION_END,
            now,
            duration_seconds=round(duration.total_seconds(), 6),
            messages_from_client=counters.messages_from_client,
            messages_from_server=counters.messages_from_server,
            bytes_from_client=counters.bytes_from_client,
            bytes_from_server=counters.bytes_from_server,
            error=_error_text(error),
        )

    def _query_fields(
        self,
        command: str,
        database: str | None,
        namespaces: Sequence[str],
        body: Mapping[str, Any] | bytes | None,
    ) -> dict[str, Any]:
        names = [name[:MAX_TEXT] for name in list(namespaces)[:64]]
        return {
            "command": command[:MAX_TEXT],
            "database": None if database is None else database[:MAX_TEXT],
            "namespaces": names,
            "query": None if body is None else command_json(body, self.query_limit),
        }


def user_login(
    *,
    cluster: str,
    user: str,
    success: bool,
    error: str | BaseException | None = None,
    roles: Sequence[str] = (),
    client_addr: str | None = None,
    server_id: str | None = None,
    method: str = "password",
    now: datetime | None = None,
) -> AuditEvent:
    """`user.login`: a login attempt and its outcome (the reason when refused)."""
    return AuditEvent(
        type=EventType.USER_LOGIN,
        time=now or _now(),
        cluster=cluster,
        user=user[:MAX_TEXT],
        roles=tuple(roles),
        client_addr=client_addr,
        server_id=server_id,
        details=MappingProxyType(
            {"success": success, "error": _error_text(error), "method": method}
        ),
    )


def user_locked(
    *,
    cluster: str,
    user: str,
    locked_until: datetime,
    failures: int,
    client_addr: str | None = None,
    server_id: str | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    """`user.locked`: repeated failures locked a user out until `locked_until`."""
    return AuditEvent(
        type=EventType.USER_LOCKED,
        time=now or _now(),
        cluster=cluster,
        user=user[:MAX_TEXT],
        client_addr=client_addr,
        server_id=server_id,
        details=MappingProxyType({"locked_until": format_time(locked_until), "failures": failures}),
    )


def _short(value: str | None) -> str | None:
    return None if value is None else value[:MAX_TEXT]


def resource_changed(
    *,
    cluster: str,
    resource: str,
    action: ResourceAction,
    name: str,
    actor: str,
    actor_roles: Sequence[str] = (),
    client_addr: str | None = None,
    server_id: str | None = None,
    changes: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    """`user.created`, `role.updated`, `lock.deleted`, ...: an administrator changed a resource.

    `user`/`roles` are who did it; `resource` and `name` what was changed; `changes` the
    non-secret facts of the change (roles given, token type, lock target and message).
    Never pass a secret in `changes`: join token values and invite URLs stay out.
    """
    event_type = ADMIN_EVENTS.get((resource, action))
    if event_type is None:
        raise BadParameter(f"no audit event for {action.value} {resource}")
    details: dict[str, Any] = {"resource": resource, "name": name[:MAX_TEXT]}
    if changes:
        details["changes"] = dict(changes)
    return AuditEvent(
        type=event_type,
        time=now or _now(),
        cluster=cluster,
        user=_short(actor),
        roles=tuple(actor_roles),
        client_addr=client_addr,
        server_id=server_id,
        details=MappingProxyType(details),
    )


def cert_issued(
    *,
    cluster: str,
    kind: str,
    subject: str,
    serial: int,
    expires: datetime,
    ttl: timedelta,
    actor: str,
    actor_roles: Sequence[str] = (),
    db_service: str | None = None,
    db_protocol: str | None = None,
    db_user: str | None = None,
    db_name: str | None = None,
    client_addr: str | None = None,
    server_id: str | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    """`cert.issued`: a certificate was issued (`kind`: user, database or mongodb).

    `subject` is whom the certificate names, `user` who asked (the same for a login;
    the agent for a MongoDB client certificate); the route is in the db_* fields.
    The serial identifies the certificate; no key ever appears here.
    """
    return AuditEvent(
        type=EventType.CERT_ISSUED,
        time=now or _now(),
        cluster=cluster,
        user=_short(actor),
        roles=tuple(actor_roles),
        db_service=_short(db_service),
        db_protocol=_short(db_protocol),
        db_user=_short(db_user),
        db_name=_short(db_name),
        client_addr=client_addr,
        server_id=server_id,
        details=MappingProxyType(
            {
                "cert_kind": kind,
                "subject": subject[:MAX_TEXT],
                "serial": format(serial, "x"),
                "expires": format_time(expires),
                "ttl_seconds": int(ttl.total_seconds()),
            }
        ),
    )


# -- validation on receipt (the auth service trusts nothing it is sent) ----------------------


def _check_text(data: Mapping[str, Any], name: str) -> None:
    value = data.get(name)
    if value is None:
        return
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise BadParameter(f'event field "{name}" must be a string of at most {MAX_TEXT} chars')


def validate_event(data: object) -> dict[str, Any]:
    """A received event checked and normalized (canonical time and id); BadParameter if not."""
    if not isinstance(data, dict):
        raise BadParameter("each event must be a JSON object")
    if json_size(data) > MAX_EVENT_BYTES:
        raise BadParameter(f"an event is larger than {MAX_EVENT_BYTES // 1024} KiB")
    kind = data.get("type")
    if not isinstance(kind, str) or not TYPE_RE.match(kind):
        raise BadParameter(f"invalid event type {kind!r}")
    raw_id = data.get("id")
    try:
        event_id = str(uuid.UUID(raw_id)) if isinstance(raw_id, str) and len(raw_id) <= 64 else ""
    except ValueError:
        event_id = ""
    if not event_id:
        raise BadParameter(f"invalid event id {raw_id!r}: must be a UUID")
    moment = parse_time(data.get("time"))
    for name in _TEXT_FIELDS:
        _check_text(data, name)
    roles = data.get("roles", [])
    if roles is None:
        roles = []
    if (
        not isinstance(roles, list)
        or len(roles) > MAX_ROLES
        or not all(isinstance(role, str) and len(role) <= MAX_TEXT for role in roles)
    ):
        raise BadParameter('event field "roles" must be a list of strings')
    normalized = dict(data)
    normalized.update(id=event_id, time=format_time(moment), roles=roles)
    for name in COMMON_FIELDS:
        normalized.setdefault(name, None)
    return normalized
