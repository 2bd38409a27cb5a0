"""Tests of wicket.pki.authority: CA creation, issuing and verification."""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from wicket.errors import AccessDenied, BadParameter
from wicket.identity import IDENTITY_OID, DatabaseRoute, HostRole, Identity, IdentityKind
from wicket.pki.authority import (
    CLOCK_SKEW,
    CAKind,
    CertificateAuthority,
    CertificatePurpose,
    verify_certificate,
)
from wicket.pki.keys import generate_private_key
from wicket.pki.pin import ca_pin

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ALICE = Identity(
    cluster="example",
    kind=IdentityKind.USER,
    name="alice",
    roles=("access",),
    traits={"db_users": ("teleport-docdb-user",), "db_names": ("test",)},
)
AGENT = Identity(
    cluster="example", kind=IdentityKind.HOST, name="db-1", host_id="host-42", host_role=HostRole.DB
)


@pytest.fixture(scope="module")
def user_ca() -> CertificateAuthority:
    return CertificateAuthority.create(CAKind.USER, "example", clock=lambda: NOW)


@pytest.fixture(scope="module")
def host_ca() -> CertificateAuthority:
    return CertificateAuthority.create(CAKind.HOST, "example", clock=lambda: NOW)


def issue_alice(ca: CertificateAuthority, **kwargs: object) -> x509.Certificate:
    key = generate_private_key()
    options: dict[str, object] = {"ttl": timedelta(hours=12), "clock": lambda: NOW} | kwargs
    return ca.issue(key.public_key(), ALICE, **options)  # type: ignore[arg-type]


def test_ca_certificate_shape(user_ca: CertificateAuthority) -> None:
    cert = user_ca.certificate
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "example user CA"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "example"
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    assert cert.not_valid_before_utc == NOW - CLOCK_SKEW
    assert cert.not_valid_after_utc == NOW + timedelta(days=3650)
    assert isinstance(user_ca.private_key.curve, ec.SECP256R1)
    cert.verify_directly_issued_by(cert)
    assert "private_key" not in repr(user_ca)
    assert user_ca.pin() == ca_pin(cert)


def test_ca_json_round_trip(host_ca: CertificateAuthority) -> None:
    data = host_ca.to_json()
    assert set(json.loads(data)) == {"kind", "cluster", "cert_pem", "key_pem"}
    loaded = CertificateAuthority.from_json(data)
    assert loaded.kind is CAKind.HOST and loaded.cluster == "example"
    assert loaded.certificate == host_ca.certificate
    assert loaded.private_key.private_numbers() == host_ca.private_key.private_numbers()
    # The loaded CA signs certificates the original's certificate verifies.
    key = generate_private_key()
    cert = loaded.issue(key.public_key(), AGENT, ttl=timedelta(days=365), clock=lambda: NOW)
    assert verify_certificate(
        cert, host_ca.certificate, cluster="example", kinds={IdentityKind.HOST}, now=NOW
    ).host_id == ("host-42")


def test_ca_json_rejects_inconsistent_records(
    user_ca: CertificateAuthority, host_ca: CertificateAuthority
) -> None:
    record = json.loads(user_ca.to_json())
    swapped = record | {"key_pem": json.loads(host_ca.to_json())["key_pem"]}
    with pytest.raises(BadParameter, match="does not match"):
        CertificateAuthority.from_json(json.dumps(swapped).encode())
    with pytest.raises(BadParameter, match="not for cluster"):
        CertificateAuthority.from_json(json.dumps(record | {"cluster": "other"}).encode())
    with pytest.raises(BadParameter, match="kind"):
        CertificateAuthority.from_json(json.dumps(record | {"kind": "root"}).encode())
    with pytest.raises(BadParameter, match="exactly the fields"):
        CertificateAuthority.from_json(json.dumps(record | {"extra": "1"}).encode())
    with pytest.raises(BadParameter):
        CertificateAuthority.from_json(json.dumps(record | {"cert_pem": "junk"}).encode())
    for garbage in (b"", b"[]", b"\xff", b"{" * 10):
        with pytest.raises(BadParameter):
            CertificateAuthority.from_json(garbage)


