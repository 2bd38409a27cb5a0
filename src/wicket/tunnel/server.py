"""Tunnel layer, proxy side: accept agents' control and data connections, lend data
connections to client sessions.

Per agent the proxy keeps the control connection (heartbeats in, `need_connections` out)
and a pool of idle data connections. `open_session` takes one idle connection (the oldest
waiter is served first when several sessions wait), writes the session header on it and
returns its streams: from then on it belongs to that one session, so a slow session only
ever stalls itself. When the pool runs low the agent is asked for more over the control
connection. Dead idle connections (closed by the agent, or found closed when taken) are
discarded. When no connection arrives in time and the proxy has just failed to accept
connections for lack of file descriptors (its `DescriptorAlarm`), the session is told that,
not that the agent is missing.

An agent that stops sending keep-alives stops getting sessions within seconds: the
control connection's read deadline follows the agent's own pace (`MISSED_KEEPALIVES`
times the longest of its recent gaps, at least `MIN_KEEPALIVE_TIMEOUT`, at most
`heartbeat_timeout`), so an agent sending one a second (ours do) is dropped after 4 s
of silence (frozen, or its host gone), and one that heartbeats every 15 s is still
given `heartbeat_timeout`. Dropping the control connection drops its idle pool, so no
session is handed to it; the agent redials when it wakes up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wicket.descriptors import DescriptorAlarm, exhaustion_message
from wicket.errors import (
    AccessDenied,
    RemoteProtocolError,
    Timeout,
    UpstreamError,
    WicketError,
)
from wicket.tunnel.protocol import (
    MAX_NEED_CONNECTIONS,
    Ack,
    ConnectionKind,
    ErrorMessage,
    Heartbeat,
    Hello,
    NeedConnections,
    SessionHeader,
    encode_message,
    encode_session_header,
)
from wicket.tunnel.streams import close_writer, read_message, write_message

AuthorizeAgent = Callable[[ssl.SSLObject], Awaitable[str]]
"""Checks the agent's TLS peer certificate; returns its agent id or raises AccessDenied."""

LOW_WATER = 2  # ask for more when a take leaves fewer idle connections than this
MAX_IDLE_PER_AGENT = MAX_NEED_CONNECTIONS
MAX_CONTROL_BUFFER = 64 * 1024  # unsent control bytes beyond which requests are dropped
MISSED_KEEPALIVES = 4  # this many of the agent's usual gaps without a message: it is gone
MIN_KEEPALIVE_TIMEOUT = 3.0
KEEPALIVE_GAPS = 8  # recent gaps between an agent's messages the deadline follows


def keepalive_timeout(gaps: deque[float], ceiling: float) -> float:
    """How long to wait for an agent's next control message, given its recent gaps."""
    if len(gaps) < 2:  # its pace is not known yet
        return ceiling
    return min(ceiling, max(MIN_KEEPALIVE_TIMEOUT, MISSED_KEEPALIVES * max(gaps)))


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentTunnel:
    """A connected agent as the proxy sees it."""

    agent_id: str
    databases: tuple[Mapping[str, Any], ...]
    idle_connections: int


@dataclass(eq=False)
class _DataConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    taken: asyncio.Event = field(default_factory=asyncio.Event)

    def alive(self) -> bool:
        return not (self.writer.is_closing() or self.reader.at_eof())


@dataclass(eq=False)
class _Control:
    writer: asyncio.StreamWriter
    databases: tuple[Mapping[str, Any], ...]


@dataclass(eq=False)
class _AgentPool:
    agent_id: str
    idle: deque[_DataConnection] = field(default_factory=deque)
    waiters: deque[asyncio.Future[_DataConnection]] = field(default_factory=deque)
    control: _Control | None = None

    def add(self, connection: _DataConnection) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self.idle.append(connection)

    def take_idle(self) -> _DataConnection | None:
        while self.idle:
            connection = self.idle.popleft()
            if connection.alive():
                return connection
            connection.writer.close()
        return None

    def discard(self, connection: _DataConnection) -> None:
        with contextlib.suppress(ValueError):
            self.idle.remove(connection)


