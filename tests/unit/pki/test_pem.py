"""Tests of wicket.pki.pem: bounded certificate parsing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization

from wicket.errors import BadParameter
from wicket.identity import Identity, IdentityKind
from wicket.pki.authority import CAKind, CertificateAuthority
from wicket.pki.keys import generate_private_key
from wicket.pki.pem import (
    MAX_CHAIN_PEM,
    certificate_pem,
    chain_pem,
    load_certificate,
    load_certificates,
    load_der_certificate,
)


def test_chain_round_trip() -> None:
    ca = CertificateAuthority.create(CAKind.USER, "example")
    identity = Identity(cluster="example", kind=IdentityKind.USER, name="alice")
    leaf = ca.issue(generate_private_key().public_key(), identity, ttl=timedelta(hours=1))
    assert load_certificates(chain_pem([leaf, ca.certificate])) == [leaf, ca.certificate]
    assert load_certificate(certificate_pem(leaf)) == leaf
    assert load_der_certificate(leaf.public_bytes(serialization.Encoding.DER)) == leaf
    with pytest.raises(BadParameter, match="more than 1"):
        load_certificate(chain_pem([leaf, ca.certificate]))
    with pytest.raises(BadParameter, match="more than 2"):
        load_certificates(chain_pem([leaf, leaf, leaf]), limit=2)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"junk",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        b"x" * (MAX_CHAIN_PEM + 1),
    ],
)
def test_garbage_refused(data: bytes) -> None:
    with pytest.raises(BadParameter):
        load_certificates(data)
    with pytest.raises(BadParameter):
        load_der_certificate(data)
