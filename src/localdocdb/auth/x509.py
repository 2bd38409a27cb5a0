"""MONGODB-X509, server side: the client certificate's subject is the `$external` user.

Auth layer of localdocdb, pure. The TLS layer has already verified the chain against
`--client-ca`; here we only name the subject the way MongoDB does: the RFC 2253
string of the subject, most specific RDN first (``CN=alice,OU=eng,O=Example,C=US``),
with OpenSSL's short attribute names (MongoDB prints it with
``X509_NAME_print_ex(..., XN_FLAG_RFC2253)``).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

MAX_CERTIFICATE_DER = 64 * 1024

# OpenSSL's short names where cryptography's RFC 4514 output would print a dotted OID.
_OPENSSL_NAMES: dict[ObjectIdentifier, str] = {
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.TITLE: "title",
    NameOID.GIVEN_NAME: "GN",
    NameOID.SURNAME: "SN",
    NameOID.INITIALS: "initials",
    NameOID.PSEUDONYM: "pseudonym",
    NameOID.GENERATION_QUALIFIER: "generationQualifier",
    NameOID.DN_QUALIFIER: "dnQualifier",
    NameOID.POSTAL_CODE: "postalCode",
    NameOID.BUSINESS_CATEGORY: "businessCategory",
    NameOID.JURISDICTION_COUNTRY_NAME: "jurisdictionC",
    NameOID.JURISDICTION_STATE_OR_PROVINCE_NAME: "jurisdictionST",
    NameOID.JURISDICTION_LOCALITY_NAME: "jurisdictionL",
    NameOID.ORGANIZATION_IDENTIFIER: "organizationIdentifier",
}


class X509AuthError(Exception):
    """Why a MONGODB-X509 login was refused (logged; the client only sees code 18)."""


def subject_name(certificate_der: bytes | None) -> str:
    """The user name MongoDB derives from a client certificate: its RFC 2253 subject."""
    if certificate_der is None:
        raise X509AuthError(
            "MONGODB-X509 needs a client certificate, and this connection presented none"
        )
    if len(certificate_der) > MAX_CERTIFICATE_DER:
        raise X509AuthError("client certificate is too large")
    try:
        certificate = x509.load_der_x509_certificate(certificate_der)
    except ValueError as exc:
        raise X509AuthError(f"client certificate cannot be parsed: {exc}") from None
    # RFC 4514 output lists RDNs in reverse ASN.1 order, which is RFC 2253's order.
    subject = certificate.subject.rfc4514_string(_OPENSSL_NAMES)
    if not subject:
        raise X509AuthError("client certificate has an empty subject")
    return subject


def authenticate_subject(certificate_der: bytes | None, requested_user: str | None) -> str:
    """The subject to log in as; `requested_user`, when given, must be exactly it."""
    subject = subject_name(certificate_der)
    if requested_user is not None and requested_user != subject:
        raise X509AuthError(
            f"user {requested_user!r} does not match the certificate subject {subject!r}"
        )
    return subject
