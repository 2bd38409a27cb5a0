"""Tests for wicket.wire.mongo.legacy: GET_MORE, INSERT, UPDATE, DELETE, KILL_CURSORS."""

from __future__ import annotations

import struct

import bson
import pytest

from wicket.errors import LocalProtocolError, RemoteProtocolError
from wicket.wire.mongo import (
    MsgHeader,
    OpCode,
    OpDelete,
    OpGetMore,
    OpInsert,
    OpKillCursors,
    OpUpdate,
    decode_message,
    encode_op_delete,
    encode_op_get_more,
    encode_op_insert,
    encode_op_kill_cursors,
    encode_op_update,
)

A1 = bson.encode({"a": 1})  # 0c0000001061000100000000

# Each: (hex of a whole message built by hand from the legacy opcodes page, expected value).
FIXTURES = [
    (
        # OP_GET_MORE: ZERO | "t.c\0" | numberToReturn 2 | cursorID 0x0102030405060708
        "24000000" "01000000" "00000000" "d5070000"
        "00000000" "742e6300" "02000000" "0807060504030201",
        OpGetMore(MsgHeader(36, 1, 0, OpCode.GET_MORE), "t.c", 2, 0x0102030405060708),
    ),
    (
        # OP_INSERT: flags 1 (ContinueOnError) | "t.c\0" | {a: 1}
        "24000000" "02000000" "00000000" "d2070000"
        "01000000" "742e6300" "0c0000001061000100000000",
        OpInsert(MsgHeader(36, 2, 0, OpCode.INSERT), 1, "t.c", (A1,)),
    ),
    (
        # OP_UPDATE: ZERO | "t.c\0" | flags 2 (MultiUpdate) | selector {a: 1} | update {a: 1}
        "34000000" "03000000" "00000000" "d1070000"
        "00000000" "742e6300" "02000000" "0c0000001061000100000000" "0c0000001061000100000000",
        OpUpdate(MsgHeader(52, 3, 0, OpCode.UPDATE), "t.c", 2, A1, A1),
    ),
    (
        # OP_DELETE: ZERO | "t.c\0" | flags 1 (SingleRemove) | selector {a: 1}
        "28000000" "04000000" "00000000" "d6070000"
        "00000000" "742e6300" "01000000" "0c0000001061000100000000",
        OpDelete(MsgHeader(40, 4, 0, OpCode.DELETE), "t.c", 1, A1),
    ),
    (
        # OP_KILL_CURSORS: ZERO | 2 ids | 5 | -1
        "28000000" "05000000" "00000000" "d7070000"
        "00000000" "02000000" "0500000000000000" "ffffffffffffffff",
        OpKillCursors(MsgHeader(40, 5, 0, OpCode.KILL_CURSORS), (5, -1)),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("hex_bytes", "expected"), FIXTURES)
def test_hand_built_fixtures_decode(hex_bytes: str, expected: object) -> None:
    assert decode_message(bytes.fromhex(hex_bytes)) == expected


def test_encoders_produce_the_fixtures() -> None:
    encoded = [
        encode_op_get_more("t.c", 0x0102030405060708, request_id=1, number_to_return=2),
        encode_op_insert("t.c", [{"a": 1}], request_id=2, flags=1),
        encode_op_update("t.c", {"a": 1}, A1, request_id=3, flags=2),
        encode_op_delete("t.c", {"a": 1}, request_id=4, flags=1),
        encode_op_kill_cursors([5, -1], request_id=5),
    ]
    assert [data.hex() for data in encoded] == [hex_bytes for hex_bytes, _ in FIXTURES]


def test_namespace_properties() -> None:
    message = decode_message(encode_op_insert("db.a.b", [A1, A1], request_id=1))
    assert isinstance(message, OpInsert)
    assert (message.database, message.collection) == ("db", "a.b")
    assert len(message.documents) == 2


def _patched(hex_bytes: str, payload_tail: bytes) -> bytes:
    data = bytes.fromhex(hex_bytes) + payload_tail
    return struct.pack("<i", len(data)) + data[4:]


@pytest.mark.parametrize("index", range(len(FIXTURES)))
def test_trailing_bytes_are_refused(index: int) -> None:
    hex_bytes = FIXTURES[index][0]
    with pytest.raises(RemoteProtocolError):
        decode_message(_patched(hex_bytes, b"\x00" * 3))


def test_kill_cursors_count_must_match() -> None:
    data = bytearray(bytes.fromhex(FIXTURES[4][0]))
    data[20:24] = struct.pack("<i", 3)
    with pytest.raises(RemoteProtocolError, match="numberOfCursorIDs 3"):
        decode_message(bytes(data))
    data[20:24] = struct.pack("<i", -1)
    with pytest.raises(RemoteProtocolError):
        decode_message(bytes(data))


def test_insert_without_documents_is_refused() -> None:
    body = b"\x00\x00\x00\x00" + b"t.cccccc\x00"
    data = struct.pack("<iiii", 16 + len(body), 1, 0, OpCode.INSERT) + body
    with pytest.raises(RemoteProtocolError, match="no documents"):
        decode_message(data)
    with pytest.raises(LocalProtocolError):
        encode_op_insert("t.c", [], request_id=1)


def test_namespace_with_nul_is_refused_by_encoders() -> None:
    with pytest.raises(LocalProtocolError):
        encode_op_delete("t.c\x00x", A1, request_id=1)
