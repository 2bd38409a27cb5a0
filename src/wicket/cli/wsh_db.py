"""CLI layer: `wsh db login|connect|logout|config|env` and `wsh proxy db --tunnel`.

A database login is a route certificate (the user's identity plus service, db user and
db name) kept beside the wsh login (`wicket.client.dbprofile`). mongosh reaches the proxy
with it directly (TLS, no ALPN: the proxy recognises the route in the certificate);
other clients use the local tunnel (`wicket.client.localproxy`), which dials the proxy
with ALPN `wicket-mongodb` and renews the certificate as it nears expiry.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import ssl
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import click

from wicket.client.cli_support import run
from wicket.client.dbprofile import (
    DatabaseLogin,
    DatabaseLogins,
    check_database_name,
    choose_value,
    database_resource,
    find_database,
    is_documentdb,
    issue_database_login,
    list_databases,
    require_login,
)
from wicket.client.localproxy import LocalProxy
from wicket.client.output import OutputFormat, local_time, render
from wicket.client.profile import Profile, ProfileStore, wsh_home
from wicket.config.types import HostPort
from wicket.errors import AccessDenied, BadParameter, WicketError
from wicket.identity import HostRole
from wicket.server_identity import require_server_role
from wicket.tlsconfig import client_context

MONGODB_ALPN = "wicket-mongodb"
ENV_SHELL = "WSH_MONGOSH"
ENV_DB_PASSWORD = "WSH_DB_PASSWORD"  # noqa: S105 - the variable's name
SERVER_SELECTION_TIMEOUT_MS = 5000
MAX_RENEW_MARGIN = timedelta(minutes=1)
MAX_PASSWORD = 1024
INSTALL_HINT = (
    "neither mongosh nor the legacy mongo shell is installed: install mongosh "
    "(https://www.mongodb.com/try/download/shell, or `npm install -g mongosh`) "
    f"or set {ENV_SHELL} to its path"
)


class ShellKind(Enum):
    """Which MongoDB shell, since their TLS options differ."""

    MONGOSH = "mongosh"
    MONGO = "mongo"


@dataclass(frozen=True)
class Shell:
    """A MongoDB shell found on this machine."""

    path: str
    kind: ShellKind


@dataclass(frozen=True)
class ConnectTarget:
    """Everything a client needs to reach one database through the proxy."""

    name: str
    host: str
    port: int
    db_user: str
    db_name: str
    cert_key_file: Path
    cert_file: Path
    key_file: Path
    ca_file: Path
    documentdb: bool

    def uri(self) -> str:
        """The mongosh/driver URI straight to the proxy (TLS options go on the command line)."""
        query = {
            "directConnection": "true",
            "serverSelectionTimeoutMS": str(SERVER_SELECTION_TIMEOUT_MS),
        }
        return f"mongodb://{_host(self.host)}:{self.port}/{self.db_name}?{urlencode(query)}"

    def driver_uri(self) -> str:
        """A URI with the TLS files in it, for drivers (`wsh db env`)."""
        query = {
            "directConnection": "true",
            "tls": "true",
            "tlsCertificateKeyFile": str(self.cert_key_file),
            "tlsCAFile": str(self.ca_file),
        }
        if self.documentdb:
            query["retryWrites"] = "false"
        return f"mongodb://{_host(self.host)}:{self.port}/{self.db_name}?{urlencode(query)}"


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def find_shell(environ: Mapping[str, str] | None = None, which: Any = shutil.which) -> Shell:
    """`$WSH_MONGOSH`, else mongosh, else the legacy mongo on PATH; a clear error without."""
    env = os.environ if environ is None else environ
    override = env.get(ENV_SHELL)
    if override:
        path = Path(override)
        if not path.is_file() or not os.access(path, os.X_OK):
            raise WicketError(f"{ENV_SHELL}={override} is not an executable file")
        kind = ShellKind.MONGO if path.name in ("mongo", "mongo.exe") else ShellKind.MONGOSH
        return Shell(str(path), kind)
    for kind in (ShellKind.MONGOSH, ShellKind.MONGO):
        found = which(kind.value)
        if found:
            return Shell(str(found), kind)
    raise WicketError(INSTALL_HINT)


def shell_command(shell: Shell, target: ConnectTarget, extra: Sequence[str] = ()) -> list[str]:
    """The argv that opens `target` in `shell` (tsh's options, our names)."""
    if shell.kind is ShellKind.MONGOSH:
        argv = [
            shell.path,
            target.uri(),
            "--tls",
            "--tlsCertificateKeyFile",
            str(target.cert_key_file),
            "--tlsCAFile",
            str(target.ca_file),
        ]
        if target.documentdb:
            argv.append("--retryWrites=false")
    else:
        argv = [
            shell.path,
            "--host",
            target.host,
            "--port",
            str(target.port),
            "--ssl",
            "--sslPEMKeyFile",
            str(target.cert_key_file),
            "--sslCAFile",
            str(target.ca_file),
            target.db_name,
        ]
    return [*argv, *extra]


# -- profile helpers ---------------------------------------------------------------------


def _store() -> ProfileStore:
    return ProfileStore(wsh_home())


def _profile() -> Profile:
    profile = _store().current()
    if profile is None:
        raise WicketError("not logged in: run wsh login --proxy=... --user=... first")
    return profile


def renew_margin(login: DatabaseLogin) -> timedelta:
    """Renew this long before expiry: a quarter of the lifetime, at most a minute."""
    certificate = login.certificate()
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    return min(MAX_RENEW_MARGIN, lifetime / 4)


def _usable(login: DatabaseLogin | None, db_user: str | None, db_name: str | None) -> bool:
    if login is None:
        return False
    try:
        route = login.route()
        if login.valid_for() <= renew_margin(login):
            return False
    except WicketError:
        return False
    if db_user and route.db_user != db_user:
        return False
    return not (db_name and route.db_name != db_name)


def database_login(
    profile: Profile, name: str, db_user: str | None, db_name: str | None, *, force: bool = False
) -> DatabaseLogin:
    """The saved login for `name` if still good for the asked route, else a new one."""
    check_database_name(name)
    existing = DatabaseLogins(profile).get(name)
    if not force and _usable(existing, db_user, db_name):
        assert existing is not None
        return existing
    if existing is not None and not db_user and not db_name:
        try:  # renew the same route
            route = existing.route()
            db_user, db_name = route.db_user, route.db_name
        except WicketError:
            pass
    require_login(profile)
    databases = run(list_databases(profile))
    entry = find_database(databases, name)
    user = choose_value(
        "database user", "--db-user", db_user, list(entry.get("allowed_db_users", []))
    )
    database = choose_value(
        "database name", "--db-name", db_name, list(entry.get("allowed_db_names", []))
    )
    return run(
        issue_database_login(
            profile, name, db_user=user, db_name=database, database=database_resource(entry)
        )
    )


def connect_target(profile: Profile, login: DatabaseLogin) -> ConnectTarget:
    """Where and how to connect with a database login."""
    address = HostPort.parse(profile.proxy)
    route = login.route()
    return ConnectTarget(
        name=login.name,
        host=address.host,
        port=address.port,
        db_user=route.db_user or "",
        db_name=route.db_name or "test",
        cert_key_file=login.combined_file,
        cert_file=login.cert_file,
        key_file=login.key_file,
        ca_file=login.ca_file,
        documentdb=is_documentdb(login.database()),
    )


def _saved_login(profile: Profile, name: str) -> DatabaseLogin:
    login = DatabaseLogins(profile).get(name)
    if login is None:
        raise WicketError(f'not logged in to database "{name}": run wsh db login {name}')
    return login


def _db_options(function: Any) -> Any:
    function = click.option(
        "--db-name", default=None, help="Database (logical) name to use by default."
    )(function)
    return click.option(
        "--db-user", default=None, help="Database user to connect as (an IAM role for DocumentDB)."
    )(function)


# -- commands ----------------------------------------------------------------------------


def register(db: click.Group, cli: click.Group) -> None:
    """Add the database commands to `wsh db` and the `proxy` group to `wsh`."""
    db.add_command(db_login)
    db.add_command(db_connect)
    db.add_command(db_logout)
    db.add_command(db_config)
    db.add_command(db_env)
    proxy = type(cli)("proxy", help="Local proxies for clients that cannot use certificates.")
    proxy.add_command(proxy_db)
    cli.add_command(proxy)


@click.command("login")
@_db_options
@click.argument("name")
def db_login(db_user: str | None, db_name: str | None, name: str) -> None:
    """Get a certificate for one database (route: db user and db name)."""
    profile = _profile()
    login = database_login(profile, name, db_user, db_name, force=True)
    click.echo(
        f'Connection information for database "{login.name}" has been saved.\n\n'
        "You can now connect to it using the following command:\n\n"
        f"  wsh db connect {login.name}\n\n"
        "Or view the connect command for the native database CLI client:\n\n"
        f"  wsh db config {login.name}\n"
    )


@click.command("connect")
@_db_options
@click.argument("name")
@click.argument("shell_args", nargs=-1, type=click.UNPROCESSED)
def db_connect(
    db_user: str | None, db_name: str | None, name: str, shell_args: tuple[str, ...]
) -> None:
    """Open mongosh on a database (logging in to it first when needed).

    Arguments after `--` go to the shell, e.g. `-- --quiet --eval 'db.stats()'`.
    """
    profile = _profile()
    shell = find_shell()
    login = database_login(profile, name, db_user, db_name)
    argv = shell_command(shell, connect_target(profile, login), shell_args)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(shell.path, argv)  # noqa: S606 - the terminal stays attached; its exit code is ours


@click.command("logout")
@click.argument("name", required=False)
def db_logout(name: str | None) -> None:
    """Remove the certificates of one database (all of them without a name)."""
    logins = DatabaseLogins(_profile())
    names = [name] if name else logins.names()
    if name and not logins.remove(name):
        raise WicketError(f'not logged in to database "{name}"')
    for each in names:
        if not name:
            logins.remove(each)
        click.echo(f"Logged out of database {each}")
    if not names:
        click.echo("Not logged in to any database")


def _config_data(profile: Profile, login: DatabaseLogin, shell: Shell | None) -> dict[str, Any]:
    target = connect_target(profile, login)
    command = shell_command(shell or Shell("mongosh", ShellKind.MONGOSH), target)
    return {
        "name": target.name,
        "host": target.host,
        "port": target.port,
        "ca": str(target.ca_file),
        "cert": str(target.cert_file),
        "key": str(target.key_file),
        "cert_key": str(target.cert_key_file),
        "user": target.db_user,
        "database": target.db_name,
        "expires": login.expires().isoformat(),
        "command": shlex.join(command),
    }


@click.command("config")
@click.argument("name")
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json", "yaml", "cmd"]),
    default="text",
    show_default=True,
)
def db_config(name: str, output: str) -> None:
    """Show how to connect to a database you logged in to (files, URI, mongosh command)."""
    profile = _profile()
    login = _saved_login(profile, name)
    try:
        shell: Shell | None = find_shell()
    except WicketError:
        shell = None
    data = _config_data(profile, login, shell)
    if output == "cmd":
        click.echo(data["command"])
        return
    if output != "text":
        click.echo(render(data, OutputFormat(output)), nl=False)
        return
    rows = [
        ("Name", data["name"]),
        ("Host", data["host"]),
        ("Port", data["port"]),
        ("User", data["user"]),
        ("Database", data["database"]),
        ("CA", data["ca"]),
        ("Cert", data["cert"]),
        ("Key", data["key"]),
        ("Cert+Key", data["cert_key"]),
    ]
    for label, value in rows:
        click.echo(f"{label + ':':<10} {value}")
    click.echo(f"\nConnect with:\n  {data['command']}")


