"""Which client address the auth service records for a request (audit `client_addr`).

A forwarded-address header (`X-Forwarded-For`) is a claim by whoever sent the request.
Only the cluster's own proxies make that claim truthfully: they terminate the user's
TLS connection, so they know the address it came from and send exactly that one value.
Anyone else could write any address there, so for every other caller (a user or admin
certificate, another host role, no certificate) the header is ignored and the TCP
peer's address is the answer. A proxy's header must hold exactly one IP address; a
malformed one is not believed either.
"""

from __future__ import annotations

import ipaddress
import logging

from wicket.identity import HostRole, Identity, IdentityKind

FORWARDED_FOR = "X-Forwarded-For"
MAX_HEADER_LENGTH = 64

log = logging.getLogger("wicket.auth")


def is_cluster_proxy(identity: Identity | None) -> bool:
    """Whether the verified caller is one of this cluster's proxies (host role `proxy`)."""
    return (
        identity is not None
        and identity.kind is IdentityKind.HOST
        and identity.host_role is HostRole.PROXY
    )


def _single_address(value: str) -> str | None:
    """The one IP address a proxy's header holds, or None when it is anything else."""
    text = value.strip()
    if not text or len(text) > MAX_HEADER_LENGTH or "," in text:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def client_address(
    identity: Identity | None, peer: str | None, forwarded: str | None
) -> str | None:
    """The address to record: the proxy's forwarded one when a proxy sent it, else the peer."""
    if forwarded is None:
        return peer
    if not is_cluster_proxy(identity):
        who = identity.name if identity is not None else "a caller without a certificate"
        log.debug("ignoring %s from %s at %s (only proxies may send it)", FORWARDED_FOR, who, peer)
        return peer
    address = _single_address(forwarded)
    if address is None:
        log.warning(
            "proxy %s sent a malformed %s (%r); recording its own address",
            identity.name if identity is not None else "?",
            FORWARDED_FOR,
            forwarded[:MAX_HEADER_LENGTH],
        )
        return peer
    return address
