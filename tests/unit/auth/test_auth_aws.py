"""MONGODB-AWS pure parts: payload checks, date and SignedHeaders rules, ARN mapping, STS XML."""

from __future__ import annotations

import base64
import datetime
import os
from typing import Any

import bson
import pytest
from bson.binary import Binary
from hypothesis import given
from hypothesis import strategies as st
from pymongo_auth_aws.auth import (  # type: ignore[import-untyped]
    AwsCredential,
    _aws_auth_header,
)

from localdocdb.auth.aws import (
    STS_BODY,
    AwsAuthError,
    AwsServer,
    AwsState,
    ClientFinal,
    build_sts_request,
    check_client_final,
    parse_caller_identity,
    parse_client_final,
    parse_client_first,
    principal_arn,
    sts_error_code,
    sts_host_for_region,
)

NOW = datetime.datetime(2026, 3, 4, 12, 0, 0, tzinfo=datetime.UTC)
CREDENTIAL = AwsCredential("AKIAEXAMPLE", "secret", "session-token")


def _signed(
    nonce: bytes, host: str = "sts.amazonaws.com", credential: AwsCredential = CREDENTIAL
) -> ClientFinal:
    """A real client-final made by pymongo_auth_aws's signer (botocore SigV4)."""
    document = _aws_auth_header(credential, nonce, host)
    return ClientFinal(document["a"], document["d"], document.get("t"))


def _now_of(final: ClientFinal) -> datetime.datetime:
    return datetime.datetime.strptime(final.amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)


def test_sts_host_per_region() -> None:
    assert sts_host_for_region("us-east-1") == "sts.amazonaws.com"
    assert sts_host_for_region("eu-west-1") == "sts.eu-west-1.amazonaws.com"


def test_client_first_checks() -> None:
    nonce = os.urandom(32)
    assert parse_client_first(bson.encode({"r": Binary(nonce), "p": 110})) == nonce
    bad: list[dict[str, Any]] = [
        {"r": Binary(os.urandom(31)), "p": 110},
        {"r": Binary(os.urandom(33)), "p": 110},
        {"r": "x" * 32, "p": 110},
        {"r": Binary(nonce), "p": 121},  # 'y'
        {"r": Binary(nonce), "p": True},
        {"r": Binary(nonce)},
    ]
    for document in bad:
        with pytest.raises(AwsAuthError):
            parse_client_first(bson.encode(document))
    with pytest.raises(AwsAuthError):
        parse_client_first(b"\x05\x00\x00")


def test_server_first_extends_client_nonce() -> None:
    server = AwsServer("sts.amazonaws.com", random_bytes=lambda n: b"\x01" * n, now=lambda: NOW)
    nonce = os.urandom(32)
    reply = bson.decode(server.client_first(bson.encode({"r": Binary(nonce), "p": 110})))
    assert reply == {"s": nonce + b"\x01" * 32, "h": "sts.amazonaws.com"}
    assert server.state is AwsState.EXPECT_CLIENT_FINAL


def test_real_signature_passes_local_checks() -> None:
    final = _signed(os.urandom(64))
    header = check_client_final(final, now=_now_of(final), sts_host="sts.amazonaws.com")
    assert header.service == "sts" and header.region == "us-east-1"
    assert {
        "host",
        "x-mongodb-server-nonce",
        "x-mongodb-gs2-cb-flag",
        "x-amz-security-token",
    } <= set(header.signed_headers)


@pytest.mark.parametrize("minutes", [-16, 16, 60 * 24])
def test_date_more_than_15_minutes_off_is_refused(minutes: int) -> None:
    final = _signed(os.urandom(64))
    now = _now_of(final) + datetime.timedelta(minutes=minutes)
    with pytest.raises(AwsAuthError, match="15 minutes"):
        check_client_final(final, now=now, sts_host="sts.amazonaws.com")


