"""CLI layer: `wctl auth sign --format=mongodb` — TLS files for a self-hosted MongoDB.

It signs with the cluster's database CA, whose private key never leaves the auth
service's backend, so the command runs on the auth host only: it reads the config
(`wctl -c FILE`, `$WICKET_CONFIG_FILE`, default `/etc/wicket.yaml`), opens
`data_dir/backend.sqlite` read-mostly the way the auth service does
(`wicket.authserver.cluster`), and writes:

- `PREFIX.crt`: the server certificate followed by its key (mongod's
  `net.tls.certificateKeyFile`), 0600;
- `PREFIX.cas`: the database CA certificate (mongod's `net.tls.CAFile`: it verifies the
  client certificates the agent presents for MONGODB-X509), 0600.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import click

from wicket.auth.durations import format_duration, parse_duration
from wicket.authserver.cluster import CA_KEYS
from wicket.backend.sqlite import SQLiteBackend
from wicket.client.cli_support import ErrorReportingGroup
from wicket.client.identity_files import DEFAULT_CONFIG_FILE
from wicket.config.loader import load_config
from wicket.errors import BadParameter, NotFound, WicketError
from wicket.pki.authority import CAKind, CertificateAuthority
from wicket.pki.keys import write_private_file
from wicket.pki.mongodb import issue_mongodb_server_certificate

DEFAULT_SIGN_TTL = "2190h"
BACKEND_FILE = "backend.sqlite"
MAX_HOSTS = 64
NOT_AUTH_HOST = (
    "wctl auth sign needs the database CA's private key, which only the auth host has: "
    "run it on the auth host (wctl -c /etc/wicket.yaml, the config that enables auth_service)"
)


class AuthGroup(ErrorReportingGroup):
    """`wctl auth`: errors are `wctl: ...`."""

    program = "wctl"


@click.group("auth", cls=AuthGroup)
def auth_group() -> None:
    """Certificates signed by the cluster's CAs (on the auth host)."""


def _config_file(ctx: click.Context) -> Path:
    """The config the root `wctl -c` option named, else the default."""
    value = ctx.find_root().params.get("config_file")
    return Path(value) if value else DEFAULT_CONFIG_FILE


def backend_path(config_file: Path) -> Path:
    """The auth service's backend file on this host, or an error saying where to run."""
    if not config_file.exists():
        raise NotFound(f"{NOT_AUTH_HOST} ({config_file} does not exist)")
    config = load_config(config_file)
    if not config.auth_service.enabled:
        raise BadParameter(f"{NOT_AUTH_HOST} ({config_file} does not enable auth_service)")
    path = Path(config.wicket.data_dir) / BACKEND_FILE
    if not path.exists():
        raise NotFound(
            f"no auth service backend at {path}: start the auth service once "
            f"(wicket start -c {config_file}) so it creates the cluster's CAs"
        )
    return path


async def read_db_ca(path: Path) -> CertificateAuthority:
    """The database CA, key included, from the backend file `path`."""
    backend = await SQLiteBackend.open(path)
    try:
        item = await backend.get(CA_KEYS[CAKind.DB])
    finally:
        await backend.close()
    if item is None:
        raise NotFound(f"the backend at {path} has no database CA yet: start the auth service once")
    authority = CertificateAuthority.from_json(item.value)
    if authority.kind is not CAKind.DB:
        raise WicketError(f"the record {CA_KEYS[CAKind.DB]} holds the {authority.kind.value} CA")
    return authority


def _hosts(values: tuple[str, ...]) -> list[str]:
    """`--host a,b --host c` as one list."""
    hosts = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not hosts:
        raise click.BadParameter("give at least one host name or address", param_hint="--host")
    if len(hosts) > MAX_HOSTS:
        raise click.BadParameter(f"at most {MAX_HOSTS} hosts", param_hint="--host")
    return hosts


def _ttl(text: str) -> timedelta:
    try:
        ttl = parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from None
    if ttl <= timedelta(0):
        raise click.BadParameter("must be positive", param_hint="--ttl")
    return ttl


def mongod_snippet(crt: Path, cas: Path) -> str:
    """The mongod.conf lines that use the files."""
    return (
        "net:\n"
        "  tls:\n"
        "    mode: requireTLS\n"
        f"    certificateKeyFile: {crt}\n"
        f"    CAFile: {cas}\n"
        "security:\n"
        "  authorization: enabled\n"
    )


@auth_group.command("sign")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["mongodb"]),
    required=True,
    help="What the files are for: mongodb (mongod's certificateKeyFile and CAFile).",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    required=True,
    help="Names and addresses the database is reached at, comma-separated (repeatable).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Prefix of the files to write: PREFIX.crt and PREFIX.cas.",
)
@click.option(
    "--ttl", default=DEFAULT_SIGN_TTL, show_default=True, help="Certificate lifetime (e.g. 2190h)."
)
@click.pass_context
def sign(
    ctx: click.Context, output_format: str, hosts: tuple[str, ...], out: Path, ttl: str
) -> None:
    """Sign a server certificate for a self-hosted MongoDB with the database CA."""
    del output_format  # only mongodb for now
    host_list = _hosts(hosts)
    lifetime = _ttl(ttl)
    db_ca = asyncio.run(read_db_ca(backend_path(_config_file(ctx))))
    cert_pem, key_pem = issue_mongodb_server_certificate(db_ca, host_list, ttl=lifetime)
    crt = Path(f"{out}.crt").absolute()
    cas = Path(f"{out}.cas").absolute()
    write_private_file(crt, cert_pem + key_pem)
    write_private_file(cas, db_ca.cert_pem())
    click.echo(
        f"Database credentials have been written to {crt}, {cas} "
        f"(valid for {format_duration(lifetime)}, hosts: {', '.join(host_list)}).\n\n"
        "To enable mutual TLS on your MongoDB server, add the following to its "
        "mongod.conf and restart it:\n\n"
        f"{mongod_snippet(crt, cas)}\n"
        "Then, on the database service host, set the database's tls.ca_cert_file to a copy "
        f"of {cas.name} (it also signed this server certificate), and create each database "
        'user in $external, e.g. db.getSiblingDB("$external").runCommand('
        '{createUser: "CN=alice", roles: [{role: "readWrite", db: "test"}]}).'
    )
