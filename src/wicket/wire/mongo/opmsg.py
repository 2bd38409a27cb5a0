"""Wire layer: OP_MSG (opcode 2013), the message every modern driver speaks.

Layout (MongoDB wire protocol, "OP_MSG"): header, uint32 flagBits, one or more
sections, optional uint32 CRC-32C checksum. Section kind 0 is the command body (a
single BSON document, exactly one per message); kind 1 is a document sequence:
int32 size (counting itself), cstring identifier, then BSON documents filling the size.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import crc32c

from wicket.errors import LocalProtocolError, RemoteProtocolError
from wicket.wire.mongo.constants import (
    HEADER_SIZE,
    INT32_MAX,
    OP_MSG_KNOWN_REQUIRED_BITS,
    OP_MSG_REQUIRED_BITS_MASK,
    OpCode,
    OpMsgFlags,
)
from wicket.wire.mongo.documents import decode_document, encode_document
from wicket.wire.mongo.header import MsgHeader, encode_header
from wicket.wire.mongo.reader import PayloadReader

_UINT32 = struct.Struct("<I")
_INT32 = struct.Struct("<i")

SECTION_BODY = 0
SECTION_DOCUMENT_SEQUENCE = 1


@dataclass(frozen=True)
class DocumentSequence:
    """A kind-1 section: documents sent beside the body (e.g. `documents` of insert)."""

    identifier: str
    documents: tuple[bytes, ...]


@dataclass(frozen=True)
class OpMsg:
    """A decoded OP_MSG; documents stay raw BSON until `command()` is called."""

    header: MsgHeader
    flags: OpMsgFlags
    body: bytes
    sequences: tuple[DocumentSequence, ...]
    checksum: int | None

    @property
    def more_to_come(self) -> bool:
        """The sender will not wait for (client) or will send more (server) replies."""
        return bool(self.flags & OpMsgFlags.MORE_TO_COME)

    @property
    def exhaust_allowed(self) -> bool:
        """The client accepts several replies to this one request."""
        return bool(self.flags & OpMsgFlags.EXHAUST_ALLOWED)

    def body_document(self) -> dict[str, Any]:
        """The kind-0 body decoded, without the document sequences."""
        return decode_document(self.body, "OP_MSG body")

    def command(self) -> dict[str, Any]:
        """The command as the server sees it: the body with each sequence as a list field."""
        document = self.body_document()
        for sequence in self.sequences:
            if sequence.identifier in document:
                raise RemoteProtocolError(
                    f"OP_MSG: document sequence {sequence.identifier!r} duplicates a body field"
                )
            document[sequence.identifier] = [
                decode_document(raw, f"OP_MSG sequence {sequence.identifier!r}")
                for raw in sequence.documents
            ]
        return document


def decode_op_msg(header: MsgHeader, data: bytes) -> OpMsg:
    """Parse a whole OP_MSG message (header included), verifying the checksum if present."""
    end = len(data)
    reader = PayloadReader(data, HEADER_SIZE, end, "OP_MSG")
    raw_flags = reader.uint32("flagBits")
    flags = OpMsgFlags(raw_flags)
    checksum: int | None = None
    if flags & OpMsgFlags.CHECKSUM_PRESENT:
        if reader.remaining < 4:
            raise RemoteProtocolError("OP_MSG: checksumPresent set but no room for a checksum")
        (checksum,) = _UINT32.unpack_from(data, end - 4)
        actual = crc32c.crc32c(data[: end - 4])
        if actual != checksum:
            raise RemoteProtocolError(
                f"OP_MSG: checksum mismatch (sent 0x{checksum:08x}, computed 0x{actual:08x})"
            )
        reader.end = end - 4
    # After the checksum, so a corrupted flag bit is reported as corruption.
    unknown_required = raw_flags & OP_MSG_REQUIRED_BITS_MASK & ~OP_MSG_KNOWN_REQUIRED_BITS
    if unknown_required:
        raise RemoteProtocolError(f"OP_MSG: unknown required flag bits 0x{unknown_required:04x}")
    body: bytes | None = None
    sequences: list[DocumentSequence] = []
    while reader.remaining:
        kind = reader.uint8("section kind")
        if kind == SECTION_BODY:
            if body is not None:
                raise RemoteProtocolError("OP_MSG: more than one kind-0 body section")
            body = reader.document("body")
        elif kind == SECTION_DOCUMENT_SEQUENCE:
            sequences.append(_read_sequence(data, reader))
        else:
            raise RemoteProtocolError(f"OP_MSG: unknown section kind {kind}")
    reader.check_end()
    if body is None:
        raise RemoteProtocolError("OP_MSG: no kind-0 body section")
    return OpMsg(header, flags, body, tuple(sequences), checksum)


def _read_sequence(data: bytes, reader: PayloadReader) -> DocumentSequence:
    start = reader.offset
    size = reader.int32("document sequence size")
    if size < 5 or size > reader.remaining + 4:
        raise RemoteProtocolError(
            f"OP_MSG: document sequence size {size} outside 5..{reader.remaining + 4}"
        )
    section = PayloadReader(data, reader.offset, start + size, "OP_MSG document sequence")
    identifier = section.cstring("identifier")
    documents: list[bytes] = []
    while section.remaining:
        documents.append(section.document(f"{identifier!r} document"))
    section.check_end()
    reader.offset = start + size
    return DocumentSequence(identifier, tuple(documents))


def encode_op_msg(
    body: Mapping[str, Any] | bytes,
    *,
    request_id: int,
    response_to: int = 0,
    flags: OpMsgFlags = OpMsgFlags(0),  # noqa: B008 - an immutable IntFlag value
    sequences: Sequence[DocumentSequence] = (),
    checksum: bool = False,
) -> bytes:
    """Build an OP_MSG; with `checksum` (or the flag) a CRC-32C is appended."""
    flags = OpMsgFlags(flags)
    if int(flags) < 0 or int(flags) > 0xFFFFFFFF:
        raise LocalProtocolError(f"OP_MSG: flagBits {int(flags)} do not fit in a uint32")
    unknown_required = int(flags) & OP_MSG_REQUIRED_BITS_MASK & ~OP_MSG_KNOWN_REQUIRED_BITS
    if unknown_required:
        raise LocalProtocolError(f"OP_MSG: unknown required flag bits 0x{unknown_required:04x}")
    if checksum:
        flags |= OpMsgFlags.CHECKSUM_PRESENT
    parts = [_UINT32.pack(int(flags)), b"\x00", encode_document(body, "OP_MSG body")]
    for sequence in sequences:
        identifier = sequence.identifier.encode("utf-8")
        if b"\x00" in identifier:
            raise LocalProtocolError("OP_MSG: sequence identifier contains NUL")
        documents = [
            encode_document(document, f"OP_MSG sequence {sequence.identifier!r}")
            for document in sequence.documents
        ]
        size = 4 + len(identifier) + 1 + sum(len(document) for document in documents)
        if size > INT32_MAX:
            raise LocalProtocolError("OP_MSG: document sequence larger than an int32")
        parts += [b"\x01", _INT32.pack(size), identifier, b"\x00", *documents]
    payload = b"".join(parts)
    has_checksum = bool(flags & OpMsgFlags.CHECKSUM_PRESENT)
    length = HEADER_SIZE + len(payload) + (4 if has_checksum else 0)
    message = encode_header(length, request_id, response_to, OpCode.MSG) + payload
    if has_checksum:
        message += _UINT32.pack(crc32c.crc32c(message))
    return message
