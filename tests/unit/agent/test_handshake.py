"""Every handshake of a session is answered by the agent: private and topology fields never
cross, in either direction, whatever opcode or wrapper the client uses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import bson
import pytest
from bson.int64 import Int64
from hypothesis import given
from hypothesis import strategies as st

from wicket.agent.mongodb.handshake import (
    HIDDEN_FIELDS,
    handshake_answer,
    handshake_command,
    handshake_reply,
)
from wicket.agent.mongodb.upstream import TOPOLOGY_FIELDS
from wicket.wire.mongo import (
    Compressor,
    Message,
    OpMsg,
    OpReply,
    compress_message,
    decode_message,
    decompress_message,
    encode_op_msg,
    encode_op_query,
)

NOW = datetime(2026, 12, 6, 21, 0, tzinfo=UTC)
UPSTREAM: dict[str, Any] = {
    "isWritablePrimary": True,
    "topologyVersion": {"processId": bson.ObjectId(), "counter": Int64(0)},
    "maxBsonObjectSize": 16 * 1024 * 1024,
    "maxMessageSizeBytes": 48_000_000,
    "localTime": datetime(2020, 1, 1, tzinfo=UTC),
    "connectionId": 7,
    "maxWireVersion": 13,
    "compression": ["zstd"],
    "setName": "rs0",
    "hosts": ["a:27017", "b:27017"],
    "saslSupportedMechs": ["SCRAM-SHA-256"],
    "speculativeAuthenticate": {"conversationId": 1},
    "ok": 1.0,
}


def op_msg(command: dict[str, Any]) -> Message:
    return decode_message(encode_op_msg(command, request_id=41))


def op_query(command: dict[str, Any]) -> Message:
    return decode_message(encode_op_query("admin.$cmd", command, request_id=41))


def wrapped_query(command: dict[str, Any]) -> Message:
    wrapper = {"$query": command, "$readPreference": {"mode": "primaryPreferred"}}
    return decode_message(encode_op_query("admin.$cmd", wrapper, request_id=41))


def compressed(command: dict[str, Any]) -> Message:
    wire = compress_message(encode_op_msg(command, request_id=41), Compressor.ZLIB)
    return decode_message(decompress_message(decode_message(wire)))


KINDS = {
    "OP_MSG": op_msg,
    "OP_QUERY": op_query,
    "$query": wrapped_query,
    "OP_COMPRESSED": compressed,
}
OP_MSG_KINDS = ("OP_MSG", "OP_COMPRESSED")

LATER_HANDSHAKES: list[dict[str, Any]] = [
    {"hello": 1, "saslSupportedMechs": "admin.master"},
    {"isMaster": 1, "saslSupportedMechs": "admin.master", "helloOk": True},
    {"ismaster": 1, "client": {"application": {"name": "x"}}},
    {"hello": 1, "topologyVersion": UPSTREAM["topologyVersion"], "maxAwaitTimeMS": 10000},
]


def answer_document(data: bytes) -> tuple[type, int, dict[str, Any]]:
    reply = decode_message(data)
    if isinstance(reply, OpMsg):
        return OpMsg, reply.header.response_to, reply.body_document()
    assert isinstance(reply, OpReply)
    return OpReply, reply.header.response_to, reply.decoded_documents()[0]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", LATER_HANDSHAKES, ids=lambda c: next(iter(c)))
def test_answers_hide_private_and_topology_fields(kind: str, command: dict[str, Any]) -> None:
    request = KINDS[kind]({**command, "$db": "admin"} if kind in OP_MSG_KINDS else dict(command))
    assert handshake_command(request) is not None
    opcode, response_to, document = answer_document(
        handshake_answer(request, UPSTREAM, request_id=9, now=NOW)
    )
    assert opcode is (OpMsg if kind in OP_MSG_KINDS else OpReply)
    assert response_to == 41
    assert not set(document) & HIDDEN_FIELDS
    assert "topologyVersion" not in document  # no awaitable hellos: drivers poll
    assert document["ok"] == 1.0
    assert document["localTime"] == NOW.replace(tzinfo=None)
    assert document["compression"] == ["zstd"] and document["connectionId"] == 7
    name = next(iter(command))
    if name == "hello":
        assert document["isWritablePrimary"] is True and "ismaster" not in document
    else:
        assert document["ismaster"] is True and "isWritablePrimary" not in document
    assert ("helloOk" in document) is bool(command.get("helloOk"))


def test_only_hellos_are_handshakes() -> None:
    assert handshake_command(op_msg({"ping": 1, "$db": "admin"})) is None
    assert handshake_command(op_msg({"find": "hello", "$db": "admin"})) is None
    legacy_find = decode_message(encode_op_query("admin.hello", {"hello": 1}, request_id=1))
    assert handshake_command(legacy_find) is None


def test_secondary_upstream_is_not_shown_as_primary() -> None:
    reply = handshake_reply({"ismaster": False, "ok": 1}, "hello", {"hello": 1}, NOW)
    assert reply["isWritablePrimary"] is False


@given(
    upstream=st.dictionaries(
        st.sampled_from(sorted(HIDDEN_FIELDS | {"ok", "connectionId", "maxWireVersion", "x"})),
        st.one_of(st.integers(), st.text(max_size=5), st.booleans()),
    ),
    name=st.sampled_from(["hello", "isMaster", "ismaster"]),
)
def test_no_hidden_field_ever_crosses(upstream: dict[str, Any], name: str) -> None:
    reply = handshake_reply(upstream, name, {name: 1}, NOW)
    assert not set(reply) & (TOPOLOGY_FIELDS | HIDDEN_FIELDS)
