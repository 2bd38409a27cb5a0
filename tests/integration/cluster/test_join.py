"""Issue 3: a `wicket configure` node; agents joining with tokens (guide step 2)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import (
    Cluster,
    new_cluster,
    start_wicket,
    wicket_bin,
    write_agent_config,
)


def run_start(config: Path) -> subprocess.CompletedProcess[str]:
    """`wicket start` expected to fail fast."""
    return subprocess.run(
        [wicket_bin(), "start", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    node = new_cluster(tmp_path / "node")
    node.start()
    yield node
    node.stop()


def db_token(cluster: Cluster, path: Path, **body: object) -> Path:
    token = cluster.admin_call("POST", "/v1/tokens", {"type": "db", **body})["token"]
    path.write_text(token + "\n")
    return path


def test_find_with_curl_and_jq(cluster: Cluster) -> None:
    if shutil.which("jq") is None or shutil.which("curl") is None:
        pytest.fail("curl and jq are installed by scripts/dev.sh setup")
    command = f"curl -sk https://{cluster.proxy_addr}/v1/webapi/find | jq -r '.server_version'"
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.stdout.strip() == "0.1.0"


def test_agent_joins_with_token_file_and_heartbeats(cluster: Cluster, tmp_path: Path) -> None:
    token = db_token(cluster, tmp_path / "token")
    config = write_agent_config(tmp_path / "agent", cluster, token)
    agent = start_wicket(config, tmp_path / "agent.log")
    try:
        agent.wait_for_log("tunnel to")
        databases = cluster.admin_call("GET", "/v1/databases")
        assert [d["metadata"]["name"] for d in databases] == ["my-docdb"]
        assert databases[0]["metadata"]["labels"] == {"env": "dev"}
        host_dir = tmp_path / "agent" / "data" / "host"
        assert (host_dir / "key.pem").stat().st_mode & 0o777 == 0o600
    finally:
        agent.stop()
    # a restart reuses the saved identity: the single-use token is not needed again
    again = start_wicket(config, tmp_path / "agent2.log")
    again.stop()


def test_reused_single_use_token_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    token = db_token(cluster, tmp_path / "token")
    first = start_wicket(write_agent_config(tmp_path / "a1", cluster, token), tmp_path / "a1.log")
    first.stop()
    second_config = write_agent_config(tmp_path / "a2", cluster, token)
    result = run_start(second_config)
    assert result.returncode == 1
    assert "join token not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_expired_token_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    token = db_token(cluster, tmp_path / "token", ttl_seconds=1)
    time.sleep(2)
    config = write_agent_config(tmp_path / "a", cluster, token)
    result = run_start(config)
    assert result.returncode == 1
    assert "expired" in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_ca_pin_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    token = db_token(cluster, tmp_path / "token")
    wrong = "sha256:" + "0" * 64
    config = write_agent_config(tmp_path / "a", cluster, token, extra=("--ca-pin", wrong))
    result = run_start(config)
    assert result.returncode == 1
    assert wrong in result.stderr
    assert "Traceback" not in result.stderr
    # the token was not spent on a cluster we did not trust
    assert any(t["id"] for t in cluster.admin_call("GET", "/v1/tokens"))


def test_kill_9_and_restart_keeps_everything(cluster: Cluster, tmp_path: Path) -> None:
    cluster.admin_call(
        "POST",
        "/v1/users",
        {"name": "alice", "roles": ["access"], "traits": {"db_users": ["*"], "db_names": ["*"]}},
    )
    token = cluster.admin_call("POST", "/v1/tokens", {"type": "db", "ttl_seconds": 3600})
    dynamic = {
        "kind": "db",
        "version": "v3",
        "metadata": {"name": "reports", "labels": {"env": "prod"}},
        "spec": {"protocol": "mongodb", "uri": "reports.example.com:27017"},
    }
    cluster.admin_call("PUT", "/v1/databases/reports", dynamic)
    role = {
        "kind": "role",
        "version": "v1",
        "metadata": {"name": "docdb-dev"},
        "spec": {"allow": {"db_labels": {"env": "dev"}, "db_names": ["test"]}},
    }
    cluster.admin_call("PUT", "/v1/roles/docdb-dev", role)
    status_before = cluster.admin_call("GET", "/v1/status")
    cluster.processes[-1].kill()
    cluster.start()
    users = cluster.admin_call("GET", "/v1/users")
    assert [u["name"] for u in users] == ["alice"]
    assert [t["id"] for t in cluster.admin_call("GET", "/v1/tokens")] == [token["id"]]
    assert {r["metadata"]["name"] for r in cluster.admin_call("GET", "/v1/roles")} >= {
        "access",
        "editor",
        "auditor",
    }
    assert cluster.admin_call("GET", "/v1/status")["ca_pins"] == status_before["ca_pins"]
    assert [d["metadata"]["name"] for d in cluster.admin_call("GET", "/v1/db_resources")] == [
        "reports"
    ]


def test_agent_serves_matching_dynamic_databases(cluster: Cluster, tmp_path: Path) -> None:
    for name, env in (("reports", "dev"), ("billing", "prod")):
        cluster.admin_call(
            "PUT",
            f"/v1/databases/{name}",
            {
                "kind": "db",
                "version": "v3",
                "metadata": {"name": name, "labels": {"env": env}},
                "spec": {"protocol": "mongodb", "uri": f"{name}.example.com:27017"},
            },
        )
    token = db_token(cluster, tmp_path / "token")
    config = write_agent_config(
        tmp_path / "agent", cluster, token, extra=("--dynamic-resources-labels", "env=dev")
    )
    agent = start_wicket(config, tmp_path / "agent.log")
    try:
        agent.wait_for_log("serving dynamic databases")
        served = {
            s["database"]["metadata"]["name"] for s in cluster.admin_call("GET", "/v1/db_servers")
        }
        assert served == {"my-docdb", "reports"}  # billing's labels do not match
    finally:
        agent.stop()
