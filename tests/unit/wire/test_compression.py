"""Tests for wicket.wire.mongo.compression: OP_COMPRESSED with every compressor, and bombs."""

from __future__ import annotations

import struct
import zlib

import bson
import pytest
import snappy
import zstandard
from bson.codec_options import DEFAULT_CODEC_OPTIONS
from pymongo.compression_support import SnappyContext, ZlibContext
from pymongo.message import _op_msg
from pymongo.read_preferences import ReadPreference

from wicket.errors import LocalProtocolError, RemoteProtocolError
from wicket.wire.mongo import (
    COMPRESSOR_BY_ID,
    COMPRESSOR_NAMES,
    Compressor,
    MsgHeader,
    OpCode,
    OpCompressed,
    OpMsg,
    compress_message,
    decode_message,
    decompress_message,
    encode_op_msg,
)

from .fixtures import OP_MSG_PING_HEX

PING = bytes.fromhex(OP_MSG_PING_HEX)


def _compressed(data: bytes) -> OpCompressed:
    message = decode_message(data)
    assert isinstance(message, OpCompressed)
    return message


def test_names_map_both_ways() -> None:
    assert COMPRESSOR_NAMES["zstd"] is Compressor.ZSTD
    assert {COMPRESSOR_BY_ID[c] for c in Compressor} == set(COMPRESSOR_NAMES)


def test_hand_built_noop() -> None:
    # OP_COMPRESSED spec: header (opCode 2012) | originalOpcode 2013 | uncompressedSize 35
    #   | compressorId 0 (noop) | the original message without its header
    expected = (
        struct.pack("<iiii", 16 + 9 + 35, 1, 0, 2012)
        + bytes.fromhex("dd0700002300000000")
        + PING[16:]
    )
    assert compress_message(PING, Compressor.NOOP) == expected
    message = _compressed(expected)
    assert message == OpCompressed(
        MsgHeader(60, 1, 0, OpCode.COMPRESSED), OpCode.MSG, 35, Compressor.NOOP, PING[16:]
    )
    assert decompress_message(message) == PING


@pytest.mark.parametrize("compressor", list(Compressor))
def test_round_trip_each_compressor(compressor: Compressor) -> None:
    original = encode_op_msg(
        {"insert": "c", "$db": "t", "docs": ["x" * 200] * 50}, request_id=42, response_to=7
    )
    data = compress_message(original, compressor)
    message = _compressed(data)
    assert message.compressor is compressor
    assert message.header.request_id == 42 and message.header.response_to == 7
    assert message.uncompressed_size == len(original) - 16
    if compressor is not Compressor.NOOP:
        assert len(data) < len(original)
    restored = decompress_message(message)
    assert restored == original
    inner = decode_message(restored)
    assert isinstance(inner, OpMsg) and inner.command()["insert"] == "c"


@pytest.mark.parametrize("level", [1, 9])
def test_levels(level: int) -> None:
    for compressor in (Compressor.ZLIB, Compressor.ZSTD):
        data = compress_message(PING, compressor, level=level)
        assert decompress_message(_compressed(data)) == PING


# pymongo's zstd context needs `backports.zstd`, which is not a dependency here; our zstd
# path is covered by the round trips above against the `zstandard` package directly.
@pytest.mark.parametrize(
    ("context", "compressor"),
    [(ZlibContext(-1), Compressor.ZLIB), (SnappyContext(), Compressor.SNAPPY)],
)
def test_pymongo_compressed_message_decompresses(
    context: ZlibContext | SnappyContext, compressor: Compressor
) -> None:
    command = {"find": "c", "filter": {"a": "b" * 100}}
    _, data, _, _ = _op_msg(
        0, command, "test", ReadPreference.PRIMARY, DEFAULT_CODEC_OPTIONS, ctx=context
    )
    message = _compressed(data)
    assert message.compressor is compressor
    inner = decode_message(decompress_message(message))
    assert isinstance(inner, OpMsg)
    assert inner.command() == {"find": "c", "filter": {"a": "b" * 100}, "$db": "test"}


def _raw_compressed(original_opcode: int, size: int, compressor_id: int, payload: bytes) -> bytes:
    fields = struct.pack("<iiB", original_opcode, size, compressor_id) + payload
    return struct.pack("<iiii", 16 + len(fields), 3, 0, OpCode.COMPRESSED) + fields


def test_unknown_compressor_is_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="unknown compressor id 9"):
        decode_message(_raw_compressed(OpCode.MSG, 4, 9, b"abcd"))


def test_compressed_inside_compressed_is_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="inside OP_COMPRESSED"):
        decode_message(_raw_compressed(OpCode.COMPRESSED, 4, 0, b"abcd"))
    with pytest.raises(LocalProtocolError):
        compress_message(compress_message(PING, Compressor.NOOP), Compressor.ZLIB)


def test_negative_size_is_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="negative"):
        decode_message(_raw_compressed(OpCode.MSG, -1, 0, b"abcd"))


def test_declared_size_above_maximum_is_refused_before_decompressing() -> None:
    payload = zlib.compress(b"\x00" * 1000)
    message = _compressed(_raw_compressed(OpCode.MSG, 10_000_000, Compressor.ZLIB, payload))
    with pytest.raises(RemoteProtocolError, match="exceeds the maximum"):
        decompress_message(message, max_message_size=1_000_000)


BOMB = b"\x00" * 5_000_000


@pytest.mark.parametrize(
    ("compressor", "payload"),
    [
        (Compressor.ZLIB, zlib.compress(BOMB)),
        (Compressor.ZSTD, zstandard.ZstdCompressor().compress(BOMB)),
        (Compressor.ZSTD, zstandard.ZstdCompressor(write_content_size=False).compress(BOMB)),
        (Compressor.SNAPPY, snappy.compress(BOMB)),
        (Compressor.NOOP, b"\x00" * 2000),
    ],
)
def test_bomb_that_lies_about_its_size_is_refused(compressor: Compressor, payload: bytes) -> None:
    message = _compressed(_raw_compressed(OpCode.MSG, 1000, compressor, payload))
    with pytest.raises(RemoteProtocolError):
        decompress_message(message)


@pytest.mark.parametrize("compressor", [Compressor.ZLIB, Compressor.ZSTD, Compressor.SNAPPY])
def test_data_shorter_than_declared_is_refused(compressor: Compressor) -> None:
    data = compress_message(PING, compressor)
    fields = bytearray(data[16:])
    struct.pack_into("<i", fields, 4, len(PING) - 16 + 1)
    message = _compressed(data[:16] + bytes(fields))
    with pytest.raises(RemoteProtocolError):
        decompress_message(message)


@pytest.mark.parametrize("compressor", [Compressor.ZLIB, Compressor.ZSTD, Compressor.SNAPPY])
def test_garbage_is_refused(compressor: Compressor) -> None:
    message = _compressed(_raw_compressed(OpCode.MSG, 20, compressor, b"\x14" + b"\xff" * 30))
    with pytest.raises(RemoteProtocolError):
        decompress_message(message)


def test_zlib_truncated_stream_is_refused() -> None:
    body = bson.encode({"x": "y" * 100})
    message = _compressed(
        _raw_compressed(OpCode.MSG, len(body), Compressor.ZLIB, zlib.compress(body)[:-3])
    )
    with pytest.raises(RemoteProtocolError):
        decompress_message(message)
