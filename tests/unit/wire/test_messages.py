"""Tests for wicket.wire.mongo.messages: dispatch on opcode and exact consumption."""

from __future__ import annotations

import struct

import pytest

from wicket.errors import RemoteProtocolError
from wicket.wire.mongo import (
    OpCode,
    OpMsgFlags,
    decode_message,
    encode_op_insert,
    encode_op_msg,
    encode_op_query,
    expects_reply,
)

from .fixtures import OP_MSG_PING_HEX, valid_messages


def test_every_valid_message_decodes_to_its_opcode_type() -> None:
    for data in valid_messages():
        message = decode_message(data)
        assert message.header.length == len(data)
        assert int(message.header.op_code) in {int(code) for code in OpCode}


def test_unknown_opcode() -> None:
    data = struct.pack("<iiii", 30, 1, 0, 2010) + b"\x00" * 14
    with pytest.raises(RemoteProtocolError, match="unknown opcode 2010"):
        decode_message(data)


def test_length_must_match_frame() -> None:
    data = bytes.fromhex(OP_MSG_PING_HEX)
    with pytest.raises(RemoteProtocolError, match="header says"):
        decode_message(data + b"\x00")
    with pytest.raises(RemoteProtocolError, match="header says"):
        decode_message(data[:-1])
    with pytest.raises(RemoteProtocolError, match="shorter than its header"):
        decode_message(data[:10])


def test_max_message_size_applies() -> None:
    data = bytes.fromhex(OP_MSG_PING_HEX)
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        decode_message(data, max_message_size=len(data) - 1)
    assert decode_message(bytearray(data), max_message_size=len(data)) is not None


def test_expects_reply() -> None:
    assert expects_reply(decode_message(encode_op_msg({"ping": 1}, request_id=1)))
    more = encode_op_msg({"insert": "c"}, request_id=1, flags=OpMsgFlags.MORE_TO_COME)
    assert not expects_reply(decode_message(more))
    assert expects_reply(decode_message(encode_op_query("a.$cmd", {"ping": 1}, request_id=1)))
    assert not expects_reply(decode_message(encode_op_insert("a.b", [{}], request_id=1)))
