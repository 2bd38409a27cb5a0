"""Certificate authorities and certificate verification (PKI layer).

A cluster has three CAs (docs/architecture.md, "Certificate identity"): `user`
signs user and admin certificates, `host` signs auth/proxy/agent certificates,
`db` signs client certificates for self-hosted MongoDB. All are ECDSA P-256 with
SHA-256 signatures and sign leaf certificates directly (path length 0).

Verification always checks, in this order: signed directly by one of the given CA
certificates, the validity period, the extended key usage for the purpose, the
cluster name, then the identity kind. Every refusal is an `AccessDenied` whose
message says what to do.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from wicket.errors import AccessDenied, BadParameter
from wicket.identity import IDENTITY_OID, Identity, IdentityKind, identity_from_certificate
from wicket.pki.clock import Clock, utc_now
from wicket.pki.keys import (
    PublicKey,
    check_public_key,
    generate_private_key,
    load_private_key,
    private_key_pem,
)
from wicket.pki.pem import certificate_pem, load_certificate
from wicket.pki.pin import ca_pin

__all__ = [
    "CAKind",
    "CertificateAuthority",
    "CertificatePurpose",
    "utc_now",
    "verify_certificate",
]

CA_VALIDITY = timedelta(days=3650)
# Certificates start one minute in the past so a peer whose clock lags a little
# does not see a brand-new certificate as "not yet valid".
CLOCK_SKEW = timedelta(minutes=1)
MAX_CA_JSON = 64 * 1024
MAX_SANS = 64
MAX_CLUSTER_NAME = 255


class CAKind(Enum):
    """The three certificate authorities of a cluster."""

    USER = "user"
    HOST = "host"
    DB = "db"


class CertificatePurpose(Enum):
    """Which side of a TLS connection a certificate is presented on (its EKU)."""

    CLIENT = "client"
    SERVER = "server"


_PURPOSE_EKU = {
    CertificatePurpose.CLIENT: ExtendedKeyUsageOID.CLIENT_AUTH,
    CertificatePurpose.SERVER: ExtendedKeyUsageOID.SERVER_AUTH,
}

# Which identities each CA may sign: a user CA never vouches for a host and vice versa.
_KINDS_BY_CA: dict[CAKind, frozenset[IdentityKind]] = {
    CAKind.USER: frozenset({IdentityKind.USER, IdentityKind.ADMIN}),
    CAKind.HOST: frozenset({IdentityKind.HOST}),
    CAKind.DB: frozenset(IdentityKind),
}


def _check_cluster_name(cluster: object) -> str:
    """A cluster name is a non-empty, bounded, printable string."""
    if not isinstance(cluster, str) or not cluster:
        raise BadParameter("cluster name must be a non-empty string")
    if len(cluster) > MAX_CLUSTER_NAME:
        raise BadParameter(f"cluster name is longer than {MAX_CLUSTER_NAME} characters")
    if not cluster.isprintable():
        raise BadParameter("cluster name contains non-printable characters")
    return cluster


def _organization(name: x509.Name) -> str | None:
    """The O attribute of a name, if it has exactly one."""
    values = name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if len(values) != 1:
        return None
    value = values[0].value
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class CertificateAuthority:
    """One of the cluster's CAs: its self-signed certificate and its private key."""

    kind: CAKind
    cluster: str
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)

    @classmethod
    def create(
        cls,
        kind: CAKind,
        cluster: str,
        *,
        clock: Clock = utc_now,
        validity: timedelta = CA_VALIDITY,
    ) -> CertificateAuthority:
        """Make a new self-signed CA (auth service's first start)."""
        _check_cluster_name(cluster)
        if validity <= timedelta(0):
            raise BadParameter("CA validity must be positive")
        key = generate_private_key()
        now = clock()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{cluster} {kind.value} CA"),
            ]
        )
        key_id = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + validity)
            # RFC 5280 4.2.1.9: a CA that signs only end-entity certificates.
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
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
            .add_extension(key_id, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(key_id),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(kind=kind, cluster=cluster, certificate=certificate, private_key=key)

    def cert_pem(self) -> bytes:
        """The CA certificate as PEM (what peers trust)."""
        return certificate_pem(self.certificate)

    def pin(self) -> str:
        """The CA pin (`sha256:...`) as `wctl status` shows it."""
        return ca_pin(self.certificate)

    def to_json(self) -> bytes:
        """The backend form (`/cas/<kind>`): kind, cluster, certificate and key PEM."""
        document = {
            "kind": self.kind.value,
            "cluster": self.cluster,
            "cert_pem": self.cert_pem().decode("ascii"),
            "key_pem": private_key_pem(self.private_key).decode("ascii"),
        }
        return json.dumps(document, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> CertificateAuthority:
        """Load the backend form, checking that key, certificate and names agree."""
        if len(data) > MAX_CA_JSON:
            raise BadParameter(f"CA record is {len(data)} bytes, over {MAX_CA_JSON}")
        try:
            document: Any = json.loads(bytes(data).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise BadParameter(f"CA record is not valid JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise BadParameter("CA record must be a JSON object")
        expected = {"kind", "cluster", "cert_pem", "key_pem"}
        if set(document) != expected:
            raise BadParameter(f"CA record must have exactly the fields {sorted(expected)}")
        if not all(isinstance(document[key], str) for key in expected):
            raise BadParameter("CA record fields must be strings")
        kinds = {kind.value: kind for kind in CAKind}
        if document["kind"] not in kinds:
            raise BadParameter(f"CA kind {document['kind']!r} is not one of {sorted(kinds)}")
        kind = kinds[document["kind"]]
        cluster = _check_cluster_name(document["cluster"])
        certificate = load_certificate(document["cert_pem"].encode("ascii", "replace"))
        key = load_private_key(document["key_pem"].encode("ascii", "replace"))
        if _spki(certificate.public_key()) != _spki(key.public_key()):
            raise BadParameter(f"the {kind.value} CA's private key does not match its certificate")
        if not _is_ca(certificate):
            raise BadParameter(f"the {kind.value} CA certificate is not a CA certificate")
        if _organization(certificate.subject) != cluster:
            raise BadParameter(f"the {kind.value} CA certificate is not for cluster {cluster!r}")
        return cls(kind=kind, cluster=cluster, certificate=certificate, private_key=key)

    def issue(
        self,
        public_key: PublicKey,
        identity: Identity,
        *,
        ttl: timedelta,
        clock: Clock = utc_now,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        server: bool = False,
        client: bool = True,
        subject: x509.Name | None = None,
    ) -> x509.Certificate:
        """Sign a leaf certificate carrying `identity` for `public_key`.

        CN is the identity's name (the host id for hosts), O the cluster. The
        lifetime is `ttl`, capped at the CA's own expiry.
        """
        check_public_key(public_key)
        if identity.cluster != self.cluster:
            raise BadParameter(
                f"identity is for cluster {identity.cluster!r}, this CA is {self.cluster!r}'s"
            )
        if identity.kind not in _KINDS_BY_CA[self.kind]:
            raise BadParameter(
                f"the {self.kind.value} CA does not sign {identity.kind.value} certificates"
            )
        if ttl <= timedelta(0):
            raise BadParameter("certificate TTL must be positive")
        if not (server or client):
            raise BadParameter("a certificate must be usable as a client, a server, or both")
        if len(dns_names) + len(ip_addresses) > MAX_SANS:
            raise BadParameter(f"more than {MAX_SANS} subject alternative names")
        now = clock()
        not_after = min(now + ttl, self.certificate.not_valid_after_utc)
        if not_after <= now:
            raise BadParameter(f"the {self.kind.value} CA of {self.cluster!r} has expired")
        names: list[x509.GeneralName] = [x509.DNSName(_check_dns_name(n)) for n in dns_names]
        names += [x509.IPAddress(_parse_ip(address)) for address in ip_addresses]
        usages = [
            oid
            for wanted, oid in (
                (server, ExtendedKeyUsageOID.SERVER_AUTH),
                (client, ExtendedKeyUsageOID.CLIENT_AUTH),
            )
            if wanted
        ]
        if subject is None:
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.cluster),
                    x509.NameAttribute(NameOID.COMMON_NAME, identity.common_name),
                ]
            )
        issuer_key_id = self.certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    # TLS 1.2 RSA key transport needs it; harmless to omit for EC/Ed25519.
                    key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_key_id),
                critical=False,
            )
            .add_extension(
                x509.UnrecognizedExtension(IDENTITY_OID, identity.to_json()), critical=False
            )
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self.private_key, hashes.SHA256())


