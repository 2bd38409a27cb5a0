"""Self-hosted MongoDB: the agent authenticates upstream with MONGODB-X509 using a short-lived
client certificate from the cluster's database CA (`wctl auth sign` sets up the server)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from tests.integration.cluster.test_database_routes import User
from tests.integration.engine.test_docdb_iam_session import Setup, client_through_proxy
from tests.support.clients import StartDocDB
from tests.support.cluster import new_cluster, start_wicket, wicket_bin
from tests.support.cluster import write_agent_config as agent_config


@pytest.fixture
def setup(tmp_path: Path, start_localdocdb: StartDocDB) -> Iterator[Setup]:
    cluster = new_cluster(tmp_path / "node")
    cluster.start()
    # the guide for self-hosted MongoDB: trust the cluster's database CA for client certs
    signed = subprocess.run(
        [
            wicket_bin("wctl"),
            "-c",
            str(cluster.config),
            "auth",
            "sign",
            "--format=mongodb",
            "--host=localhost",
            f"--out={tmp_path / 'mongo'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert signed.returncode == 0, signed.stderr
    mongo = start_localdocdb("--mode", "mongodb", "--client-ca", str(tmp_path / "mongo.cas"))
    with MongoClient(mongo.uri(), serverSelectionTimeoutMS=5000) as master:
        master["$external"].command(
            "createUser", "CN=app-reader", roles=[{"role": "read", "db": "test"}]
        )
        master["$external"].command(
            "createUser", "CN=app-writer", roles=[{"role": "readWrite", "db": "test"}]
        )
        master.test.items.insert_many([{"n": i} for i in range(10)])
    token = cluster.admin_call("POST", "/v1/tokens", {"type": "db"})["token"]
    (tmp_path / "token").write_text(token)
    config = agent_config(
        tmp_path / "agent",
        cluster,
        tmp_path / "token",
        name="self-hosted",
        uri=f"localhost:{mongo.port}",
        extra=("--tls-ca-file", str(mongo.ca_file)),
    )
    agent = start_wicket(config, tmp_path / "agent.log")
    agent.wait_for_log("tunnel to")
    try:
        yield Setup(cluster, agent, mongo, None, tmp_path)
    finally:
        agent.stop()
        cluster.stop()


def test_x509_upstream_as_the_db_user(setup: Setup) -> None:
    erin = User(setup.cluster, "erin", ["access"], {"db_users": ["CN=*"], "db_names": ["test"]})
    reader = erin.database_cert("self-hosted", "CN=app-reader", "test")
    with client_through_proxy(setup, erin, reader) as client:
        status = client.admin.command("connectionStatus")
        assert status["authInfo"]["authenticatedUsers"] == [
            {"user": "CN=app-reader", "db": "$external"}
        ]
        assert client.test.items.count_documents({}) == 10
        with pytest.raises(OperationFailure) as denied:  # MongoDB's own privileges still apply
            client.test.items.insert_one({"n": 99})
        assert denied.value.code == 13
    writer = erin.database_cert("self-hosted", "CN=app-writer", "test")
    with client_through_proxy(setup, erin, writer) as client:
        client.test.items.insert_one({"n": 99})
        assert client.test.items.count_documents({}) == 11