@click.command("env")
@click.argument("name")
def db_env(name: str) -> None:
    """Print `export` lines for scripts and drivers (eval "$(wsh db env NAME)")."""
    profile = _profile()
    target = connect_target(profile, _saved_login(profile, name))
    values = {
        "WICKET_DB_URI": target.driver_uri(),
        "WICKET_DB_HOST": target.host,
        "WICKET_DB_PORT": str(target.port),
        "WICKET_DB_NAME": target.db_name,
        "WICKET_DB_USER": target.db_user,
        "TLS_CERT": str(target.cert_key_file),
        "TLS_CA": str(target.ca_file),
    }
    for key, value in values.items():
        click.echo(f"export {key}={shlex.quote(value)}")


# -- wsh proxy db --tunnel -----------------------------------------------------------------


class RouteCertificates:
    """The tunnel's certificate: renewed from the current wsh login before it expires."""

    def __init__(
        self, store: ProfileStore, name: str, db_user: str | None, db_name: str | None
    ) -> None:
        self.store = store
        self.name = name
        self.db_user = db_user
        self.db_name = db_name
        self._lock = asyncio.Lock()
        self._context: ssl.SSLContext | None = None
        self._login: DatabaseLogin | None = None
        self._cert_pem: bytes | None = None  # what `_context` was built from
        self.renewals = 0

    def profile(self) -> Profile:
        """The current wsh login (re-read: the user may have logged in again)."""
        profile = self.store.current()
        if profile is None:
            raise AccessDenied("you are logged out of Wicket: run wsh login, then reconnect")
        return profile

    async def context(self) -> ssl.SSLContext:
        """A TLS context with a certificate good for a while (renewed as needed)."""
        async with self._lock:
            if self._current_context_is_good():
                assert self._context is not None
                return self._context
            profile = self.profile()
            login = await asyncio.to_thread(
                database_login, profile, self.name, self.db_user, self.db_name
            )
            if self._login is not None:
                self.renewals += 1
                _report(
                    f'renewed the certificate for database "{self.name}" '
                    f"(valid until {local_time(login.expires())})"
                )
            route = login.route()
            self.db_user, self.db_name = route.db_user, route.db_name
            self._login = login
            self._cert_pem = login.cert_pem()
            self._context = require_server_role(
                client_context(
                    ca_pems=[login.ca_pem()],
                    cert_chain_pem=self._cert_pem,
                    key_pem=login.key_pem(),
                    alpn=[MONGODB_ALPN],
                ),
                HostRole.PROXY,
            )
            return self._context

    def _current_context_is_good(self) -> bool:
        """The context holds the saved certificate (not one `wsh login` replaced) in time."""
        login = self._login
        if self._context is None or login is None:
            return False
        try:
            return login.cert_pem() == self._cert_pem and login.valid_for() > renew_margin(login)
        except WicketError:  # removed (wsh logout, or dropped by a new login)
            return False

    def login(self) -> DatabaseLogin:
        """The login the tunnel uses now."""
        assert self._login is not None
        return self._login


