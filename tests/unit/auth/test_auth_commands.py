"""saslStart/saslContinue/authenticate/logout handlers driven by pymongo's real client code."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pymongo.asynchronous.auth import _authenticate_scram
from pymongo.auth_shared import _build_credentials_tuple, _ScramContext
from pymongo.errors import OperationFailure

from localdocdb.auth import sasl
from localdocdb.auth.roles import RoleRef
from localdocdb.errors import CommandError
from localdocdb.state import AuthenticatedUser, Mode

from .conftest import MASTER_PASSWORD, MASTER_USER, Client, MakeServer


async def _scram_login(
    client: Client, mechanism: str, user: str, password: str, source: str = "admin"
) -> None:
    credentials = _build_credentials_tuple(mechanism, source, user, password, {}, None)
    await _authenticate_scram(credentials, client, mechanism)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", [Mode.DOCDB, Mode.MONGODB])
@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
async def test_master_user_logs_in(make_server: MakeServer, mode: Mode, mechanism: str) -> None:
    server = make_server(mode)
    client = Client(server)
    await _scram_login(client, mechanism, MASTER_USER, MASTER_PASSWORD)
    assert client.connection.users == [AuthenticatedUser(MASTER_USER, "admin")]
    assert client.connection.sasl_conversations == {}
    assert any(
        "Successfully authenticated as principal master" in line for line in server.log_lines
    )


async def test_wrong_password_is_generic_code_18_and_logged(make_server: MakeServer) -> None:
    server = make_server()
    client = Client(server)
    with pytest.raises(OperationFailure) as failure:
        await _scram_login(client, "SCRAM-SHA-256", MASTER_USER, "wrong")
    assert failure.value.code == 18
    assert failure.value.details is not None
    assert failure.value.details["errmsg"] == "Authentication failed."
    assert failure.value.details["codeName"] == "AuthenticationFailed"
    assert client.connection.users == []
    assert any("proof is wrong" in line for line in server.log_lines)
    assert not any("wrong" in line and "master-pw" in line for line in server.log_lines)


async def test_unknown_user_and_wrong_db_fail_with_18(make_server: MakeServer) -> None:
    client = Client(make_server())
    for user, source in (("nobody", "admin"), (MASTER_USER, "test")):
        with pytest.raises(OperationFailure) as failure:
            await _scram_login(client, "SCRAM-SHA-1", user, MASTER_PASSWORD, source)
        assert failure.value.code == 18


async def test_legacy_empty_exchange_without_skip_option(make_server: MakeServer) -> None:
    """Clients without skipEmptyExchange get done:false after server-final, then an empty step."""
    server = make_server()
    client = Client(server)
    nonce = "clientnonceclientnonce"
    start = await client.run(
        "admin",
        {
            "saslStart": 1,
            "mechanism": "SCRAM-SHA-256",
            "payload": f"n,,n={MASTER_USER},r={nonce}".encode(),
        },
    )
    assert start["ok"] == 1.0 and start["done"] is False
    server_first = bytes(start["payload"]).decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(
        "sha256", MASTER_PASSWORD.encode(), base64.b64decode(fields["s"]), int(fields["i"])
    )
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    without_proof = f"c=biws,r={fields['r']}"
    auth_message = f"n={MASTER_USER},r={nonce},{server_first},{without_proof}".encode()
    signature = hmac.new(stored_key, auth_message, "sha256").digest()
    proof = base64.b64encode(
        bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    ).decode()
    step = await client.run(
        "admin",
        {
            "saslContinue": 1,
            "conversationId": start["conversationId"],
            "payload": f"{without_proof},p={proof}".encode(),
        },
    )
    assert step["done"] is False and bytes(step["payload"]).startswith(b"v=")
    assert client.connection.users == []
    final = await client.run(
        "admin", {"saslContinue": 1, "conversationId": start["conversationId"], "payload": b""}
    )
    assert final["done"] is True
    assert client.connection.users == [AuthenticatedUser(MASTER_USER, "admin")]


async def test_mechanism_not_enabled_is_bad_value(make_server: MakeServer) -> None:
    docdb = Client(make_server(Mode.DOCDB))
    reply = await docdb.run("$external", {"authenticate": 1, "mechanism": "MONGODB-X509"})
    assert reply["code"] == 2
    assert (
        reply["errmsg"] == "Received authentication for mechanism MONGODB-X509 which is not enabled"
    )
    mongodb = Client(make_server(Mode.MONGODB))
    reply = await mongodb.run(
        "$external", {"saslStart": 1, "mechanism": "MONGODB-AWS", "payload": b""}
    )
    assert (
        reply["errmsg"] == "Received authentication for mechanism MONGODB-AWS which is not enabled"
    )
    reply = await mongodb.run("admin", {"saslStart": 1, "mechanism": "PLAIN", "payload": b""})
    assert reply["code"] == 2


async def test_unknown_conversation_and_db_mismatch(make_server: MakeServer) -> None:
    client = Client(make_server())
    reply = await client.run("admin", {"saslContinue": 1, "conversationId": 7, "payload": b""})
    assert reply["ok"] == 0 and reply["code"] == 17
    start = await client.run(
        "admin",
        {
            "saslStart": 1,
            "mechanism": "SCRAM-SHA-1",
            "payload": f"n,,n={MASTER_USER},r=abc".encode(),
        },
    )
    reply = await client.run(
        "test", {"saslContinue": 1, "conversationId": start["conversationId"], "payload": b"x"}
    )
    assert reply["code"] == 18
    assert client.connection.sasl_conversations == {}


async def test_conversations_are_bounded_and_expire(make_server: MakeServer) -> None:
    server = make_server()
    client = Client(server)
    ctx = client.context("admin", "saslStart")
    command = {
        "saslStart": 1,
        "mechanism": "SCRAM-SHA-1",
        "payload": f"n,,n={MASTER_USER},r=abc".encode(),
    }
    for _ in range(10):
        await sasl.sasl_start(ctx, command, "admin")
    assert len(client.connection.sasl_conversations) == sasl.MAX_CONVERSATIONS
    assert sorted(client.connection.sasl_conversations) == [7, 8, 9, 10]  # the oldest went first

    def later() -> float:
        return 10_000_000.0  # far beyond CONVERSATION_TTL_SECONDS

    with pytest.raises(CommandError) as gone:
        await sasl.sasl_continue(
            ctx, {"saslContinue": 1, "conversationId": 10, "payload": b""}, "admin", clock=later
        )
    assert gone.value.code == 17
    assert client.connection.sasl_conversations == {}


async def test_speculative_scram_then_continue(make_server: MakeServer) -> None:
    server = make_server()
    client = Client(server)
    credentials = _build_credentials_tuple(
        "SCRAM-SHA-256", "admin", MASTER_USER, MASTER_PASSWORD, {}, None
    )
    context = _ScramContext(credentials, ("127.0.0.1", 27017), "SCRAM-SHA-256")
    speculative = context.speculate_command()
    assert speculative is not None
    result = await sasl.speculative_authenticate(client.context("admin"), dict(speculative))
    assert result is not None and "ok" not in result and result["done"] is False
    context.speculative_authenticate = result
    client.auth_ctx = context
    await _authenticate_scram(credentials, client, "SCRAM-SHA-256")  # type: ignore[arg-type]
    assert client.connection.users == [AuthenticatedUser(MASTER_USER, "admin")]


async def test_speculative_failure_returns_none(make_server: MakeServer) -> None:
    client = Client(make_server())
    ctx = client.context("admin")
    bad_user: dict[str, Any] = {
        "saslStart": 1,
        "mechanism": "SCRAM-SHA-256",
        "payload": b"n,,n=x,r=y",
        "db": "admin",
    }
    assert await sasl.speculative_authenticate(ctx, bad_user) is None
    assert (
        await sasl.speculative_authenticate(ctx, {"saslStart": 1, "mechanism": "SCRAM-SHA-256"})
        is None
    )
    assert await sasl.speculative_authenticate(ctx, {"ping": 1, "db": "admin"}) is None


async def test_supported_mechanisms(make_server: MakeServer) -> None:
    server = make_server()
    server.users.create_user("test", "app", password="pw", mechanisms=["SCRAM-SHA-256"], roles=[])
    server.users.create_user(
        "$external", "arn:aws:iam::1:role/x.y", password=None, mechanisms=["MONGODB-AWS"], roles=[]
    )
    assert sasl.supported_mechanisms(server, "admin.master") == ["SCRAM-SHA-1", "SCRAM-SHA-256"]
    assert sasl.supported_mechanisms(server, "test.app") == ["SCRAM-SHA-256"]
    assert sasl.supported_mechanisms(server, "$external.arn:aws:iam::1:role/x.y") == ["MONGODB-AWS"]
    assert sasl.supported_mechanisms(server, "test.nobody") is None
    assert sasl.supported_mechanisms(server, "nodot") is None


async def test_logout_and_getnonce(make_server: MakeServer) -> None:
    client = Client(make_server())
    await _scram_login(client, "SCRAM-SHA-256", MASTER_USER, MASTER_PASSWORD)
    assert (await client.run("admin", {"logout": 1}))["ok"] == 1.0
    assert client.connection.users == []
    nonce = await client.run("admin", {"getnonce": 1})
    assert len(nonce["nonce"]) == 16


async def test_relogin_replaces_user(make_server: MakeServer) -> None:
    server = make_server()
    server.users.create_user(
        "test", "app", password="pw", mechanisms=None, roles=[RoleRef("read", "test")]
    )
    client = Client(server)
    await _scram_login(client, "SCRAM-SHA-256", MASTER_USER, MASTER_PASSWORD)
    await _scram_login(client, "SCRAM-SHA-1", "app", "pw", source="test")
    assert client.connection.users == [AuthenticatedUser("app", "test")]


def _client_certificate(common_name: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Wicket"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


async def test_x509_authenticate(make_server: MakeServer) -> None:
    server = make_server(Mode.MONGODB)
    server.users.create_user(
        "$external",
        "CN=alice,O=Wicket",
        password=None,
        mechanisms=["MONGODB-X509"],
        roles=[RoleRef("readWrite", "test")],
    )
    alice = Client(server, _client_certificate("alice"))
    reply = await alice.run("$external", {"authenticate": 1, "mechanism": "MONGODB-X509"})
    assert reply == {"dbname": "$external", "user": "CN=alice,O=Wicket", "ok": 1.0}
    assert alice.connection.users == [AuthenticatedUser("CN=alice,O=Wicket", "$external")]

    explicit = Client(server, _client_certificate("alice"))
    reply = await explicit.run(
        "$external", {"authenticate": 1, "mechanism": "MONGODB-X509", "user": "CN=alice,O=Wicket"}
    )
    assert reply["ok"] == 1.0

    speculative = await sasl.speculative_authenticate(
        Client(server, _client_certificate("alice")).context("admin"),
        {"authenticate": 1, "mechanism": "MONGODB-X509", "db": "$external"},
    )
    assert speculative == {"dbname": "$external", "user": "CN=alice,O=Wicket"}

    cases = [
        (
            Client(server, _client_certificate("alice")),
            "$external",
            {"user": "CN=bob,O=Wicket"},
        ),  # not the subject
        (Client(server, _client_certificate("bob")), "$external", {}),  # no such $external user
        (Client(server, None), "$external", {}),  # no certificate
        (Client(server, _client_certificate("alice")), "admin", {}),  # wrong database
    ]
    for client, db, extra in cases:
        reply = await client.run(db, {"authenticate": 1, "mechanism": "MONGODB-X509", **extra})
        assert (reply["ok"], reply["code"], reply["errmsg"]) == (0.0, 18, "Authentication failed.")
        assert client.connection.users == []
    assert any("presented none" in line for line in server.log_lines)
