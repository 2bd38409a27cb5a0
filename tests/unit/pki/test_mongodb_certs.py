"""Certificates for self-hosted MongoDB from the database CA, and `wctl auth sign --format=mongodb`.

The CLI tests run on an auth host's real SQLite backend.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from wicket.authserver.cluster import ClusterAuthorities, load_or_create
from wicket.backend.sqlite import SQLiteBackend
from wicket.cli.wctl import cli as wctl_cli
from wicket.cli.wctl_auth import auth_group
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


# --- wctl auth sign --------------------------------------------------------------------

# The real wctl, which registers the auth group (a copy of the root would make click cache
# the auth group's help option under the wrong parent).
WCTL = wctl_cli
assert WCTL.commands["auth"] is auth_group


def write_config(tmp_path: Path, *, auth: bool = True) -> Path:
    config = tmp_path / "wicket.yaml"
    service = "auth_service: {enabled: true, cluster_name: example.com}\n"
    if not auth:
        service = "db_service: {enabled: true}\nwicket: {auth_token: x, proxy_server: p:3080}\n"
        config.write_text("version: v1\n" + service)
        return config
    config.write_text(f"version: v1\nwicket: {{data_dir: {tmp_path / 'data'}}}\n" + service)
    return config


def make_dir(path: Path) -> Path:
    path.mkdir(mode=0o700)
    return path


async def create_cluster(data_dir: Path) -> ClusterAuthorities:
    backend = await SQLiteBackend.open(data_dir / "backend.sqlite")
    try:
        return await load_or_create(backend, "example.com")
    finally:
        await backend.close()


def sign(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(WCTL, ["-c", str(config), "auth", "sign", *args])
    return result.exit_code, result.output


def test_sign_writes_files_mongod_can_use(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    cluster = asyncio.run(create_cluster(make_dir(tmp_path / "data")))
    prefix = tmp_path / "out" / "mongo"
    code, output = sign(
        config, "--format=mongodb", "--host=localhost,127.0.0.1", f"--out={prefix}", "--ttl=24h"
    )
    assert code == 0, output
    crt, cas = Path(f"{prefix}.crt"), Path(f"{prefix}.cas")
    for path in (crt, cas):
        assert path.stat().st_mode & 0o777 == 0o600
    assert cas.read_bytes() == cluster.db.cert_pem()
    # mongod's certificateKeyFile: certificate and key in one PEM, loadable by a TLS server
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(crt)
    certificate = x509.load_pem_x509_certificate(crt.read_bytes())
    certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(cas.read_bytes()))
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert timedelta(hours=24) <= lifetime <= timedelta(hours=24, minutes=2)
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    # a client trusting the .cas file accepts the server by name
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cafile=str(cas))
    assert "mode: requireTLS" in output
    assert f"certificateKeyFile: {crt}" in output
    assert f"CAFile: {cas}" in output
    assert "authorization: enabled" in output
    assert "tls.ca_cert_file" in output


def test_default_ttl_is_2190h(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    asyncio.run(create_cluster(make_dir(tmp_path / "data")))
    code, output = sign(config, "--format=mongodb", "--host=db", f"--out={tmp_path / 'x'}")
    assert code == 0, output
    certificate = x509.load_pem_x509_certificate((tmp_path / "x.crt").read_bytes())
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert timedelta(hours=2190) <= lifetime <= timedelta(hours=2190, minutes=2)


def test_not_on_the_auth_host(tmp_path: Path) -> None:
    code, output = sign(
        write_config(tmp_path, auth=False), "--format=mongodb", "--host=db", "--out=x"
    )
    assert code == 1
    assert output.startswith("wctl: wctl auth sign needs the database CA's private key")
    assert "auth host" in output


def test_auth_service_never_started(tmp_path: Path) -> None:
    code, output = sign(write_config(tmp_path), "--format=mongodb", "--host=db", "--out=x")
    assert code == 1
    assert "start the auth service once" in output
    assert not (tmp_path / "data").exists()  # nothing created by a failed sign


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--format=pem", "--host=db", "--out=x"], "--format"),
        (["--format=mongodb", "--host=,", "--out=x"], "at least one host"),
        (["--format=mongodb", "--host=db", "--out=x", "--ttl=soon"], "invalid duration"),
        (["--format=mongodb", "--out=x"], "--host"),
    ],
)
def test_usage_errors(tmp_path: Path, args: list[str], fragment: str) -> None:
    code, output = sign(write_config(tmp_path), *args)
    assert code == 2
    assert fragment in output