def _read_password_stdin() -> str:
    line = sys.stdin.readline(MAX_PASSWORD + 2).rstrip("\r\n")
    if not line:
        raise BadParameter("--db-password-stdin: no password on standard input")
    if len(line) > MAX_PASSWORD:
        raise BadParameter(f"--db-password-stdin: longer than {MAX_PASSWORD} characters")
    return line


def _report(line: str) -> None:
    stamp = datetime.now(UTC).astimezone().strftime("%H:%M:%S")
    click.echo(f"wsh: {stamp} {line}", err=True)


async def _serve_tunnel(
    certificates: RouteCertificates, proxy_addr: str, port: int, password: str | None
) -> None:
    address = HostPort.parse(proxy_addr)
    await certificates.context()  # log in to the database before listening

    async def dial() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        context = await certificates.context()
        return await asyncio.open_connection(
            address.host,
            address.port,
            ssl=context,
            server_hostname=address.host,
            ssl_handshake_timeout=15,
            limit=256 * 1024,
        )

    local = LocalProxy(dial, port=port, scram_password=password, report=_report)
    host, bound = await local.start()
    login = certificates.login()
    target = connect_target(certificates.profile(), login)
    retry = " --retryWrites=false" if target.documentdb else ""
    retry_uri = "&retryWrites=false" if target.documentdb else ""
    profile = certificates.profile()
    click.echo(
        f'Started authenticated tunnel for the MongoDB database "{login.name}" in cluster '
        f'"{profile.cluster_name}" on {host}:{bound}.\n\n'
        "Use one of the following commands to connect to the database or to the address "
        "above using other database GUI/CLI clients:\n\n"
        f"  mongosh mongodb://{host}:{bound}/{target.db_name}{retry}\n"
        f'  python: MongoClient("mongodb://{host}:{bound}/{target.db_name}'
        f'?directConnection=true{retry_uri}")\n\n'
        "Press Ctrl-C to stop the tunnel."
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    try:
        await stop.wait()
    finally:
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)
        await local.close()
    click.echo("Tunnel stopped.", err=True)


@click.command("db")
@click.option("--tunnel", is_flag=True, help="Listen locally without TLS (required for now).")
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="Local port (0: any).")
@click.option(
    "--db-password-stdin",
    is_flag=True,
    help=f"Read the password SCRAM clients use here from stdin (or set ${ENV_DB_PASSWORD}).",
)
@_db_options
@click.argument("name")
def proxy_db(
    tunnel: bool,
    port: int,
    db_password_stdin: bool,
    db_user: str | None,
    db_name: str | None,
    name: str,
) -> None:
    """Start a local authenticated tunnel to a database, for any MongoDB client."""
    if not tunnel:
        raise BadParameter(
            "only tunnel mode exists for now: run wsh proxy db --tunnel "
            f"{'--port=N ' if not port else f'--port={port} '}{name}"
        )
    check_database_name(name)
    password = _read_password_stdin() if db_password_stdin else os.environ.get(ENV_DB_PASSWORD)
    store = _store()
    profile = _profile()
    certificates = RouteCertificates(store, name, db_user, db_name)
    run(_serve_tunnel(certificates, profile.proxy, port, password or None))
