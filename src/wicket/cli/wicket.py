"""CLI layer: the `wicket` command (daemon start, config generators, systemd unit).

Every failure ends in one `wicket: ...` line on stderr and a non-zero exit (2 for bad
flags or a bad config, 1 for anything else), never a traceback.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from wicket import __version__
from wicket.config.loader import ConfigError, load_config
from wicket.config.models import (
    DEFAULT_AUTH_LISTEN,
    DEFAULT_CONFIG_PATH,
    DEFAULT_DATA_DIR,
    LogSeverity,
    Protocol,
    SecondFactor,
    TlsMode,
    WicketConfig,
)
from wicket.config.types import (
    HostPort,
    check_aws_account_id,
    check_aws_region,
    check_ca_pin,
    check_database_name,
    check_external_id,
    check_mongodb_uri,
    check_role_arn,
    parse_labels,
)
from wicket.config.writers import (
    DEFAULT_ENV_FILE,
    DEFAULT_FD_LIMIT,
    AllInOneOptions,
    DbAgentOptions,
    all_in_one_config,
    db_agent_config,
    dump_config,
    systemd_unit,
    write_new_file,
)
from wicket.daemon import run_daemon
from wicket.demo import demo_command
from wicket.errors import WicketError

CONFIG_FILE_ENV = "WICKET_CONFIG_FILE"
"""Overrides the default config path (`/etc/wicket.yaml`), e.g. what `-o file` writes."""
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}
EXIT_FAILURE = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print `wicket: message` (each line) to stderr and exit with `code`."""
    for line in message.splitlines() or [""]:
        click.echo(f"wicket: {line}", err=True)
    raise SystemExit(code)


def default_config_path() -> Path:
    """The config path `start` reads and `-o file` writes: $WICKET_CONFIG_FILE or /etc."""
    return Path(os.environ.get(CONFIG_FILE_ENV) or DEFAULT_CONFIG_PATH)


