"""Tests of wicket.pki.pin: CA pins as `wctl status` prints and `--ca-pin` checks them."""

from __future__ import annotations

import hashlib
import re

import pytest
from cryptography.hazmat.primitives import serialization

from wicket.errors import AccessDenied, BadParameter
from wicket.pki.authority import CAKind, CertificateAuthority
from wicket.pki.pin import ca_pin, check_pin, parse_pin


@pytest.fixture(scope="module")
def host_ca() -> CertificateAuthority:
    return CertificateAuthority.create(CAKind.HOST, "example")


def test_pin_is_sha256_of_spki(host_ca: CertificateAuthority) -> None:
    spki = host_ca.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pin = ca_pin(host_ca.certificate)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", pin)
    assert pin == "sha256:" + hashlib.sha256(spki).hexdigest()


def test_pin_survives_json_round_trip(host_ca: CertificateAuthority) -> None:
    loaded = CertificateAuthority.from_json(host_ca.to_json())
    assert ca_pin(loaded.certificate) == ca_pin(host_ca.certificate)


def test_matching_pin_accepted(host_ca: CertificateAuthority) -> None:
    pin = ca_pin(host_ca.certificate)
    check_pin(host_ca.certificate, [pin])
    check_pin(host_ca.certificate, [pin.upper().replace("SHA256:", "sha256:")])
    check_pin(host_ca.certificate, ["sha256:" + "0" * 64, pin])  # rotation: any of several


def test_wrong_pin_names_both(host_ca: CertificateAuthority) -> None:
    other = CertificateAuthority.create(CAKind.HOST, "example")
    expected = ca_pin(other.certificate)
    actual = ca_pin(host_ca.certificate)
    with pytest.raises(AccessDenied) as caught:
        check_pin(host_ca.certificate, [expected])
    message = str(caught.value)
    assert expected in message and actual in message
    assert message.index(expected) < message.index(actual)


@pytest.mark.parametrize(
    "pin",
    ["", "sha256:", "sha256:abc", "md5:" + "0" * 64, "sha256:" + "g" * 64, "0" * 64],
)
def test_malformed_pin(host_ca: CertificateAuthority, pin: str) -> None:
    with pytest.raises(BadParameter, match="malformed"):
        check_pin(host_ca.certificate, [pin])
    with pytest.raises(BadParameter):
        parse_pin(pin)


def test_no_pins_is_an_error(host_ca: CertificateAuthority) -> None:
    with pytest.raises(BadParameter, match="no CA pin"):
        check_pin(host_ca.certificate, [])


def test_single_string_accepted(host_ca: CertificateAuthority) -> None:
    check_pin(host_ca.certificate, ca_pin(host_ca.certificate))
