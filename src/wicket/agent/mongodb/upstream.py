"""Agent layer, MongoDB engine: the agent's own connection to the database (the upstream).

`connect_upstream` resolves the database URI (`uri.py`), dials with the database's TLS
settings (`tls.py`), runs `hello` with the *client's* metadata (never Wicket's: the
database's logs and `currentOp` should name the real application), and, for a
replica set, follows `primary`/`hosts` to the primary. The client always sees one
server (direct-connection semantics): `direct_hello_fields` strips the topology
fields from a hello reply before the engine shows it to the client.

Every failure is translated here into an error a user can act on: which host and
port, what went wrong, what to check (the guide's troubleshooting section). All
waits are bounded: `connect_timeout` covers TCP, TLS and hello together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wicket.agent.mongodb.tls import (
    LegacyCommonNameError,
    UpstreamTls,
    UpstreamTlsError,
    certificate_from_der,
    insecure_probe_context,
    upstream_tls,
    verification_error,
)
from wicket.agent.mongodb.uri import (
    MongoTarget,
    UpstreamConnectError,
    format_address,
    parse_host,
    parse_mongo_uri,
    resolve_seedlist,
)
from wicket.auth.databases import Database, TlsMode
from wicket.errors import BadParameter, RemoteProtocolError, Timeout, UpstreamError, WicketError
from wicket.wire.mongo import MessageFramer, OpMsg, decode_message, encode_op_msg

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "TOPOLOGY_FIELDS",
    "LegacyCommonNameError",
    "UpstreamAuthError",
    "UpstreamConnectError",
    "UpstreamConnection",
    "UpstreamTimeout",
    "UpstreamTlsError",
    "authenticate_x509",
    "connect_upstream",
    "direct_hello_fields",
]

log = logging.getLogger("wicket.agent.mongodb")

DEFAULT_MAX_MESSAGE_SIZE = 48_000_000
# Bounds on what a hello may claim; anything else falls back to the default.
MIN_MAX_MESSAGE_SIZE = 1024 * 1024
MAX_MAX_MESSAGE_SIZE = 256 * 1024 * 1024
READ_CHUNK = 64 * 1024
MAX_DISCOVERY_ROUNDS = 4
MAX_DISCOVERY_HOSTS = 64
CLOSE_TIMEOUT = 5.0

# What makes a hello describe a replica set (SDAM spec, "Parsing a hello response");
# `isreplicaset` would make a driver see an unusable RSGhost, the rest are member details.
TOPOLOGY_FIELDS = frozenset(
    {
        "hosts",
        "setName",
        "primary",
        "me",
        "passives",
        "arbiters",
        "setVersion",
        "electionId",
        "isreplicaset",
        "secondary",
        "arbiterOnly",
        "passive",
        "hidden",
        "tags",
        "lastWrite",
    }
)


class UpstreamTimeout(Timeout, UpstreamConnectError):
    """The database did not answer in time (connect, TLS, hello or a command)."""


class UpstreamAuthError(UpstreamError):
    """The database refused the agent's authentication."""


def _reach_hint(port: int) -> str:
    return (
        f"check that the database is running, that this database service host can reach it "
        f"(security groups / network ACLs allow port {port} from this host), "
        "and that the URI in the db_service config is right"
    )


def _connect_timeout_error(host: str, port: int, timeout: float) -> UpstreamTimeout:
    return UpstreamTimeout(
        f"timed out connecting to {format_address(host, port)} after {timeout:g}s: "
        + _reach_hint(port)
    )


