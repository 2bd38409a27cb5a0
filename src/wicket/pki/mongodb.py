"""PKI layer: certificates from the cluster's database CA for self-hosted MongoDB with X.509.

- Client certificates: the agent authenticates to MongoDB as the session's db user
  with MONGODB-X509, so the certificate's subject *is* that user as MongoDB names it
  (the RFC 2253 string of the subject). A db user written as an RFC 4514 DN
  (`CN=alice,OU=eng,O=Example`) is used as the subject verbatim; any other name
  becomes `CN=<name>`. Short-lived (the engine asks for about an hour), clientAuth only.
- Server certificates for mongod (`wctl auth sign --format=mongodb`): SANs for every
  host name and address, serverAuth and clientAuth (mongod also presents its
  certificateKeyFile to other members). Its subject carries an OU that no client
  certificate of ours has, so MongoDB never mistakes a client for a cluster member
  (it compares O/OU/DC of the two).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import timedelta

from cryptography import x509
from cryptography.x509.oid import NameOID

from wicket.errors import BadParameter
from wicket.identity import HostRole, Identity, IdentityKind
from wicket.pki.authority import CAKind, CertificateAuthority
from wicket.pki.clock import Clock, utc_now
from wicket.pki.keys import generate_private_key, private_key_pem
from wicket.pki.pem import certificate_pem

MAX_DB_USER = 1024
MAX_CLIENT_TTL = timedelta(days=1)
MAX_SERVER_TTL = timedelta(days=3650)
SERVER_UNIT = "wicket-mongodb-server"


def mongodb_subject(db_user: str) -> x509.Name:
    """The certificate subject for a MongoDB `$external` user name."""
    if not isinstance(db_user, str) or not db_user.strip():
        raise BadParameter("the database user name is empty")
    if len(db_user) > MAX_DB_USER:
        raise BadParameter(f"the database user name is longer than {MAX_DB_USER} characters")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in db_user):
        raise BadParameter("the database user name contains control characters")
    if "=" in db_user:
        try:
            name = x509.Name.from_rfc4514_string(db_user)
        except ValueError as exc:
            raise BadParameter(
                f"database user {db_user!r} looks like a DN but is not RFC 4514: {exc}"
            ) from None
        if not name.rdns:
            raise BadParameter(f"database user {db_user!r} is an empty DN")
        return name
    try:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, db_user)])
    except ValueError as exc:  # e.g. a CN longer than X.509's 64 characters
        raise BadParameter(f"database user {db_user!r} cannot be a certificate CN: {exc}") from None


def mongodb_user_name(certificate: x509.Certificate) -> str:
    """The `$external` user name MongoDB derives from a certificate (RFC 2253 subject)."""
    return certificate.subject.rfc4514_string()


def _check_db_ca(db_ca: CertificateAuthority) -> None:
    if db_ca.kind is not CAKind.DB:
        raise BadParameter(
            f"MongoDB certificates come from the database CA, not the {db_ca.kind.value} CA"
        )


def _check_ttl(ttl: timedelta, maximum: timedelta, what: str) -> None:
    if ttl <= timedelta(0):
        raise BadParameter(f"{what} TTL must be positive")
    if ttl > maximum:
        raise BadParameter(f"{what} TTL {ttl} is longer than the maximum {maximum}")


def issue_mongodb_client_certificate(
    db_ca: CertificateAuthority,
    db_user: str,
    *,
    ttl: timedelta,
    clock: Clock = utc_now,
) -> tuple[bytes, bytes]:
    """A short-lived client certificate whose subject is `db_user`; (cert PEM, key PEM)."""
    _check_db_ca(db_ca)
    _check_ttl(ttl, MAX_CLIENT_TTL, "client certificate")
    subject = mongodb_subject(db_user)
    key = generate_private_key()
    identity = Identity(cluster=db_ca.cluster, kind=IdentityKind.USER, name=db_user)
    certificate = db_ca.issue(
        key.public_key(),
        identity,
        ttl=ttl,
        clock=clock,
        client=True,
        server=False,
        subject=subject,
    )
    return certificate_pem(certificate), private_key_pem(key)


def split_hosts(hosts: Sequence[str]) -> tuple[list[str], list[str]]:
    """Host names and IP addresses, for a server certificate's SANs."""
    dns_names: list[str] = []
    addresses: list[str] = []
    for raw in hosts:
        host = raw.strip().strip("[]")
        if not host:
            continue
        try:
            addresses.append(str(ipaddress.ip_address(host)))
        except ValueError:
            dns_names.append(host.lower())
    return list(dict.fromkeys(dns_names)), list(dict.fromkeys(addresses))


def issue_mongodb_server_certificate(
    db_ca: CertificateAuthority,
    hosts: Sequence[str],
    *,
    ttl: timedelta,
    clock: Clock = utc_now,
) -> tuple[bytes, bytes]:
    """A mongod server certificate for `hosts` (names and IPs, all as SANs); (cert, key)."""
    _check_db_ca(db_ca)
    _check_ttl(ttl, MAX_SERVER_TTL, "server certificate")
    dns_names, addresses = split_hosts(hosts)
    if not dns_names and not addresses:
        raise BadParameter("a server certificate needs at least one host name or address")
    common_name = (dns_names or addresses)[0]
    key = generate_private_key()
    identity = Identity(
        cluster=db_ca.cluster,
        kind=IdentityKind.HOST,
        name=common_name,
        host_id=common_name,
        host_role=HostRole.DB,
    )
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, db_ca.cluster),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, SERVER_UNIT),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    certificate = db_ca.issue(
        key.public_key(),
        identity,
        ttl=ttl,
        clock=clock,
        dns_names=dns_names,
        ip_addresses=addresses,
        server=True,
        client=True,
        subject=subject,
    )
    return certificate_pem(certificate), private_key_pem(key)
