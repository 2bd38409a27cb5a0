"""CA pins (PKI layer): the `sha256:<hex>` fingerprint joining hosts and `wsh` check.

A pin is the SHA-256 of the CA certificate's SubjectPublicKeyInfo (DER), the same
scheme as Teleport's `--ca-pin` (docs/architecture.md). Pinning the key rather than
the certificate lets a CA certificate be re-issued for the same key without
breaking every configured pin.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from wicket.errors import AccessDenied, BadParameter

PIN_PREFIX = "sha256:"
_PIN_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")
MAX_PINS = 16


def ca_pin(cert: x509.Certificate) -> str:
    """The pin of a CA certificate: "sha256:" + hex SHA-256 of its SubjectPublicKeyInfo."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PIN_PREFIX + hashlib.sha256(spki).hexdigest()


def parse_pin(value: str) -> str:
    """Validate a pin given by a user or a config file and return its canonical form."""
    if not isinstance(value, str):
        raise BadParameter(f"CA pin must be a string, not {type(value).__name__}")
    canonical = value.strip().lower()
    if not _PIN_PATTERN.fullmatch(canonical):
        shown = value if len(value) <= 80 else value[:80] + "..."
        raise BadParameter(
            f"CA pin {shown!r} is malformed: expected 'sha256:' followed by 64 hex digits "
            "(as printed by `wctl status`)"
        )
    return canonical


def check_pin(cert: x509.Certificate, pins: Sequence[str]) -> None:
    """Refuse a CA certificate whose pin is not one of `pins` (several during CA rotation)."""
    if isinstance(pins, str):
        pins = [pins]
    if not pins:
        raise BadParameter("no CA pin given to check against")
    if len(pins) > MAX_PINS:
        raise BadParameter(f"more than {MAX_PINS} CA pins given")
    expected = [parse_pin(pin) for pin in pins]
    actual = ca_pin(cert)
    if actual not in expected:
        raise AccessDenied(
            f"CA pin mismatch: expected {' or '.join(expected)}, "
            f"but the cluster presented {actual}; if the cluster's CA really changed, "
            "check the new pin with the cluster administrator (`wctl status`)"
        )
