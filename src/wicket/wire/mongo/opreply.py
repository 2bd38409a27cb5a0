"""Wire layer: OP_REPLY (opcode 1), the server's answer to OP_QUERY and OP_GET_MORE.

Layout (legacy opcodes page): header, int32 responseFlags, int64 cursorID,
int32 startingFrom, int32 numberReturned, then numberReturned BSON documents.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wicket.errors import RemoteProtocolError
from wicket.wire.mongo.constants import HEADER_SIZE, MIN_BSON_DOCUMENT_SIZE, OpCode, ReplyFlags
from wicket.wire.mongo.documents import decode_document, encode_document
from wicket.wire.mongo.header import MsgHeader, check_int32, check_int64, encode_header
from wicket.wire.mongo.reader import PayloadReader

_REPLY_FIELDS = struct.Struct("<Iqii")


@dataclass(frozen=True)
class OpReply:
    """A decoded OP_REPLY; documents stay raw BSON."""

    header: MsgHeader
    response_flags: ReplyFlags
    cursor_id: int
    starting_from: int
    documents: tuple[bytes, ...]

    def decoded_documents(self) -> list[dict[str, Any]]:
        """Every returned document decoded."""
        return [decode_document(raw, "OP_REPLY document") for raw in self.documents]


def decode_op_reply(header: MsgHeader, data: bytes) -> OpReply:
    """Parse a whole OP_REPLY message (header included)."""
    reader = PayloadReader(data, HEADER_SIZE, len(data), "OP_REPLY")
    flags = ReplyFlags(reader.uint32("responseFlags"))
    cursor_id = reader.int64("cursorID")
    starting_from = reader.int32("startingFrom")
    number_returned = reader.int32("numberReturned")
    if number_returned < 0 or number_returned > reader.remaining // MIN_BSON_DOCUMENT_SIZE:
        raise RemoteProtocolError(
            f"OP_REPLY: numberReturned {number_returned} impossible in {reader.remaining} bytes"
        )
    documents = tuple(reader.document(f"document {index}") for index in range(number_returned))
    reader.check_end()
    return OpReply(header, flags, cursor_id, starting_from, documents)


def encode_op_reply(
    documents: Sequence[Mapping[str, Any] | bytes],
    *,
    request_id: int,
    response_to: int,
    response_flags: ReplyFlags = ReplyFlags(0),  # noqa: B008 - an immutable IntFlag value
    cursor_id: int = 0,
    starting_from: int = 0,
) -> bytes:
    """Build an OP_REPLY carrying the given documents."""
    check_int32(starting_from, "startingFrom")
    check_int64(cursor_id, "cursorID")
    encoded = [encode_document(document, "OP_REPLY document") for document in documents]
    fields = _REPLY_FIELDS.pack(
        int(response_flags) & 0xFFFFFFFF, cursor_id, starting_from, len(encoded)
    )
    payload = fields + b"".join(encoded)
    header = encode_header(HEADER_SIZE + len(payload), request_id, response_to, OpCode.REPLY)
    return header + payload
