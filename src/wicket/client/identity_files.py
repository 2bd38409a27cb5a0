"""Client layer: how `wctl` finds the identity it calls the auth service with.

In order: `--identity DIR` / `$WICKET_IDENTITY` (a directory shaped like
`data_dir/admin`); else the config file (`-c`, `$WICKET_CONFIG_FILE`, default
`/etc/wicket.yaml`) when it exists and enables the auth service: its
`data_dir/admin`, called directly at the recorded `auth_addr`; else the current
`wsh` profile, whose user certificate reaches the auth service through the
proxy's `wicket-auth` route.
"""

from __future__ import annotations

import json
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wicket.api.client import AUTH_ALPN, AuthClient
from wicket.client.profile import Profile, ProfileStore
from wicket.config.loader import load_config
from wicket.errors import WicketError
from wicket.tlsconfig import client_context

DEFAULT_CONFIG_FILE = Path("/etc/wicket.yaml")
MAX_IDENTITY_FILE = 256 * 1024
NO_IDENTITY = (
    "no identity: run wctl on the auth host, or log in with wsh login --proxy=... --user=..."
)


class NoIdentity(WicketError):
    """wctl has nothing to authenticate with."""


@dataclass(frozen=True)
class ClientIdentity:
    """A certificate and key, the CA that signs the auth service's certificate, and a route."""

    source: str  # what the identity came from, for messages
    address: str  # HOST:PORT to dial: the auth service, or the proxy
    cert_pem: bytes
    key_pem: bytes
    host_ca_pem: bytes
    alpn: tuple[str, ...] = ()
    proxy: str | None = None  # the proxy's public address, when known

    def ssl_context(self) -> ssl.SSLContext:
        """Mutual TLS with this identity; the server is verified against the host CA."""
        return client_context(
            ca_pems=[self.host_ca_pem],
            cert_chain_pem=self.cert_pem,
            key_pem=self.key_pem,
            alpn=list(self.alpn),
        )

    def auth_client(self) -> AuthClient:
        """An API client that calls the auth service as this identity."""
        return AuthClient(self.address, self.ssl_context())


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_IDENTITY_FILE + 1)
    except FileNotFoundError:
        raise NoIdentity(f"identity file {path} is missing") from None
    except PermissionError:
        raise NoIdentity(f"cannot read {path}: permission denied (run wctl as root?)") from None
    except OSError as exc:
        raise NoIdentity(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_IDENTITY_FILE:
        raise NoIdentity(f"identity file {path} is larger than {MAX_IDENTITY_FILE} bytes")
    return data


def identity_from_directory(directory: Path) -> ClientIdentity:
    """An admin identity directory: cert.pem, key.pem, cluster.json with cas and auth_addr."""
    directory = Path(directory)
    try:
        is_dir = stat.S_ISDIR(directory.stat().st_mode)
    except FileNotFoundError:
        is_dir = False
    except PermissionError:
        raise NoIdentity(
            f"cannot read {directory}: permission denied (run wctl as root?)"
        ) from None
    if not is_dir:
        raise NoIdentity(f"identity directory {directory} does not exist")
    try:
        info: Any = json.loads(_read(directory / "cluster.json"))
    except ValueError as exc:
        raise NoIdentity(f"{directory / 'cluster.json'} is not valid JSON: {exc}") from None
    cas = info.get("cas") if isinstance(info, dict) else None
    address = info.get("auth_addr") if isinstance(info, dict) else None
    if not isinstance(cas, dict) or not isinstance(cas.get("host"), str):
        raise NoIdentity(f"{directory / 'cluster.json'} has no host CA certificate")
    if not isinstance(address, str) or not address:
        raise NoIdentity(f"{directory / 'cluster.json'} has no auth_addr")
    return ClientIdentity(
        source=str(directory),
        address=address,
        cert_pem=_read(directory / "cert.pem"),
        key_pem=_read(directory / "key.pem"),
        host_ca_pem=cas["host"].encode(),
    )


def identity_from_profile(profile: Profile) -> ClientIdentity:
    """A wsh login, reaching the auth service through its proxy's `wicket-auth` route."""
    cluster = profile.cluster()
    return ClientIdentity(
        source=f"wsh profile {profile.user}@{profile.proxy}",
        address=profile.proxy,
        cert_pem=profile.cert_pem(),
        key_pem=profile.key_pem(),
        host_ca_pem=cluster.cas["host"].encode(),
        alpn=(AUTH_ALPN,),
        proxy=profile.proxy,
    )


def resolve_identity(
    *,
    identity_dir: Path | None,
    config_file: Path | None,
    store: ProfileStore,
) -> ClientIdentity:
    """The identity wctl uses, in the documented order; `NoIdentity` when there is none.

    `config_file=None` means the default path, which may be absent; a file named
    explicitly must exist.
    """
    if identity_dir is not None:
        return identity_from_directory(identity_dir)
    path = config_file or DEFAULT_CONFIG_FILE
    if config_file is not None or path.exists():
        config = load_config(path)
        if config.auth_service.enabled:
            admin = Path(config.wicket.data_dir) / "admin"
            try:
                return identity_from_directory(admin)
            except NoIdentity as error:
                raise NoIdentity(
                    f"{error}; the auth service writes it on start (wicket start -c {path})"
                ) from None
    profile = store.current()
    if profile is not None:
        return identity_from_profile(profile)
    raise NoIdentity(NO_IDENTITY)
