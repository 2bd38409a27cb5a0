"""The proxy service: one TLS port, routed by ALPN, in front of the auth service and agents.

Routes (docs/architecture.md): `wicket-auth` is spliced untouched to the auth
service; `wicket-tunnel` (agents) and `wicket-mongodb` (users' database sessions)
are terminated here with the proxy's host certificate; everything else is the web
side (`wicket.proxy.web`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from aiohttp import web
from cryptography import x509

from wicket.api.client import AUTH_ALPN, AuthClient
from wicket.authserver.api import host_certificate_for_self
from wicket.authserver.cluster import ClusterAuthorities
from wicket.descriptors import DescriptorAlarm
from wicket.errors import AccessDenied, Timeout, WicketError
from wicket.identity import HostRole, IdentityKind, identity_from_certificate
from wicket.pki.authority import verify_certificate
from wicket.pki.keys import generate_private_key, private_key_pem
from wicket.pki.pem import certificate_pem, load_certificate
from wicket.proxy.router import (
    DEFAULT_FIRST_BYTES_TIMEOUT,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_PEEK_TIMEOUT,
    STREAM_LIMIT,
    FirstBytes,
    Router,
    accept_tls,
    splice,
)
from wicket.proxy.sessions import DatabaseSessions
from wicket.proxy.web import ProxyWeb
from wicket.tlsconfig import client_context, peer_certificate, server_context
from wicket.tunnel.server import TunnelServer
from wicket.wire.tls_hello import ClientHello

log = logging.getLogger("wicket.proxy")

TUNNEL_ALPN = "wicket-tunnel"
MONGODB_ALPN = "wicket-mongodb"


@dataclass(frozen=True)
class ProxyIdentity:
    """The proxy's host certificate, key and the cluster it belongs to."""

    cluster_name: str
    cert_pem: bytes
    key_pem: bytes
    user_ca_pem: bytes
    host_ca_pem: bytes

    @classmethod
    def issued_by(
        cls,
        cluster: ClusterAuthorities,
        *,
        host_id: str,
        dns_names: list[str],
        ip_addresses: list[str],
    ) -> ProxyIdentity:
        """A fresh key and host certificate from an auth service running in this process."""
        key = generate_private_key()
        cert = host_certificate_for_self(
            cluster,
            key.public_key(),
            host_id=host_id,
            role=HostRole.PROXY,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
        )
        return cls(
            cluster_name=cluster.name,
            cert_pem=certificate_pem(cert),
            key_pem=private_key_pem(key),
            user_ca_pem=cluster.user.cert_pem(),
            host_ca_pem=cluster.host.cert_pem(),
        )

    def auth_client(self, address: str) -> AuthClient:
        """The auth API at `address`, called with this proxy's host certificate."""
        return AuthClient(
            address,
            client_context(
                ca_pems=[self.host_ca_pem], cert_chain_pem=self.cert_pem, key_pem=self.key_pem
            ),
        )


@dataclass(frozen=True)
class ProxyTimeouts:
    """Deadlines of client connections, in seconds (`proxy_service.timeouts` in the config).

    Every connection holds a descriptor; these keep one that does nothing from holding
    it for long: seconds for what a working client does at once, minutes when idle.
    """

    client_hello: float = DEFAULT_PEEK_TIMEOUT
    tls_handshake: float = DEFAULT_HANDSHAKE_TIMEOUT
    first_request: float = DEFAULT_FIRST_BYTES_TIMEOUT
    idle: float = DEFAULT_IDLE_TIMEOUT


@dataclass(frozen=True)
class ProxySettings:
    """What the proxy needs from the config."""

    listen_host: str
    listen_port: int
    public_addr: str
    auth_host: str
    auth_port: int
    second_factor: str
    data_dir: Path | None = None
    timeouts: ProxyTimeouts = ProxyTimeouts()


