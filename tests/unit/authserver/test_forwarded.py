"""Which client address the auth service records: a forwarded header only from proxies."""

from __future__ import annotations

import pytest

from wicket.authserver.forwarded import client_address, is_cluster_proxy
from wicket.identity import HostRole, Identity, IdentityKind

CLUSTER = "example.com"
PROXY = Identity(CLUSTER, IdentityKind.HOST, "proxy-a", host_id="proxy-a", host_role=HostRole.PROXY)
AGENT = Identity(CLUSTER, IdentityKind.HOST, "db-a", host_id="db-a", host_role=HostRole.DB)
AUTH = Identity(CLUSTER, IdentityKind.HOST, "auth-a", host_id="auth-a", host_role=HostRole.AUTH)
ALICE = Identity(CLUSTER, IdentityKind.USER, "alice", roles=("access",))
ADMIN = Identity(CLUSTER, IdentityKind.ADMIN, "admin")


def test_no_header_is_the_peer() -> None:
    assert client_address(None, "198.51.100.1", None) == "198.51.100.1"
    assert client_address(PROXY, "10.0.0.5", None) == "10.0.0.5"


@pytest.mark.parametrize("caller", [None, ALICE, ADMIN, AGENT, AUTH])
def test_header_from_anyone_but_a_proxy_is_ignored(caller: Identity | None) -> None:
    assert not is_cluster_proxy(caller)
    assert client_address(caller, "198.51.100.1", "203.0.113.7") == "198.51.100.1"


def test_header_from_a_proxy_is_the_client() -> None:
    assert is_cluster_proxy(PROXY)
    assert client_address(PROXY, "10.0.0.5", "203.0.113.7") == "203.0.113.7"
    assert client_address(PROXY, "10.0.0.5", " 2001:db8::1 ") == "2001:db8::1"


@pytest.mark.parametrize(
    "header",
    ["", "203.0.113.7, 10.0.0.1", "not-an-address", "203.0.113.7:443", "1" * 100, "unknown"],
)
def test_malformed_header_from_a_proxy_is_not_believed(header: str) -> None:
    assert client_address(PROXY, "10.0.0.5", header) == "10.0.0.5"


def test_a_user_named_like_a_proxy_is_not_one() -> None:
    """Only the verified kind and host role count, never a name."""
    impostor = Identity(CLUSTER, IdentityKind.USER, "proxy-a")
    assert client_address(impostor, "198.51.100.1", "203.0.113.7") == "198.51.100.1"
