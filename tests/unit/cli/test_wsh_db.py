"""CLI layer: `wsh db login/logout/config/env` against a real auth service and proxy, and the
pure pieces (shell command lines, default db user / db name)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from tests.unit.client.harness import PASSWORD, Cluster, start_cluster, stop_cluster

from wicket.cli.wsh import cli
from wicket.cli.wsh_db import (
    ConnectTarget,
    Shell,
    ShellKind,
    find_shell,
    shell_command,
)
from wicket.client.dbprofile import choose_value, is_documentdb
from wicket.errors import AccessDenied, BadParameter, WicketError
from wicket.identity import identity_from_certificate
from wicket.pki.pem import load_certificate

DOCDB = {
    "kind": "db",
    "version": "v3",
    "metadata": {"name": "my-docdb", "labels": {"env": "dev"}},
    "spec": {
        "protocol": "mongodb",
        "uri": "docdb.cluster-x.us-east-1.docdb.amazonaws.com:27017",
        "aws": {"region": "us-east-1"},
    },
}
MONGO = {
    "kind": "db",
    "version": "v3",
    "metadata": {"name": "self-hosted", "labels": {"env": "dev"}},
    "spec": {"protocol": "mongodb", "uri": "mongo.internal:27017"},
}


def target(documentdb: bool) -> ConnectTarget:
    return ConnectTarget(
        name="my-docdb",
        host="proxy.example.com",
        port=3080,
        db_user="u",
        db_name="test",
        cert_key_file=Path("/k/my-docdb.pem"),
        cert_file=Path("/k/cert.pem"),
        key_file=Path("/k/key.pem"),
        ca_file=Path("/k/cas.pem"),
        documentdb=documentdb,
    )


def test_mongosh_command_for_documentdb() -> None:
    argv = shell_command(Shell("/bin/mongosh", ShellKind.MONGOSH), target(True), ["--quiet"])
    assert argv == [
        "/bin/mongosh",
        "mongodb://proxy.example.com:3080/test?directConnection=true&serverSelectionTimeoutMS=5000",
        "--tls",
        "--tlsCertificateKeyFile",
        "/k/my-docdb.pem",
        "--tlsCAFile",
        "/k/cas.pem",
        "--retryWrites=false",
        "--quiet",
    ]


def test_mongosh_command_for_mongodb_has_no_retry_writes_flag() -> None:
    argv = shell_command(Shell("mongosh", ShellKind.MONGOSH), target(False))
    assert "--retryWrites=false" not in argv


def test_legacy_mongo_command() -> None:
    argv = shell_command(Shell("/usr/bin/mongo", ShellKind.MONGO), target(True))
    assert argv == [
        "/usr/bin/mongo",
        "--host",
        "proxy.example.com",
        "--port",
        "3080",
        "--ssl",
        "--sslPEMKeyFile",
        "/k/my-docdb.pem",
        "--sslCAFile",
        "/k/cas.pem",
        "test",
    ]


def test_find_shell_prefers_override_then_mongosh_then_mongo(tmp_path: Path) -> None:
    mongo = tmp_path / "mongo"
    mongo.write_text("#!/bin/sh\n")
    mongo.chmod(0o755)
    assert find_shell({"WSH_MONGOSH": str(mongo)}) == Shell(str(mongo), ShellKind.MONGO)
    paths = {"mongosh": "/opt/mongosh", "mongo": "/opt/mongo"}
    assert find_shell({}, paths.get).kind is ShellKind.MONGOSH
    assert find_shell({}, {"mongo": "/opt/mongo"}.get) == Shell("/opt/mongo", ShellKind.MONGO)
    with pytest.raises(WicketError, match="install mongosh"):
        find_shell({}, {}.get)
    with pytest.raises(WicketError, match="not an executable"):
        find_shell({"WSH_MONGOSH": str(tmp_path / "missing")})


def test_choose_value() -> None:
    assert choose_value("database user", "--db-user", "given", ["*"]) == "given"
    assert choose_value("database user", "--db-user", None, ["only"]) == "only"
    with pytest.raises(BadParameter, match="--db-user; your roles allow: a, b"):
        choose_value("database user", "--db-user", None, ["a", "b"])
    with pytest.raises(BadParameter, match=r"allow: \*"):
        choose_value("database user", "--db-user", None, ["*"])
    with pytest.raises(AccessDenied):
        choose_value("database name", "--db-name", None, [])


def test_is_documentdb() -> None:
    assert is_documentdb(DOCDB)
    assert not is_documentdb(MONGO)


# -- against a real cluster ----------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    started = start_cluster(tmp_path / "data", with_proxy=True)
    try:
        started.add_user("alice", ["access"], {"db_users": ["reader"], "db_names": ["test"]})
        started.add_user("bob", ["access"], {"db_users": ["a", "b"], "db_names": ["*"]})
        started.heartbeat("host-1", "agent-one", [DOCDB, MONGO])
        yield started
    finally:
        stop_cluster(started)


class Wsh:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {"WSH_HOME": str(home), "WSH_MONGOSH": ""}

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(
            cli, list(args), env=self.env, input=input, prog_name="wsh", catch_exceptions=False
        )

    def login(self, cluster: Cluster, user: str) -> None:
        result = self(
            "login",
            f"--proxy={cluster.proxy_addr}",
            f"--user={user}",
            "--password-stdin",
            f"--ca-pin={cluster.pin}",
            input=PASSWORD + "\n",
        )
        assert result.exit_code == 0, result.stderr

    def db_dir(self, cluster: Cluster, user: str, name: str) -> Path:
        return self.home / "keys" / cluster.proxy_addr / user / "db" / name


def test_db_login_defaults_files_config_env_logout(tmp_path: Path, cluster: Cluster) -> None:
    wsh = Wsh(tmp_path / "home")
    wsh.login(cluster, "alice")
    result = wsh("db", "login", "my-docdb")  # one db user and one db name allowed: defaults
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(
        'Connection information for database "my-docdb" has been saved.'
    )
    assert "wsh db connect my-docdb" in result.stdout
    listed = wsh("db", "ls")
    assert listed.exit_code == 0, listed.stderr
    assert "> wsh db connect my-docdb" in listed.stdout  # the Connect column, as tsh shows it
    directory = wsh.db_dir(cluster, "alice", "my-docdb")
    for name in ("cert.pem", "key.pem", "my-docdb.pem", "cas.pem", "database.json"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600, name
    combined = (directory / "my-docdb.pem").read_bytes()
    assert combined == (directory / "cert.pem").read_bytes() + (directory / "key.pem").read_bytes()
    identity = identity_from_certificate(load_certificate((directory / "cert.pem").read_bytes()))
    assert identity.route is not None
    assert (identity.route.service, identity.route.db_user, identity.route.db_name) == (
        "my-docdb",
        "reader",
        "test",
    )

    config = wsh("db", "config", "my-docdb", "--format", "json")
    assert config.exit_code == 0, config.stderr
    data = json.loads(config.stdout)
    assert data["host"] == "127.0.0.1"
    assert data["port"] == int(cluster.proxy_addr.rsplit(":", 1)[1])
    assert data["user"] == "reader" and data["database"] == "test"
    assert data["cert_key"] == str(directory / "my-docdb.pem")
    assert "--retryWrites=false" in data["command"]
    text = wsh("db", "config", "my-docdb").stdout
    assert "Database:  test" in text and "Connect with:" in text

    env_lines = wsh("db", "env", "my-docdb").stdout.splitlines()
    exported = dict(line.removeprefix("export ").split("=", 1) for line in env_lines)
    assert exported["WICKET_DB_NAME"] == "test"
    assert "retryWrites=false" in exported["WICKET_DB_URI"]
    assert "tlsCertificateKeyFile" in exported["WICKET_DB_URI"]

    assert wsh("db", "login", "self-hosted").exit_code == 0
    out = wsh("db", "logout")
    assert out.stdout.splitlines() == [
        "Logged out of database my-docdb",
        "Logged out of database self-hosted",
    ]
    assert not directory.exists()
    missing = wsh("db", "logout", "my-docdb")
    assert missing.exit_code == 1 and "not logged in" in missing.stderr


def test_db_login_asks_to_choose_and_refuses_what_roles_deny(
    tmp_path: Path, cluster: Cluster
) -> None:
    wsh = Wsh(tmp_path / "home")
    wsh.login(cluster, "bob")
    vague = wsh("db", "login", "my-docdb")
    assert vague.exit_code == 1
    assert "--db-user; your roles allow: a, b" in vague.stderr
    denied = wsh("db", "login", "--db-user=c", "--db-name=test", "my-docdb")
    assert denied.exit_code == 1
    assert 'no role allows db_user "c"' in denied.stderr
    ok = wsh("db", "login", "--db-user=b", "--db-name=sales", "my-docdb")
    assert ok.exit_code == 0, ok.stderr
    unknown = wsh("db", "login", "--db-user=b", "--db-name=x", "nope")
    assert unknown.exit_code == 1 and "wsh db ls" in unknown.stderr


def test_db_commands_need_a_login(tmp_path: Path) -> None:
    wsh = Wsh(tmp_path / "home")
    result = wsh("db", "login", "my-docdb")
    assert result.exit_code == 1
    assert "not logged in" in result.stderr
    assert not os.path.exists(tmp_path / "home" / "keys")


def test_the_tunnel_uses_the_certificate_a_new_login_renewed(
    tmp_path: Path, cluster: Cluster
) -> None:
    """`wsh login` re-issues saved route certificates; a running tunnel must pick that up."""
    import asyncio

    from wicket.cli.wsh_db import RouteCertificates
    from wicket.client.profile import ProfileStore

    wsh = Wsh(tmp_path / "home")
    wsh.login(cluster, "alice")
    assert wsh("db", "login", "my-docdb").exit_code == 0
    certificates = RouteCertificates(ProfileStore(wsh.home), "my-docdb", None, None)
    first = asyncio.run(certificates.context())
    before = certificates.login().cert_pem()
    assert asyncio.run(certificates.context()) is first  # nothing changed: same context
    wsh.login(cluster, "alice")
    assert certificates.login().cert_pem() != before  # renewed on disk by the login
    assert asyncio.run(certificates.context()) is not first
