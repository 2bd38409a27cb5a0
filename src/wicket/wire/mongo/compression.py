"""Wire layer: OP_COMPRESSED (opcode 2012) with noop, snappy, zlib and zstd.

Layout (mongodb/specifications, compression/OP_COMPRESSED.md): header, int32
originalOpcode, int32 uncompressedSize (the original message without its header),
uint8 compressorId, compressed bytes. Decompression is bounded: the declared size is
checked against the maximum first, and no decompressor may produce more than it.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import snappy
import zstandard

from wicket.errors import LocalProtocolError, RemoteProtocolError
from wicket.wire.mongo.constants import (
    DEFAULT_MAX_MESSAGE_SIZE,
    HEADER_SIZE,
    Compressor,
    OpCode,
)
from wicket.wire.mongo.header import MsgHeader, encode_header, parse_header
from wicket.wire.mongo.reader import PayloadReader

_COMPRESSED_FIELDS = struct.Struct("<iiB")
_SNAPPY_MAX_VARINT_BYTES = 5  # a 32-bit length needs at most 5 varint bytes
DEFAULT_ZSTD_LEVEL = 3


@dataclass(frozen=True)
class OpCompressed:
    """A decoded OP_COMPRESSED; `compressed` is still compressed."""

    header: MsgHeader
    original_opcode: int
    uncompressed_size: int
    compressor: Compressor
    compressed: bytes


def decode_op_compressed(header: MsgHeader, data: bytes) -> OpCompressed:
    """Parse a whole OP_COMPRESSED message without decompressing it."""
    reader = PayloadReader(data, HEADER_SIZE, len(data), "OP_COMPRESSED")
    original_opcode = reader.int32("originalOpcode")
    uncompressed_size = reader.int32("uncompressedSize")
    compressor_id = reader.uint8("compressorId")
    if original_opcode == OpCode.COMPRESSED:
        raise RemoteProtocolError("OP_COMPRESSED: a compressed message inside OP_COMPRESSED")
    if uncompressed_size < 0:
        raise RemoteProtocolError(f"OP_COMPRESSED: negative uncompressedSize {uncompressed_size}")
    try:
        compressor = Compressor(compressor_id)
    except ValueError:
        raise RemoteProtocolError(f"OP_COMPRESSED: unknown compressor id {compressor_id}") from None
    return OpCompressed(header, original_opcode, uncompressed_size, compressor, reader.rest())


def compress_message(message: bytes, compressor: Compressor, *, level: int | None = None) -> bytes:
    """Wrap a whole message in OP_COMPRESSED, keeping its requestID and responseTo."""
    header = parse_header(message)
    if header.length != len(message):
        raise LocalProtocolError(
            f"message header says {header.length} bytes but {len(message)} were given"
        )
    if header.op_code == OpCode.COMPRESSED:
        raise LocalProtocolError("cannot compress an OP_COMPRESSED message again")
    compressor = Compressor(compressor)
    body = message[HEADER_SIZE:]
    if compressor == Compressor.NOOP:
        compressed = body
    elif compressor == Compressor.SNAPPY:
        compressed = snappy.compress(body)
    elif compressor == Compressor.ZLIB:
        compressed = zlib.compress(body, -1 if level is None else level)
    else:
        zstd_level = DEFAULT_ZSTD_LEVEL if level is None else level
        compressed = zstandard.ZstdCompressor(level=zstd_level).compress(body)
    fields = _COMPRESSED_FIELDS.pack(header.op_code, len(body), int(compressor))
    length = HEADER_SIZE + len(fields) + len(compressed)
    out_header = encode_header(length, header.request_id, header.response_to, OpCode.COMPRESSED)
    return out_header + fields + compressed


def decompress_message(
    msg: OpCompressed, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> bytes:
    """Return the original whole message (header rebuilt), refusing bombs and lies."""
    if msg.original_opcode == OpCode.COMPRESSED:
        raise RemoteProtocolError("OP_COMPRESSED: a compressed message inside OP_COMPRESSED")
    size = msg.uncompressed_size
    if size < 0 or HEADER_SIZE + size > max_message_size:
        raise RemoteProtocolError(
            f"OP_COMPRESSED: uncompressedSize {size} (+{HEADER_SIZE} header) exceeds the "
            f"maximum message size {max_message_size}"
        )
    compressor = msg.compressor
    if compressor == Compressor.NOOP:
        body = msg.compressed
    elif compressor == Compressor.SNAPPY:
        body = _snappy_decompress(msg.compressed, size)
    elif compressor == Compressor.ZLIB:
        body = _zlib_decompress(msg.compressed, size)
    elif compressor == Compressor.ZSTD:
        body = _zstd_decompress(msg.compressed, size)
    else:  # pragma: no cover - Compressor is closed; a new member must be handled above
        raise RemoteProtocolError(f"OP_COMPRESSED: unknown compressor id {int(compressor)}")
    if len(body) != size:
        raise RemoteProtocolError(
            f"OP_COMPRESSED: decompressed to {len(body)} bytes, uncompressedSize says {size}"
        )
    header = encode_header(
        HEADER_SIZE + size, msg.header.request_id, msg.header.response_to, msg.original_opcode
    )
    return header + body


def _snappy_decompress(data: bytes, size: int) -> bytes:
    # Raw snappy starts with the uncompressed length as a varint; check it before the
    # library allocates that much.
    declared = 0
    for index in range(min(len(data), _SNAPPY_MAX_VARINT_BYTES)):
        declared |= (data[index] & 0x7F) << (7 * index)
        if not data[index] & 0x80:
            break
    else:
        raise RemoteProtocolError("OP_COMPRESSED: snappy data has no valid length prefix")
    if declared != size:
        raise RemoteProtocolError(
            f"OP_COMPRESSED: snappy length {declared} differs from uncompressedSize {size}"
        )
    try:
        return bytes(snappy.uncompress(data))
    except Exception as exc:  # python-snappy raises UncompressError and others
        raise RemoteProtocolError(f"OP_COMPRESSED: invalid snappy data: {exc}") from exc


def _zlib_decompress(data: bytes, size: int) -> bytes:
    decompressor = zlib.decompressobj()
    try:
        body = decompressor.decompress(data, size + 1)
    except zlib.error as exc:
        raise RemoteProtocolError(f"OP_COMPRESSED: invalid zlib data: {exc}") from exc
    if len(body) > size or decompressor.unconsumed_tail:
        raise RemoteProtocolError(f"OP_COMPRESSED: zlib data inflates past {size} bytes")
    if not decompressor.eof or decompressor.unused_data:
        raise RemoteProtocolError("OP_COMPRESSED: zlib stream truncated or followed by garbage")
    return body


def _zstd_decompress(data: bytes, size: int) -> bytes:
    # stream_reader.read(n) never produces more than n bytes, whatever the frame
    # header claims, unlike ZstdDecompressor.decompress which trusts the content size.
    try:
        with zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(data), read_across_frames=True
        ) as reader:
            body = reader.read(size + 1)
            if len(body) <= size and reader.read(1):
                raise RemoteProtocolError(f"OP_COMPRESSED: zstd data inflates past {size} bytes")
    except zstandard.ZstdError as exc:
        raise RemoteProtocolError(f"OP_COMPRESSED: invalid zstd data: {exc}") from exc
    return bytes(body)
