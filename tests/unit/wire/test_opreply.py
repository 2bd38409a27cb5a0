"""Tests for wicket.wire.mongo.opreply: OP_REPLY documents and counts."""

from __future__ import annotations

import struct

import bson
import pytest

from wicket.errors import LocalProtocolError, RemoteProtocolError
from wicket.wire.mongo import (
    MsgHeader,
    OpCode,
    OpReply,
    ReplyFlags,
    decode_message,
    encode_op_reply,
)

# OP_REPLY answering request 7 with {ok: 1.0} (legacy opcodes page):
#   length 0x35 (53) | requestID 8 | responseTo 7 | opCode 1
#   08000000 responseFlags AwaitCapable | cursorID 0 | startingFrom 0 | numberReturned 1
OK_REPLY = bytes.fromhex(
    "35000000" "08000000" "07000000" "01000000"
    "08000000" "0000000000000000" "00000000" "01000000"
    "11000000016f6b00000000000000f03f00"
)  # fmt: skip


def test_hand_built_reply_decodes_and_encodes() -> None:
    message = decode_message(OK_REPLY)
    assert message == OpReply(
        header=MsgHeader(53, 8, 7, OpCode.REPLY),
        response_flags=ReplyFlags.AWAIT_CAPABLE,
        cursor_id=0,
        starting_from=0,
        documents=(bson.encode({"ok": 1.0}),),
    )
    assert isinstance(message, OpReply)
    assert message.decoded_documents() == [{"ok": 1.0}]
    encoded = encode_op_reply(
        [{"ok": 1.0}], request_id=8, response_to=7, response_flags=ReplyFlags.AWAIT_CAPABLE
    )
    assert encoded == OK_REPLY


def test_round_trip_many_documents_and_cursor() -> None:
    docs = [{"i": i} for i in range(50)]
    data = encode_op_reply(docs, request_id=1, response_to=2, cursor_id=-(2**63), starting_from=9)
    message = decode_message(data)
    assert isinstance(message, OpReply)
    assert message.cursor_id == -(2**63) and message.starting_from == 9
    assert message.decoded_documents() == docs


def _with_count(count: int) -> bytes:
    data = OK_REPLY[:32] + struct.pack("<i", count) + OK_REPLY[36:]
    return data


@pytest.mark.parametrize("count", [-1, 0, 2, 2**31 - 1])
def test_number_returned_must_match(count: int) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_message(_with_count(count))


def test_encoder_refuses_out_of_range_cursor() -> None:
    with pytest.raises(LocalProtocolError):
        encode_op_reply([], request_id=1, response_to=1, cursor_id=2**63)
