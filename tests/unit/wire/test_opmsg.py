"""Tests for wicket.wire.mongo.opmsg: OP_MSG sections, flag bits and CRC-32C checksums."""

from __future__ import annotations

import struct

import bson
import crc32c
import pytest
from bson.codec_options import DEFAULT_CODEC_OPTIONS
from pymongo.message import _op_msg
from pymongo.read_preferences import ReadPreference

from wicket.errors import LocalProtocolError, RemoteProtocolError
from wicket.wire.mongo import (
    DocumentSequence,
    MsgHeader,
    OpCode,
    OpMsg,
    OpMsgFlags,
    decode_message,
    encode_op_msg,
)

from .fixtures import OP_MSG_PING_HEX, PING_BODY_HEX


def _decode(data: bytes) -> OpMsg:
    message = decode_message(data)
    assert isinstance(message, OpMsg)
    return message


def _rebuild(flags: int, payload: bytes, request_id: int = 1) -> bytes:
    """A message with a correct header around hand-made flagBits and sections."""
    body = struct.pack("<I", flags) + payload
    return struct.pack("<iiii", 16 + len(body), request_id, 0, OpCode.MSG) + body


def test_hand_built_ping_decodes() -> None:
    message = _decode(bytes.fromhex(OP_MSG_PING_HEX))
    assert message == OpMsg(
        header=MsgHeader(51, 1, 0, OpCode.MSG),
        flags=OpMsgFlags(0),
        body=bytes.fromhex(PING_BODY_HEX),
        sequences=(),
        checksum=None,
    )
    assert message.command() == {"ping": 1, "$db": "admin"}
    assert not message.more_to_come and not message.exhaust_allowed


def test_encoder_produces_the_hand_built_bytes() -> None:
    assert encode_op_msg({"ping": 1, "$db": "admin"}, request_id=1).hex() == OP_MSG_PING_HEX
    assert encode_op_msg(bytes.fromhex(PING_BODY_HEX), request_id=1).hex() == OP_MSG_PING_HEX


def test_kind_one_sequence_hand_built() -> None:
    # flagBits 0 | kind 0 {insert: "c", $db: "t"} | kind 1: size, "documents\0", {a: 1}
    body = bson.encode({"insert": "c", "$db": "t"})
    doc = bytes.fromhex("0c0000001061000100000000")  # {a: 1}
    identifier = b"documents\x00"
    sequence = b"\x01" + struct.pack("<i", 4 + len(identifier) + len(doc)) + identifier + doc
    message = _decode(_rebuild(0, b"\x00" + body + sequence))
    assert message.sequences == (DocumentSequence("documents", (doc,)),)
    assert message.command() == {"insert": "c", "$db": "t", "documents": [{"a": 1}]}


def test_sequence_before_body_and_several_sequences_round_trip() -> None:
    sequences = [
        DocumentSequence("updates", (bson.encode({"q": {}, "u": {"$set": {"a": 1}}}),)),
        DocumentSequence("empty", ()),
    ]
    data = encode_op_msg({"update": "c", "$db": "t"}, request_id=5, sequences=sequences)
    message = _decode(data)
    assert message.sequences == tuple(sequences)
    assert message.command()["empty"] == []
    # Body after a sequence is legal: sections may come in any order.
    body = bson.encode({"update": "c", "$db": "t"})
    reordered = _decode(_rebuild(0, data[20 + 1 + len(body) :] + b"\x00" + body))
    assert reordered.sequences == tuple(sequences)


def test_pymongo_built_message_decodes() -> None:
    command = {"insert": "coll", "documents": [{"_id": 1}, {"_id": 2}], "ordered": True}
    request_id, data, _, _ = _op_msg(
        0, command, "test", ReadPreference.PRIMARY, DEFAULT_CODEC_OPTIONS
    )
    message = _decode(data)
    assert message.header.request_id == request_id
    assert [s.identifier for s in message.sequences] == ["documents"]
    assert message.command() == {
        "insert": "coll",
        "ordered": True,
        "$db": "test",
        "documents": [{"_id": 1}, {"_id": 2}],
    }


def test_checksum_valid_and_verified() -> None:
    data = encode_op_msg({"ping": 1, "$db": "admin"}, request_id=3, checksum=True)
    (sent,) = struct.unpack("<I", data[-4:])
    assert sent == crc32c.crc32c(data[:-4])
    message = _decode(data)
    assert message.checksum == sent
    assert message.flags & OpMsgFlags.CHECKSUM_PRESENT
    assert message.command() == {"ping": 1, "$db": "admin"}


def test_checksum_flag_alone_turns_on_the_checksum() -> None:
    data = encode_op_msg({"ping": 1}, request_id=3, flags=OpMsgFlags.CHECKSUM_PRESENT)
    assert _decode(data).checksum == crc32c.crc32c(data[:-4])


