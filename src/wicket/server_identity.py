"""Which Wicket server a client accepts: the host role in the server's certificate.

The chain and the name are OpenSSL's checks: a client context trusts only the
cluster's host CA and matches the name dialled (the proxy's address, or
`wicket-auth` for the auth service). A host CA signs every host, though, database
agents included, so on top of that every Wicket client requires the certificate's
identity (`wicket.identity`) to carry the host role it dials: only a `proxy` host is
the proxy, only the `auth` host is `wicket-auth`.

`require_server_role` installs that check into a client context, as the context's
`sslobject_class`/`sslsocket_class`: it runs at the end of the TLS handshake for
aiohttp, asyncio streams and uvloop alike, before a single byte of a request (or
a password) is written. Its result is cached per certificate, so it costs a hash
lookup per connection and nothing per call.
"""

from __future__ import annotations

import functools
import ssl
from typing import ClassVar

from wicket.errors import AccessDenied, BadParameter
from wicket.identity import HostRole, IdentityKind, identity_from_certificate
from wicket.pki.pem import load_der_certificate

SERVICE_NAMES = {
    HostRole.PROXY: "the proxy",
    HostRole.AUTH: "the auth service",
    HostRole.DB: "a database agent",
}
X509_V_ERR_INVALID_PURPOSE = 26
X509_V_ERR_HOSTNAME_MISMATCH = 62
X509_V_ERR_IP_ADDRESS_MISMATCH = 64
_CACHE_SIZE = 256


class WrongServer(ssl.SSLCertVerificationError):
    """The server's certificate is valid, but for another kind of Wicket host.

    An `ssl.SSLError`, so the TLS layer aborts the handshake with it like with any
    failed verification; clients turn it into an `AccessDenied` naming their address.
    """

    def __init__(self, presented: str, expected: HostRole, server_name: str | None) -> None:
        self.presented = presented
        self.expected = expected
        self.message = self.describe(server_name or "the address dialled")
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def describe(self, address: str) -> str:
        """The message, naming the address the client dialled."""
        service = SERVICE_NAMES[self.expected]
        return (
            f"the server at {address} presented a certificate for {self.presented}, "
            f"not {service}: it is not this cluster's {service.removeprefix('the ')}, so "
            "the connection was closed before anything was sent. Check the address; if it "
            "is right, tell the cluster administrator that another host answers there"
        )


def _what(role: HostRole | None, host_id: str | None) -> str:
    label = {
        HostRole.DB: "a db host",
        HostRole.PROXY: "a proxy host",
        HostRole.AUTH: "an auth host",
    }
    return f"{label.get(role, 'a host') if role else 'a host'} ({host_id})"


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _presented(der: bytes, expected: HostRole) -> str | None:
    """None when `der` is a host certificate of role `expected`; else what it is instead."""
    try:
        cert = load_der_certificate(der)
        identity = identity_from_certificate(cert)
    except (AccessDenied, BadParameter, ValueError):
        return "something without a Wicket host identity"
    if identity.kind is not IdentityKind.HOST:
        return f"a {identity.kind.value} ({identity.name})"
    if identity.host_role is not expected:
        return _what(identity.host_role, identity.host_id)
    return None


def check_server_certificate(der: bytes, expected: HostRole, server_name: str | None) -> None:
    """Refuse (WrongServer) a server certificate whose identity is not a host of `expected`."""
    presented = _presented(bytes(der), expected)
    if presented is not None:
        raise WrongServer(presented, expected, server_name)


def _check_peer(connection: ssl.SSLObject | ssl.SSLSocket, expected: HostRole) -> None:
    der = connection.getpeercert(binary_form=True)
    if not der:
        raise WrongServer("no certificate at all", expected, connection.server_hostname)
    check_server_certificate(der, expected, connection.server_hostname)


@functools.cache
def _object_class(expected: HostRole) -> type[ssl.SSLObject]:
    class RoleCheckedObject(ssl.SSLObject):
        role: ClassVar[HostRole] = expected

        def do_handshake(self) -> None:
            super().do_handshake()
            _check_peer(self, self.role)

    return RoleCheckedObject


@functools.cache
def _socket_class(expected: HostRole) -> type[ssl.SSLSocket]:
    class RoleCheckedSocket(ssl.SSLSocket):
        role: ClassVar[HostRole] = expected

        def do_handshake(self, block: bool = False) -> None:
            super().do_handshake(block)
            _check_peer(self, self.role)

    return RoleCheckedSocket


def require_server_role(context: ssl.SSLContext, expected: HostRole) -> ssl.SSLContext:
    """Make `context` accept only servers whose certificate is a host of role `expected`.

    Also turns hostname checking on. A context that verifies nothing (`--insecure`)
    is returned as it is: it would accept any certificate anyway.
    """
    if context.verify_mode == ssl.CERT_NONE:
        return context
    context.check_hostname = True
    context.sslobject_class = _object_class(expected)
    context.sslsocket_class = _socket_class(expected)
    return context


def describe_verification_error(
    error: BaseException, address: str, expected: HostRole
) -> str | None:
    """A message a user can act on for a refused server certificate (None: not one)."""
    if isinstance(error, WrongServer):
        return error.describe(address)
    if not isinstance(error, ssl.SSLCertVerificationError):
        return None
    service = SERVICE_NAMES[expected]
    code = getattr(error, "verify_code", None)
    detail = getattr(error, "verify_message", None) or str(error)
    if code in {X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH}:
        reason = "a certificate that does not name the address dialled"
    elif code == X509_V_ERR_INVALID_PURPOSE:
        reason = "a certificate that is not a server certificate (a database agent's?)"
    else:
        reason = "a certificate this cluster's CA does not vouch for"
    return (
        f"the server at {address} is not {service}: it presented {reason} ({detail}); "
        "the connection was closed before anything was sent. Check the address and the "
        "cluster's CA pin"
    )
