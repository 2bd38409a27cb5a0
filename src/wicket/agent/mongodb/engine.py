"""The MongoDB engine: one user's session from the tunnel to the database and back.

1. Verify the user's certificate (the proxy's word is not taken), then the session
   against the roles: the database's labels, the db user, the db name.
2. Read the client's handshake, connect upstream with the client's own metadata and
   compression list, and authenticate as the db user: MONGODB-AWS with the IAM
   role for DocumentDB, MONGODB-X509 with a fresh client certificate otherwise.
   Answer the client's handshake with the database's (topology and private fields
   removed: the client always sees one server); every later hello/isMaster of the
   session is answered the same way and never reaches the database (handshake.py).
   With live authorization (`wicket.agent.live_sessions`), step 1 decides on the
   agent's mirror of the CURRENT users, roles and locks, and the session stays
   registered: when it loses its rights (certificate expiry, `max_session_ttl`, user
   deleted, lock, role change) the request in flight gets an Unauthorized error reply
   saying why ("session ended: ...") and both sides are closed.
3. Relay both ways. Client → database: frame, inspect (inner message of
   OP_COMPRESSED), authorize, audit, forward the ORIGINAL bytes; refused messages get
   an error reply in the client's format and the session goes on. Database → client:
   whole frames as they come (moreToCome and exhaust replies stream on their own),
   except a narrowed listDatabases reply (listing.py).
4. End at once, whichever side ends or fails: both directions run as tasks and the
   first to finish ends the session (none may end silently). The database closing or
   failing gives the request in flight a HostUnreachable error reply saying so, then
   the client is closed; the client leaving closes the database connection. The
   reason is the `error` of `db.session.end`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509

from wicket.agent.access import SessionSubject
from wicket.agent.live_sessions import SessionRegistry
from wicket.agent.mongodb.authorize import (
    ALLOWED,
    NARROWED,
    UNAUTHORIZED,
    MessageAuthorizer,
    MessageDecision,
)
from wicket.agent.mongodb.aws_sasl import authenticate_mongodb_aws
from wicket.agent.mongodb.handshake import handshake_answer, handshake_command
from wicket.agent.mongodb.iam import IamAuthenticator, db_user_role_arn, role_session_name
from wicket.agent.mongodb.listing import DatabaseListings
from wicket.agent.mongodb.upstream import (
    UpstreamConnection,
    authenticate_x509,
    connect_upstream,
)
from wicket.audit.events import AuditEvent, SessionAudit, SessionCounters
from wicket.auth.databases import Database
from wicket.auth.roles import AccessChecker, Role
from wicket.auth.store import utc_now
from wicket.errors import (
    AccessDenied,
    BadParameter,
    ProtocolError,
    UpstreamError,
    WicketError,
)
from wicket.identity import Identity, IdentityKind
from wicket.pki.authority import verify_certificate
from wicket.pki.pem import load_certificate
from wicket.tunnel.protocol import SessionHeader
from wicket.wire.mongo import (
    CommandInfo,
    Message,
    MessageFramer,
    OpCompressed,
    OpMsg,
    OpQuery,
    decode_message,
    decompress_message,
    error_reply_for,
    expects_reply,
    inspect_message,
)

log = logging.getLogger("wicket.agent.mongodb")

READ_CHUNK = 256 * 1024
HANDSHAKE_TIMEOUT = 30.0
IDLE_TIMEOUT = 24 * 3600.0
WRITE_TIMEOUT = 60.0
HANDSHAKE_LIMIT = 1024 * 1024
END_GRACE = 1.0  # an ended session with no request in flight answers the next one within this
HOST_UNREACHABLE = 6  # MongoDB's code for "the server behind this one is gone"

RoleLookup = Callable[[str], Awaitable[Role]]
DatabaseLookup = Callable[[str], Awaitable[Database]]
ClientCertificate = Callable[[str], Awaitable[tuple[bytes, bytes]]]
Emit = Callable[[AuditEvent], None]


def uses_iam(database: Database) -> bool:
    """DocumentDB with IAM (aws settings or an Amazon endpoint) versus MongoDB with X.509."""
    aws = database.aws
    return bool(
        aws.region
        or aws.account_id
        or aws.assume_role_arn
        or ".docdb.amazonaws.com" in database.uri
        or ".docdb-elastic.amazonaws.com" in database.uri
    )


@dataclass
class EngineContext:
    """What the agent gives every session."""

    cluster_name: str
    user_ca: x509.Certificate
    host_id: str
    database: DatabaseLookup
    role: RoleLookup
    client_certificate: ClientCertificate
    iam: IamAuthenticator
    emit: Emit
    connect_timeout: float = 10.0
    nameservers: list[tuple[str, int]] | None = None
    request_ids: Any = field(default_factory=lambda: itertools.count(1 << 24))
    sessions: SessionRegistry | None = None  # live authorization (None: decided once)


@dataclass
class Traffic:
    """Messages and bytes each way, counted as they pass."""

    messages_from_client: int = 0
    messages_from_server: int = 0
    bytes_from_client: int = 0
    bytes_from_server: int = 0

    def snapshot(self) -> SessionCounters:
        """The counts for the session's end event."""
        return SessionCounters(
            messages_from_client=self.messages_from_client,
            messages_from_server=self.messages_from_server,
            bytes_from_client=self.bytes_from_client,
            bytes_from_server=self.bytes_from_server,
        )


