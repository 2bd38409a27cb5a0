"""Fixtures for router and tunnel tests: test PKI, a proxy (router + tunnel server) on loopback."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.integration.tunnel.certs import Issued, TestCA, client_context, server_context
from wicket.descriptors import DescriptorAlarm
from wicket.errors import AccessDenied
from wicket.proxy.router import Router, accept_tls
from wicket.tunnel.server import TunnelServer
from wicket.wire.tls_hello import ClientHello


@dataclass(frozen=True)
class Pki:
    """A host CA with a proxy certificate and agent certificates, and a rogue CA."""

    ca: TestCA
    proxy: Issued
    agent: Issued
    intruder: Issued
    rogue: Issued


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Certificates shared by the tunnel tests."""
    directory: Path = tmp_path_factory.mktemp("pki")
    ca = TestCA(directory, "host")
    rogue_ca = TestCA(directory, "rogue")
    return Pki(
        ca,
        ca.issue("proxy", server=True),
        ca.issue("agent-1", server=False),
        ca.issue("intruder", server=False),
        rogue_ca.issue("agent-1-rogue", server=False),
    )


async def authorize_known_agents(ssl_object: ssl.SSLObject) -> str:
    """The test's agent authorization: the certificate's CN must start with `agent-`."""
    der = ssl_object.getpeercert(binary_form=True)
    if der is None:
        raise AccessDenied("no client certificate")
    certificate = x509.load_der_x509_certificate(der)
    common_name = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(common_name, str)
    if not common_name.startswith("agent-"):
        raise AccessDenied(f"host {common_name} is not a database agent")
    return common_name


def bind_listener(port: int = 0) -> socket.socket:
    """A listening socket on loopback."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    return listener


@dataclass
class Proxy:
    """A router on loopback with the tunnel route, as the proxy service wires it."""

    pki: Pki
    pool_wait_timeout: float = 5.0
    port: int = 0
    tunnel: TunnelServer = field(init=False)
    router: Router = field(init=False)
    alarm: DescriptorAlarm = field(default_factory=DescriptorAlarm)
    _listener: socket.socket | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen (on the same port as before, after a restart) and serve."""
        self.tunnel = TunnelServer(
            authorize_agent=authorize_known_agents,
            pool_wait_timeout=self.pool_wait_timeout,
            hello_timeout=2.0,
            heartbeat_timeout=3.0,
            alarm=self.alarm,
        )
        context = server_context(self.pki.proxy, self.pki.ca, ["wicket-tunnel"])

        async def tunnel_route(sock: socket.socket, hello: ClientHello) -> None:
            reader, writer = await accept_tls(sock, context, handshake_timeout=5.0)
            await self.tunnel.handle(reader, writer)

        async def refuse(sock: socket.socket, hello: ClientHello) -> None:
            return

        self.router = Router(
            {"wicket-tunnel": tunnel_route}, refuse, peek_timeout=5.0, alarm=self.alarm
        )
        self._listener = bind_listener(self.port)
        self.port = self._listener.getsockname()[1]
        self._task = asyncio.create_task(self.router.serve(self._listener))

    async def stop(self) -> None:
        """Close the port and every connection on it."""
        await self.router.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._listener is not None:
            self._listener.close()


@pytest.fixture
async def start_proxy(pki: Pki) -> AsyncIterator[Callable[..., Awaitable[Proxy]]]:
    """Start proxies for a test; all are stopped afterwards."""
    started: list[Proxy] = []

    async def start(**kwargs: object) -> Proxy:
        proxy = Proxy(pki, **kwargs)  # type: ignore[arg-type]
        await proxy.start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        await proxy.stop()


def agent_context_factory(pki: Pki, issued: Issued) -> Callable[[], ssl.SSLContext]:
    """What the agent's TunnelClient uses to dial the proxy."""
    return lambda: client_context(pki.ca, issued)


async def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll a condition on the loop (test helper; every wait bounded)."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - polls state that no event announces
            await asyncio.sleep(0.02)
