"""MONGODB-X509 subject names, in MongoDB's RFC 2253 order."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from localdocdb.auth.x509 import X509AuthError, authenticate_subject, subject_name


def _certificate_der(attributes: list[x509.NameAttribute[Any]]) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(attributes)
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


def test_subject_is_most_specific_first() -> None:
    der = _certificate_der(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "NY"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "New York"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example, Inc."),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "eng"),
            x509.NameAttribute(NameOID.COMMON_NAME, "alice"),
        ]
    )
    assert subject_name(der) == "CN=alice,OU=eng,O=Example\\, Inc.,L=New York,ST=NY,C=US"


def test_openssl_short_names() -> None:
    der = _certificate_der(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Org"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@example.com"),
            x509.NameAttribute(NameOID.COMMON_NAME, "bob"),
        ]
    )
    assert subject_name(der) == "CN=bob,emailAddress=a@example.com,O=Org"


def test_requested_user_must_match() -> None:
    der = _certificate_der([x509.NameAttribute(NameOID.COMMON_NAME, "carol")])
    assert authenticate_subject(der, None) == "CN=carol"
    assert authenticate_subject(der, "CN=carol") == "CN=carol"
    with pytest.raises(X509AuthError, match="does not match"):
        authenticate_subject(der, "CN=mallory")


def test_no_or_bad_certificate() -> None:
    with pytest.raises(X509AuthError, match="presented none"):
        subject_name(None)
    with pytest.raises(X509AuthError):
        subject_name(b"\x30\x03\x02\x01\x00")