def test_user_certificate_contents(user_ca: CertificateAuthority) -> None:
    route = DatabaseRoute("my-docdb", "mongodb", "teleport-docdb-user", "test")
    key = generate_private_key()
    cert = user_ca.issue(
        key.public_key(), ALICE.with_route(route), ttl=timedelta(hours=12), clock=lambda: NOW
    )
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "example"
    assert cert.issuer == user_ca.certificate.subject
    assert cert.not_valid_before_utc == NOW - timedelta(minutes=1)
    assert cert.not_valid_after_utc == NOW + timedelta(hours=12)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = user_ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    identity = json.loads(cert.extensions.get_extension_for_oid(IDENTITY_OID).value.value)  # type: ignore[attr-defined]
    assert identity["route"]["service"] == "my-docdb"
    other = user_ca.issue(key.public_key(), ALICE, ttl=timedelta(hours=1), clock=lambda: NOW)
    assert other.serial_number != cert.serial_number


def test_host_certificate_sans_and_server_usage(host_ca: CertificateAuthority) -> None:
    proxy = Identity(
        cluster="example",
        kind=IdentityKind.HOST,
        name="proxy",
        host_id="proxy-host-1",
        host_role=HostRole.PROXY,
    )
    key = generate_private_key()
    cert = host_ca.issue(
        key.public_key(),
        proxy,
        ttl=timedelta(days=365),
        clock=lambda: NOW,
        dns_names=["proxy.example.com", "localhost"],
        ip_addresses=["127.0.0.1", "::1"],
        server=True,
    )
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "proxy-host-1"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["proxy.example.com", "localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    usage = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usage == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    identity = verify_certificate(
        cert,
        host_ca.certificate,
        cluster="example",
        kinds={IdentityKind.HOST},
        now=NOW,
        purpose=CertificatePurpose.SERVER,
    )
    assert identity.host_role is HostRole.PROXY


def test_issue_refuses_wrong_inputs(
    user_ca: CertificateAuthority, host_ca: CertificateAuthority
) -> None:
    key = generate_private_key().public_key()
    with pytest.raises(BadParameter, match="does not sign host"):
        user_ca.issue(key, AGENT, ttl=timedelta(hours=1))
    with pytest.raises(BadParameter, match="does not sign user"):
        host_ca.issue(key, ALICE, ttl=timedelta(hours=1))
    other = Identity(cluster="elsewhere", kind=IdentityKind.USER, name="bob")
    with pytest.raises(BadParameter, match="cluster 'elsewhere'"):
        user_ca.issue(key, other, ttl=timedelta(hours=1))
    with pytest.raises(BadParameter, match="positive"):
        user_ca.issue(key, ALICE, ttl=timedelta(0))
    with pytest.raises(BadParameter, match="client, a server"):
        user_ca.issue(key, ALICE, ttl=timedelta(hours=1), client=False)
    with pytest.raises(BadParameter, match="not an IP"):
        host_ca.issue(key, AGENT, ttl=timedelta(hours=1), ip_addresses=["localhost"])
    with pytest.raises(BadParameter, match="DNS name"):
        host_ca.issue(key, AGENT, ttl=timedelta(hours=1), dns_names=["a b"])
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505 (the point)
    with pytest.raises(BadParameter, match="RSA 1024"):
        user_ca.issue(weak, ALICE, ttl=timedelta(hours=1))


def test_ttl_capped_at_ca_expiry() -> None:
    ca = CertificateAuthority.create(
        CAKind.USER, "example", clock=lambda: NOW, validity=timedelta(hours=2)
    )
    cert = issue_alice(ca, ttl=timedelta(days=30))
    assert cert.not_valid_after_utc == ca.certificate.not_valid_after_utc
    with pytest.raises(BadParameter, match="expired"):
        issue_alice(ca, clock=lambda: NOW + timedelta(hours=3))


def test_ed25519_and_rsa_subject_keys(user_ca: CertificateAuthority) -> None:
    for key in (
        ed25519.Ed25519PrivateKey.generate(),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ):
        cert = user_ca.issue(key.public_key(), ALICE, ttl=timedelta(hours=1), clock=lambda: NOW)
        identity = verify_certificate(
            cert, user_ca.certificate, cluster="example", kinds={IdentityKind.USER}, now=NOW
        )
        assert identity.name == "alice"


def test_verify_returns_identity_with_expiry(user_ca: CertificateAuthority) -> None:
    cert = issue_alice(user_ca)
    identity = verify_certificate(
        cert, user_ca.certificate, cluster="example", kinds={IdentityKind.USER}, now=NOW
    )
    assert identity == ALICE
    assert identity.expires == NOW + timedelta(hours=12)


def test_user_certificate_refused_where_host_required(
    user_ca: CertificateAuthority, host_ca: CertificateAuthority
) -> None:
    cert = issue_alice(user_ca)
    with pytest.raises(AccessDenied, match="not signed by"):
        verify_certificate(
            cert, host_ca.certificate, cluster="example", kinds={IdentityKind.HOST}, now=NOW
        )
    with pytest.raises(
        AccessDenied, match=r"a user certificate cannot be used here \(requires host\)"
    ):
        verify_certificate(
            cert,
            [host_ca.certificate, user_ca.certificate],
            cluster="example",
            kinds={IdentityKind.HOST},
            now=NOW,
        )


