"""Config layer: the typed `wicket.yaml` (version v1) as frozen pydantic models.

Every model forbids unknown keys and every field has a description: `wicket.docsgen`
builds the config reference from these models, so they are the one source of truth.
Cross-field rules (what an enabled service needs) live in `WicketConfig.check_services`.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from wicket.config.types import (
    Duration,
    HostPort,
    check_aws_account_id,
    check_aws_region,
    check_ca_pin,
    check_database_name,
    check_external_id,
    check_label_key,
    check_label_value,
    check_mongodb_uri,
    check_role_arn,
    config_error,
    format_duration,
    quote,
)

CONFIG_VERSION = "v1"
DEFAULT_CONFIG_PATH = Path("/etc/wicket.yaml")
DEFAULT_DATA_DIR = Path("/var/lib/wicket")
DEFAULT_AUTH_LISTEN = HostPort("127.0.0.1", 3025)
DEFAULT_PROXY_LISTEN = HostPort("0.0.0.0", 3080)
DEFAULT_SESSION_TTL = timedelta(hours=12)
MAX_NAME_LENGTH = 253
MAX_DESCRIPTION_LENGTH = 1024
MAX_DATABASES = 1000


def _checked(check: Callable[[str], str]) -> AfterValidator:
    """Run a `types.check_*` function and turn its ValueError into a verbatim config error."""

    def validate(value: str) -> str:
        try:
            return check(value)
        except ValueError as exc:
            raise config_error(str(exc)) from None

    return AfterValidator(validate)


def _bounded(limit: int, *, allow_empty: bool = False) -> Callable[[str], str]:
    """A check that a string is within `limit` characters (and, by default, not blank)."""

    def check(value: str) -> str:
        if not allow_empty and not value.strip():
            raise ValueError("must not be empty")
        if len(value) > limit:
            raise ValueError(f"is longer than {limit} characters")
        return value

    return check


Name = Annotated[str, _checked(_bounded(MAX_NAME_LENGTH))]
DatabaseName = Annotated[str, _checked(check_database_name)]
Description = Annotated[str, _checked(_bounded(MAX_DESCRIPTION_LENGTH, allow_empty=True))]
LabelKey = Annotated[str, _checked(check_label_key)]
LabelValue = Annotated[str, _checked(check_label_value)]
MongoUri = Annotated[str, _checked(check_mongodb_uri)]
CaPin = Annotated[str, _checked(check_ca_pin)]
AwsRegion = Annotated[str, _checked(check_aws_region)]
AwsAccountId = Annotated[str, _checked(check_aws_account_id)]
RoleArn = Annotated[str, _checked(check_role_arn)]
ExternalId = Annotated[str, _checked(check_external_id)]


class _Model(BaseModel):
    """Base of every config model: immutable, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=False)


class LogOutput(StrEnum):
    """Where the well-known log outputs go (any other value is a file path)."""

    STDERR = "stderr"
    STDOUT = "stdout"


class LogSeverity(StrEnum):
    """How much the daemon logs."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


class LogFormat(StrEnum):
    """Log line format: text for people, json for collectors."""

    TEXT = "text"
    JSON = "json"


class SecondFactor(StrEnum):
    """Whether logins need a one-time password besides the password."""

    OFF = "off"
    OTP = "otp"


class TlsMode(StrEnum):
    """How the agent checks the database's TLS certificate."""

    VERIFY_FULL = "verify-full"
    VERIFY_CA = "verify-ca"
    INSECURE = "insecure"


class Protocol(StrEnum):
    """Database protocols an agent can serve."""

    MONGODB = "mongodb"


class LogConfig(_Model):
    """Where and how the daemon logs."""

    output: Annotated[str, _checked(_bounded(4096))] = Field(
        default=LogOutput.STDERR.value,
        description="`stderr`, `stdout`, or the path of a file to append to.",
    )
    severity: LogSeverity = Field(
        default=LogSeverity.INFO,
        description="Lowest severity logged: DEBUG, INFO, WARN or ERROR (case-insensitive).",
    )
    format: LogFormat = Field(
        default=LogFormat.TEXT, description="`text` (human-readable) or `json` (one object a line)."
    )

    @field_validator("severity", mode="before")
    @classmethod
    def _normalize_severity(cls, value: object) -> object:
        if isinstance(value, str):
            upper = value.upper()
            return "WARN" if upper == "WARNING" else upper
        return value