def _check_dns_name(name: str) -> str:
    """A DNS SAN: ASCII host name (wildcards allowed), bounded length."""
    if not isinstance(name, str) or not name or len(name) > 253 or not name.isascii():
        raise BadParameter(f"{name!r} is not a valid DNS name for a certificate")
    if any(char.isspace() or char in "/\\@:" for char in name):
        raise BadParameter(f"{name!r} is not a valid DNS name for a certificate")
    return name


def _parse_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IP SAN from its text form."""
    try:
        return ipaddress.ip_address(address)
    except ValueError as exc:
        raise BadParameter(f"{address!r} is not an IP address") from exc


def _spki(key: object) -> bytes:
    """DER SubjectPublicKeyInfo, to compare keys of any type."""
    assert hasattr(key, "public_bytes")
    der: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _is_ca(cert: x509.Certificate) -> bool:
    """Whether a certificate says it is a CA (BasicConstraints cA=TRUE)."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return constraints.ca


def _claimed_cluster(cert: x509.Certificate) -> str | None:
    """The cluster an (unverified) certificate claims; only ever used to word an error."""
    try:
        return identity_from_certificate(cert).cluster
    except AccessDenied:
        return _organization(cert.subject)


def _describe(cert: x509.Certificate) -> str:
    """The subject of a certificate, for error messages."""
    return cert.subject.rfc4514_string() or "(empty subject)"


