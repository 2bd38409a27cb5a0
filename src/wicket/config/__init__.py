"""Config layer: the typed `wicket.yaml`, its loader and the writers that generate it."""

from __future__ import annotations

from wicket.config.loader import ConfigError, load_config, parse_config, read_auth_token
from wicket.config.models import (
    CONFIG_VERSION,
    DEFAULT_CONFIG_PATH,
    AuthenticationConfig,
    AuthServiceConfig,
    DatabaseAwsConfig,
    DatabaseConfig,
    DatabaseTlsConfig,
    DbServiceConfig,
    GlobalConfig,
    LogConfig,
    LogFormat,
    LogSeverity,
    MatcherAwsConfig,
    Protocol,
    ProxyServiceConfig,
    ResourceMatcher,
    SecondFactor,
    TlsMode,
    WicketConfig,
)
from wicket.config.types import Duration, HostPort, format_duration, parse_duration
from wicket.config.writers import dump_config

__all__ = [
    "CONFIG_VERSION",
    "DEFAULT_CONFIG_PATH",
    "AuthServiceConfig",
    "AuthenticationConfig",
    "ConfigError",
    "DatabaseAwsConfig",
    "DatabaseConfig",
    "DatabaseTlsConfig",
    "DbServiceConfig",
    "Duration",
    "GlobalConfig",
    "HostPort",
    "LogConfig",
    "LogFormat",
    "LogSeverity",
    "MatcherAwsConfig",
    "Protocol",
    "ProxyServiceConfig",
    "ResourceMatcher",
    "SecondFactor",
    "TlsMode",
    "WicketConfig",
    "dump_config",
    "format_duration",
    "load_config",
    "parse_config",
    "parse_duration",
    "read_auth_token",
]
