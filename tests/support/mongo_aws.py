"""A client-side MONGODB-AWS conversation with knobs to break it, for negative tests.

It signs exactly what the MongoDB auth spec says a driver signs (sts:GetCallerIdentity
with the server nonce and GS2 flag headers) using botocore's SigV4 signer, and lets a
test tamper with the signature, the session token, the date or the nonce.
"""

from __future__ import annotations

import base64
import datetime
import os
from dataclasses import dataclass
from typing import Any

import bson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from pymongo import MongoClient

STS_BODY = "Action=GetCallerIdentity&Version=2011-06-15"


@dataclass(frozen=True)
class Breakage:
    """What to break in the client's proof."""

    tamper_signature: bool = False
    session_token: str | None = None  # send this token instead of the real one
    clock_skew: datetime.timedelta = datetime.timedelta(0)
    other_nonce: bool = False  # sign for a server nonce that is not the server's


def sign_proof(
    access_key: str,
    secret_key: str,
    token: str | None,
    server_nonce: bytes,
    host: str,
    breakage: Breakage = Breakage(),
) -> dict[str, Any]:
    """The saslContinue payload {a, d, t} for `server_nonce` and STS `host`."""
    region = "us-east-1" if host == "sts.amazonaws.com" else host.split(".")[1]
    nonce = os.urandom(64) if breakage.other_nonce else server_nonce
    request = AWSRequest(
        method="POST",
        url=f"https://{host}/",
        data=STS_BODY,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Length": str(len(STS_BODY)),
            "Host": host,
            "X-MongoDB-Server-Nonce": base64.b64encode(nonce).decode(),
            "X-MongoDB-GS2-CB-Flag": "n",
        },
    )
    when = datetime.datetime.now(datetime.UTC) + breakage.clock_skew
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    signer = SigV4Auth(Credentials(access_key, secret_key, token), "sts", region)
    request.context["timestamp"] = stamp
    request.headers["X-Amz-Date"] = stamp
    if token:
        request.headers["X-Amz-Security-Token"] = token
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    signature = signer.signature(string_to_sign, request)
    if breakage.tamper_signature:
        signature = ("0" if signature[0] != "0" else "1") + signature[1:]
    scope = f"{stamp[:8]}/{region}/sts/aws4_request"
    signed_headers = signer.signed_headers(signer.headers_to_sign(request))
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    payload: dict[str, Any] = {"a": authorization, "d": stamp}
    sent_token = breakage.session_token if breakage.session_token is not None else token
    if sent_token:
        payload["t"] = sent_token
    return payload


def aws_conversation(
    client: MongoClient[dict[str, Any]],
    access_key: str,
    secret_key: str,
    token: str | None,
    breakage: Breakage = Breakage(),
) -> dict[str, Any]:
    """Run MONGODB-AWS saslStart/saslContinue on `client` (maxPoolSize=1); return the reply."""
    client_nonce = os.urandom(32)
    start = client["$external"].command(
        "saslStart",
        1,
        mechanism="MONGODB-AWS",
        payload=bson.encode({"r": bson.Binary(client_nonce), "p": 110}),
    )
    server_first = bson.decode(start["payload"])
    server_nonce = bytes(server_first["s"])
    assert server_nonce[:32] == client_nonce
    proof = sign_proof(access_key, secret_key, token, server_nonce, server_first["h"], breakage)
    return client["$external"].command(
        "saslContinue",
        1,
        conversationId=start["conversationId"],
        payload=bson.encode(proof),
    )
