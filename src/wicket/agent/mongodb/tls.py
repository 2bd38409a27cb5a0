"""Agent layer, MongoDB engine: TLS toward the database, and TLS failures a user can act on.

Modes (the database's `tls.mode`):
- `verify-full` (default): the certificate chains to a trusted CA *and* names the
  host in a subjectAltName. Like Go's crypto/tls, which the guide's users meet, a
  certificate that has only a legacy Common Name and no SAN is refused
  (`hostname_checks_common_name = False`), and we say so in Go's words, because
  that is the text AWS documents: DocumentDB/RDS certificates from before July 2020.
- `verify-ca`: the chain only (a certificate issued for another name is accepted).
- `insecure`: no checks at all; logged as a warning on every connection.

`tls.ca_cert_file` replaces the system's trust store with the given bundle. For
Amazon DocumentDB and RDS that is AWS's global bundle, published at
https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem — download it
onto the agent host and point `ca_cert_file` at it (Wicket never fetches it).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from wicket.agent.mongodb.uri import UpstreamConnectError, format_address
from wicket.auth.databases import TlsMode, TlsSettings
from wicket.errors import BadParameter
from wicket.pki.pem import load_der_certificate
from wicket.tlsconfig import load_certificate_chain

AWS_GLOBAL_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
AWS_ROTATE_CERT_DOCS = (
    "https://docs.aws.amazon.com/documentdb/latest/developerguide/ca_cert_rotation.html"
)
LEGACY_CN_TEXT = "x509: certificate relies on legacy Common Name field, use SANs instead"
MAX_CA_FILE = 4 * 1024 * 1024
# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH.
_NAME_MISMATCH_CODES = frozenset({62, 64})


class UpstreamTlsError(UpstreamConnectError):
    """The database's TLS certificate did not pass the configured verification."""


class LegacyCommonNameError(UpstreamTlsError):
    """The database's certificate has no SAN, only a legacy Common Name (pre-2020 RDS)."""


@dataclass(frozen=True)
class UpstreamTls:
    """A ready TLS client context for one database, and how to describe it in errors."""

    context: ssl.SSLContext
    mode: TlsMode
    ca_file: str | None

    def trust_text(self) -> str:
        """Where trust comes from, for messages."""
        if self.ca_file:
            return f"CA file {self.ca_file}"
        return "the system's trusted CAs (no tls.ca_cert_file set)"


def upstream_tls(
    settings: TlsSettings, *, client_certificate: tuple[bytes, bytes] | None = None
) -> UpstreamTls:
    """Build the client context for `settings`, optionally presenting a client certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    # Go semantics: a SAN is required, and a trusted intermediate may anchor the chain.
    context.hostname_checks_common_name = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    ca_file = settings.ca_cert_file or None
    if settings.mode is TlsMode.INSECURE:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.check_hostname = settings.mode is TlsMode.VERIFY_FULL
        context.verify_mode = ssl.CERT_REQUIRED
        if ca_file:
            _load_ca_file(context, Path(ca_file))
        else:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if client_certificate is not None:
        cert_pem, key_pem = client_certificate
        load_certificate_chain(context, cert_pem, key_pem)
    return UpstreamTls(context, settings.mode, ca_file)


def _load_ca_file(context: ssl.SSLContext, path: Path) -> None:
    """Trust the bundle in `path`, with an error that names the file."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise BadParameter(f"tls.ca_cert_file {path} does not exist") from None
    except OSError as exc:
        raise BadParameter(f"tls.ca_cert_file {path}: {exc.strerror}") from None
    if size > MAX_CA_FILE:
        raise BadParameter(f"tls.ca_cert_file {path} is larger than {MAX_CA_FILE} bytes")
    try:
        context.load_verify_locations(cafile=str(path))
    except (ssl.SSLError, OSError) as exc:
        raise BadParameter(
            f"tls.ca_cert_file {path} holds no usable CA certificate (PEM expected): {exc}"
        ) from None


def verification_error(
    tls: UpstreamTls,
    host: str,
    port: int,
    error: ssl.SSLCertVerificationError,
    certificate: x509.Certificate | None,
) -> UpstreamTlsError:
    """The error to show for a failed verification; `certificate` is the server's, if known."""
    where = format_address(host, port)
    code = getattr(error, "verify_code", None)
    reason = getattr(error, "verify_message", None) or str(error)
    if code in _NAME_MISMATCH_CODES and certificate is not None and not _has_san(certificate):
        return LegacyCommonNameError(
            f"{LEGACY_CN_TEXT}: the database at {where} presents a certificate with only a "
            f"Common Name ({certificate.subject.rfc4514_string()}) and no subject alternative "
            "names. This is an RDS/DocumentDB certificate from before July 28, 2020: rotate the "
            f"cluster's certificate authority (AWS: {AWS_ROTATE_CERT_DOCS}), or, for a "
            "self-hosted database, issue it a certificate with SANs (wctl auth sign "
            "--format=mongodb). tls.mode verify-ca skips the name check if you must."
        )
    if code in _NAME_MISMATCH_CODES:
        names = ", ".join(_san_names(certificate)) if certificate is not None else "unknown"
        return UpstreamTlsError(
            f"TLS verification of {where} failed (tls.mode verify-full, {tls.trust_text()}): "
            f"the certificate is not valid for {host!r} (it names: {names}); use a host name "
            "from the certificate in the database URI, or set tls.mode verify-ca"
        )
    hint = (
        f"set tls.ca_cert_file to the CA that signed the database's certificate "
        f"(Amazon DocumentDB/RDS: the global bundle from {AWS_GLOBAL_BUNDLE_URL})"
    )
    if tls.ca_file:
        hint = f"check that {tls.ca_file} holds the CA that signed the database's certificate"
    return UpstreamTlsError(
        f"TLS verification of {where} failed (tls.mode {tls.mode.value}, {tls.trust_text()}): "
        f"{reason}; {hint}"
    )


def _has_san(certificate: x509.Certificate) -> bool:
    """Whether a certificate has a subjectAltName extension."""
    try:
        certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (x509.ExtensionNotFound, ValueError):
        return False
    return True


def _san_names(certificate: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses a certificate is valid for."""
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    names = [str(name) for name in sans.get_values_for_type(x509.DNSName)]
    names += [str(address) for address in sans.get_values_for_type(x509.IPAddress)]
    return names


def insecure_probe_context() -> ssl.SSLContext:
    """A context that accepts any certificate: only to read one for an error message."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def certificate_from_der(der: bytes | None) -> x509.Certificate | None:
    """Parse the server certificate a probe saw (None when there was none or it is garbage)."""
    if not der:
        return None
    try:
        return load_der_certificate(der)
    except BadParameter:
        return None
