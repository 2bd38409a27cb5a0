"""Wire layer: the 16-byte standard message header that starts every MongoDB message."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from wicket.errors import LocalProtocolError, RemoteProtocolError
from wicket.wire.mongo.constants import HEADER_SIZE, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN

HEADER_STRUCT = struct.Struct("<iiii")


@dataclass(frozen=True)
class MsgHeader:
    """The standard message header: total length, ids pairing requests with replies, opcode."""

    length: int
    request_id: int
    response_to: int
    op_code: int


def parse_header(data: bytes | bytearray | memoryview) -> MsgHeader:
    """Read the header from the first 16 bytes, so a framer knows how much to wait for."""
    if len(data) < HEADER_SIZE:
        raise RemoteProtocolError(
            f"message header needs {HEADER_SIZE} bytes, only {len(data)} available"
        )
    length, request_id, response_to, op_code = HEADER_STRUCT.unpack_from(data, 0)
    return MsgHeader(length, request_id, response_to, op_code)


def check_int32(value: int, what: str) -> None:
    """Refuse to encode a value that does not fit the int32 field it goes in."""
    if not INT32_MIN <= value <= INT32_MAX:
        raise LocalProtocolError(f"{what} {value} does not fit in an int32")


def encode_header(length: int, request_id: int, response_to: int, op_code: int) -> bytes:
    """Build a header; every field is a signed little-endian int32."""
    if length < HEADER_SIZE:
        raise LocalProtocolError(f"message length {length} is shorter than the header")
    check_int32(length, "message length")
    check_int32(request_id, "requestID")
    check_int32(response_to, "responseTo")
    check_int32(op_code, "opCode")
    return HEADER_STRUCT.pack(length, request_id, response_to, op_code)


def check_int64(value: int, what: str) -> None:
    """Refuse to encode a value that does not fit the int64 field it goes in (cursor ids)."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise LocalProtocolError(f"{what} {value} does not fit in an int64")