def _utc_text(moment: datetime) -> str:
    """A timestamp as users read it in error messages."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def verify_certificate(
    cert: x509.Certificate,
    ca: x509.Certificate | Sequence[x509.Certificate],
    *,
    cluster: str,
    kinds: Collection[IdentityKind],
    now: datetime | None = None,
    purpose: CertificatePurpose = CertificatePurpose.CLIENT,
) -> Identity:
    """Check a peer's certificate against the cluster's CA(s); return its Identity.

    Several CA certificates may be given (CA rotation). The returned identity has
    `expires` set to the certificate's notAfter.
    """
    authorities = [ca] if isinstance(ca, x509.Certificate) else list(ca)
    if not authorities:
        raise BadParameter("no CA certificate to verify against")
    when = now if now is not None else utc_now()

    issuer: x509.Certificate | None = None
    for candidate in authorities:
        try:
            cert.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        issuer = candidate
        break
    if issuer is None:
        claimed = _claimed_cluster(cert)
        if claimed is not None and claimed != cluster:
            raise AccessDenied(
                f"certificate is for cluster {claimed!r}, not {cluster!r}; "
                f"log in to {cluster!r} to get a certificate for it"
            )
        raise AccessDenied(
            f"certificate {_describe(cert)!r} is not signed by the {cluster!r} CA "
            f"({', '.join(repr(_describe(a)) for a in authorities)})"
        )
    if not _is_ca(issuer):
        raise AccessDenied(f"issuer {_describe(issuer)!r} is not a CA certificate")
    if not issuer.not_valid_before_utc <= when <= issuer.not_valid_after_utc:
        raise AccessDenied(
            f"the CA certificate {_describe(issuer)!r} is not valid now "
            f"(valid {_utc_text(issuer.not_valid_before_utc)} to "
            f"{_utc_text(issuer.not_valid_after_utc)})"
        )
    if _is_ca(cert):
        raise AccessDenied(f"certificate {_describe(cert)!r} is a CA, not a leaf certificate")

    if when < cert.not_valid_before_utc:
        raise AccessDenied(
            f"certificate is not valid before {_utc_text(cert.not_valid_before_utc)}; "
            "check this machine's clock"
        )
    if when > cert.not_valid_after_utc:
        raise AccessDenied(
            f"certificate expired at {_utc_text(cert.not_valid_after_utc)}; "
            "get a new one (`wsh login` for users)"
        )

    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (x509.ExtensionNotFound, ValueError):
        raise AccessDenied("certificate has no extended key usage") from None
    if _PURPOSE_EKU[purpose] not in usage:
        raise AccessDenied(f"certificate is not valid for TLS {purpose.value} authentication")

    identity = identity_from_certificate(cert)
    if identity.cluster != cluster:
        raise AccessDenied(f"certificate is for cluster {identity.cluster!r}, not {cluster!r}")
    if identity.kind not in kinds:
        wanted = " or ".join(sorted(kind.value for kind in kinds)) or "nothing"
        raise AccessDenied(
            f"a {identity.kind.value} certificate cannot be used here (requires {wanted})"
        )
    return replace(identity, expires=cert.not_valid_after_utc)
