"""Audit end to end: a real auth service with `/v1/events`, the writer as an agent runs it
(host certificate, `POST /v1/events` over mutual TLS), and `wctl events ls`.

The auth service is stopped mid-stream and started again on the same port and
backend; the writer keeps emitting meanwhile, and no event may be lost or stored twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.unit.client.harness import LoopThread
from wicket.api.client import AuthClient
from wicket.audit.events import SessionAudit, format_time
from wicket.audit.writer import AuditWriter, auth_api_sender, spool_directory
from wicket.auth.databases import Database, DatabaseService
from wicket.auth.events import EventQuery
from wicket.authserver.api import host_certificate_for_self
from wicket.authserver.events_api import events_log_path
from wicket.authserver.server import AuthServer, AuthSettings
from wicket.backend.sqlite import SQLiteBackend
from wicket.cli.wctl import cli as wctl_cli
from wicket.cli.wctl_events import events_group
from wicket.errors import AccessDenied, BadParameter, NotFound
from wicket.identity import HostRole, Identity, IdentityKind
from wicket.pki.keys import generate_private_key, private_key_pem
from wicket.pki.pem import certificate_pem
from wicket.tlsconfig import client_context

WAIT = 30.0


@dataclass
class AuthHost:
    """An auth service (with the event routes) that the test can stop and start again."""

    data_dir: Path
    loop: LoopThread = field(default_factory=LoopThread)
    backend: SQLiteBackend | None = None
    server: AuthServer | None = None
    port: int = 0

    def start(self) -> None:
        async def start() -> None:
            if self.backend is None:
                self.backend = await SQLiteBackend.open(self.data_dir / "wicket.db")
            self.server = await AuthServer.start(
                self.backend,
                AuthSettings(
                    cluster_name="example.com",
                    host="127.0.0.1",
                    port=self.port,
                    data_dir=self.data_dir,
                    nodename="test",
                ),
            )
            self.port = self.server.address[1]

        self.loop.run(start())

    def stop(self) -> None:
        if self.server is not None:
            self.loop.run(self.server.close())
            self.server = None

    def stored(self) -> list[dict[str, Any]]:
        assert self.server is not None and self.server.events is not None
        return self.loop.run(self.server.events.search(EventQuery(limit=10_000))).events

    def serves(self, host_id: str, database: str) -> None:
        """A heartbeat: `host_id` serves `database` (for the next hour)."""
        assert self.backend is not None
        databases = DatabaseService(self.backend)
        served = Database(name=database, uri="localhost:27017")
        self.loop.run(databases.heartbeat(host_id, host_id, [served], ttl=timedelta(hours=1)))

    def ensure_user(self, identity: Identity) -> None:
        """The auth service decides from the user's current record: the user must exist."""
        assert self.server is not None
        users = self.server.api.users

        async def ensure() -> None:
            try:
                await users.get(identity.name)
            except NotFound:
                await users.create(identity.name, roles=identity.roles, traits={})

        self.loop.run(ensure())

    def client(self, identity: Identity) -> AuthClient:
        """An API client with a fresh certificate for `identity`, signed by the right CA."""
        assert self.server is not None
        cluster = self.server.cluster
        key = generate_private_key()
        if identity.kind is IdentityKind.HOST:
            assert identity.host_role is not None and identity.host_id is not None
            cert = host_certificate_for_self(
                cluster,
                key.public_key(),
                host_id=identity.host_id,
                role=identity.host_role,
                dns_names=["localhost"],
                ip_addresses=["127.0.0.1"],
            )
        else:
            cert = cluster.user.issue(key.public_key(), identity, ttl=timedelta(hours=1))
        context = client_context(
            ca_pems=[cluster.host.cert_pem()],
            cert_chain_pem=certificate_pem(cert),
            key_pem=private_key_pem(key),
        )
        return AuthClient(f"127.0.0.1:{self.port}", context, timeout=3.0)


@pytest.fixture
def auth(tmp_path: Path) -> Iterator[AuthHost]:
    host = AuthHost(tmp_path / "auth")
    host.start()
    try:
        yield host
    finally:
        host.stop()
        if host.backend is not None:
            host.loop.run(host.backend.close())
        host.loop.stop()


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


SESSION = SessionAudit(
    cluster="example.com",
    user="alice",
    roles=("access",),
    session_id="session-1",
    db_service="my-docdb",
    db_protocol="mongodb",
    db_user="wicket-docdb-user",
    db_name="test",
    client_addr="127.0.0.1:50123",
    server_id=None,
)


def wctl(admin_dir: Path, *args: str) -> Result:
    """The real wctl (which registers `events`), with the admin identity of this test."""
    assert wctl_cli.commands["events"] is events_group
    return CliRunner().invoke(
        wctl_cli,
        ["--identity", str(admin_dir), *args],
        prog_name="wctl",
        catch_exceptions=False,
    )


