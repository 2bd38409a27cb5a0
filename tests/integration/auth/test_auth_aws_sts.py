"""MONGODB-AWS end to end against a real moto STS: real client signatures, real HTTP.

Client payloads come from pymongo's own MONGODB-AWS code (pymongo_auth_aws, botocore
SigV4); the server side is the real saslStart/saslContinue handlers forwarding to moto
with auth enforcement on. Every refusal must be code 18 with the generic message.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any

import bson
import pymongo_auth_aws  # type: ignore[import-untyped]
import pytest
from bson.binary import Binary
from pymongo.asynchronous.auth_aws import _authenticate_aws
from pymongo.auth_shared import _build_credentials_tuple

from localdocdb.auth import sasl
from localdocdb.auth.roles import RoleRef
from localdocdb.errors import CommandError
from localdocdb.state import AuthenticatedUser, ServerState

from .conftest import ACCOUNT, DB_ROLE, IAM_USER, AwsKeys, Client, LocalSts, MakeServer, free_port

ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{DB_ROLE}"


class SaslContext(pymongo_auth_aws.AwsSaslContext):  # type: ignore[misc]
    """pymongo_auth_aws's client conversation with pymongo's BSON (as pymongo wires it)."""

    def binary_type(self) -> type[Binary]:
        return Binary

    def bson_encode(self, doc: Mapping[str, Any]) -> bytes:
        return bson.encode(doc)

    def bson_decode(self, data: bytes) -> Mapping[str, Any]:
        return bson.decode(data)


def _context(keys: AwsKeys) -> SaslContext:
    return SaslContext(
        pymongo_auth_aws.AwsCredential(
            keys.access_key_id, keys.secret_access_key, keys.session_token
        )
    )


def _server_with_role_user(make_docdb: MakeServer, **config: Any) -> ServerState:
    server = make_docdb(**config)
    server.users.create_user(
        "$external",
        ROLE_ARN,
        password=None,
        mechanisms=["MONGODB-AWS"],
        roles=[RoleRef("root", "admin")],
    )
    return server


async def _start(client: Client, context: SaslContext) -> dict[str, Any]:
    reply = await client.run(
        "$external", {"saslStart": 1, "mechanism": "MONGODB-AWS", "payload": context.step(None)}
    )
    assert reply["ok"] == 1.0 and reply["done"] is False
    return reply


def _final(context: SaslContext, start: dict[str, Any]) -> dict[str, Any]:
    return dict(bson.decode(context.step(bytes(start["payload"]))))


async def _continue(
    client: Client, start: dict[str, Any], final: Mapping[str, Any]
) -> dict[str, Any]:
    return await client.run(
        "$external",
        {
            "saslContinue": 1,
            "conversationId": start["conversationId"],
            "payload": bson.encode(final),
        },
    )


def _assert_refused(reply: dict[str, Any], client: Client, reason: str) -> None:
    assert (reply["ok"], reply["code"], reply["codeName"], reply["errmsg"]) == (
        0.0,
        18,
        "AuthenticationFailed",
        "Authentication failed.",
    )
    assert client.connection.users == []
    assert client.connection.sasl_conversations == {}
    assert any(reason in line for line in client.server.log_lines), client.server.log_lines[-3:]


async def test_assumed_role_logs_in_as_role_arn(
    make_docdb: MakeServer, local_sts: LocalSts
) -> None:
    server = _server_with_role_user(make_docdb)
    client = Client(server)
    keys = local_sts.db_role
    credentials = _build_credentials_tuple(
        "MONGODB-AWS",
        "$external",
        keys.access_key_id,
        keys.secret_access_key,
        {"authmechanismproperties": {"AWS_SESSION_TOKEN": keys.session_token}},
        None,
    )
    await _authenticate_aws(credentials, client)  # type: ignore[arg-type]
    assert client.connection.users == [AuthenticatedUser(ROLE_ARN, "$external")]
    assert any(f"principal {ROLE_ARN} on $external" in line for line in server.log_lines)


async def test_server_first_names_the_sts_host(make_docdb: MakeServer, local_sts: LocalSts) -> None:
    client = Client(_server_with_role_user(make_docdb))
    context = _context(local_sts.db_role)
    start = await _start(client, context)
    reply = bson.decode(bytes(start["payload"]))
    assert reply["h"] == "sts.amazonaws.com"
    assert len(reply["s"]) == 64 and reply["s"][:32] == context._client_nonce


async def test_regional_sts_host(make_docdb: MakeServer, local_sts: LocalSts) -> None:
    client = Client(_server_with_role_user(make_docdb, region="eu-west-1"))
    context = _context(local_sts.db_role)
    start = await _start(client, context)
    assert bson.decode(bytes(start["payload"]))["h"] == "sts.eu-west-1.amazonaws.com"
    final = _final(context, start)
    assert "/eu-west-1/sts/aws4_request" in final["a"]
    reply = await _continue(client, start, final)
    assert reply["ok"] == 1.0 and reply["done"] is True
    assert client.connection.users == [AuthenticatedUser(ROLE_ARN, "$external")]


async def test_iam_user_logs_in_with_its_own_arn(
    make_docdb: MakeServer, local_sts: LocalSts
) -> None:
    server = make_docdb()
    user_arn = f"arn:aws:iam::{ACCOUNT}:user/{IAM_USER}"
    server.users.create_user(
        "$external", user_arn, password=None, mechanisms=["MONGODB-AWS"], roles=[]
    )
    client = Client(server)
    context = _context(local_sts.iam_user)
    start = await _start(client, context)
    final = _final(context, start)
    assert "t" not in final
    reply = await _continue(client, start, final)
    assert reply["done"] is True
    assert client.connection.users == [AuthenticatedUser(user_arn, "$external")]


async def test_tampered_signature_is_refused(make_docdb: MakeServer, local_sts: LocalSts) -> None:
    client = Client(_server_with_role_user(make_docdb))
    context = _context(local_sts.db_role)
    start = await _start(client, context)
    final = _final(context, start)
    signature = re.search(r"Signature=([0-9a-f]{64})", final["a"])
    assert signature is not None
    flipped = ("0" if signature[1][10] != "0" else "1").join((signature[1][:10], signature[1][11:]))
    final["a"] = final["a"].replace(signature[1], flipped)
    _assert_refused(await _continue(client, start, final), client, "SignatureDoesNotMatch")


async def test_wrong_session_token_is_refused(make_docdb: MakeServer, local_sts: LocalSts) -> None:
    client = Client(_server_with_role_user(make_docdb))
    context = _context(local_sts.db_role)
    start = await _start(client, context)
    final = _final(context, start)
    assert final["t"] == local_sts.db_role.session_token
    final["t"] = local_sts.orphan_role.session_token  # a real token, of another session
    _assert_refused(await _continue(client, start, final), client, "InvalidClientTokenId")


async def test_proof_signed_with_wrong_token_is_refused(
    make_docdb: MakeServer, local_sts: LocalSts
) -> None:
    client = Client(_server_with_role_user(make_docdb))
    keys = local_sts.db_role
    context = _context(AwsKeys(keys.access_key_id, keys.secret_access_key, "not-the-session-token"))
    start = await _start(client, context)
    _assert_refused(
        await _continue(client, start, _final(context, start)), client, "InvalidClientTokenId"
    )


async def test_stale_date_is_refused(make_docdb: MakeServer, local_sts: LocalSts) -> None:
    """moto does not check X-Amz-Date; our 15-minute rule must (server clock 20 min ahead)."""
    client = Client(_server_with_role_user(make_docdb))
    context = _context(local_sts.db_role)

    def twenty_minutes_ahead() -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=20)

    command = {"saslStart": 1, "mechanism": "MONGODB-AWS", "payload": context.step(None)}
    start = await sasl.sasl_start(
        client.context("$external", "saslStart"), command, "$external", aws_now=twenty_minutes_ahead
    )
    _assert_refused(await _continue(client, start, _final(context, start)), client, "15 minutes")


async def test_proof_for_another_server_nonce_is_refused(
    make_docdb: MakeServer, local_sts: LocalSts
) -> None:
    """A proof captured from one conversation cannot be replayed in another one."""
    server = _server_with_role_user(make_docdb)
    victim, attacker = Client(server), Client(server)
    context = _context(local_sts.db_role)
    victim_start = await _start(victim, context)
    captured = _final(context, victim_start)
    attacker_start = await _start(attacker, _context(local_sts.db_role))
    _assert_refused(
        await _continue(attacker, attacker_start, captured), attacker, "SignatureDoesNotMatch"
    )
    # The victim's own conversation still succeeds with the same proof: it was valid for its nonce.
    reply = await _continue(victim, victim_start, captured)
    assert reply["done"] is True and victim.connection.users == [
        AuthenticatedUser(ROLE_ARN, "$external")
    ]


async def test_role_without_external_user_is_refused(
    make_docdb: MakeServer, local_sts: LocalSts
) -> None:
    client = Client(_server_with_role_user(make_docdb))
    context = _context(local_sts.orphan_role)
    start = await _start(client, context)
    _assert_refused(
        await _continue(client, start, _final(context, start)),
        client,
        "no $external user with MONGODB-AWS",
    )


async def test_external_user_without_aws_mechanism_is_refused(
    make_docdb: MakeServer, local_sts: LocalSts
) -> None:
    server = make_docdb()
    server.users.create_user(
        "$external", ROLE_ARN, password=None, mechanisms=["MONGODB-X509"], roles=[]
    )
    client = Client(server)
    context = _context(local_sts.db_role)
    start = await _start(client, context)
    _assert_refused(
        await _continue(client, start, _final(context, start)), client, "no $external user"
    )


async def test_missing_signed_nonce_header_is_refused_before_sts(
    make_docdb: MakeServer, local_sts: LocalSts
) -> None:
    client = Client(_server_with_role_user(make_docdb))
    context = _context(local_sts.db_role)
    start = await _start(client, context)
    final = _final(context, start)
    final["a"] = final["a"].replace(";x-mongodb-server-nonce", "")
    _assert_refused(
        await _continue(client, start, final), client, "SignedHeaders lacks x-mongodb-server-nonce"
    )


async def test_aws_must_use_external_db(make_docdb: MakeServer, local_sts: LocalSts) -> None:
    client = Client(_server_with_role_user(make_docdb))
    reply = await client.run(
        "admin",
        {
            "saslStart": 1,
            "mechanism": "MONGODB-AWS",
            "payload": _context(local_sts.db_role).step(None),
        },
    )
    _assert_refused(reply, client, "must use the $external database")


async def test_sts_unreachable_is_refused(make_docdb: MakeServer, local_sts: LocalSts) -> None:
    client = Client(
        _server_with_role_user(make_docdb, sts_endpoint=f"http://127.0.0.1:{free_port()}")
    )
    context = _context(local_sts.db_role)
    start = await _start(client, context)
    _assert_refused(
        await _continue(client, start, _final(context, start)), client, "could not be reached"
    )


async def test_conversation_cannot_be_continued_after_failure(
    make_docdb: MakeServer, local_sts: LocalSts
) -> None:
    client = Client(_server_with_role_user(make_docdb))
    context = _context(local_sts.orphan_role)
    start = await _start(client, context)
    final = _final(context, start)
    await _continue(client, start, final)
    with pytest.raises(CommandError) as error:
        await sasl.sasl_continue(
            client.context("$external", "saslContinue"),
            {
                "saslContinue": 1,
                "conversationId": start["conversationId"],
                "payload": bson.encode(final),
            },
            "$external",
        )
    assert error.value.code == 17
