"""CLI layer: `wsh` against a real auth service and proxy (router, web side, wicket-auth splice)."""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pexpect
import pytest
import yaml
from click.testing import CliRunner, Result
from tests.unit.client.harness import PASSWORD, Cluster, start_cluster, stop_cluster

from wicket.cli.wsh import cli
from wicket.identity import Identity, IdentityKind
from wicket.pki.keys import load_private_key
from wicket.pki.pem import certificate_pem

WSH = Path(sys.executable).parent / "wsh"
DB_DEV = {
    "kind": "db",
    "version": "v3",
    "metadata": {"name": "dev-docdb", "description": "Dev cluster", "labels": {"env": "dev"}},
    "spec": {"protocol": "mongodb", "uri": "dev.example.com:27017"},
}
DB_PROD = {
    "kind": "db",
    "version": "v3",
    "metadata": {"name": "prod-docdb", "labels": {"env": "prod", "team": "a"}},
    "spec": {"protocol": "mongodb", "uri": "prod.example.com:27017"},
}
DEV_ROLE = {
    "kind": "role",
    "version": "v1",
    "metadata": {"name": "dev-only"},
    "spec": {
        "allow": {"db_labels": {"env": "dev"}, "db_users": ["reader"], "db_names": ["test"]},
    },
}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    started = start_cluster(tmp_path / "data", with_proxy=True)
    try:
        started.add_user(
            "alice", ["access"], {"db_users": ["teleport-docdb-user"], "db_names": ["*"]}
        )
        yield started
    finally:
        stop_cluster(started)