class GlobalConfig(_Model):
    """Settings every service of this process shares."""

    nodename: Name = Field(
        default_factory=socket.gethostname,
        description="Name of this host in the cluster (default: the machine's hostname).",
    )
    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR,
        description="Directory for the backend, host certificates and the admin identity.",
    )
    auth_token: Annotated[str, _checked(_bounded(4096))] | None = Field(
        default=None,
        description="Join token for agents and proxies: the path of a file holding it "
        "(read at start), or the token itself.",
    )
    proxy_server: HostPort | None = Field(
        default=None,
        description="HOST:PORT of the proxy service that agents join through and tunnel to.",
    )
    auth_server: HostPort | None = Field(
        default=None,
        description="HOST:PORT of the auth service, for a proxy running without it.",
    )
    ca_pin: tuple[CaPin, ...] = Field(
        default=(),
        description="Pin(s) of the cluster's host CA (`sha256:...`, from `wctl status`) "
        "checked when joining; a string or a list of strings.",
    )
    log: LogConfig = Field(default_factory=LogConfig, description="Logging.")

    @field_validator("ca_pin", mode="before")
    @classmethod
    def _one_or_many_pins(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value


class AuthenticationConfig(_Model):
    """How users prove who they are."""

    second_factor: SecondFactor = Field(
        default=SecondFactor.OFF,
        description="`off` (password only) or `otp` (password and TOTP code).",
    )

    @field_validator("second_factor", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        # YAML 1.1 reads a bare `off` as false: accept what the user meant.
        return SecondFactor.OFF.value if value is False else value


class AuthServiceConfig(_Model):
    """The auth service: certificate authorities, users, roles, tokens, databases."""

    enabled: bool = Field(default=False, description="Run the auth service in this process.")
    cluster_name: Name | None = Field(
        default=None,
        description="Name of the cluster, written into every certificate (required when "
        "enabled; it cannot change later).",
    )
    listen_addr: HostPort = Field(
        default=DEFAULT_AUTH_LISTEN, description="HOST:PORT the auth API listens on."
    )
    authentication: AuthenticationConfig = Field(
        default_factory=AuthenticationConfig, description="User authentication."
    )
    session_ttl: Duration = Field(
        default=DEFAULT_SESSION_TTL,
        description='Default TTL of user certificates ("30m", "12h", "1h30m"); roles\' '
        "`max_session_ttl` caps it.",
    )

    @field_validator("session_ttl")
    @classmethod
    def _positive_ttl(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise config_error("must be at least 1m")
        return value


def _timeout_between(low: timedelta, high: timedelta) -> AfterValidator:
    """A check that a timeout is within [low, high] (zero or days would disable the limit)."""

    def check(value: timedelta) -> timedelta:
        if not low <= value <= high:
            raise config_error(
                f"must be between {format_duration(low)} and {format_duration(high)}"
            )
        return value

    return AfterValidator(check)


ShortTimeout = Annotated[Duration, _timeout_between(timedelta(seconds=1), timedelta(minutes=5))]
LongTimeout = Annotated[Duration, _timeout_between(timedelta(seconds=1), timedelta(hours=24))]


class ProxyTimeoutsConfig(_Model):
    """How long the proxy waits for a client before it closes the connection.

    Every connection holds a file descriptor, so none may wait unbounded: seconds for
    the steps a working client does at once, minutes for a connection kept idle.
    """

    client_hello: ShortTimeout = Field(
        default=timedelta(seconds=10),
        description="A new connection must send its whole TLS ClientHello within this.",
    )
    tls_handshake: ShortTimeout = Field(
        default=timedelta(seconds=10),
        description="TLS handshakes the proxy terminates (web, tunnels, database sessions) "
        "must finish within this.",
    )
    first_request: ShortTimeout = Field(
        default=timedelta(seconds=10),
        description="After the handshake, the first request must arrive within this: the "
        "whole request header on the web side (and any request body once its header "
        "came), the first bytes after the ClientHello on the spliced `wicket-auth` route, "
        "the first message of a database session.",
    )
    idle: LongTimeout = Field(
        default=timedelta(minutes=5),
        description="An idle web keep-alive connection or spliced `wicket-auth` connection "
        "(no bytes either way) is closed after this.",
    )


class ProxyServiceConfig(_Model):
    """The proxy service: the cluster's one public TLS port."""

    enabled: bool = Field(default=False, description="Run the proxy service in this process.")
    listen_addr: HostPort = Field(
        default=DEFAULT_PROXY_LISTEN, description="HOST:PORT the proxy listens on."
    )
    public_addr: HostPort | None = Field(
        default=None,
        description="HOST:PORT users and agents reach the proxy at (required when enabled; "
        "the proxy's certificate names it).",
    )
    https_cert_file: Path | None = Field(
        default=None,
        description="PEM certificate chain to serve instead of the host-CA-signed one.",
    )
    https_key_file: Path | None = Field(
        default=None, description="PEM private key of `https_cert_file`."
    )
    timeouts: ProxyTimeoutsConfig = Field(
        default_factory=ProxyTimeoutsConfig,
        description="Handshake, first-request and idle timeouts of client connections.",
    )


class DatabaseTlsConfig(_Model):
    """How the agent verifies the database's TLS certificate."""

    mode: TlsMode = Field(
        default=TlsMode.VERIFY_FULL,
        description="`verify-full` (chain and host name), `verify-ca` (chain only) or "
        "`insecure` (no checks; development only).",
    )
    ca_cert_file: Path | None = Field(
        default=None,
        description="PEM CA bundle for the database (default: the system trust store; for "
        "DocumentDB, the RDS global bundle).",
    )


class DatabaseAwsConfig(_Model):
    """AWS settings of a DocumentDB database."""

    region: AwsRegion | None = Field(
        default=None, description="AWS region of the cluster (default: from the endpoint)."
    )
    account_id: AwsAccountId | None = Field(
        default=None,
        description="AWS account of the database users' IAM roles (default: from the cluster "
        "ARN or the agent's own identity).",
    )
    assume_role_arn: RoleArn | None = Field(
        default=None,
        description="IAM role the agent assumes first, before the database user's role "
        "(role chaining).",
    )
    external_id: ExternalId | None = Field(
        default=None, description="External id for assuming `assume_role_arn`."
    )


class DatabaseConfig(_Model):
    """A database this agent serves (a static database resource)."""

    name: DatabaseName = Field(
        description="Name users connect to: lowercase letters, digits and '-', unique."
    )
    description: Description = Field(default="", description="Free text shown by `wsh db ls`.")
    protocol: Protocol = Field(
        default=Protocol.MONGODB, description="Database protocol; `mongodb` for now."
    )
    uri: MongoUri = Field(
        description="Endpoint: HOST:PORT, `mongodb://HOST:PORT[,...]` or `mongodb+srv://HOST` "
        "(no credentials)."
    )
    static_labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict, description="Labels roles match on (`db_labels`)."
    )
    tls: DatabaseTlsConfig = Field(
        default_factory=DatabaseTlsConfig, description="TLS to the database."
    )
    aws: DatabaseAwsConfig = Field(
        default_factory=DatabaseAwsConfig, description="AWS (DocumentDB IAM authentication)."
    )


class MatcherAwsConfig(_Model):
    """AWS settings applied to the dynamic databases a matcher selects."""

    assume_role_arn: RoleArn | None = Field(
        default=None, description="IAM role to assume first for these databases."
    )
    external_id: ExternalId | None = Field(
        default=None, description="External id for assuming `assume_role_arn`."
    )


class ResourceMatcher(_Model):
    """Selects dynamic databases (created with `wctl create`) this agent serves."""

    labels: dict[LabelKey, tuple[LabelValue, ...]] = Field(
        description="Labels a database must have: a value or a list of values per key; `*` "
        "matches any."
    )
    aws: MatcherAwsConfig = Field(
        default_factory=MatcherAwsConfig, description="AWS settings for matched databases."
    )

    @field_validator("labels", mode="before")
    @classmethod
    def _one_or_many_values(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: (v,) if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("labels")
    @classmethod
    def _not_empty(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        if not value:
            raise config_error('must name at least one label (use {"*": "*"} for all)')
        return value


class DbServiceConfig(_Model):
    """The database service (agent): dials out to the proxy and serves databases."""

    enabled: bool = Field(default=False, description="Run the database service in this process.")
    databases: tuple[DatabaseConfig, ...] = Field(
        default=(), max_length=MAX_DATABASES, description="Static databases this agent serves."
    )
    resources: tuple[ResourceMatcher, ...] = Field(
        default=(), description="Matchers for dynamic databases this agent also serves."
    )
    locking_mode: Literal["best_effort", "strict"] = Field(
        default="best_effort",
        description="While the auth service's access stream is down: keep deciding on the "
        "last state (best_effort) or refuse new and end open sessions (strict).",
    )


class WicketConfig(_Model):
    """A whole `wicket.yaml`: which services run in this process and how."""

    version: Literal["v1"] = Field(description="Config format version; `v1`.")
    wicket: GlobalConfig = Field(
        default_factory=GlobalConfig, description="Settings shared by all services."
    )
    auth_service: AuthServiceConfig = Field(
        default_factory=AuthServiceConfig, description="Auth service."
    )
    proxy_service: ProxyServiceConfig = Field(
        default_factory=ProxyServiceConfig, description="Proxy service."
    )
    db_service: DbServiceConfig = Field(
        default_factory=DbServiceConfig, description="Database service (agent)."
    )

    @model_validator(mode="after")
    def check_services(self) -> WicketConfig:
        """Check what each enabled service needs from the rest of the file."""
        problems = _service_problems(self)
        if problems:
            raise config_error("\n".join(problems))
        return self


def _service_problems(config: WicketConfig) -> list[str]:
    auth, proxy, db, glob = (
        config.auth_service,
        config.proxy_service,
        config.db_service,
        config.wicket,
    )
    problems: list[str] = []
    if not (auth.enabled or proxy.enabled or db.enabled):
        problems.append(
            "no service is enabled: set enabled: true in auth_service, proxy_service or db_service"
        )
    if auth.enabled and auth.cluster_name is None:
        problems.append("auth_service.cluster_name: required when auth_service is enabled")
    if proxy.enabled and proxy.public_addr is None:
        problems.append(
            "proxy_service.public_addr: required when proxy_service is enabled "
            "(the HOST:PORT users and agents reach)"
        )
    if (proxy.https_cert_file is None) != (proxy.https_key_file is None):
        missing = "https_key_file" if proxy.https_key_file is None else "https_cert_file"
        problems.append(f"proxy_service.{missing}: https_cert_file and https_key_file go together")
    if not auth.enabled and (proxy.enabled or db.enabled):
        if glob.auth_token is None:
            problems.append(
                "wicket.auth_token: required when auth_service is not enabled here "
                "(the join token, or the path of a file holding it)"
            )
        if proxy.enabled and glob.auth_server is None:
            problems.append(
                "wicket.auth_server: required for a proxy_service without auth_service "
                "(HOST:PORT of the auth service)"
            )
        elif db.enabled and glob.proxy_server is None and glob.auth_server is None:
            problems.append(
                "wicket.proxy_server: required for a db_service without auth_service "
                "(HOST:PORT of the proxy to join through)"
            )
    seen: set[str] = set()
    for index, database in enumerate(db.databases):
        where = f"db_service.databases[{index}]"
        if database.name in seen:
            problems.append(f"{where}.name: duplicate database name {quote(database.name)}")
        seen.add(database.name)
        if database.aws.external_id is not None and database.aws.assume_role_arn is None:
            problems.append(f"{where}.aws.external_id: only used with aws.assume_role_arn")
    for index, matcher in enumerate(db.resources):
        if matcher.aws.external_id is not None and matcher.aws.assume_role_arn is None:
            problems.append(
                f"db_service.resources[{index}].aws.external_id: only used with aws.assume_role_arn"
            )
    return problems
