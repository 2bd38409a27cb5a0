"""Certificate PEM encoding and bounded parsing (PKI layer).

Certificates arrive from peers (the proxy forwards a user's chain to the agent,
login returns a chain to `wsh`), so parsing checks sizes and counts before work
and turns cryptography's exceptions into `BadParameter`.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from wicket.errors import BadParameter

MAX_CHAIN_PEM = 64 * 1024
MAX_CHAIN_LENGTH = 8


def certificate_pem(cert: x509.Certificate) -> bytes:
    """One certificate as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def chain_pem(certs: Sequence[x509.Certificate]) -> bytes:
    """Several certificates as concatenated PEM, leaf first."""
    return b"".join(certificate_pem(cert) for cert in certs)


def load_certificates(pem: bytes, *, limit: int = MAX_CHAIN_LENGTH) -> list[x509.Certificate]:
    """Parse one or more PEM certificates (leaf first); at least one, at most `limit`."""
    if len(pem) > MAX_CHAIN_PEM:
        raise BadParameter(f"certificate PEM is {len(pem)} bytes, over {MAX_CHAIN_PEM}")
    if pem.count(b"-----BEGIN CERTIFICATE-----") > limit:
        raise BadParameter(f"more than {limit} certificates in one PEM")
    try:
        certs = x509.load_pem_x509_certificates(bytes(pem))
    except ValueError as exc:
        raise BadParameter(f"cannot read the certificate PEM: {exc}") from exc
    if not certs:
        raise BadParameter("no certificate in the PEM")
    return certs


def load_certificate(pem: bytes) -> x509.Certificate:
    """Parse exactly one PEM certificate."""
    certs = load_certificates(pem, limit=1)
    if len(certs) != 1:
        raise BadParameter(f"expected one certificate, found {len(certs)}")
    return certs[0]


def load_der_certificate(der: bytes) -> x509.Certificate:
    """Parse one DER certificate (as the TLS layer hands it over)."""
    if len(der) > MAX_CHAIN_PEM:
        raise BadParameter(f"certificate is {len(der)} bytes, over {MAX_CHAIN_PEM}")
    try:
        return x509.load_der_x509_certificate(bytes(der))
    except ValueError as exc:
        raise BadParameter(f"cannot read the DER certificate: {exc}") from exc
