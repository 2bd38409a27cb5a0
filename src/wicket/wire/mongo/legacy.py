"""Wire layer: the legacy opcodes GET_MORE, INSERT, UPDATE, DELETE and KILL_CURSORS.

Parsed far enough to name the namespace they touch (legacy opcodes page). MongoDB
removed them in 6.0, but a proxy must still recognise and refuse or route them.
Layouts:
  OP_GET_MORE:     int32 ZERO, cstring ns, int32 numberToReturn, int64 cursorID
  OP_INSERT:       int32 flags, cstring ns, document+ (one or more)
  OP_UPDATE:       int32 ZERO, cstring ns, int32 flags, document selector, document update
  OP_DELETE:       int32 ZERO, cstring ns, int32 flags, document selector
  OP_KILL_CURSORS: int32 ZERO, int32 numberOfCursorIDs, int64 cursorIDs*
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wicket.errors import LocalProtocolError, RemoteProtocolError
from wicket.wire.mongo.constants import HEADER_SIZE, OpCode
from wicket.wire.mongo.documents import encode_document
from wicket.wire.mongo.header import MsgHeader, check_int32, check_int64, encode_header
from wicket.wire.mongo.namespaces import encode_cstring, split_full_name
from wicket.wire.mongo.reader import PayloadReader

_INT32 = struct.Struct("<i")
_INT64 = struct.Struct("<q")


class _HasNamespace:
    """Mixin: `database` and `collection` from `full_collection_name`."""

    full_collection_name: str

    @property
    def database(self) -> str:
        """The part of the full name before the first dot."""
        return split_full_name(self.full_collection_name)[0]

    @property
    def collection(self) -> str:
        """The part after the first dot ("" when there is none)."""
        return split_full_name(self.full_collection_name)[1]


@dataclass(frozen=True)
class OpGetMore(_HasNamespace):
    """Legacy OP_GET_MORE: more results from an open cursor."""

    header: MsgHeader
    full_collection_name: str
    number_to_return: int
    cursor_id: int


@dataclass(frozen=True)
class OpInsert(_HasNamespace):
    """Legacy OP_INSERT: fire-and-forget insert of raw documents."""

    header: MsgHeader
    flags: int
    full_collection_name: str
    documents: tuple[bytes, ...]


@dataclass(frozen=True)
class OpUpdate(_HasNamespace):
    """Legacy OP_UPDATE: fire-and-forget update."""

    header: MsgHeader
    full_collection_name: str
    flags: int
    selector: bytes
    update: bytes


@dataclass(frozen=True)
class OpDelete(_HasNamespace):
    """Legacy OP_DELETE: fire-and-forget delete."""

    header: MsgHeader
    full_collection_name: str
    flags: int
    selector: bytes


@dataclass(frozen=True)
class OpKillCursors:
    """Legacy OP_KILL_CURSORS: close cursors by id (no namespace)."""

    header: MsgHeader
    cursor_ids: tuple[int, ...]


def decode_op_get_more(header: MsgHeader, data: bytes) -> OpGetMore:
    """Parse a whole OP_GET_MORE message."""
    reader = PayloadReader(data, HEADER_SIZE, len(data), "OP_GET_MORE")
    reader.int32("ZERO")
    full_name = reader.cstring("fullCollectionName")
    number_to_return = reader.int32("numberToReturn")
    cursor_id = reader.int64("cursorID")
    reader.check_end()
    return OpGetMore(header, full_name, number_to_return, cursor_id)


def decode_op_insert(header: MsgHeader, data: bytes) -> OpInsert:
    """Parse a whole OP_INSERT message (at least one document)."""
    reader = PayloadReader(data, HEADER_SIZE, len(data), "OP_INSERT")
    flags = reader.int32("flags")
    full_name = reader.cstring("fullCollectionName")
    documents: list[bytes] = []
    while reader.remaining:
        documents.append(reader.document(f"document {len(documents)}"))
    if not documents:
        raise RemoteProtocolError("OP_INSERT: no documents")
    return OpInsert(header, flags, full_name, tuple(documents))


def decode_op_update(header: MsgHeader, data: bytes) -> OpUpdate:
    """Parse a whole OP_UPDATE message."""
    reader = PayloadReader(data, HEADER_SIZE, len(data), "OP_UPDATE")
    reader.int32("ZERO")
    full_name = reader.cstring("fullCollectionName")
    flags = reader.int32("flags")
    selector = reader.document("selector")
    update = reader.document("update")
    reader.check_end()
    return OpUpdate(header, full_name, flags, selector, update)


def decode_op_delete(header: MsgHeader, data: bytes) -> OpDelete:
    """Parse a whole OP_DELETE message."""
    reader = PayloadReader(data, HEADER_SIZE, len(data), "OP_DELETE")
    reader.int32("ZERO")
    full_name = reader.cstring("fullCollectionName")
    flags = reader.int32("flags")
    selector = reader.document("selector")
    reader.check_end()
    return OpDelete(header, full_name, flags, selector)


def decode_op_kill_cursors(header: MsgHeader, data: bytes) -> OpKillCursors:
    """Parse a whole OP_KILL_CURSORS message; the count must match the ids present."""
    reader = PayloadReader(data, HEADER_SIZE, len(data), "OP_KILL_CURSORS")
    reader.int32("ZERO")
    count = reader.int32("numberOfCursorIDs")
    if count < 0 or count * 8 != reader.remaining:
        raise RemoteProtocolError(
            f"OP_KILL_CURSORS: numberOfCursorIDs {count} does not match "
            f"{reader.remaining} bytes of ids"
        )
    cursor_ids = tuple(reader.int64(f"cursorID {index}") for index in range(count))
    reader.check_end()
    return OpKillCursors(header, cursor_ids)


def _message(op_code: OpCode, request_id: int, payload: bytes) -> bytes:
    return encode_header(HEADER_SIZE + len(payload), request_id, 0, op_code) + payload


def encode_op_get_more(
    full_collection_name: str, cursor_id: int, *, request_id: int, number_to_return: int = 0
) -> bytes:
    """Build a legacy OP_GET_MORE (old clients and tests)."""
    check_int32(number_to_return, "numberToReturn")
    check_int64(cursor_id, "cursorID")
    payload = (
        _INT32.pack(0)
        + encode_cstring(full_collection_name, "fullCollectionName")
        + _INT32.pack(number_to_return)
        + _INT64.pack(cursor_id)
    )
    return _message(OpCode.GET_MORE, request_id, payload)


def encode_op_insert(
    full_collection_name: str,
    documents: Sequence[Mapping[str, Any] | bytes],
    *,
    request_id: int,
    flags: int = 0,
) -> bytes:
    """Build a legacy OP_INSERT."""
    if not documents:
        raise LocalProtocolError("OP_INSERT needs at least one document")
    check_int32(flags, "flags")
    payload = (
        _INT32.pack(flags)
        + encode_cstring(full_collection_name, "fullCollectionName")
        + b"".join(encode_document(document, "OP_INSERT document") for document in documents)
    )
    return _message(OpCode.INSERT, request_id, payload)


def encode_op_update(
    full_collection_name: str,
    selector: Mapping[str, Any] | bytes,
    update: Mapping[str, Any] | bytes,
    *,
    request_id: int,
    flags: int = 0,
) -> bytes:
    """Build a legacy OP_UPDATE."""
    check_int32(flags, "flags")
    payload = (
        _INT32.pack(0)
        + encode_cstring(full_collection_name, "fullCollectionName")
        + _INT32.pack(flags)
        + encode_document(selector, "OP_UPDATE selector")
        + encode_document(update, "OP_UPDATE update")
    )
    return _message(OpCode.UPDATE, request_id, payload)


def encode_op_delete(
    full_collection_name: str,
    selector: Mapping[str, Any] | bytes,
    *,
    request_id: int,
    flags: int = 0,
) -> bytes:
    """Build a legacy OP_DELETE."""
    check_int32(flags, "flags")
    payload = (
        _INT32.pack(0)
        + encode_cstring(full_collection_name, "fullCollectionName")
        + _INT32.pack(flags)
        + encode_document(selector, "OP_DELETE selector")
    )
    return _message(OpCode.DELETE, request_id, payload)


def encode_op_kill_cursors(cursor_ids: Sequence[int], *, request_id: int) -> bytes:
    """Build a legacy OP_KILL_CURSORS."""
    for cursor_id in cursor_ids:
        check_int64(cursor_id, "cursorID")
    payload = _INT32.pack(0) + _INT32.pack(len(cursor_ids))
    payload += b"".join(_INT64.pack(cursor_id) for cursor_id in cursor_ids)
    return _message(OpCode.KILL_CURSORS, request_id, payload)
