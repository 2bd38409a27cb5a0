"""SASL conversation dispatch: saslStart/saslContinue/authenticate for every mechanism.

Auth layer of localdocdb. Mechanism → conversation class table; conversations live
on the connection (`ConnectionState.sasl_conversations`), bounded in number and age.
Every failure answers code 18 "Authentication failed." and logs the real reason
(MongoDB auth spec: servers must not tell clients why). A mechanism the server's
mode does not offer answers BadValue (2), as MongoDB does.

Speculative authentication (auth spec, "Speculative Authentication"): the hello
handler passes `speculativeAuthenticate`; a failure there returns None and the client
then authenticates the ordinary way.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bson.binary import Binary

from localdocdb.auth.aws import AwsAuthError, AwsServer, sts_host_for_region, utc_now
from localdocdb.auth.scram import (
    SCRAM_MECHANISMS,
    ScramCredential,
    ScramError,
    ScramServer,
    ScramState,
)
from localdocdb.auth.users import EXTERNAL_DB, MONGODB_AWS, MONGODB_X509, UserStore
from localdocdb.auth.x509 import X509AuthError, authenticate_subject
from localdocdb.commands.registry import CommandContext
from localdocdb.errors import CommandError, authentication_failed, bad_value, type_mismatch
from localdocdb.state import AuthenticatedUser, ConnectionState, Mode, ServerState

MECHANISMS_BY_MODE: dict[Mode, tuple[str, ...]] = {
    Mode.DOCDB: (*SCRAM_MECHANISMS, MONGODB_AWS),
    Mode.MONGODB: (*SCRAM_MECHANISMS, MONGODB_X509),
}
MAX_CONVERSATIONS = 4  # per connection; a client runs one at a time
CONVERSATION_TTL_SECONDS = 300.0
MAX_SASL_PAYLOAD = 16 * 1024

Clock = Callable[[], float]


class AuthFailure(Exception):
    """A login failed for `reason` (logged); the client gets the generic code 18."""


@dataclass
class Conversation:
    """One SASL conversation in progress on a connection."""

    conversation_id: int
    mechanism: str
    db: str
    handler: ScramServer | AwsServer
    skip_empty_exchange: bool
    started_at: float = field(default_factory=time.monotonic)


def enabled_mechanisms(server: ServerState) -> tuple[str, ...]:
    """The mechanisms this server offers in its mode."""
    return MECHANISMS_BY_MODE[server.config.mode]


def supported_mechanisms(server: ServerState, qualified_user: str) -> list[str] | None:
    """hello's `saslSupportedMechs` for ``db.user``: the user's mechanisms, None if unknown."""
    db, dot, user = qualified_user.partition(".")
    if not dot or not db or not user:
        return None
    record = server.users.get(db, user)
    if record is None:
        return None
    enabled = enabled_mechanisms(server)
    return [m for m in record.mechanisms if m in enabled]


def _check_enabled(server: ServerState, mechanism: str) -> None:
    if mechanism not in enabled_mechanisms(server):
        raise bad_value(f"Received authentication for mechanism {mechanism} which is not enabled")


def _payload(command: dict[str, Any]) -> bytes:
    value = command.get("payload", b"")
    if isinstance(value, str):  # very old shells sent text payloads
        value = value.encode("utf-8")
    if not isinstance(value, bytes):
        raise type_mismatch("payload must be BinData")
    if len(value) > MAX_SASL_PAYLOAD:
        raise bad_value(f"SASL payload too large (at most {MAX_SASL_PAYLOAD} bytes)")
    return bytes(value)


def _login(server: ServerState, connection: ConnectionState, user: str, db: str, how: str) -> None:
    """Record a successful login (replacing any earlier user, as MongoDB 3.6+ does)."""
    connection.users[:] = [AuthenticatedUser(user, db)]
    server.log(
        f"conn{connection.connection_id}: Successfully authenticated as principal {user} "
        f"on {db} with {how} from client {connection.peer}"
    )


def _refuse(server: ServerState, connection: ConnectionState, mechanism: str, reason: str) -> None:
    server.log(
        f"conn{connection.connection_id}: Authentication failed ({mechanism}) "
        f"from client {connection.peer}: {reason}"
    )


def _scram_lookup(
    users: UserStore, db: str, mechanism: str
) -> Callable[[str], ScramCredential | None]:
    def lookup(user: str) -> ScramCredential | None:
        record = users.get(db, user)
        return None if record is None else record.credential(mechanism)

    return lookup


def _sweep_expired(connection: ConnectionState, clock: Clock) -> None:
    """Forget conversations older than CONVERSATION_TTL_SECONDS."""
    now = clock()
    conversations: dict[int, Conversation] = connection.sasl_conversations
    expired = [k for k, c in conversations.items() if now - c.started_at > CONVERSATION_TTL_SECONDS]
    for key in expired:
        del conversations[key]


def _sweep(connection: ConnectionState, clock: Clock) -> None:
    """Forget expired conversations, then the oldest ones beyond the per-connection cap."""
    _sweep_expired(connection, clock)
    conversations: dict[int, Conversation] = connection.sasl_conversations
    while len(conversations) >= MAX_CONVERSATIONS:
        oldest = min(conversations.values(), key=lambda c: c.started_at)
        del conversations[oldest.conversation_id]


def _reply(conversation: Conversation, payload: bytes, done: bool) -> dict[str, Any]:
    return {
        "conversationId": conversation.conversation_id,
        "done": done,
        "payload": Binary(payload),
        "ok": 1.0,
    }


async def sasl_start(
    ctx: CommandContext,
    command: dict[str, Any],
    db: str,
    *,
    clock: Clock = time.monotonic,
    aws_now: Callable[[], datetime.datetime] = utc_now,
) -> dict[str, Any]:
    """saslStart: begin a conversation and answer the server's first message."""
    server, connection = ctx.server, ctx.connection
    mechanism = command.get("mechanism")
    if not isinstance(mechanism, str):
        raise type_mismatch("saslStart needs a string 'mechanism'")
    _check_enabled(server, mechanism)
    payload = _payload(command)
    options = command.get("options")
    skip_empty = isinstance(options, dict) and bool(options.get("skipEmptyExchange"))
    _sweep(connection, clock)
    conversation_id = max(connection.sasl_conversations, default=0) + 1
    handler: ScramServer | AwsServer
    try:
        if mechanism in SCRAM_MECHANISMS:
            if db == EXTERNAL_DB:
                raise AuthFailure("SCRAM users cannot live in $external")
            handler = ScramServer(mechanism, _scram_lookup(server.users, db, mechanism))
            answer = handler.client_first(payload)
        elif mechanism == MONGODB_AWS:
            if db != EXTERNAL_DB:
                raise AuthFailure("MONGODB-AWS must use the $external database")
            handler = AwsServer(sts_host_for_region(server.config.region), now=aws_now)
            answer = handler.client_first(payload)
        else:
            raise bad_value(f"mechanism {mechanism} does not use saslStart")
    except (AuthFailure, ScramError, AwsAuthError) as exc:
        _refuse(server, connection, mechanism, str(exc))
        raise authentication_failed() from None
    conversation = Conversation(conversation_id, mechanism, db, handler, skip_empty, clock())
    connection.sasl_conversations[conversation_id] = conversation
    return _reply(conversation, answer, done=False)


