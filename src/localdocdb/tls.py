"""TLS material for localdocdb: a private CA and a server certificate, made once per `--tls-dir`.

Files (keys 0600):
- `ca.pem`, `ca-key.pem`      — the CA clients verify the server with (`tlsCAFile`)
- `server.pem`                — server certificate followed by its key (mongod's PEMKeyFile form)
- `server-key.pem`            — the server key alone
- `server-legacy-cn.pem`      — a certificate with only a Common Name and no subjectAltName, the
                                shape of RDS/DocumentDB certificates from before July 2020, served
                                with `--legacy-cn-cert` to reproduce the guide's certificate error.
Existing files are reused, so a client that trusted `ca.pem` keeps trusting a restarted server.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from wicket.errors import BadParameter

CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=825)
SERVER_NAMES = ("localhost",)
SERVER_ADDRESSES = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsMaterial:
    """Paths of the files in a localdocdb TLS directory."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        """The CA certificate clients trust."""
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        """The CA private key (0600)."""
        return self.directory / "ca-key.pem"

    @property
    def server_pem(self) -> Path:
        """Server certificate and key in one file."""
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:
        """The server private key (0600)."""
        return self.directory / "server-key.pem"

    @property
    def legacy_cn_pem(self) -> Path:
        """A server certificate with a Common Name only (no SAN) and its key."""
        return self.directory / "server-legacy-cn.pem"


def write_private(path: Path, data: bytes) -> None:
    """Write a file that holds a secret: created 0600, replaced atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _make_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "localdocdb"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue_certificate(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    *,
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
    server: bool = True,
    client: bool = False,
    validity: datetime.timedelta = LEAF_VALIDITY,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Issue a leaf certificate from the CA; no SAN extension when no names are given."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(addr)) for addr in ip_addresses]
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def load_ca(material: TlsMaterial) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Read the CA certificate and key of a TLS directory."""
    cert = x509.load_pem_x509_certificate(material.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(material.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise BadParameter(f"{material.ca_key}: expected an EC private key")
    return cert, key


def ensure_tls_material(directory: Path) -> TlsMaterial:
    """Create the CA and server certificates in `directory` unless they exist already."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    material = TlsMaterial(directory)
    if not (material.ca_cert.exists() and material.ca_key.exists()):
        ca_cert, ca_key = _make_ca("localdocdb CA")
        write_private(material.ca_key, _key_pem(ca_key))
        material.ca_cert.write_bytes(_cert_pem(ca_cert))
        for stale in (material.server_pem, material.server_key, material.legacy_cn_pem):
            stale.unlink(missing_ok=True)
    ca_cert, ca_key = load_ca(material)
    if not (material.server_pem.exists() and material.server_key.exists()):
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "localdocdb"),
                x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
            ]
        )
        cert, key = issue_certificate(
            ca_cert, ca_key, subject, dns_names=SERVER_NAMES, ip_addresses=SERVER_ADDRESSES
        )
        write_private(material.server_key, _key_pem(key))
        write_private(material.server_pem, _cert_pem(cert) + _key_pem(key))
    if not material.legacy_cn_pem.exists():
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        cert, key = issue_certificate(ca_cert, ca_key, subject)
        write_private(material.legacy_cn_pem, _cert_pem(cert) + _key_pem(key))
    return material


def issue_client_certificate(material: TlsMaterial, subject: str, out: Path) -> None:
    """Write a client certificate+key PEM for MONGODB-X509 (subject in RFC 4514 form)."""
    ca_cert, ca_key = load_ca(material)
    try:
        name = x509.Name.from_rfc4514_string(subject)
    except ValueError as exc:
        raise BadParameter(f"subject {subject!r} is not an RFC 4514 name: {exc}") from exc
    cert, key = issue_certificate(ca_cert, ca_key, name, server=False, client=True)
    write_private(out, _cert_pem(cert) + _key_pem(key))


def server_ssl_context(
    material: TlsMaterial,
    *,
    legacy_cn: bool = False,
    client_ca: Path | None = None,
    request_client_certificates: bool = False,
) -> ssl.SSLContext:
    """The server's TLS context; client certificates are asked for only in mongodb mode."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    certfile = material.legacy_cn_pem if legacy_cn else material.server_pem
    context.load_cert_chain(certfile)
    if request_client_certificates:
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cafile=str(client_ca or material.ca_cert))
    return context
