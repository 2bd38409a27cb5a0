"""Audit layer: the event model's JSON form and validation on receipt."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from wicket.audit.events import (
    COMMON_FIELDS,
    AuditEvent,
    EventType,
    SessionAudit,
    SessionCounters,
    user_locked,
    user_login,
    validate_event,
)
from wicket.audit.redaction import REDACTED
from wicket.errors import BadParameter

NOW = datetime(2026, 11, 24, 8, 35, 0, 123456, tzinfo=UTC)
SESSION = SessionAudit(
    cluster="example.com",
    user="alice",
    roles=("access",),
    session_id="s-1",
    db_service="my-docdb",
    db_protocol="mongodb",
    db_user="wicket-docdb-user",
    db_name="test",
    client_addr="127.0.0.1:50000",
    server_id="agent-1",
)


def test_common_fields_are_stable() -> None:
    data = SESSION.start(success=True, now=NOW).to_json()
    assert list(data)[: len(COMMON_FIELDS)] == list(COMMON_FIELDS)
    assert data["time"] == "2026-11-24T08:35:00.123456Z"
    assert data["type"] == "db.session.start" and data["success"] is True and data["error"] is None
    assert uuid.UUID(data["id"])
    assert data["roles"] == ["access"] and data["server_id"] == "agent-1"
    assert validate_event(json.loads(json.dumps(data))) == data


def test_query_event_redacts_and_bounds_the_command() -> None:
    event = SESSION.query(
        command="createUser",
        database="admin",
        namespaces=["admin.$cmd"],
        body={"createUser": "bob", "pwd": "pw", "roles": ["x" * 9000]},
        now=NOW,
    ).to_json()
    assert event["command"] == "createUser" and event["namespaces"] == ["admin.$cmd"]
    assert event["query"]["pwd"] == REDACTED
    assert event["query"]["truncated"] is True
    assert len(json.dumps(event["query"], separators=(",", ":"))) <= 4096


def test_failed_and_end_events() -> None:
    failed = SESSION.query_failed(
        command="find", database="secret", namespaces=["secret.c"], body=None, error="denied"
    ).to_json()
    assert failed["type"] == "db.session.query.failed" and failed["error"] == "denied"
    end = SESSION.end(
        duration=timedelta(seconds=2.5),
        counters=SessionCounters(3, 4, 100, 2000),
    ).to_json()
    assert end["duration_seconds"] == 2.5
    assert (end["messages_from_client"], end["bytes_from_server"]) == (3, 2000)


def test_login_events() -> None:
    login = user_login(cluster="c", user="bob", success=False, error="bad password").to_json()
    assert login["type"] == "user.login" and login["success"] is False
    locked = user_locked(cluster="c", user="bob", locked_until=NOW, failures=5).to_json()
    assert locked["locked_until"] == "2026-11-24T08:35:00.123456Z" and locked["failures"] == 5


def test_details_may_not_shadow_common_fields() -> None:
    with pytest.raises(BadParameter, match="user"):
        AuditEvent(type=EventType.USER_LOGIN, details={"user": "mallory"})


def test_oversized_event_is_bounded() -> None:
    event = AuditEvent(type=EventType.SESSION_END, details={"error": "e" * 100_000})
    data = event.to_json()
    assert data["truncated"] is True
    assert validate_event(data)["id"] == event.id


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "not-a-uuid"}, "invalid event id"),
        ({"id": None}, "invalid event id"),
        ({"type": "Bad Type!"}, "invalid event type"),
        ({"time": "yesterday"}, "invalid time"),
        ({"user": 5}, '"user"'),
        ({"roles": "admin"}, '"roles"'),
        ({"blob": "x" * 70_000}, "larger than 64 KiB"),
    ],
)
def test_validation_refuses(change: dict[str, object], message: str) -> None:
    data = SESSION.start(success=True).to_json()
    data.update(change)
    with pytest.raises(BadParameter, match=message):
        validate_event(data)


def test_validation_normalizes_time_and_id() -> None:
    raw_id = str(uuid.uuid4()).upper()
    data = validate_event({"type": "user.login", "id": raw_id, "time": "2026-11-24T09:35:00+01:00"})
    assert data["id"] == raw_id.lower()
    assert data["time"] == "2026-11-24T08:35:00.000000Z"
    assert data["user"] is None


def test_administrative_events_name_the_actor_and_the_resource() -> None:
    from wicket.audit.events import ResourceAction, resource_changed

    event = resource_changed(
        cluster="example.com",
        resource="lock",
        action=ResourceAction.CREATED,
        name="3f1c0d7e-2a55-4b9e-9a39-1d2f6f9f0a01",
        actor="wicket-admin",
        actor_roles=("editor",),
        client_addr="127.0.0.1",
        changes={"target": {"user": "bob"}, "message": "incident 42"},
        now=NOW,
    )
    data = validate_event(event.to_json())
    assert data["type"] == "lock.created" == EventType.LOCK_CREATED.value
    assert (data["user"], data["roles"], data["client_addr"]) == (
        "wicket-admin",
        ["editor"],
        "127.0.0.1",
    )
    assert data["resource"] == "lock" and data["name"].startswith("3f1c0d7e")
    assert data["changes"] == {"target": {"user": "bob"}, "message": "incident 42"}
    kinds = {
        resource_changed(
            cluster="c", resource=resource, action=action, name="x", actor="a"
        ).type.value
        for resource, action in [
            ("user", ResourceAction.CREATED),
            ("user", ResourceAction.UPDATED),
            ("user", ResourceAction.DELETED),
            ("role", ResourceAction.UPDATED),
            ("token", ResourceAction.CREATED),
            ("database", ResourceAction.DELETED),
            ("lock", ResourceAction.DELETED),
        ]
    }
    assert kinds == {
        "user.created",
        "user.updated",
        "user.deleted",
        "role.updated",
        "token.created",
        "database.deleted",
        "lock.deleted",
    }
    with pytest.raises(BadParameter, match="no audit event"):
        resource_changed(
            cluster="c", resource="token", action=ResourceAction.UPDATED, name="x", actor="a"
        )


def test_certificate_issuance_carries_route_ttl_and_serial_never_a_key() -> None:
    from wicket.audit.events import cert_issued

    event = cert_issued(
        cluster="example.com",
        kind="database",
        subject="alice",
        serial=0xABC123,
        expires=NOW + timedelta(hours=1),
        ttl=timedelta(hours=1),
        actor="alice",
        actor_roles=("access",),
        db_service="my-docdb",
        db_protocol="mongodb",
        db_user="reader",
        db_name="test",
        client_addr="10.0.0.5",
        now=NOW,
    )
    data = validate_event(event.to_json())
    assert data["type"] == "cert.issued"
    assert (data["cert_kind"], data["subject"], data["serial"]) == ("database", "alice", "abc123")
    assert data["ttl_seconds"] == 3600 and data["expires"] == "2026-11-24T09:35:00.123456Z"
    assert (data["db_service"], data["db_user"], data["db_name"]) == ("my-docdb", "reader", "test")
    assert not {"public_key", "cert_pem", "key_pem"} & set(data)