async def sasl_continue(
    ctx: CommandContext, command: dict[str, Any], db: str, *, clock: Clock = time.monotonic
) -> dict[str, Any]:
    """saslContinue: take the client's next message, finish the login when it is the last."""
    server, connection = ctx.server, ctx.connection
    conversation_id = command.get("conversationId")
    if isinstance(conversation_id, bool) or not isinstance(conversation_id, int):
        raise type_mismatch("saslContinue needs an integer 'conversationId'")
    payload = _payload(command)
    _sweep_expired(connection, clock)
    conversation: Conversation | None = connection.sasl_conversations.get(conversation_id)
    if conversation is None:
        _refuse(server, connection, "?", f"no conversation {conversation_id} in progress")
        raise CommandError(17, "ProtocolError", "No SASL session state found")
    mechanism = conversation.mechanism
    try:
        if conversation.db != db:
            raise AuthFailure(f"saslContinue on {db}, conversation started on {conversation.db}")
        reply = await _step(ctx, conversation, payload)
    except (AuthFailure, ScramError, AwsAuthError) as exc:
        connection.sasl_conversations.pop(conversation_id, None)
        _refuse(server, connection, mechanism, str(exc))
        raise authentication_failed() from None
    if reply["done"]:
        connection.sasl_conversations.pop(conversation_id, None)
    return reply


