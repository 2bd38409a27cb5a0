"""Tests for wicket.wire.mongo.header: the 16-byte standard message header."""

from __future__ import annotations

import pytest

from wicket.errors import LocalProtocolError, RemoteProtocolError
from wicket.wire.mongo import HEADER_SIZE, MsgHeader, OpCode, encode_header, parse_header

# (header, hex) pairs: four little-endian int32s.
CASES = [
    (MsgHeader(51, 1, 0, OpCode.MSG), "330000000100000000000000dd070000"),
    (MsgHeader(16, -1, 7, OpCode.REPLY), "10000000ffffffff0700000001000000"),
    (MsgHeader(0x7FFFFFFF, 2**31 - 1, -(2**31), 2012), "ffffff7fffffff7f00000080dc070000"),
]


@pytest.mark.parametrize(("header", "hex_bytes"), CASES)
def test_header_round_trip(header: MsgHeader, hex_bytes: str) -> None:
    raw = bytes.fromhex(hex_bytes)
    assert encode_header(header.length, header.request_id, header.response_to, header.op_code) == (
        raw
    )
    assert parse_header(raw) == header
    assert parse_header(memoryview(raw + b"extra")) == header


def test_parse_header_needs_sixteen_bytes() -> None:
    with pytest.raises(RemoteProtocolError, match="16 bytes"):
        parse_header(b"\x00" * (HEADER_SIZE - 1))


def test_parse_header_keeps_a_negative_length_for_the_framer_to_refuse() -> None:
    assert parse_header(bytes.fromhex("ffffffff" + "00" * 12)).length == -1


@pytest.mark.parametrize(
    ("length", "request_id", "response_to", "op_code"),
    [(15, 0, 0, 1), (16, 2**31, 0, 1), (16, 0, -(2**31) - 1, 1), (2**31, 0, 0, 1)],
)
def test_encode_header_refuses_out_of_range(
    length: int, request_id: int, response_to: int, op_code: int
) -> None:
    with pytest.raises(LocalProtocolError):
        encode_header(length, request_id, response_to, op_code)
