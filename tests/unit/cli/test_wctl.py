"""CLI layer: `wctl` against a real auth service on loopback (in-process, own event loop)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from tests.unit.client.harness import Cluster, start_cluster, stop_cluster

from wicket.cli.wctl import cli

PIN_PREFIX = "sha256:"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    started = start_cluster(tmp_path / "data")
    try:
        yield started
    finally:
        stop_cluster(started)


@pytest.fixture
def wctl(cluster: Cluster, tmp_path: Path) -> Iterator[WctlRunner]:
    yield WctlRunner(cluster, tmp_path)


class WctlRunner:
    """Runs wctl with the cluster's admin identity (as on the auth host)."""

    def __init__(self, cluster: Cluster, tmp_path: Path) -> None:
        self.cluster = cluster
        self.env = {
            "WICKET_IDENTITY": str(cluster.admin_dir),
            "WSH_HOME": str(tmp_path / "wsh"),
            "WICKET_CONFIG_FILE": str(tmp_path / "absent.yaml"),
        }

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(
            cli, list(args), env=self.env, input=input, prog_name="wctl", catch_exceptions=False
        )


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def failed(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stderr


def test_version_needs_no_identity(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["version"], env={"WSH_HOME": str(tmp_path)})
    assert result.exit_code == 0
    assert result.stdout.startswith("wctl v")


def test_status_has_the_guide_shape(wctl: WctlRunner, cluster: Cluster) -> None:
    lines = ok(wctl("status")).splitlines()
    assert lines == [
        "Cluster  example.com",
        "Version  0.1.0",
        f"CA pin   {cluster.pin}",
    ]
    data = json.loads(ok(wctl("status", "--format", "json")))
    assert data["ca_pin"] == cluster.pin
    assert data["ca_pins"]["host"] == cluster.pin


def test_status_through_the_config_file(cluster: Cluster, tmp_path: Path) -> None:
    config = tmp_path / "wicket.yaml"
    config.write_text(
        "version: v1\n"
        f"wicket: {{nodename: test, data_dir: {cluster.data_dir}}}\n"
        "auth_service: {enabled: true, cluster_name: example.com}\n"
    )
    env = {"WSH_HOME": str(tmp_path / "wsh"), "WICKET_IDENTITY": ""}
    result = CliRunner().invoke(cli, ["-c", str(config), "status"], env=env)
    assert ok(result).splitlines()[0] == "Cluster  example.com"


def test_no_identity_is_one_clear_line(tmp_path: Path) -> None:
    env = {
        "WSH_HOME": str(tmp_path / "wsh"),
        "WICKET_CONFIG_FILE": "",
        "WICKET_IDENTITY": "",
    }
    if Path("/etc/wicket.yaml").exists():
        pytest.skip("this machine has /etc/wicket.yaml")
    result = CliRunner().invoke(cli, ["status"], env=env)
    assert failed(result) == (
        "wctl: no identity: run wctl on the auth host, or log in with "
        "wsh login --proxy=... --user=...\n"
    )


def test_missing_identity_directory_is_named(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--identity", str(tmp_path / "nope"), "status"])
    assert f"identity directory {tmp_path / 'nope'} does not exist" in failed(result)


def test_users_add_prints_the_invite_like_the_guide(wctl: WctlRunner) -> None:
    out = ok(
        wctl("users", "add", "alice", "--roles=access", "--db-users=*", "--db-names=test,reports")
    )
    lines = out.splitlines()
    assert lines[0] == (
        'User "alice" has been created but requires a password. Share this URL with the user '
        "to complete user setup, link is valid for 1h:"
    )
    assert lines[1].startswith("https://proxy.example.com:3080/web/invite/")
    assert lines[2] == ""
    assert lines[3] == (
        "NOTE: Make sure proxy.example.com:3080 points at a Wicket proxy which users can access."
    )
    user = wctl.cluster.admin_call("GET", "/v1/users/alice")
    assert user["roles"] == ["access"]
    assert user["traits"] == {"db_users": ["*"], "db_names": ["test", "reports"]}


def test_users_add_traits_and_errors(wctl: WctlRunner) -> None:
    ok(wctl("users", "add", "bob", "--roles=access,editor", "--traits", "team=a,b"))
    assert wctl.cluster.admin_call("GET", "/v1/users/bob")["traits"] == {"team": ["a", "b"]}
    assert failed(wctl("users", "add", "bob", "--roles=access")) == (
        'wctl: user "bob" already exists\n'
    )
    assert "role" in failed(wctl("users", "add", "carol", "--roles=no-such-role"))
    failed(wctl("users", "add", "carol"), code=2)  # --roles is required
    failed(wctl("users", "add", "carol", "--roles=access", "--traits", "novalue"), code=2)
    failed(wctl("users", "add", "carol", "--roles", ""), code=2)


def test_users_ls_rm_update_reset(wctl: WctlRunner) -> None:
    ok(wctl("users", "add", "alice", "--roles=access", "--db-users=u1,u2", "--db-names=test"))
    table = ok(wctl("users", "ls")).splitlines()
    assert table[0].split() == ["User", "Roles", "DB", "Users", "DB", "Names"]
    assert set(table[1]) <= {"-", " "}
    assert table[2].split() == ["alice", "access", "u1,u2", "test"]
    listed = json.loads(ok(wctl("users", "ls", "--format=json")))
    assert [u["name"] for u in listed] == ["alice"]
    assert yaml.safe_load(ok(wctl("users", "ls", "--format=yaml")))["name"] == "alice"

    ok(wctl("users", "update", "alice", "--set-roles=access,editor", "--set-db-names=a,b"))
    user = wctl.cluster.admin_call("GET", "/v1/users/alice")
    assert user["roles"] == ["access", "editor"]
    assert user["traits"] == {"db_users": ["u1", "u2"], "db_names": ["a", "b"]}
    failed(wctl("users", "update", "alice"), code=2)
    assert failed(wctl("users", "update", "nobody", "--set-roles=access")) == (
        'wctl: user "nobody" not found\n'
    )

    reset = ok(wctl("users", "reset", "alice")).splitlines()
    assert reset[0].startswith('User "alice" has been reset.')
    assert reset[0].endswith("link is valid for 1h:")
    assert "/web/invite/" in reset[1]

    assert ok(wctl("users", "rm", "alice")) == 'User "alice" has been deleted\n'
    assert failed(wctl("users", "rm", "alice")) == 'wctl: user "alice" not found\n'


def test_tokens_text_format_prints_only_the_token(wctl: WctlRunner, tmp_path: Path) -> None:
    out = ok(wctl("tokens", "add", "--type=db", "--format=text"))
    token = out.strip()
    assert out == token + "\n"
    assert " " not in token and len(token) >= 16
    listed = wctl.cluster.admin_call("GET", "/v1/tokens")
    assert len(listed) == 1 and listed[0]["type"] == "db"


def test_tokens_default_json_yaml_ls_rm(wctl: WctlRunner) -> None:
    friendly = ok(wctl("tokens", "add", "--type=db", "--ttl=1h"))
    assert friendly.startswith("The invite token: ")
    token = friendly.splitlines()[0].removeprefix("The invite token: ")
    assert "This token will expire in 1 hour" in friendly
    assert f"--token={token}" in friendly
    assert "wicket db configure create" in friendly

    data = json.loads(ok(wctl("tokens", "add", "--type=proxy", "--format=json")))
    assert data["type"] == "proxy" and data["token"]
    data_yaml = yaml.safe_load(ok(wctl("tokens", "add", "--type=db", "--format=yaml")))
    assert data_yaml["type"] == "db"

    table = ok(wctl("tokens", "ls")).splitlines()
    assert table[0].split() == ["Token", "ID", "Type", "Expires"]
    assert len(table) == 2 + 3
    ids = [t["id"] for t in json.loads(ok(wctl("tokens", "ls", "--format=json")))]
    assert data["id"] in ids
    assert ok(wctl("tokens", "rm", data["id"])) == f"Token {data['id']} has been deleted\n"
    assert len(json.loads(ok(wctl("tokens", "ls", "--format=json")))) == 2
    assert "not found" in failed(wctl("tokens", "rm", data["id"]))

    failed(wctl("tokens", "add", "--type=node"), code=2)
    failed(wctl("tokens", "add", "--type=db", "--ttl=soon"), code=2)
    failed(wctl("tokens", "add", "--type=db", "--format=xml"), code=2)
    failed(wctl("tokens", "add"), code=2)


ROLE = """\
kind: role
version: v1
metadata: {name: docdb-dev}
spec:
  options: {max_session_ttl: 8h}
  allow:
    db_labels: {env: dev}
    db_users: ["teleport-docdb-user"]
    db_names: ["test", "reports"]
  deny: {}
"""

DB = """\
kind: db
version: v3
metadata:
  name: dyn-docdb
  labels: {env: dev}
spec: {protocol: mongodb, uri: "docdb.example.com:27017"}
"""

USER = """\
kind: user
version: v2
metadata: {name: dave}
spec:
  roles: [docdb-dev]
  traits: {db_users: [x]}
"""


def test_create_get_rm_roles(wctl: WctlRunner, tmp_path: Path) -> None:
    role_file = tmp_path / "role.yaml"
    role_file.write_text(ROLE)
    assert ok(wctl("create", str(role_file))) == 'role "docdb-dev" has been created\n'
    assert failed(wctl("create", str(role_file))) == (
        'wctl: role "docdb-dev" already exists (use -f to overwrite)\n'
    )
    assert ok(wctl("create", "-f", str(role_file))) == 'role "docdb-dev" has been updated\n'
    (got,) = list(yaml.safe_load_all(ok(wctl("get", "role/docdb-dev"))))
    assert got["metadata"]["name"] == "docdb-dev"
    assert got["spec"]["allow"]["db_labels"] == {"env": "dev"}
    names = [r["metadata"]["name"] for r in json.loads(ok(wctl("get", "roles", "--format=json")))]
    assert {"access", "editor", "auditor", "docdb-dev"} <= set(names)
    assert ok(wctl("rm", "role/docdb-dev")) == 'role "docdb-dev" has been deleted\n'
    assert "not found" in failed(wctl("get", "role/docdb-dev"))


def test_create_users_dbs_and_stdin(wctl: WctlRunner, tmp_path: Path) -> None:
    (tmp_path / "role.yaml").write_text(ROLE)
    ok(wctl("create", str(tmp_path / "role.yaml")))
    out = ok(wctl("create", "-", input=USER + "---\n" + DB))
    assert out.startswith('user "dave" has been created\n')
    assert "/web/invite/" in out
    assert out.endswith('db "dyn-docdb" has been created\n')
    user = json.loads(ok(wctl("get", "user/dave", "--format=json")))[0]
    assert user["spec"] == {"roles": ["docdb-dev"], "traits": {"db_users": ["x"]}}
    assert user["status"]["has_password"] is False
    assert failed(wctl("create", "-", input=USER)) == (
        'wctl: user "dave" already exists (use -f to overwrite)\n'
    )
    changed = USER.replace("{db_users: [x]}", "{db_names: [y]}")
    assert ok(wctl("create", "-f", "-", input=changed)) == 'user "dave" has been updated\n'
    spec = json.loads(ok(wctl("get", "users/dave", "--format=json")))[0]["spec"]
    assert spec["traits"] == {"db_names": ["y"]}

    db = yaml.safe_load(ok(wctl("get", "db/dyn-docdb")))
    assert db["spec"]["uri"] == "docdb.example.com:27017"
    # listed even though no agent serves it yet
    listed = list(yaml.safe_load_all(ok(wctl("get", "db"))))
    assert [d["metadata"]["name"] for d in listed if d] == ["dyn-docdb"]
    assert ok(wctl("rm", "db/dyn-docdb")) == 'db "dyn-docdb" has been deleted\n'
    assert ok(wctl("rm", "user/dave")) == 'user "dave" has been deleted\n'


def test_get_tokens_masks_values(wctl: WctlRunner) -> None:
    token = ok(wctl("tokens", "add", "--type=db", "--format=text")).strip()
    (got,) = list(yaml.safe_load_all(ok(wctl("get", "tokens"))))
    assert got["kind"] == "token"
    assert got["spec"]["type"] == "db"
    assert token not in yaml.safe_dump(got)
    by_id = yaml.safe_load(ok(wctl("get", f"token/{got['metadata']['name']}")))
    assert by_id["metadata"]["name"] == got["metadata"]["name"]
    ok(wctl("rm", f"token/{got['metadata']['name']}"))
    assert ok(wctl("get", "tokens")) == ""


def test_resource_errors(wctl: WctlRunner, tmp_path: Path) -> None:
    assert "unknown resource kind 'widgets'" in failed(wctl("get", "widgets"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: role\nversion: v1\nmetadata: {name: x}\nspec: {allow: {nope: 1}}\n")
    assert "nope" in failed(wctl("create", str(bad)))
    failed(wctl("create", str(tmp_path / "missing.yaml")), code=2)
    failed(wctl("rm", "role"), code=2)
    assert "not found" in failed(wctl("rm", "role/absent"))


def test_db_ls_shows_databases_and_agents(wctl: WctlRunner) -> None:
    assert ok(wctl("db", "ls")).splitlines()[0].split() == [
        "Name",
        "Protocol",
        "URI",
        "Labels",
        "Agents",
    ]
    resource = {
        "kind": "db",
        "version": "v3",
        "metadata": {"name": "my-docdb", "labels": {"region": "x", "env": "dev"}},
        "spec": {"protocol": "mongodb", "uri": "docdb.example.com:27017"},
    }
    wctl.cluster.heartbeat("host-1", "agent-one", [resource])
    wctl.cluster.heartbeat("host-2", "agent-two", [resource])
    lines = ok(wctl("db", "ls")).splitlines()
    assert lines[2].split() == [
        "my-docdb",
        "mongodb",
        "docdb.example.com:27017",
        "env=dev,region=x",
        "agent-one,",
        "agent-two",
    ]
    (entry,) = json.loads(ok(wctl("db", "ls", "--format=json")))
    assert sorted(a["host_id"] for a in entry["agents"]) == ["host-1", "host-2"]
    assert yaml.safe_load(ok(wctl("get", "db/my-docdb")))["metadata"]["name"] == "my-docdb"


def test_identity_from_environment_is_used(wctl: WctlRunner, tmp_path: Path) -> None:
    env = {**wctl.env, "WICKET_IDENTITY": str(tmp_path / "elsewhere")}
    result = CliRunner().invoke(cli, ["status"], env=env)
    assert "elsewhere does not exist" in failed(result)


def test_wctl_through_a_wsh_login(tmp_path: Path) -> None:
    from tests.unit.client.harness import PASSWORD

    from wicket.cli.wsh import cli as wsh_cli

    proxied = start_cluster(tmp_path / "data", with_proxy=True)
    try:
        proxied.add_user("ed", ["editor"], {})
        proxied.add_user("al", ["access"], {})
        for user in ("ed", "al"):
            env = {"WSH_HOME": str(tmp_path / user)}
            login = CliRunner().invoke(
                wsh_cli,
                [
                    "login",
                    f"--proxy={proxied.proxy_addr}",
                    f"--user={user}",
                    "--password-stdin",
                    f"--ca-pin={proxied.pin}",
                ],
                env=env,
                input=PASSWORD + "\n",
            )
            assert login.exit_code == 0, login.stderr
        no_local = {"WICKET_CONFIG_FILE": str(tmp_path / "absent.yaml"), "WICKET_IDENTITY": ""}
        editor = {**no_local, "WSH_HOME": str(tmp_path / "ed")}
        status = CliRunner().invoke(
            cli, ["-c", str(tmp_path / "absent.yaml"), "status"], env=editor
        )
        assert "absent.yaml" in failed(status)  # a config named explicitly must exist
        status = CliRunner().invoke(cli, ["status"], env={**editor, "WICKET_CONFIG_FILE": ""})
        assert ok(status).splitlines()[0] == "Cluster  example.com"
        token = CliRunner().invoke(
            cli, ["tokens", "add", "--type=db"], env={**editor, "WICKET_CONFIG_FILE": ""}
        )
        assert f"--proxy={proxied.proxy_addr}" in ok(token)
        access = {**no_local, "WSH_HOME": str(tmp_path / "al"), "WICKET_CONFIG_FILE": ""}
        denied = CliRunner().invoke(cli, ["users", "ls"], env=access)
        assert 'wctl: user "al" (roles: access) may not list users' in failed(denied)
    finally:
        stop_cluster(proxied)


def test_lock_locks_ls_get_create_and_rm(wctl: WctlRunner, tmp_path: Path) -> None:
    lock_id = ok(wctl("lock", "--user=bob", "--message=incident 42", "--ttl=1h")).strip()
    assert len(lock_id) == 36
    table = ok(wctl("locks", "ls")).splitlines()
    assert table[0].split()[:4] == ["ID", "Target", "Message", "Expires"]
    assert table[2].startswith(lock_id) and "user=bob" in table[2] and "incident 42" in table[2]
    [listed] = json.loads(ok(wctl("locks", "ls", "--format=json")))
    assert listed["spec"]["target"] == {"user": "bob"}
    assert listed["spec"]["created_by"] == "wicket-admin"
    (got,) = list(yaml.safe_load_all(ok(wctl("get", f"lock/{lock_id}"))))
    assert got["kind"] == "lock" and got["metadata"]["name"] == lock_id

    lock_file = tmp_path / "lock.yaml"
    lock_file.write_text(
        "kind: lock\nversion: v1\nmetadata: {name: any}\n"
        "spec: {target: {role: access}, message: from a file}\n"
    )
    created = ok(wctl("create", str(lock_file)))
    assert created.startswith('lock "') and created.endswith('" has been created\n')
    assert len(json.loads(ok(wctl("get", "locks", "--format=json")))) == 2

    assert ok(wctl("rm", f"lock/{lock_id}")) == f'lock "{lock_id}" has been deleted\n'
    assert "not found" in failed(wctl("rm", f"lock/{lock_id}"))
    assert "no lock 'nope'" in failed(wctl("rm", "lock/nope"))


def test_lock_needs_exactly_one_target_and_one_bound(wctl: WctlRunner) -> None:
    assert "exactly one of --user, --role, --db" in failed(wctl("lock"), code=2)
    assert "exactly one" in failed(wctl("lock", "--user=a", "--db=b"), code=2)
    assert "not both" in failed(wctl("lock", "--user=a", "--ttl=1h", "--expires=x"), code=2)
    assert "in the past" in failed(wctl("lock", "--user=a", "--expires=2020-01-01T00:00:00Z"))
    assert "not a valid user name" in failed(wctl("lock", "--user=../x"))
    expires = ok(wctl("lock", "--db=prod", "--expires=2099-01-01T00:00:00Z")).strip()
    [listed] = json.loads(ok(wctl("locks", "ls", "--format=json")))
    assert listed["metadata"]["name"] == expires
    assert listed["spec"]["expires"].startswith("2099-01-01T00:00:00")
