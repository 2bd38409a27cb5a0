"""Tests for wicket.wire.mongo.opquery: legacy OP_QUERY and commands on db.$cmd."""

from __future__ import annotations

import struct

import bson
import pytest

from wicket.errors import RemoteProtocolError
from wicket.wire.mongo import (
    MsgHeader,
    OpCode,
    OpQuery,
    QueryFlags,
    decode_message,
    encode_op_query,
)

# OP_QUERY {isMaster: 1} on admin.$cmd, requestID 7, numberToReturn -1 (legacy opcodes page):
#   16 header + 12 fixed fields + 11-byte name + 19-byte query = length 0x3a (58)
#   00000000 flags | "admin.$cmd\0" | 00000000 numberToSkip | ffffffff numberToReturn | query
IS_MASTER_QUERY = bytes.fromhex(
    "3a000000" "07000000" "00000000" "d4070000"
    "00000000" "61646d696e2e24636d6400" "00000000" "ffffffff"
    "130000001069734d6173746572000100000000"
)  # fmt: skip


def test_hand_built_is_master_decodes() -> None:
    message = decode_message(IS_MASTER_QUERY)
    assert message == OpQuery(
        header=MsgHeader(58, 7, 0, OpCode.QUERY),
        flags=QueryFlags(0),
        full_collection_name="admin.$cmd",
        number_to_skip=0,
        number_to_return=-1,
        query=bson.encode({"isMaster": 1}),
        return_fields_selector=None,
    )
    assert isinstance(message, OpQuery)
    assert message.database == "admin" and message.collection == "$cmd" and message.is_command
    assert message.query_document() == {"isMaster": 1}
    assert encode_op_query("admin.$cmd", {"isMaster": 1}, request_id=7) == IS_MASTER_QUERY


def test_round_trip_with_selector_and_flags() -> None:
    flags = QueryFlags.SECONDARY_OK | QueryFlags.TAILABLE_CURSOR | QueryFlags.AWAIT_DATA
    data = encode_op_query(
        "db.coll.sub",
        {"a": {"$gt": 1}},
        request_id=9,
        flags=flags,
        number_to_skip=5,
        number_to_return=10,
        return_fields_selector={"a": 1},
    )
    message = decode_message(data)
    assert isinstance(message, OpQuery)
    assert message.flags == flags
    assert (message.number_to_skip, message.number_to_return) == (5, 10)
    assert message.database == "db" and message.collection == "coll.sub"
    assert not message.is_command
    assert message.return_fields_selector == bson.encode({"a": 1})


@pytest.mark.parametrize(
    ("mutation", "error"),
    [
        (lambda d: d + b"\x00", "trailing|truncated"),
        (lambda d: d + bson.encode({}) + bson.encode({}), "trailing"),
        (lambda d: d[:20] + b"\xff\xfe\x00" + d[31:], "UTF-8"),
    ],
)
def test_malformed(mutation: object, error: str) -> None:
    assert callable(mutation)
    data: bytes = mutation(IS_MASTER_QUERY)
    data = struct.pack("<i", len(data)) + data[4:]
    with pytest.raises(RemoteProtocolError, match=error):
        decode_message(data)


def test_name_without_nul_is_refused() -> None:
    body = b"\x00\x00\x00\x00" + b"a" * 40
    data = struct.pack("<iiii", 16 + len(body), 1, 0, OpCode.QUERY) + body
    with pytest.raises(RemoteProtocolError, match="NUL-terminated"):
        decode_message(data)
