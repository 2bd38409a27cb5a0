"""Wire layer: incremental framing of a MongoDB byte stream into whole messages (sans-IO).

Feed bytes with `receive_data`, take messages with `next_frame`. The declared
length is checked against the opcode's minimum and `max_message_size` as soon as
the 16-byte header is in, before anything more is buffered for that message.
"""

from __future__ import annotations

from dataclasses import dataclass

from wicket.errors import RemoteProtocolError
from wicket.wire.mongo.constants import DEFAULT_MAX_MESSAGE_SIZE, HEADER_SIZE, MIN_MESSAGE_SIZE
from wicket.wire.mongo.header import MsgHeader, parse_header


@dataclass(frozen=True)
class Frame:
    """One whole message: its parsed header and all its bytes (header included)."""

    header: MsgHeader
    data: bytes


def check_declared_length(header: MsgHeader, max_message_size: int) -> None:
    """Refuse a declared length that is too short for its opcode or above the maximum."""
    minimum = MIN_MESSAGE_SIZE.get(header.op_code, HEADER_SIZE)
    if header.length < minimum:
        raise RemoteProtocolError(
            f"message length {header.length} is below the minimum {minimum} "
            f"for opcode {header.op_code}"
        )
    if header.length > max_message_size:
        raise RemoteProtocolError(
            f"message length {header.length} exceeds the maximum message size {max_message_size}"
        )


class MessageFramer:
    """Splits a byte stream into whole messages without quadratic copying."""

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.max_message_size = max_message_size
        self._buffer = bytearray()
        self._pending: MsgHeader | None = None
        self._error: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned in a frame."""
        return len(self._buffer)

    def receive_data(self, data: bytes) -> None:
        """Append bytes read from the peer."""
        if self._error is not None:
            raise self._error
        self._buffer += data
        if self._pending is None and len(self._buffer) >= HEADER_SIZE:
            self._pending = self._checked_header()

    def next_frame(self) -> Frame | None:
        """Return the next whole message, or None when more bytes are needed."""
        if self._error is not None:
            raise self._error
        if self._pending is None:
            if len(self._buffer) < HEADER_SIZE:
                return None
            self._pending = self._checked_header()
        header = self._pending
        if len(self._buffer) < header.length:
            return None
        data = bytes(self._buffer[: header.length])
        del self._buffer[: header.length]
        self._pending = None
        return Frame(header, data)

    def _checked_header(self) -> MsgHeader:
        header = parse_header(self._buffer)
        try:
            check_declared_length(header, self.max_message_size)
        except RemoteProtocolError as exc:
            # The stream cannot be resynchronised after a bad length: stay failed.
            self._error = exc
            raise
        return header
