"""Config layer: value types and their parsers (HOST:PORT, Go-style durations, labels, URIs).

Each parser is a plain function raising `ValueError` with a user-ready message, so the
pydantic models and the CLI flags share one definition of what is valid.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, PlainSerializer, PlainValidator
from pydantic_core import PydanticCustomError, core_schema

MAX_VALUE_LENGTH = 4096
"""Longest single string value the config accepts (URIs, paths, labels, addresses)."""

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*\.?$"
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT = {
    "ns": timedelta(microseconds=0.001),
    "us": timedelta(microseconds=1),
    "µs": timedelta(microseconds=1),
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
}
MAX_DURATION = timedelta(days=3650)
_LABEL_KEY = re.compile(r"^[A-Za-z0-9_.:/*-]{1,63}$")
_DB_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_CA_PIN = re.compile(r"^sha256:[0-9a-f]{64}$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")


def quote(value: object) -> str:
    """Render a user's value inside a message the way they would type it."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def config_error(message: str) -> PydanticCustomError:
    """A validation error whose message reaches the user verbatim."""
    return PydanticCustomError("wicket", "{reason}", {"reason": message})


def _check_length(text: str) -> None:
    if len(text) > MAX_VALUE_LENGTH:
        raise ValueError(f"is longer than {MAX_VALUE_LENGTH} characters")


