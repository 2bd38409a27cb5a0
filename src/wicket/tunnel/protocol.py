"""Tunnel layer: sans-IO framing of the reverse tunnel's control messages and session header.

Rules of the protocol (all connections are TLS with ALPN `wicket-tunnel`, agent dials):

- A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON, one
  object. The length is at most `MAX_FRAME_SIZE` (64 KiB) and at least 2; it is checked
  before anything is buffered for the frame.
- The agent's first frame on every connection is `hello {agent_id, kind, databases?}`.
  The proxy answers `ack` (accepted) or `error {message}` (refused, then closes).
- On the control connection the agent sends `heartbeat {databases?}` and the proxy
  answers `ack`; the proxy may send `need_connections {count}` at any time.
- On a data connection, after the `ack`, the connection stays idle until the proxy sends
  one session header frame (no `type`: `{user_cert_chain_pem, route, client_addr,
  session_id}`); from then on it carries the raw bytes of that one session.
- Any other message, field or type is a protocol error; the connection is closed.
"""

from __future__ import annotations

import enum
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wicket.errors import LocalProtocolError, RemoteProtocolError

FRAME_HEADER = struct.Struct(">I")
MAX_FRAME_SIZE = 64 * 1024
MIN_FRAME_SIZE = 2  # "{}"
MAX_AGENT_ID_LENGTH = 253
MAX_DATABASES = 1000
MAX_NEED_CONNECTIONS = 64
MAX_ERROR_MESSAGE_LENGTH = 4096
MAX_CERT_CHAIN_LENGTH = 8
MAX_CLIENT_ADDR_LENGTH = 300
MAX_SESSION_ID_LENGTH = 128


class ConnectionKind(enum.Enum):
    """What a tunnel connection is for, announced in its hello."""

    CONTROL = "control"
    DATA = "data"


@dataclass(frozen=True)
class Hello:
    """First frame from the agent: who it is and what the connection is for."""

    agent_id: str
    kind: ConnectionKind
    databases: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Heartbeat:
    """Agent to proxy on the control connection: still alive, maybe new database list."""

    databases: tuple[Mapping[str, Any], ...] | None = None


@dataclass(frozen=True)
class NeedConnections:
    """Proxy to agent: keep at least `count` idle data connections."""

    count: int


@dataclass(frozen=True)
class Ack:
    """The proxy accepted a hello or a heartbeat."""


@dataclass(frozen=True)
class ErrorMessage:
    """The peer refuses; the connection closes after it."""

    message: str


ControlMessage = Hello | Heartbeat | NeedConnections | Ack | ErrorMessage


@dataclass(frozen=True)
class SessionHeader:
    """The proxy's first frame on a data connection: whose session this is and where it goes."""

    user_cert_chain_pem: tuple[str, ...]
    route: Mapping[str, Any] = field(default_factory=dict)
    client_addr: str = ""
    session_id: str = ""


