"""The guide end to end at the wire: a user reaches localdocdb through the proxy and agent,
which authenticates upstream with AWS IAM (MONGODB-AWS); every message is checked."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from localdocdb.localaws import LocalAws
from localdocdb.process import LocalDocDBProcess
from tests.integration.cluster.test_database_routes import User
from tests.support.cluster import Cluster, WicketProcess
from tests.support.stage import start_iam_stage
from wicket.pki.keys import private_key_pem, write_private_file


@dataclass
class Setup:
    cluster: Cluster
    agent: WicketProcess
    docdb: LocalDocDBProcess
    aws: LocalAws | None
    directory: Path

    @property
    def iam(self) -> LocalAws:
        assert self.aws is not None
        return self.aws


@pytest.fixture
def setup(tmp_path: Path, docdb: LocalDocDBProcess, local_aws: LocalAws) -> Iterator[Setup]:
    cluster, agent = start_iam_stage(tmp_path, docdb, local_aws)
    try:
        yield Setup(cluster, agent, docdb, local_aws, tmp_path)
    finally:
        agent.stop()
        cluster.stop()


def client_through_proxy(
    setup: Setup, user: User, cert_pem: bytes, **options: Any
) -> MongoClient[dict[str, Any]]:
    pem = setup.directory / f"{user.key.public_key().public_numbers().x}.pem"
    write_private_file(pem, cert_pem + private_key_pem(user.key))
    ca = setup.directory / "cluster-ca.pem"
    ca.write_bytes(user.host_ca)
    host, port = setup.cluster.proxy_addr.split(":")
    return MongoClient(
        host,
        int(port),
        tls=True,
        tlsCAFile=str(ca),
        tlsCertificateKeyFile=str(pem),
        directConnection=True,
        retryWrites=False,
        serverSelectionTimeoutMS=10_000,
        **options,
    )


def test_query_through_wicket_with_iam(setup: Setup) -> None:
    alice = User(setup.cluster, "alice", ["access"], {"db_users": ["*"], "db_names": ["test"]})
    cert = alice.database_cert("my-docdb", "wicket-docdb-user", "test")
    with client_through_proxy(setup, alice, cert) as client:
        status = client.admin.command("connectionStatus")
        assert status["authInfo"]["authenticatedUsers"] == [
            {"user": setup.iam.docdb_user_role_arn, "db": "$external"}
        ]
        orders = client.test.orders
        orders.insert_many([{"i": i} for i in range(300)])
        assert [d["i"] for d in orders.find({}, batch_size=50).sort("i", 1)] == list(range(300))
        total = list(orders.aggregate([{"$group": {"_id": None, "n": {"$sum": 1}}}]))
        assert total == [{"_id": None, "n": 300}]
        # db_names allows only "test": another database is refused, the session goes on
        with pytest.raises(OperationFailure) as denied:
            client.secret.stuff.find_one()
        assert denied.value.code == 13
        assert '"secret"' in str(denied.value)
        with pytest.raises(OperationFailure):
            orders.aggregate(
                [
                    {
                        "$lookup": {
                            "from": {"db": "secret", "coll": "x"},
                            "as": "y",
                            "localField": "i",
                            "foreignField": "i",
                        }
                    }
                ]
            ).next()
        assert orders.count_documents({}) == 300


def test_session_refused_by_roles(setup: Setup) -> None:
    bob = User(setup.cluster, "bob", ["access"], {"db_users": ["someone-else"], "db_names": ["*"]})
    # the auth service refuses a certificate for a db user bob may not use ...
    with pytest.raises(Exception, match="wicket-docdb-user"):
        bob.database_cert("my-docdb", "wicket-docdb-user", "test")
    # ... and the agent refuses a session whose db user is not allowed, in MongoDB's words
    cert = bob.database_cert("my-docdb", "someone-else", "test")
    with client_through_proxy(setup, bob, cert) as client, pytest.raises(Exception) as refused:
        client.admin.command("ping")
    assert "someone-else" in str(refused.value) or "MONGODB-AWS" in str(refused.value)
    log = json.dumps(setup.agent.log_text())
    assert "refused" in log


def events_of(setup: Setup, session_user: str) -> list[dict[str, Any]]:
    found = setup.cluster.admin_call("GET", f"/v1/events?user={session_user}&limit=1000")
    return [e for e in found if e["type"].startswith("db.session")]


def wait_for_events(setup: Setup, user: str, check: Any, timeout: float = 30.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            events = events_of(setup, user)
        except Exception:  # the auth service may still be starting
            events = []
        if check(events):
            return events
        time.sleep(0.2)
    raise AssertionError(f"events never matched: {[e['type'] for e in events]}")


def test_every_message_is_audited(setup: Setup) -> None:
    carol = User(setup.cluster, "carol", ["access"], {"db_users": ["*"], "db_names": ["test"]})
    cert = carol.database_cert("my-docdb", "wicket-docdb-user", "test")
    with client_through_proxy(setup, carol, cert) as client:
        client.test.things.insert_one({"password": "hunter2", "n": 1})
        client.test.things.find_one({"n": 1})
        with pytest.raises(OperationFailure):
            client.other.things.find_one()

    def sessions(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            grouped.setdefault(event["session_id"], []).append(event)
        return grouped

    def complete(events: list[dict[str, Any]]) -> bool:
        grouped = sessions(events).values()
        return bool(grouped) and all(s[-1]["type"] == "db.session.end" for s in grouped)

    all_events = wait_for_events(setup, "carol", complete)
    # pymongo opens a monitoring connection and an application one: one session each
    work = [
        s for s in sessions(all_events).values() if any(e.get("command") == "insert" for e in s)
    ]
    assert len(work) == 1
    events = work[0]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "db.session.start" and events[0]["success"] is True
    assert kinds[-1] == "db.session.end"
    queries = [e for e in events if e["type"] == "db.session.query"]
    commands = [e["command"] for e in queries]
    assert commands[0] in {"hello", "isMaster", "ismaster"}
    assert "insert" in commands and "find" in commands
    failed = [e for e in events if e["type"] == "db.session.query.failed"]
    assert [e["command"] for e in failed] == ["find"]
    assert failed[0]["namespaces"] == ["other.things"]
    for event in events:
        assert event["user"] == "carol"
        assert event["db_service"] == "my-docdb"
        assert event["db_user"] == "wicket-docdb-user"
    end = events[-1]
    assert end["messages_from_client"] == len(queries) + len(failed)
    assert "hunter2" not in json.dumps(all_events)  # credential-like fields are redacted


def test_no_event_lost_when_the_auth_service_dies(setup: Setup) -> None:
    dave = User(setup.cluster, "dave", ["access"], {"db_users": ["*"], "db_names": ["test"]})
    cert = dave.database_cert("my-docdb", "wicket-docdb-user", "test")
    with client_through_proxy(setup, dave, cert) as client:
        for i in range(20):
            client.test.audit.insert_one({"i": i})
        setup.cluster.processes[-1].kill()  # auth + proxy gone mid-session
        with pytest.raises(PyMongoError):
            client.test.audit.insert_one({"i": 99})
    setup.cluster.start()

    def complete(events: list[dict[str, Any]]) -> bool:
        return any(e["type"] == "db.session.end" for e in events)

    events = wait_for_events(setup, "dave", complete, timeout=60)
    inserts = [e for e in events if e["type"] == "db.session.query" and e["command"] == "insert"]
    assert len(inserts) == 20
    assert len({e["id"] for e in events}) == len(events)


def test_twenty_megabytes_in_one_message(setup: Setup) -> None:
    frank = User(setup.cluster, "frank", ["access"], {"db_users": ["*"], "db_names": ["test"]})
    cert = frank.database_cert("my-docdb", "wicket-docdb-user", "test")
    blob = "x" * (2 * 1024 * 1024)
    documents = [{"_id": i, "blob": blob} for i in range(10)]  # ~20 MiB in one OP_MSG
    with client_through_proxy(setup, frank, cert) as client:
        big = client.test.big
        big.drop()
        big.insert_many(documents)
        back = list(big.find({}).sort("_id", 1))
        assert [d["_id"] for d in back] == list(range(10))
        assert all(d["blob"] == blob for d in back)
        big.drop()