async def _step(ctx: CommandContext, conversation: Conversation, payload: bytes) -> dict[str, Any]:
    """Advance one conversation by one client message."""
    handler = conversation.handler
    server, connection = ctx.server, ctx.connection
    if isinstance(handler, ScramServer):
        if handler.state is ScramState.EXPECT_CLIENT_FINAL:
            answer = handler.client_final(payload)
            if conversation.skip_empty_exchange:
                handler.finish()
                _login(server, connection, handler.user, conversation.db, conversation.mechanism)
                return _reply(conversation, answer, done=True)
            return _reply(conversation, answer, done=False)
        if handler.state is ScramState.SERVER_FINAL_SENT:
            if payload:
                raise AuthFailure("SCRAM: expected an empty final client message")
            handler.finish()
            _login(server, connection, handler.user, conversation.db, conversation.mechanism)
            return _reply(conversation, b"", done=True)
        raise AuthFailure(f"SCRAM conversation in state {handler.state.value}")
    request = handler.client_final(payload)
    principal = await handler.verify(request, server.config.sts_endpoint)
    record = server.users.get(EXTERNAL_DB, principal)
    if record is None or MONGODB_AWS not in record.mechanisms:
        raise AuthFailure(f"STS verified {principal}, but no $external user with MONGODB-AWS")
    _login(server, connection, principal, EXTERNAL_DB, MONGODB_AWS)
    return _reply(conversation, b"", done=True)


async def authenticate(ctx: CommandContext, command: dict[str, Any], db: str) -> dict[str, Any]:
    """The `authenticate` command: MONGODB-X509 (the only non-SASL mechanism we offer)."""
    server, connection = ctx.server, ctx.connection
    mechanism = command.get("mechanism")
    if not isinstance(mechanism, str):
        raise type_mismatch("authenticate needs a string 'mechanism'")
    _check_enabled(server, mechanism)
    if mechanism != MONGODB_X509:
        raise bad_value(f"mechanism {mechanism} must use saslStart")
    requested = command.get("user")
    try:
        if requested is not None and not isinstance(requested, str):
            raise AuthFailure("'user' must be a string")
        if db != EXTERNAL_DB:
            raise AuthFailure("X.509 authentication must use the $external database")
        subject = authenticate_subject(connection.peer_certificate_der, requested)
        record = server.users.get(EXTERNAL_DB, subject)
        if record is None or MONGODB_X509 not in record.mechanisms:
            raise AuthFailure(f"no $external user {subject!r} with MONGODB-X509")
    except (AuthFailure, X509AuthError) as exc:
        _refuse(server, connection, mechanism, str(exc))
        raise authentication_failed() from None
    _login(server, connection, subject, EXTERNAL_DB, MONGODB_X509)
    return {"dbname": EXTERNAL_DB, "user": subject, "ok": 1.0}


def logout(connection: ConnectionState) -> None:
    """Forget every login and conversation on the connection."""
    connection.users.clear()
    connection.sasl_conversations.clear()


async def speculative_authenticate(
    ctx: CommandContext, request: dict[str, Any]
) -> dict[str, Any] | None:
    """hello's speculativeAuthenticate: run saslStart/authenticate; None when it fails."""
    db = request.get("db")
    if not isinstance(db, str) or not db:
        return None
    try:
        if "saslStart" in request:
            reply = await sasl_start(ctx, request, db)
        elif "authenticate" in request:
            reply = await authenticate(ctx, request, db)
        else:
            return None
    except CommandError as exc:
        ctx.server.log(
            f"conn{ctx.connection.connection_id}: speculative authentication not done: {exc.errmsg}"
        )
        return None
    reply.pop("ok", None)
    return reply
