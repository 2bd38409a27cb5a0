"""The cluster's name and certificate authorities, created on the auth service's first start."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wicket.auth.store import CLUSTER_NAME
from wicket.backend.base import Backend
from wicket.errors import BadParameter, WicketError
from wicket.pki.authority import CAKind, CertificateAuthority
from wicket.pki.clock import utc_now

CA_KEYS = {CAKind.USER: "/cas/user", CAKind.HOST: "/cas/host", CAKind.DB: "/cas/db"}


@dataclass(frozen=True)
class ClusterAuthorities:
    """The cluster name and its three CAs (user, host, db)."""

    name: str
    user: CertificateAuthority
    host: CertificateAuthority
    db: CertificateAuthority

    def ca_pems(self) -> dict[str, str]:
        """The public CA certificates, PEM, by kind."""
        return {
            "user": self.user.cert_pem().decode(),
            "host": self.host.cert_pem().decode(),
            "db": self.db.cert_pem().decode(),
        }

    def public(self) -> dict[str, Any]:
        """What anyone may know about the cluster (no keys)."""
        return {"cluster_name": self.name, "cas": self.ca_pems(), "ca_pin": self.host.pin()}


async def load_or_create(
    backend: Backend, cluster_name: str, *, clock: Callable[[], datetime] = utc_now
) -> ClusterAuthorities:
    """Read the cluster's CAs from the backend, creating them on first start.

    The cluster name is fixed at first start: certificates carry it, so a changed
    `cluster_name` in the config is an error rather than a silent new cluster.
    """
    stored = await backend.get(CLUSTER_NAME)
    if stored is None:
        created = await backend.create(CLUSTER_NAME, json.dumps({"name": cluster_name}).encode())
        stored = created or await backend.get(CLUSTER_NAME)
    if stored is None:
        raise WicketError("could not record the cluster name in the backend")
    name = str(json.loads(stored.value)["name"])
    if name != cluster_name:
        raise BadParameter(
            f'auth_service.cluster_name is "{cluster_name}" but this data directory belongs to '
            f'cluster "{name}"; the cluster name cannot change after the first start'
        )
    authorities: dict[CAKind, CertificateAuthority] = {}
    for kind, key in CA_KEYS.items():
        item = await backend.get(key)
        if item is None:
            fresh = CertificateAuthority.create(kind, name, clock=clock)
            await backend.create(key, fresh.to_json())
            item = await backend.get(key)
        if item is None:
            raise WicketError(f"could not store the {kind.value} CA")
        authorities[kind] = CertificateAuthority.from_json(item.value)
    return ClusterAuthorities(
        name, authorities[CAKind.USER], authorities[CAKind.HOST], authorities[CAKind.DB]
    )
