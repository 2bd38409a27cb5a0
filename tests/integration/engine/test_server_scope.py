"""Server-wide commands, later handshakes and command cursors through the whole path.

A user allowed only on `test` is refused every server-wide command (whatever `$db` it
is sent to) with a reason that names the grant; a role with
`options.allow_server_commands` may run them. A later `hello` never reaches the
database (no `saslSupportedMechs` in the answer). listCollections and `aggregate: 1`
cursors drain with getMore. `listDatabases` shows only the allowed databases.
Clients: pymongo straight at the proxy with a database certificate, a raw OP_QUERY,
mongosh, and pymongo through `wsh proxy db --tunnel`.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from localdocdb.localaws import LocalAws
from localdocdb.process import LocalDocDBProcess
from tests.integration.cluster.test_database_routes import User
from tests.integration.engine.test_docdb_iam_session import Setup, client_through_proxy
from tests.integration.engine.test_wsh_db_commands import DB_FLAGS, Tunnel
from tests.integration.engine.test_wsh_db_commands import Setup as WshSetup
from tests.support.clients import Mongosh
from tests.support.stage import start_iam_stage
from wicket.pki.keys import private_key_pem, write_private_file
from wicket.tlsconfig import client_context
from wicket.wire.mongo import MessageFramer, OpReply, decode_message, encode_op_query

SERVER_OPS_ROLE = {
    "kind": "role",
    "version": "v1",
    "metadata": {"name": "server-ops"},
    "spec": {"options": {"allow_server_commands": True}, "allow": {"db_labels": {"*": "*"}}},
}
TINKERER_ROLE = {
    "kind": "role",
    "version": "v1",
    "metadata": {"name": "tinkerer"},
    "spec": {"options": {"allow_unknown_commands": True}, "allow": {"db_labels": {"*": "*"}}},
}
ONLY_TEST = {"db_users": ["*"], "db_names": ["test"]}
DB_USER = "wicket-docdb-user"

# (what to run, on which database): each is server-wide
SERVER_COMMANDS: list[tuple[dict[str, Any], str]] = [
    ({"currentOp": 1, "$ownOps": True}, "test"),
    ({"serverStatus": 1}, "test"),
    ({"currentOp": 1}, "admin"),
    ({"killOp": 1, "op": 424242}, "admin"),
    ({"getLog": "global"}, "admin"),
    ({"getCmdLineOpts": 1}, "admin"),
    ({"aggregate": 1, "pipeline": [{"$currentOp": {"allUsers": True}}], "cursor": {}}, "admin"),
]


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory, local_aws: LocalAws) -> Iterator[Setup]:
    directory = tmp_path_factory.mktemp("server-scope")
    docdb = LocalDocDBProcess.start(
        tls_dir=directory / "tls",
        args=("--mode", "docdb", "--sts-endpoint", local_aws.endpoint),
        log_path=directory / "localdocdb.log",
    )
    try:
        cluster, agent = start_iam_stage(directory, docdb, local_aws)
        try:
            cluster.admin_call("PUT", "/v1/roles/server-ops", SERVER_OPS_ROLE)
            cluster.admin_call("PUT", "/v1/roles/tinkerer", TINKERER_ROLE)
            yield Setup(cluster, agent, docdb, local_aws, directory)
        finally:
            agent.stop()
            cluster.stop()
    finally:
        docdb.stop()


@pytest.fixture(scope="module")
def narrow(stage: Setup) -> User:
    return User(stage.cluster, "nina", ["access"], ONLY_TEST)


@pytest.fixture(scope="module")
def operator(stage: Setup) -> User:
    return User(stage.cluster, "otto", ["access", "server-ops"], ONLY_TEST)


def connect(stage: Setup, user: User) -> MongoClient[dict[str, Any]]:
    return client_through_proxy(stage, user, user.database_cert("my-docdb", DB_USER, "test"))


def run(client: MongoClient[dict[str, Any]], command: dict[str, Any], database: str) -> Any:
    return client[database].command(dict(command))


def test_server_wide_commands_are_refused_without_the_grant(stage: Setup, narrow: User) -> None:
    with connect(stage, narrow) as client:
        client.test.probe.insert_one({"ok": True})
        for command, database in SERVER_COMMANDS:
            with pytest.raises(OperationFailure) as refused:
                run(client, command, database)
            assert refused.value.code == 13, command
            text = str(refused.value)
            assert "server-wide" in text, text
            assert "options.allow_server_commands: true" in text, text
        # the session goes on
        assert client.test.probe.count_documents({}) == 1


def test_a_role_with_allow_server_commands_may_run_them(stage: Setup, operator: User) -> None:
    with connect(stage, operator) as client:
        for command, database in SERVER_COMMANDS:
            if "aggregate" in command:
                # localdocdb has no $currentOp stage: what matters is that Wicket let it pass
                with pytest.raises(OperationFailure) as failure:
                    run(client, command, database)
                assert failure.value.code != 13 and "$currentOp" in str(failure.value)
                continue
            assert run(client, command, database)["ok"] == 1.0, command
        # the grant is no db_names: other databases stay refused
        with pytest.raises(OperationFailure) as refused:
            client.secret.things.find_one()
        assert refused.value.code == 13


def test_later_handshakes_never_reach_the_database(stage: Setup, narrow: User) -> None:
    master: MongoClient[dict[str, Any]]
    with MongoClient(stage.docdb.uri(), serverSelectionTimeoutMS=5000) as master:
        direct = master.admin.command("hello", saslSupportedMechs="admin.master")
        assert "saslSupportedMechs" in direct  # what the database would have told
    with connect(stage, narrow) as client:
        for name in ("hello", "isMaster", "ismaster"):
            answer = client.admin.command(name, saslSupportedMechs="admin.master")
            assert answer["ok"] == 1.0
            assert "saslSupportedMechs" not in answer, answer
            assert "topologyVersion" not in answer and "hosts" not in answer
        with pytest.raises(OperationFailure) as refused:
            client.admin.command(
                "hello",
                speculativeAuthenticate={"saslStart": 1, "mechanism": "SCRAM-SHA-256"},
            )
        assert refused.value.code == 13
        assert client.test.command("ping")["ok"] == 1.0


def _document(*elements: tuple[str, Any]) -> bytes:
    """A BSON document with the given elements in order, repeats allowed."""
    payload = b"".join(bson.encode({key: value})[4:-1] for key, value in elements)
    return struct.pack("<i", len(payload) + 5) + payload + b"\x00"


def test_later_legacy_is_master_over_op_query(stage: Setup) -> None:
    # allow_unknown_commands: even a handshake the inspector cannot read is answered here
    tinkerer = User(stage.cluster, "tina", ["access", "tinkerer"], ONLY_TEST)
    cert = tinkerer.database_cert("my-docdb", DB_USER, "test")
    context = client_context(
        ca_pems=[tinkerer.host_ca], cert_chain_pem=cert, key_pem=private_key_pem(tinkerer.key)
    )
    host, port = stage.cluster.proxy_addr.split(":")

    def ask(tls: Any, command: dict[str, Any] | bytes, request_id: int) -> dict[str, Any]:
        tls.sendall(encode_op_query("admin.$cmd", command, request_id=request_id))
        framer = MessageFramer()
        while (frame := framer.next_frame()) is None:
            framer.receive_data(tls.recv(65536))
        reply = decode_message(frame.data)
        assert isinstance(reply, OpReply) and reply.header.response_to == request_id
        return dict(bson.decode(reply.documents[0]))

    with (
        socket.create_connection((host, int(port)), timeout=15) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        assert ask(tls, {"isMaster": 1}, 1)["ismaster"] is True
        later = ask(tls, {"isMaster": 1, "saslSupportedMechs": "admin.master"}, 2)
        assert later["ok"] == 1.0 and "saslSupportedMechs" not in later
        wrapped = ask(tls, {"$query": {"ismaster": 1, "saslSupportedMechs": "admin.master"}}, 3)
        assert wrapped["ok"] == 1.0 and "saslSupportedMechs" not in wrapped
        mechs = ("saslSupportedMechs", "admin.master")
        repeated = _document(("isMaster", 1), mechs, mechs)
        unreadable = ask(tls, repeated, 4)
        assert unreadable["ok"] == 1.0 and "saslSupportedMechs" not in unreadable


def test_command_cursors_drain_with_get_more(stage: Setup, narrow: User) -> None:
    with connect(stage, narrow) as client:
        names = [f"cursor_{i}" for i in range(5)]
        for name in names:
            client.test[name].insert_one({"name": name})
        listed = client.test.list_collections(cursor={"batchSize": 1})
        assert set(names) <= {c["name"] for c in listed}
        documents = [{"i": i} for i in range(7)]
        aggregated = client.test.aggregate([{"$documents": documents}], batchSize=2)
        assert [d["i"] for d in aggregated] == list(range(7))
        client.test[names[0]].create_index("name")
        first = client.test.command("listIndexes", names[0], cursor={"batchSize": 1})["cursor"]
        more = client.test.command("getMore", first["id"], collection=first["ns"].split(".", 1)[1])[
            "cursor"
        ]
        assert len(first["firstBatch"]) + len(more["nextBatch"]) == 2
        for name in names:
            client.test.drop_collection(name)


def test_list_databases_shows_only_the_allowed_ones(
    stage: Setup, narrow: User, operator: User
) -> None:
    master: MongoClient[dict[str, Any]]
    with MongoClient(stage.docdb.uri(), serverSelectionTimeoutMS=5000) as master:
        master.secret.things.insert_one({"x": 1})
        master.test.things.insert_one({"x": 1})
    with connect(stage, narrow) as client:
        assert client.list_database_names() == ["test"]
        full = client.admin.command("listDatabases")
        assert [d["name"] for d in full["databases"]] == ["test"]
        assert full["totalSize"] == full["databases"][0]["sizeOnDisk"]
    with connect(stage, operator) as client:
        assert {"secret", "test"} <= set(client.list_database_names())


def test_mongosh_starts_and_is_told_why(stage: Setup, narrow: User, mongosh: Mongosh) -> None:
    cert = narrow.database_cert("my-docdb", DB_USER, "test")
    pem = stage.directory / "nina.pem"
    write_private_file(pem, cert + private_key_pem(narrow.key))
    ca = stage.directory / "cluster-ca.pem"
    ca.write_bytes(narrow.host_ca)
    script = (
        "let refused = null;"
        "try { db.adminCommand({getCmdLineOpts: 1}) } catch (e) { refused = e.message }"
        "print(JSON.stringify({dbs: db.getMongo().getDBNames(), refused: refused,"
        " n: db.things.countDocuments({})}))"
    )
    result = mongosh.run(
        f"mongodb://{stage.cluster.proxy_addr}/test?directConnection=true",
        "--tls",
        "--tlsCertificateKeyFile",
        str(pem),
        "--tlsCAFile",
        str(ca),
        "--quiet",
        "--eval",
        script,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert shown["dbs"] == ["test"]
    assert "server-wide" in shown["refused"]


def test_through_wsh_tunnel(stage: Setup, tmp_path: Path) -> None:
    User(stage.cluster, "alice", ["access"], ONLY_TEST)  # `WshSetup.login` logs in as alice
    home = tmp_path / "wsh-home"
    env = {**os.environ, "WSH_HOME": str(home), "HOME": str(tmp_path)}
    env.pop("WSH_DB_PASSWORD", None)
    wsh = WshSetup(stage.cluster, stage.agent, stage.iam, env, home)
    wsh.login()
    tunnel = Tunnel(wsh, *DB_FLAGS, "my-docdb")
    try:
        with tunnel.client() as client:
            with pytest.raises(OperationFailure) as refused:
                client.admin.command("currentOp")
            assert "allow_server_commands" in str(refused.value)
            answer = client.admin.command("hello", saslSupportedMechs="admin.master")
            assert "saslSupportedMechs" not in answer
            assert client.list_database_names() == ["test"]
            aggregated = client.test.aggregate([{"$documents": [{"i": 1}, {"i": 2}]}], batchSize=1)
            assert [d["i"] for d in aggregated] == [1, 2]
    finally:
        tunnel.stop()
