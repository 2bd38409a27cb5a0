"""Wire layer: MongoDB wire-protocol constants (opcodes, flag bits, compressors, limits).

Values come from the MongoDB wire protocol reference ("Standard Message Header",
"Opcodes", OP_MSG "Flag Bits", legacy opcodes page) and the OP_COMPRESSED spec
(mongodb/specifications, source/compression/OP_COMPRESSED.md).
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Final


class OpCode(IntEnum):
    """The opcode in every message header; says how to parse the rest."""

    REPLY = 1
    UPDATE = 2001
    INSERT = 2002
    QUERY = 2004
    GET_MORE = 2005
    DELETE = 2006
    KILL_CURSORS = 2007
    COMPRESSED = 2012
    MSG = 2013


class Compressor(IntEnum):
    """Compressor ids of OP_COMPRESSED, as negotiated in the handshake by name."""

    NOOP = 0
    SNAPPY = 1
    ZLIB = 2
    ZSTD = 3


COMPRESSOR_NAMES: Final[dict[str, Compressor]] = {
    "noop": Compressor.NOOP,
    "snappy": Compressor.SNAPPY,
    "zlib": Compressor.ZLIB,
    "zstd": Compressor.ZSTD,
}
"""Handshake name (the `compression` array of hello) -> compressor id."""

COMPRESSOR_BY_ID: Final[dict[Compressor, str]] = {
    value: name for name, value in COMPRESSOR_NAMES.items()
}
"""Compressor id -> handshake name."""


class OpMsgFlags(IntFlag):
    """OP_MSG flagBits; bits 0-15 are required (must be understood), 16-31 optional."""

    CHECKSUM_PRESENT = 1
    MORE_TO_COME = 2
    EXHAUST_ALLOWED = 1 << 16


OP_MSG_REQUIRED_BITS_MASK: Final = 0xFFFF
"""Bits 0-15: a receiver must error on any it does not know (OP_MSG "Flag Bits")."""

OP_MSG_KNOWN_REQUIRED_BITS: Final = int(OpMsgFlags.CHECKSUM_PRESENT | OpMsgFlags.MORE_TO_COME)


class QueryFlags(IntFlag):
    """OP_QUERY flags (legacy opcodes page); bit 0 is reserved."""

    TAILABLE_CURSOR = 2
    SECONDARY_OK = 4
    OPLOG_REPLAY = 8
    NO_CURSOR_TIMEOUT = 16
    AWAIT_DATA = 32
    EXHAUST = 64
    PARTIAL = 128


class ReplyFlags(IntFlag):
    """OP_REPLY responseFlags (legacy opcodes page)."""

    CURSOR_NOT_FOUND = 1
    QUERY_FAILURE = 2
    SHARD_CONFIG_STALE = 4
    AWAIT_CAPABLE = 8


DEFAULT_MAX_MESSAGE_SIZE: Final = 48_000_000
"""maxMessageSizeBytes a MongoDB server announces by default."""

HEADER_SIZE: Final = 16
"""messageLength, requestID, responseTo, opCode: four little-endian int32."""

MIN_BSON_DOCUMENT_SIZE: Final = 5
"""int32 length plus the terminating 0x00 of an empty document."""

MAX_CSTRING_LENGTH: Final = 1024
"""Longest cstring (namespace, sequence identifier) we accept; MongoDB namespaces are shorter."""

INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

# Smallest well-formed message for each opcode: header plus the fixed fields plus
# the smallest variable parts (empty cstring, empty BSON document).
MIN_MESSAGE_SIZE: Final[dict[int, int]] = {
    OpCode.MSG: HEADER_SIZE + 4 + 1 + MIN_BSON_DOCUMENT_SIZE,
    OpCode.QUERY: HEADER_SIZE + 4 + 1 + 4 + 4 + MIN_BSON_DOCUMENT_SIZE,
    OpCode.REPLY: HEADER_SIZE + 4 + 8 + 4 + 4,
    OpCode.COMPRESSED: HEADER_SIZE + 4 + 4 + 1,
    OpCode.GET_MORE: HEADER_SIZE + 4 + 1 + 4 + 8,
    OpCode.INSERT: HEADER_SIZE + 4 + 1 + MIN_BSON_DOCUMENT_SIZE,
    OpCode.UPDATE: HEADER_SIZE + 4 + 1 + 4 + 2 * MIN_BSON_DOCUMENT_SIZE,
    OpCode.DELETE: HEADER_SIZE + 4 + 1 + 4 + MIN_BSON_DOCUMENT_SIZE,
    OpCode.KILL_CURSORS: HEADER_SIZE + 4 + 4,
}
