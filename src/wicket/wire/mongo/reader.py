"""Wire layer: a bounds-checked cursor over one message's payload (asyncssh `check_end` style).

Every read checks its length against what is left before touching the bytes, and
`check_end` makes each decoder prove it consumed the message exactly.
"""

from __future__ import annotations

import struct

from wicket.errors import RemoteProtocolError
from wicket.wire.mongo.constants import MAX_CSTRING_LENGTH, MIN_BSON_DOCUMENT_SIZE

_INT32 = struct.Struct("<i")
_UINT32 = struct.Struct("<I")
_INT64 = struct.Struct("<q")


def check_document(data: bytes, offset: int, end: int, what: str) -> int:
    """Check the BSON document framing at `offset` (without decoding it); return its end."""
    if end - offset < MIN_BSON_DOCUMENT_SIZE:
        raise RemoteProtocolError(f"{what}: BSON document truncated ({end - offset} bytes left)")
    (length,) = _INT32.unpack_from(data, offset)
    if length < MIN_BSON_DOCUMENT_SIZE or length > end - offset:
        raise RemoteProtocolError(
            f"{what}: BSON document length {length} outside 5..{end - offset}"
        )
    if data[offset + length - 1] != 0:
        raise RemoteProtocolError(f"{what}: BSON document does not end with 0x00")
    return offset + int(length)


class PayloadReader:
    """Reads fields of one message left to right, refusing to read past `end`."""

    def __init__(self, data: bytes, offset: int, end: int, what: str) -> None:
        self._data = data
        self.offset = offset
        self.end = end
        self._what = what

    @property
    def remaining(self) -> int:
        """Bytes not yet consumed."""
        return self.end - self.offset

    def _need(self, count: int, field: str) -> None:
        if count > self.remaining:
            raise RemoteProtocolError(
                f"{self._what}: {field} needs {count} bytes, only {self.remaining} left"
            )

    def int32(self, field: str) -> int:
        """A signed little-endian int32."""
        self._need(4, field)
        (value,) = _INT32.unpack_from(self._data, self.offset)
        self.offset += 4
        return int(value)

    def uint32(self, field: str) -> int:
        """An unsigned little-endian int32 (OP_MSG flagBits, checksum)."""
        self._need(4, field)
        (value,) = _UINT32.unpack_from(self._data, self.offset)
        self.offset += 4
        return int(value)

    def int64(self, field: str) -> int:
        """A signed little-endian int64 (cursor ids)."""
        self._need(8, field)
        (value,) = _INT64.unpack_from(self._data, self.offset)
        self.offset += 8
        return int(value)

    def uint8(self, field: str) -> int:
        """One byte."""
        self._need(1, field)
        value = self._data[self.offset]
        self.offset += 1
        return value

    def cstring(self, field: str) -> str:
        """A NUL-terminated UTF-8 string of at most MAX_CSTRING_LENGTH bytes."""
        limit = min(self.end, self.offset + MAX_CSTRING_LENGTH + 1)
        nul = self._data.find(b"\x00", self.offset, limit)
        if nul < 0:
            raise RemoteProtocolError(
                f"{self._what}: {field} is not a NUL-terminated string of at most "
                f"{MAX_CSTRING_LENGTH} bytes"
            )
        raw = self._data[self.offset : nul]
        self.offset = nul + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError(f"{self._what}: {field} is not valid UTF-8") from exc

    def document(self, field: str) -> bytes:
        """One BSON document's raw bytes, framing checked, not decoded."""
        start = self.offset
        self.offset = check_document(self._data, start, self.end, f"{self._what} {field}")
        return self._data[start : self.offset]

    def rest(self) -> bytes:
        """Everything left."""
        value = self._data[self.offset : self.end]
        self.offset = self.end
        return value

    def check_end(self) -> None:
        """Fail unless every byte was consumed."""
        if self.offset != self.end:
            raise RemoteProtocolError(
                f"{self._what}: {self.end - self.offset} unexpected trailing bytes"
            )
