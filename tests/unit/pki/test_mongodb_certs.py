"""Certificates for self-hosted MongoDB from the database CA: subjects, SANs, usages, TTLs."""

from __future__ import annotations

import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from wicket.errors import BadParameter
from wicket.pki.authority import CAKind, CertificateAuthority
from wicket.pki.keys import load_private_key
from wicket.pki.mongodb import (
    issue_mongodb_client_certificate,
    issue_mongodb_server_certificate,
    mongodb_subject,
    mongodb_user_name,
)

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def db_ca() -> CertificateAuthority:
    return CertificateAuthority.create(CAKind.DB, "example", clock=lambda: NOW - timedelta(days=1))


def usages(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


@pytest.mark.parametrize(
    ("db_user", "subject"),
    [
        ("alice", "CN=alice"),
        ("CN=alice,O=Example", "CN=alice,O=Example"),
        ("CN=bob,OU=eng,O=Example,C=US", "CN=bob,OU=eng,O=Example,C=US"),
        ("teleport-docdb-user", "CN=teleport-docdb-user"),
    ],
)
def test_client_certificate_subject_is_the_db_user(
    db_ca: CertificateAuthority, db_user: str, subject: str
) -> None:
    cert_pem, key_pem = issue_mongodb_client_certificate(
        db_ca, db_user, ttl=timedelta(hours=1), clock=lambda: NOW
    )
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert mongodb_user_name(cert) == subject
    assert usages(cert) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cert.not_valid_after_utc == NOW + timedelta(hours=1)
    cert.verify_directly_issued_by(db_ca.certificate)
    key = load_private_key(key_pem)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("db_user", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("CN=a,=b", "RFC 4514"),
        ("bad\x00user", "control"),
        ("x" * 65, "cannot be a certificate CN"),
        ("x" * 2000, "longer than"),
    ],
)
def test_bad_db_users(db_ca: CertificateAuthority, db_user: str, fragment: str) -> None:
    with pytest.raises(BadParameter, match=fragment):
        mongodb_subject(db_user) if len(db_user) < 1025 else issue_mongodb_client_certificate(
            db_ca, db_user, ttl=timedelta(hours=1)
        )


def test_client_ttl_bounds(db_ca: CertificateAuthority) -> None:
    with pytest.raises(BadParameter, match="positive"):
        issue_mongodb_client_certificate(db_ca, "alice", ttl=timedelta(0))
    with pytest.raises(BadParameter, match="maximum"):
        issue_mongodb_client_certificate(db_ca, "alice", ttl=timedelta(days=2))


def test_only_the_db_ca_signs_mongodb_certificates() -> None:
    user_ca = CertificateAuthority.create(CAKind.USER, "example")
    with pytest.raises(BadParameter, match="database CA"):
        issue_mongodb_client_certificate(user_ca, "alice", ttl=timedelta(hours=1))
    with pytest.raises(BadParameter, match="database CA"):
        issue_mongodb_server_certificate(user_ca, ["db"], ttl=timedelta(hours=1))


def test_server_certificate_sans_and_usages(db_ca: CertificateAuthority) -> None:
    cert_pem, _ = issue_mongodb_server_certificate(
        db_ca,
        ["DB.example.com", "10.0.0.5", "[::1]", "db.example.com", "mongo-0"],
        ttl=timedelta(hours=2190),
        clock=lambda: NOW,
    )
    cert = x509.load_pem_x509_certificate(cert_pem)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["db.example.com", "mongo-0"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.5", "::1"]
    assert usages(cert) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cert.subject.rfc4514_string() == "CN=db.example.com,OU=wicket-mongodb-server,O=example"
    assert cert.not_valid_after_utc == NOW + timedelta(hours=2190)


def test_server_certificate_needs_hosts(db_ca: CertificateAuthority) -> None:
    with pytest.raises(BadParameter, match="at least one"):
        issue_mongodb_server_certificate(db_ca, [" ", ""], ttl=timedelta(hours=1))


def test_server_certificate_works_in_a_tls_handshake(tmp_path: Path) -> None:
    """A Python server loads the files; a client trusting the db CA verifies the name."""
    db_ca = CertificateAuthority.create(CAKind.DB, "example")
    cert_pem, key_pem = issue_mongodb_server_certificate(
        db_ca, ["localhost", "127.0.0.1"], ttl=timedelta(hours=1)
    )
    (tmp_path / "server.crt").write_bytes(cert_pem + key_pem)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "server.crt")
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.hostname_checks_common_name = False
    client_context.load_verify_locations(cadata=db_ca.cert_pem().decode())
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            connection, _ = listener.accept()
            with server_context.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"ok")

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            client_context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.recv(2) == b"ok"
        thread.join(timeout=5)
