"""An agent is back on a restarted proxy within seconds, and says what happened meanwhile."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.cluster import new_cluster, start_wicket, write_agent_config

DOWN_SECONDS = 6.0  # long enough for the old doubling backoff to reach 8 s between tries
BACK_DEADLINE = 4.0  # the agent's cap is 2 s, plus a connection and a loaded machine


def test_agent_reconnects_to_a_restarted_proxy(tmp_path: Path) -> None:
    cluster = new_cluster(tmp_path / "node")
    cluster.start()
    agent = None
    try:
        token = cluster.admin_call("POST", "/v1/tokens", {"type": "db"})["token"]
        (tmp_path / "token").write_text(token)
        config = write_agent_config(tmp_path / "agent", cluster, tmp_path / "token")
        agent = start_wicket(config, tmp_path / "agent.log")
        agent.wait_for_log("connected")
        cluster.processes[-1].stop()
        agent.wait_for_log("lost", timeout=10)
        time.sleep(DOWN_SECONDS)
        cluster.start()  # returns once the node logged "wicket started"
        back = time.monotonic()
        while "connected (again" not in agent.log_text():
            assert time.monotonic() - back < BACK_DEADLINE, agent.log_text()
            time.sleep(0.05)
        databases = cluster.admin_call("GET", "/v1/databases")
        assert [d["metadata"]["name"] for d in databases] == ["my-docdb"]
        log = agent.log_text()
        assert "cannot reach the proxy at" in log
        assert "log in again" not in log  # a restarted server is not a refused certificate
    finally:
        if agent is not None:
            agent.stop()
        cluster.stop()
