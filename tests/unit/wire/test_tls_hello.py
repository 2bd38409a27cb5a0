"""Tests for the sans-IO ClientHello parser: real clients' bytes, crafted edge cases, fuzz."""

from __future__ import annotations

import base64
import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wicket.errors import RemoteProtocolError
from wicket.wire.tls_hello import (
    MAX_CLIENT_HELLO_BYTES,
    MAX_HANDSHAKE_LENGTH,
    ClientHello,
    parse_client_hello,
)

# Captured from real clients connecting to a loopback listener (see the parametrize table for
# what each offered). Python: ssl.SSLContext.wrap_socket (OpenSSL 3.0); openssl s_client 3.0;
# node tls.connect.
PYTHON_SNI_ALPN = base64.b64decode(
    "FgMBAgABAAH8AwMbtwifPfQIzhN2L+kHg9hoj2cksfWommbJnFvDPqsSuyC4Jev0OY4dqHr5fNE97N0BcG8o0fXh"
    "PUE/uZLHf46kowAkEwITAxMBwCzAMMArwC/MqcyowCTAKMAjwCcAnwCeAGsAZwD/AQABjwAAABYAFAAAEXByb3h5"
    "LmV4YW1wbGUuY29tAAsABAMAAQIACgAWABQAHQAXAB4AGQAYAQABAQECAQMBBAAjAAAAEAAaABgOd2lja2V0LW1v"
    "bmdvZGIIaHR0cC8xLjEAFgAAABcAAAANACoAKAQDBQMGAwgHCAgICQgKCAsIBAgFCAYEAQUBBgEDAwMBAwIEAgUC"
    "BgIAKwAFBAMEAwMALQACAQEAMwAmACQAHQAgYbFqKgas712oYRYWHZmj8X+NpCg1DzHg3fvK8ltAfW8AFQC+AAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="
)
PYTHON_NO_SNI_NO_ALPN = base64.b64decode(
    "FgMBAgABAAH8AwM+FZqt2eN0L8uJsEHVEUdOyerVuZ/S74NVAIvBaQGQZyCMyLDiaLCb6gjeXEC72iiD8RoYhSlF"
    "2mlmdXJfPMbRwQAkEwITAxMBwCzAMMArwC/MqcyowCTAKMAjwCcAnwCeAGsAZwD/AQABjwALAAQDAAECAAoAFgAU"
    "AB0AFwAeABkAGAEAAQEBAgEDAQQAIwAAABYAAAAXAAAADQAqACgEAwUDBgMIBwgICAkICggLCAQIBQgGBAEFAQYB"
    "AwMDAQMCBAIFAgYCACsABQQDBAMDAC0AAgEBADMAJgAkAB0AIM5o6RyUIEaq5DsDtYaDyzkRzMQfMJrZKG6t/Ic7"
    "El57ABUA9gAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="
)
PYTHON_TLS12 = base64.b64decode(
    "FgMBALgBAAC0AwNlFLK2QKH2dK28FgKSe2JCpC5mobTFaj+RRUaIZ3NoTgAAHsAswDDAK8AvzKnMqMAkwCjAI8An"
    "AJ8AngBrAGcA/wEAAG0AAAAOAAwAAAlsb2NhbGhvc3QACwAEAwABAgAKAAwACgAdABcAHgAZABgAIwAAABAABQAD"
    "AmgyABYAAAAXAAAADQAqACgEAwUDBgMIBwgICAkICggLCAQIBQgGBAEFAQYBAwMDAQMCBAIFAgYC"
)
OPENSSL_S_CLIENT = base64.b64decode(
    "FgMBAU8BAAFLAwM2d5L6xioAnHZkIrnYGuwcnAqxN4Vf4AUq350anLGxkiAwredFEdGVr2+3nDxngHVCxMrB/R3i"
    "K8xwlF96g4acNwA+EwITAxMBwCzAMACfzKnMqMyqwCvALwCewCTAKABrwCPAJwBnwArAFAA5wAnAEwAzAJ0AnAA9"
    "ADwANQAvAP8BAADEAAAAEwARAAAOZGIuZXhhbXBsZS5vcmcACwAEAwABAgAKABYAFAAdABcAHgAZABgBAAEBAQIB"
    "AwEEACMAAAAQABAADg13aWNrZXQtdHVubmVsABYAAAAXAAAADQAqACgEAwUDBgMIBwgICAkICggLCAQIBQgGBAEF"
    "AQYBAwMDAQMCBAIFAgYCACsACQgDBAMDAwIDAQAtAAIBAQAzACYAJAAdACDxUZ58jFuE0h/yw0kQ9SGcJ/3vAN7A"
    "i9SNfmDsecuiYA=="
)
NODE_TLS = base64.b64decode(
    "FgMBAYMBAAF/AwOiLTrxn4uqefJ+xgWU15/qod8dE1ZGghON388utoH37iBAB+XgwUPwBKKrwcxwfcqmNsGQ5Vs9"
    "Qhk70f5PWA90OgB2EwITAxMBwC/AK8AwwCwAnsAnAGfAKABrAKMAn8ypzKjMqsCvwK3Ao8CfwF3AYcBXwFMAosCu"
    "wKzAosCewFzAYMBWwFLAJABqwCMAQMAKwBQAOQA4wAnAEwAzADIAncChwJ3AUQCcwKDAnMBQAD0APAA1AC8A/wEA"
    "AMAAAAAVABMAABBub2RlLmV4YW1wbGUubmV0AAsABAMAAQIACgAWABQAHQAXAB4AGQAYAQABAQECAQMBBAAjAAAA"
    "EAAOAAwCaDIIaHR0cC8xLjEAFgAAABcAAAANACoAKAQDBQMGAwgHCAgICQgKCAsIBAgFCAYEAQUBBgEDAwMBAwIE"
    "AgUCBgIAKwAFBAMEAwMALQACAQEAMwAmACQAHQAg8MMrukhcHFd4Y3w9eT2PtZN7eP7H2IzmuU+dbP9mI0U="
)

