"""Tunnel layer, agent side: keep the control connection and a warm pool of data
connections to one proxy, and serve each session that arrives on one.

The agent only dials out. `run()` connects the control connection (hello, then the
proxy's ack), keeps `pool_size` idle data connections (more, up to 64, when the proxy asks
with `need_connections`), heartbeats, and reconnects when anything on the control
connection fails: after a doubling delay capped at 2 s, with jitter (`Backoff`), so an
agent is back within about 2 s of its proxy restarting, and a fleet of agents does not
reconnect in lock step. Failures are logged as what they are (the tunnel was lost, the
proxy cannot be reached); the same failure again is logged once a minute, not per try.
A keep-alive goes out every second and the proxy acks each: the proxy drops an agent
that falls silent (tunnel/server.py), and the agent leaves a proxy silent for 5 s.
A data connection leaves the pool when the proxy writes a session header on it; its
session then runs on its own, independent of the control connection and of every other
session. Only a host certificate of role `proxy` for the address dialled is accepted as
the proxy (`wicket.server_identity`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from wicket.errors import AccessDenied, RemoteProtocolError, Timeout, WicketError
from wicket.identity import HostRole
from wicket.server_identity import describe_verification_error, require_server_role
from wicket.tunnel.protocol import (
    MAX_NEED_CONNECTIONS,
    Ack,
    ConnectionKind,
    ErrorMessage,
    Heartbeat,
    Hello,
    NeedConnections,
    SessionHeader,
    decode_session_header,
)
from wicket.tunnel.streams import close_writer, read_frame, read_message, write_message

TUNNEL_ALPN = "wicket-tunnel"
STREAM_LIMIT = 64 * 1024

SessionHandler = Callable[
    [SessionHeader, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]
]
"""Serves one tunneled session: its header, then the raw byte streams."""

log = logging.getLogger(__name__)


class TunnelState(enum.Enum):
    """Where the agent's tunnel to one proxy stands."""

    STARTING = "starting"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKING_OFF = "backing_off"
    CLOSED = "closed"


KEEPALIVE_INTERVAL = 1.0  # a heartbeat at least this often: the proxy drops a silent agent
PROXY_SILENCE = 5.0  # the proxy acks every keep-alive: none for this long, it is gone
BACKOFF_INITIAL = 0.25
BACKOFF_MAXIMUM = 2.0  # a restarted proxy gets its agents back within about this
BACKOFF_JITTER = 0.5
REPEAT_LOG_INTERVAL = 60.0  # the same failure again is logged (as a warning) this often