def encode_frame(payload: Mapping[str, Any]) -> bytes:
    """Serialize one JSON object as a length-prefixed frame; refuse one above the cap."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    if len(body) > MAX_FRAME_SIZE:
        raise LocalProtocolError(
            f"tunnel frame of {len(body)} bytes exceeds the maximum of {MAX_FRAME_SIZE}"
        )
    return FRAME_HEADER.pack(len(body)) + body


def check_frame_length(length: int, max_size: int = MAX_FRAME_SIZE) -> None:
    """Refuse a declared frame length before reading its body."""
    if length > max_size:
        raise RemoteProtocolError(
            f"tunnel frame of {length} bytes exceeds the maximum of {max_size}"
        )
    if length < MIN_FRAME_SIZE:
        raise RemoteProtocolError(f"tunnel frame of {length} bytes is too short")


def decode_frame_body(body: bytes) -> dict[str, Any]:
    """Parse a frame body: one JSON object."""
    try:
        value = json.loads(body.decode())
    except (UnicodeDecodeError, ValueError) as error:
        raise RemoteProtocolError(f"tunnel frame is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise RemoteProtocolError("tunnel frame is not a JSON object")
    return value


class FrameDecoder:
    """Incremental frame splitter: feed bytes, take JSON objects."""

    def __init__(self, max_size: int = MAX_FRAME_SIZE) -> None:
        self.max_size = max_size
        self._buffer = bytearray()

    def receive_data(self, data: bytes) -> None:
        """Append bytes read from the peer; refuse a declared length above the cap at once."""
        self._buffer += data
        if len(self._buffer) >= FRAME_HEADER.size:
            check_frame_length(FRAME_HEADER.unpack_from(self._buffer)[0], self.max_size)

    def next_frame(self) -> dict[str, Any] | None:
        """Return the next whole frame's object, or None when more bytes are needed."""
        if len(self._buffer) < FRAME_HEADER.size:
            return None
        (length,) = FRAME_HEADER.unpack_from(self._buffer)
        check_frame_length(length, self.max_size)
        end = FRAME_HEADER.size + length
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[FRAME_HEADER.size : end])
        del self._buffer[:end]
        return decode_frame_body(body)

    def take_rest(self) -> bytes:
        """Bytes buffered after the last frame (a session's first raw bytes)."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest


def _string(payload: Mapping[str, Any], key: str, max_length: int, *, empty: bool = False) -> str:
    value = payload.get(key)
    if not isinstance(value, str):
        raise RemoteProtocolError(f"tunnel message field {key!r} must be a string")
    if len(value) > max_length:
        raise RemoteProtocolError(f"tunnel message field {key!r} is longer than {max_length}")
    if not value and not empty:
        raise RemoteProtocolError(f"tunnel message field {key!r} is empty")
    return value


def _databases(payload: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...] | None:
    value = payload.get("databases")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise RemoteProtocolError("tunnel message field 'databases' must be a list of objects")
    if len(value) > MAX_DATABASES:
        raise RemoteProtocolError(f"more than {MAX_DATABASES} databases announced")
    return tuple(value)


def _only(payload: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = set(payload) - allowed - {"type"}
    if unknown:
        raise RemoteProtocolError(f"unknown tunnel message fields: {sorted(unknown)}")


def decode_message(payload: Mapping[str, Any]) -> ControlMessage:
    """Turn a frame's object into a typed control message, checking every field."""
    kind = payload.get("type")
    if kind == "hello":
        _only(payload, {"agent_id", "kind", "databases"})
        try:
            connection_kind = ConnectionKind(payload.get("kind"))
        except ValueError:
            raise RemoteProtocolError("hello 'kind' must be 'control' or 'data'") from None
        return Hello(
            _string(payload, "agent_id", MAX_AGENT_ID_LENGTH),
            connection_kind,
            _databases(payload) or (),
        )
    if kind == "heartbeat":
        _only(payload, {"databases"})
        return Heartbeat(_databases(payload))
    if kind == "need_connections":
        _only(payload, {"count"})
        count = payload.get("count")
        if (
            not isinstance(count, int)
            or isinstance(count, bool)
            or not 1 <= count <= MAX_NEED_CONNECTIONS
        ):
            raise RemoteProtocolError(
                f"need_connections 'count' must be an integer from 1 to {MAX_NEED_CONNECTIONS}"
            )
        return NeedConnections(count)
    if kind == "ack":
        _only(payload, set())
        return Ack()
    if kind == "error":
        _only(payload, {"message"})
        return ErrorMessage(_string(payload, "message", MAX_ERROR_MESSAGE_LENGTH, empty=True))
    raise RemoteProtocolError(f"unknown tunnel message type {kind!r}")


def message_payload(message: ControlMessage) -> dict[str, Any]:
    """The JSON object for a control message (the inverse of `decode_message`)."""
    if isinstance(message, Hello):
        payload: dict[str, Any] = {
            "type": "hello",
            "agent_id": message.agent_id,
            "kind": message.kind.value,
        }
        if message.kind is ConnectionKind.CONTROL:
            payload["databases"] = [dict(item) for item in message.databases]
        return payload
    if isinstance(message, Heartbeat):
        payload = {"type": "heartbeat"}
        if message.databases is not None:
            payload["databases"] = [dict(item) for item in message.databases]
        return payload
    if isinstance(message, NeedConnections):
        if not 1 <= message.count <= MAX_NEED_CONNECTIONS:
            raise LocalProtocolError(f"need_connections count {message.count} is out of range")
        return {"type": "need_connections", "count": message.count}
    if isinstance(message, Ack):
        return {"type": "ack"}
    return {"type": "error", "message": message.message[:MAX_ERROR_MESSAGE_LENGTH]}


def encode_message(message: ControlMessage) -> bytes:
    """One control message as a frame."""
    return encode_frame(message_payload(message))


def encode_session_header(header: SessionHeader) -> bytes:
    """The session header as a frame (checked the way the agent will check it)."""
    payload = {
        "user_cert_chain_pem": list(header.user_cert_chain_pem),
        "route": dict(header.route),
        "client_addr": header.client_addr,
        "session_id": header.session_id,
    }
    try:
        decode_session_header(payload)
    except RemoteProtocolError as error:
        raise LocalProtocolError(str(error)) from None
    return encode_frame(payload)


def decode_session_header(payload: Mapping[str, Any]) -> SessionHeader:
    """Check and type the proxy's session header."""
    _only(payload, {"user_cert_chain_pem", "route", "client_addr", "session_id"})
    if "type" in payload:
        raise RemoteProtocolError("a session header has no 'type'")
    chain = payload.get("user_cert_chain_pem")
    if not isinstance(chain, list) or not all(isinstance(item, str) for item in chain):
        raise RemoteProtocolError("session header 'user_cert_chain_pem' must be a list of strings")
    if len(chain) > MAX_CERT_CHAIN_LENGTH:
        raise RemoteProtocolError(
            f"session header carries more than {MAX_CERT_CHAIN_LENGTH} certificates"
        )
    route = payload.get("route")
    if not isinstance(route, dict):
        raise RemoteProtocolError("session header 'route' must be an object")
    return SessionHeader(
        tuple(chain),
        route,
        _string(payload, "client_addr", MAX_CLIENT_ADDR_LENGTH, empty=True),
        _string(payload, "session_id", MAX_SESSION_ID_LENGTH, empty=True),
    )