@pytest.mark.parametrize("position", [17, 25, -1, -5])
def test_checksum_corrupted_is_refused(position: int) -> None:
    data = bytearray(encode_op_msg({"ping": 1, "$db": "admin"}, request_id=3, checksum=True))
    data[position] ^= 0x01
    with pytest.raises(RemoteProtocolError, match="checksum"):
        decode_message(bytes(data))


def test_checksum_flag_without_room_is_refused() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_message(_rebuild(OpMsgFlags.CHECKSUM_PRESENT, b"\x00"))


def test_more_to_come_and_exhaust_allowed() -> None:
    flags = OpMsgFlags.MORE_TO_COME | OpMsgFlags.EXHAUST_ALLOWED
    message = _decode(encode_op_msg({"getMore": 1}, request_id=4, response_to=2, flags=flags))
    assert message.more_to_come and message.exhaust_allowed
    assert message.header.response_to == 2


def test_unknown_required_flag_bit_is_refused() -> None:
    body = b"\x00" + bytes.fromhex(PING_BODY_HEX)
    with pytest.raises(RemoteProtocolError, match="required flag bits 0x0004"):
        decode_message(_rebuild(1 << 2, body))
    with pytest.raises(LocalProtocolError):
        encode_op_msg({"ping": 1}, request_id=1, flags=OpMsgFlags(1 << 3))


def test_unknown_optional_flag_bit_is_accepted() -> None:
    body = b"\x00" + bytes.fromhex(PING_BODY_HEX)
    assert int(_decode(_rebuild(1 << 20, body)).flags) == 1 << 20


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"\x01" + struct.pack("<i", 7) + b"ab\x00" + b"\x01" + struct.pack("<i", 7) + b"cd\x00",
         "no kind-0 body"),
        (b"\x00" + bytes.fromhex(PING_BODY_HEX) * 1 + b"\x00" + bytes.fromhex(PING_BODY_HEX),
         "more than one kind-0"),
        (b"\x02" + bytes.fromhex(PING_BODY_HEX), "unknown section kind 2"),
        (b"\x00" + bytes.fromhex(PING_BODY_HEX)[:-1] + b"\x01", "does not end with 0x00"),
        (b"\x00" + bytes.fromhex("ff000000") + b"\x00", "truncated|outside"),
        (b"\x00" + bytes.fromhex(PING_BODY_HEX) + b"\x01" + struct.pack("<i", 100) + b"x\x00",
         "size 100 outside"),
        (b"\x00" + bytes.fromhex(PING_BODY_HEX) + b"\x01" + struct.pack("<i", 3),
         "size 3 outside"),
        (b"\x00" + bytes.fromhex(PING_BODY_HEX) + b"\x01" + struct.pack("<i", 8) + b"abcd",
         "NUL-terminated|truncated|outside"),
        (b"\x00" + bytes.fromhex(PING_BODY_HEX) + b"\x01" + struct.pack("<i", 7) + b"ab\x00",
         None),
    ],
)  # fmt: skip
def test_malformed_sections(payload: bytes, error: str | None) -> None:
    data = _rebuild(0, payload)
    if error is None:
        assert _decode(data).sequences == (DocumentSequence("ab", ()),)
        return
    with pytest.raises(RemoteProtocolError, match=error):
        decode_message(data)


def test_command_refuses_a_sequence_that_duplicates_a_body_field() -> None:
    data = encode_op_msg(
        {"insert": "c", "documents": []},
        request_id=1,
        sequences=[DocumentSequence("documents", (bson.encode({"a": 1}),))],
    )
    with pytest.raises(RemoteProtocolError, match="duplicates"):
        _decode(data).command()


def test_command_with_invalid_bson_content_is_a_protocol_error() -> None:
    # Well framed (length, trailing NUL) but element type 0x99 does not exist.
    bad = bytes.fromhex("0c0000009961000100000000")
    message = _decode(_rebuild(0, b"\x00" + bad))
    with pytest.raises(RemoteProtocolError, match="invalid BSON"):
        message.command()


def test_encoder_refuses_bad_arguments() -> None:
    with pytest.raises(LocalProtocolError):
        encode_op_msg(b"\x05\x00\x00\x00\x01", request_id=1)  # no trailing NUL
    with pytest.raises(LocalProtocolError):
        encode_op_msg({"a": object()}, request_id=1)
    with pytest.raises(LocalProtocolError):
        encode_op_msg({"a": 1}, request_id=2**31)
    with pytest.raises(LocalProtocolError):
        encode_op_msg({"a": 1}, request_id=1, sequences=[DocumentSequence("a\x00b", ())])
