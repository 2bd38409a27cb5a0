"""Issue 3, guide steps 1, 2 and 6 with the real CLIs and real `wicket start` processes.

`wctl` runs on the auth host (`-c wicket.yaml`), `wsh` as a user would, each as a
subprocess of the installed console scripts.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster, new_cluster, start_wicket, wicket_bin, write_agent_config

PASSWORD = "a long enough passphrase"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    node = new_cluster(tmp_path / "node")
    node.start()
    yield node
    node.stop()


def cli(
    name: str, *args: str, home: Path, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "WSH_HOME": str(home),
        "WICKET_CONFIG_FILE": "",  # no config on this "workstation"
    }
    env.pop("WICKET_IDENTITY", None)
    result = subprocess.run(
        [wicket_bin(name), *args],
        input=stdin if stdin is not None else "",
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


def test_guide_steps_with_wctl_and_wsh(cluster: Cluster, tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = str(cluster.config)

    status = cli("wctl", "-c", config, "status", home=home).stdout.splitlines()
    assert status[0] == "Cluster  example.com"
    assert status[1] == "Version  0.1.0"
    pin = status[2].removeprefix("CA pin   ")
    assert pin.startswith("sha256:") and len(pin) == 71

    # Step 1: the user, and their invite.
    added = cli(
        "wctl",
        "-c",
        config,
        "users",
        "add",
        "alice",
        "--roles=access",
        "--db-users=*",
        "--db-names=*",
        home=home,
    ).stdout.splitlines()
    assert added[0].startswith('User "alice" has been created but requires a password.')
    url = added[1]
    assert url.startswith(f"https://{cluster.proxy_addr}/web/invite/")
    assert added[3] == (
        f"NOTE: Make sure {cluster.proxy_addr} points at a Wicket proxy which users can access."
    )
    signup = cli(
        "wsh",
        "signup",
        url,
        "--password-stdin",
        f"--ca-pin={pin}",
        home=home,
        stdin=PASSWORD + "\n",
    )
    assert "wsh login" in signup.stdout

    # Step 2: a join token saved to a file, an agent configured and started with it.
    token_file = tmp_path / "token"
    token = cli("wctl", "-c", config, "tokens", "add", "--type=db", "--format=text", home=home)
    token_file.write_text(token.stdout)
    assert len(token.stdout.strip().split()) == 1
    agent = start_wicket(
        write_agent_config(tmp_path / "agent", cluster, token_file), tmp_path / "agent.log"
    )
    try:
        agent.wait_for_log("tunnel to")
        listed = cli("wctl", "-c", config, "db", "ls", home=home).stdout.splitlines()
        assert listed[2].split()[:4] == ["my-docdb", "mongodb", "localhost:27017", "env=dev"]

        # Step 6: log in and list databases.
        login = cli(
            "wsh",
            "login",
            f"--proxy={cluster.proxy_addr}",
            "--user=alice",
            "--password-stdin",
            home=home,
            stdin=PASSWORD + "\n",
        )
        lines = login.stdout.splitlines()
        assert lines[0] == f"> Profile URL:  https://{cluster.proxy_addr}"
        assert lines[1] == "  Logged in as: alice"
        assert lines[2] == "  Cluster:      example.com"
        assert lines[3] == "  Roles:        access"
        assert "[valid for 11h59m" in lines[-1] or "[valid for 12h0m0s]" in lines[-1]
        key = home / "keys" / cluster.proxy_addr / "alice" / "key.pem"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600

        db_ls = cli("wsh", "db", "ls", home=home).stdout.splitlines()
        assert db_ls[0].split() == ["Name", "Description", "Allowed", "Users", "Labels", "Connect"]
        assert db_ls[2].split() == ["my-docdb", "*", "env=dev"]
        assert "Logged in as: alice" in cli("wsh", "status", home=home).stdout

        # wctl elsewhere uses the wsh login: alice (role access) may not manage users.
        denied = cli("wctl", "users", "ls", home=home, check=False)
        assert denied.returncode == 1
        assert denied.stderr.startswith('wctl: user "alice" (roles: access) may not list users')

        cli("wsh", "logout", home=home)
        gone = cli("wsh", "status", home=home, check=False)
        assert (gone.returncode, gone.stderr) == (1, "wsh: not logged in\n")
    finally:
        agent.stop()


def test_wrong_password_and_pin_through_the_daemon(cluster: Cluster, tmp_path: Path) -> None:
    home = tmp_path / "home"
    cluster.admin_call("POST", "/v1/users", {"name": "bob", "roles": ["access"]})
    wrong_pin = cli(
        "wsh",
        "login",
        f"--proxy={cluster.proxy_addr}",
        "--user=bob",
        "--password-stdin",
        "--ca-pin=sha256:" + "1" * 64,
        home=home,
        stdin="x\n",
        check=False,
    )
    assert wrong_pin.returncode == 1
    assert "CA pin mismatch" in wrong_pin.stderr
    no_tty = cli(
        "wsh",
        "login",
        f"--proxy={cluster.proxy_addr}",
        "--user=bob",
        "--password-stdin",
        home=home,
        stdin="x\n",
        check=False,
    )
    assert no_tty.returncode == 1
    assert "--ca-pin=sha256:" in no_tty.stderr
    pin = cluster.admin_call("GET", "/v1/status")["ca_pin"]
    bad_password = cli(
        "wsh",
        "login",
        f"--proxy={cluster.proxy_addr}",
        "--user=bob",
        "--password-stdin",
        f"--ca-pin={pin}",
        home=home,
        stdin="not the password\n",
        check=False,
    )
    assert bad_password.returncode == 1
    assert bad_password.stderr.startswith("wsh: ")
    assert not (home / "keys").exists()
