"""Config layer: build and write configs (`wicket configure`, `wicket db configure create`)
and the systemd unit (`wicket install systemd`).

Generated configs go through the same validation as files users write, so what
`wicket ... configure` writes always starts with `wicket start` unchanged.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from wicket.config.loader import ConfigError, problems_of
from wicket.config.models import (
    CONFIG_VERSION,
    DEFAULT_AUTH_LISTEN,
    DEFAULT_DATA_DIR,
    LogFormat,
    LogOutput,
    LogSeverity,
    Protocol,
    SecondFactor,
    TlsMode,
    WicketConfig,
)
from wicket.config.types import HostPort, quote
from wicket.errors import AlreadyExists, BadParameter

GENERATED_SOURCE = "generated config"
DEFAULT_FD_LIMIT = 524288
DEFAULT_ENV_FILE = Path("/etc/default/wicket")


def dump_config(config: WicketConfig) -> str:
    """YAML for a config: model field order, only what was set, never nulls."""
    data: dict[str, Any] = {"version": config.version}
    data.update(config.model_dump(mode="json", exclude_unset=True, exclude_none=True))
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def build_config(document: Mapping[str, Any]) -> WicketConfig:
    """Validate a config built in code; problems are `ConfigError` lines with field paths."""
    try:
        return WicketConfig.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(GENERATED_SOURCE, problems_of(exc)) from None


def _log_section() -> dict[str, str]:
    return {
        "output": LogOutput.STDERR.value,
        "severity": LogSeverity.INFO.value,
        "format": LogFormat.TEXT.value,
    }


@dataclass(frozen=True)
class AllInOneOptions:
    """What `wicket configure` asks for: an auth + proxy node."""

    cluster_name: str
    public_addr: HostPort
    data_dir: Path = DEFAULT_DATA_DIR
    auth_listen_addr: HostPort = DEFAULT_AUTH_LISTEN
    proxy_listen_addr: HostPort | None = None
    nodename: str | None = None
    second_factor: SecondFactor = SecondFactor.OFF


def all_in_one_config(options: AllInOneOptions) -> WicketConfig:
    """An auth + proxy config; the proxy listens on all interfaces at the public port."""
    proxy_listen = options.proxy_listen_addr or HostPort("0.0.0.0", options.public_addr.port)
    glob: dict[str, Any] = {}
    if options.nodename is not None:
        glob["nodename"] = options.nodename
    glob["data_dir"] = str(options.data_dir)
    glob["log"] = _log_section()
    return build_config(
        {
            "version": CONFIG_VERSION,
            "wicket": glob,
            "auth_service": {
                "enabled": True,
                "cluster_name": options.cluster_name,
                "listen_addr": str(options.auth_listen_addr),
                "authentication": {"second_factor": options.second_factor.value},
            },
            "proxy_service": {
                "enabled": True,
                "listen_addr": str(proxy_listen),
                "public_addr": str(options.public_addr),
            },
            "db_service": {"enabled": False},
        }
    )


@dataclass(frozen=True)
class DbAgentOptions:
    """What `wicket db configure create` asks for: a database-service-only node."""

    proxy: HostPort
    token: str
    name: str | None = None
    uri: str | None = None
    protocol: Protocol = Protocol.MONGODB
    description: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    dynamic_labels: Mapping[str, str] = field(default_factory=dict)
    ca_pins: tuple[str, ...] = ()
    aws_region: str | None = None
    aws_account_id: str | None = None
    aws_assume_role_arn: str | None = None
    aws_external_id: str | None = None
    tls_mode: TlsMode | None = None
    tls_ca_file: Path | None = None
    data_dir: Path = DEFAULT_DATA_DIR
    nodename: str | None = None


def db_agent_config(options: DbAgentOptions) -> WicketConfig:
    """A db_service-only config that joins through the proxy with the given token."""
    if options.name is None and not options.dynamic_labels:
        raise BadParameter("give --name and --uri for a database, or --dynamic-resources-labels")
    if (options.name is None) != (options.uri is None):
        raise BadParameter("--name and --uri go together")
    glob: dict[str, Any] = {}
    if options.nodename is not None:
        glob["nodename"] = options.nodename
    glob["data_dir"] = str(options.data_dir)
    glob["auth_token"] = options.token
    glob["proxy_server"] = str(options.proxy)
    if options.ca_pins:
        glob["ca_pin"] = list(options.ca_pins)
    glob["log"] = _log_section()
    db_service: dict[str, Any] = {"enabled": True}
    if options.name is not None:
        database: dict[str, Any] = {"name": options.name}
        if options.description:
            database["description"] = options.description
        database["protocol"] = options.protocol.value
        database["uri"] = options.uri
        if options.labels:
            database["static_labels"] = dict(options.labels)
        tls: dict[str, Any] = {}
        if options.tls_mode is not None:
            tls["mode"] = options.tls_mode.value
        if options.tls_ca_file is not None:
            tls["ca_cert_file"] = str(options.tls_ca_file)
        if tls:
            database["tls"] = tls
        aws = {
            key: value
            for key, value in (
                ("region", options.aws_region),
                ("account_id", options.aws_account_id),
                ("assume_role_arn", options.aws_assume_role_arn),
                ("external_id", options.aws_external_id),
            )
            if value is not None
        }
        if aws:
            database["aws"] = aws
        db_service["databases"] = [database]
    if options.dynamic_labels:
        db_service["resources"] = [{"labels": dict(options.dynamic_labels)}]
    return build_config(
        {
            "version": CONFIG_VERSION,
            "wicket": glob,
            "auth_service": {"enabled": False},
            "proxy_service": {"enabled": False},
            "db_service": db_service,
        }
    )


_PLAIN_WORD = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def _systemd_word(word: str) -> str:
    """Quote one ExecStart word: systemd expands `%` specifiers and `$` variables."""
    escaped = word.replace("%", "%%").replace("$", "$$")
    if _PLAIN_WORD.match(escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_unit(
    *,
    executable: str,
    config_path: Path,
    fd_limit: int = DEFAULT_FD_LIMIT,
    env_file: Path = DEFAULT_ENV_FILE,
) -> str:
    """The `wicket.service` unit: start with the config, restart on failure, reload on HUP."""
    if "\n" in executable or "\n" in str(config_path) or "\n" in str(env_file):
        raise BadParameter("paths in a systemd unit cannot contain newlines")
    command = " ".join(
        _systemd_word(word) for word in (executable, "start", "-c", str(config_path))
    )
    return (
        "[Unit]\n"
        "Description=Wicket: identity-aware access to MongoDB and DocumentDB\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        "Restart=on-failure\n"
        "RestartSec=5\n"
        f"EnvironmentFile=-{env_file}\n"
        f"ExecStart={command}\n"
        "ExecReload=/bin/kill -HUP $MAINPID\n"
        f"LimitNOFILE={fd_limit}\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def write_new_file(path: Path, text: str, *, mode: int, force: bool) -> None:
    """Write `text` to `path` with `mode`, atomically; refuse to replace a file unless forced."""
    if path.is_dir():
        raise BadParameter(f"{quote(str(path))} is a directory")
    if path.exists() and not force:
        raise AlreadyExists(f"{quote(str(path))} exists already; use --force to overwrite it")
    directory = path.parent
    if not directory.is_dir():
        raise BadParameter(f"cannot write {quote(str(path))}: directory {directory} does not exist")
    try:
        descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.")
    except OSError as exc:
        raise BadParameter(f"cannot write {quote(str(path))}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            os.fchmod(stream.fileno(), mode)
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        if force:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # fails if the file appeared meanwhile: never clobber
            os.unlink(temporary)
    except FileExistsError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise AlreadyExists(
            f"{quote(str(path))} exists already; use --force to overwrite it"
        ) from None
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise BadParameter(f"cannot write {quote(str(path))}: {exc.strerror or exc}") from None
