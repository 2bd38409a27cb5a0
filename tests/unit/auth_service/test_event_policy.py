"""Auth service domain: which audit events a host may record (types by host role, databases
it serves or served within the retention, sessions whose start it recorded)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.unit.auth_service.conftest import FakeClock

from wicket.audit.events import SessionAudit, SessionCounters, user_login
from wicket.auth.databases import Database, DatabaseService
from wicket.auth.event_policy import HostEventPolicy, ServedDatabases
from wicket.auth.events_sqlite import SQLiteEventStore
from wicket.backend.sqlite import SQLiteBackend
from wicket.identity import HostRole

DOCDB = Database(name="my-docdb", uri="docdb:27017")


def session(session_id: str = "s-1", user: str = "alice", db: str = "my-docdb") -> SessionAudit:
    return SessionAudit(
        cluster="c",
        user=user,
        roles=("access",),
        session_id=session_id,
        db_service=db,
        db_protocol="mongodb",
        db_user="u",
        db_name="test",
        client_addr=None,
        server_id=None,
    )


def query(audit: SessionAudit) -> dict[str, Any]:
    return audit.query(command="find", database="test", namespaces=[], body=None).to_json()


@pytest.fixture
async def events(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SQLiteEventStore]:
    store = await SQLiteEventStore.open(tmp_path / "events.sqlite", clock=clock)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def policy(
    backend: SQLiteBackend, events: SQLiteEventStore, clock: FakeClock
) -> HostEventPolicy:
    await DatabaseService(backend, clock=clock).heartbeat("agent-1", "host-a", [DOCDB])
    return HostEventPolicy(
        events, ServedDatabases(backend, clock=clock, retention=timedelta(days=30))
    )


async def reasons(
    policy: HostEventPolicy, batch: list[dict[str, Any]], host: str = "agent-1"
) -> list[str]:
    return [r.reason for r in await policy.refusals(host, HostRole.DB, batch)]


async def test_an_agent_records_its_own_sessions(
    policy: HostEventPolicy, events: SQLiteEventStore
) -> None:
    audit = session()
    start = audit.start(success=True).to_json()
    batch = [start, query(audit)]  # the start earlier in the same batch counts
    assert await reasons(policy, batch) == []
    await events.append([{**event, "server_id": "agent-1"} for event in batch])
    end = audit.end(duration=timedelta(seconds=1), counters=SessionCounters()).to_json()
    assert await reasons(policy, [end]) == []  # a start stored before counts too


async def test_what_an_agent_may_not_record(
    policy: HostEventPolicy, events: SQLiteEventStore
) -> None:
    login = user_login(cluster="c", user="bob", success=True).to_json()
    assert await reasons(policy, [login]) == [
        "host agent-1 (db) may not record user.login events: only the db.session.* events "
        "of the sessions it serves"
    ]
    other = session(db="other-db")
    assert await reasons(policy, [other.start(success=True).to_json()]) == [
        "host agent-1 (db) does not serve database 'other-db'"
    ]
    orphan = query(session("never-started"))
    assert await reasons(policy, [orphan]) == [
        "host agent-1 (db) recorded no start of session 'never-started'"
    ]
    # a start recorded by another host does not make the session this host's
    theirs = session("s-2")
    await events.append([{**theirs.start(success=True).to_json(), "server_id": "agent-2"}])
    assert await reasons(policy, [query(theirs)]) == [
        "host agent-1 (db) recorded no start of session 's-2'"
    ]
    # nor may a session's later events change its user or database
    mine = session("s-3")
    await events.append([{**mine.start(success=True).to_json(), "server_id": "agent-1"}])
    assert await reasons(policy, [query(session("s-3", user="root"))]) == [
        "session 's-3' was started for another user or database"
    ]
    no_session = {**query(mine), "session_id": None}
    assert "needs a session_id" in (await reasons(policy, [no_session]))[0]


async def test_proxies_and_auth_hosts_record_nothing(policy: HostEventPolicy) -> None:
    start = session().start(success=True).to_json()
    for role in (HostRole.PROXY, HostRole.AUTH, None):
        refused = await policy.refusals("proxy-1", role, [start])
        assert len(refused) == 1 and "may not record db.session.start" in refused[0].reason


async def test_a_database_served_within_the_retention_still_counts(
    policy: HostEventPolicy, backend: SQLiteBackend, clock: FakeClock
) -> None:
    start = session("s-9").start(success=True).to_json()
    assert await reasons(policy, [start]) == []  # seen heartbeating: remembered
    clock.advance(timedelta(hours=2))
    await backend.sweep()  # the heartbeat expired: the agent stopped serving it
    spooled = session("s-10").start(success=True).to_json()
    assert await reasons(policy, [spooled]) == []
    clock.advance(timedelta(days=31))
    await backend.sweep()
    late = session("s-11").start(success=True).to_json()
    assert await reasons(policy, [late]) == ["host agent-1 (db) does not serve database 'my-docdb'"]
