"""Client layer: `wsh` profiles and keys under `~/.wsh` (or `$WSH_HOME`).

Layout (the directory is 0700, every file 0600):

    profile.json                      {"current": PROXY, "profiles": {PROXY: {...}},
                                       "trusted": {PROXY: "sha256:..."}}
    keys/<proxy>/<user>/key.pem       the login's private key (fresh P-256 per login)
    keys/<proxy>/<user>/cert.pem      the user certificate the auth service issued
    keys/<proxy>/<user>/cluster.json  the cluster's CA certificates and pin

`trusted` is the remembered CA pin per proxy, like SSH's known_hosts: it survives
`wsh logout`, so a cluster that later presents another CA is refused loudly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from wicket.config.types import HostPort
from wicket.errors import BadParameter, WicketError
from wicket.identity import Identity, identity_from_certificate
from wicket.pki.keys import write_private_file
from wicket.pki.pem import load_certificate, load_certificates
from wicket.pki.pin import ca_pin, check_pin, parse_pin

ENV_HOME = "WSH_HOME"
PROFILE_FILE = "profile.json"
MAX_PROFILE_BYTES = 1024 * 1024
MAX_CLUSTER_FILE_BYTES = 256 * 1024
MAX_PROFILES = 256
_USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")


def wsh_home(environ: dict[str, str] | None = None) -> Path:
    """`$WSH_HOME`, else `~/.wsh`."""
    env = os.environ if environ is None else environ
    override = env.get(ENV_HOME)
    return Path(override) if override else Path.home() / ".wsh"


def check_proxy(text: str) -> str:
    """A proxy address as HOST:PORT (a bare host gets the default port 3080)."""
    value = text.strip()
    for scheme in ("https://", "http://"):
        value = value.removeprefix(scheme)
    value = value.rstrip("/")
    bare = value.replace("[", "").replace("]", "")
    if (value and ":" not in bare) or value.endswith("]"):
        value = f"{value}:3080"
    try:
        return str(HostPort.parse(value))
    except ValueError as exc:
        raise BadParameter(f"--proxy: {exc}") from None


def check_user(name: str) -> str:
    """A user name safe to use as a directory name."""
    if not _USER_RE.fullmatch(name):
        raise BadParameter(f"invalid user name {name!r}")
    return name


@dataclass(frozen=True)
class ClusterInfo:
    """What a client knows about a cluster: its name and CA certificates (PEM by kind)."""

    cluster_name: str
    cas: dict[str, str]

    @property
    def host_ca(self) -> x509.Certificate:
        """The host CA: it signs the proxy's and the auth service's certificates."""
        pem = self.cas.get("host")
        if not pem:
            raise BadParameter("the cluster information has no host CA certificate")
        return load_certificate(pem.encode())

    @property
    def pin(self) -> str:
        """The host CA's pin, computed here (never taken from the server's word)."""
        return ca_pin(self.host_ca)

    @classmethod
    def from_json(cls, data: Any) -> ClusterInfo:
        """Parse `/v1/webapi/cluster`, a login answer or a stored cluster.json."""
        if not isinstance(data, dict):
            raise BadParameter("cluster information is not a JSON object")
        name = data.get("cluster_name")
        cas = data.get("cas")
        if not isinstance(name, str) or not name:
            raise BadParameter("cluster information has no cluster_name")
        if not isinstance(cas, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in cas.items()
        ):
            raise BadParameter("cluster information has no CA certificates")
        for kind, pem in cas.items():
            load_certificates(pem.encode(), limit=4)  # refuse garbage before storing it
            if kind not in {"user", "host", "db"}:
                raise BadParameter(f"unknown CA kind {kind!r} in the cluster information")
        return cls(cluster_name=name, cas=dict(cas))

    def to_json(self) -> dict[str, Any]:
        """The stored form (with the pin, for people reading the file)."""
        return {"cluster_name": self.cluster_name, "cas": self.cas, "ca_pin": self.pin}


@dataclass(frozen=True)
class Profile:
    """One logged-in proxy: who, where, and the key files of that login."""

    proxy: str
    user: str
    cluster_name: str
    directory: Path

    @property
    def key_file(self) -> Path:
        """The private key (0600)."""
        return self.directory / "key.pem"

    @property
    def cert_file(self) -> Path:
        """The user certificate."""
        return self.directory / "cert.pem"

    @property
    def cluster_file(self) -> Path:
        """The cluster's CA certificates."""
        return self.directory / "cluster.json"

    def key_pem(self) -> bytes:
        """The private key PEM."""
        return _read(self.key_file, MAX_CLUSTER_FILE_BYTES)

    def cert_pem(self) -> bytes:
        """The certificate PEM."""
        return _read(self.cert_file, MAX_CLUSTER_FILE_BYTES)

    def certificate(self) -> x509.Certificate:
        """The user certificate, parsed."""
        return load_certificate(self.cert_pem())

    def identity(self) -> Identity:
        """The identity the certificate carries (roles, traits, expiry)."""
        return identity_from_certificate(self.certificate())

    def cluster(self) -> ClusterInfo:
        """The cluster's CAs saved at login."""
        raw = _read(self.cluster_file, MAX_CLUSTER_FILE_BYTES)
        try:
            return ClusterInfo.from_json(json.loads(raw))
        except ValueError as exc:
            raise WicketError(f"{self.cluster_file} is not valid JSON: {exc}") from None

    def expires(self) -> datetime:
        """When the certificate stops being valid."""
        return self.certificate().not_valid_after_utc

    def expired(self, now: datetime | None = None) -> bool:
        """Whether the certificate is past its validity."""
        return (now or datetime.now(UTC)) >= self.expires()


