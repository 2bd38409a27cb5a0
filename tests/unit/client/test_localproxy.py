"""The local tunnel's message handling: hello rewriting and local SASL, with pymongo's own
client code against a real `LocalProxy` on loopback whose upstream is a small recording
MongoDB server built on our codec (it stands in for the Wicket proxy, which refuses
client authentication just as it would)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import bson
import pytest
from bson.binary import Binary
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from wicket.client.localproxy import Answer, AuthAbsorber, Forward, LocalProxy
from wicket.wire.mongo import (
    Frame,
    MessageFramer,
    OpMsg,
    OpQuery,
    decode_message,
    encode_op_msg,
    encode_op_query,
    encode_op_reply,
)
from wicket.wire.mongo.header import parse_header

HELLO_REPLY = {
    "helloOk": True,
    "isWritablePrimary": True,
    "ismaster": True,
    "maxBsonObjectSize": 16 * 1024 * 1024,
    "maxMessageSizeBytes": 48_000_000,
    "maxWriteBatchSize": 100_000,
    "minWireVersion": 0,
    "maxWireVersion": 17,
    "logicalSessionTimeoutMinutes": 30,
    "ok": 1.0,
}


@dataclass
class RecordingServer:
    """Answers hello and everything else with ok, refuses client auth like the engine."""

    commands: list[dict[str, Any]] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = MessageFramer()
        try:
            while chunk := await reader.read(65536):
                framer.receive_data(chunk)
                while (frame := framer.next_frame()) is not None:
                    writer.write(self.answer(frame))
                await writer.drain()
        finally:
            writer.close()

    def answer(self, frame: Frame) -> bytes:
        message = decode_message(frame.data)
        if isinstance(message, OpQuery):
            command = message.query_document()
            self.commands.append(command)
            return encode_op_reply(
                [HELLO_REPLY], request_id=1, response_to=message.header.request_id
            )
        assert isinstance(message, OpMsg)
        command = message.body_document()
        self.commands.append(command)
        name = next(iter(command))
        if name in ("hello", "isMaster", "ismaster"):
            body: dict[str, Any] = HELLO_REPLY
        elif name in ("saslStart", "saslContinue", "authenticate"):
            body = {"ok": 0.0, "errmsg": "refused by the engine", "code": 13}
        elif name == "find":
            body = {"cursor": {"id": 0, "ns": "test.orders", "firstBatch": [{"i": 1}]}, "ok": 1}
        else:
            body = {"ok": 1.0}
        return encode_op_msg(body, request_id=2, response_to=message.header.request_id)

    def names(self) -> list[str]:
        return [next(iter(command)) for command in self.commands]


@dataclass
class Tunnel:
    proxy: LocalProxy
    upstream: RecordingServer
    port: int
    reports: list[str]

    def client(self, **options: Any) -> MongoClient[dict[str, Any]]:
        return MongoClient(
            "127.0.0.1",
            self.port,
            directConnection=True,
            serverSelectionTimeoutMS=5000,
            connectTimeoutMS=5000,
            **options,
        )


async def start_tunnel(password: str | None) -> Tunnel:
    upstream = RecordingServer()
    upstream.server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    upstream_port = upstream.server.sockets[0].getsockname()[1]

    async def dial() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", upstream_port)

    reports: list[str] = []
    proxy = LocalProxy(dial, scram_password=password, report=reports.append)
    _, port = await proxy.start()
    return Tunnel(proxy, upstream, port, reports)


@pytest.fixture
async def tunnel_factory() -> AsyncIterator[Any]:
    started: list[Tunnel] = []

    async def make(password: str | None = None) -> Tunnel:
        tunnel = await start_tunnel(password)
        started.append(tunnel)
        return tunnel

    yield make
    for tunnel in started:
        await tunnel.proxy.close()
        assert tunnel.upstream.server is not None
        tunnel.upstream.server.close()


def ping_with(tunnel: Tunnel, **options: Any) -> dict[str, Any]:
    with tunnel.client(**options) as client:
        reply: dict[str, Any] = client.admin.command("ping")
        found = client.test.orders.find_one()
    assert found == {"i": 1}
    return reply


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
async def test_scram_with_the_local_password_is_absorbed(
    tunnel_factory: Any, mechanism: str
) -> None:
    password = secrets.token_urlsafe(16)
    tunnel: Tunnel = await tunnel_factory(password)
    user = f"someone-{secrets.token_hex(3)}"
    reply = await asyncio.to_thread(
        ping_with, tunnel, username=user, password=password, authMechanism=mechanism
    )
    assert reply["ok"] == 1.0
    names = tunnel.upstream.names()
    assert "ping" in names and "find" in names
    assert not {"saslStart", "saslContinue", "authenticate"} & set(names)
    for command in tunnel.upstream.commands:
        assert "speculativeAuthenticate" not in command
        assert "saslSupportedMechs" not in command


async def test_default_mechanism_negotiation_is_absorbed(tunnel_factory: Any) -> None:
    password = secrets.token_urlsafe(16)
    tunnel: Tunnel = await tunnel_factory(password)
    reply = await asyncio.to_thread(ping_with, tunnel, username="app", password=password)
    assert reply["ok"] == 1.0
    assert not {"saslStart", "saslContinue"} & set(tunnel.upstream.names())


async def test_wrong_scram_password_is_refused_as_mongodb_does(tunnel_factory: Any) -> None:
    tunnel: Tunnel = await tunnel_factory(secrets.token_urlsafe(16))
    with pytest.raises(OperationFailure) as refused:
        await asyncio.to_thread(
            ping_with, tunnel, username="app", password="not-it", authMechanism="SCRAM-SHA-256"
        )
    assert refused.value.code == 18
    assert "ping" not in tunnel.upstream.names()


async def test_scram_without_local_password_says_what_to_do(tunnel_factory: Any) -> None:
    tunnel: Tunnel = await tunnel_factory(None)
    with pytest.raises(OperationFailure) as refused:
        await asyncio.to_thread(ping_with, tunnel, username="app", password="secret")
    assert refused.value.code == 18
    assert "Remove the user name and password" in str(refused.value)


async def test_plain_and_no_credentials_pass(tunnel_factory: Any) -> None:
    tunnel: Tunnel = await tunnel_factory(None)
    assert (await asyncio.to_thread(ping_with, tunnel))["ok"] == 1.0
    reply = await asyncio.to_thread(
        ping_with, tunnel, username="ldap-user", password="anything", authMechanism="PLAIN"
    )
    assert reply["ok"] == 1.0
    assert "saslStart" not in tunnel.upstream.names()


# -- the sans-IO core, byte level ------------------------------------------------------------


def frame(data: bytes) -> Frame:
    return Frame(parse_header(data), data)


def test_hello_op_msg_loses_speculative_authenticate_and_keeps_request_id() -> None:
    hello = {
        "hello": 1,
        "saslSupportedMechs": "admin.app",
        "speculativeAuthenticate": {"saslStart": 1, "mechanism": "SCRAM-SHA-256"},
        "client": {"driver": {"name": "x"}},
        "$db": "admin",
    }
    action = AuthAbsorber().handle(frame(encode_op_msg(hello, request_id=77)))
    assert isinstance(action, Forward)
    message = decode_message(action.data)
    assert isinstance(message, OpMsg)
    assert message.header.request_id == 77
    assert message.body_document() == {
        "hello": 1,
        "client": {"driver": {"name": "x"}},
        "$db": "admin",
    }


def test_hello_op_query_rewritten_in_kind() -> None:
    hello = {"isMaster": 1, "speculativeAuthenticate": {"saslStart": 1}, "helloOk": True}
    action = AuthAbsorber().handle(
        frame(encode_op_query("admin.$cmd", hello, request_id=5, number_to_return=-1))
    )
    assert isinstance(action, Forward)
    message = decode_message(action.data)
    assert isinstance(message, OpQuery)
    assert message.header.request_id == 5
    assert message.full_collection_name == "admin.$cmd"
    assert message.query_document() == {"isMaster": 1, "helloOk": True}


def test_plain_hello_and_other_commands_are_forwarded_byte_for_byte() -> None:
    absorber = AuthAbsorber()
    for body in ({"hello": 1, "$db": "admin"}, {"insert": "c", "documents": [], "$db": "t"}):
        data = encode_op_msg(body, request_id=9)
        action = absorber.handle(frame(data))
        assert action == Forward(data)


def test_authenticate_and_logout_answered_locally_in_op_reply() -> None:
    absorber = AuthAbsorber()
    query = encode_op_query(
        "$external.$cmd", {"authenticate": 1, "mechanism": "MONGODB-X509"}, request_id=3
    )
    action = absorber.handle(frame(query))
    assert isinstance(action, Answer)
    reply = decode_message(action.data)
    assert reply.header.response_to == 3
    logout = absorber.handle(frame(encode_op_msg({"logout": 1, "$db": "test"}, request_id=4)))
    assert isinstance(logout, Answer)
    answer = decode_message(logout.data)
    assert isinstance(answer, OpMsg)
    assert answer.body_document() == {"ok": 1.0}


def test_mongodb_aws_conversation_is_answered_with_a_well_formed_nonce() -> None:
    absorber = AuthAbsorber()
    nonce = secrets.token_bytes(32)
    start = {
        "saslStart": 1,
        "mechanism": "MONGODB-AWS",
        "payload": Binary(bson.encode({"r": Binary(nonce), "p": 110})),
        "$db": "$external",
    }
    action = absorber.handle(frame(encode_op_msg(start, request_id=1)))
    assert isinstance(action, Answer)
    reply = decode_message(action.data)
    assert isinstance(reply, OpMsg)
    body = reply.body_document()
    server = bson.decode(body["payload"])
    assert len(server["s"]) == 64 and server["s"].startswith(nonce)
    assert body["done"] is False
    final = {
        "saslContinue": 1,
        "conversationId": body["conversationId"],
        "payload": Binary(bson.encode({"a": "AWS4-HMAC-SHA256 ...", "d": "20240101T000000Z"})),
        "$db": "$external",
    }
    done = absorber.handle(frame(encode_op_msg(final, request_id=2)))
    assert isinstance(done, Answer)
    finished = decode_message(done.data)
    assert isinstance(finished, OpMsg)
    assert finished.body_document()["done"] is True


def test_unknown_conversation_is_an_error() -> None:
    action = AuthAbsorber().handle(
        frame(
            encode_op_msg({"saslContinue": 1, "conversationId": 42, "$db": "admin"}, request_id=1)
        )
    )
    assert isinstance(action, Answer)
    reply = decode_message(action.data)
    assert isinstance(reply, OpMsg)
    assert reply.body_document()["ok"] == 0.0
