"""The client side of SASL MONGODB-AWS: fixed nonces and clock, signature recomputed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from bson.binary import Binary
from hypothesis import given, settings
from hypothesis import strategies as st

from localdocdb.auth import aws as server_side
from wicket.agent.mongodb.aws_sasl import (
    ConversationState,
    MongoDbAwsConversation,
    UpstreamAuthError,
    authenticate_mongodb_aws,
    authentication_failed_message,
    check_sts_host,
    region_of_sts_host,
)
from wicket.agent.mongodb.iam import AwsCredentials
from wicket.errors import LocalProtocolError, RemoteProtocolError, UpstreamError

CLIENT_NONCE = bytes(range(32))
SERVER_NONCE = CLIENT_NONCE + bytes(range(100, 132))
SIGNED_AT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
STATIC = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SESSION = AwsCredentials(
    "ASIAEXAMPLE",
    "secret/session+key",
    session_token="FwoGZXIvYXdzEXAMPLETOKEN==",
    expiration=SIGNED_AT + timedelta(hours=1),
)
ROLE = "arn:aws:iam::123456789012:role/wicket-docdb-user"


def conversation(credentials: AwsCredentials = SESSION) -> MongoDbAwsConversation:
    return MongoDbAwsConversation(credentials, nonce=CLIENT_NONCE, clock=lambda: SIGNED_AT)


def server_first(nonce: Any = SERVER_NONCE, host: Any = "sts.amazonaws.com") -> bytes:
    document: dict[str, Any] = {}
    if nonce is not None:
        document["s"] = Binary(nonce) if isinstance(nonce, bytes) else nonce
    if host is not None:
        document["h"] = host
    return bson.encode(document)


def final_for(
    credentials: AwsCredentials = SESSION, host: str = "sts.amazonaws.com"
) -> dict[str, Any]:
    talk = conversation(credentials)
    talk.client_first()
    return bson.decode(talk.client_final(server_first(host=host)))


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def independent_signature(
    credentials: AwsCredentials, host: str, region: str, signed_headers: list[str]
) -> str:
    """SigV4 by hand (AWS docs, "Create a signed AWS API request"), not through botocore."""
    stamp = SIGNED_AT.strftime("%Y%m%dT%H%M%SZ")
    body = "Action=GetCallerIdentity&Version=2011-06-15"
    values = {
        "content-length": str(len(body)),
        "content-type": "application/x-www-form-urlencoded",
        "host": host,
        "x-amz-date": stamp,
        "x-amz-security-token": credentials.session_token or "",
        "x-mongodb-gs2-cb-flag": "n",
        "x-mongodb-server-nonce": base64.b64encode(SERVER_NONCE).decode(),
    }
    canonical_headers = "".join(f"{name}:{values[name]}\n" for name in signed_headers)
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            canonical_headers,
            ";".join(signed_headers),
            hashlib.sha256(body.encode()).hexdigest(),
        ]
    )
    scope = f"{stamp[:8]}/{region}/sts/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(("AWS4" + credentials.secret_access_key).encode(), stamp[:8])
    for part in (region, "sts", "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_client_first_is_nonce_and_gs2_flag() -> None:
    talk = conversation()
    payload = bson.decode(talk.client_first())
    assert payload == {"r": CLIENT_NONCE, "p": 110}
    assert talk.state is ConversationState.SENT_CLIENT_FIRST
    # localdocdb's server accepts it as is
    fresh = MongoDbAwsConversation(SESSION, nonce=CLIENT_NONCE)
    assert server_side.parse_client_first(fresh.client_first()) == CLIENT_NONCE


def test_random_nonces_differ() -> None:
    first = bson.decode(MongoDbAwsConversation(SESSION).client_first())["r"]
    second = bson.decode(MongoDbAwsConversation(SESSION).client_first())["r"]
    assert len(first) == 32
    assert first != second


@pytest.mark.parametrize("credentials", [SESSION, STATIC], ids=["session", "static"])
@pytest.mark.parametrize(
    ("host", "region"),
    [("sts.amazonaws.com", "us-east-1"), ("sts.eu-west-3.amazonaws.com", "eu-west-3")],
)
def test_client_final_signature_recomputes(
    credentials: AwsCredentials, host: str, region: str
) -> None:
    final = final_for(credentials, host)
    assert final["d"] == "20260304T050607Z"
    assert ("t" in final) is (credentials.session_token is not None)
    if credentials.session_token:
        assert final["t"] == credentials.session_token
    header = server_side.parse_authorization(final["a"])
    assert header.access_key_id == credentials.access_key_id
    assert (header.scope_date, header.region, header.service) == ("20260304", region, "sts")
    expected = {
        "content-length",
        "content-type",
        "host",
        "x-amz-date",
        "x-mongodb-gs2-cb-flag",
        "x-mongodb-server-nonce",
    }
    if credentials.session_token:
        expected.add("x-amz-security-token")
    assert set(header.signed_headers) == expected
    assert header.signature == independent_signature(
        credentials, host, region, list(header.signed_headers)
    )
    # and botocore, given the same request, computes the same signature
    request = AWSRequest(
        method="POST",
        url=f"https://{host}/",
        data="Action=GetCallerIdentity&Version=2011-06-15",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Length": "43",
            "Host": host,
            "X-Amz-Date": final["d"],
            "X-MongoDB-Server-Nonce": base64.b64encode(SERVER_NONCE).decode(),
            "X-MongoDB-GS2-CB-Flag": "n",
            **({"X-Amz-Security-Token": final["t"]} if "t" in final else {}),
        },
    )
    request.context["timestamp"] = final["d"]
    signer = SigV4Auth(
        Credentials(
            credentials.access_key_id, credentials.secret_access_key, credentials.session_token
        ),
        "sts",
        region,
    )
    canonical = signer.canonical_request(request)
    assert signer.signature(signer.string_to_sign(request, canonical), request) == header.signature


def test_client_final_passes_localdocdb_server_checks() -> None:
    talk = conversation()
    talk.client_first()
    payload = talk.client_final(server_first(host="sts.us-west-2.amazonaws.com"))
    parsed = server_side.parse_client_final(payload)
    header = server_side.check_client_final(
        parsed, now=SIGNED_AT + timedelta(minutes=1), sts_host="sts.us-west-2.amazonaws.com"
    )
    assert header.region == "us-west-2"
    request = server_side.build_sts_request(parsed, SERVER_NONCE, "sts.us-west-2.amazonaws.com")
    assert ("X-Amz-Security-Token", SESSION.session_token) in request.headers
    assert talk.state is ConversationState.SENT_CLIENT_FINAL


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"\x05\x00\x00", "not BSON"),
        (b"\xff" * 20, "not BSON"),
        (server_first(nonce=None), "64 bytes"),
        (server_first(nonce=SERVER_NONCE[:63]), "64 bytes"),
        (server_first(nonce=SERVER_NONCE + b"x"), "64 bytes"),
        (server_first(nonce="a" * 64), "64 bytes"),
        (server_first(nonce=bytes(64)), "does not start with our nonce"),
        (server_first(host=None), "not a string"),
        (server_first(host=5), "not a string"),
        (server_first(host=""), "1 to 255"),
        (server_first(host="a" * 256), "1 to 255"),
        (server_first(host="sts..amazonaws.com"), "empty label"),
        (server_first(host=".sts.amazonaws.com"), "empty label"),
        (server_first(host="sts.amazonaws.com."), "empty label"),
        (server_first(host="sts.amazon aws.com"), "not a valid host"),
        (server_first(host="evil.com/path"), "not a valid host"),
        (bson.encode({"s": Binary(SERVER_NONCE), "h": "x" * 20000}), "limit"),
    ],
)
def test_bad_server_first_is_refused(payload: bytes, fragment: str) -> None:
    talk = conversation()
    talk.client_first()
    with pytest.raises(RemoteProtocolError, match=fragment):
        talk.client_final(payload)
    assert talk.state is ConversationState.FAILED
    with pytest.raises(LocalProtocolError):
        talk.client_final(server_first())


def test_conversation_order_is_enforced() -> None:
    talk = conversation()
    with pytest.raises(LocalProtocolError):
        talk.client_final(server_first())
    talk.client_first()
    with pytest.raises(LocalProtocolError):
        talk.client_first()
    with pytest.raises(LocalProtocolError):
        MongoDbAwsConversation(SESSION, nonce=b"short")


@pytest.mark.parametrize(
    ("host", "region"),
    [
        ("sts.amazonaws.com", "us-east-1"),
        ("localhost", "us-east-1"),
        ("sts.us-west-2.amazonaws.com", "us-west-2"),
        ("sts-fips.us-east-2.amazonaws.com", "us-east-2"),
        ("sts.cn-north-1.amazonaws.com.cn", "cn-north-1"),
        ("first.second", "second"),
    ],
)
def test_region_of_sts_host(host: str, region: str) -> None:
    assert check_sts_host(host) == host
    assert region_of_sts_host(host) == region
    # the server side derives the same region
    assert server_side.region_of_sts_host(host) == region


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_server_first_only_raises_protocol_errors(payload: bytes) -> None:
    talk = conversation()
    talk.client_first()
    try:
        talk.client_final(payload)
    except RemoteProtocolError:
        return


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_fuzzed_hosts(host: str) -> None:
    try:
        checked = check_sts_host(host)
    except RemoteProtocolError:
        return
    assert 0 < len(checked) <= 255
    assert all(label for label in checked.split("."))


class ScriptedUpstream:
    """An upstream that runs localdocdb's real server-side conversation, then answers `verdict`."""

    def __init__(self, verdict: dict[str, Any]) -> None:
        self.server = server_side.AwsServer("sts.amazonaws.com", random_bytes=os.urandom)
        self.verdict = verdict
        self.commands: list[tuple[str, dict[str, Any]]] = []

    async def command(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        self.commands.append((db, cmd))
        if "saslStart" in cmd:
            assert cmd["mechanism"] == "MONGODB-AWS"
            payload = self.server.client_first(bytes(cmd["payload"]))
            return {"ok": 1.0, "conversationId": 7, "done": False, "payload": payload}
        assert cmd["conversationId"] == 7
        self.server.client_final(bytes(cmd["payload"]))  # the real checks
        return self.verdict


async def test_authenticate_runs_sasl_on_external() -> None:
    upstream = ScriptedUpstream({"ok": 1.0, "conversationId": 7, "done": True, "payload": b""})
    await authenticate_mongodb_aws(upstream.command, SESSION, role_arn=ROLE)
    assert [(db, next(iter(cmd))) for db, cmd in upstream.commands] == [
        ("$external", "saslStart"),
        ("$external", "saslContinue"),
    ]
    assert upstream.server.state is server_side.AwsState.VERIFYING


@pytest.mark.parametrize(
    "verdict",
    [
        {
            "ok": 0.0,
            "code": 18,
            "codeName": "AuthenticationFailed",
            "errmsg": "Authentication failed.",
        },
        {"ok": 0.0, "code": 11, "errmsg": "UserNotFound"},
    ],
)
async def test_refusal_gives_the_guides_message(verdict: dict[str, Any]) -> None:
    upstream = ScriptedUpstream(verdict)
    with pytest.raises(UpstreamAuthError) as info:
        await authenticate_mongodb_aws(upstream.command, SESSION, role_arn=ROLE)
    assert isinstance(info.value, UpstreamError)
    text = str(info.value)
    assert text.startswith(
        'unable to authenticate using mechanism "MONGODB-AWS": Authentication failed.'
    )
    assert f'IAM role {ROLE} exists as a user in the "$external" database' in text
    assert "use $external;" in text
    assert f'db.createUser( {{ user: "{ROLE}", mechanisms: ["MONGODB-AWS"]' in text
    assert ("server said: UserNotFound" in text) is (verdict["code"] == 11)


async def test_refused_sasl_start() -> None:
    async def command(db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": 0.0,
            "code": 2,
            "errmsg": "Received authentication for mechanism MONGODB-AWS which is not enabled",
        }

    with pytest.raises(UpstreamAuthError, match="not enabled"):
        await authenticate_mongodb_aws(command, SESSION, role_arn=ROLE)


def test_failed_message_without_server_detail() -> None:
    text = authentication_failed_message(ROLE, "Authentication failed.")
    assert "server said" not in text
