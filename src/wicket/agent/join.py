"""Joining a cluster: trade a join token for a host certificate, trusting the CA by its pin.

The agent knows only the proxy's address. It fetches the cluster's CA certificates
from the proxy, checks the host CA against `ca_pin` (or trusts it on first use,
with a warning, when no pin is configured), then calls the auth service's join
endpoint through the proxy's `wicket-auth` route with TLS verified against that CA
(and, as every auth client, accepting only the auth service's host role).

The auth service decides the host's id and certificate names: a database agent gets
none (it only dials out), a proxy those its token and the cluster allow. Names a
proxy asked for and did not get are logged, since clients will not accept it there.
"""

from __future__ import annotations

import json
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from wicket.api.bodies import read_bounded
from wicket.api.client import AUTH_ALPN, AuthClient
from wicket.errors import AccessDenied, BadParameter, UpstreamError
from wicket.pki.keys import (
    generate_private_key,
    load_private_key,
    private_key_pem,
    public_key_pem,
    write_private_file,
)
from wicket.pki.pem import load_certificate
from wicket.pki.pin import ca_pin, check_pin
from wicket.tlsconfig import client_context

log = logging.getLogger("wicket.agent")

FETCH_TIMEOUT = 15.0
MAX_CLUSTER_INFO = 256 * 1024


@dataclass(frozen=True)
class HostIdentity:
    """A joined host's certificate, key and the cluster's CAs (kept in `data_dir/host/`)."""

    host_id: str
    cluster_name: str
    cert_pem: bytes
    key_pem: bytes
    cas: dict[str, str]

    @property
    def host_ca_pem(self) -> bytes:
        """The CA every Wicket server certificate chains to."""
        return self.cas["host"].encode()

    @property
    def user_ca_pem(self) -> bytes:
        """The CA user certificates chain to."""
        return self.cas["user"].encode()

    def client_context(self, alpn: str) -> ssl.SSLContext:
        """TLS to a Wicket server with this host's certificate."""
        return client_context(
            ca_pems=[self.host_ca_pem],
            cert_chain_pem=self.cert_pem,
            key_pem=self.key_pem,
            alpn=[alpn],
        )


def identity_dir(data_dir: Path) -> Path:
    """Where a host keeps its identity."""
    return data_dir / "host"


def load_host_identity(data_dir: Path) -> HostIdentity | None:
    """The identity saved by an earlier join, or None."""
    directory = identity_dir(data_dir)
    try:
        info = json.loads((directory / "cluster.json").read_text())
        cert_pem = (directory / "cert.pem").read_bytes()
        key_pem = (directory / "key.pem").read_bytes()
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BadParameter(f"{directory}: the saved host identity is unreadable: {exc}") from exc
    load_private_key(key_pem)
    load_certificate(cert_pem)
    return HostIdentity(
        host_id=str(info["host_id"]),
        cluster_name=str(info["cluster_name"]),
        cert_pem=cert_pem,
        key_pem=key_pem,
        cas={str(k): str(v) for k, v in info["cas"].items()},
    )


def save_host_identity(data_dir: Path, identity: HostIdentity) -> None:
    """Write the identity: key 0600, directory 0700."""
    directory = identity_dir(data_dir)
    write_private_file(directory / "key.pem", identity.key_pem)
    write_private_file(directory / "cert.pem", identity.cert_pem)
    info = {"host_id": identity.host_id, "cluster_name": identity.cluster_name, "cas": identity.cas}
    write_private_file(directory / "cluster.json", json.dumps(info, indent=2).encode())


async def fetch_cluster_info(
    proxy_addr: str, *, path: str = "/v1/webapi/cluster"
) -> dict[str, Any]:
    """The cluster's public CA certificates, read before we can verify the server.

    From a proxy (`/v1/webapi/cluster`) or straight from the auth service (`/v1/cluster`).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # nothing to verify with yet: the pin check follows
    context.set_alpn_protocols(["http/1.1"])
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
    url = f"https://{proxy_addr}{path}"
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, ssl=context) as response,
        ):
            raw = await read_bounded(response.content, MAX_CLUSTER_INFO)
            if response.status != 200 or raw is None:
                raise UpstreamError(f"proxy {proxy_addr} answered HTTP {response.status} on {url}")
            data = json.loads(raw)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise UpstreamError(f"cannot read the cluster's CA from proxy {proxy_addr}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("cas"), dict):
        raise UpstreamError(f"proxy {proxy_addr} sent no cluster CA information")
    return data


async def join_cluster(
    *,
    data_dir: Path,
    proxy_addr: str,
    token: str,
    hostname: str,
    ca_pins: tuple[str, ...],
    role: str = "db",
    direct_to_auth: bool = False,
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
) -> HostIdentity:
    """Join with `token` and save the host identity.

    Agents join through a proxy (`proxy_addr` is the proxy); a proxy joins straight to
    the auth service (`direct_to_auth`, `proxy_addr` is then the auth service) and says
    which names it wants; the auth service grants only those the cluster allows.
    """
    info = await fetch_cluster_info(
        proxy_addr, path="/v1/cluster" if direct_to_auth else "/v1/webapi/cluster"
    )
    host_ca = load_certificate(str(info["cas"]["host"]).encode())
    if ca_pins:
        check_pin(host_ca, ca_pins)
    else:
        log.warning(
            "no wicket.ca_pin configured: trusting cluster %s's CA %s on first use",
            info.get("cluster_name"),
            ca_pin(host_ca),
        )
    key = generate_private_key()
    context = client_context(
        ca_pems=[str(info["cas"]["host"]).encode()], alpn=[] if direct_to_auth else [AUTH_ALPN]
    )
    async with AuthClient(proxy_addr, context) as auth:
        answer = await auth.post(
            "/v1/join",
            {
                "token": token,
                "role": role,
                "hostname": hostname,
                "public_key_pem": public_key_pem(key).decode(),
                "dns_names": list(dns_names),
                "ip_addresses": list(ip_addresses),
            },
        )
    not_granted = answer.get("not_granted") or []
    if not_granted:
        log.warning(
            "the auth service did not put %s in this host's certificate (a host's names are "
            "decided by the cluster: bind them to the proxy token with `wctl tokens add "
            "--type=proxy --names=...`, or set the auth service's proxy_service.public_addr); "
            "clients will not accept this proxy under those names. Granted: %s",
            ", ".join(str(name) for name in not_granted),
            ", ".join(
                str(n) for n in [*answer.get("dns_names", []), *answer.get("ip_addresses", [])]
            )
            or "none",
        )
    if answer.get("cas", {}).get("host") != info["cas"]["host"]:
        raise AccessDenied("the auth service's CA differs from the one the proxy showed")
    identity = HostIdentity(
        host_id=str(answer["host_id"]),
        cluster_name=str(answer["cluster_name"]),
        cert_pem=str(answer["cert_pem"]).encode(),
        key_pem=private_key_pem(key),
        cas={str(k): str(v) for k, v in answer["cas"].items()},
    )
    save_host_identity(data_dir, identity)
    log.info("joined cluster %s as host %s", identity.cluster_name, identity.host_id)
    return identity