def _valid_host(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    return bool(_HOSTNAME.match(host))


@dataclass(frozen=True, slots=True)
class HostPort:
    """A network address written HOST:PORT (IPv6 hosts in brackets), as every addr field is."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> HostPort:
        """Parse HOST:PORT; the error names the value and what is wrong with it."""
        _check_length(text)
        shown = quote(text)
        if "://" in text:
            raise ValueError(f"{shown} is not HOST:PORT (leave out the scheme)")
        host, sep, port_text = text.rpartition(":")
        if not sep or not host or ("[" not in host and ":" in host):
            raise ValueError(f"{shown} is not HOST:PORT")
        if not port_text.isdigit() or len(port_text) > 5:
            raise ValueError(f"{shown} is not HOST:PORT (the port must be a number)")
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise ValueError(f"{shown} is not HOST:PORT (the port must be 1-65535)")
        if not _valid_host(host):
            raise ValueError(f"{shown} is not HOST:PORT (bad host name {quote(host)})")
        return cls(host=host, port=port)

    @property
    def bare_host(self) -> str:
        """The host without IPv6 brackets, as sockets and certificates want it."""
        return self.host[1:-1] if self.host.startswith("[") else self.host

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Validate from a string, serialize back to HOST:PORT."""
        return core_schema.no_info_plain_validator_function(
            _validate_host_port, serialization=core_schema.to_string_ser_schema()
        )


def _validate_host_port(value: object) -> HostPort:
    if isinstance(value, HostPort):
        return value
    if not isinstance(value, str):
        raise config_error(f"{quote(value)} is not HOST:PORT (expected a string)")
    try:
        return HostPort.parse(value)
    except ValueError as exc:
        raise config_error(str(exc)) from None


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration ("90s", "30m", "12h", "1h30m", "1.5h") into a timedelta."""
    _check_length(text)
    shown = quote(text)
    if not text:
        raise ValueError('"" is not a duration (write e.g. "90s", "30m", "1h30m")')
    if text == "0":
        return timedelta(0)
    position = 0
    total = timedelta(0)
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            raise ValueError(f'{shown} is not a duration (write e.g. "90s", "30m", "1h30m")')
        total += _UNIT[match.group(2)] * float(match.group(1))
        position = match.end()
        if total > MAX_DURATION:
            raise ValueError(f"{shown} is too long (at most {format_duration(MAX_DURATION)})")
    return total


def format_duration(value: timedelta) -> str:
    """Write a timedelta the shortest Go-style way, so `parse_duration` reads it back."""
    micros = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    if micros == 0:
        return "0s"
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, rest = divmod(rest, 1_000_000)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if rest:
        if rest % 1000 == 0 and not seconds:
            parts.append(f"{rest // 1000}ms")
        else:
            fraction = f"{rest:06d}".rstrip("0")
            parts.append(f"{seconds}.{fraction}s")
    elif seconds:
        parts.append(f"{seconds}s")
    return sign + "".join(parts)


def _validate_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise config_error(f'{quote(value)} is not a duration (write e.g. "90s", "30m", "1h30m")')
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise config_error(str(exc)) from None


Duration = Annotated[
    timedelta,
    PlainValidator(_validate_duration),
    PlainSerializer(format_duration, return_type=str),
]
"""A Go-style duration in YAML ("30m", "12h", "1h30m"), a `timedelta` in code."""


def check_database_name(name: str) -> str:
    """A database name is a DNS label: users type it, certificates and URLs carry it."""
    if not _DB_NAME.match(name):
        raise ValueError(
            f"{quote(name)} is not a valid database name (lowercase letters, digits and '-', "
            "at most 63, starting and ending with a letter or digit)"
        )
    return name


def check_label_key(key: str) -> str:
    """Label keys are what RBAC matches on: keep them to a safe, printable alphabet."""
    if not _LABEL_KEY.match(key):
        raise ValueError(
            f"{quote(key)} is not a valid label key (letters, digits and _.:/*-, at most 63)"
        )
    return key


def check_label_value(value: str) -> str:
    """Label values may be anything printable, within the length limit."""
    _check_length(value)
    if not value.isprintable():
        raise ValueError(f"label value {quote(value)} has unprintable characters")
    return value


def parse_labels(text: str) -> dict[str, str]:
    """Parse the CLI form "k=v,k2=v2" into a label map; an empty string is no labels."""
    _check_length(text)
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{quote(item)} is not KEY=VALUE")
        key = check_label_key(key.strip())
        if key in labels:
            raise ValueError(f"label {quote(key)} is given twice")
        labels[key] = check_label_value(value.strip())
    return labels


def check_mongodb_uri(uri: str) -> str:
    """Accept host:port, mongodb://hosts[/db][?opts] or mongodb+srv://host[/db][?opts]."""
    _check_length(uri)
    shown = quote(uri)
    scheme, sep, rest = uri.partition("://")
    if not sep:
        try:
            HostPort.parse(uri)
        except ValueError:
            raise ValueError(
                f"{shown} is not HOST:PORT, mongodb://HOST:PORT or mongodb+srv://HOST"
            ) from None
        return uri
    if scheme not in {"mongodb", "mongodb+srv"}:
        raise ValueError(f"{shown}: the scheme must be mongodb:// or mongodb+srv://")
    hosts = re.split(r"[/?]", rest, maxsplit=1)[0]
    if "@" in hosts:
        raise ValueError(
            f"{shown} must not carry credentials: Wicket authenticates to the database itself"
        )
    if not hosts:
        raise ValueError(f"{shown} names no host")
    for host in hosts.split(","):
        if scheme == "mongodb+srv":
            if "," in hosts or not _valid_host(host) or ":" in host:
                raise ValueError(f"{shown}: mongodb+srv:// takes one host name and no port")
        elif ":" in host and not host.endswith("]"):
            try:
                HostPort.parse(host)
            except ValueError as exc:
                raise ValueError(f"{shown}: {exc}") from None
        elif not _valid_host(host):
            raise ValueError(f"{shown}: {quote(host)} is not a host name")
    return uri


def check_ca_pin(pin: str) -> str:
    """A CA pin is "sha256:" and 64 lowercase hex digits, as `wctl status` prints it."""
    if not _CA_PIN.match(pin):
        raise ValueError(f"{quote(pin)} is not a CA pin (sha256: and 64 hex digits)")
    return pin


def check_aws_region(region: str) -> str:
    """A region name like us-east-1 (its endpoint names are built from it)."""
    if not _REGION.match(region):
        raise ValueError(f"{quote(region)} is not an AWS region (e.g. us-east-1)")
    return region


def check_aws_account_id(account: str) -> str:
    """An AWS account id is exactly 12 digits."""
    if not _ACCOUNT_ID.match(account):
        raise ValueError(f"{quote(account)} is not an AWS account id (12 digits)")
    return account


def check_role_arn(arn: str) -> str:
    """An IAM role ARN: arn:aws:iam::ACCOUNT:role/NAME."""
    if not _ROLE_ARN.match(arn):
        raise ValueError(f"{quote(arn)} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
    return arn


def check_external_id(external_id: str) -> str:
    """An STS external id: 2-1224 characters from IAM's alphabet."""
    if not _EXTERNAL_ID.match(external_id):
        raise ValueError(
            f"{quote(external_id)} is not an STS external id (2-1224 of [\\w+=,.@:/-])"
        )
    return external_id
