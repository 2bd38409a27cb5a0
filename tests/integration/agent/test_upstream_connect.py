"""The agent's upstream connection against real localdocdb processes on loopback.

TLS modes (verify-full, verify-ca, insecure, the guide's legacy-CN certificate, a wrong
CA), timeouts and refusals with their user-facing messages, replica-set seeds, and
MONGODB-X509 with client certificates from the cluster's database CA. Replica-set
discovery is driven against small servers built on our own wire codec.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from localdocdb.process import LocalDocDBProcess
from tests.support.clients import StartDocDB
from wicket.agent.mongodb.tls import AWS_GLOBAL_BUNDLE_URL, LEGACY_CN_TEXT
from wicket.agent.mongodb.upstream import (
    LegacyCommonNameError,
    UpstreamAuthError,
    UpstreamConnectError,
    UpstreamConnection,
    UpstreamTimeout,
    UpstreamTlsError,
    authenticate_x509,
    connect_upstream,
    direct_hello_fields,
)
from wicket.auth.databases import Database, TlsMode, TlsSettings
from wicket.pki.authority import CAKind, CertificateAuthority
from wicket.pki.mongodb import issue_mongodb_client_certificate
from wicket.wire.mongo import MessageFramer, OpMsg, decode_message, encode_op_msg

METADATA = {"application": {"name": "orders-app"}, "driver": {"name": "pymongo", "version": "4"}}


def database(uri: str, mode: TlsMode = TlsMode.VERIFY_FULL, ca: Path | None = None) -> Database:
    return Database(
        name="upstream-test",
        uri=uri,
        tls=TlsSettings(mode=mode, ca_cert_file=str(ca) if ca else ""),
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port whose kernel completes TCP handshakes but no one ever answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def opened(db: Database, **kwargs: Any) -> AsyncIterator[UpstreamConnection]:
    connection = await connect_upstream(db, client_metadata=METADATA, **kwargs)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def server(start_localdocdb: StartDocDB) -> LocalDocDBProcess:
    return start_localdocdb("--mode", "mongodb")


@pytest.fixture
def legacy_server(start_localdocdb: StartDocDB) -> LocalDocDBProcess:
    return start_localdocdb("--mode", "mongodb", "--legacy-cn-cert")


async def test_verify_full_with_the_servers_ca(server: LocalDocDBProcess) -> None:
    for host in ("localhost", "127.0.0.1"):
        db = database(f"mongodb://{host}:{server.port}/?tls=true", ca=server.ca_file)
        async with opened(db) as connection:
            assert connection.address == (host, server.port)
            assert connection.hello["ok"] == 1
            assert connection.hello["isWritablePrimary"] is True
            assert connection.max_message_size == connection.hello["maxMessageSizeBytes"]
            reply = await connection.command("admin", {"ping": 1}, timeout=5)
            assert reply["ok"] == 1
            # a second round trip on the same connection pairs request ids correctly
            assert (await connection.command("admin", {"buildInfo": 1}))["ok"] == 1


async def test_bare_host_port_uri_defaults_to_tls(server: LocalDocDBProcess) -> None:
    async with opened(database(f"localhost:{server.port}", ca=server.ca_file)) as connection:
        assert connection.writer.get_extra_info("ssl_object") is not None


async def test_verify_full_refuses_a_legacy_common_name_certificate(
    legacy_server: LocalDocDBProcess,
) -> None:
    db = database(f"mongodb://localhost:{legacy_server.port}", ca=legacy_server.ca_file)
    with pytest.raises(LegacyCommonNameError) as failure:
        await connect_upstream(db, client_metadata=None)
    message = str(failure.value)
    assert message.startswith(LEGACY_CN_TEXT)
    assert f"localhost:{legacy_server.port}" in message
    assert "rotate" in message and "docs.aws.amazon.com" in message


async def test_verify_ca_accepts_the_legacy_certificate(legacy_server: LocalDocDBProcess) -> None:
    db = database(
        f"mongodb://localhost:{legacy_server.port}", TlsMode.VERIFY_CA, legacy_server.ca_file
    )
    async with opened(db) as connection:
        assert (await connection.command("admin", {"ping": 1}))["ok"] == 1


async def test_insecure_connects_without_any_ca_and_warns(
    legacy_server: LocalDocDBProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="wicket.agent.mongodb")
    async with opened(database(f"mongodb://localhost:{legacy_server.port}", TlsMode.INSECURE)):
        pass
    assert any("tls.mode insecure" in record.getMessage() for record in caplog.records)


async def test_wrong_ca_file_names_the_mode_and_the_file(
    server: LocalDocDBProcess, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca.pem"
    other.write_bytes(CertificateAuthority.create(CAKind.DB, "elsewhere").cert_pem())
    for mode in (TlsMode.VERIFY_FULL, TlsMode.VERIFY_CA):
        db = database(f"mongodb://localhost:{server.port}", mode, other)
        with pytest.raises(UpstreamTlsError) as failure:
            await connect_upstream(db, client_metadata=None)
        message = str(failure.value)
        assert not isinstance(failure.value, LegacyCommonNameError)
        assert f"tls.mode {mode.value}" in message
        assert str(other) in message
        assert message.startswith(f"TLS verification of localhost:{server.port} failed")


async def test_system_store_failure_points_at_the_aws_bundle(server: LocalDocDBProcess) -> None:
    with pytest.raises(UpstreamTlsError) as failure:
        await connect_upstream(database(f"localhost:{server.port}"), client_metadata=None)
    assert AWS_GLOBAL_BUNDLE_URL in str(failure.value)
    assert "tls.ca_cert_file" in str(failure.value)


async def test_timeout_names_host_port_and_what_to_check() -> None:
    with silent_listener() as port:
        db = database(f"mongodb://127.0.0.1:{port}", TlsMode.INSECURE)
        with pytest.raises(UpstreamTimeout) as failure:
            await connect_upstream(db, client_metadata=None, connect_timeout=0.5)
    assert str(failure.value) == (
        f"timed out connecting to 127.0.0.1:{port} after 0.5s: check that the database is "
        "running, that this database service host can reach it (security groups / network "
        f"ACLs allow port {port} from this host), and that the URI in the db_service config "
        "is right"
    )


async def test_timeout_while_waiting_for_hello_is_a_connect_timeout() -> None:
    with silent_listener() as port:
        db = database(f"mongodb://127.0.0.1:{port}/?tls=false")
        with pytest.raises(UpstreamTimeout, match=f"timed out connecting to 127.0.0.1:{port}"):
            await connect_upstream(db, client_metadata=None, connect_timeout=0.5)


async def test_refused_names_host_port_and_what_to_check() -> None:
    port = closed_port()
    with pytest.raises(UpstreamConnectError) as failure:
        await connect_upstream(database(f"127.0.0.1:{port}"), client_metadata=None)
    message = str(failure.value)
    assert not isinstance(failure.value, UpstreamTimeout)
    assert message.startswith(f"connection refused by 127.0.0.1:{port}: ")
    assert f"allow port {port} from this host" in message
    assert "the URI in the db_service config" in message


async def test_plain_server_with_tls_on_says_to_check_tls() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(16)  # mongod without TLS closes on a ClientHello
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    try:
        db = database(f"mongodb://127.0.0.1:{port}", TlsMode.INSECURE)
        with pytest.raises(UpstreamConnectError, match=f"speaks TLS on port {port}"):
            await connect_upstream(db, client_metadata=None, connect_timeout=5)
    finally:
        server.close()
        await server.wait_closed()


async def test_seed_list_with_only_one_member_up(server: LocalDocDBProcess) -> None:
    down1, down2 = closed_port(), closed_port()
    uri = f"mongodb://127.0.0.1:{down1},localhost:{server.port},127.0.0.1:{down2}/?tls=true"
    async with opened(database(uri, ca=server.ca_file)) as connection:
        assert connection.address == ("localhost", server.port)
        assert (await connection.command("admin", {"ping": 1}))["ok"] == 1


async def test_seed_list_with_no_member_up_lists_every_host() -> None:
    down1, down2 = closed_port(), closed_port()
    db = database(f"mongodb://127.0.0.1:{down1},127.0.0.1:{down2}")
    with pytest.raises(UpstreamConnectError) as failure:
        await connect_upstream(db, client_metadata=None)
    message = str(failure.value)
    assert message.startswith("could not reach the primary of ")
    assert f"127.0.0.1:{down1}" in message and f"127.0.0.1:{down2}" in message


# --- replica-set discovery against servers built on our own codec ---------------------


class FakeMongod:
    """A tiny plain-TCP server on our codec: answers hello with a fixed reply, records it."""

    def __init__(self, hello: dict[str, Any]) -> None:
        self.hello = hello
        self.received: list[dict[str, Any]] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = MessageFramer()
        try:
            while data := await reader.read(65536):
                framer.receive_data(data)
                while (frame := framer.next_frame()) is not None:
                    message = decode_message(frame.data)
                    assert isinstance(message, OpMsg)
                    command = message.command()
                    self.received.append(command)
                    reply = dict(self.hello) if "hello" in command else {"ok": 1.0}
                    writer.write(
                        encode_op_msg(reply, request_id=1, response_to=frame.header.request_id)
                    )
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


def primary_hello(**fields: Any) -> dict[str, Any]:
    return {"isWritablePrimary": True, "maxMessageSizeBytes": 48_000_000, "ok": 1.0, **fields}


@contextlib.asynccontextmanager
async def fake_mongod(hello: dict[str, Any]) -> AsyncIterator[FakeMongod]:
    fake = FakeMongod(hello)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


async def test_discovery_follows_the_secondary_to_the_primary() -> None:
    async with fake_mongod({}) as primary, fake_mongod({}) as secondary:
        members = [f"127.0.0.1:{secondary.port}", f"127.0.0.1:{primary.port}"]
        topology = {"setName": "rs0", "hosts": members, "setVersion": 3, "electionId": "e"}
        primary.hello = primary_hello(**topology, me=members[1], primary=members[1])
        secondary.hello = {
            **topology,
            "isWritablePrimary": False,
            "secondary": True,
            "me": members[0],
            "primary": members[1],
            "ok": 1.0,
        }
        db = database(f"mongodb://{members[0]}/?replicaSet=rs0&tls=false")
        async with opened(db, hello_fields={"compression": ["zstd"]}) as connection:
            assert connection.address == ("127.0.0.1", primary.port)
            assert connection.hello["setName"] == "rs0"
            shown = direct_hello_fields(connection.hello)
            assert shown == {
                "isWritablePrimary": True,
                "maxMessageSizeBytes": 48_000_000,
                "ok": 1.0,
            }
        # every hello carried the real client's metadata (not Wicket's) and the extra fields
        for fake in (primary, secondary):
            hello = next(command for command in fake.received if "hello" in command)
            assert hello["client"] == METADATA
            assert hello["compression"] == ["zstd"]
            assert hello["$db"] == "admin"


async def test_replica_set_name_mismatch_is_refused() -> None:
    async with fake_mongod(primary_hello(setName="other")) as fake:
        db = database(f"mongodb://127.0.0.1:{fake.port}/?replicaSet=rs0&tls=false")
        with pytest.raises(UpstreamConnectError, match="is in replica set 'other', not 'rs0'"):
            await connect_upstream(db, client_metadata=None)


async def test_no_metadata_means_no_client_field() -> None:
    async with fake_mongod(primary_hello()) as fake:
        async with opened(database(f"mongodb://127.0.0.1:{fake.port}/?tls=false")):
            pass
        await asyncio.sleep(0)
        assert fake.received[0]["client"] == METADATA
        connection = await connect_upstream(
            database(f"mongodb://127.0.0.1:{fake.port}/?tls=false"), client_metadata=None
        )
        await connection.close()
        assert "client" not in fake.received[-1]


async def test_out_of_bounds_max_message_size_falls_back_to_48mb() -> None:
    async with fake_mongod(primary_hello(maxMessageSizeBytes=10)) as fake:
        db = database(f"mongodb://127.0.0.1:{fake.port}/?tls=false")
        async with opened(db) as connection:
            assert connection.max_message_size == 48_000_000


async def test_hello_refusal_is_reported() -> None:
    refusal = {"ok": 0.0, "errmsg": "no hello for you", "code": 59}
    async with fake_mongod(refusal) as fake:
        with pytest.raises(UpstreamConnectError, match="refused hello: no hello for you"):
            await connect_upstream(
                database(f"mongodb://127.0.0.1:{fake.port}/?tls=false"), client_metadata=None
            )


# --- MONGODB-X509 with certificates from the database CA -------------------------------


@pytest.fixture
def db_ca() -> CertificateAuthority:
    return CertificateAuthority.create(CAKind.DB, "upstream-test")


@pytest.fixture
def x509_server(
    start_localdocdb: StartDocDB, db_ca: CertificateAuthority, tmp_path: Path
) -> LocalDocDBProcess:
    ca_file = tmp_path / "db-ca.pem"
    ca_file.write_bytes(db_ca.cert_pem())
    server = start_localdocdb("--mode", "mongodb", "--client-ca", str(ca_file))
    admin: MongoClient[dict[str, Any]]
    with MongoClient(server.uri(), serverSelectionTimeoutMS=5000) as admin:
        for user in ("CN=alice", "CN=bob,OU=eng,O=Example"):
            admin["$external"].command(
                "createUser", user, roles=[{"role": "readWrite", "db": "app"}]
            )
    return server


async def test_x509_authentication_as_the_db_user(
    x509_server: LocalDocDBProcess, db_ca: CertificateAuthority
) -> None:
    db = database(f"mongodb://localhost:{x509_server.port}", ca=x509_server.ca_file)
    for db_user, expected in (
        ("alice", "CN=alice"),
        ("CN=bob,OU=eng,O=Example", "CN=bob,OU=eng,O=Example"),
    ):
        certificate = issue_mongodb_client_certificate(db_ca, db_user, ttl=timedelta(hours=1))
        async with opened(db, client_certificate=certificate) as connection:
            reply = await connection.command(
                "$external", {"authenticate": 1, "mechanism": "MONGODB-X509"}
            )
            assert reply["ok"] == 1, reply
            assert reply["user"] == expected
            status = await connection.command("admin", {"connectionStatus": 1})
            assert status["authInfo"]["authenticatedUsers"] == [
                {"user": expected, "db": "$external"}
            ]
            inserted = await connection.command(
                "app", {"insert": "items", "documents": [{"by": expected}]}
            )
            assert inserted["ok"] == 1 and inserted["n"] == 1


async def test_x509_certificate_for_another_user_fails(
    x509_server: LocalDocDBProcess, db_ca: CertificateAuthority
) -> None:
    db = database(f"mongodb://localhost:{x509_server.port}", ca=x509_server.ca_file)
    certificate = issue_mongodb_client_certificate(db_ca, "mallory", ttl=timedelta(hours=1))
    async with opened(db, client_certificate=certificate) as connection:
        reply = await connection.command(
            "$external", {"authenticate": 1, "mechanism": "MONGODB-X509"}
        )
        assert reply["ok"] == 0 and reply["code"] == 18
        with pytest.raises(UpstreamAuthError) as failure:
            await authenticate_x509(connection, subject="CN=mallory")
    message = str(failure.value)
    assert "CN=mallory" in message and "createUser" in message and "$external" in message


async def test_authenticate_x509_helper_succeeds(
    x509_server: LocalDocDBProcess, db_ca: CertificateAuthority
) -> None:
    db = database(f"mongodb://localhost:{x509_server.port}", ca=x509_server.ca_file)
    certificate = issue_mongodb_client_certificate(db_ca, "alice", ttl=timedelta(hours=1))
    async with opened(db, client_certificate=certificate) as connection:
        await authenticate_x509(connection, subject="CN=alice")
        status = await connection.command("admin", {"connectionStatus": 1})
        assert status["authInfo"]["authenticatedUsers"] == [{"user": "CN=alice", "db": "$external"}]


async def test_x509_certificate_from_another_ca_is_refused_by_the_server(
    x509_server: LocalDocDBProcess,
) -> None:
    """The server's TLS layer rejects a client certificate the db CA did not sign."""
    stranger_ca = CertificateAuthority.create(CAKind.DB, "stranger")
    certificate = issue_mongodb_client_certificate(stranger_ca, "alice", ttl=timedelta(hours=1))
    db = database(f"mongodb://localhost:{x509_server.port}", ca=x509_server.ca_file)
    with pytest.raises(UpstreamConnectError, match=f"localhost:{x509_server.port}"):
        connection = await connect_upstream(
            db, client_metadata=None, client_certificate=certificate, connect_timeout=5
        )
        await connection.close()
