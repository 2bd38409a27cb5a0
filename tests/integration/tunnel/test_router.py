"""The proxy's accept loop with real TLS clients on loopback: ALPN routing, refusals, slowloris."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable

import pytest

from tests.integration.tunnel.certs import client_context, server_context
from tests.integration.tunnel.conftest import Pki, bind_listener
from wicket.proxy.router import FirstBytes, Handler, Router, accept_tls, splice
from wicket.wire.tls_hello import ClientHello

ROUTES = ["wicket-tunnel", "wicket-mongodb", "wicket-auth"]


class RoutedProxy:
    """A router whose routes answer with their own name over TLS."""

    def __init__(self, pki: Pki, peek_timeout: float, extra: dict[str, Handler]) -> None:
        self.context = server_context(pki.proxy, None, [*ROUTES, "http/1.1"])
        self.seen: list[tuple[str, ClientHello]] = []
        routes: dict[str, Handler] = {
            "wicket-tunnel": self._answer("tunnel"),
            "wicket-mongodb": self._answer("mongodb"),
            **extra,
        }
        self.router = Router(routes, self._answer("web"), peek_timeout=peek_timeout)
        self.listener = bind_listener()
        self.port = self.listener.getsockname()[1]
        self.task = asyncio.create_task(self.router.serve(self.listener))

    def _answer(self, name: str) -> Handler:
        async def handler(sock: socket.socket, hello: ClientHello) -> None:
            self.seen.append((name, hello))
            _reader, writer = await accept_tls(sock, self.context, handshake_timeout=5.0)
            writer.write(name.encode())
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        return handler

    async def close(self) -> None:
        await self.router.close()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.listener.close()


@pytest.fixture
async def make_proxy(pki: Pki) -> AsyncIterator[Callable[..., RoutedProxy]]:
    proxies: list[RoutedProxy] = []

    def make(peek_timeout: float = 5.0, extra: dict[str, Handler] | None = None) -> RoutedProxy:
        proxy = RoutedProxy(pki, peek_timeout, extra or {})
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        await proxy.close()


async def tls_request(pki: Pki, port: int, alpn: list[str] | None) -> bytes:
    context = client_context(pki.ca)
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
        data = await reader.read()
        writer.close()
        return data


@pytest.mark.parametrize(
    ("alpn", "route"),
    [
        (["wicket-mongodb"], "mongodb"),
        (["wicket-tunnel"], "tunnel"),
        (["h2", "wicket-tunnel", "wicket-mongodb"], "tunnel"),
        (["http/1.1"], "web"),
        (None, "web"),
    ],
)
async def test_routes_by_first_offered_alpn(
    make_proxy: Callable[..., RoutedProxy], pki: Pki, alpn: list[str] | None, route: str
) -> None:
    proxy = make_proxy()
    assert await tls_request(pki, proxy.port, alpn) == route.encode()
    name, hello = proxy.seen[0]
    assert name == route
    assert hello.server_name == "localhost"
    assert hello.alpn_protocols == tuple(alpn or ())


async def test_many_concurrent_connections(
    make_proxy: Callable[..., RoutedProxy], pki: Pki
) -> None:
    proxy = make_proxy()
    results = await asyncio.gather(
        *(tls_request(pki, proxy.port, ["wicket-mongodb"]) for _ in range(30))
    )
    assert results == [b"mongodb"] * 30
    await asyncio.sleep(0.1)
    assert proxy.router.connections == 0


async def raw_connection(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def test_plain_http_is_closed(make_proxy: Callable[..., RoutedProxy]) -> None:
    proxy = make_proxy()
    reader, writer = await raw_connection(proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await assert_closed(reader)
    writer.close()
    assert proxy.seen == []


async def assert_closed(reader: asyncio.StreamReader) -> None:
    """The proxy closed the connection (EOF, or a reset when our bytes were left unread)."""
    async with asyncio.timeout(5):
        with contextlib.suppress(ConnectionResetError):
            assert await reader.read() == b""


class MemoryTlsClient:
    """A sans-IO TLS client, so the test controls how its bytes reach the socket."""

    def __init__(self, pki: Pki, alpn: list[str]) -> None:
        context = client_context(pki.ca)
        context.set_alpn_protocols(alpn)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        self.handshake_done = False
        with pytest.raises(ssl.SSLWantReadError):
            self.tls.do_handshake()
        self.hello = self.outgoing.read()

    def receive(self, data: bytes) -> tuple[bytes, bytes, bool]:
        """Feed bytes from the server; return (bytes to send, plaintext, closed)."""
        if data:
            self.incoming.write(data)
        else:
            self.incoming.write_eof()
        plaintext = b""
        closed = not data
        try:
            if not self.handshake_done:
                self.tls.do_handshake()
                self.handshake_done = True
            while chunk := self.tls.read(65536):
                plaintext += chunk
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            closed = True
        return self.outgoing.read(), plaintext, closed


def client_hello_bytes(pki: Pki, alpn: list[str]) -> bytes:
    return MemoryTlsClient(pki, alpn).hello


async def test_slowloris_is_closed_at_peek_timeout_without_spinning(
    make_proxy: Callable[..., RoutedProxy], pki: Pki
) -> None:
    proxy = make_proxy(peek_timeout=1.0)
    hello = client_hello_bytes(pki, ["wicket-mongodb"])
    reader, writer = await raw_connection(proxy.port)
    writer.write(hello[:60])
    started, cpu_started = time.monotonic(), time.process_time()
    await assert_closed(reader)
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_started
    writer.close()
    assert 0.8 <= elapsed <= 3.0
    assert cpu < 0.3, f"peeking burned {cpu:.2f} s of CPU while the client was silent"
    assert proxy.seen == []


async def test_client_hello_split_across_tcp_segments(
    make_proxy: Callable[..., RoutedProxy], pki: Pki
) -> None:
    proxy = make_proxy()
    client = MemoryTlsClient(pki, ["wicket-mongodb"])
    hello = client.hello
    reader, writer = await raw_connection(proxy.port)
    for offset in range(0, len(hello), 37):
        writer.write(hello[offset : offset + 37])
        await writer.drain()
        await asyncio.sleep(0.01)
    answer = b""
    async with asyncio.timeout(10):
        closed = False
        while not closed and answer != b"mongodb":
            to_send, plaintext, closed = client.receive(await reader.read(65536))
            answer += plaintext
            if to_send:
                writer.write(to_send)
    writer.close()
    assert proxy.seen[0][0] == "mongodb"
    assert answer == b"mongodb"


async def test_close_cancels_connections_being_peeked(
    make_proxy: Callable[..., RoutedProxy],
) -> None:
    proxy = make_proxy(peek_timeout=60.0)
    reader, writer = await raw_connection(proxy.port)
    writer.write(b"\x16\x03\x01")
    await asyncio.sleep(0.2)
    assert proxy.router.connections == 1
    await proxy.router.close()
    await assert_closed(reader)
    writer.close()
    assert proxy.router.connections == 0


async def echo_server(context: ssl.SSLContext | None) -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=context)
    return server, server.sockets[0].getsockname()[1]


async def test_splice_passes_tls_through_end_to_end(
    make_proxy: Callable[..., RoutedProxy], pki: Pki
) -> None:
    upstream_context = server_context(pki.proxy, None, ["wicket-auth"])
    server, upstream_port = await echo_server(upstream_context)

    async def auth_route(sock: socket.socket, hello: ClientHello) -> None:
        await splice(sock, "127.0.0.1", upstream_port, idle_timeout=10)

    proxy = make_proxy(extra={"wicket-auth": auth_route})
    context = client_context(pki.ca)
    context.set_alpn_protocols(["wicket-auth"])
    async with asyncio.timeout(20):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", proxy.port, ssl=context, server_hostname="localhost"
        )
        # The TLS session is with the upstream server: it selected the ALPN, not the proxy.
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "wicket-auth"
        payload = bytes(range(256)) * 4096  # 1 MiB
        writer.write(payload)
        received = await reader.readexactly(len(payload))
        writer.close()
    assert received == payload
    server.close()


async def test_splice_half_close_and_unreachable_upstream(
    make_proxy: Callable[..., RoutedProxy], pki: Pki
) -> None:
    server, upstream_port = await echo_server(None)
    closed_port = bind_listener().getsockname()[1]  # bound, never listening: refused

    async def to_echo(sock: socket.socket, hello: ClientHello) -> None:
        await splice(sock, "127.0.0.1", upstream_port, idle_timeout=10)

    async def to_nowhere(sock: socket.socket, hello: ClientHello) -> None:
        await splice(sock, "127.0.0.1", closed_port, connect_timeout=2)

    proxy = make_proxy(extra={"wicket-auth": to_echo, "wicket-nowhere": to_nowhere})
    hello = client_hello_bytes(pki, ["wicket-auth"])
    reader, writer = await raw_connection(proxy.port)
    writer.write(hello + b"after the hello")
    writer.write_eof()  # half-close: the echo must still come back, then EOF
    async with asyncio.timeout(10):
        assert await reader.read() == hello + b"after the hello"
    writer.close()

    hello = client_hello_bytes(pki, ["wicket-nowhere"])
    reader, writer = await raw_connection(proxy.port)
    writer.write(hello)
    await assert_closed(reader)
    writer.close()
    server.close()


async def test_splice_first_bytes_deadline_counts_bytes_after_the_client_hello(
    make_proxy: Callable[..., RoutedProxy], pki: Pki
) -> None:
    """The ClientHello alone does not meet the deadline; one more byte does, for good."""
    server, upstream_port = await echo_server(None)

    async def auth_route(sock: socket.socket, hello: ClientHello) -> None:
        first = FirstBytes(skip=hello.length, seconds=0.5)
        await splice(sock, "127.0.0.1", upstream_port, idle_timeout=10, first_bytes=first)

    proxy = make_proxy(extra={"wicket-auth": auth_route})
    hello = client_hello_bytes(pki, ["wicket-auth"])
    silent_reader, silent_writer = await raw_connection(proxy.port)
    silent_writer.write(hello)
    started = time.monotonic()
    async with asyncio.timeout(5):
        assert await silent_reader.read() == hello  # echoed, then closed at the deadline
    assert time.monotonic() - started >= 0.4
    silent_writer.close()

    reader, writer = await raw_connection(proxy.port)
    writer.write(hello + b"x")
    async with asyncio.timeout(5):
        assert await reader.readexactly(len(hello) + 1) == hello + b"x"
    await asyncio.sleep(1.0)  # past the deadline: the connection stays
    writer.write(b"later")
    async with asyncio.timeout(5):
        assert await reader.readexactly(5) == b"later"
    writer.close()
    server.close()


async def test_max_connections_applies_backpressure(pki: Pki) -> None:
    release = asyncio.Event()

    async def hold(sock: socket.socket, hello: ClientHello) -> None:
        await release.wait()

    router = Router({}, hold, peek_timeout=5, max_connections=2)
    listener = bind_listener()
    port = listener.getsockname()[1]
    task = asyncio.create_task(router.serve(listener))
    try:
        hello = client_hello_bytes(pki, [])
        writers = []
        for _ in range(3):
            _, writer = await raw_connection(port)
            writer.write(hello)
            writers.append(writer)
        await asyncio.sleep(0.3)
        assert router.connections == 2
        release.set()
        await asyncio.sleep(0.3)
        assert router.connections == 0
        for writer in writers:
            writer.close()
    finally:
        await router.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        listener.close()
