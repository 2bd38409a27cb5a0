"""Tests of wicket.server_identity: clients accept a server only for its host role.

Certificates come from the real PKI (wicket.pki); the TLS tests run a real TLS
server on loopback and dial it through asyncio streams, aiohttp and uvloop.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import uvloop

from wicket.api.client import AUTH_ALPN, AuthClient
from wicket.client.webapi import ProxyWebClient
from wicket.errors import AccessDenied, WicketError
from wicket.identity import HostRole, Identity, IdentityKind
from wicket.pki.authority import CAKind, CertificateAuthority
from wicket.pki.keys import generate_private_key, private_key_pem
from wicket.pki.pem import certificate_pem
from wicket.server_identity import (
    WrongServer,
    check_server_certificate,
    describe_verification_error,
    require_server_role,
)
from wicket.tlsconfig import client_context, server_context

CLUSTER = "example.com"


@pytest.fixture(scope="module")
def host_ca() -> CertificateAuthority:
    return CertificateAuthority.create(CAKind.HOST, CLUSTER)


@pytest.fixture(scope="module")
def user_ca() -> CertificateAuthority:
    return CertificateAuthority.create(CAKind.USER, CLUSTER)


def host_pair(
    ca: CertificateAuthority, role: HostRole, names: tuple[str, ...] = ("localhost",)
) -> tuple[bytes, bytes]:
    """A host certificate (server and client) naming `names` and 127.0.0.1, and its key."""
    key = generate_private_key()
    identity = Identity(
        cluster=CLUSTER, kind=IdentityKind.HOST, name="h-1", host_id="h-1", host_role=role
    )
    cert = ca.issue(
        key.public_key(),
        identity,
        ttl=timedelta(hours=1),
        server=True,
        client=True,
        dns_names=list(names),
        ip_addresses=["127.0.0.1"],
    )
    return certificate_pem(cert), private_key_pem(key)


def der_of(pem_cert: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem_cert.decode())


@pytest.mark.parametrize("role", list(HostRole))
def test_each_role_is_accepted_only_as_itself(
    host_ca: CertificateAuthority, role: HostRole
) -> None:
    der = der_of(host_pair(host_ca, role)[0])
    check_server_certificate(der, role, "localhost")
    for other in HostRole:
        if other is role:
            continue
        with pytest.raises(WrongServer) as caught:
            check_server_certificate(der, other, "localhost")
        article = "an" if role is HostRole.AUTH else "a"
        assert f"presented a certificate for {article} {role.value} host (h-1)" in str(caught.value)


def test_a_db_host_is_not_the_proxy_message(host_ca: CertificateAuthority) -> None:
    der = der_of(host_pair(host_ca, HostRole.DB)[0])
    with pytest.raises(WrongServer) as caught:
        check_server_certificate(der, HostRole.PROXY, "proxy.example.com")
    text = caught.value.describe("proxy.example.com:3080")
    assert text.startswith(
        "the server at proxy.example.com:3080 presented a certificate for a db host (h-1), "
        "not the proxy"
    )
    assert "closed before anything was sent" in text
    assert describe_verification_error(
        caught.value, "x:1", HostRole.PROXY
    ) == caught.value.describe("x:1")


def test_user_certificates_are_not_servers(user_ca: CertificateAuthority) -> None:
    key = generate_private_key()
    alice = Identity(cluster=CLUSTER, kind=IdentityKind.USER, name="alice")
    cert = user_ca.issue(key.public_key(), alice, ttl=timedelta(hours=1))
    with pytest.raises(WrongServer, match=r"for a user \(alice\), not the auth service"):
        check_server_certificate(der_of(certificate_pem(cert)), HostRole.AUTH, "wicket-auth")


def test_insecure_contexts_are_left_alone() -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    assert require_server_role(context, HostRole.PROXY).sslobject_class is ssl.SSLObject


@dataclass
class FakeServer:
    """A TLS server on loopback that records every byte a client sends after the handshake."""

    cert_pem: bytes
    key_pem: bytes
    alpn: tuple[str, ...] = ("http/1.1",)
    received: bytearray = field(default_factory=bytearray)
    port: int = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                self.received += chunk
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
                )
                await writer.drain()
                break
        except (ssl.SSLError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self) -> asyncio.Server:
        context = server_context(self.cert_pem, self.key_pem, alpn=list(self.alpn))
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=context)
        self.port = server.sockets[0].getsockname()[1]
        return server


@pytest.fixture
async def db_server(host_ca: CertificateAuthority) -> AsyncIterator[FakeServer]:
    """A server presenting a db host certificate that names everything (a pre-fix join)."""
    cert, key = host_pair(host_ca, HostRole.DB, ("localhost", "wicket-auth"))
    fake = FakeServer(cert, key, alpn=("http/1.1", AUTH_ALPN, "wicket-tunnel"))
    server = await fake.start()
    yield fake
    server.close()
    await server.wait_closed()


async def test_proxy_web_client_refuses_a_db_host(
    db_server: FakeServer, host_ca: CertificateAuthority
) -> None:
    context = client_context(ca_pems=[host_ca.cert_pem()], alpn=["http/1.1"])
    client = ProxyWebClient(f"localhost:{db_server.port}", context)
    with pytest.raises(AccessDenied) as caught:
        await client.login({"user": "alice", "password": "s3cret-password"})
    assert str(caught.value).startswith(
        f"the server at localhost:{db_server.port} presented a certificate for a db host"
    )
    assert "not the proxy" in str(caught.value)
    await asyncio.sleep(0.05)
    assert db_server.received == b""


async def test_auth_client_refuses_a_db_host(
    db_server: FakeServer, host_ca: CertificateAuthority
) -> None:
    context = client_context(ca_pems=[host_ca.cert_pem()], alpn=[AUTH_ALPN])
    async with AuthClient(f"127.0.0.1:{db_server.port}", context) as client:
        with pytest.raises(AccessDenied, match=r"for a db host .*not the auth service"):
            await client.post("/v1/login", {"user": "alice", "password": "s3cret-password"})
    await asyncio.sleep(0.05)
    assert db_server.received == b""


async def _stream_dial(port: int, context: ssl.SSLContext) -> None:
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    writer.write(b"secret")
    await writer.drain()
    writer.close()


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_streams_refuse_a_db_host_on_every_loop(
    host_ca: CertificateAuthority, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    cert, key = host_pair(host_ca, HostRole.DB)
    fake = FakeServer(cert, key)

    async def scenario() -> None:
        server = await fake.start()
        try:
            context = require_server_role(
                client_context(ca_pems=[host_ca.cert_pem()]), HostRole.PROXY
            )
            with pytest.raises(WrongServer, match="for a db host"):
                await _stream_dial(fake.port, context)
            # the same context accepts the real proxy
            proxy_cert, proxy_key = host_pair(host_ca, HostRole.PROXY)
            proxy = FakeServer(proxy_cert, proxy_key)
            proxy_server = await proxy.start()
            try:
                await _stream_dial(proxy.port, context)
                for _ in range(100):
                    if proxy.received:
                        break
                    await asyncio.sleep(0.01)
                assert proxy.received == b"secret"
            finally:
                proxy_server.close()
            await asyncio.sleep(0.05)
            assert fake.received == b""
        finally:
            server.close()

    loop = loop_factory()
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()


async def test_hostname_is_still_checked(host_ca: CertificateAuthority) -> None:
    cert, key = host_pair(host_ca, HostRole.PROXY, ("proxy.example.com",))
    fake = FakeServer(cert, key)
    server = await fake.start()
    try:
        context = client_context(ca_pems=[host_ca.cert_pem()], alpn=["http/1.1"])
        client = ProxyWebClient(f"localhost:{fake.port}", context)
        with pytest.raises(WicketError, match="does not name the address dialled"):
            await client.find()
    finally:
        server.close()
    assert fake.received == b""
