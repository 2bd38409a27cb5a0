"""Client layer: the order in which wctl finds its identity (real files, no server)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from wicket.api.client import AUTH_ALPN
from wicket.client.identity_files import (
    NO_IDENTITY,
    NoIdentity,
    identity_from_directory,
    resolve_identity,
)
from wicket.client.profile import ClusterInfo, ProfileStore
from wicket.config.loader import ConfigError
from wicket.identity import Identity, IdentityKind
from wicket.pki.authority import CAKind, CertificateAuthority
from wicket.pki.keys import generate_private_key, private_key_pem, write_private_file
from wicket.pki.pem import certificate_pem


@pytest.fixture(scope="module")
def cas() -> dict[str, CertificateAuthority]:
    return {kind.value: CertificateAuthority.create(kind, "example.com") for kind in CAKind}


def write_admin(directory: Path, cas: dict[str, CertificateAuthority], addr: str) -> None:
    key = generate_private_key()
    identity = Identity(cluster="example.com", kind=IdentityKind.ADMIN, name="wicket-admin")
    cert = cas["user"].issue(key.public_key(), identity, ttl=timedelta(days=1))
    write_private_file(directory / "key.pem", private_key_pem(key))
    write_private_file(directory / "cert.pem", certificate_pem(cert))
    info = {
        "cluster_name": "example.com",
        "cas": {k: ca.cert_pem().decode() for k, ca in cas.items()},
        "auth_addr": addr,
    }
    write_private_file(directory / "cluster.json", json.dumps(info).encode())


def test_identity_directory_first(tmp_path: Path, cas: dict[str, CertificateAuthority]) -> None:
    write_admin(tmp_path / "admin", cas, "127.0.0.1:3025")
    found = resolve_identity(
        identity_dir=tmp_path / "admin", config_file=None, store=ProfileStore(tmp_path / "wsh")
    )
    assert found.address == "127.0.0.1:3025"
    assert found.alpn == ()
    assert found.host_ca_pem == cas["host"].cert_pem()
    found.ssl_context()  # cert and key match, CA loads


def test_config_with_auth_service_uses_its_data_dir(
    tmp_path: Path, cas: dict[str, CertificateAuthority]
) -> None:
    write_admin(tmp_path / "data" / "admin", cas, "127.0.0.1:4025")
    config = tmp_path / "wicket.yaml"
    config.write_text(
        f"version: v1\nwicket: {{data_dir: {tmp_path / 'data'}}}\n"
        "auth_service: {enabled: true, cluster_name: example.com}\n"
    )
    found = resolve_identity(identity_dir=None, config_file=config, store=ProfileStore(tmp_path))
    assert found.address == "127.0.0.1:4025"


def test_config_without_admin_dir_says_to_start(tmp_path: Path) -> None:
    config = tmp_path / "wicket.yaml"
    config.write_text(
        f"version: v1\nwicket: {{data_dir: {tmp_path / 'data'}}}\n"
        "auth_service: {enabled: true, cluster_name: example.com}\n"
    )
    with pytest.raises(NoIdentity, match="wicket start -c"):
        resolve_identity(identity_dir=None, config_file=config, store=ProfileStore(tmp_path))


def test_explicit_config_must_exist_and_be_valid(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        resolve_identity(
            identity_dir=None, config_file=tmp_path / "absent.yaml", store=ProfileStore(tmp_path)
        )


def test_profile_then_nothing(tmp_path: Path, cas: dict[str, CertificateAuthority]) -> None:
    store = ProfileStore(tmp_path / "wsh")
    agent_only = tmp_path / "agent.yaml"
    agent_only.write_text(
        "version: v1\nwicket: {proxy_server: 'p.example.com:3080', auth_token: tok}\n"
        "db_service: {enabled: true, databases: [{name: d, protocol: mongodb, uri: 'h:1'}]}\n"
    )
    with pytest.raises(NoIdentity) as raised:
        resolve_identity(identity_dir=None, config_file=agent_only, store=store)
    assert str(raised.value) == NO_IDENTITY
    key = generate_private_key()
    identity = Identity(cluster="example.com", kind=IdentityKind.USER, name="alice")
    cert = cas["user"].issue(key.public_key(), identity, ttl=timedelta(hours=1))
    store.save_login(
        proxy="p.example.com:3080",
        user="alice",
        key_pem=private_key_pem(key),
        cert_pem=certificate_pem(cert),
        cluster=ClusterInfo("example.com", {k: ca.cert_pem().decode() for k, ca in cas.items()}),
    )
    found = resolve_identity(identity_dir=None, config_file=agent_only, store=store)
    assert found.address == "p.example.com:3080"
    assert found.alpn == (AUTH_ALPN,)
    assert found.proxy == "p.example.com:3080"


def test_broken_identity_directories(tmp_path: Path) -> None:
    with pytest.raises(NoIdentity, match="does not exist"):
        identity_from_directory(tmp_path / "missing")
    (tmp_path / "cluster.json").write_text("{")
    with pytest.raises(NoIdentity, match="not valid JSON"):
        identity_from_directory(tmp_path)
    (tmp_path / "cluster.json").write_text(json.dumps({"cas": {}, "auth_addr": "x:1"}))
    with pytest.raises(NoIdentity, match="no host CA"):
        identity_from_directory(tmp_path)