def _enable_keepalive(writer: asyncio.StreamWriter) -> None:
    """Let the kernel find a vanished agent host under an idle connection."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)


class TunnelServer:
    """The proxy's end of every agent's reverse tunnel."""

    def __init__(
        self,
        *,
        authorize_agent: AuthorizeAgent,
        pool_wait_timeout: float = 10.0,
        hello_timeout: float = 10.0,
        heartbeat_timeout: float = 60.0,
        write_timeout: float = 10.0,
        alarm: DescriptorAlarm | None = None,
        logger: logging.Logger = log,
    ) -> None:
        self._authorize_agent = authorize_agent
        self._alarm = alarm
        self._pool_wait_timeout = pool_wait_timeout
        self._hello_timeout = hello_timeout
        self._heartbeat_timeout = heartbeat_timeout
        self._write_timeout = write_timeout
        self._log = logger
        self._pools: dict[str, _AgentPool] = {}

    def agents(self) -> list[AgentTunnel]:
        """Agents with a live control connection and the databases they announced."""
        return [
            AgentTunnel(pool.agent_id, pool.control.databases, len(pool.idle))
            for pool in self._pools.values()
            if pool.control is not None
        ]

    def _pool(self, agent_id: str) -> _AgentPool:
        pool = self._pools.get(agent_id)
        if pool is None:
            pool = self._pools[agent_id] = _AgentPool(agent_id)
        return pool

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection that arrived on ALPN `wicket-tunnel`, until it ends."""
        try:
            agent_id, hello = await self._greet(reader, writer)
        except (WicketError, OSError) as error:
            self._log.info("tunnel connection refused: %s", error)
            with contextlib.suppress(WicketError, OSError):
                await write_message(writer, ErrorMessage(str(error)), self._write_timeout)
            await close_writer(writer)
            return
        _enable_keepalive(writer)
        try:
            if hello.kind is ConnectionKind.CONTROL:
                await self._serve_control(agent_id, hello, reader, writer)
            else:
                await self._serve_data(agent_id, reader, writer)
        finally:
            await close_writer(writer)

    async def _greet(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[str, Hello]:
        ssl_object = writer.get_extra_info("ssl_object")
        if not isinstance(ssl_object, ssl.SSLObject):
            raise AccessDenied("a tunnel connection must use TLS with a host certificate")
        agent_id = await self._authorize_agent(ssl_object)
        hello = await read_message(reader, self._hello_timeout)
        if not isinstance(hello, Hello):
            raise RemoteProtocolError(f"expected hello, got {type(hello).__name__}")
        if hello.agent_id != agent_id:
            raise AccessDenied(
                f"agent says it is {hello.agent_id!r} but its certificate is for {agent_id!r}"
            )
        return agent_id, hello

    async def _serve_control(
        self,
        agent_id: str,
        hello: Hello,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        pool = self._pool(agent_id)
        previous = pool.control
        control = pool.control = _Control(writer, hello.databases)
        if previous is not None:
            previous.writer.close()  # the agent reconnected: the old control is stale
        self._log.info("agent %s connected (%d databases)", agent_id, len(hello.databases))
        try:
            await write_message(writer, Ack(), self._write_timeout)
            if pool.waiters:
                self._request_more(pool)
            loop = asyncio.get_running_loop()
            gaps: deque[float] = deque(maxlen=KEEPALIVE_GAPS)
            last = loop.time()
            while True:
                timeout = keepalive_timeout(gaps, self._heartbeat_timeout)
                try:
                    message = await read_message(reader, timeout)
                except Timeout:
                    self._log.warning(
                        "agent %s sent no keep-alive for %.1f s: no longer routed to "
                        "(it reconnects when it is back)",
                        agent_id,
                        timeout,
                    )
                    return
                now = loop.time()
                gaps.append(now - last)
                last = now
                if not isinstance(message, Heartbeat):
                    raise RemoteProtocolError(
                        f"unexpected {type(message).__name__} on the control connection"
                    )
                if message.databases is not None:
                    control.databases = message.databases
                await write_message(writer, Ack(), self._write_timeout)
        except (WicketError, OSError) as error:
            self._log.info("agent %s control connection ended: %s", agent_id, error)
        finally:
            if pool.control is control:
                pool.control = None
                while pool.idle:  # the agent redials its pool when it reconnects
                    pool.idle.popleft().writer.close()

    async def _serve_data(
        self, agent_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        pool = self._pool(agent_id)
        if len(pool.idle) >= MAX_IDLE_PER_AGENT:
            raise AccessDenied(
                f"agent {agent_id} already has {MAX_IDLE_PER_AGENT} idle connections"
            )
        await write_message(writer, Ack(), self._write_timeout)
        connection = _DataConnection(reader, writer)
        pool.add(connection)
        closed = asyncio.ensure_future(writer.wait_closed())
        taken = asyncio.ensure_future(connection.taken.wait())
        try:
            await asyncio.wait({closed, taken}, return_when=asyncio.FIRST_COMPLETED)
            if not connection.taken.is_set():
                pool.discard(connection)  # closed while idle: the agent will redial
                return
            await closed  # the session owns the streams now and closes them when it ends
        except (OSError, ssl.SSLError):
            pool.discard(connection)
        finally:
            for task in (closed, taken):
                task.cancel()
            await asyncio.gather(closed, taken, return_exceptions=True)

    def _request_more(self, pool: _AgentPool) -> None:
        """Ask the agent, over its control connection, to keep more idle connections."""
        control = pool.control
        if control is None or control.writer.is_closing():
            return
        if control.writer.transport.get_write_buffer_size() > MAX_CONTROL_BUFFER:
            return
        count = min(MAX_NEED_CONNECTIONS, len(pool.waiters) + len(pool.idle) + LOW_WATER)
        control.writer.write(encode_message(NeedConnections(count)))

    async def open_session(
        self, agent_id: str, header: SessionHeader
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Take an idle data connection of the agent, send it the session header, return it."""
        frame = encode_session_header(header)  # a header over the caps fails here, locally
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._pool_wait_timeout
        pool = self._pool(agent_id)
        while True:
            connection = pool.take_idle()
            if connection is None:
                connection = await self._wait_for_connection(pool, deadline)
            if len(pool.idle) < LOW_WATER:
                self._request_more(pool)
            try:
                connection.writer.write(frame)
                async with asyncio.timeout(max(0.0, deadline - loop.time()) + self._write_timeout):
                    await connection.writer.drain()
            except (OSError, TimeoutError) as error:
                self._log.info("discarding a dead tunnel connection of %s: %s", agent_id, error)
                connection.writer.close()
                continue
            connection.taken.set()
            return connection.reader, connection.writer

    async def _wait_for_connection(self, pool: _AgentPool, deadline: float) -> _DataConnection:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_DataConnection] = loop.create_future()
        pool.waiters.append(waiter)
        self._request_more(pool)
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return waiter.result()
            if self._alarm is not None and self._alarm.recently_exhausted():
                # The agent did dial: the proxy could not accept its connections.
                message = exhaustion_message(
                    f"accepting the tunnel connections of agent {pool.agent_id}"
                )
                self._log.error("%s", message)
                raise UpstreamError(message) from None
            state = "connected" if pool.control is not None else "not connected"
            raise Timeout(
                f"no tunnel connection from agent {pool.agent_id} within "
                f"{self._pool_wait_timeout:g} s (agent {state}); check that the database "
                "service is running and can reach the proxy"
            ) from None
        finally:
            with contextlib.suppress(ValueError):
                pool.waiters.remove(waiter)


__all__ = ["AgentTunnel", "AuthorizeAgent", "TunnelServer"]
