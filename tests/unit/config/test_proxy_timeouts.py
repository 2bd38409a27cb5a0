"""`proxy_service.timeouts`: defaults, durations, and bounds that keep every deadline finite."""

from __future__ import annotations

from datetime import timedelta

import pytest

from wicket.config import ConfigError, parse_config
from wicket.daemon import proxy_timeouts

BASE = "version: v1\nproxy_service: {enabled: true, public_addr: 'p:1'%s}\n"
AUTH = "auth_service: {enabled: true, cluster_name: c}\n"


def test_defaults_are_seconds_and_minutes() -> None:
    config = parse_config(AUTH + BASE % "", source="wicket.yaml")
    timeouts = config.proxy_service.timeouts
    assert timeouts.client_hello == timedelta(seconds=10)
    assert timeouts.tls_handshake == timedelta(seconds=10)
    assert timeouts.first_request == timedelta(seconds=10)
    assert timeouts.idle == timedelta(minutes=5)
    seconds = proxy_timeouts(timeouts)
    assert (seconds.client_hello, seconds.first_request, seconds.idle) == (10.0, 10.0, 300.0)


def test_configured_values() -> None:
    text = ", timeouts: {client_hello: 2s, tls_handshake: 3s, first_request: 1.5s, idle: 2m}"
    config = parse_config(AUTH + BASE % text, source="wicket.yaml")
    seconds = proxy_timeouts(config.proxy_service.timeouts)
    assert seconds.client_hello == 2.0
    assert seconds.tls_handshake == 3.0
    assert seconds.first_request == 1.5
    assert seconds.idle == 120.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("client_hello: 0s", "proxy_service.timeouts.client_hello: must be between 1s and 5m"),
        ("first_request: 1h", "proxy_service.timeouts.first_request: must be between 1s and 5m"),
        ("idle: 0s", "proxy_service.timeouts.idle: must be between 1s and 24h"),
        ("idle: 48h", "proxy_service.timeouts.idle: must be between 1s and 24h"),
        ("request: 5s", "proxy_service.timeouts.request"),
    ],
)
def test_out_of_bounds_or_unknown(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config(AUTH + BASE % f", timeouts: {{{text}}}", source="wicket.yaml")
