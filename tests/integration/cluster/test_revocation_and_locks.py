"""Issue 7, class 1 and locks, through real processes: the auth service decides every call
and every certificate from the user's current record and the locks in force.

One all-in-one cluster and one agent per module (`wicket start`); `wctl` on the auth host
and `wsh` as users run them. No database is needed: every refusal here happens at the
auth service (listing, certificate issuance, login).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from localdocdb.localaws import free_port
from tests.support.cluster import Cluster, WicketProcess, new_cluster, start_wicket, wicket_bin
from tests.support.cluster import write_agent_config as agent_config
from wicket.api.client import AUTH_SERVER_NAME
from wicket.identity import identity_from_certificate
from wicket.pki.keys import load_private_key, public_key_pem
from wicket.pki.pem import load_certificate
from wicket.tlsconfig import client_context

PASSWORD = "a long enough passphrase"
DATABASE = "my-docdb"


@dataclass
class Stage:
    cluster: Cluster
    agent: WicketProcess
    pin: str
    root: Path

    def wctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(
            "wctl",
            "-c",
            str(self.cluster.config),
            *args,
            home=self.root / "admin-home",
            check=check,
        )

    def add_user(self, name: str, *, roles: list[str], db_users: list[str]) -> Path:
        created = self.cluster.admin_call(
            "POST",
            "/v1/users",
            {"name": name, "roles": roles, "traits": {"db_users": db_users, "db_names": ["*"]}},
        )
        invite = created["invite_url"].rsplit("/", 1)[1]
        self.cluster.admin_call("POST", f"/v1/invites/{invite}", {"password": PASSWORD})
        return self.root / f"home-{name}"

    def wsh(self, home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run("wsh", *args, home=home, check=check)

    def login(
        self, home: Path, user: str, *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return _run(
            "wsh",
            "login",
            f"--proxy={self.cluster.proxy_addr}",
            f"--user={user}",
            "--password-stdin",
            f"--ca-pin={self.pin}",
            home=home,
            stdin=PASSWORD + "\n",
            check=check,
        )

    def db_dir(self, home: Path, user: str) -> Path:
        return home / "keys" / self.cluster.proxy_addr / user / "db" / DATABASE


def _run(
    name: str, *args: str, home: Path, stdin: str = "", check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "WSH_HOME": str(home),
        "WICKET_CONFIG_FILE": "",
        "WSH_MONGOSH": "/bin/true",
    }
    env.pop("WICKET_IDENTITY", None)
    result = subprocess.run(
        [wicket_bin(name), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    if check:
        assert result.returncode == 0, (result.stdout, result.stderr)
    return result


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    root = tmp_path_factory.mktemp("revocation")
    cluster = new_cluster(root / "node")
    cluster.start()
    try:
        token = cluster.admin_call("POST", "/v1/tokens", {"type": "db"})["token"]
        (root / "token").write_text(token)
        config = agent_config(
            root / "agent", cluster, root / "token", name=DATABASE, uri=f"localhost:{free_port()}"
        )
        agent = start_wicket(config, root / "agent.log")
        agent.wait_for_log("tunnel to")
    except BaseException:
        cluster.stop()
        raise
    pin = cluster.admin_call("GET", "/v1/status")["ca_pin"]
    try:
        yield Stage(cluster, agent, pin, root)
    finally:
        agent.stop()
        cluster.stop()


def test_a_deleted_user_can_list_nothing_and_get_no_certificate(stage: Stage) -> None:
    home = stage.add_user("bob", roles=["access"], db_users=["*"])
    stage.login(home, "bob")
    assert DATABASE in stage.wsh(home, "db", "ls").stdout
    stage.wsh(home, "db", "login", "--db-user=reader", "--db-name=test", DATABASE)

    stage.wctl("users", "rm", "bob")
    listed = stage.wsh(home, "db", "ls", check=False)
    assert listed.returncode == 1
    assert 'user "bob" no longer exists' in listed.stderr
    stage.wsh(home, "db", "logout")
    assert not stage.db_dir(home, "bob").exists()
    for command in ("login", "connect"):
        refused = stage.wsh(
            home, "db", command, "--db-user=reader", "--db-name=test", DATABASE, check=False
        )
        assert refused.returncode == 1, command
        assert 'user "bob" no longer exists' in refused.stderr, command
        assert not stage.db_dir(home, "bob").exists(), command
    # the renewal path of `wsh proxy db --tunnel` is the same endpoint: nothing for bob
    gone = stage.login(home, "bob", check=False)
    assert gone.returncode == 1


def _route_certificate(directory: Path) -> tuple[str | None, bytes]:
    """The db user of a saved route certificate and the public key it certifies (PEM)."""
    cert = load_certificate((directory / "cert.pem").read_bytes())
    route = identity_from_certificate(cert).route
    assert route is not None
    key = cert.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return route.db_user, key


def test_login_again_reissues_or_drops_database_certificates(stage: Stage) -> None:
    home = stage.add_user("carol", roles=["access"], db_users=["admin", "reader"])
    stage.login(home, "carol")
    stage.wsh(home, "db", "login", "--db-user=admin", "--db-name=test", DATABASE)
    directory = stage.db_dir(home, "carol")

    # still allowed: re-issued for the new login's key
    relogin = stage.login(home, "carol")
    assert f'Renewed the certificate for database "{DATABASE}"' in relogin.stderr
    login_key = load_private_key(
        (home / "keys" / stage.cluster.proxy_addr / "carol" / "key.pem").read_bytes()
    )
    db_user, key = _route_certificate(directory)
    assert db_user == "admin" and key == public_key_pem(login_key)

    # narrowed: the admin route is dropped, with a notice
    stage.wctl("users", "update", "carol", "--set-db-users=reader")
    narrowed = stage.login(home, "carol")
    assert f'Dropped the certificate for database "{DATABASE}"' in narrowed.stderr
    assert 'db_user "admin"' in narrowed.stderr
    assert not directory.exists()

    # logout drops every database certificate with the login
    stage.wsh(home, "db", "login", "--db-user=reader", "--db-name=test", DATABASE)
    out = stage.wsh(home, "logout")
    assert f"Logged out of database {DATABASE}" in out.stdout
    assert not directory.exists()


def test_a_lock_refuses_login_and_shows_in_status_until_removed(stage: Stage) -> None:
    home = stage.add_user("dave", roles=["access"], db_users=["reader"])
    stage.login(home, "dave")
    lock_id = stage.wctl("lock", "--user=dave", "--message=incident 42").stdout.strip()
    assert len(lock_id) == 36

    refused = stage.login(home, "dave", check=False)
    assert refused.returncode == 1
    assert "incident 42" in refused.stderr and lock_id in refused.stderr
    status = stage.wsh(home, "status")
    assert "Logged in as: dave" in status.stdout
    assert "Locked:" in status.stdout and "incident 42" in status.stdout
    listed = stage.wsh(home, "db", "ls", check=False)
    assert listed.returncode == 1 and "incident 42" in listed.stderr
    cert = stage.wsh(
        home, "db", "login", "--db-user=reader", "--db-name=test", DATABASE, check=False
    )
    assert cert.returncode == 1 and "incident 42" in cert.stderr

    table = stage.wctl("locks", "ls").stdout
    assert lock_id in table and "user=dave" in table and "incident 42" in table
    as_json = json.loads(stage.wctl("locks", "ls", "--format=json").stdout)
    assert [item["metadata"]["name"] for item in as_json] == [lock_id]
    assert f"name: {lock_id}" in stage.wctl("get", f"lock/{lock_id}").stdout

    stage.wctl("rm", f"lock/{lock_id}")
    stage.login(home, "dave")
    assert "Locked:" not in stage.wsh(home, "status").stdout
    stage.wsh(home, "db", "ls")


def test_role_and_database_locks_and_ttl_expiry(stage: Stage) -> None:
    home = stage.add_user("erin", roles=["access"], db_users=["reader"])
    stage.login(home, "erin")
    db_lock = stage.wctl("lock", f"--db={DATABASE}", "--message=maintenance").stdout.strip()
    stage.wsh(home, "db", "ls")  # a database lock does not hide the catalogue
    refused = stage.wsh(
        home, "db", "login", "--db-user=reader", "--db-name=test", DATABASE, check=False
    )
    assert refused.returncode == 1 and "maintenance" in refused.stderr
    stage.wctl("rm", f"lock/{db_lock}")

    stage.wctl("lock", "--role=access", "--ttl=3s", "--message=brief")
    role_refused = stage.wsh(home, "db", "ls", check=False)
    assert role_refused.returncode == 1 and "brief" in role_refused.stderr
    deadline = time.monotonic() + 20
    while stage.wsh(home, "db", "ls", check=False).returncode != 0:
        assert time.monotonic() < deadline, "the lock with --ttl=3s did not expire"
        time.sleep(0.5)
    assert "brief" not in stage.wctl("locks", "ls").stdout


def test_administrative_changes_are_audited(stage: Stage) -> None:
    role = stage.root / "role.yaml"
    role.write_text(
        "kind: role\nversion: v1\nmetadata:\n  name: audited\n"
        "spec:\n  allow:\n    db_labels: {env: dev}\n"
    )
    stage.wctl("create", str(role))
    stage.wctl("users", "add", "frank", "--roles=audited")
    lock_id = stage.wctl("lock", "--user=frank").stdout.strip()
    stage.wctl("rm", f"lock/{lock_id}")
    stage.wctl("users", "rm", "frank")
    stage.wctl("rm", "role/audited")
    events = json.loads(stage.wctl("events", "ls", "--format=json").stdout)
    seen = {(event["type"], event.get("name")) for event in events}
    for expected in (
        ("role.created", "audited"),
        ("user.created", "frank"),
        ("lock.created", lock_id),
        ("lock.deleted", lock_id),
        ("user.deleted", "frank"),
        ("role.deleted", "audited"),
    ):
        assert expected in seen, expected
    admin = [event for event in events if event["type"] == "lock.created"]
    assert admin[-1]["user"] == "wicket-admin"
    assert admin[-1]["changes"]["target"] == {"user": "frank"}
    issued = [event for event in events if event["type"] == "cert.issued"]
    assert {event["cert_kind"] for event in issued} >= {"user", "database"}
    assert all("BEGIN" not in json.dumps(event) for event in events)  # no keys, no certs


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/users/%2e%2e"),
        ("GET", "/v1/users/..%2fstatus"),
        ("GET", "/v1/users/" + "a" * 300),
        ("DELETE", "/v1/users/-leading-dash"),
        ("GET", "/v1/roles/%00"),
        ("GET", "/v1/invites/..%2f..%2fv1%2fstatus"),
        ("GET", "/v1/invites/not-hex"),
        ("DELETE", "/v1/tokens/%2e%2e"),
        ("GET", "/v1/locks/not-a-uuid"),
        ("DELETE", "/v1/locks/%2e%2e"),
        ("GET", "/v1/databases/%2e%2e%2fx"),
        ("GET", "/v1/nothing/here"),
    ],
)
def test_malformed_path_parameters_are_404_not_500(stage: Stage, method: str, path: str) -> None:
    admin = stage.cluster.data_dir / "admin"
    info = json.loads((admin / "cluster.json").read_text())
    context = client_context(
        ca_pems=[info["cas"]["host"].encode()],
        cert_chain_pem=(admin / "cert.pem").read_bytes(),
        key_pem=(admin / "key.pem").read_bytes(),
    )
    host, port = info["auth_addr"].rsplit(":", 1)
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    # the auth service's certificate names only wicket-auth, whatever address reached it
    connection.sock = context.wrap_socket(
        socket.create_connection((host, int(port)), timeout=10), server_hostname=AUTH_SERVER_NAME
    )
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 404, body
    assert body["error"]["kind"] == "not_found"
    assert body["error"]["message"]