TLS13 = 0x0304
TLS12 = 0x0303


@pytest.mark.parametrize(
    ("data", "server_name", "alpn", "versions"),
    [
        (PYTHON_SNI_ALPN, "proxy.example.com", ("wicket-mongodb", "http/1.1"), (TLS13, TLS12)),
        (PYTHON_NO_SNI_NO_ALPN, None, (), (TLS13, TLS12)),
        (PYTHON_TLS12, "localhost", ("h2",), (TLS12,)),
        (OPENSSL_S_CLIENT, "db.example.org", ("wicket-tunnel",), (TLS13, TLS12, 0x0302, 0x0301)),
        (NODE_TLS, "node.example.net", ("h2", "http/1.1"), (TLS13, TLS12)),
    ],
    ids=["python", "python-bare", "python-tls12", "openssl", "node"],
)
def test_real_client_hellos(
    data: bytes, server_name: str | None, alpn: tuple[str, ...], versions: tuple[int, ...]
) -> None:
    hello = parse_client_hello(data)
    assert hello == ClientHello(server_name, alpn, versions, len(data))


ALL_REAL = [PYTHON_SNI_ALPN, PYTHON_NO_SNI_NO_ALPN, PYTHON_TLS12, OPENSSL_S_CLIENT, NODE_TLS]


@pytest.mark.parametrize("data", ALL_REAL)
def test_every_prefix_needs_more(data: bytes) -> None:
    for end in range(len(data)):
        assert parse_client_hello(data[:end]) is None


@pytest.mark.parametrize("data", ALL_REAL)
def test_bytes_after_the_hello_are_not_looked_at(data: bytes) -> None:
    hello = parse_client_hello(data + b"\x14\x03\x03\x00\x01\x01garbage")
    assert hello is not None
    assert hello.length == len(data)


def handshake_message(data: bytes) -> bytes:
    """The handshake message inside a single-record capture."""
    (length,) = struct.unpack(">H", data[3:5])
    assert len(data) == 5 + length
    return data[5:]


def records(message: bytes, sizes: list[int], version: int = 0x0301) -> bytes:
    """Split a handshake message into records of the given fragment sizes (last takes the rest)."""
    out = bytearray()
    offset = 0
    for size in [*sizes, len(message)]:
        fragment = message[offset : offset + size]
        if not fragment:
            break
        out += struct.pack(">BHH", 22, version, len(fragment)) + fragment
        offset += len(fragment)
    return bytes(out)


@pytest.mark.parametrize("sizes", [[1], [3], [4], [5, 5, 5], [100, 1, 1, 1, 300], [1] * 20])
def test_hello_spanning_several_records(sizes: list[int]) -> None:
    data = records(handshake_message(PYTHON_SNI_ALPN), sizes)
    hello = parse_client_hello(data)
    assert hello is not None
    assert hello.alpn_protocols == ("wicket-mongodb", "http/1.1")
    assert hello.length == len(data)
    for end in range(len(data)):
        assert parse_client_hello(data[:end]) is None


def test_too_many_records_is_refused() -> None:
    data = records(handshake_message(PYTHON_SNI_ALPN), [1] * 40)
    with pytest.raises(RemoteProtocolError, match="more than"):
        parse_client_hello(data)


def build_hello(
    extensions: list[tuple[int, bytes]] | None,
    *,
    version: int = TLS12,
    session_id: bytes = b"",
    ciphers: bytes = b"\x13\x01",
) -> bytes:
    """A ClientHello in one record with the given extensions (None: no extensions block)."""
    body = struct.pack(">H", version) + bytes(32)
    body += bytes([len(session_id)]) + session_id
    body += struct.pack(">H", len(ciphers)) + ciphers + b"\x01\x00"
    if extensions is not None:
        block = b"".join(struct.pack(">HH", kind, len(data)) + data for kind, data in extensions)
        body += struct.pack(">H", len(block)) + block
    message = b"\x01" + len(body).to_bytes(3, "big") + body
    return records(message, [1 << 14] * 4)


def sni(*names: tuple[int, bytes]) -> tuple[int, bytes]:
    entries = b"".join(bytes([kind]) + struct.pack(">H", len(n)) + n for kind, n in names)
    return 0, struct.pack(">H", len(entries)) + entries


