"""The proxy's database side: user certificates with a route, and refusals a client can read."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
import pytest

from tests.support.cluster import Cluster, new_cluster, run_coroutine
from wicket.api.client import AUTH_ALPN, AuthClient
from wicket.errors import AccessDenied, NotFound
from wicket.pki.keys import generate_private_key, private_key_pem, public_key_pem
from wicket.tlsconfig import client_context
from wicket.wire.mongo import MessageFramer, OpMsg, decode_message, encode_op_msg

PASSWORD = "a long enough password"


class User:
    """A logged-in user: key, certificate, and the cluster's CA."""

    def __init__(self, cluster: Cluster, name: str, roles: list[str], traits: dict[str, Any]):
        created = cluster.admin_call(
            "POST", "/v1/users", {"name": name, "roles": roles, "traits": traits}
        )
        token = created["invite_url"].rsplit("/", 1)[1]
        cluster.admin_call("POST", f"/v1/invites/{token}", {"password": PASSWORD})
        self.cluster = cluster
        self.key = generate_private_key()
        info = json.loads((cluster.data_dir / "admin" / "cluster.json").read_text())
        self.host_ca = info["cas"]["host"].encode()
        answer = self.auth_call(
            None,
            "POST",
            "/v1/login",
            {
                "user": name,
                "password": PASSWORD,
                "public_key_pem": public_key_pem(self.key).decode(),
            },
        )
        self.cert_pem: bytes = answer["cert_pem"].encode()

    def auth_call(self, cert: bytes | None, method: str, path: str, body: Any = None) -> Any:
        context = client_context(
            ca_pems=[self.host_ca],
            cert_chain_pem=cert,
            key_pem=private_key_pem(self.key) if cert else None,
            alpn=[AUTH_ALPN],
        )

        async def call() -> Any:
            async with AuthClient(self.cluster.proxy_addr, context) as client:
                return await client.call(method, path, body)

        return run_coroutine(call)

    def database_cert(self, service: str, db_user: str, db_name: str) -> bytes:
        answer = self.auth_call(
            self.cert_pem,
            "POST",
            "/v1/certs/database",
            {
                "service": service,
                "db_user": db_user,
                "db_name": db_name,
                "public_key_pem": public_key_pem(self.key).decode(),
            },
        )
        return str(answer["cert_pem"]).encode()

    def first_reply(self, cert: bytes, alpn: list[str]) -> dict[str, Any]:
        """Connect to the proxy's database side, send hello, read the answer."""
        context = client_context(
            ca_pems=[self.host_ca],
            cert_chain_pem=cert,
            key_pem=private_key_pem(self.key),
            alpn=alpn,
        )
        host, port = self.cluster.proxy_addr.split(":")
        with (
            socket.create_connection((host, int(port)), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.sendall(encode_op_msg({"hello": 1, "$db": "admin"}, request_id=1))
            framer = MessageFramer()
            while (frame := framer.next_frame()) is None:
                chunk = tls.recv(65536)
                if not chunk:
                    raise ConnectionError("closed without an answer")
                framer.receive_data(chunk)
        message = decode_message(frame.data)
        assert isinstance(message, OpMsg)
        return bson.decode(message.body)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    node = new_cluster(tmp_path / "node")
    node.start()
    yield node
    node.stop()


GHOST = {
    "kind": "db",
    "version": "v3",
    "metadata": {"name": "ghost", "labels": {"env": "dev"}},
    "spec": {"protocol": "mongodb", "uri": "ghost.example.com:27017"},
}


def test_certificate_without_route_is_refused_in_mongodb_terms(cluster: Cluster) -> None:
    alice = User(cluster, "alice", ["access"], {"db_users": ["*"], "db_names": ["*"]})
    reply = alice.first_reply(alice.cert_pem, ["wicket-mongodb"])
    assert reply["ok"] == 0.0
    assert "is not for a database" in reply["errmsg"]


def test_route_to_a_database_nobody_serves(cluster: Cluster) -> None:
    cluster.admin_call("PUT", "/v1/databases/ghost", GHOST)
    alice = User(cluster, "alice", ["access"], {"db_users": ["*"], "db_names": ["*"]})
    cert = alice.database_cert("ghost", "reader", "test")
    for alpn in (["wicket-mongodb"], []):  # ALPN, or none (mongosh straight to the proxy)
        reply = alice.first_reply(cert, alpn)
        assert reply["ok"] == 0.0
        assert 'no database service serving "ghost"' in reply["errmsg"]


def test_database_certificate_follows_the_roles(cluster: Cluster) -> None:
    cluster.admin_call("PUT", "/v1/databases/ghost", GHOST)
    bob = User(cluster, "bob", ["access"], {"db_users": ["reader"], "db_names": ["test"]})
    bob.database_cert("ghost", "reader", "test")
    with pytest.raises(AccessDenied) as denied:
        bob.database_cert("ghost", "root", "test")
    assert "root" in str(denied.value)
    with pytest.raises(AccessDenied):
        bob.database_cert("ghost", "reader", "admin")
    with pytest.raises(NotFound) as missing:
        bob.database_cert("nothing-here", "reader", "test")
    assert "wsh db ls" in str(missing.value)
