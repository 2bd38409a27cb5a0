"""HTTPS the way an attacker sends it: exact request bytes over a plain `ssl` socket.

HTTP client libraries normalise paths (`..`, percent-escapes) and add headers; these
helpers send the request line and headers exactly as given, optionally from a chosen
loopback source address (so the proxy's view of the client differs from its own).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

TIMEOUT = 15.0
MAX_RESPONSE = 4 * 1024 * 1024


@dataclass(frozen=True)
class Response:
    """A parsed HTTP/1.1 response."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode(errors="replace")


def tls_context(
    *,
    alpn: tuple[str, ...] = ("http/1.1",),
    ca_pem: str | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> ssl.SSLContext:
    """A client context; unverified unless `ca_pem` is given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_pem is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_verify_locations(cadata=ca_pem)
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(list(alpn))
    return context


def connect(
    port: int,
    context: ssl.SSLContext,
    *,
    source: str | None = None,
    server_hostname: str = "localhost",
    timeout: float = TIMEOUT,
) -> ssl.SSLSocket:
    """A TLS connection to 127.0.0.1:port (from `source`), handshake done."""
    raw = socket.create_connection(
        ("127.0.0.1", port), timeout=timeout, source_address=(source, 0) if source else None
    )
    try:
        return context.wrap_socket(raw, server_hostname=server_hostname)
    except BaseException:
        raw.close()
        raise


def request(
    sock: ssl.SSLSocket,
    method: str,
    target: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> Response:
    """Send one request with `target` byte for byte; read the whole response."""
    lines = [f"{method} {target} HTTP/1.1", "Host: localhost"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in {"POST", "PUT"}:
        lines.append(f"Content-Length: {len(body)}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a response: {buffer!r}")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    length = int(parsed.get("content-length", "0"))
    if length > MAX_RESPONSE:
        raise ValueError(f"response of {length} bytes")
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Response(int(status_line.split()[1]), parsed, rest[:length])


def https(
    port: int,
    method: str,
    target: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    source: str | None = None,
    context: ssl.SSLContext | None = None,
    server_hostname: str = "localhost",
) -> Response:
    """One request on a fresh connection."""
    with connect(
        port, context or tls_context(), source=source, server_hostname=server_hostname
    ) as sock:
        return request(sock, method, target, headers=headers, body=body)


def is_closed(sock: socket.socket, timeout: float) -> bool:
    """Whether the peer ends the connection (EOF, reset, TLS error) within `timeout`."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except TimeoutError:
        return False
    except (OSError, ssl.SSLError):
        return True
