"""A failure on either side ends the session at once and tells the client.

The database is killed (SIGKILL) under a session: with a request in flight (the
database is frozen first, so the request is surely forwarded and unanswered), and
between requests. The client must get an error within seconds, not hang until its own
socket timeout, and the session's end event must say why.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from localdocdb.localaws import free_port
from localdocdb.process import LocalDocDBProcess
from tests.integration.cluster.test_database_routes import User
from tests.integration.engine.test_docdb_iam_session import (
    Setup,
    client_through_proxy,
    wait_for_events,
)
from tests.support.cluster import new_cluster, start_wicket, wicket_bin
from tests.support.cluster import write_agent_config as agent_config

SOCKET_TIMEOUT_MS = 30_000  # what the client would hang for on the old code
ERROR_DEADLINE = 3.0  # the client must have its error well before that


class Database:
    """A localdocdb in MongoDB mode that can be killed and started again on its port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: LocalDocDBProcess | None = None

    def start(self) -> LocalDocDBProcess:
        self.process = LocalDocDBProcess.start(
            tls_dir=self.directory / "tls",
            port=self.port,
            args=("--mode", "mongodb", "--client-ca", str(self.directory / "mongo.cas")),
            log_path=self.directory / "localdocdb.log",
        )
        with MongoClient(self.process.uri(), serverSelectionTimeoutMS=5000) as master:
            master["$external"].command(
                "createUser", "CN=app", roles=[{"role": "readWrite", "db": "test"}]
            )
            master.test.items.insert_many([{"n": i} for i in range(10)])
        return self.process

    def running(self) -> LocalDocDBProcess:
        if self.process is None or self.process.process.poll() is not None:
            return self.start()
        return self.process


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Setup, Database]]:
    directory = tmp_path_factory.mktemp("failures")
    cluster = new_cluster(directory / "node")
    cluster.start()
    database = Database(directory)
    agent = None
    try:
        signed = subprocess.run(
            [
                wicket_bin("wctl"),
                "-c",
                str(cluster.config),
                "auth",
                "sign",
                "--format=mongodb",
                "--host=localhost",
                f"--out={directory / 'mongo'}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert signed.returncode == 0, signed.stderr
        mongo = database.start()
        token = cluster.admin_call("POST", "/v1/tokens", {"type": "db"})["token"]
        (directory / "token").write_text(token)
        config = agent_config(
            directory / "agent",
            cluster,
            directory / "token",
            name="self-hosted",
            uri=f"localhost:{database.port}",
            extra=("--tls-ca-file", str(mongo.ca_file)),
        )
        agent = start_wicket(config, directory / "agent.log")
        agent.wait_for_log("tunnel to")
        yield Setup(cluster, agent, mongo, None, directory), database
    finally:
        if agent is not None:
            agent.stop()
        cluster.stop()
        if database.process is not None:
            database.process.stop()


def session_client(setup: Setup, user: User) -> MongoClient[dict[str, Any]]:
    cert = user.database_cert("self-hosted", "CN=app", "test")
    return client_through_proxy(
        setup, user, cert, socketTimeoutMS=SOCKET_TIMEOUT_MS, retryReads=False
    )


def in_thread(action: Any) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        try:
            outcome["result"] = action()
        except PyMongoError as error:
            outcome["error"] = error
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_database_killed_with_a_request_in_flight(stage: tuple[Setup, Database]) -> None:
    setup, database = stage
    mongo = database.running()
    frank = User(setup.cluster, "frank", ["access"], {"db_users": ["CN=*"], "db_names": ["*"]})
    with session_client(setup, frank) as client:
        assert client.test.items.count_documents({}) == 10
        os.kill(mongo.process.pid, signal.SIGSTOP)  # the request below stays unanswered
        thread, outcome = in_thread(lambda: client.test.items.find_one({"n": 3}))
        time.sleep(0.5)  # it reaches the database (the agent forwards at once)
        assert thread.is_alive(), outcome
        mongo.kill()  # SIGKILL: the kernel resets the connection the request sits on
        killed = time.monotonic()
        thread.join(ERROR_DEADLINE)
        assert not thread.is_alive(), "the client still waits for its reply"
        assert "error" in outcome, outcome
        assert "the connection to the database failed" in str(outcome["error"])
        assert time.monotonic() - killed < ERROR_DEADLINE
    ended = wait_for_events(
        setup, "frank", lambda events: any(e["type"] == "db.session.end" for e in events)
    )
    end = next(e for e in ended if e["type"] == "db.session.end")
    assert "database" in (end.get("error") or ""), end


def test_database_killed_between_requests(stage: tuple[Setup, Database]) -> None:
    setup, database = stage
    mongo = database.running()
    grace = User(setup.cluster, "grace", ["access"], {"db_users": ["CN=*"], "db_names": ["*"]})
    with session_client(setup, grace) as client:
        assert client.test.items.count_documents({}) == 10
        mongo.kill()
        thread, outcome = in_thread(lambda: client.test.items.find_one({"n": 3}))
        thread.join(ERROR_DEADLINE)
        assert not thread.is_alive(), "the client still waits for its reply"
        assert "error" in outcome, outcome
    ended = wait_for_events(
        setup, "grace", lambda events: any(e["type"] == "db.session.end" for e in events)
    )
    end = next(e for e in ended if e["type"] == "db.session.end")
    assert "the database closed the connection" in (end.get("error") or ""), end