def alpn(*names: bytes) -> tuple[int, bytes]:
    entries = b"".join(bytes([len(n)]) + n for n in names)
    return 16, struct.pack(">H", len(entries)) + entries


def test_crafted_hello_without_extensions() -> None:
    hello = parse_client_hello(build_hello(None, version=0x0301))
    assert hello is not None
    assert (hello.server_name, hello.alpn_protocols, hello.tls_versions) == (None, (), (0x0301,))


def test_unknown_sni_name_types_are_skipped() -> None:
    data = build_hello([sni((7, b"opaque"), (0, b"a.example"))])
    hello = parse_client_hello(data)
    assert hello is not None
    assert hello.server_name == "a.example"


def test_alpn_names_are_kept_byte_exact() -> None:
    hello = parse_client_hello(build_hello([alpn(b"\xff\x00x", b"wicket-tunnel")]))
    assert hello is not None
    assert hello.alpn_protocols == ("\xff\x00x", "wicket-tunnel")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "not a TLS handshake record"),
        (b"G", "not a TLS handshake record"),
        (b"\x16\x02", "record version"),
        (b"\x16\x03\x05\x00\x10", "unknown TLS record version"),
        (b"\x16\x03\x01\x00\x00", "zero-length"),
        (b"\x16\x03\x01\x40\x01", "exceeds 2"),
        (b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", "not ClientHello"),
        (b"\x16\x03\x01\x00\x01\x02", "not ClientHello"),
        (b"\x16\x03\x01\x00\x04\x01\x00\x40\x01", "exceeds the cap"),
        (b"\x16\x03\x01\x00\x04\x01\x00\x00\x00", "needs 2 bytes"),
        (b"\x15\x03\x03\x00\x02\x02\x28", "content type 21"),
        (build_hello([sni((0, b"a"), (0, b"b"))]), "more than one host_name"),
        (build_hello([sni((0, "é".encode()))]), "not ASCII"),
        (build_hello([sni((0, b"a" * 300))]), "longer than 255"),
        (build_hello([alpn(b"h2"), alpn(b"h2")]), "appears twice"),
        (build_hello([(16, b"\x00\x00")]), "shorter than 2"),
        (build_hello([(16, b"\x00\x03\x00ab")]), "shorter than 1"),
        (build_hello([(16, b"\x00\x03\x02h2x")]), "trailing"),
        (build_hello([(43, b"\x03\x03\x04\x03")]), "odd length"),
        (build_hello([], ciphers=b"\x13\x01\x02"), "odd length"),
        (build_hello([], session_id=bytes(33)), "longer than 32"),
        (build_hello([(0, b"\x00")]), "needs 2 bytes"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_protocol_errors(data: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        parse_client_hello(data)


def test_bytes_inside_the_hello_record_after_the_message_are_refused() -> None:
    message = handshake_message(PYTHON_TLS12) + b"\x00"
    with pytest.raises(RemoteProtocolError, match="after the ClientHello"):
        parse_client_hello(records(message, [1 << 14]))


def test_trailing_bytes_in_the_body_are_refused() -> None:
    message = bytearray(handshake_message(PYTHON_TLS12))
    message += b"\x00"
    message[1:4] = (len(message) - 4).to_bytes(3, "big")
    with pytest.raises(RemoteProtocolError, match="trailing"):
        parse_client_hello(records(bytes(message), [1 << 14]))


def test_size_cap() -> None:
    padding = bytes(MAX_HANDSHAKE_LENGTH)  # pushes the body over 16 KiB
    big = build_hello([(21, padding[: MAX_HANDSHAKE_LENGTH - 200])])
    hello = parse_client_hello(big)
    assert hello is not None
    assert hello.length <= MAX_CLIENT_HELLO_BYTES
    with pytest.raises(RemoteProtocolError, match="exceeds the cap"):
        parse_client_hello(build_hello([(21, padding)]))


@given(st.binary(max_size=600))
def test_fuzz_random_bytes_only_raise_protocol_errors(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        parse_client_hello(data)


@given(st.binary(max_size=600))
def test_fuzz_random_handshake_records(payload: bytes) -> None:
    data = b"\x16\x03\x01" + struct.pack(">H", len(payload)) + payload
    with contextlib.suppress(RemoteProtocolError):
        parse_client_hello(data)


@given(
    st.sampled_from(ALL_REAL),
    st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_mutations_of_real_hellos(original: bytes, edits: list[tuple[int, int]]) -> None:
    data = bytearray(original)
    for position, value in edits:
        data[position % len(data)] = value
    try:
        hello = parse_client_hello(bytes(data))
    except RemoteProtocolError:
        return
    if hello is not None:
        assert hello.length <= len(data)
        assert all(isinstance(name, str) for name in hello.alpn_protocols)


@given(st.sampled_from(ALL_REAL), st.integers(0, 1000), st.binary(min_size=1, max_size=40))
def test_insertions_into_real_hellos(original: bytes, position: int, inserted: bytes) -> None:
    position %= len(original)
    data = original[:position] + inserted + original[position:]
    with contextlib.suppress(RemoteProtocolError):
        parse_client_hello(data)
