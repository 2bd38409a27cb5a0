"""Wire layer: a sans-IO parser for the TLS ClientHello, so the proxy can route before TLS.

The proxy peeks the first bytes of a connection without consuming them and routes on
the ClientHello's ALPN list (RFC 7301) and SNI (RFC 6066 §3). Rules:

- The bytes must be TLS handshake records (RFC 8446 §5.1: content type 22, legacy record
  version 0x0300..0x0304, no zero-length handshake fragments, at most 2^14 per record).
- The first handshake message must be a ClientHello (RFC 8446 §4.1.2); it may span several
  records, and its total size is capped at `MAX_HANDSHAKE_LENGTH` (16 KiB) — larger is an error.
- Every vector length is checked against what remains before it is used, the message must be
  consumed exactly, and an extension type may appear at most once (RFC 8446 §4.2).
- `None` means "need more bytes"; anything that is not a ClientHello raises
  `RemoteProtocolError` as soon as the bytes seen prove it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from wicket.errors import RemoteProtocolError

RECORD_HEADER_SIZE = 5
HANDSHAKE_HEADER_SIZE = 4
CONTENT_TYPE_HANDSHAKE = 22
HANDSHAKE_CLIENT_HELLO = 1
MAX_RECORD_PAYLOAD = 1 << 14  # RFC 8446 §5.1: TLSPlaintext.length MUST NOT exceed 2^14
MAX_HANDSHAKE_LENGTH = 1 << 14  # our cap on the ClientHello body (real ones are < 2 KiB)
MAX_RECORDS = 32  # a ClientHello split into more records than this is not from a real client
MAX_CLIENT_HELLO_BYTES = (
    HANDSHAKE_HEADER_SIZE + MAX_HANDSHAKE_LENGTH + MAX_RECORDS * RECORD_HEADER_SIZE
)
"""The most bytes `parse_client_hello` ever needs to see: a peek buffer of this size suffices."""

EXTENSION_SERVER_NAME = 0  # RFC 6066 §3
EXTENSION_ALPN = 16  # RFC 7301 §3.1
EXTENSION_SUPPORTED_VERSIONS = 43  # RFC 8446 §4.2.1
SERVER_NAME_TYPE_HOST_NAME = 0
MAX_HOST_NAME_LENGTH = 255

_RECORD_HEADER = struct.Struct(">BHH")
_UINT16 = struct.Struct(">H")


@dataclass(frozen=True)
class ClientHello:
    """What routing needs from a ClientHello: the server name, ALPN offers, TLS versions."""

    server_name: str | None
    alpn_protocols: tuple[str, ...]
    tls_versions: tuple[int, ...]
    """`supported_versions` when sent (TLS 1.3 clients), else the legacy version alone."""
    length: int
    """Bytes of the stream the ClientHello occupies, record headers included."""


class _Reader:
    """Bounds-checked cursor over one handshake message (asyncssh's packet style)."""

    def __init__(self, data: bytes | memoryview, what: str) -> None:
        self._data = memoryview(data)
        self._offset = 0
        self._what = what

    @property
    def remaining(self) -> int:
        return len(self._data) - self._offset

    def take(self, count: int, field: str) -> memoryview:
        if count > self.remaining:
            raise RemoteProtocolError(
                f"{self._what}: {field} needs {count} bytes but only {self.remaining} remain"
            )
        chunk = self._data[self._offset : self._offset + count]
        self._offset += count
        return chunk

    def uint8(self, field: str) -> int:
        return self.take(1, field)[0]

    def uint16(self, field: str) -> int:
        value: int = _UINT16.unpack(self.take(2, field))[0]
        return value

    def vector(self, length_size: int, field: str, minimum: int = 0) -> _Reader:
        """Read a length-prefixed vector (RFC 8446 §3.4) and return a reader over it."""
        length = self.uint8(field) if length_size == 1 else self.uint16(field)
        if length < minimum:
            raise RemoteProtocolError(f"{self._what}: {field} is shorter than {minimum} bytes")
        return _Reader(self.take(length, field), f"{self._what} {field}")

    def check_end(self) -> None:
        if self.remaining:
            raise RemoteProtocolError(f"{self._what}: {self.remaining} unexpected trailing bytes")


def _collect_handshake(data: bytes) -> tuple[bytes, int] | None:
    """Join handshake records until the first handshake message is whole."""
    message = bytearray()
    offset = 0
    needed: int | None = None
    records = 0
    while needed is None or len(message) < needed:
        if len(data) - offset < 1:
            return None
        if data[offset] != CONTENT_TYPE_HANDSHAKE:
            raise RemoteProtocolError(
                f"not a TLS handshake record (content type {data[offset]}, expected 22)"
            )
        if len(data) - offset >= 2 and data[offset + 1] != 3:
            raise RemoteProtocolError("not a TLS record (record version major is not 3)")
        if len(data) - offset < RECORD_HEADER_SIZE:
            return None
        _, version, length = _RECORD_HEADER.unpack_from(data, offset)
        if version > 0x0304:
            raise RemoteProtocolError(f"unknown TLS record version 0x{version:04x}")
        if length == 0:
            raise RemoteProtocolError("zero-length TLS handshake record (RFC 8446 §5.1)")
        if length > MAX_RECORD_PAYLOAD:
            raise RemoteProtocolError(f"TLS record of {length} bytes exceeds 2^14")
        records += 1
        if records > MAX_RECORDS:
            raise RemoteProtocolError(f"ClientHello spans more than {MAX_RECORDS} records")
        offset += RECORD_HEADER_SIZE
        fragment = data[offset : offset + length]
        message += fragment
        if needed is None and len(message) >= HANDSHAKE_HEADER_SIZE:
            if message[0] != HANDSHAKE_CLIENT_HELLO:
                raise RemoteProtocolError(
                    f"first TLS handshake message is type {message[0]}, not ClientHello (1)"
                )
            body_length = int.from_bytes(message[1:4], "big")
            if body_length > MAX_HANDSHAKE_LENGTH:
                raise RemoteProtocolError(
                    f"ClientHello of {body_length} bytes exceeds the cap of {MAX_HANDSHAKE_LENGTH}"
                )
            needed = HANDSHAKE_HEADER_SIZE + body_length
        elif needed is None and message and message[0] != HANDSHAKE_CLIENT_HELLO:
            raise RemoteProtocolError(
                f"first TLS handshake message is type {message[0]}, not ClientHello (1)"
            )
        if len(fragment) < length:
            return None
        offset += length
    if len(message) > needed:
        # RFC 8446 §5.1 allows coalescing, but a client sends nothing after its ClientHello
        # until the server answers.
        raise RemoteProtocolError("unexpected handshake bytes after the ClientHello")
    return bytes(message[HANDSHAKE_HEADER_SIZE:]), offset


def _parse_server_name(extension: _Reader) -> str | None:
    names = extension.vector(2, "server_name_list", minimum=1)
    extension.check_end()
    host_name: str | None = None
    while names.remaining:
        name_type = names.uint8("name_type")
        name = names.vector(2, "server name", minimum=1)
        if name_type != SERVER_NAME_TYPE_HOST_NAME:
            continue  # RFC 6066 §3: unknown name types are skipped
        if host_name is not None:
            raise RemoteProtocolError("SNI carries more than one host_name (RFC 6066 §3)")
        raw = bytes(name.take(name.remaining, "host_name"))
        if len(raw) > MAX_HOST_NAME_LENGTH:
            raise RemoteProtocolError(f"SNI host_name longer than {MAX_HOST_NAME_LENGTH} bytes")
        try:
            host_name = raw.decode("ascii")
        except UnicodeDecodeError:
            raise RemoteProtocolError("SNI host_name is not ASCII (RFC 6066 §3)") from None
    return host_name


def _parse_alpn(extension: _Reader) -> tuple[str, ...]:
    protocols = extension.vector(2, "protocol_name_list", minimum=2)
    extension.check_end()
    names: list[str] = []
    while protocols.remaining:
        name = protocols.vector(1, "protocol name", minimum=1)
        # ALPN names are opaque bytes (RFC 7301 §3.1); latin-1 keeps every one distinct.
        names.append(bytes(name.take(name.remaining, "protocol name")).decode("latin-1"))
    return tuple(names)


def _parse_supported_versions(extension: _Reader) -> tuple[int, ...]:
    versions = extension.vector(1, "supported_versions", minimum=2)
    extension.check_end()
    if versions.remaining % 2:
        raise RemoteProtocolError("supported_versions has an odd length")
    return tuple(versions.uint16("version") for _ in range(versions.remaining // 2))


def _parse_body(body: bytes, length: int) -> ClientHello:
    reader = _Reader(body, "ClientHello")
    legacy_version = reader.uint16("legacy_version")
    reader.take(32, "random")
    session_id = reader.vector(1, "legacy_session_id")
    if session_id.remaining > 32:
        raise RemoteProtocolError("ClientHello: legacy_session_id longer than 32 bytes")
    ciphers = reader.vector(2, "cipher_suites", minimum=2)
    if ciphers.remaining % 2:
        raise RemoteProtocolError("ClientHello: cipher_suites has an odd length")
    reader.vector(1, "legacy_compression_methods", minimum=1)
    server_name: str | None = None
    alpn: tuple[str, ...] = ()
    versions: tuple[int, ...] = (legacy_version,)
    if reader.remaining:  # extensions may be absent before TLS 1.3
        extensions = reader.vector(2, "extensions")
        seen: set[int] = set()
        while extensions.remaining:
            extension_type = extensions.uint16("extension type")
            data = extensions.vector(2, f"extension {extension_type}")
            if extension_type in seen:
                raise RemoteProtocolError(
                    f"ClientHello: extension {extension_type} appears twice (RFC 8446 §4.2)"
                )
            seen.add(extension_type)
            if extension_type == EXTENSION_SERVER_NAME:
                server_name = _parse_server_name(data)
            elif extension_type == EXTENSION_ALPN:
                alpn = _parse_alpn(data)
            elif extension_type == EXTENSION_SUPPORTED_VERSIONS:
                versions = _parse_supported_versions(data)
    reader.check_end()
    return ClientHello(server_name, alpn, versions, length)


def parse_client_hello(data: bytes) -> ClientHello | None:
    """Parse the ClientHello at the start of a stream; None while more bytes are needed."""
    collected = _collect_handshake(data)
    if collected is None:
        return None
    body, length = collected
    return _parse_body(body, length)
