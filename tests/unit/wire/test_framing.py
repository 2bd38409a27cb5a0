"""Tests for wicket.wire.mongo.framing: splitting a byte stream into whole messages."""

from __future__ import annotations

import random
import struct
import time

import pytest

from wicket.errors import RemoteProtocolError
from wicket.wire.mongo import DEFAULT_MAX_MESSAGE_SIZE, MessageFramer, OpCode, encode_op_msg

from .fixtures import valid_messages


def _frames(framer: MessageFramer) -> list[bytes]:
    out = []
    while (frame := framer.next_frame()) is not None:
        assert frame.header.length == len(frame.data)
        out.append(frame.data)
    return out


def test_one_byte_at_a_time() -> None:
    messages = valid_messages()
    framer = MessageFramer()
    got: list[bytes] = []
    for byte in b"".join(messages):
        framer.receive_data(bytes([byte]))
        got += _frames(framer)
    assert got == messages
    assert framer.buffered == 0


@pytest.mark.parametrize("seed", range(20))
def test_random_splits(seed: int) -> None:
    messages = valid_messages()
    stream = b"".join(messages)
    rng = random.Random(seed)
    framer = MessageFramer()
    got: list[bytes] = []
    position = 0
    while position < len(stream):
        step = rng.randint(1, 200)
        framer.receive_data(stream[position : position + step])
        position += step
        got += _frames(framer)
    assert got == messages


def test_several_messages_in_one_chunk_and_a_partial_tail() -> None:
    messages = valid_messages()
    framer = MessageFramer()
    framer.receive_data(b"".join(messages) + messages[0][:10])
    assert _frames(framer) == messages
    assert framer.buffered == 10
    framer.receive_data(messages[0][10:])
    assert _frames(framer) == [messages[0]]


def _header(length: int, op_code: int = OpCode.MSG) -> bytes:
    return struct.pack("<iiii", length, 1, 0, op_code)


@pytest.mark.parametrize("length", [0, 15, -1, -(2**31)])
def test_length_below_header_is_refused(length: int) -> None:
    framer = MessageFramer()
    with pytest.raises(RemoteProtocolError, match="below the minimum"):
        framer.receive_data(_header(length))
    # The stream cannot be resynchronised: the framer stays failed.
    with pytest.raises(RemoteProtocolError):
        framer.next_frame()


def test_length_below_the_opcode_minimum_is_refused() -> None:
    framer = MessageFramer()
    with pytest.raises(RemoteProtocolError, match="minimum 26 for opcode 2013"):
        framer.receive_data(_header(20, OpCode.MSG))


def test_length_above_maximum_is_refused_before_the_body_arrives() -> None:
    framer = MessageFramer(max_message_size=1000)
    with pytest.raises(RemoteProtocolError, match="exceeds the maximum message size 1000"):
        framer.receive_data(_header(1001))
    assert framer.buffered == 16


def test_header_split_across_chunks_is_checked_when_complete() -> None:
    framer = MessageFramer(max_message_size=1000)
    framer.receive_data(_header(5000)[:10])
    assert framer.next_frame() is None
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        framer.receive_data(_header(5000)[10:])


def test_exactly_the_maximum_is_accepted() -> None:
    message = encode_op_msg({"pad": "x" * 100}, request_id=1)
    framer = MessageFramer(max_message_size=len(message))
    framer.receive_data(message)
    frame = framer.next_frame()
    assert frame is not None and frame.data == message
    framer.max_message_size = len(message) - 1
    with pytest.raises(RemoteProtocolError):
        framer.receive_data(message)


def test_max_message_size_is_settable() -> None:
    message = encode_op_msg({"pad": "x" * 100}, request_id=1)
    framer = MessageFramer(max_message_size=50)
    framer.max_message_size = 1000
    framer.receive_data(message)
    assert framer.next_frame() is not None


def test_an_error_frame_after_a_good_one_does_not_lose_the_good_one() -> None:
    message = encode_op_msg({"ping": 1}, request_id=1)
    framer = MessageFramer(max_message_size=100)
    framer.receive_data(message + _header(5000))
    assert framer.next_frame() is not None
    with pytest.raises(RemoteProtocolError):
        framer.next_frame()


def test_48_megabytes_in_64k_chunks_is_fast() -> None:
    body_size = DEFAULT_MAX_MESSAGE_SIZE - 16 - 4 - 1 - 100
    message = encode_op_msg({"blob": b"\x00" * body_size}, request_id=9)
    assert len(message) <= DEFAULT_MAX_MESSAGE_SIZE
    framer = MessageFramer()
    chunk = 64 * 1024
    start = time.perf_counter()
    frames = []
    for position in range(0, len(message), chunk):
        framer.receive_data(message[position : position + chunk])
        if (frame := framer.next_frame()) is not None:
            frames.append(frame)
    elapsed = time.perf_counter() - start
    assert len(frames) == 1 and frames[0].data == message
    assert elapsed < 5.0, f"framing 48 MB took {elapsed:.2f}s"
