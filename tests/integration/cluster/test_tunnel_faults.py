"""The tunnel under faults, with real processes: a frozen agent stops getting sessions
within seconds; an agent is back on a restarted proxy within seconds, and says what
happened meanwhile."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest

from tests.support.cluster import (
    Cluster,
    WicketProcess,
    new_cluster,
    start_wicket,
    write_agent_config,
)

DOWN_SECONDS = 6.0  # long enough for the old doubling backoff to reach 8 s between tries
BACK_DEADLINE = 4.0  # the agent's cap is 2 s, plus a connection and a loaded machine
DROP_DEADLINE = 8.0  # 4 missed 1 s keep-alives, plus a loaded machine (was 60 s)


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, WicketProcess]]:
    directory = tmp_path_factory.mktemp("tunnel-faults")
    cluster = new_cluster(directory / "node")
    cluster.start()
    agent = None
    try:
        token = cluster.admin_call("POST", "/v1/tokens", {"type": "db"})["token"]
        (directory / "token").write_text(token)
        config = write_agent_config(directory / "agent", cluster, directory / "token")
        agent = start_wicket(config, directory / "agent.log")
        agent.wait_for_log("connected")
        yield cluster, agent
    finally:
        if agent is not None:
            os.kill(agent.process.pid, signal.SIGCONT)
            agent.stop()
        cluster.stop()


def wait_for(check: Callable[[], bool], deadline: float, what: str) -> None:
    end = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < end, what
        time.sleep(0.05)


def test_frozen_agent_is_dropped_within_seconds(stage: tuple[Cluster, WicketProcess]) -> None:
    cluster, agent = stage
    proxy = cluster.processes[-1]
    time.sleep(2.5)  # the proxy has learnt the agent's keep-alive pace
    os.kill(agent.process.pid, signal.SIGSTOP)
    try:
        wait_for(
            lambda: "sent no keep-alive" in proxy.log_text(),
            DROP_DEADLINE,
            f"the proxy still routes to the frozen agent:\n{proxy.log_text()}",
        )
    finally:
        os.kill(agent.process.pid, signal.SIGCONT)
    wait_for(
        lambda: "connected (again" in agent.log_text(),
        BACK_DEADLINE + 5.0,
        f"the agent did not reconnect after it woke up:\n{agent.log_text()}",
    )


def test_agent_reconnects_to_a_restarted_proxy(stage: tuple[Cluster, WicketProcess]) -> None:
    cluster, agent = stage
    reconnections = agent.log_text().count("connected (again")
    cluster.processes[-1].stop()
    wait_for(lambda: "lost" in agent.log_text(), 10.0, agent.log_text())
    time.sleep(DOWN_SECONDS)
    cluster.start()  # returns once the node logged "wicket started"
    wait_for(
        lambda: agent.log_text().count("connected (again") > reconnections,
        BACK_DEADLINE,
        f"the agent is not back:\n{agent.log_text()}",
    )
    databases = cluster.admin_call("GET", "/v1/databases")
    assert [d["metadata"]["name"] for d in databases] == ["my-docdb"]
    log = agent.log_text()
    assert "cannot reach the proxy at" in log
    assert "log in again" not in log  # a restarted server is not a refused certificate