def test_no_event_lost_across_an_auth_restart(auth: AuthHost, tmp_path: Path) -> None:
    agent = Identity(
        cluster="example.com",
        kind=IdentityKind.HOST,
        name="agent-1",
        host_id="agent-1",
        host_role=HostRole.DB,
    )
    auth.serves("agent-1", "my-docdb")
    client = auth.client(agent)
    writer_loop = LoopThread()
    spool_dir = spool_directory(tmp_path / "agent")

    async def make_writer() -> AuditWriter:
        writer = AuditWriter(
            send=auth_api_sender(client),
            spool_dir=spool_dir,
            batch_size=20,
            flush_interval=0.05,
            retry_initial=0.1,
            retry_max=0.5,
            send_timeout=5.0,
        )
        writer.start()
        return writer

    writer = writer_loop.run(make_writer())
    emitted: list[str] = []

    def emit(count: int, command: str) -> None:
        async def work() -> None:
            for index in range(count):
                event = SESSION.query(
                    command=command,
                    database="test",
                    namespaces=["test.orders"],
                    body={command: "orders", "filter": {"n": index}, "password": "nope"},
                )
                emitted.append(event.id)
                writer.emit(event)
                if index % 10 == 0:
                    await asyncio.sleep(0.01)

        writer_loop.run(work())

    try:
        writer_loop.run(asyncio.sleep(0))
        emit_start = SESSION.start(success=True)
        emitted.append(emit_start.id)
        writer_loop.loop.call_soon_threadsafe(writer.emit, emit_start)
        emit(60, "find")
        wait_for(lambda: len(auth.stored()) == 61, "the first events stored")

        auth.stop()  # the auth service goes away mid-stream
        emit(80, "insert")
        wait_for(lambda: writer.stats.send_failures >= 1, "a failed delivery")
        assert writer.spool.count() >= 1
        emit(40, "update")
        auth.start()  # back on the same port, same backend
        emit(20, "delete")
        wait_for(lambda: len(auth.stored()) == len(emitted), "every event stored")
        wait_for(lambda: not list(spool_dir.glob("*.jsonl")), "the spool drained")
    finally:
        writer_loop.run(writer.close())
        writer_loop.run(client.close())
        writer_loop.stop()

    stored = auth.stored()
    assert sorted(event["id"] for event in stored) == sorted(emitted)
    assert {event["server_id"] for event in stored} == {"agent-1"}  # from the certificate
    assert all(event["query"]["password"] == "<redacted>" for event in stored[1:])
    log_lines = events_log_path(auth.data_dir).read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in log_lines) == sorted(emitted)

    # wctl events ls, as the admin on the auth host
    admin_dir = auth.data_dir / "admin"
    text = wctl(admin_dir, "events", "ls", "--type", "db.session.start")
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    header = ["Time", "Type", "User", "Session", "DB", "user", "Database", "Details"]
    assert lines[0].split() == header
    assert len(lines) == 3
    assert lines[2].split()[1:] == [
        "db.session.start",
        "alice",
        "session-1",
        "wicket-docdb-user",
        "my-docdb/test",
        "success",
    ]

    listed = json.loads(
        wctl(admin_dir, "events", "ls", "--since", "1h", "--limit", "5", "--format", "json").stdout
    )
    assert [event["id"] for event in listed] == [event["id"] for event in stored[-5:]]
    newest = json.loads(
        wctl(
            admin_dir, "events", "ls", "--user", "alice", "--limit", "3", "--format", "json"
        ).stdout
    )
    assert [event["command"] for event in newest] == ["delete"] * 3
    assert wctl(admin_dir, "events", "ls", "--user", "bob").stdout.count("\n") == 2
    yaml_out = wctl(admin_dir, "events", "ls", "--limit", "1", "--format", "yaml").stdout
    assert "type: db.session.query" in yaml_out
    bad = wctl(admin_dir, "events", "ls", "--since", "yesterday")
    assert bad.exit_code == 1 and "wctl: invalid time 'yesterday'" in bad.stderr


def test_who_may_send_and_read_events(auth: AuthHost) -> None:
    auditor = Identity(
        cluster="example.com", kind=IdentityKind.USER, name="carol", roles=("auditor",)
    )
    user = Identity(cluster="example.com", kind=IdentityKind.USER, name="dave", roles=("access",))
    event = SESSION.start(success=False, error="no role allows db user x").to_json()
    auth.serves("agent-1", "my-docdb")
    auth.ensure_user(auditor)
    auth.ensure_user(user)

    async def calls() -> None:
        async with auth.client(user) as client:
            with pytest.raises(AccessDenied, match="only Wicket hosts and the admin"):
                await client.post("/v1/events", {"events": [event]})
            with pytest.raises(AccessDenied, match="may not list events"):
                await client.get("/v1/events")
        proxy = Identity(
            cluster="example.com",
            kind=IdentityKind.HOST,
            name="proxy-1",
            host_id="proxy-1",
            host_role=HostRole.PROXY,
        )
        async with auth.client(proxy) as client:  # proxies emit no audit events
            with pytest.raises(BadParameter, match=r"host proxy-1 \(proxy\) may not record"):
                await client.post("/v1/events", {"events": [event]})
            with pytest.raises(AccessDenied):
                await client.get("/v1/events")
        agent = Identity(
            cluster="example.com",
            kind=IdentityKind.HOST,
            name="agent-1",
            host_id="agent-1",
            host_role=HostRole.DB,
        )
        async with auth.client(agent) as client:
            answer = await client.post("/v1/events", {"events": [event, event]})
            assert answer == {"accepted": 1, "duplicates": 1}
            too_many = {"events": [event] * 1001}
            with pytest.raises(Exception, match="at most 1000 events"):
                await client.post("/v1/events", too_many)
            huge = {**event, "id": "6a1c3f0e-0000-4000-8000-000000000000", "blob": "x" * 70_000}
            with pytest.raises(Exception, match="larger than 64 KiB"):
                await client.post("/v1/events", {"events": [huge]})
        async with auth.client(auditor) as client:
            found = await client.get("/v1/events?type=db.session.start")
            assert [item["id"] for item in found] == [event["id"]]
            assert found[0]["server_id"] == "agent-1" and found[0]["success"] is False

    auth.loop.run(calls())


