"""Who may record what, with a real cluster and a real agent: the agent's own session events
are stored; its host certificate cannot record a login in another user's name, nor events of
a database it does not serve or of a session it never started; the admin still may."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localdocdb.localaws import LocalAws
from localdocdb.process import LocalDocDBProcess
from tests.integration.cluster.test_database_routes import User
from tests.integration.engine.test_docdb_iam_session import Setup, client_through_proxy
from tests.support.cluster import run_coroutine
from tests.support.stage import start_iam_stage
from wicket.api.client import AuthClient
from wicket.audit.events import SessionAudit, user_login
from wicket.errors import BadParameter
from wicket.tlsconfig import client_context

WAIT = 30.0


@pytest.fixture
def setup(tmp_path: Path, docdb: LocalDocDBProcess, local_aws: LocalAws) -> Iterator[Setup]:
    cluster, agent = start_iam_stage(tmp_path, docdb, local_aws)
    try:
        yield Setup(cluster, agent, docdb, local_aws, tmp_path)
    finally:
        agent.stop()
        cluster.stop()


def as_agent(setup: Setup, work: Callable[[AuthClient], Any]) -> Any:
    """Call the auth service with the agent's own identity files (what a thief would hold)."""
    host_dir = setup.directory / "agent" / "data" / "host"
    info = json.loads((host_dir / "cluster.json").read_text())
    admin = json.loads((setup.cluster.data_dir / "admin" / "cluster.json").read_text())
    context = client_context(
        ca_pems=[info["cas"]["host"].encode()],
        cert_chain_pem=(host_dir / "cert.pem").read_bytes(),
        key_pem=(host_dir / "key.pem").read_bytes(),
    )

    async def call() -> Any:
        async with AuthClient(admin["auth_addr"], context) as client:
            return await work(client)

    return run_coroutine(call)


def host_id(setup: Setup) -> str:
    host_dir = setup.directory / "agent" / "data" / "host"
    return str(json.loads((host_dir / "cluster.json").read_text())["host_id"])


def events(setup: Setup, query: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = setup.cluster.admin_call("GET", f"/v1/events?{query}")
    return found


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def post(events_to_post: list[dict[str, Any]]) -> Callable[[AuthClient], Any]:
    async def work(client: AuthClient) -> Any:
        return await client.post("/v1/events", {"events": events_to_post})

    return work


def test_a_host_records_only_its_own_sessions(setup: Setup) -> None:
    alice = User(setup.cluster, "alice", ["access"], {"db_users": ["*"], "db_names": ["test"]})
    cert = alice.database_cert("my-docdb", "wicket-docdb-user", "test")
    with client_through_proxy(setup, alice, cert) as client:
        client.test.orders.insert_one({"n": 1})
        assert client.test.orders.count_documents({}) == 1

    # the agent's normal session events are accepted, stamped with the agent
    agent_id = host_id(setup)
    wait_for(
        lambda: "db.session.end" in {e["type"] for e in events(setup, "user=alice")},
        "alice's session end",
    )
    stored = events(setup, "user=alice&type=db.session.*")
    assert {e["server_id"] for e in stored} == {agent_id}
    started = {e["session_id"] for e in stored if e["type"] == "db.session.start"}
    assert started == {e["session_id"] for e in stored}  # pymongo opens a few connections
    assert {"db.session.query", "db.session.end"} <= {e["type"] for e in stored}

    # the agent's certificate may not record a login in bob's name ...
    login = user_login(cluster="example.com", user="bob", success=True).to_json()
    with pytest.raises(BadParameter, match=r"may not record user\.login events"):
        as_agent(setup, post([login]))
    # ... nor a session of a database it does not serve ...
    elsewhere = SessionAudit(
        cluster="example.com",
        user="alice",
        roles=("access",),
        session_id="f00d0000-0000-4000-8000-000000000001",
        db_service="prod-docdb",
        db_protocol="mongodb",
        db_user="root",
        db_name="admin",
        client_addr=None,
        server_id=None,
    )
    with pytest.raises(BadParameter, match="does not serve database 'prod-docdb'"):
        as_agent(setup, post([elsewhere.start(success=True).to_json()]))
    # ... nor queries of a session it never started (all or nothing: the good start too)
    forged = dataclasses.replace(elsewhere, db_service="my-docdb", user="carol")
    start_elsewhere = forged.start(success=True).to_json()
    orphan = dataclasses.replace(forged, session_id="another-session").query(
        command="find", database="test", namespaces=["test.secret"], body={"find": "secret"}
    )
    with pytest.raises(BadParameter, match="recorded no start of session 'another-session'"):
        as_agent(setup, post([start_elsewhere, orphan.to_json()]))
    assert events(setup, "user=bob") == []
    assert events(setup, "user=carol") == []
    assert events(setup, "db_service=prod-docdb") == []
    log = setup.cluster.processes[0].log_text().splitlines()
    refusal = [line for line in log if f"refused 1 of 2 audit events from host {agent_id}" in line]
    assert len(refusal) == 1 and "test.secret" not in refusal[0]  # ids and types, no bodies

    # the admin may still record anything
    setup.cluster.admin_call("POST", "/v1/events", {"events": [login]})
    assert [e["id"] for e in events(setup, "user=bob")] == [login["id"]]
