"""Wire layer: OP_QUERY (opcode 2004), legacy queries and old drivers' handshake commands.

Layout (legacy opcodes page): header, int32 flags, cstring fullCollectionName,
int32 numberToSkip, int32 numberToReturn, document query, optional document
returnFieldsSelector. Since MongoDB 3.6 only commands on "db.$cmd" (hello/isMaster)
are sent this way by current drivers.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wicket.wire.mongo.constants import HEADER_SIZE, OpCode, QueryFlags
from wicket.wire.mongo.documents import decode_document, encode_document
from wicket.wire.mongo.header import MsgHeader, check_int32, encode_header
from wicket.wire.mongo.namespaces import encode_cstring, split_full_name
from wicket.wire.mongo.reader import PayloadReader

_INT32 = struct.Struct("<i")
_INT32_PAIR = struct.Struct("<ii")

COMMAND_COLLECTION = "$cmd"


@dataclass(frozen=True)
class OpQuery:
    """A decoded OP_QUERY; documents stay raw BSON."""

    header: MsgHeader
    flags: QueryFlags
    full_collection_name: str
    number_to_skip: int
    number_to_return: int
    query: bytes
    return_fields_selector: bytes | None

    def query_document(self) -> dict[str, Any]:
        """The query (or, on "db.$cmd", the command) decoded."""
        return decode_document(self.query, "OP_QUERY query")

    @property
    def database(self) -> str:
        """The part of the full name before the first dot."""
        return split_full_name(self.full_collection_name)[0]

    @property
    def collection(self) -> str:
        """The part after the first dot ("" when there is none)."""
        return split_full_name(self.full_collection_name)[1]

    @property
    def is_command(self) -> bool:
        """True for a command sent the legacy way, on the "$cmd" pseudo-collection."""
        return self.collection == COMMAND_COLLECTION


def decode_op_query(header: MsgHeader, data: bytes) -> OpQuery:
    """Parse a whole OP_QUERY message (header included)."""
    reader = PayloadReader(data, HEADER_SIZE, len(data), "OP_QUERY")
    flags = QueryFlags(reader.uint32("flags"))
    full_name = reader.cstring("fullCollectionName")
    number_to_skip = reader.int32("numberToSkip")
    number_to_return = reader.int32("numberToReturn")
    query = reader.document("query")
    selector = reader.document("returnFieldsSelector") if reader.remaining else None
    reader.check_end()
    return OpQuery(header, flags, full_name, number_to_skip, number_to_return, query, selector)


def encode_op_query(
    full_collection_name: str,
    query: Mapping[str, Any] | bytes,
    *,
    request_id: int,
    flags: QueryFlags = QueryFlags(0),  # noqa: B008 - an immutable IntFlag value
    number_to_skip: int = 0,
    number_to_return: int = -1,
    return_fields_selector: Mapping[str, Any] | bytes | None = None,
) -> bytes:
    """Build an OP_QUERY (for tests, and for answering old clients' handshakes in kind)."""
    check_int32(number_to_skip, "numberToSkip")
    check_int32(number_to_return, "numberToReturn")
    parts = [
        struct.pack("<I", int(flags) & 0xFFFFFFFF),
        encode_cstring(full_collection_name, "fullCollectionName"),
        _INT32_PAIR.pack(number_to_skip, number_to_return),
        encode_document(query, "OP_QUERY query"),
    ]
    if return_fields_selector is not None:
        parts.append(encode_document(return_fields_selector, "OP_QUERY returnFieldsSelector"))
    payload = b"".join(parts)
    return encode_header(HEADER_SIZE + len(payload), request_id, 0, OpCode.QUERY) + payload