def test_wctl_pages_and_filters(auth: AuthHost) -> None:
    admin = Identity(
        cluster="example.com", kind=IdentityKind.ADMIN, name="wicket-admin", roles=("editor",)
    )
    same_time = datetime.now(UTC) - timedelta(minutes=5)  # equal times: the order stays total
    sessions = [
        dataclasses.replace(SESSION, session_id=f"s-{n % 2}", db_service=f"db-{n % 2}")
        for n in range(400)
    ]
    events = [audit.start(success=True, now=same_time).to_json() for audit in sessions]

    async def send() -> None:
        async with auth.client(admin) as client:  # the admin may record anything
            await client.post("/v1/events", {"events": events})

    auth.loop.run(send())
    admin_dir = auth.data_dir / "admin"
    result = wctl(admin_dir, "events", "ls", "--format", "json")  # larger than one read
    assert result.exit_code == 0, result.output
    everything = [event["id"] for event in json.loads(result.stdout)]
    assert sorted(everything) == sorted(event["id"] for event in events)
    assert "--cursor" not in result.stderr

    pages: list[list[str]] = []
    cursor: list[str] = []
    while True:
        page = wctl(admin_dir, "events", "ls", "--limit", "150", "--format", "json", *cursor)
        assert page.exit_code == 0, page.output
        pages.insert(0, [event["id"] for event in json.loads(page.stdout)])
        found = re.search(r"--cursor (\S+)", page.stderr)
        if found is None:
            break
        cursor = ["--cursor", found.group(1)]
    assert [len(page) for page in pages] == [100, 150, 150]  # older pages come next
    assert [event for page in pages for event in page] == everything
    followed = wctl(admin_dir, "events", "ls", "--all", "--limit", "64", "--format", "json")
    assert [event["id"] for event in json.loads(followed.stdout)] == everything

    by_session = wctl(admin_dir, "events", "ls", "--session", "s-1", "--format", "json")
    one_session = json.loads(by_session.stdout)
    assert len(one_session) == 200 and {event["session_id"] for event in one_session} == {"s-1"}
    one_db = wctl(admin_dir, "events", "ls", "--db", "db-0", "--limit", "3")
    assert [line.split()[3:5] for line in one_db.stdout.splitlines()[2:]] == [
        ["s-0", "wicket-docdb-user"]
    ] * 3

    async def api() -> None:
        async with auth.client(admin) as client:
            page = await client.get("/v1/events/page?limit=5&db_service=db-1")
            assert len(page["events"]) == 5 and isinstance(page["next_cursor"], str)
            cursor = page["next_cursor"]
            older = await client.get(f"/v1/events/page?limit=500&db_service=db-1&cursor={cursor}")
            assert len(older["events"]) == 195 and older["next_cursor"] is None
            with pytest.raises(BadParameter, match="invalid cursor"):
                await client.get("/v1/events?cursor=nope")
            with pytest.raises(BadParameter, match="unknown query parameter 'session'"):
                await client.get("/v1/events?session=s-1")

    auth.loop.run(api())


@pytest.mark.slow
def test_limit_one_over_300k_events(auth: AuthHost) -> None:
    """`wctl events ls --limit 1` over 300,000 stored events answers the newest one, having
    decoded one row (timing: `python -m bench.audit_search`)."""
    assert auth.server is not None and auth.server.events is not None
    store = auth.server.events
    start = datetime.now(UTC) - timedelta(hours=6)
    template = SESSION.query(command="find", database="test", namespaces=[], body=None).to_json()

    async def fill() -> None:
        for first in range(0, 300_000, 5000):
            batch = [
                {
                    **template,
                    "id": str(uuid.UUID(int=n + 1)),
                    "time": format_time(start + timedelta(milliseconds=n // 3)),
                }
                for n in range(first, first + 5000)
            ]
            await store.append(batch)

    auth.loop.run(fill(), timeout=900)
    before = store.stats.decoded
    result = wctl(auth.data_dir / "admin", "events", "ls", "--limit", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    assert [event["id"] for event in json.loads(result.stdout)] == [str(uuid.UUID(int=300_000))]
    assert "--cursor" in result.stderr
    assert store.stats.decoded - before == 1
