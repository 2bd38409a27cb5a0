"""Client layer: per-database route certificates kept in a `wsh` profile (`wsh db login`).

Layout, under the login's key directory (`keys/<proxy>/<user>/`, see `profile.py`):

    db/<NAME>/cert.pem       the route certificate (identity with service, db user, db name)
    db/<NAME>/key.pem        its private key (the login's key; the API certifies that key)
    db/<NAME>/<NAME>.pem     certificate + key in one file, what mongosh and drivers load
    db/<NAME>/cas.pem        the cluster's host CA: it signs the proxy's certificate
    db/<NAME>/database.json  the database resource as the auth service described it

Every file is 0600. A route certificate never outlives the login it came from (the auth
service caps it), so renewing one needs a valid login.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509

from wicket.auth.databases import DATABASE_NAME_RE
from wicket.client.identity_files import identity_from_profile
from wicket.client.output import local_time
from wicket.client.profile import Profile
from wicket.errors import AccessDenied, BadParameter, WicketError
from wicket.identity import DatabaseRoute, identity_from_certificate
from wicket.pki.keys import load_private_key, public_key_pem, write_private_file
from wicket.pki.pem import load_certificate

MAX_FILE_BYTES = 256 * 1024
MAX_DATABASES = 1024
WILDCARD = "*"


def check_database_name(name: str) -> str:
    """A database service name that is also safe as a directory name."""
    if not DATABASE_NAME_RE.match(name) or len(name) > 63:
        raise BadParameter(f"invalid database name {name!r}")
    return name


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise WicketError(f"{path} is missing; run wsh db login again") from None
    if len(data) > MAX_FILE_BYTES:
        raise WicketError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    return data


@dataclass(frozen=True)
class DatabaseLogin:
    """One database's saved route certificate and the files clients load."""

    name: str
    directory: Path

    @property
    def cert_file(self) -> Path:
        """The route certificate."""
        return self.directory / "cert.pem"

    @property
    def key_file(self) -> Path:
        """Its private key."""
        return self.directory / "key.pem"

    @property
    def combined_file(self) -> Path:
        """Certificate and key in one PEM (mongosh `--tlsCertificateKeyFile`)."""
        return self.directory / f"{self.name}.pem"

    @property
    def ca_file(self) -> Path:
        """The CA that signs the proxy's certificate (mongosh `--tlsCAFile`)."""
        return self.directory / "cas.pem"

    @property
    def info_file(self) -> Path:
        """The database resource."""
        return self.directory / "database.json"

    def cert_pem(self) -> bytes:
        """The route certificate PEM."""
        return _read(self.cert_file)

    def key_pem(self) -> bytes:
        """The private key PEM."""
        return _read(self.key_file)

    def ca_pem(self) -> bytes:
        """The host CA PEM."""
        return _read(self.ca_file)

    def certificate(self) -> x509.Certificate:
        """The route certificate, parsed."""
        return load_certificate(self.cert_pem())

    def route(self) -> DatabaseRoute:
        """The route the certificate carries."""
        route = identity_from_certificate(self.certificate()).route
        if route is None:
            raise WicketError(f"{self.cert_file} carries no database route; run wsh db login")
        return route

    def database(self) -> dict[str, Any]:
        """The database resource saved at login (`kind: db`)."""
        try:
            data = json.loads(_read(self.info_file))
        except ValueError as exc:
            raise WicketError(f"{self.info_file} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise WicketError(f"{self.info_file} is not a JSON object")
        return data

    def expires(self) -> datetime:
        """When the route certificate stops being valid."""
        return self.certificate().not_valid_after_utc

    def valid_for(self, now: datetime | None = None) -> timedelta:
        """How long the certificate stays valid (negative once expired)."""
        return self.expires() - (now or datetime.now(UTC))


class DatabaseLogins:
    """The `db/` directory of one wsh login."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.directory = profile.directory / "db"

    def get(self, name: str) -> DatabaseLogin | None:
        """A saved database login, or None."""
        login = DatabaseLogin(check_database_name(name), self.directory / name)
        return login if login.cert_file.exists() else None

    def names(self) -> list[str]:
        """Every database with saved certificates, sorted."""
        if not self.directory.is_dir():
            return []
        found = sorted(
            entry.name
            for entry in self.directory.iterdir()
            if entry.is_dir() and DATABASE_NAME_RE.match(entry.name)
        )
        return found[:MAX_DATABASES]

    def save(
        self,
        name: str,
        *,
        cert_pem: bytes,
        key_pem: bytes,
        ca_pem: bytes,
        database: dict[str, Any],
    ) -> DatabaseLogin:
        """Write the certificate, key, combined file, CA and resource (all 0600)."""
        login = DatabaseLogin(check_database_name(name), self.directory / name)
        cert_pem = cert_pem if cert_pem.endswith(b"\n") else cert_pem + b"\n"
        write_private_file(login.key_file, key_pem)
        write_private_file(login.ca_file, ca_pem)
        write_private_file(login.info_file, json.dumps(database, indent=2).encode() + b"\n")
        write_private_file(login.combined_file, cert_pem + key_pem)
        write_private_file(login.cert_file, cert_pem)  # last: its presence marks a login
        return login

    def remove(self, name: str) -> bool:
        """Delete one database's files; False when there were none."""
        directory = self.directory / check_database_name(name)
        if not directory.exists():
            return False
        shutil.rmtree(directory)
        with contextlib.suppress(OSError):
            self.directory.rmdir()
        return True


def choose_value(kind: str, option: str, requested: str | None, allowed: list[str]) -> str:
    """The db user or db name to use: the one asked for, else the only one the roles allow.

    `kind` is "database user" or "database name"; `option` the flag that sets it.
    """
    if requested:
        return requested
    concrete = [value for value in allowed if WILDCARD not in value]
    if len(allowed) == 1 and len(concrete) == 1:
        return concrete[0]
    if not allowed:
        raise AccessDenied(f"your roles allow no {kind} for this database")
    listing = ", ".join(allowed)
    hint = " (any name matching these patterns)" if len(concrete) != len(allowed) else ""
    raise BadParameter(f"please choose a {kind} with {option}; your roles allow: {listing}{hint}")


def find_database(databases: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The entry of `GET /v1/databases` (what `wsh db ls` shows) for one name."""
    for entry in databases:
        metadata = entry.get("metadata")
        if isinstance(metadata, dict) and metadata.get("name") == name:
            return entry
    raise WicketError(f'database "{name}" not found: `wsh db ls` lists the ones you can use')


def database_resource(entry: dict[str, Any]) -> dict[str, Any]:
    """The `kind: db` resource inside a `/v1/databases` entry (without the listing extras)."""
    return {key: entry[key] for key in ("kind", "version", "metadata", "spec") if key in entry}


def is_documentdb(resource: dict[str, Any]) -> bool:
    """A DocumentDB cluster (aws settings or an Amazon endpoint): no retryable writes there."""
    spec = resource.get("spec")
    if not isinstance(spec, dict):
        return False
    aws = spec.get("aws")
    uri = str(spec.get("uri", ""))
    return bool(aws) or ".docdb.amazonaws.com" in uri or ".docdb-elastic.amazonaws.com" in uri


async def list_databases(profile: Profile) -> list[dict[str, Any]]:
    """`GET /v1/databases` as the profile's user (filtered by the user's roles)."""
    async with identity_from_profile(profile).auth_client() as client:
        answer = await client.get("/v1/databases")
    if not isinstance(answer, list):
        raise WicketError("the auth service answered /v1/databases with something not a list")
    return [entry for entry in answer if isinstance(entry, dict)]


def require_login(profile: Profile, now: datetime | None = None) -> None:
    """Refuse to ask for a route certificate with an expired login (the API would refuse)."""
    if profile.expired(now):
        raise AccessDenied(
            f"your Wicket login expired at {local_time(profile.expires())}: run wsh login "
            f"--proxy={profile.proxy} --user={profile.user} again"
        )


async def issue_database_login(
    profile: Profile,
    name: str,
    *,
    db_user: str,
    db_name: str | None,
    database: dict[str, Any] | None = None,
) -> DatabaseLogin:
    """Ask the auth service for a route certificate for the login's key and save it."""
    check_database_name(name)
    require_login(profile)
    key_pem = profile.key_pem()
    body: dict[str, Any] = {
        "service": name,
        "db_user": db_user,
        "db_name": db_name,
        "public_key_pem": public_key_pem(load_private_key(key_pem)).decode(),
    }
    async with identity_from_profile(profile).auth_client() as client:
        answer = await client.post("/v1/certs/database", body)
    if not isinstance(answer, dict) or not isinstance(answer.get("cert_pem"), str):
        raise WicketError("the auth service's answer has no certificate")
    resource = answer.get("database")
    if not isinstance(resource, dict):
        resource = database or {}
    cluster = profile.cluster()
    return DatabaseLogins(profile).save(
        name,
        cert_pem=answer["cert_pem"].encode(),
        key_pem=key_pem,
        ca_pem=cluster.cas["host"].encode(),
        database=resource,
    )


@dataclass(frozen=True)
class Refreshed:
    """What a new wsh login did with one saved database login."""

    name: str
    reissued: bool
    reason: str = ""

    def notice(self) -> str:
        """One line for the user."""
        if self.reissued:
            return f'Renewed the certificate for database "{self.name}" with your new login'
        return f'Dropped the certificate for database "{self.name}": {self.reason}'


async def refresh_database_logins(profile: Profile) -> list[Refreshed]:
    """After a new login: re-issue every saved database certificate, or drop it.

    Saved route certificates were issued to the previous login with the rights it had;
    kept as they are, rights an administrator has since taken away would stay usable.
    Each is asked for again with the same route under the new login (the auth service
    decides from the user's current roles); one that cannot be re-issued, for whatever
    reason, is removed.
    """
    logins = DatabaseLogins(profile)
    results: list[Refreshed] = []
    for name in logins.names():
        login = logins.get(name)
        try:
            if login is None:
                raise WicketError("its files are incomplete")
            route = login.route()
            if route.db_user is None:
                raise WicketError("it names no database user")
            saved: dict[str, Any] | None
            try:
                saved = login.database()
            except WicketError:
                saved = None
            await issue_database_login(
                profile, name, db_user=route.db_user, db_name=route.db_name, database=saved
            )
        except WicketError as error:
            logins.remove(name)
            results.append(Refreshed(name, reissued=False, reason=str(error)))
            continue
        results.append(Refreshed(name, reissued=True))
    return results