class Wsh:
    """Runs wsh in-process with its own WSH_HOME."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {"WSH_HOME": str(home)}

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(
            cli, list(args), env=self.env, input=input, prog_name="wsh", catch_exceptions=False
        )

    def login(self, cluster: Cluster, user: str = "alice", *extra: str) -> Result:
        return self(
            "login",
            f"--proxy={cluster.proxy_addr}",
            f"--user={user}",
            "--password-stdin",
            f"--ca-pin={cluster.pin}",
            *extra,
            input=PASSWORD + "\n",
        )


@pytest.fixture
def wsh(tmp_path: Path) -> Wsh:
    return Wsh(tmp_path / "wsh-home")


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def failed(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stderr


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_login_writes_profile_and_keys_and_prints_status(wsh: Wsh, cluster: Cluster) -> None:
    lines = ok(wsh.login(cluster, "alice", "--ttl=2h")).splitlines()
    assert lines[0] == f"> Profile URL:  https://{cluster.proxy_addr}"
    assert lines[1] == "  Logged in as: alice"
    assert lines[2] == "  Cluster:      example.com"
    assert lines[3] == "  Roles:        access"
    assert lines[-1].startswith("  Valid until:  ")
    assert lines[-1].endswith("[valid for 1h59m59s]") or lines[-1].endswith("[valid for 2h0m0s]")

    keys = wsh.home / "keys" / cluster.proxy_addr / "alice"
    assert mode(wsh.home) == 0o700
    for name in ("key.pem", "cert.pem", "cluster.json"):
        assert mode(keys / name) == 0o600, name
    load_private_key((keys / "key.pem").read_bytes())
    profile = json.loads((wsh.home / "profile.json").read_text())
    assert profile["current"] == cluster.proxy_addr
    assert profile["profiles"][cluster.proxy_addr]["user"] == "alice"
    assert profile["trusted"][cluster.proxy_addr] == cluster.pin
    assert json.loads((keys / "cluster.json").read_text())["ca_pin"] == cluster.pin

    assert ok(wsh("status")).splitlines()[:4] == lines[:4]


def test_wrong_pin_is_refused_and_nothing_stored(wsh: Wsh, cluster: Cluster) -> None:
    wrong = "sha256:" + "0" * 64
    result = wsh(
        "login",
        f"--proxy={cluster.proxy_addr}",
        "--user=alice",
        "--password-stdin",
        f"--ca-pin={wrong}",
        input=PASSWORD + "\n",
    )
    assert "CA pin mismatch" in failed(result)
    assert not (wsh.home / "profile.json").exists()
    failed(wsh("login", f"--proxy={cluster.proxy_addr}", "--user=alice", "--ca-pin=md5:x"))


def test_first_login_without_terminal_needs_the_pin(wsh: Wsh, cluster: Cluster) -> None:
    result = wsh(
        "login",
        f"--proxy={cluster.proxy_addr}",
        "--user=alice",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    err = failed(result)
    assert "without a terminal" in err
    assert f"--ca-pin={cluster.pin}" in err


def test_remembered_pin_and_changed_ca(wsh: Wsh, cluster: Cluster) -> None:
    ok(wsh.login(cluster))
    assert ok(wsh("logout")) == f"Logged out alice from {cluster.proxy_addr}.\n"
    assert not (wsh.home / "keys" / cluster.proxy_addr / "alice").exists()
    assert failed(wsh("status")) == "wsh: not logged in\n"
    # The pin survives logout (like known_hosts): no --ca-pin needed, no prompt.
    again = wsh(
        "login",
        f"--proxy={cluster.proxy_addr}",
        "--user=alice",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert "Logged in as: alice" in ok(again)
    # A cluster presenting another CA than remembered is refused loudly.
    profile_file = wsh.home / "profile.json"
    data = json.loads(profile_file.read_text())
    data["trusted"][cluster.proxy_addr] = "sha256:" + "ab" * 32
    profile_file.write_text(json.dumps(data))
    err = failed(
        wsh(
            "login",
            f"--proxy={cluster.proxy_addr}",
            "--user=alice",
            "--password-stdin",
            input=PASSWORD + "\n",
        )
    )
    assert "presents a different CA than before" in err
    assert "sha256:" + "ab" * 32 in err


def test_insecure_login_does_not_remember_the_pin(wsh: Wsh, cluster: Cluster) -> None:
    result = wsh(
        "login",
        f"--proxy={cluster.proxy_addr}",
        "--user=alice",
        "--password-stdin",
        "--insecure",
        input=PASSWORD + "\n",
    )
    assert "Logged in as: alice" in ok(result)
    assert json.loads((wsh.home / "profile.json").read_text())["trusted"] == {}


def test_wrong_password_and_unknown_user(wsh: Wsh, cluster: Cluster) -> None:
    result = wsh(
        "login",
        f"--proxy={cluster.proxy_addr}",
        "--user=alice",
        "--password-stdin",
        f"--ca-pin={cluster.pin}",
        input="not the password\n",
    )
    err = failed(result)
    assert err.startswith("wsh: ")
    assert not (wsh.home / "keys").exists()
    failed(
        wsh(
            "login",
            "--proxy=127.0.0.1:1",
            "--user=alice",
            "--insecure",
            "--password-stdin",
            input="x\n",
        )
    )
    failed(wsh("login", "--user=alice"), code=2)
    failed(wsh("login", f"--proxy={cluster.proxy_addr}", "--user=alice", "--ttl=forever"), code=2)


def test_db_ls_differs_by_role(wsh: Wsh, cluster: Cluster, tmp_path: Path) -> None:
    cluster.admin_call("PUT", "/v1/roles/dev-only", DEV_ROLE)
    cluster.add_user("bob", ["dev-only"], {})
    cluster.heartbeat("host-1", "agent-one", [DB_DEV, DB_PROD])

    ok(wsh.login(cluster, "alice"))
    lines = ok(wsh("db", "ls")).splitlines()
    assert lines[0].split() == ["Name", "Description", "Allowed", "Users", "Labels", "Connect"]
    assert lines[2].split() == ["dev-docdb", "Dev", "cluster", "teleport-docdb-user", "env=dev"]
    assert lines[3].split() == ["prod-docdb", "teleport-docdb-user", "env=prod,team=a"]
    listed = json.loads(ok(wsh("db", "ls", "--format=json")))
    assert [d["metadata"]["name"] for d in listed] == ["dev-docdb", "prod-docdb"]

    bob = Wsh(tmp_path / "bob-home")
    ok(bob.login(cluster, "bob"))
    lines = ok(bob("db", "ls")).splitlines()
    assert len(lines) == 3
    assert lines[2].split() == ["dev-docdb", "Dev", "cluster", "reader", "env=dev"]
    (only,) = list(yaml.safe_load_all(ok(bob("db", "ls", "--format=yaml"))))
    assert only["allowed_db_names"] == ["test"]


def test_expired_certificate(wsh: Wsh, cluster: Cluster) -> None:
    ok(wsh.login(cluster))
    keys = wsh.home / "keys" / cluster.proxy_addr / "alice"
    key = load_private_key((keys / "key.pem").read_bytes())
    assert cluster.auth is not None
    identity = Identity(
        cluster="example.com", kind=IdentityKind.USER, name="alice", roles=("access",)
    )
    past = datetime.now(UTC) - timedelta(hours=3)
    cert = cluster.auth.cluster.user.issue(
        key.public_key(), identity, ttl=timedelta(hours=1), clock=lambda: past
    )
    (keys / "cert.pem").write_bytes(certificate_pem(cert))
    assert ok(wsh("status")).rstrip().endswith("[EXPIRED]")
    err = failed(wsh("db", "ls"))
    assert err.startswith("wsh: your session expired at ")
    assert err.endswith("; run wsh login again\n")


def test_signup_sets_the_password_then_login_works(wsh: Wsh, cluster: Cluster) -> None:
    answer = cluster.admin_call("POST", "/v1/users", {"name": "carol", "roles": ["access"]})
    url = answer["invite_url"]
    assert url.startswith(f"https://{cluster.proxy_addr}/web/invite/")
    new_password = "a brand new passphrase"
    result = wsh(
        "signup", url, "--password-stdin", f"--ca-pin={cluster.pin}", input=new_password + "\n"
    )
    out = ok(result)
    assert f"wsh login --proxy={cluster.proxy_addr} --user=carol" in out
    # The invite is used up.
    assert "wsh: " in failed(wsh("signup", url, "--password-stdin", input=new_password + "\n"))
    login = wsh(
        "login",
        f"--proxy={cluster.proxy_addr}",
        "--user=carol",
        "--password-stdin",
        input=new_password + "\n",
    )  # pin remembered by signup
    assert "Logged in as: carol" in ok(login)
    failed(wsh("signup", "https://x:3080/not/an/invite"), code=2)


def test_first_login_asks_to_trust_the_cluster_on_a_terminal(
    cluster: Cluster, tmp_path: Path
) -> None:
    env = {"WSH_HOME": str(tmp_path / "tty-home"), "PATH": str(WSH.parent)}
    child = pexpect.spawn(
        str(WSH),
        ["login", f"--proxy={cluster.proxy_addr}", "--user=alice"],
        env=env,
        timeout=30,
        encoding="utf-8",
    )
    try:
        child.expect_exact(f'Trust cluster "example.com" (CA pin {cluster.pin})? [y/N]')
        child.sendline("y")
        child.expect_exact("Enter password for Wicket user alice")
        child.sendline(PASSWORD)
        child.expect_exact("Logged in as: alice")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0

    refused = pexpect.spawn(
        str(WSH),
        ["login", f"--proxy={cluster.proxy_addr}", "--user=alice"],
        env={"WSH_HOME": str(tmp_path / "other-home")},
        timeout=30,
        encoding="utf-8",
    )
    try:
        refused.expect_exact("[y/N]")
        refused.sendline("n")
        refused.expect_exact("wsh: cluster not trusted")
        refused.expect(pexpect.EOF)
    finally:
        refused.close()
    assert refused.exitstatus == 1


def test_signup_and_login_with_otp(tmp_path: Path) -> None:
    import pyotp

    from wicket.auth.users import SecondFactor

    otp_cluster = start_cluster(tmp_path / "data", with_proxy=True, second_factor=SecondFactor.OTP)
    try:
        answer = otp_cluster.admin_call("POST", "/v1/users", {"name": "olga", "roles": ["access"]})
        url = answer["invite_url"]
        token = url.rsplit("/", 1)[-1]
        info = otp_cluster.admin_call("GET", f"/v1/invites/{token}")
        totp = pyotp.parse_uri(info["otp_uri"])
        assert isinstance(totp, pyotp.TOTP)
        wsh = Wsh(tmp_path / "home")
        signup = wsh(
            "signup",
            url,
            "--password-stdin",
            f"--ca-pin={otp_cluster.pin}",
            f"--otp={totp.now()}",
            input=PASSWORD + "\n",
        )
        assert 'User "olga" is ready.' in ok(signup)
        # Without --otp, login asks for the code after the password.
        refused = wsh(
            "login",
            f"--proxy={otp_cluster.proxy_addr}",
            "--user=olga",
            "--password-stdin",
            input=PASSWORD + "\n000000\n",
        )
        assert "Enter your OTP token" in refused.stderr
        assert failed(refused).splitlines()[-1].startswith("wsh: ")
        next_code = totp.at(datetime.now(UTC) + timedelta(seconds=30))
        accepted = wsh(
            "login",
            f"--proxy={otp_cluster.proxy_addr}",
            "--user=olga",
            "--password-stdin",
            f"--otp={next_code}",
            input=PASSWORD + "\n",
        )
        assert "Logged in as: olga" in ok(accepted)
    finally:
        stop_cluster(otp_cluster)
