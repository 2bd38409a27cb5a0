"""Proxy service, I/O shell: the one public port's accept loop, routing on the TLS ClientHello.

Each accepted connection is peeked (`MSG_PEEK`, never consumed) until the ClientHello is
whole (`wicket.wire.tls_hello`), then handed to the route for the first offered ALPN
protocol that has one (the default route otherwise) with the ClientHello bytes still
unread, so the route can terminate TLS itself (`accept_tls`) or pass the bytes through
untouched (`splice`, the `wicket-auth` route). Non-TLS bytes, a connection closed early or a
ClientHello not complete within `peek_timeout` (slowloris) are closed. Every later wait has a
deadline too (handshake, first bytes, idle relay): an idle connection holds a descriptor.
When accepting fails for lack of descriptors, the `DescriptorAlarm` remembers it so that
what fails next (an agent's tunnel that never arrived) can name the cause.

While peeking, readiness would stay signalled for bytes already seen (they are not
consumed), so the socket's `SO_RCVLOWAT` is raised to one byte more than seen: the next
readiness event means new bytes, EOF or an error, never a spin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from wicket.descriptors import DescriptorAlarm, exhaustion_message, is_exhaustion
from wicket.errors import RemoteProtocolError, Timeout, UpstreamError, WicketError
from wicket.wire.tls_hello import MAX_CLIENT_HELLO_BYTES, ClientHello, parse_client_hello

Handler = Callable[[socket.socket, ClientHello], Awaitable[None]]
"""A route: gets the accepted socket (ClientHello unread) and the parsed ClientHello."""

DEFAULT_PEEK_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 10_000
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_FIRST_BYTES_TIMEOUT = 10.0
ACCEPT_BACKOFF = 0.1
EXHAUSTION_LOG_INTERVAL = 10.0
RELAY_CHUNK_SIZE = 64 * 1024
STREAM_LIMIT = 64 * 1024
_NO_LOWAT_POLL_INTERVAL = 0.02

log = logging.getLogger(__name__)


def _set_receive_low_water(sock: socket.socket, size: int) -> bool:
    """Make readiness wait for `size` buffered bytes; False where the OS cannot."""
    option = getattr(socket, "SO_RCVLOWAT", None)
    if option is None:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, option, size)
    except OSError:
        return False
    return True


async def _wait_readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Wait for the next readiness event on a socket."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


async def peek_client_hello(sock: socket.socket, *, seconds: float) -> ClientHello:
    """Peek (never consume) until a whole ClientHello is buffered; raise on anything else."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    seen = 0
    try:
        async with asyncio.timeout(seconds):
            while True:
                try:
                    data = sock.recv(MAX_CLIENT_HELLO_BYTES, socket.MSG_PEEK)
                except (BlockingIOError, InterruptedError):
                    await _wait_readable(loop, sock)
                    continue
                if not data:
                    raise RemoteProtocolError("connection closed before a whole TLS ClientHello")
                hello = parse_client_hello(data)
                if hello is not None:
                    return hello
                if len(data) > seen:
                    seen = len(data)
                    if _set_receive_low_water(sock, seen + 1):
                        await _wait_readable(loop, sock)
                        continue
                await asyncio.sleep(_NO_LOWAT_POLL_INTERVAL)  # no SO_RCVLOWAT here
    except TimeoutError:
        raise Timeout(
            f"no whole TLS ClientHello within {seconds:g} s ({seen} bytes received)"
        ) from None
    finally:
        if seen:
            _set_receive_low_water(sock, 1)


def choose_route(
    hello: ClientHello, routes: Mapping[str, Handler], default: Handler
) -> tuple[str | None, Handler]:
    """The route of the first offered ALPN protocol that has one, else the default."""
    for protocol in hello.alpn_protocols:
        handler = routes.get(protocol)
        if handler is not None:
            return protocol, handler
    return None, default


def _close_socket(sock: socket.socket) -> None:
    if sock.fileno() != -1:
        with contextlib.suppress(OSError):
            sock.close()