def test_expired_and_not_yet_valid() -> None:
    user_ca = CertificateAuthority.create(
        CAKind.USER, "example", clock=lambda: NOW - timedelta(days=1)
    )
    cert = issue_alice(user_ca, ttl=timedelta(hours=1))
    later = NOW + timedelta(hours=1, seconds=1)
    with pytest.raises(AccessDenied, match="certificate expired at 2026-06-01 13:00:00 UTC"):
        verify_certificate(
            cert, user_ca.certificate, cluster="example", kinds={IdentityKind.USER}, now=later
        )
    earlier = NOW - timedelta(minutes=2)
    with pytest.raises(AccessDenied, match="not valid before"):
        verify_certificate(
            cert, user_ca.certificate, cluster="example", kinds={IdentityKind.USER}, now=earlier
        )
    # Within the one-minute skew allowance it is valid.
    verify_certificate(
        cert,
        user_ca.certificate,
        cluster="example",
        kinds={IdentityKind.USER},
        now=NOW - timedelta(seconds=30),
    )


def test_certificate_from_another_cluster(user_ca: CertificateAuthority) -> None:
    other_ca = CertificateAuthority.create(CAKind.USER, "other", clock=lambda: NOW)
    bob = Identity(cluster="other", kind=IdentityKind.USER, name="bob")
    cert = other_ca.issue(generate_private_key().public_key(), bob, ttl=timedelta(hours=1))
    with pytest.raises(AccessDenied, match="certificate is for cluster 'other', not 'example'"):
        verify_certificate(cert, user_ca.certificate, cluster="example", kinds={IdentityKind.USER})


def test_same_name_different_ca_refused(user_ca: CertificateAuthority) -> None:
    impostor = CertificateAuthority.create(CAKind.USER, "example", clock=lambda: NOW)
    cert = issue_alice(impostor)
    with pytest.raises(AccessDenied, match="not signed by the 'example' CA"):
        verify_certificate(
            cert, user_ca.certificate, cluster="example", kinds={IdentityKind.USER}, now=NOW
        )


def test_cluster_mismatch_after_valid_chain(user_ca: CertificateAuthority) -> None:
    cert = issue_alice(user_ca)
    with pytest.raises(AccessDenied, match="certificate is for cluster 'example', not 'prod'"):
        verify_certificate(
            cert, user_ca.certificate, cluster="prod", kinds={IdentityKind.USER}, now=NOW
        )


def test_purpose_checked(user_ca: CertificateAuthority) -> None:
    cert = issue_alice(user_ca)
    with pytest.raises(AccessDenied, match="TLS server authentication"):
        verify_certificate(
            cert,
            user_ca.certificate,
            cluster="example",
            kinds={IdentityKind.USER},
            now=NOW,
            purpose=CertificatePurpose.SERVER,
        )


def test_ca_certificate_itself_is_not_a_client(user_ca: CertificateAuthority) -> None:
    with pytest.raises(AccessDenied, match="is a CA"):
        verify_certificate(
            user_ca.certificate,
            user_ca.certificate,
            cluster="example",
            kinds={IdentityKind.USER},
            now=NOW,
        )


def test_expired_ca_refused(user_ca: CertificateAuthority) -> None:
    cert = issue_alice(user_ca)
    with pytest.raises(AccessDenied, match=r"CA certificate .* is not valid now"):
        verify_certificate(
            cert,
            user_ca.certificate,
            cluster="example",
            kinds={IdentityKind.USER},
            now=NOW + timedelta(days=3651),
        )


def test_admin_identity(user_ca: CertificateAuthority) -> None:
    admin = Identity(
        cluster="example", kind=IdentityKind.ADMIN, name="wicket-admin", roles=("editor",)
    )
    cert = user_ca.issue(
        generate_private_key().public_key(), admin, ttl=timedelta(days=365), clock=lambda: NOW
    )
    identity = verify_certificate(
        cert,
        user_ca.certificate,
        cluster="example",
        kinds={IdentityKind.USER, IdentityKind.ADMIN},
        now=NOW,
    )
    assert identity.kind is IdentityKind.ADMIN
    with pytest.raises(AccessDenied, match="admin certificate cannot be used here"):
        verify_certificate(
            cert, user_ca.certificate, cluster="example", kinds={IdentityKind.USER}, now=NOW
        )