class Backoff:
    """Reconnect delays: doubling from `initial`, capped at `maximum`, each less a random
    part of up to `jitter` of it, so agents that lost the same proxy spread out."""

    def __init__(
        self,
        initial: float = BACKOFF_INITIAL,
        maximum: float = BACKOFF_MAXIMUM,
        jitter: float = BACKOFF_JITTER,
        random_fraction: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < initial <= maximum or not 0 <= jitter < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and 0 <= jitter < 1")
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self._random = random_fraction
        self._attempts = 0

    def next_delay(self) -> float:
        """The next delay: doubling from `initial` up to `maximum`, less up to `jitter` of it."""
        base = min(self.maximum, self.initial * 2.0 ** min(self._attempts, 32))
        self._attempts += 1
        return base * (1 - self.jitter * self._random())

    def copy(self) -> Backoff:
        """A fresh backoff with the same settings (one per thing that retries)."""
        return Backoff(self.initial, self.maximum, self.jitter, self._random)

    def reset(self) -> None:
        """Start again from `initial` (after a successful connection)."""
        self._attempts = 0


class TunnelClient:
    """The agent's end of the reverse tunnel to one proxy."""

    def __init__(
        self,
        *,
        proxy_addr: tuple[str, int],
        ssl_context_factory: Callable[[], ssl.SSLContext],
        agent_id: str,
        databases: Callable[[], list[Mapping[str, Any]]],
        handle_session: SessionHandler,
        pool_size: int = 4,
        server_hostname: str | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        connect_timeout: float = 10.0,
        heartbeat_interval: float = 15.0,
        heartbeat_timeout: float = 30.0,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
        logger: logging.Logger = log,
    ) -> None:
        if not 1 <= pool_size <= MAX_NEED_CONNECTIONS:
            raise ValueError(f"pool_size must be from 1 to {MAX_NEED_CONNECTIONS}")
        self._proxy_addr = proxy_addr
        self._ssl_context_factory = ssl_context_factory
        self._agent_id = agent_id
        self._databases = databases
        self._handle_session = handle_session
        self._pool_size = pool_size
        self._server_hostname = server_hostname or proxy_addr[0]
        self._backoff = backoff or Backoff()
        self._data_backoff = self._backoff.copy()
        self._sleep = sleep
        self._clock = clock
        self._connect_timeout = connect_timeout
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat_timeout = heartbeat_timeout
        self._keepalive_interval = min(keepalive_interval, heartbeat_interval)
        self._proxy_silence = min(
            heartbeat_interval + heartbeat_timeout,
            max(PROXY_SILENCE, 5 * self._keepalive_interval),
        )
        self._log = logger
        self._state = TunnelState.STARTING
        self._failures = FailureLog(logger, f"{proxy_addr[0]}:{proxy_addr[1]}", clock)
        self._closed = False
        self._run_task: asyncio.Task[None] | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._pooled = 0  # data connections idle at the proxy or being dialed
        self._burst = 0  # the proxy's last need_connections count not yet met
        self._pool_changed = asyncio.Event()
        self._connected = asyncio.Event()
        self.connections_made = 0
        self.last_error: str | None = None
        self.connected_since: float | None = None

    @property
    def state(self) -> TunnelState:
        """The tunnel's current state."""
        return self._state

    @property
    def pooled_connections(self) -> int:
        """Data connections idle at the proxy or being dialed."""
        return self._pooled

    @property
    def active_sessions(self) -> int:
        """Sessions being served right now."""
        return len(self._sessions)

    async def wait_connected(self) -> None:
        """Wait until the control connection is up (callers bound this with a timeout)."""
        await self._connected.wait()

    @property
    def closed(self) -> bool:
        """True once `close()` was called."""
        return self._closed

    async def run(self) -> None:
        """Keep the control connection and the pool alive until `close()`."""
        self._run_task = asyncio.current_task()
        try:
            while not self._stopping():
                self._state = TunnelState.CONNECTING
                try:
                    await self._run_connected()
                except asyncio.CancelledError:
                    if self._stopping():
                        break
                    raise
                except Exception as error:  # supervisor: every failure means reconnect
                    self.last_error = _describe(error)
                    lost = self._state is TunnelState.CONNECTED
                    self._failures.failed(self.last_error, lost=lost)
                finally:
                    self._connected.clear()
                    self.connected_since = None
                if self._stopping():
                    break
                self._state = TunnelState.BACKING_OFF
                await self._sleep(self._backoff.next_delay())
        finally:
            self._state = TunnelState.CLOSED

    def _stopping(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Stop reconnecting, drop the pool and end every session."""
        self._closed = True
        tasks = [*self._sessions]
        if self._run_task is not None and not self._run_task.done():
            tasks.append(self._run_task)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._state = TunnelState.CLOSED

    async def _dial(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        context = require_server_role(self._ssl_context_factory(), HostRole.PROXY)
        context.set_alpn_protocols([TUNNEL_ALPN])
        host, port = self._proxy_addr
        try:
            async with asyncio.timeout(self._connect_timeout):
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    ssl=context,
                    server_hostname=self._server_hostname,
                    ssl_handshake_timeout=self._connect_timeout,
                    limit=STREAM_LIMIT,
                )
        except TimeoutError:
            raise Timeout(f"cannot connect to the proxy at {host}:{port} (timed out)") from None
        except ssl.SSLCertVerificationError as exc:
            message = describe_verification_error(exc, f"{host}:{port}", HostRole.PROXY)
            raise AccessDenied(message or str(exc)) from exc
        ssl_object = writer.get_extra_info("ssl_object")
        selected = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        if selected != TUNNEL_ALPN:
            writer.close()
            raise RemoteProtocolError(
                f"the proxy at {host}:{port} did not accept ALPN {TUNNEL_ALPN} "
                f"(selected {selected!r}): is it a Wicket proxy?"
            )
        return reader, writer

    async def _greet(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hello: Hello
    ) -> None:
        await write_message(writer, hello, self._connect_timeout)
        reply = await read_message(reader, self._connect_timeout)
        if isinstance(reply, ErrorMessage):
            raise AccessDenied(f"the proxy refused the tunnel: {reply.message}")
        if not isinstance(reply, Ack):
            raise RemoteProtocolError(f"expected ack, got {type(reply).__name__}")

    async def _run_connected(self) -> None:
        reader, writer = await self._dial()
        try:
            hello = Hello(self._agent_id, ConnectionKind.CONTROL, tuple(self._databases()))
            await self._greet(reader, writer, hello)
            self._backoff.reset()
            self._state = TunnelState.CONNECTED
            self.connections_made += 1
            self.connected_since = self._clock()
            self._connected.set()
            self._failures.connected()
            self._pooled = 0
            self._burst = 0
            async with asyncio.TaskGroup() as group:
                group.create_task(self._heartbeats(writer))
                group.create_task(self._control_messages(reader))
                group.create_task(self._maintain_pool(group))
        finally:
            await close_writer(writer)

    async def _heartbeats(self, writer: asyncio.StreamWriter) -> None:
        """A keep-alive every `keepalive_interval`, the database list every `heartbeat_interval`."""
        loop = asyncio.get_running_loop()
        announced = loop.time()
        while True:
            await asyncio.sleep(self._keepalive_interval)
            databases = None
            if loop.time() - announced >= self._heartbeat_interval - 1e-3:
                databases = tuple(self._databases())
                announced = loop.time()
            await write_message(writer, Heartbeat(databases), self._heartbeat_timeout)

    async def _control_messages(self, reader: asyncio.StreamReader) -> None:
        """The proxy's messages; it acks every keep-alive, so silence means it is gone
        (frozen, or its host vanished without closing the connection): reconnect."""
        while True:
            try:
                message = await read_message(reader, self._proxy_silence)
            except Timeout:
                raise Timeout(
                    f"the proxy acknowledged no keep-alive for {self._proxy_silence:g} s"
                ) from None
            if isinstance(message, NeedConnections):
                self._burst = message.count
                self._pool_changed.set()
            elif isinstance(message, ErrorMessage):
                raise AccessDenied(f"the proxy closed the tunnel: {message.message}")
            elif not isinstance(message, Ack):
                raise RemoteProtocolError(f"unexpected {type(message).__name__} from the proxy")

    async def _maintain_pool(self, group: asyncio.TaskGroup) -> None:
        while True:
            target = min(MAX_NEED_CONNECTIONS, max(self._pool_size, self._burst))
            while self._pooled < target:
                self._pooled += 1
                group.create_task(self._data_connection())
            self._burst = 0  # a need_connections request is met by dialing once
            self._pool_changed.clear()
            await self._pool_changed.wait()

    async def _data_connection(self) -> None:
        """Dial one data connection, wait (idle) for a session header, start the session."""
        counted = True
        try:
            reader, writer = await self._dial()
            try:
                await self._greet(reader, writer, Hello(self._agent_id, ConnectionKind.DATA))
                self._data_backoff.reset()
                header = decode_session_header(await read_frame(reader))
            except BaseException:
                await close_writer(writer)
                raise
            self._pooled -= 1
            counted = False
            self._pool_changed.set()
            task = asyncio.create_task(self._run_session(header, reader, writer))
            self._sessions.add(task)
            task.add_done_callback(self._sessions.discard)
        except (WicketError, OSError) as error:
            self._log.info("tunnel data connection ended: %s", _describe(error))
            await self._sleep(self._data_backoff.next_delay())
        finally:
            if counted:
                self._pooled -= 1
                self._pool_changed.set()

    async def _run_session(
        self, header: SessionHeader, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            await self._handle_session(header, reader, writer)
        except (WicketError, OSError) as error:
            self._log.info("session %s ended: %s", header.session_id, _describe(error))
        except Exception:
            self._log.exception("session %s failed", header.session_id)
        finally:
            await close_writer(writer)


class FailureLog:
    """What the agent says about its tunnel: a lost tunnel and the first failure to get it
    back are warnings; the same failure again only once a minute (and at debug level in
    between), with how long it has lasted; being connected again is said with how long
    it took."""

    def __init__(
        self, logger: logging.Logger, address: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._log = logger
        self._address = address
        self._clock = clock
        self._since: float | None = None  # when the current outage began
        self._last: str | None = None
        self._logged_at = 0.0
        self._attempts = 0

    def failed(self, error: str, *, lost: bool) -> None:
        """One failed attempt (`lost`: a working tunnel ended) with its description."""
        now = self._clock()
        self._attempts += 1
        if lost or self._since is None:
            self._since = now
            self._attempts = 1
        if lost:
            self._log.warning("tunnel to %s lost (%s); reconnecting", self._address, error)
        elif error != self._last or now - self._logged_at >= REPEAT_LOG_INTERVAL:
            self._log.warning(
                "cannot reach the proxy at %s: %s (retrying every %g s at most; "
                "%d attempts in %.0f s)",
                self._address,
                error,
                BACKOFF_MAXIMUM,
                self._attempts,
                now - self._since,
            )
        else:
            self._log.debug("tunnel to %s: %s (attempt %d)", self._address, error, self._attempts)
            return
        self._last = error
        self._logged_at = now

    def connected(self) -> None:
        """The control connection is up (again)."""
        if self._since is None:
            self._log.info("tunnel to %s connected", self._address)
        else:
            self._log.info(
                "tunnel to %s connected (again, after %.1f s)",
                self._address,
                self._clock() - self._since,
            )
        self._since = None
        self._last = None
        self._attempts = 0


def _describe(error: BaseException) -> str:
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in error.exceptions)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