def test_date_within_15_minutes_is_accepted() -> None:
    final = _signed(os.urandom(64))
    for minutes in (-14, 14):
        check_client_final(
            final,
            now=_now_of(final) + datetime.timedelta(minutes=minutes),
            sts_host="sts.amazonaws.com",
        )


def _replace_signed_headers(final: ClientFinal, signed: str) -> ClientFinal:
    before, _, rest = final.authorization.partition("SignedHeaders=")
    _, _, after = rest.partition(",")
    return ClientFinal(
        f"{before}SignedHeaders={signed},{after}", final.amz_date, final.session_token
    )


@pytest.mark.parametrize(
    ("signed", "missing"),
    [
        (
            "content-length;content-type;host;x-amz-date;x-amz-security-token;x-mongodb-gs2-cb-flag",
            "x-mongodb-server-nonce",
        ),
        (
            "content-length;content-type;host;x-amz-date;x-amz-security-token;x-mongodb-server-nonce",
            "x-mongodb-gs2-cb-flag",
        ),
        (
            "content-length;content-type;x-amz-date;x-amz-security-token;x-mongodb-gs2-cb-flag;x-mongodb-server-nonce",
            "host",
        ),
        (
            "content-length;content-type;host;x-amz-security-token;x-mongodb-gs2-cb-flag;x-mongodb-server-nonce",
            "x-amz-date",
        ),
        (
            "content-length;content-type;host;x-amz-date;x-mongodb-gs2-cb-flag;x-mongodb-server-nonce",
            "x-amz-security-token",
        ),
    ],
)
def test_required_signed_headers(signed: str, missing: str) -> None:
    final = _replace_signed_headers(_signed(os.urandom(64)), signed)
    with pytest.raises(AwsAuthError, match=missing):
        check_client_final(final, now=_now_of(final), sts_host="sts.amazonaws.com")


def test_headers_we_do_not_forward_are_refused() -> None:
    final = _replace_signed_headers(
        _signed(os.urandom(64)),
        "content-length;content-type;host;x-amz-date;x-amz-security-token;x-custom;x-mongodb-gs2-cb-flag;x-mongodb-server-nonce",
    )
    with pytest.raises(AwsAuthError, match="do not forward"):
        check_client_final(final, now=_now_of(final), sts_host="sts.amazonaws.com")


def test_scope_service_and_region_are_checked() -> None:
    final = _signed(os.urandom(64))
    for wrong in ("/us-east-1/s3/aws4_request", "/eu-west-1/sts/aws4_request"):
        forged = ClientFinal(
            final.authorization.replace("/us-east-1/sts/aws4_request", wrong),
            final.amz_date,
            final.session_token,
        )
        with pytest.raises(AwsAuthError):
            check_client_final(forged, now=_now_of(final), sts_host="sts.amazonaws.com")
    regional = _signed(os.urandom(64), host="sts.eu-west-1.amazonaws.com")
    check_client_final(regional, now=_now_of(regional), sts_host="sts.eu-west-1.amazonaws.com")
    with pytest.raises(AwsAuthError, match="region"):
        check_client_final(regional, now=_now_of(regional), sts_host="sts.amazonaws.com")


def test_malformed_authorization_is_refused() -> None:
    for value in ("Bearer x", "AWS4-HMAC-SHA256 Credential=A/20200101/us-east-1/sts/aws4_request"):
        with pytest.raises(AwsAuthError):
            check_client_final(
                ClientFinal(value, "20260304T120000Z", None), now=NOW, sts_host="sts.amazonaws.com"
            )


def test_client_final_payload_limits() -> None:
    good = {"a": "AWS4-HMAC-SHA256 x", "d": "20260304T120000Z"}
    assert parse_client_final(bson.encode(good)).session_token is None
    for bad in (
        {"d": "20260304T120000Z"},
        {"a": "x" * 5000, "d": "20260304T120000Z"},
        {"a": "x", "d": "2026"},
        {"a": "x", "d": "20260304T120000Z", "t": "t" * 9000},
        {"a": "x\r\nX-Evil: 1", "d": "20260304T120000Z"},
        {"a": "x", "d": "20260304T120000Z", "t": 5},
    ):
        with pytest.raises(AwsAuthError):
            parse_client_final(bson.encode(bad))


