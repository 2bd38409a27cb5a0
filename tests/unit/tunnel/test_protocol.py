"""Tests for the tunnel's sans-IO framing and messages, and the agent's reconnect backoff."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wicket.errors import LocalProtocolError, RemoteProtocolError
from wicket.tunnel.client import Backoff
from wicket.tunnel.protocol import (
    MAX_FRAME_SIZE,
    Ack,
    ConnectionKind,
    ControlMessage,
    ErrorMessage,
    FrameDecoder,
    Heartbeat,
    Hello,
    NeedConnections,
    SessionHeader,
    decode_message,
    decode_session_header,
    encode_frame,
    encode_message,
    encode_session_header,
)

MESSAGES: list[tuple[ControlMessage, bytes]] = [
    (
        Hello("agent-1", ConnectionKind.CONTROL, ({"name": "db"},)),
        b'{"type":"hello","agent_id":"agent-1","kind":"control","databases":[{"name":"db"}]}',
    ),
    (Hello("agent-1", ConnectionKind.DATA), b'{"type":"hello","agent_id":"agent-1","kind":"data"}'),
    (Heartbeat(), b'{"type":"heartbeat"}'),
    (Heartbeat(({"name": "x"},)), b'{"type":"heartbeat","databases":[{"name":"x"}]}'),
    (NeedConnections(12), b'{"type":"need_connections","count":12}'),
    (Ack(), b'{"type":"ack"}'),
    (ErrorMessage("no"), b'{"type":"error","message":"no"}'),
]


def decode_all(data: bytes, chunk: int) -> list[dict[str, Any]]:
    decoder = FrameDecoder()
    frames = []
    for offset in range(0, len(data), chunk):
        decoder.receive_data(data[offset : offset + chunk])
        while (frame := decoder.next_frame()) is not None:
            frames.append(frame)
    return frames


@pytest.mark.parametrize(("message", "body"), MESSAGES)
def test_message_round_trip(message: ControlMessage, body: bytes) -> None:
    frame = encode_message(message)
    assert frame == struct.pack(">I", len(body)) + body
    (payload,) = decode_all(frame, 1)
    assert decode_message(payload) == message


def test_frames_split_and_coalesced_and_rest_kept() -> None:
    stream = b"".join(encode_message(m) for m, _ in MESSAGES)
    for chunk in (1, 3, 7, len(stream)):
        frames = decode_all(stream, chunk)
        assert [decode_message(f) for f in frames] == [m for m, _ in MESSAGES]
    decoder = FrameDecoder()
    decoder.receive_data(encode_frame({"a": 1}) + b"raw session bytes")
    assert decoder.next_frame() == {"a": 1}
    assert decoder.take_rest() == b"raw session bytes"


def test_frame_caps() -> None:
    encode_frame({"x": "a" * (MAX_FRAME_SIZE - 8)})  # exactly at the cap
    with pytest.raises(LocalProtocolError, match="exceeds the maximum"):
        encode_frame({"x": "a" * MAX_FRAME_SIZE})
    decoder = FrameDecoder()
    with pytest.raises(RemoteProtocolError, match="exceeds the maximum"):
        decoder.receive_data(struct.pack(">I", MAX_FRAME_SIZE + 1))  # refused before the body
    with pytest.raises(RemoteProtocolError, match="too short"):
        FrameDecoder().receive_data(struct.pack(">I", 1))


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"type": "launch"}', "unknown tunnel message type"),
        (b'{"type": "ack", "extra": 1}', "unknown tunnel message fields"),
        (b'{"type": "hello", "agent_id": "a", "kind": "both"}', "'control' or 'data'"),
        (b'{"type": "hello", "agent_id": "", "kind": "data"}', "is empty"),
        (b'{"type": "hello", "agent_id": 7, "kind": "data"}', "must be a string"),
        (b'{"type": "hello", "agent_id": "a", "kind": "control", "databases": [1]}', "objects"),
        (b'{"type": "need_connections", "count": 0}', "from 1 to 64"),
        (b'{"type": "need_connections", "count": 65}', "from 1 to 64"),
        (b'{"type": "need_connections", "count": true}', "from 1 to 64"),
        (b'{"type": "error", "message": null}', "must be a string"),
    ],
)
def test_bad_messages(body: bytes, error: str) -> None:
    decoder = FrameDecoder()
    decoder.receive_data(struct.pack(">I", len(body)) + body)
    with pytest.raises(RemoteProtocolError, match=error):
        decode_message(decoder.next_frame() or {})


def test_hello_agent_id_and_databases_are_capped() -> None:
    with pytest.raises(RemoteProtocolError, match="longer than 253"):
        decode_message({"type": "hello", "agent_id": "a" * 254, "kind": "data"})
    with pytest.raises(RemoteProtocolError, match="more than 1000"):
        decode_message({"type": "heartbeat", "databases": [{}] * 1001})


def test_session_header_round_trip_and_caps() -> None:
    header = SessionHeader(("PEM1", "PEM2"), {"service": "db", "db_user": "u"}, "10.0.0.1:1", "s1")
    (payload,) = decode_all(encode_session_header(header), 5)
    assert decode_session_header(payload) == header
    assert set(payload) == {"user_cert_chain_pem", "route", "client_addr", "session_id"}
    with pytest.raises(LocalProtocolError, match="more than 8"):
        encode_session_header(SessionHeader(("p",) * 9))
    with pytest.raises(RemoteProtocolError, match="no 'type'"):
        decode_session_header({"type": "ack", "user_cert_chain_pem": [], "route": {}})
    with pytest.raises(RemoteProtocolError, match="must be an object"):
        decode_session_header(
            {"user_cert_chain_pem": [], "route": [], "client_addr": "", "session_id": ""}
        )
    with pytest.raises(RemoteProtocolError, match="longer than 128"):
        decode_session_header(
            {"user_cert_chain_pem": [], "route": {}, "client_addr": "", "session_id": "s" * 129}
        )


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_fuzz_decoder_only_raises_protocol_errors(data: bytes) -> None:
    decoder = FrameDecoder()
    try:
        decoder.receive_data(data)
        while (frame := decoder.next_frame()) is not None:
            decode_message(frame)
    except RemoteProtocolError:
        pass


@given(
    st.dictionaries(
        st.sampled_from(["type", "agent_id", "kind", "count", "message", "databases"]),
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=5),
            st.sampled_from(["hello", "data", "control", "ack", "need_connections", "error"]),
        ),
    )
)
def test_fuzz_message_fields(payload: dict[str, Any]) -> None:
    try:
        message = decode_message(json.loads(json.dumps(payload)))
    except RemoteProtocolError:
        return
    assert decode_message(json.loads(encode_message(message)[4:])) == message


def test_backoff_doubles_caps_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, 0.2, random_fraction=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(6)] == pytest.approx([0.4, 0.8, 1.6, 3.2, 3.2, 3.2])
    backoff.reset()
    assert backoff.next_delay() == pytest.approx(0.4)
    no_jitter = Backoff(1.0, 30.0, 0.0)
    assert [no_jitter.next_delay() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    with pytest.raises(ValueError, match="backoff"):
        Backoff(0, 1)
