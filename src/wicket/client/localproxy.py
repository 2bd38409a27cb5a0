"""Client layer: `wsh proxy db --tunnel`, a plain local listener that carries any MongoDB
client to the Wicket proxy over TLS with the user's route certificate.

Two parts: `AuthAbsorber` (sans-IO: one framed client message in, "forward these bytes"
or "answer with these bytes" out) and `LocalProxy` (the asyncio shell: listener, one
task group per connection, framed relay both ways so a local answer never lands in the
middle of a database reply).

Why absorb authentication. Wicket authenticates to the database itself; the engine
refuses a client's own `saslStart`/`authenticate`. Yet drivers and Compass are often
configured with credentials in the connection string. The local proxy is the client's
side (not the audited relay), so it may rewrite and answer:

- `hello`/`isMaster` carrying `speculativeAuthenticate` or `saslSupportedMechs`: those
  fields are removed and that one message is re-encoded (same request id); the driver
  then runs an ordinary SASL conversation, which is answered here.
- `saslStart`/`saslContinue`/`authenticate`/`logout` never leave the machine:
  * PLAIN, MONGODB-X509 (`authenticate`), MONGODB-AWS: answered with success; these
    clients do not check the server, so any credentials pass.
  * SCRAM-SHA-1 / SCRAM-SHA-256: SCRAM is MUTUAL (RFC 5802 section 5): the client
    checks the server's signature, which only a party knowing the password (or the
    derived ServerKey) can compute, so NO server can accept an unknown password in a
    way a correct client believes. The tunnel therefore holds a local password
    (`--db-password-stdin` / `$WSH_DB_PASSWORD`) and runs a real server-side SCRAM
    exchange (`localdocdb.auth.scram.ScramServer`) for ANY user name: the credential is
    derived from that password with a salt fixed for the tunnel's lifetime (so driver
    key caches work). A client with that password gets in; a wrong one gets MongoDB's
    AuthenticationFailed (18); without a local password, SCRAM clients get an error
    saying how to set one or to drop the credentials from the connection string.
- Everything else passes through as the original bytes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import bson
from bson.binary import Binary

from localdocdb.auth.scram import (
    SALT_LENGTHS,
    SCRAM_MECHANISMS,
    ScramCredential,
    ScramError,
    ScramServer,
    make_credential,
)
from wicket.errors import ProtocolError, WicketError
from wicket.wire.mongo import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Frame,
    Message,
    MessageFramer,
    OpCompressed,
    OpMsg,
    OpQuery,
    decode_message,
    decompress_message,
    encode_op_msg,
    encode_op_query,
    encode_op_reply,
    error_reply_for,
)

READ_CHUNK = 256 * 1024
CONNECT_TIMEOUT = 20.0
WRITE_TIMEOUT = 60.0
IDLE_TIMEOUT = 24 * 3600.0
MAX_CONVERSATIONS = 8
MAX_USER_CREDENTIALS = 64
# Room for the header and OP_MSG overhead above the largest document a server accepts.
MAX_FRAME = DEFAULT_MAX_MESSAGE_SIZE + 16 * 1024 * 1024
HELLO_NAMES = frozenset({"hello", "isMaster", "ismaster"})
HELLO_AUTH_FIELDS = ("speculativeAuthenticate", "saslSupportedMechs")
AUTH_COMMANDS = frozenset({"saslStart", "saslContinue", "authenticate", "logout"})
AUTHENTICATION_FAILED = 18
MECHANISM_UNAVAILABLE = 334  # MongoDB's MechanismUnavailable
AWS_NONCE_BYTES = 32
LOCAL_STS_HOST = "sts.amazonaws.com"

CREDENTIALS_HELP = (
    "wsh proxy db: the client tried to log in with {mechanism}, but Wicket logs in to the "
    "database for you. Remove the user name and password from the connection string, or "
    "restart the tunnel with --db-password-stdin (or WSH_DB_PASSWORD) set to the password "
    "the connection string uses."
)


@dataclass(frozen=True)
class Forward:
    """Send these bytes to the proxy."""

    data: bytes


@dataclass(frozen=True)
class Answer:
    """Send these bytes back to the client; nothing goes to the proxy."""

    data: bytes
    note: str = ""


Action = Forward | Answer


def _first_key(document: bytes) -> str:
    """The first field name of a raw BSON document, without decoding the rest."""
    if len(document) < 6:
        return ""
    end = document.find(b"\x00", 5)
    if end < 0:
        return ""
    return document[5:end].decode("utf-8", "replace")


@dataclass
class _Conversation:
    """One SASL conversation answered locally."""

    mechanism: str
    scram: ScramServer | None = None


@dataclass
class AuthAbsorber:
    """Per-connection, sans-IO: decide for each client message whether to forward it."""

    scram_password: str | None = None
    salts: dict[str, bytes] = field(default_factory=dict)
    request_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1 << 28))
    max_message_size: int = MAX_FRAME
    _conversations: dict[int, _Conversation] = field(default_factory=dict)
    _conversation_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _credentials: dict[tuple[str, str], ScramCredential] = field(default_factory=dict)

    def handle(self, frame: Frame) -> Action:
        """Forward the original bytes, a rewritten hello, or answer an auth command here."""
        message = decode_message(frame.data, max_message_size=self.max_message_size)
        inner: Message = message
        if isinstance(message, OpCompressed):
            raw = decompress_message(message, max_message_size=self.max_message_size)
            inner = decode_message(raw, max_message_size=self.max_message_size)
        name = self._command_name(inner)
        if name in HELLO_NAMES:
            return self._hello(frame, inner)
        if name in AUTH_COMMANDS:
            return self._auth(inner, name)
        return Forward(frame.data)

    # -- classification ------------------------------------------------------------------

    @staticmethod
    def _command_name(message: Message) -> str:
        if isinstance(message, OpMsg):
            return _first_key(message.body)
        if isinstance(message, OpQuery) and message.is_command:
            name = _first_key(message.query)
            if name in ("$query", "query"):
                wrapped = message.query_document().get(name)
                if isinstance(wrapped, dict) and wrapped:
                    return str(next(iter(wrapped)))
            return name
        return ""

    @staticmethod
    def _command(message: Message) -> tuple[dict[str, Any], str]:
        """The command document and its database."""
        if isinstance(message, OpMsg):
            body = message.body_document()
            return body, str(body.get("$db", "admin"))
        assert isinstance(message, OpQuery)
        query = message.query_document()
        for wrapper in ("$query", "query"):
            if isinstance(query.get(wrapper), dict):
                return dict(query[wrapper]), message.database
        return query, message.database

    def _reply(self, request: Message, document: dict[str, Any]) -> bytes:
        """A success reply in the client's format (OP_MSG, or OP_REPLY for OP_QUERY)."""
        request_id = next(self.request_ids)
        if isinstance(request, OpMsg):
            return encode_op_msg(
                document, request_id=request_id, response_to=request.header.request_id
            )
        return encode_op_reply(
            [document], request_id=request_id, response_to=request.header.request_id
        )

    def _error(self, request: Message, errmsg: str, code: int, code_name: str) -> Answer:
        data = error_reply_for(
            request,
            request_id=next(self.request_ids),
            errmsg=errmsg,
            code=code,
            code_name=code_name,
        )
        return Answer(data, note=errmsg)

    # -- hello ---------------------------------------------------------------------------

    def _hello(self, frame: Frame, message: Message) -> Action:
        command, _ = self._command(message)
        if not any(name in command for name in HELLO_AUTH_FIELDS):
            return Forward(frame.data)
        for name in HELLO_AUTH_FIELDS:
            command.pop(name, None)
        if isinstance(message, OpMsg):
            data = encode_op_msg(
                command,
                request_id=message.header.request_id,
                response_to=message.header.response_to,
                flags=message.flags,
                sequences=message.sequences,
            )
            return Forward(data)
        assert isinstance(message, OpQuery)
        query = message.query_document()
        wrapper = next((w for w in ("$query", "query") if isinstance(query.get(w), dict)), None)
        if wrapper is not None:
            query[wrapper] = command
        else:
            query = command
        data = encode_op_query(
            message.full_collection_name,
            query,
            request_id=message.header.request_id,
            flags=message.flags,
            number_to_skip=message.number_to_skip,
            number_to_return=message.number_to_return,
            return_fields_selector=message.return_fields_selector,
        )
        return Forward(data)

    # -- authentication ------------------------------------------------------------------

    def _auth(self, message: Message, name: str) -> Action:
        command, database = self._command(message)
        if name == "logout":
            self._conversations.clear()
            return Answer(self._reply(message, {"ok": 1.0}))
        if name == "authenticate":
            user = command.get("user")
            return Answer(
                self._reply(
                    message,
                    {"dbname": database, "user": str(user or ""), "ok": 1.0},
                )
            )
        if name == "saslStart":
            return self._sasl_start(message, command)
        return self._sasl_continue(message, command)

    def _sasl_start(self, message: Message, command: dict[str, Any]) -> Action:
        mechanism = str(command.get("mechanism", ""))
        payload = _payload(command)
        if len(self._conversations) >= MAX_CONVERSATIONS:
            self._conversations.clear()
        conversation_id = next(self._conversation_ids)
        if mechanism == "PLAIN":
            return Answer(self._reply(message, _sasl_reply(conversation_id, b"", done=True)))
        if mechanism == "MONGODB-AWS":
            try:
                client = bson.decode(payload)
                client_nonce = bytes(client["r"])
            except Exception:  # any malformed payload is the client's error
                return self._error(
                    message,
                    "MONGODB-AWS: malformed client payload",
                    AUTHENTICATION_FAILED,
                    "AuthenticationFailed",
                )
            server = bson.encode(
                {
                    "s": Binary(client_nonce + os.urandom(AWS_NONCE_BYTES)),
                    "h": LOCAL_STS_HOST,
                }
            )
            self._conversations[conversation_id] = _Conversation(mechanism)
            return Answer(self._reply(message, _sasl_reply(conversation_id, server, done=False)))
        if mechanism in SCRAM_MECHANISMS:
            if self.scram_password is None:
                return self._error(
                    message,
                    CREDENTIALS_HELP.format(mechanism=mechanism),
                    AUTHENTICATION_FAILED,
                    "AuthenticationFailed",
                )
            scram = ScramServer(mechanism, lambda user: self._credential(mechanism, user))
            try:
                server_first = scram.client_first(payload)
            except ScramError as error:
                return self._error(
                    message,
                    f"Authentication failed: {error}",
                    AUTHENTICATION_FAILED,
                    "AuthenticationFailed",
                )
            self._conversations[conversation_id] = _Conversation(mechanism, scram)
            return Answer(
                self._reply(message, _sasl_reply(conversation_id, server_first, done=False))
            )
        return self._error(
            message,
            f"wsh proxy db: authentication mechanism {mechanism or '(none)'} is not absorbed "
            "by the local tunnel; Wicket logs in to the database for you: remove the "
            "credentials from the connection string",
            MECHANISM_UNAVAILABLE,
            "MechanismUnavailable",
        )

    def _sasl_continue(self, message: Message, command: dict[str, Any]) -> Action:
        conversation_id = command.get("conversationId")
        conversation = (
            self._conversations.get(conversation_id) if isinstance(conversation_id, int) else None
        )
        if conversation is None or not isinstance(conversation_id, int):
            return self._error(message, "No SASL session state found", 17, "ProtocolError")
        if conversation.scram is None:  # MONGODB-AWS: the signed request is taken as is
            del self._conversations[conversation_id]
            return Answer(self._reply(message, _sasl_reply(conversation_id, b"", done=True)))
        scram = conversation.scram
        try:
            server_final = scram.client_final(_payload(command))
            scram.finish()
        except ScramError:
            del self._conversations[conversation_id]
            return self._error(
                message,
                "Authentication failed. (wsh proxy db checked the SCRAM password against the "
                "tunnel's local password, --db-password-stdin / WSH_DB_PASSWORD)",
                AUTHENTICATION_FAILED,
                "AuthenticationFailed",
            )
        del self._conversations[conversation_id]
        return Answer(
            self._reply(message, _sasl_reply(conversation_id, server_final, done=True)),
            note=f"absorbed {scram.mechanism} login of {scram.user!r}",
        )

    def _credential(self, mechanism: str, user: str) -> ScramCredential:
        """The user's SCRAM credential, derived from the local password (any user name)."""
        assert self.scram_password is not None
        key = (mechanism, user)
        cached = self._credentials.get(key)
        if cached is not None:
            return cached
        salt = self.salts.get(mechanism)
        if salt is None:
            salt = self.salts[mechanism] = os.urandom(SALT_LENGTHS[mechanism])
        credential = make_credential(mechanism, user, self.scram_password, salt=salt)
        if len(self._credentials) >= MAX_USER_CREDENTIALS:
            self._credentials.clear()
        self._credentials[key] = credential
        return credential