def _has_route(cert: x509.Certificate | None) -> bool:
    """Whether a (not yet verified) certificate names a database: routing only, no trust."""
    if cert is None:
        return False
    try:
        return identity_from_certificate(cert).route is not None
    except WicketError:
        return False


class _PendingConnection(asyncio.Protocol):
    """Holds a fresh TLS connection's first bytes until the route is chosen."""

    MAX_BUFFER = 64 * 1024

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.lost: Exception | None = None
        self.is_lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TLS transport is not an asyncio.Transport subclass, but has its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > self.MAX_BUFFER and self.transport is not None:
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        self.eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_lost = True
        self.lost = exc

    def hand_over(self, protocol: asyncio.Protocol) -> None:
        """Give the connection, and what arrived so far, to `protocol`."""
        assert self.transport is not None
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        if self.buffer:
            protocol.data_received(bytes(self.buffer))
        if self.eof:
            protocol.eof_received()
        if self.is_lost:
            protocol.connection_lost(self.lost)
        self.transport.resume_reading()

    def to_streams(
        self, loop: asyncio.AbstractEventLoop
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The connection as asyncio streams."""
        assert self.transport is not None
        reader = asyncio.StreamReader(limit=STREAM_LIMIT, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        self.hand_over(protocol)
        return reader, asyncio.StreamWriter(self.transport, protocol, reader, loop)


class _WebConnection(asyncio.Protocol):
    """Wraps aiohttp's request handler: learns when its connection ends, and closes it if
    the first request's header is not complete within `first_request` seconds.

    aiohttp itself only closes a connection that sends nothing after its keep-alive
    timeout (minutes), and never one that dribbles a header byte by byte.
    """

    def __init__(self, inner: asyncio.Protocol, closed: asyncio.Event, first_request: float):
        self.inner = inner
        self.closed = closed
        self.first_request = first_request
        self.transport: asyncio.BaseTransport | None = None
        self._tail = b""
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self.first_request, self._expired)
        self.inner.connection_made(transport)

    def _expired(self) -> None:
        self._deadline = None
        if self.transport is not None and not self.transport.is_closing():
            peer = self.transport.get_extra_info("peername")
            log.info(
                "web connection from %s sent no whole request within %g s; closed",
                peer,
                self.first_request,
            )
            cast(asyncio.Transport, self.transport).abort()

    def _watch_header(self, data: bytes) -> None:
        if self._deadline is None:
            return
        seen = self._tail + data
        if b"\r\n\r\n" in seen:
            self._deadline.cancel()
            self._deadline = None
        self._tail = seen[-3:]

    def data_received(self, data: bytes) -> None:
        self._watch_header(data)
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        try:
            self.inner.connection_lost(exc)
        finally:
            self.closed.set()


class ProxyService:
    """A running proxy: router, web app, tunnel server."""

    def __init__(self, identity: ProxyIdentity, settings: ProxySettings, auth: AuthClient) -> None:
        self.identity = identity
        self.settings = settings
        self.auth = auth
        self.tls = server_context(
            identity.cert_pem,
            identity.key_pem,
            client_cas=[identity.user_ca_pem, identity.host_ca_pem],
            require_client_cert=False,
            alpn=[TUNNEL_ALPN, MONGODB_ALPN, "http/1.1"],
        )
        self.timeouts = settings.timeouts
        self.alarm = DescriptorAlarm()
        self.tunnels = TunnelServer(authorize_agent=self._authorize_agent, alarm=self.alarm)
        self.web = ProxyWeb(
            auth=auth,
            cluster_name=identity.cluster_name,
            public_addr=settings.public_addr,
            second_factor=settings.second_factor,
            host_ca_pem=identity.host_ca_pem.decode(),
            data_dir=settings.data_dir,
            body_timeout=self.timeouts.first_request,
        )
        self._runner = web.AppRunner(
            self.web.application(),
            access_log=None,
            handle_signals=False,
            keepalive_timeout=self.timeouts.idle,
        )
        self.sessions = DatabaseSessions(
            cluster_name=identity.cluster_name,
            user_ca=load_certificate(identity.user_ca_pem),
            tunnels=self.tunnels,
            first_message_timeout=self.timeouts.first_request,
        )
        self.router = Router(
            {
                AUTH_ALPN: self._route_auth,
                TUNNEL_ALPN: self._route_tunnel,
                MONGODB_ALPN: self._route_terminated,
            },
            self._route_terminated,
            peek_timeout=self.timeouts.client_hello,
            alarm=self.alarm,
        )
        self._listener: socket.socket | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self.address: tuple[str, int] = (settings.listen_host, settings.listen_port)

    async def start(self) -> None:
        """Listen and serve."""
        await self._runner.setup()
        family = socket.AF_INET6 if ":" in self.settings.listen_host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.settings.listen_host, self.settings.listen_port))
        listener.listen(512)
        listener.setblocking(False)
        self._listener = listener
        bound = listener.getsockname()
        self.address = (str(bound[0]), int(bound[1]))
        self._serve_task = asyncio.create_task(self.router.serve(listener))
        log.info("proxy on %s:%d (public address %s)", *self.address, self.settings.public_addr)

    async def close(self) -> None:
        """Stop accepting, end connections, stop the web app."""
        await self.router.close()
        if self._serve_task is not None:
            self._serve_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._serve_task
        if self._listener is not None:
            self._listener.close()
        await self._runner.cleanup()
        await self.auth.close()

    async def _authorize_agent(self, ssl_object: ssl.SSLObject) -> str:
        cert = peer_certificate(ssl_object)
        if cert is None:
            raise AccessDenied("a database agent must present its host certificate")
        identity = verify_certificate(
            cert,
            load_certificate(self.identity.host_ca_pem),
            cluster=self.identity.cluster_name,
            kinds={IdentityKind.HOST},
        )
        if identity.host_role is not HostRole.DB or identity.host_id is None:
            raise AccessDenied(f"host {identity.name} is not a database agent")
        return identity.host_id

    async def _route_auth(self, sock: socket.socket, hello: ClientHello) -> None:
        await splice(
            sock,
            self.settings.auth_host,
            self.settings.auth_port,
            idle_timeout=self.timeouts.idle,
            first_bytes=FirstBytes(skip=hello.length, seconds=self.timeouts.first_request),
            alarm=self.alarm,
        )

    async def _route_tunnel(self, sock: socket.socket, hello: ClientHello) -> None:
        reader, writer = await accept_tls(
            sock, self.tls, handshake_timeout=self.timeouts.tls_handshake
        )
        await self.tunnels.handle(reader, writer)

    async def _route_terminated(self, sock: socket.socket, hello: ClientHello) -> None:
        """TLS ends here; then a database session (ALPN wicket-mongodb, or no ALPN and a
        certificate with a database route) or the web side."""
        loop = asyncio.get_running_loop()
        pending = _PendingConnection()
        handshake = self.timeouts.tls_handshake
        try:
            async with asyncio.timeout(handshake + 1.0):
                transport, _ = await loop.connect_accepted_socket(
                    lambda: pending, sock=sock, ssl=self.tls, ssl_handshake_timeout=handshake
                )
        except TimeoutError:
            raise Timeout(f"TLS handshake not done within {handshake:g} s") from None
        try:
            ssl_object = transport.get_extra_info("ssl_object")
            cert = peer_certificate(ssl_object) if ssl_object is not None else None
            selected = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
            if selected == MONGODB_ALPN or (selected is None and _has_route(cert)):
                reader, writer = pending.to_streams(loop)
                peer = transport.get_extra_info("peername")
                client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
                await self.sessions.serve(reader, writer, cert, client)
                return
            server = self._runner.server
            if server is None:
                return
            closed = asyncio.Event()
            pending.hand_over(_WebConnection(server(), closed, self.timeouts.first_request))
            await closed.wait()  # aiohttp owns the connection until it closes
        finally:
            transport.close()
