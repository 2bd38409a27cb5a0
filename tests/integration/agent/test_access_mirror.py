"""The watch stream end to end in one process: a real auth service on a SQLite backend and
the agent's `AccessMirror` over mutual TLS. Changes reach the mirror within 2 s; users
travel without secrets; only db and proxy hosts may watch."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from wicket.agent.access import AccessMirror, AccessView
from wicket.api.client import AUTH_SERVER_NAME
from wicket.api.watch import WATCH_ACCESS_PATH
from wicket.auth.locks import LockService
from wicket.auth.roles import Role, RoleService
from wicket.auth.users import UserService
from wicket.authserver.api import host_certificate_for_self
from wicket.authserver.server import AuthServer, AuthSettings
from wicket.authserver.watch_api import MAX_STREAMS_PER_HOST
from wicket.backend.sqlite import SQLiteBackend
from wicket.identity import HostRole
from wicket.pki.keys import generate_private_key, private_key_pem
from wicket.pki.pem import certificate_pem
from wicket.tlsconfig import client_context

WITHIN = 2.0


@dataclass
class Auth:
    backend: SQLiteBackend
    server: AuthServer

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.address[1]}"

    def host_context(self, role: HostRole) -> ssl.SSLContext:
        key = generate_private_key()
        cert = host_certificate_for_self(
            self.server.cluster,
            key.public_key(),
            host_id=f"{role.value}-1",
            role=role,
            dns_names=[],
            ip_addresses=[],
        )
        return client_context(
            ca_pems=[self.server.cluster.host.cert_pem()],
            cert_chain_pem=certificate_pem(cert),
            key_pem=private_key_pem(key),
        )


@pytest.fixture
def watch_queue_size() -> int:
    return 1024


@pytest.fixture
async def auth(tmp_path: Path, watch_queue_size: int) -> AsyncIterator[Auth]:
    backend = await SQLiteBackend.open(
        tmp_path / "wicket.db", sweep_interval=0.2, watch_queue_size=watch_queue_size
    )
    users = UserService(backend)
    await users.create("bob", roles=["access"], traits={"db_names": ["test"]})
    server = await AuthServer.start(
        backend,
        AuthSettings(
            cluster_name="example.com",
            host="127.0.0.1",
            port=0,
            data_dir=tmp_path,
            nodename="test",
        ),
    )
    try:
        yield Auth(backend, server)
    finally:
        await server.close()
        await backend.close()


async def eventually(mirror: AccessMirror, check: Callable[[AccessView], bool]) -> None:
    deadline = time.monotonic() + WITHIN
    while time.monotonic() < deadline:
        view = mirror.view()
        if view is not None and check(view):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the mirror did not see the change within {WITHIN}s")


async def test_changes_reach_the_mirror_within_two_seconds(auth: Auth) -> None:
    context = auth.host_context(HostRole.DB)
    mirror = AccessMirror(auth.address, lambda: context)
    changes: list[None] = []
    mirror.add_listener(lambda: changes.append(None))
    task = asyncio.create_task(mirror.run())
    try:
        assert await mirror.wait_synced(10.0), mirror.last_error
        view = mirror.view()
        assert view is not None
        assert view.users["bob"].traits == {"db_names": ("test",)}
        assert {"access", "editor", "auditor"} <= set(view.roles)

        lock = await LockService(auth.backend).create(user="bob", message="incident 42")
        await eventually(mirror, lambda v: lock.id in v.locks)
        await RoleService(auth.backend).upsert(
            Role.model_validate({"metadata": {"name": "dev"}, "spec": {}})
        )
        await eventually(mirror, lambda v: "dev" in v.roles)
        await UserService(auth.backend).update("bob", roles=["dev"])
        await eventually(mirror, lambda v: v.users["bob"].roles == ("dev",))
        await UserService(auth.backend).delete("bob")
        await eventually(mirror, lambda v: "bob" not in v.users)
        await LockService(auth.backend).delete(lock.id)
        await eventually(mirror, lambda v: not v.locks)
        assert len(changes) >= 6  # the sync, then one per change
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def raw_stream(
    auth: Auth, context: ssl.SSLContext, lines: int
) -> tuple[int, list[dict[str, object]]]:
    connector = aiohttp.TCPConnector(ssl=context)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(
            f"https://{auth.address}{WATCH_ACCESS_PATH}", server_hostname=AUTH_SERVER_NAME
        ) as response,
    ):
        read: list[dict[str, object]] = []
        while response.status == 200 and len(read) < lines:
            line = await asyncio.wait_for(response.content.readline(), 10)
            read.append(json.loads(line))
        return response.status, read


async def test_users_travel_without_secrets_and_only_hosts_may_watch(auth: Auth) -> None:
    invite = await UserService(auth.backend).reset("bob")
    await UserService(auth.backend).complete_invite(invite.token, "a long enough password", None)
    status, lines = await raw_stream(auth, auth.host_context(HostRole.PROXY), 6)
    assert status == 200
    users = [line for line in lines if line.get("kind") == "user"]
    assert users == [
        {
            "type": "put",
            "kind": "user",
            "name": "bob",
            "revision": users[0]["revision"],
            "resource": {"name": "bob", "roles": ["access"], "traits": {"db_names": ["test"]}},
        }
    ]
    assert "argon2" not in json.dumps(lines)
    assert lines[-1]["type"] in {"synced", "ping"}

    no_cert = client_context(ca_pems=[auth.server.cluster.host.cert_pem()])
    status, _ = await raw_stream(auth, no_cert, 1)
    assert status == 403


async def test_a_hosts_oldest_streams_end_when_it_opens_too_many(auth: Auth) -> None:
    context = auth.host_context(HostRole.DB)
    url = f"https://{auth.address}{WATCH_ACCESS_PATH}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        responses = []
        for _ in range(MAX_STREAMS_PER_HOST + 1):
            response = await session.get(url, server_hostname=AUTH_SERVER_NAME)
            assert response.status == 200
            await asyncio.wait_for(response.content.readline(), 10)  # the stream is served
            responses.append(response)
        oldest = responses[0]

        async def drained() -> None:
            with contextlib.suppress(aiohttp.ClientPayloadError):  # cut, not finished
                while await oldest.content.readline():
                    pass

        await asyncio.wait_for(drained(), 10)  # ended by the server, not by a ping timeout
        assert await asyncio.wait_for(responses[-1].content.readline(), 10)
        for response in responses:
            response.close()


@pytest.mark.parametrize("watch_queue_size", [2])
async def test_a_stream_that_falls_behind_ends_and_the_mirror_takes_a_new_snapshot(
    auth: Auth,
) -> None:
    context = auth.host_context(HostRole.DB)
    mirror = AccessMirror(auth.address, lambda: context)
    task = asyncio.create_task(mirror.run())
    try:
        assert await mirror.wait_synced(10.0), mirror.last_error
        locks = LockService(auth.backend)
        for _ in range(8):
            await locks.create(user="bob", ttl=timedelta(seconds=2))
        await eventually(mirror, lambda v: len(v.locks) == 8)
        # the sweeper deletes all eight in one transaction: more than the watcher holds
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and mirror.streams_opened < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert mirror.streams_opened >= 2
        assert await mirror.wait_synced(10.0)
        await eventually(mirror, lambda v: not v.locks)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
