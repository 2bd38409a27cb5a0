"""Auth service domain layer: what a joining host is (its id, role and certificate names).

A join token is a right to become one kind of host, nothing more. The caller of
`/v1/join` proves it holds a token; the auth service alone decides the host's id
(a fresh UUID) and the names its certificate carries:

- a database agent only dials out (tunnel client, auth client): its certificate is a
  client certificate with no names at all;
- a proxy gets the names the cluster allows for proxies: those bound to its token at
  creation (`wctl tokens add --type=proxy --names=...`) and the host of the auth
  service's configured proxy public address.

No host may ever carry `wicket-auth` (the auth service's name) or a name the cluster
did not allow; clients check the host role on top (`wicket.server_identity`).
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from wicket.api.client import AUTH_SERVER_NAME
from wicket.errors import BadParameter
from wicket.identity import HostRole

MAX_TOKEN_NAMES = 32
RESERVED_NAMES = frozenset({AUTH_SERVER_NAME})
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class NoProxyNames(BadParameter):
    """A proxy token would give a certificate no client could accept."""


@dataclass(frozen=True)
class HostNames:
    """The DNS and IP names of a host certificate, normalized."""

    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        """Every name, DNS first."""
        return self.dns_names + self.ip_addresses

    def __bool__(self) -> bool:
        return bool(self.dns_names or self.ip_addresses)


@dataclass(frozen=True)
class HostGrant:
    """What the auth service issues to a joining host."""

    host_id: str
    role: HostRole
    names: HostNames
    server: bool  # whether the certificate may serve TLS (serverAuth)

    def not_granted(self, requested: Iterable[str]) -> list[str]:
        """Requested names this grant does not include (reported back, never issued)."""
        granted = set(self.names.all)
        out: list[str] = []
        for name in requested:
            try:
                normal = normalize_host_name(name)
            except BadParameter:
                normal = name
            if normal not in granted and name not in out:
                out.append(name)
        return out


def normalize_host_name(name: str) -> str:
    """A certificate name as the cluster stores it: lower-case DNS name or canonical IP.

    Wildcards are refused (a proxy has exact public names), so is `wicket-auth`.
    """
    if not isinstance(name, str):
        raise BadParameter(f"host name {name!r} must be a string")
    text = name.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    text = text.removesuffix(".")
    labels = text.split(".")
    valid = bool(text) and len(text) <= 253 and all(_LABEL_RE.match(label) for label in labels)
    if not valid or labels[-1].isdigit():  # an all-digit last label is a mistyped IP
        raise BadParameter(
            f"{name!r} is not a host name or IP address a certificate can carry "
            "(letters, digits and '-' in dot-separated labels; no wildcards)"
        )
    if text in RESERVED_NAMES:
        raise BadParameter(f"{name!r} is the auth service's name and cannot be given to hosts")
    return text


def token_names(values: Sequence[str]) -> tuple[str, ...]:
    """Check and normalize the names bound to a proxy token (deduplicated, in order)."""
    if len(values) > MAX_TOKEN_NAMES:
        raise BadParameter(f"a token may carry at most {MAX_TOKEN_NAMES} names")
    out: list[str] = []
    for value in values:
        normal = normalize_host_name(value)
        if normal not in out:
            out.append(normal)
    return tuple(out)


def _split(names: Iterable[str]) -> HostNames:
    dns: list[str] = []
    ips: list[str] = []
    for name in names:
        try:
            ipaddress.ip_address(name)
        except ValueError:
            dns.append(name)
        else:
            ips.append(name)
    return HostNames(tuple(dns), tuple(ips))


def public_addr_host(public_addr: str | None) -> str | None:
    """The host part of a configured HOST:PORT public address, normalized (None if unusable)."""
    if not public_addr:
        return None
    host, sep, port = public_addr.rpartition(":")
    if not sep or not port.isdigit():
        host = public_addr
    try:
        return normalize_host_name(host)
    except BadParameter:
        return None


def proxy_names(*, bound: Sequence[str], public_addr: str | None) -> HostNames:
    """The names a proxy is entitled to: its token's and the configured public address's."""
    names = list(bound)
    public = public_addr_host(public_addr)
    if public is not None and public not in names:
        names.append(public)
    return _split(names)


def grant_for_join(
    role: HostRole,
    *,
    bound_names: Sequence[str],
    proxy_public_addr: str | None,
    new_host_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> HostGrant:
    """Decide a joining host's id and names from its token's role and the cluster's config."""
    if role is HostRole.DB:
        return HostGrant(host_id=new_host_id(), role=role, names=HostNames(), server=False)
    if role is HostRole.PROXY:
        names = proxy_names(bound=bound_names, public_addr=proxy_public_addr)
        if not names:
            raise NoProxyNames(
                "this proxy token allows no names, so no client would accept the proxy: "
                "create the token with `wctl tokens add --type=proxy --names=PUBLIC_HOST` "
                "or set proxy_service.public_addr in the auth service's config"
            )
        return HostGrant(host_id=new_host_id(), role=role, names=names, server=True)
    raise BadParameter(f"hosts of role {role.value!r} cannot join with a token")