def _read(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as stream:
            data = stream.read(limit + 1)
    except FileNotFoundError:
        raise WicketError(f"{path} is missing; run wsh login again") from None
    except OSError as exc:
        raise WicketError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise WicketError(f"{path} is larger than {limit} bytes")
    return data


class ProfileStore:
    """Reads and writes `profile.json` and the key directories of one wsh home."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)

    @property
    def profile_file(self) -> Path:
        """Where the profile index lives."""
        return self.home / PROFILE_FILE

    def _load(self) -> dict[str, Any]:
        if not self.profile_file.exists():
            return {"current": None, "profiles": {}, "trusted": {}}
        raw = _read(self.profile_file, MAX_PROFILE_BYTES)
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise WicketError(f"{self.profile_file} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise WicketError(f"{self.profile_file} is not a JSON object")
        profiles = data.get("profiles")
        trusted = data.get("trusted")
        return {
            "current": data.get("current") if isinstance(data.get("current"), str) else None,
            "profiles": profiles if isinstance(profiles, dict) else {},
            "trusted": trusted if isinstance(trusted, dict) else {},
        }

    def _save(self, data: dict[str, Any]) -> None:
        if len(data["profiles"]) > MAX_PROFILES:
            raise BadParameter(f"more than {MAX_PROFILES} wsh profiles")
        write_private_file(self.profile_file, json.dumps(data, indent=2).encode() + b"\n")

    def key_directory(self, proxy: str, user: str) -> Path:
        """`keys/<proxy>/<user>` for one login."""
        return self.home / "keys" / check_proxy(proxy) / check_user(user)

    def current(self) -> Profile | None:
        """The profile `wsh` uses now, or None when not logged in."""
        data = self._load()
        current = data["current"]
        if current is None:
            return None
        return self._profile(current, data["profiles"].get(current))

    def get(self, proxy: str) -> Profile | None:
        """The profile of one proxy, if logged in there."""
        proxy = check_proxy(proxy)
        return self._profile(proxy, self._load()["profiles"].get(proxy))

    def _profile(self, proxy: str, entry: object) -> Profile | None:
        if not isinstance(entry, dict):
            return None
        user, cluster = entry.get("user"), entry.get("cluster_name")
        if not isinstance(user, str) or not isinstance(cluster, str):
            return None
        return Profile(proxy, user, cluster, self.key_directory(proxy, user))

    def trusted_pin(self, proxy: str) -> str | None:
        """The CA pin remembered for a proxy (from an earlier login or signup)."""
        value = self._load()["trusted"].get(check_proxy(proxy))
        return parse_pin(value) if isinstance(value, str) else None

    def trust(self, proxy: str, pin: str) -> None:
        """Remember a proxy's CA pin (like an SSH known host)."""
        data = self._load()
        data["trusted"][check_proxy(proxy)] = parse_pin(pin)
        self._save(data)

    def save_login(
        self,
        *,
        proxy: str,
        user: str,
        key_pem: bytes,
        cert_pem: bytes,
        cluster: ClusterInfo,
        remember_pin: bool = True,
    ) -> Profile:
        """Store a login's key, certificate and cluster CAs; make it the current profile.

        `remember_pin=False` (an `--insecure` login) leaves the remembered pins alone.
        """
        proxy = check_proxy(proxy)
        user = check_user(user)
        profile = Profile(proxy, user, cluster.cluster_name, self.key_directory(proxy, user))
        data = self._load()
        old = self._profile(proxy, data["profiles"].get(proxy))
        write_private_file(profile.key_file, key_pem)
        write_private_file(profile.cert_file, cert_pem)
        write_private_file(profile.cluster_file, json.dumps(cluster.to_json(), indent=2).encode())
        data["profiles"][proxy] = {
            "proxy": proxy,
            "user": user,
            "cluster_name": cluster.cluster_name,
            "logged_in": datetime.now(UTC).isoformat(),
        }
        data["current"] = proxy
        if remember_pin:
            data["trusted"][proxy] = cluster.pin
        self._save(data)
        if old is not None and old.directory != profile.directory:
            shutil.rmtree(old.directory, ignore_errors=True)
        return profile

    def logout(self, proxy: str | None = None) -> Profile:
        """Remove the keys and profile of a proxy (default: the current one)."""
        data = self._load()
        name = check_proxy(proxy) if proxy else data["current"]
        profile = self._profile(name, data["profiles"].get(name)) if name else None
        if profile is None or name is None:
            raise WicketError("not logged in")
        shutil.rmtree(profile.directory, ignore_errors=True)
        _remove_empty(profile.directory.parent)
        del data["profiles"][name]
        if data["current"] == name:
            data["current"] = next(iter(data["profiles"]), None)
        self._save(data)
        return profile


def _remove_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:
        return


def check_cluster_pin(cluster: ClusterInfo, pin: str) -> None:
    """Refuse a cluster whose host CA does not match `pin`."""
    check_pin(cluster.host_ca, [pin])
