"""The join decision (wicket.auth.hosts): the auth service picks a host's id and names."""

from __future__ import annotations

import uuid

import pytest

from wicket.auth.hosts import (
    HostNames,
    NoProxyNames,
    grant_for_join,
    normalize_host_name,
    public_addr_host,
)
from wicket.errors import BadParameter
from wicket.identity import HostRole


def test_a_db_agent_gets_a_fresh_uuid_and_no_names() -> None:
    first = grant_for_join(HostRole.DB, bound_names=(), proxy_public_addr="proxy.example.com:443")
    second = grant_for_join(HostRole.DB, bound_names=(), proxy_public_addr=None)
    assert uuid.UUID(first.host_id) and first.host_id != second.host_id
    assert first.names == HostNames() and not first.server
    assert first.not_granted(["wicket-auth", "proxy.example.com", "127.0.0.1"]) == [
        "wicket-auth",
        "proxy.example.com",
        "127.0.0.1",
    ]


def test_a_proxy_gets_its_token_names_and_the_public_address() -> None:
    grant = grant_for_join(
        HostRole.PROXY,
        bound_names=("proxy-2.example.com", "10.0.0.5"),
        proxy_public_addr="proxy.example.com:3080",
        new_host_id=lambda: "fixed",
    )
    assert grant.host_id == "fixed" and grant.role is HostRole.PROXY and grant.server
    assert grant.names.dns_names == ("proxy-2.example.com", "proxy.example.com")
    assert grant.names.ip_addresses == ("10.0.0.5",)
    requested = ["proxy.example.com", "localhost", "127.0.0.1", "wicket-auth", "10.0.0.5"]
    assert grant.not_granted(requested) == ["localhost", "127.0.0.1", "wicket-auth"]


def test_an_ip_public_address_becomes_an_ip_name() -> None:
    grant = grant_for_join(HostRole.PROXY, bound_names=(), proxy_public_addr="[::1]:3080")
    assert grant.names == HostNames((), ("::1",))


def test_a_proxy_with_no_allowed_names_is_refused() -> None:
    with pytest.raises(NoProxyNames, match="--names=PUBLIC_HOST"):
        grant_for_join(HostRole.PROXY, bound_names=(), proxy_public_addr=None)
    # the auth service's own name never comes from the configured public address
    with pytest.raises(NoProxyNames):
        grant_for_join(HostRole.PROXY, bound_names=(), proxy_public_addr="wicket-auth:3080")


def test_the_auth_role_cannot_join() -> None:
    with pytest.raises(BadParameter):
        grant_for_join(HostRole.AUTH, bound_names=(), proxy_public_addr="p.example.com:1")


@pytest.mark.parametrize(
    ("given", "normal"),
    [("Proxy.Example.COM.", "proxy.example.com"), ("[::1]", "::1"), ("010.0.0.1", None)],
)
def test_normalize(given: str, normal: str | None) -> None:
    if normal is None:
        with pytest.raises(BadParameter):
            normalize_host_name(given)
    else:
        assert normalize_host_name(given) == normal


@pytest.mark.parametrize("bad", ["wicket-auth", "WICKET-AUTH", "*.example.com", "", "a..b"])
def test_names_hosts_may_not_have(bad: str) -> None:
    with pytest.raises(BadParameter):
        normalize_host_name(bad)


def test_public_addr_host() -> None:
    assert public_addr_host("proxy.example.com:443") == "proxy.example.com"
    assert public_addr_host(None) is None
    assert public_addr_host("bad host:1") is None
