"""A real auth service and proxy (router + web side) on loopback, in a background thread.

The CLIs under test call `asyncio.run` themselves, so the servers get their own
event loop in a thread and click's CliRunner drives the CLIs in the test's thread.
The proxy is the real `ProxyService` (ALPN router, `wicket-auth` splice to the auth
service, web side), given a host certificate as the daemon gives it one.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from wicket.api.client import AuthClient
from wicket.auth.users import SecondFactor
from wicket.authserver.server import AuthServer, AuthSettings
from wicket.backend.sqlite import SQLiteBackend
from wicket.proxy.service import ProxyIdentity, ProxyService, ProxySettings
from wicket.tlsconfig import client_context

T = TypeVar("T")
TIMEOUT = 30.0
PASSWORD = "correct horse battery staple"


class LoopThread:
    """An asyncio loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = TIMEOUT) -> T:
        """Run a coroutine on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop the loop and join the thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=TIMEOUT)
        self.loop.close()


@dataclass
class Cluster:
    """A running auth service (and proxy) plus the handles tests need."""

    data_dir: Path
    loop: LoopThread
    backend: SQLiteBackend | None = None
    auth: AuthServer | None = None
    proxy_port: int = 0
    proxy: ProxyService | None = None

    @property
    def admin_dir(self) -> Path:
        """The local admin identity directory wctl uses."""
        return self.data_dir / "admin"

    @property
    def proxy_addr(self) -> str:
        """HOST:PORT of the proxy."""
        return f"127.0.0.1:{self.proxy_port}"

    @property
    def pin(self) -> str:
        """The cluster's CA pin."""
        assert self.auth is not None
        return self.auth.cluster.host.pin()

    def admin_call(self, method: str, path: str, body: Any = None) -> Any:
        """An API call as the local admin (setup and checks, not what is under test)."""
        info = json.loads((self.admin_dir / "cluster.json").read_text())
        context = client_context(
            ca_pems=[info["cas"]["host"].encode()],
            cert_chain_pem=(self.admin_dir / "cert.pem").read_bytes(),
            key_pem=(self.admin_dir / "key.pem").read_bytes(),
        )

        async def call() -> Any:
            async with AuthClient(info["auth_addr"], context) as client:
                return await client.call(method, path, body)

        return self.loop.run(call())

    def add_user(self, name: str, roles: list[str], traits: dict[str, list[str]]) -> None:
        """Create a user and set their password through the invite (as the invite page does)."""
        answer = self.admin_call(
            "POST", "/v1/users", {"name": name, "roles": roles, "traits": traits}
        )
        token = urlsplit(answer["invite_url"]).path.rsplit("/", 1)[-1]
        self.admin_call("POST", f"/v1/invites/{token}", {"password": PASSWORD})

    def heartbeat(self, host_id: str, hostname: str, databases: list[dict[str, Any]]) -> None:
        """Record a database agent's heartbeat straight in the domain service."""
        assert self.auth is not None
        from wicket.auth.databases import database_from_resource

        service = self.auth.api.databases
        parsed = [database_from_resource(item) for item in databases]
        self.loop.run(service.heartbeat(host_id, hostname, parsed))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _start(cluster: Cluster, second_factor: SecondFactor, with_proxy: bool) -> None:
    cluster.backend = await SQLiteBackend.open(cluster.data_dir / "wicket.db")
    cluster.proxy_port = _free_port()
    cluster.auth = await AuthServer.start(
        cluster.backend,
        AuthSettings(
            cluster_name="example.com",
            host="127.0.0.1",
            port=0,
            data_dir=cluster.data_dir,
            nodename="test",
            second_factor=second_factor,
            proxy_public_addr=(cluster.proxy_addr if with_proxy else "proxy.example.com:3080"),
        ),
    )
    if with_proxy:
        await _start_proxy(cluster, second_factor)


async def _start_proxy(cluster: Cluster, second_factor: SecondFactor) -> None:
    """The real proxy service, wired as the daemon wires it."""
    assert cluster.auth is not None
    identity = ProxyIdentity.issued_by(
        cluster.auth.cluster,
        host_id="proxy-test",
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
    )
    auth_host, auth_port = cluster.auth.address
    client = identity.auth_client(f"{auth_host}:{auth_port}")
    cluster.proxy = ProxyService(
        identity,
        ProxySettings(
            listen_host="127.0.0.1",
            listen_port=cluster.proxy_port,
            public_addr=cluster.proxy_addr,
            auth_host=auth_host,
            auth_port=auth_port,
            second_factor=second_factor.value,
        ),
        client,
    )
    await cluster.proxy.start()


async def _stop(cluster: Cluster) -> None:
    if cluster.proxy is not None:
        await cluster.proxy.close()
    if cluster.auth is not None:
        await cluster.auth.close()
    if cluster.backend is not None:
        await cluster.backend.close()


def start_cluster(
    data_dir: Path,
    *,
    second_factor: SecondFactor = SecondFactor.OFF,
    with_proxy: bool = False,
) -> Cluster:
    """Start an auth service (and, with `with_proxy`, a proxy) on loopback."""
    cluster = Cluster(data_dir, LoopThread())
    try:
        cluster.loop.run(_start(cluster, second_factor, with_proxy))
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def stop_cluster(cluster: Cluster) -> None:
    """Stop everything `start_cluster` started."""
    try:
        cluster.loop.run(_stop(cluster))
    finally:
        cluster.loop.stop()
