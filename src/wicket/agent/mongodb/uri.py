"""Agent layer, MongoDB engine: the database URI of a db_service entry, parsed and resolved.

Accepted forms (MongoDB Connection String spec, minus what Wicket does itself):
`host`, `host:port`, `[::1]:27017`, `mongodb://h1:1,h2:2/?replicaSet=rs0&tls=true` and
`mongodb+srv://cluster.example.com`. Credentials in the URI are refused: Wicket
authenticates to the database itself (MONGODB-AWS or MONGODB-X509), so a password
there would only be a secret lying in a config file. TLS settings live in the
database's `tls` block (`mode`, `ca_cert_file`), so the URI's tlsCAFile/tlsInsecure
family is refused with a pointer there rather than silently ignored.

`mongodb+srv://` follows the "Initial DNS Seedlist Discovery" spec: the SRV record
`_mongodb._tcp.<host>` lists the seeds, each of which must share the host's parent
domain; at most one TXT record may set `replicaSet`, `authSource` or `loadBalanced`
(the URI wins over it); TLS defaults to on. The DNS resolver's name servers can be
injected so tests answer from a real responder on loopback.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from urllib.parse import unquote

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from wicket.errors import BadParameter, UpstreamError

DEFAULT_PORT = 27017
MAX_URI_LENGTH = 4096
MAX_HOSTS = 64
MAX_OPTIONS = 64
MAX_TXT_LENGTH = 4096
DEFAULT_DNS_TIMEOUT = 10.0
SCHEME = "mongodb://"
SRV_SCHEME = "mongodb+srv://"
# Seedlist spec: the only options a TXT record may carry.
TXT_OPTIONS = frozenset({"replicaset", "authsource", "loadbalanced"})
# The URI's own TLS knobs: Wicket's per-database `tls` block replaces them.
_TLS_URI_OPTIONS = frozenset(
    {
        "tlscafile",
        "tlscertificatekeyfile",
        "tlscertificatekeyfilepassword",
        "tlsinsecure",
        "tlsallowinvalidcertificates",
        "tlsallowinvalidhostnames",
        "tlsdisableocspendpointcheck",
        "sslcafile",
        "sslpemkeyfile",
        "sslallowinvalidcertificates",
        "sslallowinvalidhostnames",
    }
)
_HOST_NAME_RE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*\.?$")
_OPTION_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{0,63}$")
_BOOLEAN = {"true": True, "false": False}


class UpstreamConnectError(UpstreamError):
    """The agent could not reach or use the database named by a db_service entry."""


@dataclass(frozen=True)
class MongoTarget:
    """Where a database lives: seed hosts, replica set, SRV origin, TLS wish and options.

    `options` keys are lower-cased (URI option names are case-insensitive); values
    are percent-decoded. `tls` is None when the URI does not say.
    """

    hosts: tuple[tuple[str, int], ...]
    replica_set: str | None = None
    srv: bool = False
    tls: bool | None = None
    auth_source: str | None = None
    options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def direct_connection(self) -> bool:
        """`directConnection=true`: talk to the one seed, no replica-set discovery."""
        return self.options.get("directconnection") == "true"

    @property
    def discovers_topology(self) -> bool:
        """Whether to look for the primary (several seeds or a replica set) or dial directly."""
        if self.direct_connection:
            return False
        return len(self.hosts) > 1 or self.replica_set is not None

    def describe(self) -> str:
        """The hosts as people write them, for messages."""
        return ", ".join(format_address(host, port) for host, port in self.hosts)


def format_address(host: str, port: int) -> str:
    """HOST:PORT, with brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_host(text: str, *, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """One `host`, `host:port`, `[v6]` or `[v6]:port` (also a hello's `primary`)."""
    raw = unquote(text.strip())
    if not raw:
        raise BadParameter("empty host in the database URI")
    if raw.endswith(".sock") or raw.startswith("/"):
        raise BadParameter(f"{raw!r}: Unix domain sockets are not supported; use host:port")
    port_text: str | None = None
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise BadParameter(f"{raw!r}: IPv6 address without a closing ']'")
        host = raw[1:end]
        rest = raw[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise BadParameter(f"{raw!r}: expected ':PORT' after the IPv6 address")
            port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise BadParameter(f"{raw!r}: {host!r} is not an IPv6 address") from None
    else:
        if raw.count(":") > 1:
            raise BadParameter(f"{raw!r}: write an IPv6 address in brackets, like [::1]:27017")
        host, sep, port_part = raw.partition(":")
        if sep:
            port_text = port_part
        if not _valid_host_name(host):
            raise BadParameter(f"{raw!r}: {host!r} is not a valid host name or address")
    port = default_port
    if port_text is not None:
        if not port_text.isdigit() or len(port_text) > 5 or not 1 <= int(port_text) <= 65535:
            raise BadParameter(f"{raw!r}: port must be a number from 1 to 65535")
        port = int(port_text)
    return host.lower(), port


def _valid_host_name(host: str) -> bool:
    """A DNS name or IPv4 address of bounded length."""
    if not host or len(host) > 253:
        return False
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return bool(_HOST_NAME_RE.match(host))
    return True


def _parse_options(query: str, *, what: str) -> dict[str, str]:
    """`a=1&b=2` (also `;`-separated, legacy) into lower-cased keys; duplicates refused."""
    options: dict[str, str] = {}
    if not query:
        return options
    parts = [part for part in re.split(r"[&;]", query) if part]
    if len(parts) > MAX_OPTIONS:
        raise BadParameter(f"{what} has more than {MAX_OPTIONS} options")
    for part in parts:
        name, sep, value = part.partition("=")
        name = unquote(name)
        if not sep or not _OPTION_NAME_RE.match(name):
            raise BadParameter(f"{what}: {part!r} is not an option of the form name=value")
        key = name.lower()
        if key in options:
            raise BadParameter(f"{what}: option {name!r} is given twice")
        options[key] = unquote(value)
    return options


def _boolean(options: Mapping[str, str], key: str, name: str) -> bool | None:
    """A true/false option, or None when absent."""
    if key not in options:
        return None
    value = options[key].lower()
    if value not in _BOOLEAN:
        raise BadParameter(f"database URI option {name} must be true or false, not {value!r}")
    return _BOOLEAN[value]


def parse_mongo_uri(uri: str) -> MongoTarget:
    """Parse a db_service URI (no network); `mongodb+srv` seeds come from `resolve_seedlist`."""
    text = uri.strip()
    if not text:
        raise BadParameter("the database URI is empty")
    if len(text) > MAX_URI_LENGTH:
        raise BadParameter(f"the database URI is longer than {MAX_URI_LENGTH} characters")
    srv = False
    if text.startswith(SRV_SCHEME):
        srv, rest = True, text[len(SRV_SCHEME) :]
    elif text.startswith(SCHEME):
        rest = text[len(SCHEME) :]
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise BadParameter(
            f"database URI scheme {scheme!r} is not supported: use mongodb:// or mongodb+srv://"
        )
    else:
        rest = text
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    if "@" in authority:
        raise BadParameter(
            "the database URI contains credentials (user:password@): remove them; Wicket "
            "authenticates to the database itself (IAM for DocumentDB, X.509 for MongoDB)"
        )
    query = tail.split("?", 1)[1] if "?" in tail else ""
    options = _parse_options(query, what="the database URI")
    for key in options:
        if key in _TLS_URI_OPTIONS:
            raise BadParameter(
                f"database URI option {key!r} is not used by Wicket: set the database's "
                "tls.mode (verify-full, verify-ca, insecure) and tls.ca_cert_file instead"
            )
    host_texts = authority.split(",")
    if len(host_texts) > MAX_HOSTS:
        raise BadParameter(f"the database URI lists more than {MAX_HOSTS} hosts")
    hosts = tuple(parse_host(host) for host in host_texts)
    tls = _boolean(options, "tls", "tls")
    ssl = _boolean(options, "ssl", "ssl")
    if tls is not None and ssl is not None and tls != ssl:
        raise BadParameter("database URI options tls and ssl disagree")
    tls = tls if tls is not None else ssl
    direct = _boolean(options, "directconnection", "directConnection")
    if srv:
        if len(hosts) != 1 or ":" in authority:
            raise BadParameter(
                "a mongodb+srv:// URI names exactly one host and no port "
                f"(got {authority!r}); the SRV record lists the servers"
            )
        if direct:
            raise BadParameter("directConnection=true cannot be used with mongodb+srv://")
    elif direct and len(hosts) > 1:
        raise BadParameter("directConnection=true needs exactly one host in the database URI")
    return MongoTarget(
        hosts=hosts,
        replica_set=options.get("replicaset") or None,
        srv=srv,
        tls=tls,
        auth_source=options.get("authsource") or None,
        options=MappingProxyType(options),
    )


def _parent_domain(host: str) -> tuple[str, ...]:
    """The labels an SRV target must end with (seedlist spec, "Querying DNS")."""
    labels = tuple(host.lower().rstrip(".").split("."))
    return labels[1:] if len(labels) >= 3 else labels


def check_srv_target(srv_host: str, target: str) -> None:
    """Refuse an SRV target outside the queried host's parent domain."""
    parent = _parent_domain(srv_host)
    labels = tuple(target.lower().rstrip(".").split("."))
    # With fewer than three labels the parent is the host itself, so the target
    # needs at least one more level than it.
    if labels[-len(parent) :] != parent or len(labels) <= len(parent):
        raise UpstreamConnectError(
            f"the SRV record of {srv_host} lists {target}, which is not in the domain "
            f"{'.'.join(parent)}; fix the SRV record (targets must share the parent domain)"
        )


def _resolver(
    nameservers: Sequence[tuple[str, int]] | None, timeout: float
) -> dns.asyncresolver.Resolver:
    """The system resolver, or one asking exactly the given name servers."""
    if nameservers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(address, port) for address, port in nameservers
        ]
    else:
        try:
            resolver = dns.asyncresolver.Resolver()
        except dns.resolver.NoResolverConfiguration as exc:
            raise UpstreamConnectError(f"this host has no DNS configuration: {exc}") from None
    resolver.lifetime = timeout
    resolver.timeout = timeout
    return resolver


async def resolve_seedlist(
    target: MongoTarget,
    *,
    nameservers: Sequence[tuple[str, int]] | None = None,
    lifetime: float = DEFAULT_DNS_TIMEOUT,
) -> MongoTarget:
    """Turn a `mongodb+srv` target into its seed hosts and TXT options (no-op otherwise)."""
    if not target.srv:
        return target
    srv_host = target.hosts[0][0]
    service = target.options.get("srvservicename", "mongodb")
    timeout = lifetime
    resolver = _resolver(nameservers, timeout)
    name = f"_{service}._tcp.{srv_host}"
    try:
        answer = await resolver.resolve(name, dns.rdatatype.SRV)
    except dns.resolver.NXDOMAIN:
        raise UpstreamConnectError(
            f"DNS has no SRV record {name} (from the mongodb+srv:// URI host {srv_host}): "
            "check the host name in the database URI"
        ) from None
    except dns.exception.Timeout:
        raise UpstreamConnectError(
            f"DNS lookup of {name} (host {srv_host}) timed out after {timeout:g}s: "
            "check this host's DNS servers"
        ) from None
    except dns.exception.DNSException as exc:
        raise UpstreamConnectError(
            f"DNS lookup of {name} (host {srv_host}) failed: {exc}; "
            "check the host name in the database URI and this host's DNS settings"
        ) from None
    records = list(answer)
    if not records:
        raise UpstreamConnectError(f"the SRV record {name} lists no servers")
    if len(records) > MAX_HOSTS:
        raise UpstreamConnectError(f"the SRV record {name} lists more than {MAX_HOSTS} servers")
    hosts: list[tuple[str, int]] = []
    for record in records:
        host = record.target.to_text(omit_final_dot=True).lower()
        check_srv_target(srv_host, host)
        hosts.append((host, int(record.port)))
    txt_options = await _txt_options(resolver, srv_host, lifetime)
    options = {**txt_options, **target.options}
    return replace(
        target,
        hosts=tuple(hosts),
        replica_set=options.get("replicaset") or None,
        tls=True if target.tls is None else target.tls,
        auth_source=options.get("authsource") or None,
        options=MappingProxyType(options),
    )


async def _txt_options(
    resolver: dns.asyncresolver.Resolver, srv_host: str, lifetime: float
) -> dict[str, str]:
    """The options of the host's one TXT record (none if it has none)."""
    try:
        answer = await resolver.resolve(srv_host, dns.rdatatype.TXT)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return {}
    except dns.exception.Timeout:
        raise UpstreamConnectError(
            f"DNS lookup of the TXT record of {srv_host} timed out after {lifetime:g}s"
        ) from None
    except dns.exception.DNSException as exc:
        raise UpstreamConnectError(f"DNS lookup of the TXT record of {srv_host}: {exc}") from None
    records = list(answer)
    if len(records) > 1:
        raise UpstreamConnectError(
            f"{srv_host} has {len(records)} TXT records; the seedlist spec allows at most one"
        )
    if not records:
        return {}
    raw = b"".join(records[0].strings)
    if len(raw) > MAX_TXT_LENGTH:
        raise UpstreamConnectError(f"the TXT record of {srv_host} is too long")
    options = _parse_options(raw.decode("ascii", "replace"), what=f"the TXT record of {srv_host}")
    for key in options:
        if key not in TXT_OPTIONS:
            raise UpstreamConnectError(
                f"the TXT record of {srv_host} sets {key!r}; only replicaSet, authSource and "
                "loadBalanced are allowed there"
            )
    return options