def test_sts_request_uses_our_nonce_and_host() -> None:
    nonce = os.urandom(64)
    final = _signed(os.urandom(64))
    request = build_sts_request(final, nonce, "sts.amazonaws.com")
    headers = dict(request.headers)
    assert headers["X-MongoDB-Server-Nonce"] == base64.b64encode(nonce).decode()
    assert headers["Host"] == "sts.amazonaws.com"
    assert headers["Content-Length"] == "43" == str(len(STS_BODY))
    assert headers["X-Amz-Security-Token"] == "session-token"
    assert headers["Authorization"] == final.authorization
    assert request.body == b"Action=GetCallerIdentity&Version=2011-06-15"


@pytest.mark.parametrize(
    ("arn", "principal"),
    [
        (
            "arn:aws:sts::123456789012:assumed-role/wicket-docdb-user/session-1",
            "arn:aws:iam::123456789012:role/wicket-docdb-user",
        ),
        ("arn:aws:sts::123456789012:assumed-role/r/a@b.c", "arn:aws:iam::123456789012:role/r"),
        ("arn:aws-cn:sts::123456789012:assumed-role/r/s", "arn:aws-cn:iam::123456789012:role/r"),
        ("arn:aws:iam::123456789012:user/alice", "arn:aws:iam::123456789012:user/alice"),
        ("arn:aws:iam::123456789012:user/path/alice", "arn:aws:iam::123456789012:user/path/alice"),
    ],
)
def test_principal_arn(arn: str, principal: str) -> None:
    assert principal_arn(arn) == principal


@pytest.mark.parametrize(
    "arn", ["arn:aws:sts::123456789012:assumed-role/only", "nonsense", "arn:aws:s3:::bucket"]
)
def test_principal_arn_refuses_malformed(arn: str) -> None:
    with pytest.raises(AwsAuthError):
        principal_arn(arn)


def test_parse_caller_identity() -> None:
    body = (
        b'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        b"<GetCallerIdentityResult><UserId>AROA:s1</UserId><Account>123456789012</Account>"
        b"<Arn>arn:aws:sts::123456789012:assumed-role/r/s1</Arn></GetCallerIdentityResult>"
        b"</GetCallerIdentityResponse>"
    )
    identity = parse_caller_identity(body)
    assert (identity.arn, identity.account, identity.user_id) == (
        "arn:aws:sts::123456789012:assumed-role/r/s1",
        "123456789012",
        "AROA:s1",
    )
    for bad in (
        b"<x/>",
        b"not xml",
        b"<GetCallerIdentityResponse/>",
        b"<a>" + b" " * 70000 + b"</a>",
    ):
        with pytest.raises(AwsAuthError):
            parse_caller_identity(bad)
    error = b"<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code></Error></ErrorResponse>"
    assert sts_error_code(error) == "SignatureDoesNotMatch"
    assert sts_error_code(b"junk") == "unknown"


def test_conversation_order_is_enforced() -> None:
    server = AwsServer("sts.amazonaws.com", now=lambda: NOW)
    with pytest.raises(AwsAuthError):
        server.client_final(bson.encode({"a": "x", "d": "20260304T120000Z"}))
    assert server.state is AwsState.FAILED


@given(st.binary(max_size=200))
def test_arbitrary_payloads_only_raise_aws_auth_error(data: bytes) -> None:
    server = AwsServer("sts.amazonaws.com", now=lambda: NOW)
    try:
        server.client_first(data)
    except AwsAuthError:
        return
    # 1 in 2**many: a random valid {r, p} document
    assert server.state is AwsState.EXPECT_CLIENT_FINAL
