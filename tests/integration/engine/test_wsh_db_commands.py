"""The guide's step 6 with the real CLIs: `wsh login`, `wsh db connect` driving the pinned
mongosh (scripted and interactive), `wsh proxy db --tunnel` for pymongo with a SCRAM
connection string, certificate renewal, `wsh db logout`. Through a real cluster, agent
(IAM upstream via moto) and localdocdb."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlencode

import pexpect
import pytest
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from localdocdb.localaws import LocalAws
from localdocdb.process import LocalDocDBProcess
from tests.integration.cluster.test_database_routes import PASSWORD
from tests.support.clients import Mongosh
from tests.support.cluster import Cluster, WicketProcess
from tests.support.stage import start_iam_stage
from wicket.pki.pem import load_certificate
from wicket.pki.pin import ca_pin

WSH = str(Path(sys.executable).parent / "wsh")
DB_FLAGS = ("--db-user=wicket-docdb-user", "--db-name=test")


@dataclass
class Setup:
    cluster: Cluster
    agent: WicketProcess
    aws: LocalAws
    env: dict[str, str]
    home: Path

    def wsh(self, *args: str, input: str | None = None, timeout: float = 60) -> Any:
        return subprocess.run(
            [WSH, *args],
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def login(self, *extra: str) -> None:
        info = json.loads((self.cluster.data_dir / "admin" / "cluster.json").read_text())
        pin = ca_pin(load_certificate(info["cas"]["host"].encode()))
        done = self.wsh(
            "login",
            f"--proxy={self.cluster.proxy_addr}",
            "--user=alice",
            "--password-stdin",
            f"--ca-pin={pin}",
            *extra,
            input=PASSWORD + "\n",
        )
        assert done.returncode == 0, done.stderr


@pytest.fixture
def setup(
    tmp_path: Path, docdb: LocalDocDBProcess, local_aws: LocalAws, mongosh: Mongosh
) -> Iterator[Setup]:
    cluster, agent = start_iam_stage(tmp_path, docdb, local_aws)
    created = cluster.admin_call(
        "POST",
        "/v1/users",
        {"name": "alice", "roles": ["access"], "traits": {"db_users": ["*"], "db_names": ["*"]}},
    )
    invite = created["invite_url"].rsplit("/", 1)[1]
    cluster.admin_call("POST", f"/v1/invites/{invite}", {"password": PASSWORD})
    home = tmp_path / "wsh-home"
    env = {**mongosh.env, "WSH_HOME": str(home), "WSH_MONGOSH": str(mongosh.executable)}
    env.pop("WSH_DB_PASSWORD", None)
    try:
        yield Setup(cluster, agent, local_aws, env, home)
    finally:
        agent.stop()
        cluster.stop()


def db_dir(setup: Setup) -> Path:
    return setup.home / "keys" / setup.cluster.proxy_addr / "alice" / "db" / "my-docdb"


def test_guide_connect_with_mongosh_then_logout(setup: Setup) -> None:
    setup.login()
    # no --db-user: alice's roles allow any ("*"), so wsh asks her to choose
    vague = setup.wsh("db", "login", "my-docdb")
    assert vague.returncode == 1
    assert "--db-user" in vague.stderr and "*" in vague.stderr

    script = (
        "const s = db.runCommand({connectionStatus: 1});"
        "db.orders.insertOne({item: 'pen'});"
        "print(JSON.stringify({users: s.authInfo.authenticatedUsers, db: db.getName(),"
        " n: db.orders.countDocuments({item: 'pen'})}))"
    )
    done = setup.wsh(
        "db", "connect", *DB_FLAGS, "my-docdb", "--", "--quiet", "--eval", script, timeout=120
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {
        "users": [{"user": setup.aws.docdb_user_role_arn, "db": "$external"}],
        "db": "test",
        "n": 1,
    }
    directory = db_dir(setup)
    for name in ("cert.pem", "key.pem", "my-docdb.pem", "cas.pem"):
        assert (directory / name).stat().st_mode & 0o777 == 0o600, name

    config = setup.wsh("db", "config", "my-docdb", "--format", "json")
    assert config.returncode == 0, config.stderr
    data = json.loads(config.stdout)
    assert data["user"] == "wicket-docdb-user" and data["database"] == "test"
    assert "--retryWrites=false" in data["command"]
    env = setup.wsh("db", "env", "my-docdb")
    assert "export WICKET_DB_URI=" in env.stdout

    # a mongosh failure is wsh's exit code
    failed = setup.wsh("db", "connect", "my-docdb", "--", "--quiet", "--eval", "quit(3)")
    assert failed.returncode == 3

    out = setup.wsh("db", "logout", "my-docdb")
    assert out.stdout.strip() == "Logged out of database my-docdb"
    assert not directory.exists()
    again = setup.wsh("db", "config", "my-docdb")
    assert again.returncode == 1 and "wsh db login my-docdb" in again.stderr


def test_connect_without_any_shell_says_how_to_install(setup: Setup, tmp_path: Path) -> None:
    setup.login()
    env = {**setup.env, "PATH": str(tmp_path / "empty")}
    env.pop("WSH_MONGOSH")
    done = subprocess.run(
        [WSH, "db", "connect", *DB_FLAGS, "my-docdb"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "install mongosh" in done.stderr


def test_interactive_mongosh_session(setup: Setup) -> None:
    setup.login()
    shell = pexpect.spawn(
        WSH,
        ["db", "connect", *DB_FLAGS, "my-docdb"],
        env=setup.env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 200),
    )
    try:
        shell.expect("test> ")
        shell.sendline("db.orders.insertOne({item: 'notebook', qty: 7})")
        shell.expect(r"acknowledged: (\x1b\[\d+m)?true")
        shell.expect("test> ")
        shell.sendline("db.orders.find({item: 'notebook'}, {_id: 0})")
        shell.expect(r"qty: (\x1b\[\d+m)?7")
        shell.expect("test> ")
        shell.sendline("exit")
        shell.expect(pexpect.EOF)
    finally:
        shell.close(force=True)
    assert shell.exitstatus == 0


class Tunnel:
    """`wsh proxy db --tunnel` as a background process."""

    def __init__(self, setup: Setup, *args: str, password: str | None = None) -> None:
        self.process = subprocess.Popen(
            [WSH, "proxy", "db", "--tunnel", *args],
            env=setup.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        if password is not None:
            self.process.stdin.write(password + "\n")
        self.process.stdin.close()
        first = self.process.stdout.readline()
        found = re.search(r"on 127\.0\.0\.1:(\d+)\.$", first.strip())
        assert found, first
        self.banner = first
        self.port = int(found.group(1))

    def stop(self) -> str:
        self.process.terminate()
        assert self.process.wait(timeout=20) == 0
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def client(self, **options: Any) -> MongoClient[dict[str, Any]]:
        return MongoClient(
            f"mongodb://127.0.0.1:{self.port}/test?{urlencode(options)}",
            directConnection=True,
            retryWrites=False,
            serverSelectionTimeoutMS=10_000,
        )


def mongo(uri: str) -> MongoClient[dict[str, Any]]:
    return MongoClient(uri, serverSelectionTimeoutMS=10_000)


def test_tunnel_absorbs_scram_for_pymongo(setup: Setup) -> None:
    setup.login()
    password = secrets.token_urlsafe(12)
    tunnel = Tunnel(setup, *DB_FLAGS, "my-docdb", "--db-password-stdin", password=password)
    try:
        assert 'tunnel for the MongoDB database "my-docdb"' in tunnel.banner
        uri = (
            f"mongodb://reporting:{quote_plus(password)}@127.0.0.1:{tunnel.port}/test"
            "?authSource=admin&directConnection=true&retryWrites=false"
        )
        with mongo(uri) as client:
            status = client.admin.command("connectionStatus")
            assert status["authInfo"]["authenticatedUsers"] == [
                {"user": setup.aws.docdb_user_role_arn, "db": "$external"}
            ]
            orders: Collection[dict[str, Any]] = client.test.tunnel_orders
            orders.insert_many([{"i": i, "kind": "odd" if i % 2 else "even"} for i in range(250)])
            found = [d["i"] for d in orders.find({}, batch_size=40).sort("i", 1)]
            assert found == list(range(250))
            grouped = list(
                orders.aggregate(
                    [{"$group": {"_id": "$kind", "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}]
                )
            )
            assert grouped == [{"_id": "even", "n": 125}, {"_id": "odd", "n": 125}]
            # ~20 MiB in one message through the local tunnel, the proxy and the agent
            blob = "y" * (2 * 1024 * 1024)
            big = client.test.big
            big.insert_many([{"_id": i, "blob": blob} for i in range(10)])
            back = list(big.find({}).sort("_id", 1))
            assert [d["_id"] for d in back] == list(range(10))
            assert all(d["blob"] == blob for d in back)
            big.drop()
        with (
            mongo(
                f"mongodb://reporting:wrong@127.0.0.1:{tunnel.port}/test?directConnection=true"
            ) as wrong,
            pytest.raises(PyMongoError, match="Authentication failed"),
        ):
            wrong.admin.command("ping")
    finally:
        tunnel.stop()


def test_tunnel_without_tunnel_flag_explains(setup: Setup) -> None:
    setup.login()
    done = setup.wsh("proxy", "db", "my-docdb")
    assert done.returncode == 1
    assert "only tunnel mode" in done.stderr


def cert_expiry(setup: Setup) -> datetime:
    cert = load_certificate((db_dir(setup) / "cert.pem").read_bytes())
    return cert.not_valid_after_utc


def test_tunnel_renews_the_route_certificate(setup: Setup) -> None:
    setup.login("--ttl=1m")
    tunnel = Tunnel(setup, *DB_FLAGS, "my-docdb")
    try:
        with tunnel.client() as client:
            assert client.test.command("ping")["ok"] == 1.0
        first = cert_expiry(setup)
        # wait for the login and the route certificate to expire
        time.sleep(max(0.0, (first - datetime.now(UTC)).total_seconds()) + 1)
        with (
            tunnel.client(serverSelectionTimeoutMS="3000") as client,
            pytest.raises(PyMongoError),
        ):
            client.test.command("ping")
        setup.login("--ttl=1h")
        with tunnel.client() as client:
            assert client.test.command("ping")["ok"] == 1.0
            client.test.renewed.insert_one({"ok": True})
        assert cert_expiry(setup) > first
    finally:
        errors = tunnel.stop()
    assert "login expired" in errors
    assert "wsh login" in errors
    assert "renewed the certificate" in errors
    assert os.path.exists(db_dir(setup) / "cert.pem")