class SessionRefused(AccessDenied):
    """The session may not start; the message says why."""


class SessionEnded(AccessDenied):
    """An open session lost its rights; the message says why ("session ended: ...")."""


class DatabaseGone(UpstreamError):
    """The database closed the session's connection, or reading or writing it failed."""


class ClientGone(WicketError):
    """The client's side (the tunnel stream) failed while the session wrote to it."""


def message_authorizer(checker: AccessChecker, labels: Mapping[str, str]) -> MessageAuthorizer:
    """Per-message checks for one set of rights on one database."""
    return MessageAuthorizer(
        checker, labels, allow_unknown_commands=checker.allows_unknown_commands(labels)
    )


class LiveAuthorizer:
    """A session's per-message checks; every one must allow (current rights AND the
    certificate's), and the set is replaced when roles change (`reauthorize`)."""

    def __init__(self, authorizers: tuple[MessageAuthorizer, ...]) -> None:
        self.authorizers = authorizers

    def check(self, info: CommandInfo) -> MessageDecision:
        """The first refusal; else allowed, narrowed when any set of rights narrows it."""
        if not self.authorizers:
            return MessageDecision(False, "no rights")
        narrow = False
        for authorizer in self.authorizers:
            decision = authorizer.check(info)
            if not decision.allowed:
                return decision
            narrow = narrow or decision.narrow_databases
        return NARROWED if narrow else ALLOWED

    def allows_database(self, name: str) -> bool:
        """Whether every set of rights allows logical database `name` (narrowed listings)."""
        return bool(self.authorizers) and all(
            authorizer.allows_database(name) for authorizer in self.authorizers
        )


def _response_to(frame: bytes) -> int:
    """The responseTo field of a message header (bytes 8-11, little-endian)."""
    return int.from_bytes(frame[8:12], "little", signed=True)


async def _read_frame(
    reader: asyncio.StreamReader, framer: MessageFramer, seconds: float
) -> bytes | None:
    """One whole message, or None at end of stream (at most `seconds` of silence)."""
    while (frame := framer.next_frame()) is None:
        data = await asyncio.wait_for(reader.read(READ_CHUNK), seconds)
        if not data:
            return None
        framer.receive_data(data)
    return frame.data


def _inner(message: Message) -> Message:
    if isinstance(message, OpCompressed):
        return decode_message(decompress_message(message))
    return message


def _raw_body(message: Message) -> bytes | None:
    if isinstance(message, OpMsg):
        return message.body
    if isinstance(message, OpQuery):
        return message.query
    return None