class Router:
    """Accepts connections on the proxy's port and hands each to the route its ALPN selects."""

    def __init__(
        self,
        routes: Mapping[str, Handler],
        default: Handler,
        *,
        peek_timeout: float = DEFAULT_PEEK_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        alarm: DescriptorAlarm | None = None,
        logger: logging.Logger = log,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.alarm = alarm or DescriptorAlarm()
        self._last_exhaustion_log = float("-inf")
        self._routes = dict(routes)
        self._default = default
        self._peek_timeout = peek_timeout
        self._slots = asyncio.Semaphore(max_connections)
        self._log = logger
        self._tasks: set[asyncio.Task[None]] = set()
        self._serving: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def connections(self) -> int:
        """Connections being peeked or served right now."""
        return len(self._tasks)

    async def serve(self, listener: socket.socket) -> None:
        """Accept until `close()`; at most `max_connections` are handled at once."""
        loop = asyncio.get_running_loop()
        listener.setblocking(False)
        self._serving = asyncio.current_task()
        try:
            while not self._closed:
                await self._slots.acquire()
                try:
                    sock, address = await loop.sock_accept(listener)
                except OSError as error:  # EMFILE and friends: back off, keep serving
                    self._slots.release()
                    self._accept_failed(loop, error)
                    await asyncio.sleep(ACCEPT_BACKOFF)
                    continue
                except BaseException:
                    self._slots.release()
                    raise
                task = asyncio.create_task(self._handle(sock, address))
                self._tasks.add(task)
                task.add_done_callback(self._finished)
        except asyncio.CancelledError:
            if not self._closed:
                raise

    def _accept_failed(self, loop: asyncio.AbstractEventLoop, error: OSError) -> None:
        """Log a failed accept; exhaustion is named, remembered, and logged once a while."""
        if not self.alarm.check(error):
            self._log.warning("accept failed: %s", error)
            return
        now = loop.time()
        if now - self._last_exhaustion_log >= EXHAUSTION_LOG_INTERVAL:
            self._last_exhaustion_log = now
            self._log.error(
                "%s (%s; %d connections open)",
                exhaustion_message("accepting connections"),
                error.strerror,
                len(self._tasks),
            )

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _handle(self, sock: socket.socket, address: object) -> None:
        try:
            try:
                hello = await peek_client_hello(sock, seconds=self._peek_timeout)
            except (WicketError, OSError) as error:
                self._log.info("closing connection from %s: %s", address, error)
                return
            protocol, handler = choose_route(hello, self._routes, self._default)
            self._log.debug("connection from %s: route %s", address, protocol or "default")
            try:
                await handler(sock, hello)
            except (WicketError, OSError) as error:
                self._log.info("connection from %s (%s) ended: %s", address, protocol, error)
            except Exception:
                self._log.exception("route %s failed for %s", protocol, address)
        finally:
            _close_socket(sock)

    async def close(self) -> None:
        """Stop accepting and cancel every connection's task, waiting for them to end."""
        self._closed = True
        if self._serving is not None and not self._serving.done():
            self._serving.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


async def _streams_from_socket(
    sock: socket.socket,
    ssl_context: ssl.SSLContext | None,
    handshake_seconds: float | None,
    limit: int,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await loop.connect_accepted_socket(
        lambda: protocol, sock=sock, ssl=ssl_context, ssl_handshake_timeout=handshake_seconds
    )
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


async def accept_tls(
    sock: socket.socket,
    ssl_context: ssl.SSLContext,
    *,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    limit: int = STREAM_LIMIT,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Terminate TLS on a routed socket (its ClientHello still unread) and return streams."""
    try:
        async with asyncio.timeout(handshake_timeout + 1.0):
            return await _streams_from_socket(sock, ssl_context, handshake_timeout, limit)
    except TimeoutError:
        raise Timeout(f"TLS handshake not done within {handshake_timeout:g} s") from None
    except ssl.SSLError as error:
        raise RemoteProtocolError(
            f"TLS handshake failed: {error.reason or error.strerror or error}"
        ) from None


class _HalfCloseImpossible(Exception):
    """One direction ended on a transport that cannot half-close: close both sides."""


@dataclass
class _Activity:
    last: float


@dataclass
class FirstBytes:
    """A relay direction must carry more than `skip` bytes within `seconds` of its start.

    The splice uses it for bytes beyond the ClientHello (still unread when it starts): a
    client that sent a ClientHello and then nothing holds a descriptor for no one.
    """

    skip: int
    seconds: float


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    activity: _Activity,
    idle_timeout: float,
    first: FirstBytes | None = None,
) -> None:
    """Copy one direction until EOF, then half-close the far side where the transport can."""
    loop = asyncio.get_running_loop()
    received = 0
    first_deadline = None if first is None else loop.time() + first.seconds
    first_seconds = 0.0 if first is None else first.seconds
    while True:
        remaining = idle_timeout - (loop.time() - activity.last)
        if remaining <= 0:
            raise Timeout(f"connection idle for {idle_timeout:g} s")
        if first_deadline is not None:
            remaining = min(remaining, first_deadline - loop.time())
            if remaining <= 0:
                raise Timeout(f"no bytes after the first {received} within {first_seconds:g} s")
        try:
            async with asyncio.timeout(remaining):
                data = await reader.read(RELAY_CHUNK_SIZE)
        except TimeoutError:
            continue  # the other direction may have been busy: re-check the shared clock
        if not data:
            break
        received += len(data)
        if first is not None and received > first.skip:
            first_deadline = None
        activity.last = loop.time()
        writer.write(data)
        try:
            async with asyncio.timeout(idle_timeout):
                await writer.drain()  # backpressure: read no more until the peer takes this
        except TimeoutError:
            raise Timeout(f"peer did not read for {idle_timeout:g} s") from None
    if writer.can_write_eof():
        with contextlib.suppress(OSError):
            writer.write_eof()
        return
    # A TLS stream cannot half-close: the far side would never learn that this direction
    # ended, and both sides would wait for each other. End the whole relay instead.
    raise _HalfCloseImpossible


async def relay(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
    *,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    a_first: FirstBytes | None = None,
) -> None:
    """Copy bytes both ways with backpressure until the sides end (or it idles); close both.

    Where a side cannot half-close (TLS), the first end of stream ends the whole relay.
    `a_first` is a deadline for side a's first bytes.
    """
    activity = _Activity(asyncio.get_running_loop().time())
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(_pump(a_reader, b_writer, activity, idle_timeout, a_first))
            group.create_task(_pump(b_reader, a_writer, activity, idle_timeout))
    except* _HalfCloseImpossible:
        log.debug("relay ended: one side closed a stream that cannot half-close")
    except* (OSError, Timeout) as errors:
        log.info("relay ended: %s", errors.exceptions[0])
    finally:
        for writer in (a_writer, b_writer):
            writer.close()
        for writer in (a_writer, b_writer):
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(5.0):
                    await writer.wait_closed()


async def splice(
    sock: socket.socket,
    host: str,
    port: int,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    first_bytes: FirstBytes | None = None,
    alarm: DescriptorAlarm | None = None,
) -> None:
    """Pass a routed connection through to host:port untouched (TLS stays end to end).

    `first_bytes` bounds how long the client may wait before sending what follows its
    ClientHello; `alarm` learns when the upstream could not be opened for lack of descriptors.
    """
    client_reader, client_writer = await _streams_from_socket(sock, None, None, STREAM_LIMIT)
    try:
        async with asyncio.timeout(connect_timeout):
            upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as error:
        client_writer.close()
        if is_exhaustion(error):
            if alarm is not None:
                alarm.record()
            message = exhaustion_message(f"connecting to {host}:{port}")
            log.error("%s", message)
            raise UpstreamError(message) from None
        raise UpstreamError(f"cannot reach {host}:{port}: {error or 'timed out'}") from None
    await relay(
        client_reader,
        client_writer,
        upstream_reader,
        upstream_writer,
        idle_timeout=idle_timeout,
        a_first=first_bytes,
    )
