"""TLS context builders (transport-security layer) for every Wicket listener and dialer.

All contexts speak TLS 1.2 or 1.3 only, without compression or renegotiation,
with forward-secret AEAD cipher suites for TLS 1.2 (TLS 1.3's suites are all fine)
and strict X.509 checks (RFC 5280 profile, which Wicket's own certificates follow).

Python's `ssl` can load a certificate chain and key only from a file path. The
key is handed over through an anonymous in-memory file (`memfd_create`, reached
via `/proc/self/fd`), so it never touches a filesystem; where that is not
available, through a 0600 temporary file that exists only while OpenSSL reads it.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from cryptography import x509

from wicket.errors import BadParameter, LocalProtocolError
from wicket.pki.pem import load_der_certificate

# TLS 1.2 suites: ECDHE key exchange (forward secrecy) with AEAD ciphers only.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS:!PSK:!SRP"
MAX_PEM = 64 * 1024
MAX_ALPN_PROTOCOL = 255
_PROC_FD = Path("/proc/self/fd")


def _base_context(protocol: ssl._SSLMethod) -> ssl.SSLContext:
    """A context with the settings every Wicket connection shares."""
    context = ssl.SSLContext(protocol)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.set_ciphers(TLS12_CIPHERS)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def _check_pem(pem: bytes, what: str) -> bytes:
    """Bound a PEM input before handing it to OpenSSL."""
    if not isinstance(pem, bytes | bytearray):
        raise BadParameter(f"{what} must be PEM bytes, not {type(pem).__name__}")
    if len(pem) > MAX_PEM:
        raise BadParameter(f"{what} is {len(pem)} bytes, over {MAX_PEM}")
    if b"-----BEGIN " not in pem:
        raise BadParameter(f"{what} is not PEM")
    return bytes(pem)


def _set_alpn(context: ssl.SSLContext, alpn: Sequence[str]) -> None:
    """Offer (client) or accept (server) these ALPN protocols, most preferred first."""
    if isinstance(alpn, str):
        raise BadParameter("ALPN protocols must be a sequence of names, not one string")
    for protocol in alpn:
        encoded = protocol.encode("ascii", "replace") if isinstance(protocol, str) else b""
        if not encoded or len(encoded) > MAX_ALPN_PROTOCOL or not protocol.isascii():
            raise BadParameter(f"ALPN protocol {protocol!r} must be 1-255 ASCII characters")
    if alpn:
        context.set_alpn_protocols(list(alpn))


@contextlib.contextmanager
def _secret_path(data: bytes, *, in_memory: bool | None = None) -> Iterator[str]:
    """A path OpenSSL can open that yields `data`, alive only inside the `with` block.

    `in_memory=None` picks the anonymous in-memory file where the platform has one.
    """
    if in_memory is None:
        in_memory = hasattr(os, "memfd_create") and _PROC_FD.is_dir()
    if in_memory:
        descriptor = os.memfd_create("wicket-tls", os.MFD_CLOEXEC)
        try:
            _write_all(descriptor, data)
            yield str(_PROC_FD / str(descriptor))
        finally:
            os.close(descriptor)
        return
    # Fallback: mkstemp creates the file 0600 with O_EXCL; it is removed right after use.
    descriptor, name = tempfile.mkstemp(prefix="wicket-tls-", suffix=".pem")
    try:
        try:
            _write_all(descriptor, data)
        finally:
            os.close(descriptor)
        yield name
    finally:
        os.unlink(name)


def _write_all(descriptor: int, data: bytes) -> None:
    """Write every byte (os.write may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]


def load_certificate_chain(context: ssl.SSLContext, cert_chain_pem: bytes, key_pem: bytes) -> None:
    """Load our certificate chain and private key into a context."""
    chain = _check_pem(cert_chain_pem, "certificate chain")
    key = _check_pem(key_pem, "private key")
    with _secret_path(chain) as chain_path, _secret_path(key) as key_path:
        try:
            context.load_cert_chain(chain_path, key_path)
        except ssl.SSLError as exc:
            raise BadParameter(
                f"cannot use the TLS certificate and key (do they match?): {exc.reason or exc}"
            ) from exc


def _load_cas(context: ssl.SSLContext, ca_pems: Sequence[bytes], what: str) -> None:
    """Trust these CA certificates (PEM) for verifying peers."""
    for pem in ca_pems:
        data = _check_pem(pem, what)
        try:
            context.load_verify_locations(cadata=data.decode("ascii"))
        except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
            raise BadParameter(f"cannot read the {what}: {exc}") from exc


def server_context(
    cert_chain_pem: bytes,
    key_pem: bytes,
    *,
    client_cas: Sequence[bytes] = (),
    require_client_cert: bool = False,
    alpn: Sequence[str] = (),
) -> ssl.SSLContext:
    """A listener's context; asks for client certificates when `client_cas` are given.

    With `client_cas` and not `require_client_cert`, a client may connect without a
    certificate (CERT_OPTIONAL) but one it does send must chain to those CAs.
    """
    if require_client_cert and not client_cas:
        raise BadParameter("requiring client certificates needs the CAs to verify them with")
    context = _base_context(ssl.PROTOCOL_TLS_SERVER)
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    load_certificate_chain(context, cert_chain_pem, key_pem)
    if client_cas:
        _load_cas(context, client_cas, "client CA certificate")
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    else:
        context.verify_mode = ssl.CERT_NONE
    _set_alpn(context, alpn)
    return context


def client_context(
    *,
    ca_pems: Sequence[bytes],
    cert_chain_pem: bytes | None = None,
    key_pem: bytes | None = None,
    alpn: Sequence[str] = (),
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A dialer's context: verifies the server against `ca_pems`, optionally presents a cert.

    With no `ca_pems`, the system's trusted CAs are used (a proxy with a public
    certificate). `check_hostname=False` still verifies the chain; it only skips
    matching the server's name, for peers reached by an address not in their cert.
    """
    if (cert_chain_pem is None) != (key_pem is None):
        raise BadParameter("a client certificate needs both the chain and the key")
    context = _base_context(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    if ca_pems:
        _load_cas(context, ca_pems, "CA certificate")
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cert_chain_pem is not None and key_pem is not None:
        load_certificate_chain(context, cert_chain_pem, key_pem)
    _set_alpn(context, alpn)
    return context


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> x509.Certificate | None:
    """The certificate the peer presented (verified by the context), or None if it sent none."""
    try:
        der = ssl_object.getpeercert(binary_form=True)
    except ValueError as exc:  # "handshake not done yet"
        raise LocalProtocolError(f"no peer certificate before the TLS handshake: {exc}") from exc
    if not der:
        return None
    return load_der_certificate(der)