def _payload(command: dict[str, Any]) -> bytes:
    value = command.get("payload", b"")
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):  # some shells send base64 text
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            return value.encode()
    return b""


def _sasl_reply(conversation_id: int, payload: bytes, *, done: bool) -> dict[str, Any]:
    return {
        "conversationId": conversation_id,
        "done": done,
        "payload": Binary(payload),
        "ok": 1.0,
    }


# -- the asyncio shell ---------------------------------------------------------------------

Dial = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
Report = Callable[[str], None]


class LocalProxy:
    """A listener on loopback; each connection is dialed to the proxy and relayed."""

    def __init__(
        self,
        dial: Dial,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        scram_password: str | None = None,
        report: Report | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.dial = dial
        self.host = host
        self.port = port
        self.scram_password = scram_password
        self.report: Report = report or (lambda _line: None)
        self.connect_timeout = connect_timeout
        self.salts: dict[str, bytes] = {}  # fixed for the tunnel's life: driver caches work
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> tuple[str, int]:
        """Listen; returns the address actually bound (port 0 picks a free one)."""
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, limit=READ_CHUNK
        )
        sockname = self._server.sockets[0].getsockname()
        self.port = int(sockname[1])
        return str(sockname[0]), self.port

    async def close(self) -> None:
        """Stop listening and end every connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(
                self.dial(), self.connect_timeout
            )
        except TimeoutError:
            self.report(f"cannot reach the Wicket proxy within {self.connect_timeout:.0f}s")
            return
        except WicketError as error:
            self.report(str(error))
            return
        except (OSError, ssl.SSLError) as error:
            self.report(f"cannot connect to the Wicket proxy: {error}")
            return
        absorber = AuthAbsorber(self.scram_password, self.salts)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._client_to_proxy(reader, writer, upstream_writer, absorber))
                group.create_task(self._proxy_to_client(upstream_reader, writer))
        except* (ProtocolError, OSError, ssl.SSLError, TimeoutError) as errors:
            for problem in errors.exceptions:
                if not isinstance(problem, ConnectionResetError | BrokenPipeError):
                    self.report(f"connection from {peer}: {problem}")
        finally:
            upstream_writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(upstream_writer.wait_closed(), 5)

    async def _client_to_proxy(
        self,
        reader: asyncio.StreamReader,
        client: asyncio.StreamWriter,
        upstream: asyncio.StreamWriter,
        absorber: AuthAbsorber,
    ) -> None:
        framer = MessageFramer(MAX_FRAME)
        try:
            while True:
                chunk = await asyncio.wait_for(reader.read(READ_CHUNK), IDLE_TIMEOUT)
                if not chunk:
                    return
                framer.receive_data(chunk)
                while (frame := framer.next_frame()) is not None:
                    action = absorber.handle(frame)
                    target = upstream if isinstance(action, Forward) else client
                    target.write(action.data)
                    await asyncio.wait_for(target.drain(), WRITE_TIMEOUT)
        finally:
            # The client is gone (or broke the protocol): end the upstream side too.
            upstream.close()

    async def _proxy_to_client(
        self, reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        framer = MessageFramer(MAX_FRAME)
        try:
            while True:
                chunk = await asyncio.wait_for(reader.read(READ_CHUNK), IDLE_TIMEOUT)
                if not chunk:
                    return
                framer.receive_data(chunk)
                # Whole frames only, so a local answer never splits a database reply.
                while (frame := framer.next_frame()) is not None:
                    client.write(frame.data)
                await asyncio.wait_for(client.drain(), WRITE_TIMEOUT)
        finally:
            client.close()