@dataclass
class UpstreamConnection:
    """One open connection to the database: the streams, where, and what its hello said."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    address: tuple[str, int]
    hello: dict[str, Any] = field(default_factory=dict)
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    _request_id: int = field(default=0, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @property
    def where(self) -> str:
        """HOST:PORT, for messages."""
        return format_address(*self.address)

    async def command(
        self,
        database: str,
        command: dict[str, Any],
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 - the engine's API: one bound per round trip
    ) -> dict[str, Any]:
        """One OP_MSG round trip (hello, authentication); the reply body, `ok: 0` included."""
        name = next(iter(command), "?")
        async with self._lock:
            self._request_id = self._request_id % 0x7FFFFFFF + 1
            request_id = self._request_id
            message = encode_op_msg({**command, "$db": database}, request_id=request_id)
            try:
                async with asyncio.timeout(timeout):
                    self.writer.write(message)
                    await self.writer.drain()
                    return await self._read_reply(request_id, name)
            except TimeoutError:
                raise UpstreamTimeout(
                    f"the database at {self.where} did not answer {name!r} within {timeout:g}s"
                ) from None
            except (OSError, ssl.SSLError) as exc:
                raise UpstreamConnectError(
                    f"the connection to the database at {self.where} failed during {name!r}: "
                    f"{exc.strerror or exc}"
                ) from None

    async def _read_reply(self, request_id: int, name: str) -> dict[str, Any]:
        """Read exactly one OP_MSG reply to `request_id`."""
        framer = MessageFramer(self.max_message_size)
        while (frame := framer.next_frame()) is None:
            data = await self.reader.read(READ_CHUNK)
            if not data:
                raise UpstreamConnectError(
                    f"the database at {self.where} closed the connection during {name!r}"
                )
            framer.receive_data(data)
        if framer.buffered:
            raise RemoteProtocolError(
                f"the database at {self.where} sent {framer.buffered} unexpected bytes "
                f"after its reply to {name!r}"
            )
        message = decode_message(frame.data, max_message_size=self.max_message_size)
        if not isinstance(message, OpMsg):
            raise RemoteProtocolError(
                f"the database at {self.where} answered {name!r} with opcode "
                f"{frame.header.op_code}, not OP_MSG"
            )
        if message.header.response_to != request_id:
            raise RemoteProtocolError(
                f"the database at {self.where} answered request {message.header.response_to}, "
                f"not {request_id}"
            )
        if message.more_to_come:
            raise RemoteProtocolError(
                f"the database at {self.where} set moreToCome on its reply to {name!r}"
            )
        return message.body_document()

    async def close(self) -> None:
        """Close the connection (bounded wait for the TLS close)."""
        self.writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.writer.wait_closed()


def direct_hello_fields(hello: Mapping[str, Any]) -> dict[str, Any]:
    """A hello reply as one standalone server (the engine shows the client only this)."""
    return {key: value for key, value in hello.items() if key not in TOPOLOGY_FIELDS}


def _max_message_size(hello: Mapping[str, Any]) -> int:
    """`maxMessageSizeBytes` from a hello, within sane bounds, else 48 MB."""
    value = hello.get("maxMessageSizeBytes")
    if isinstance(value, int) and not isinstance(value, bool):
        if MIN_MAX_MESSAGE_SIZE <= value <= MAX_MAX_MESSAGE_SIZE:
            return value
        log.warning("ignoring hello maxMessageSizeBytes %d (out of bounds)", value)
    return DEFAULT_MAX_MESSAGE_SIZE


async def connect_upstream(
    database: Database,
    *,
    client_metadata: Mapping[str, Any] | None,
    client_certificate: tuple[bytes, bytes] | None = None,
    connect_timeout: float = 10.0,
    hello_fields: Mapping[str, Any] | None = None,
    nameservers: Sequence[tuple[str, int]] | None = None,
) -> UpstreamConnection:
    """Connect to `database` (its primary, for a replica set) and run hello.

    `client_metadata` is the real client's hello `client` document (None: send none).
    `client_certificate` is (cert PEM, key PEM) for MONGODB-X509. `hello_fields` adds
    fields to the hello (e.g. the client's `compression` list). `nameservers` replaces
    the system resolver for `mongodb+srv://` (tests).
    """
    if connect_timeout <= 0:
        raise BadParameter("connect_timeout must be positive")
    target = parse_mongo_uri(database.uri)
    target = await resolve_seedlist(target, nameservers=nameservers, lifetime=connect_timeout)
    # TLS is on unless the URI turns it off: verify-full is Wicket's default.
    tls: UpstreamTls | None = None
    if target.tls is not False:
        tls = upstream_tls(database.tls, client_certificate=client_certificate)
        if tls.mode is TlsMode.INSECURE:
            log.warning(
                "database %s: TLS certificate verification is OFF (tls.mode insecure); "
                "anyone on the network path can impersonate the database",
                database.name,
            )
    elif client_certificate is not None:
        raise BadParameter(
            f"database {database.name}: X.509 authentication needs TLS, but its URI sets tls=false"
        )
    hello: dict[str, Any] = {"hello": 1, **(hello_fields or {})}
    if client_metadata is not None:
        hello["client"] = dict(client_metadata)
    dialer = _Dialer(tls, hello, connect_timeout)
    if not target.discovers_topology:
        return await dialer.connect(*target.hosts[0])
    return await _discover_primary(target, dialer)


@dataclass(frozen=True)
class _Dialer:
    """Dials one host: TCP, TLS, hello, all within one deadline."""

    tls: UpstreamTls | None
    hello: dict[str, Any]
    timeout: float

    async def connect(self, host: str, port: int) -> UpstreamConnection:
        """An open, hello'd connection to HOST:PORT, or an error that says what to fix."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        try:
            async with asyncio.timeout_at(deadline):
                reader, writer = await self._open(host, port)
        except TimeoutError:
            raise _connect_timeout_error(host, port, self.timeout) from None
        connection = UpstreamConnection(reader, writer, (host, port))
        try:
            reply = await connection.command(
                "admin", dict(self.hello), timeout=max(deadline - loop.time(), 0.001)
            )
        except UpstreamTimeout:
            await connection.close()
            raise _connect_timeout_error(host, port, self.timeout) from None
        except BaseException:
            await connection.close()
            raise
        if reply.get("ok") != 1:
            await connection.close()
            raise UpstreamConnectError(
                f"the database at {connection.where} refused hello: "
                f"{reply.get('errmsg', reply)} (code {reply.get('code')})"
            )
        connection.hello = reply
        connection.max_message_size = _max_message_size(reply)
        return connection

    async def _open(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        where = format_address(host, port)
        tls = self.tls
        try:
            if tls is None:
                return await asyncio.open_connection(host, port)
            return await asyncio.open_connection(
                host,
                port,
                ssl=tls.context,
                server_hostname=host,
                ssl_handshake_timeout=self.timeout + 1,
            )
        except ssl.SSLCertVerificationError as exc:
            certificate = None
            if tls is not None and tls.mode is TlsMode.VERIFY_FULL:
                certificate = await _probe_certificate(host, port, self.timeout)
            assert tls is not None
            raise verification_error(tls, host, port, exc, certificate) from None
        except ssl.SSLError as exc:
            raise UpstreamTlsError(
                f"TLS handshake with {where} failed: {exc.reason or exc}; check that the "
                f"database speaks TLS on port {port} (set tls=false in the URI if it does not)"
            ) from None
        except ConnectionRefusedError:
            raise UpstreamConnectError(
                f"connection refused by {where}: " + _reach_hint(port)
            ) from None
        except socket.gaierror as exc:
            raise UpstreamConnectError(
                f"cannot resolve the database host {host!r} ({exc.strerror}): check the host "
                "name in the URI in the db_service config and this host's DNS settings"
            ) from None
        except ConnectionError as exc:
            raise UpstreamConnectError(
                f"connection to {where} failed during the TLS handshake ({exc.strerror or exc}): "
                f"check that the database speaks TLS on port {port}"
            ) from None
        except OSError as exc:
            raise UpstreamConnectError(
                f"cannot connect to {where} ({exc.strerror or exc}): " + _reach_hint(port)
            ) from None


async def _probe_certificate(host: str, port: int, limit: float) -> Any:
    """The server's certificate, read without verification, only to word an error."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(limit):
            _, writer = await asyncio.open_connection(
                host, port, ssl=insecure_probe_context(), server_hostname=host
            )
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    except (OSError, ssl.SSLError, TimeoutError):
        return None
    finally:
        if writer is not None:
            writer.close()
    return certificate_from_der(der)


def _is_primary(hello: Mapping[str, Any]) -> bool:
    return bool(hello.get("isWritablePrimary") or hello.get("ismaster"))


def _members(hello: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Where a member says to look next: its `primary` first, then the data-bearing hosts."""
    names: list[object] = []
    if isinstance(hello.get("primary"), str):
        names.append(hello["primary"])
    for key in ("hosts", "passives"):
        value = hello.get(key)
        if isinstance(value, list):
            names.extend(value[:MAX_DISCOVERY_HOSTS])
    found: list[tuple[str, int]] = []
    for name in names:
        if isinstance(name, str):
            with contextlib.suppress(BadParameter):
                found.append(parse_host(name))
    return found


async def _discover_primary(target: MongoTarget, dialer: _Dialer) -> UpstreamConnection:
    """Dial the seeds together, follow what members say, return the primary's connection."""
    seen: set[tuple[str, int]] = set()
    failures: list[WicketError] = []
    batch = list(dict.fromkeys(target.hosts))
    for _ in range(MAX_DISCOVERY_ROUNDS):
        batch = [host for host in batch if host not in seen][:MAX_DISCOVERY_HOSTS]
        if not batch:
            break
        seen.update(batch)
        found: list[tuple[str, int]] = []
        tasks = {asyncio.create_task(dialer.connect(*host)): host for host in batch}
        winner: UpstreamConnection | None = None
        try:
            for next_done in asyncio.as_completed(tasks):
                try:
                    connection = await next_done
                except UpstreamTlsError:
                    raise  # a TLS misconfiguration is the answer, not one failure among many
                except WicketError as exc:
                    failures.append(exc)  # each message names its host
                    continue
                problem = _membership_problem(target, connection.hello)
                if problem is None and _is_primary(connection.hello):
                    winner = connection
                    return connection
                if problem is not None:
                    failures.append(UpstreamConnectError(f"{connection.where} {problem}"))
                else:
                    found.extend(_members(connection.hello))
                await connection.close()
        finally:
            await _cancel_and_close(tasks, keep=winner)
        batch = found
    raise _no_primary_error(target, failures)


def _membership_problem(target: MongoTarget, hello: Mapping[str, Any]) -> str | None:
    """Why a server that answered cannot be used for this target, if it cannot."""
    set_name = hello.get("setName")
    if target.replica_set is not None and set_name != target.replica_set:
        if set_name is None:
            return f"is not a member of replica set {target.replica_set!r} (it has no setName)"
        return f"is in replica set {set_name!r}, not {target.replica_set!r}"
    return None


async def _cancel_and_close(
    tasks: Mapping[asyncio.Task[UpstreamConnection], object], *, keep: UpstreamConnection | None
) -> None:
    """Cancel the dials still running and close connections that finished unclaimed."""
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        unclaimed = isinstance(result, UpstreamConnection) and result is not keep
        if unclaimed and isinstance(result, UpstreamConnection) and not result.writer.is_closing():
            await result.close()


def _no_primary_error(target: MongoTarget, failures: list[WicketError]) -> UpstreamError:
    """One error for a replica set where no primary could be reached."""
    reasons = "; ".join(str(failure) for failure in failures) or "no member is the primary"
    message = f"could not reach the primary of {target.describe()}: {reasons}"
    if failures and all(isinstance(failure, Timeout) for failure in failures):
        return UpstreamTimeout(message)
    return UpstreamConnectError(message)


async def authenticate_x509(connection: UpstreamConnection, *, subject: str) -> None:
    """MONGODB-X509 on `$external` with the connection's client certificate."""
    reply = await connection.command("$external", {"authenticate": 1, "mechanism": "MONGODB-X509"})
    if reply.get("ok") == 1:
        return
    raise UpstreamAuthError(
        f"MONGODB-X509 authentication as {subject!r} to {connection.where} failed "
        f"({reply.get('errmsg', 'no reason given')}, code {reply.get('code')}): create the "
        f'database user: db.getSiblingDB("$external").runCommand({{createUser: '
        f'"{subject}", roles: [...]}}), and check that the database trusts Wicket\'s '
        "database CA (net.tls.CAFile: the .cas file from `wctl auth sign --format=mongodb`)"
    )
