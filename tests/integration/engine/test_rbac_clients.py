"""RBAC through the whole path, per client.

Clients: pymongo (OP_MSG), pymongo with compression (OP_COMPRESSED), a raw OP_QUERY
command, and mongosh. A refused message leaves the session usable.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import bson
import pytest
from pymongo import CursorType
from pymongo.errors import OperationFailure

from tests.integration.cluster.test_database_routes import User
from tests.integration.engine.test_docdb_iam_session import Setup, client_through_proxy, setup
from tests.support.clients import Mongosh
from wicket.pki.keys import private_key_pem, write_private_file
from wicket.tlsconfig import client_context
from wicket.wire.mongo import MessageFramer, OpReply, decode_message, encode_op_query

__all__ = ["setup"]  # the fixture, shared with the IAM session tests

TRAITS = [
    # (traits, allowed db, refused db)
    ({"db_users": ["*"], "db_names": ["test"]}, "test", "prod"),
    ({"db_users": ["wicket-docdb-user"], "db_names": ["rep*"]}, "reports", "test"),
]


@pytest.mark.parametrize("compressor", [None, "zlib", "zstd"])
@pytest.mark.parametrize(("traits", "allowed", "refused"), TRAITS)
def test_pymongo_table(
    setup: Setup, compressor: str | None, traits: dict[str, Any], allowed: str, refused: str
) -> None:
    name = f"u-{compressor or 'none'}-{allowed}"
    user = User(setup.cluster, name, ["access"], traits)
    cert = user.database_cert("my-docdb", "wicket-docdb-user", allowed)
    options = {"compressors": compressor} if compressor else {}
    with client_through_proxy(setup, user, cert, **options) as client:
        client[allowed].things.insert_many([{"i": i} for i in range(30)])
        with pytest.raises(OperationFailure) as denied:
            client[refused].things.find_one()
        assert denied.value.code == 13
        # still usable after the refusal, including an exhaust cursor (moreToCome replies)
        found = client[allowed].things.find({}, batch_size=7, cursor_type=CursorType.EXHAUST)
        assert sorted(d["i"] for d in found) == list(range(30))
        client[allowed].things.drop()


def test_raw_op_query_command_is_checked(setup: Setup) -> None:
    user = User(setup.cluster, "quentin", ["access"], {"db_users": ["*"], "db_names": ["test"]})
    cert = user.database_cert("my-docdb", "wicket-docdb-user", "test")
    context = client_context(
        ca_pems=[user.host_ca], cert_chain_pem=cert, key_pem=private_key_pem(user.key)
    )
    host, port = setup.cluster.proxy_addr.split(":")

    def ask(tls: Any, namespace: str, command: dict[str, Any], request_id: int) -> dict[str, Any]:
        tls.sendall(encode_op_query(namespace, command, request_id=request_id))
        framer = MessageFramer()
        while (frame := framer.next_frame()) is None:
            framer.receive_data(tls.recv(65536))
        reply = decode_message(frame.data)
        assert isinstance(reply, OpReply)
        return dict(bson.decode(reply.documents[0]))

    with (
        socket.create_connection((host, int(port)), timeout=15) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        assert ask(tls, "admin.$cmd", {"isMaster": 1}, 1)["ok"] == 1.0
        refused = ask(tls, "prod.$cmd", {"count": "things"}, 2)
        assert refused["ok"] == 0.0 and refused["code"] == 13
        assert ask(tls, "test.$cmd", {"count": "things"}, 3)["ok"] == 1.0


def test_mongosh_table(setup: Setup, mongosh: Mongosh) -> None:
    user = User(setup.cluster, "mona", ["access"], {"db_users": ["*"], "db_names": ["test"]})
    cert = user.database_cert("my-docdb", "wicket-docdb-user", "test")
    pem = setup.directory / "mona.pem"
    write_private_file(pem, cert + private_key_pem(user.key))
    ca = setup.directory / "cluster-ca.pem"
    ca.write_bytes(user.host_ca)
    script = (
        "db.things.insertOne({a: 1});"
        "let refused = null;"
        "try { db.getSiblingDB('prod').things.findOne() } catch (e) { refused = e.code }"
        "print(JSON.stringify({refused: refused, count: db.things.countDocuments({})}))"
    )
    result = mongosh.run(
        f"mongodb://{setup.cluster.proxy_addr}/test?directConnection=true",
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
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"refused": 13, "count": 1}