class HostPortType(click.ParamType[HostPort, Any]):
    """A HOST:PORT flag value."""

    name = "HOST:PORT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Parse the flag; a bad value is a usage error naming the flag."""
        if isinstance(value, HostPort):
            return value
        try:
            return HostPort.parse(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class CheckedType(click.ParamType[Any, Any]):
    """A string flag checked by one of the config's `check_*` functions."""

    def __init__(self, name: str, check: Callable[[str], Any]) -> None:
        self.name = name
        self._check = check

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Run the check; a bad value is a usage error naming the flag."""
        try:
            return self._check(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


HOST_PORT = HostPortType()
LABELS = CheckedType("KEY=VALUE,...", parse_labels)


def _output_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-o",
        "--output",
        default="stdout",
        show_default=True,
        metavar="file|stdout|PATH",
        help=f'Where to write: "stdout", "file" ({DEFAULT_CONFIG_PATH}, or ${CONFIG_FILE_ENV} '
        "when set) or a file path.",
    )(func)


def _force_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--force", is_flag=True, help="Overwrite an existing file.")(func)


def _write_config(config: WicketConfig, output: str, force: bool) -> None:
    text = dump_config(config)
    if output == "stdout":
        click.echo(text, nl=False)
        return
    path = (default_config_path() if output == "file" else Path(output)).absolute()
    try:
        write_new_file(path, text, mode=0o600, force=force)
    except WicketError as exc:
        fail(str(exc))
    click.echo(f'Wrote config to file "{path}". Now you can start the server. Happy Wicketing!')


@click.group(context_settings=CONTEXT_SETTINGS)
def cli() -> None:
    """wicket: part of Wicket, identity-aware access to MongoDB and DocumentDB."""


@cli.command()
def version() -> None:
    """Print the version."""
    click.echo(f"wicket v{__version__}")


@cli.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_CONFIG_PATH,
    envvar=CONFIG_FILE_ENV,
    show_default=True,
    help=f"Config file to run (${CONFIG_FILE_ENV} overrides the default).",
)
@click.option("-d", "--debug", is_flag=True, help="Log at DEBUG severity whatever the config says.")
def start(config_path: Path, debug: bool) -> None:
    """Start the services the config enables and run until SIGTERM or SIGINT."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    if debug:
        glob = config.wicket
        log = glob.log.model_copy(update={"severity": LogSeverity.DEBUG})
        config = config.model_copy(update={"wicket": glob.model_copy(update={"log": log})})
    try:
        code = run_daemon(config, config_path)
    except WicketError as exc:
        fail(str(exc))
    raise SystemExit(code)


@cli.command()
@click.option(
    "--cluster-name", required=True, help="Name of the new cluster (cannot change later)."
)
@click.option(
    "--public-addr",
    type=HOST_PORT,
    required=True,
    help="HOST:PORT users and agents reach the proxy at.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="Directory for the backend and the node's identities.",
)
@click.option(
    "--auth-listen-addr",
    type=HOST_PORT,
    default=str(DEFAULT_AUTH_LISTEN),
    show_default=True,
    help="HOST:PORT the auth service listens on.",
)
@click.option(
    "--proxy-listen-addr",
    type=HOST_PORT,
    default=None,
    help="HOST:PORT the proxy listens on  [default: 0.0.0.0 and the port of --public-addr]",
)
@click.option("--nodename", default=None, help="Name of this host (default: its hostname).")
@click.option(
    "--second-factor",
    type=click.Choice([factor.value for factor in SecondFactor]),
    default=SecondFactor.OFF.value,
    show_default=True,
    help="Whether logins also need a TOTP code.",
)
@_output_option
@_force_option
def configure(
    cluster_name: str,
    public_addr: HostPort,
    data_dir: Path,
    auth_listen_addr: HostPort,
    proxy_listen_addr: HostPort | None,
    nodename: str | None,
    second_factor: str,
    output: str,
    force: bool,
) -> None:
    """Write an all-in-one config: auth service and proxy service in one process."""
    options = AllInOneOptions(
        cluster_name=cluster_name,
        public_addr=public_addr,
        data_dir=data_dir.absolute(),
        auth_listen_addr=auth_listen_addr,
        proxy_listen_addr=proxy_listen_addr,
        nodename=nodename,
        second_factor=SecondFactor(second_factor),
    )
    try:
        config = all_in_one_config(options)
    except ConfigError as exc:
        raise click.UsageError(_flag_message(exc)) from None
    _write_config(config, output, force)


@cli.group()
def db() -> None:
    """Database service commands."""


@db.group(name="configure")
def db_configure() -> None:
    """Generate database service configs."""


_FLAG_OF_FIELD = {
    "wicket.nodename": "--nodename",
    "wicket.data_dir": "--data-dir",
    "wicket.auth_token": "--token",
    "auth_service.cluster_name": "--cluster-name",
    ".description": "--description",
    ".static_labels": "--labels",
    ".resources": "--dynamic-resources-labels",
}


def _flag_message(error: ConfigError) -> str:
    """Name the flag behind each problem of a generated config."""
    lines = []
    for problem in error.problems:
        flag = next((f for key, f in _FLAG_OF_FIELD.items() if key in problem), None)
        lines.append(f"{flag}: {problem}" if flag else problem)
    return "\n".join(lines)


@db_configure.command(name="create")
@_output_option
@_force_option
@click.option(
    "--name",
    type=CheckedType("NAME", check_database_name),
    default=None,
    help="Name of the database users connect to.",
)
@click.option("--proxy", type=HOST_PORT, required=True, help="HOST:PORT of the proxy to join.")
@click.option(
    "--protocol",
    type=click.Choice([protocol.value for protocol in Protocol]),
    default=Protocol.MONGODB.value,
    show_default=True,
    help="Database protocol.",
)
@click.option(
    "--token",
    default="/tmp/token",  # noqa: S108 - the guide's path for the token file
    show_default=True,
    help="Join token: the path of a file holding it, or the token itself.",
)
@click.option(
    "--uri",
    type=CheckedType("URI", check_mongodb_uri),
    default=None,
    help="Database endpoint: HOST:PORT, mongodb://... or mongodb+srv://...",
)
@click.option("--labels", type=LABELS, default="", help="Static labels: k=v,k2=v2.")
@click.option(
    "--dynamic-resources-labels",
    type=LABELS,
    default="",
    help="Also serve dynamic databases with these labels: k=v,k2=v2 (* for any).",
)
@click.option("--description", default="", help="Description shown by `wsh db ls`.")
@click.option(
    "--ca-pin",
    type=CheckedType("sha256:HEX", check_ca_pin),
    multiple=True,
    help="Cluster CA pin to check when joining (from `wctl status`; repeatable).",
)
@click.option("--aws-region", type=CheckedType("REGION", check_aws_region), help="AWS region.")
@click.option(
    "--aws-account-id",
    type=CheckedType("ACCOUNT", check_aws_account_id),
    help="AWS account of the database users' IAM roles.",
)
@click.option(
    "--aws-assume-role-arn",
    type=CheckedType("ARN", check_role_arn),
    help="IAM role the agent assumes first (role chaining).",
)
@click.option(
    "--aws-external-id",
    type=CheckedType("ID", check_external_id),
    help="External id for --aws-assume-role-arn.",
)
@click.option(
    "--tls-mode",
    type=click.Choice([mode.value for mode in TlsMode]),
    default=None,
    help="How to verify the database's certificate  [default: verify-full]",
)
@click.option(
    "--tls-ca-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="PEM CA bundle for the database's certificate.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="Directory for the agent's identity.",
)
@click.option("--nodename", default=None, help="Name of this host (default: its hostname).")
def db_configure_create(
    output: str,
    force: bool,
    name: str | None,
    proxy: HostPort,
    protocol: str,
    token: str,
    uri: str | None,
    labels: dict[str, str],
    dynamic_resources_labels: dict[str, str],
    description: str,
    ca_pin: tuple[str, ...],
    aws_region: str | None,
    aws_account_id: str | None,
    aws_assume_role_arn: str | None,
    aws_external_id: str | None,
    tls_mode: str | None,
    tls_ca_file: Path | None,
    data_dir: Path,
    nodename: str | None,
) -> None:
    """Write a database service config that joins the cluster and serves one database."""
    if name is not None and uri is None:
        raise click.BadParameter("required with --name", param_hint="'--uri'")
    if uri is not None and name is None:
        raise click.BadParameter("required with --uri", param_hint="'--name'")
    if name is None and not dynamic_resources_labels:
        raise click.UsageError("give --name and --uri, or --dynamic-resources-labels")
    if aws_external_id is not None and aws_assume_role_arn is None:
        raise click.BadParameter(
            "only used with --aws-assume-role-arn", param_hint="'--aws-external-id'"
        )
    if not token.strip():
        raise click.BadParameter("must not be empty", param_hint="'--token'")
    options = DbAgentOptions(
        proxy=proxy,
        token=token,
        name=name,
        uri=uri,
        protocol=Protocol(protocol),
        description=description,
        labels=labels,
        dynamic_labels=dynamic_resources_labels,
        ca_pins=ca_pin,
        aws_region=aws_region,
        aws_account_id=aws_account_id,
        aws_assume_role_arn=aws_assume_role_arn,
        aws_external_id=aws_external_id,
        tls_mode=TlsMode(tls_mode) if tls_mode is not None else None,
        tls_ca_file=tls_ca_file.absolute() if tls_ca_file is not None else None,
        data_dir=data_dir.absolute(),
        nodename=nodename,
    )
    try:
        config = db_agent_config(options)
    except ConfigError as exc:
        raise click.UsageError(_flag_message(exc)) from None
    except WicketError as exc:
        raise click.UsageError(str(exc)) from None
    _write_config(config, output, force)


@cli.group()
def install() -> None:
    """Install Wicket into the host system."""


def wicket_executable() -> Path:
    """The absolute path of the running `wicket` program, for ExecStart."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "wicket" and argv0.is_file():
        return argv0.absolute()
    sibling = Path(sys.executable).parent / "wicket"
    if sibling.is_file():
        return sibling.absolute()
    found = shutil.which("wicket")
    if found is not None:
        return Path(found).absolute()
    fail("cannot find the wicket executable; pass --wicket-path")


@install.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_CONFIG_PATH,
    show_default=True,
    help="Config file the service starts with.",
)
@click.option(
    "-o",
    "--output",
    default="stdout",
    show_default=True,
    metavar="stdout|PATH",
    help="Where to write the unit, e.g. /etc/systemd/system/wicket.service.",
)
@_force_option
@click.option(
    "--fd-limit",
    type=click.IntRange(1024, 1 << 30),
    default=DEFAULT_FD_LIMIT,
    show_default=True,
    help="LimitNOFILE of the service.",
)
@click.option(
    "--env-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_ENV_FILE,
    show_default=True,
    help="Optional environment file (e.g. AWS settings).",
)
@click.option(
    "--wicket-path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The wicket executable  [default: the one running]",
)
def systemd(
    config_path: Path,
    output: str,
    force: bool,
    fd_limit: int,
    env_file: Path,
    wicket_path: Path | None,
) -> None:
    """Write a systemd unit (wicket.service) that runs `wicket start`."""
    executable = wicket_path.absolute() if wicket_path is not None else wicket_executable()
    try:
        unit = systemd_unit(
            executable=str(executable),
            config_path=config_path.absolute(),
            fd_limit=fd_limit,
            env_file=env_file.absolute(),
        )
    except WicketError as exc:
        raise click.UsageError(str(exc)) from None
    if output == "stdout":
        click.echo(unit, nl=False)
        return
    path = Path(output).absolute()
    try:
        write_new_file(path, unit, mode=0o644, force=force)
    except WicketError as exc:
        fail(str(exc))
    click.echo(
        f'Wrote systemd unit file to "{path}". Now run: '
        "systemctl daemon-reload && systemctl enable --now wicket"
    )


cli.add_command(demo_command)


def main() -> None:
    """Entry point of the console script."""
    cli()


if __name__ == "__main__":
    main()
