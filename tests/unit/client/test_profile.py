"""Client layer: wsh profile store, file modes, pins, cluster information."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from wicket.client.profile import (
    ClusterInfo,
    ProfileStore,
    check_cluster_pin,
    check_proxy,
    check_user,
    wsh_home,
)
from wicket.errors import AccessDenied, BadParameter, WicketError
from wicket.identity import Identity, IdentityKind
from wicket.pki.authority import CAKind, CertificateAuthority
from wicket.pki.keys import generate_private_key, private_key_pem
from wicket.pki.pem import certificate_pem


@pytest.fixture(scope="module")
def authorities() -> dict[str, CertificateAuthority]:
    return {kind.value: CertificateAuthority.create(kind, "example.com") for kind in CAKind}


def cluster_info(authorities: dict[str, CertificateAuthority]) -> ClusterInfo:
    return ClusterInfo(
        "example.com", {kind: ca.cert_pem().decode() for kind, ca in authorities.items()}
    )


def login(store: ProfileStore, authorities: dict[str, CertificateAuthority], **kw: object) -> None:
    key = generate_private_key()
    identity = Identity(
        cluster="example.com",
        kind=IdentityKind.USER,
        name=str(kw.get("user", "alice")),
        roles=("access",),
    )
    cert = authorities["user"].issue(key.public_key(), identity, ttl=timedelta(hours=1))
    store.save_login(
        proxy=str(kw.get("proxy", "proxy.example.com:3080")),
        user=str(kw.get("user", "alice")),
        key_pem=private_key_pem(key),
        cert_pem=certificate_pem(cert),
        cluster=cluster_info(authorities),
        remember_pin=bool(kw.get("remember_pin", True)),
    )


def test_home_from_environment(tmp_path: Path) -> None:
    assert wsh_home({"WSH_HOME": str(tmp_path)}) == tmp_path
    assert wsh_home({}) == Path.home() / ".wsh"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("proxy.example.com:3080", "proxy.example.com:3080"),
        ("proxy.example.com", "proxy.example.com:3080"),
        ("https://proxy.example.com:443/", "proxy.example.com:443"),
        ("[::1]", "[::1]:3080"),
        ("127.0.0.1:8443", "127.0.0.1:8443"),
    ],
)
def test_proxy_addresses(given: str, expected: str) -> None:
    assert check_proxy(given) == expected


@pytest.mark.parametrize("bad", ["", "a/b:1", "host:99999", "host:port", "../x:1"])
def test_bad_proxy_addresses(bad: str) -> None:
    with pytest.raises(BadParameter, match="--proxy"):
        check_proxy(bad)


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "x" * 200, ".hidden"])
def test_bad_user_names(bad: str) -> None:
    with pytest.raises(BadParameter):
        check_user(bad)


def test_save_login_modes_and_current(
    tmp_path: Path, authorities: dict[str, CertificateAuthority]
) -> None:
    store = ProfileStore(tmp_path / "home")
    assert store.current() is None
    login(store, authorities)
    profile = store.current()
    assert profile is not None
    assert (profile.proxy, profile.user, profile.cluster_name) == (
        "proxy.example.com:3080",
        "alice",
        "example.com",
    )
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700
    for path in (profile.key_file, profile.cert_file, profile.cluster_file, store.profile_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert profile.identity().name == "alice"
    assert not profile.expired()
    assert profile.expired(datetime.now(UTC) + timedelta(hours=2))
    assert profile.cluster().pin == authorities["host"].pin()
    assert store.trusted_pin("proxy.example.com:3080") == authorities["host"].pin()


def test_second_login_replaces_keys_and_logout_keeps_pin(
    tmp_path: Path, authorities: dict[str, CertificateAuthority]
) -> None:
    store = ProfileStore(tmp_path)
    login(store, authorities, user="alice")
    old = store.current()
    assert old is not None
    login(store, authorities, user="bob")
    assert not old.directory.exists()
    login(store, authorities, user="carol", proxy="other.example.com:443", remember_pin=False)
    current = store.current()
    assert current is not None and current.user == "carol"
    assert store.trusted_pin("other.example.com:443") is None
    out = store.logout()
    assert out.user == "carol"
    assert not out.directory.exists()
    remaining = store.current()
    assert remaining is not None and remaining.user == "bob"
    store.logout()
    assert store.current() is None
    with pytest.raises(WicketError, match="not logged in"):
        store.logout()
    assert store.trusted_pin("proxy.example.com:3080") == authorities["host"].pin()


def test_corrupt_profile_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "profile.json").write_text("{not json")
    with pytest.raises(WicketError, match="not valid JSON"):
        ProfileStore(tmp_path).current()
    (tmp_path / "profile.json").write_text(json.dumps({"current": "x:1", "profiles": {"x:1": 5}}))
    assert ProfileStore(tmp_path).current() is None


def test_pins(authorities: dict[str, CertificateAuthority]) -> None:
    info = cluster_info(authorities)
    check_cluster_pin(info, authorities["host"].pin())
    check_cluster_pin(info, authorities["host"].pin().upper().replace("SHA256", "sha256"))
    with pytest.raises(AccessDenied, match="CA pin mismatch"):
        check_cluster_pin(info, authorities["user"].pin())
    with pytest.raises(BadParameter, match="malformed"):
        check_cluster_pin(info, "sha256:xyz")


def test_cluster_info_parsing(authorities: dict[str, CertificateAuthority]) -> None:
    info = cluster_info(authorities)
    again = ClusterInfo.from_json(info.to_json())
    assert again == info
    assert info.to_json()["ca_pin"] == authorities["host"].pin()
    bad: object
    for bad in (
        [],
        {"cas": info.cas},
        {"cluster_name": "x", "cas": "pem"},
        {"cluster_name": "x", "cas": {"host": "garbage"}},
        {"cluster_name": "x", "cas": {"other": info.cas["host"]}},
    ):
        with pytest.raises(BadParameter):
            ClusterInfo.from_json(bad)
    with pytest.raises(BadParameter, match="no host CA"):
        _ = ClusterInfo("x", {"user": info.cas["user"]}).pin