class MongoSession:
    """One client session on one tunnel connection."""

    def __init__(
        self,
        context: EngineContext,
        header: SessionHeader,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.context = context
        self.header = header
        self.client_reader = reader
        self.client_writer = writer
        self.counters = Traffic()
        self.audit: SessionAudit | None = None
        self.upstream: UpstreamConnection | None = None
        self.started = time.monotonic()
        self.listings = DatabaseListings()  # listDatabases replies to narrow (listing.py)
        self._subject: SessionSubject | None = None
        self._authorizer: LiveAuthorizer | None = None
        self._relay: asyncio.Task[None] | None = None
        self._end_reason: str | None = None
        self._in_flight: Message | None = None  # the last forwarded request awaiting a reply

    # -- authorization ---------------------------------------------------------------

    def _identity(self) -> Identity:
        chain = self.header.user_cert_chain_pem
        if not chain:
            raise AccessDenied("the proxy sent no user certificate")
        cert = load_certificate(chain[0].encode())
        identity = verify_certificate(
            cert, self.context.user_ca, cluster=self.context.cluster_name, kinds={IdentityKind.USER}
        )
        if identity.route is None:
            raise AccessDenied(f'the certificate of "{identity.name}" has no database route')
        if identity.route.to_dict() != dict(self.header.route):
            raise AccessDenied("the proxy's route does not match the user's certificate")
        return identity

    async def _authorize(self, identity: Identity) -> tuple[Database, LiveAuthorizer]:
        route = identity.route
        assert route is not None
        database = await self.context.database(route.service)
        self._subject = SessionSubject(
            user=identity.name,
            roles=identity.roles,
            traits=identity.traits,
            route=route,
            labels=dict(database.labels),
            expires=identity.expires,
            started=utc_now(),
        )
        checkers: tuple[AccessChecker, ...] | None = None
        if self.context.sessions is not None:
            verdict, checkers = await self.context.sessions.admit(self._subject)
            if not verdict.allowed:
                raise SessionRefused(verdict.refused())
        if checkers is None:  # no mirrored state (yet): the certificate's roles, fetched
            roles = [await self.context.role(name) for name in identity.roles]
            checkers = (AccessChecker(roles, identity.traits),)
        for checker in checkers:
            decision = checker.check_database(database.labels)
            if not decision.allowed:
                raise SessionRefused(
                    f'access to database "{database.name}" denied: {decision.reason}'
                )
            if not route.db_user:
                raise SessionRefused(
                    "no database user chosen: connect with --db-user "
                    f"(allowed: {', '.join(checker.allowed_db_users(database.labels)) or 'none'})"
                )
            decision = checker.check_db_user(database.labels, route.db_user)
            if not decision.allowed:
                raise SessionRefused(decision.reason)
            if route.db_name:
                decision = checker.check_db_name(database.labels, route.db_name)
                if not decision.allowed:
                    raise SessionRefused(decision.reason)
        return database, LiveAuthorizer(
            tuple(message_authorizer(checker, database.labels) for checker in checkers)
        )

    # -- live authorization (SessionRegistry calls these) -------------------------------

    @property
    def subject(self) -> SessionSubject:
        """Who and what this session is (set once it was authorized)."""
        assert self._subject is not None
        return self._subject

    def end(self, reason: str) -> None:
        """End the session: the request in flight gets `reason`, both sides are closed."""
        if self._end_reason is None:
            self._end_reason = reason
            if self._relay is not None:
                self._relay.cancel()

    def reauthorize(self, checkers: tuple[AccessChecker, ...]) -> None:
        """Check the next messages with the session's current rights."""
        if self._authorizer is not None and self._subject is not None:
            labels = self._subject.labels
            self._authorizer.authorizers = tuple(message_authorizer(c, labels) for c in checkers)

    def _note_request(self, message: Message) -> None:
        if expects_reply(message):
            self._in_flight = message

    def _note_reply(self, frame: bytes) -> None:
        request = self._in_flight
        if request is not None and _response_to(frame) == request.header.request_id:
            self._in_flight = None

    # -- upstream ----------------------------------------------------------------------

    async def _connect(
        self, database: Database, db_user: str, command: Mapping[str, Any]
    ) -> UpstreamConnection:
        metadata = command.get("client")
        hello_fields: dict[str, Any] = {}
        if isinstance(command.get("compression"), list):
            hello_fields["compression"] = command["compression"]
        if uses_iam(database):
            aws = database.aws
            account = await self.context.iam.account_id(
                database_aws_account_id=aws.account_id or None,
                cluster_endpoint=database.uri,
                region=aws.region or None,
            )
            role_arn = db_user_role_arn(db_user, account)
            credentials = await self.context.iam.credentials_for(
                role_arn=role_arn,
                assume_role_arn=aws.assume_role_arn or None,
                external_id=aws.external_id or None,
                session_name=role_session_name(self.audit.user if self.audit else "wicket"),
                region=aws.region or None,
            )
            upstream = await connect_upstream(
                database,
                client_metadata=metadata if isinstance(metadata, dict) else None,
                connect_timeout=self.context.connect_timeout,
                hello_fields=hello_fields,
                nameservers=self.context.nameservers,
            )
            try:
                await authenticate_mongodb_aws(upstream.command, credentials, role_arn=role_arn)
            except BaseException:
                await upstream.close()
                raise
            return upstream
        certificate = await self.context.client_certificate(db_user)
        upstream = await connect_upstream(
            database,
            client_metadata=metadata if isinstance(metadata, dict) else None,
            client_certificate=certificate,
            connect_timeout=self.context.connect_timeout,
            hello_fields=hello_fields,
            nameservers=self.context.nameservers,
        )
        try:
            subject = x509.load_pem_x509_certificate(certificate[0]).subject.rfc4514_string()
            await authenticate_x509(upstream, subject=subject)
        except BaseException:
            await upstream.close()
            raise
        return upstream

    # -- replies -----------------------------------------------------------------------

    def _next_id(self) -> int:
        return int(next(self.context.request_ids))

    async def _send_client(self, data: bytes) -> None:
        try:
            self.client_writer.write(data)
            await asyncio.wait_for(self.client_writer.drain(), WRITE_TIMEOUT)
        except TimeoutError:
            raise ClientGone(f"the client did not read for {WRITE_TIMEOUT:g} s") from None
        except OSError as error:  # ssl.SSLError is an OSError
            raise ClientGone(f"writing to the client failed: {_describe(error)}") from None

    async def _send_database(self, data: bytes) -> None:
        assert self.upstream is not None
        try:
            self.upstream.writer.write(data)
            await asyncio.wait_for(self.upstream.writer.drain(), WRITE_TIMEOUT)
        except TimeoutError:
            raise DatabaseGone(f"the database did not read for {WRITE_TIMEOUT:g} s") from None
        except OSError as error:
            raise DatabaseGone(f"writing to the database failed: {_describe(error)}") from None

    def _hello_answer(self, request: Message) -> bytes:
        """Every handshake of the session is answered here (handshake.py says why)."""
        assert self.upstream is not None
        return handshake_answer(
            request, self.upstream.hello, request_id=self._next_id(), now=datetime.now(UTC)
        )

    async def _refuse(
        self,
        request: Message | None,
        message: str,
        *,
        code: int = UNAUTHORIZED,
        code_name: str = "Unauthorized",
    ) -> None:
        if request is not None and expects_reply(request):
            with contextlib.suppress(WicketError, OSError, TimeoutError):
                await self._send_client(
                    error_reply_for(
                        request,
                        request_id=self._next_id(),
                        errmsg=message,
                        code=code,
                        code_name=code_name,
                    )
                )

    # -- the session ---------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the session to its end; every path is audited."""
        error: str | None = None
        try:
            await self._run()
        except WicketError as failure:
            error = str(failure)
        except asyncio.CancelledError:
            error = "the agent stopped the session"
            raise
        except Exception as failure:  # a bug: still audited, then logged by the caller
            error = f"internal error: {_describe(failure)}"
            raise
        finally:
            if self.upstream is not None:
                await self.upstream.close()
            self.client_writer.close()
            if self.audit is not None:
                self.context.emit(
                    self.audit.end(
                        duration=timedelta(seconds=time.monotonic() - self.started),
                        counters=self.counters.snapshot(),
                        error=error,
                    )
                )

    async def _run(self) -> None:
        framer = MessageFramer(HANDSHAKE_LIMIT)
        first_bytes = await _read_frame(self.client_reader, framer, HANDSHAKE_TIMEOUT)
        if first_bytes is None:
            return
        self.counters.messages_from_client += 1
        self.counters.bytes_from_client += len(first_bytes)
        first = _inner(decode_message(first_bytes))
        try:
            identity = self._identity()
            route = identity.route
            assert route is not None
            self.audit = SessionAudit(
                cluster=self.context.cluster_name,
                user=identity.name,
                roles=identity.roles,
                session_id=self.header.session_id,
                db_service=route.service,
                db_protocol=route.protocol,
                db_user=route.db_user,
                db_name=route.db_name,
                client_addr=self.header.client_addr,
                server_id=self.context.host_id,
            )
            database, authorizer = await self._authorize(identity)
            handshake = handshake_command(first)
            if handshake is None:
                raise BadParameter("the first message of a session must be hello or isMaster")
            _name, command = handshake
            if "speculativeAuthenticate" in command:
                log.info(
                    "session %s: ignoring the client's speculative authentication",
                    self.header.session_id,
                )
            assert route.db_user is not None
            self.upstream = await self._connect(database, route.db_user, command)
        except WicketError as failure:
            if self.audit is not None:
                self.context.emit(self.audit.start(success=False, error=failure))
            log.info("session %s refused: %s", self.header.session_id, failure)
            await self._refuse(first, str(failure))
            raise
        self.context.emit(self.audit.start(success=True))
        handshake_info = inspect_message(first)
        self.context.emit(
            self.audit.query(
                command=handshake_info.name,
                database=handshake_info.database,
                namespaces=[],
                body=_raw_body(first),
            )
        )
        answer = self._hello_answer(first)
        self.counters.messages_from_server += 1
        self.counters.bytes_from_server += len(answer)
        await self._send_client(answer)
        framer.max_message_size = self.upstream.max_message_size
        self._authorizer = authorizer
        self._relay = asyncio.create_task(self._relay_both(framer, authorizer))
        registry = self.context.sessions
        try:
            if registry is not None:
                registry.add(self)  # may end the session at once
            await self._relay
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._end_reason is None or (current is not None and current.cancelling()):
                raise
        except DatabaseGone as gone:
            log.info("session %s: %s", self.header.session_id, gone)
            await self._refuse(
                self._in_flight, str(gone), code=HOST_UNREACHABLE, code_name="HostUnreachable"
            )
            raise
        finally:
            if registry is not None:
                registry.remove(self)
            self._relay.cancel()
            with contextlib.suppress(asyncio.CancelledError, WicketError, OSError):
                await self._relay
        if self._end_reason is not None:
            log.info("session %s: %s", self.header.session_id, self._end_reason)
            request = self._in_flight or await self._next_request(framer)
            await self._refuse(request, self._end_reason)
            raise SessionEnded(self._end_reason)

    async def _relay_both(self, framer: MessageFramer, authorizer: LiveAuthorizer) -> None:
        """Both directions until the first one ends: its end or failure ends the session.

        Returns when the client ended the session; raises what ended it otherwise
        (DatabaseGone, ClientGone, ProtocolError, ...). The other direction is cancelled.
        """
        to_database = asyncio.create_task(self._client_to_database(framer, authorizer))
        to_client = asyncio.create_task(self._database_to_client())
        tasks = (to_database, to_client)
        try:
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await _stop(tasks)
        for task in (to_client, to_database):  # the database's end explains the client's
            if task in done:
                task.result()  # raises what ended it
        if to_client in done:
            raise DatabaseGone("the database closed the connection")

    async def _next_request(self, framer: MessageFramer) -> Message | None:
        """The client's next message, if it sends one soon (so it learns why, not just EOF)."""
        try:
            data = await _read_frame(self.client_reader, framer, END_GRACE)
            if data is None:
                return None
            self.counters.messages_from_client += 1
            self.counters.bytes_from_client += len(data)
            return _inner(decode_message(data, max_message_size=framer.max_message_size))
        except (WicketError, OSError, TimeoutError):
            return None

    async def _client_to_database(self, framer: MessageFramer, authorizer: LiveAuthorizer) -> None:
        assert self.audit is not None
        audit = self.audit
        while True:
            try:
                data = await _read_frame(self.client_reader, framer, IDLE_TIMEOUT)
            except TimeoutError:
                raise ClientGone(f"the client was idle for {IDLE_TIMEOUT:g} s") from None
            except OSError as error:
                raise ClientGone(f"reading from the client failed: {_describe(error)}") from None
            if data is None:
                return
            self.counters.messages_from_client += 1
            self.counters.bytes_from_client += len(data)
            try:
                message = _inner(decode_message(data, max_message_size=framer.max_message_size))
                info = inspect_message(message)
            except ProtocolError as failure:
                self.context.emit(
                    audit.query_failed(
                        command="", database=None, namespaces=(), body=None, error=failure
                    )
                )
                raise
            namespaces = [str(ns) for ns in info.namespaces]
            decision = authorizer.check(info)
            if not decision.allowed:
                self.context.emit(
                    audit.query_failed(
                        command=info.name,
                        database=info.database,
                        namespaces=namespaces,
                        body=_raw_body(message),
                        error=decision.reason,
                    )
                )
                await self._refuse(message, decision.reason)
                continue
            self.context.emit(
                audit.query(
                    command=info.name,
                    database=info.database,
                    namespaces=namespaces,
                    body=_raw_body(message),
                )
            )
            if handshake_command(message) is not None:
                # a later hello/isMaster gets the first one's answer: nothing reaches the db
                # (whatever the inspector made of it: unknown ones too)
                if expects_reply(message):
                    answer = self._hello_answer(message)
                    self.counters.messages_from_server += 1
                    self.counters.bytes_from_server += len(answer)
                    await self._send_client(answer)
                continue
            narrowed = decision.narrow_databases and expects_reply(message)
            if narrowed and not self.listings.expect(
                message.header.request_id, authorizer.allows_database
            ):
                await self._refuse(message, "too many listDatabases requests await their reply")
                continue
            self._note_request(message)
            await self._send_database(data)  # the original bytes, compressed or not

    async def _database_to_client(self) -> None:
        """Replies to the client until the database ends (returns) or fails (raises)."""
        assert self.upstream is not None
        framer = MessageFramer(self.upstream.max_message_size)
        while True:
            try:
                data = await _read_frame(self.upstream.reader, framer, IDLE_TIMEOUT)
            except TimeoutError:
                raise DatabaseGone(f"the database was silent for {IDLE_TIMEOUT:g} s") from None
            except OSError as error:
                raise DatabaseGone(
                    f"the connection to the database failed: {_describe(error)}"
                ) from None
            except ProtocolError as error:
                raise DatabaseGone(f"the database sent a bad message: {error}") from None
            if data is None:
                return
            self.counters.messages_from_server += 1
            self.counters.bytes_from_server += len(data)
            self._note_reply(data)
            await self._send_client(self.listings.relay(data))


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


async def _stop(tasks: tuple[asyncio.Task[None], ...]) -> None:
    """Cancel `tasks` and wait (bounded) for them; cancel again if one swallowed it (3.11's
    `wait_for` can lose a cancellation that races with its read completing)."""
    for _ in range(5):
        pending = [task for task in tasks if not task.done()]
        if not pending:
            break
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.5)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: the caller re-raises what it needs
