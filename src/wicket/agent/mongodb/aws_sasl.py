"""Agent layer: the client side of SASL MONGODB-AWS, a sans-IO conversation plus one I/O helper.

MongoDB authentication spec, "MONGODB-AWS":

1. client-first payload: BSON ``{r: <32 random bytes>, p: 110}`` (``p`` is the GS2
   channel-binding flag ``'n'``);
2. server-first payload: ``{s: <64-byte server nonce>, h: <STS host>}``; the client
   MUST check that ``s`` is 64 bytes and starts with its ``r``, and that ``h`` is a
   valid host name (1..255 bytes, no empty labels);
3. client-final payload: ``{a: Authorization, d: X-Amz-Date, t?: session token}``, a
   SigV4 signature (service ``sts``, region derived from ``h``) over
   ``POST /`` with body ``Action=GetCallerIdentity&Version=2011-06-15`` and the headers
   Content-Type, Content-Length, Host, X-Amz-Date, X-MongoDB-Server-Nonce (base64 of
   ``s``), X-MongoDB-GS2-CB-Flag (``n``) and X-Amz-Security-Token when there is a token.

The server forwards the signed request to STS and maps the caller
(``assumed-role/ROLE/SESSION``) to the ``$external`` user ``arn:…:role/ROLE``.
`MongoDbAwsConversation` does no I/O; `authenticate_mongodb_aws` drives it over an
upstream connection's ``command`` function.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import Enum
from typing import Any

import bson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from bson.binary import Binary
from bson.errors import BSONError

from wicket.agent.mongodb.iam import AwsCredentials, utc_now

# One class for "the database refused the agent's login", shared with X.509 (upstream.py).
from wicket.agent.mongodb.upstream import UpstreamAuthError
from wicket.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "ConversationState",
    "MongoDbAwsConversation",
    "UpstreamAuthError",
    "authenticate_mongodb_aws",
    "authentication_failed_message",
    "check_sts_host",
    "region_of_sts_host",
    "sign_get_caller_identity",
]

MECHANISM = "MONGODB-AWS"
CLIENT_NONCE_BYTES = 32
SERVER_NONCE_BYTES = 64
GS2_CB_FLAG_N = ord("n")  # 110
STS_BODY = "Action=GetCallerIdentity&Version=2011-06-15"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_HOST_LENGTH = 255
MAX_SERVER_PAYLOAD = 16 * 1024
# saslStart + saslContinue, then at most this many empty saslContinue rounds until done.
MAX_EXTRA_ROUNDS = 2
AUTHENTICATION_FAILED = 18
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")

Clock = Callable[[], datetime]
CommandFunction = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class ConversationState(Enum):
    """Where the client side of one MONGODB-AWS conversation is."""

    START = "start"
    SENT_CLIENT_FIRST = "sent-client-first"
    SENT_CLIENT_FINAL = "sent-client-final"
    FAILED = "failed"


def region_of_sts_host(host: str) -> str:
    """The SigV4 region for an STS host (auth spec, "Region Calculation").

    ``sts.amazonaws.com`` and single-label hosts sign for us-east-1; otherwise the
    second label is the region (``sts.eu-west-1.amazonaws.com``,
    ``sts-fips.us-east-2.amazonaws.com``).
    """
    labels = host.split(".")
    if len(labels) == 1 or host == "sts.amazonaws.com":
        return "us-east-1"
    return labels[1]


def check_sts_host(host: object) -> str:
    """Refuse an ``h`` that is not a valid host name (auth spec: drivers must validate it)."""
    if not isinstance(host, str):
        raise RemoteProtocolError(f"MONGODB-AWS server-first 'h' is not a string: {host!r:.80}")
    if not 0 < len(host) <= MAX_HOST_LENGTH:
        raise RemoteProtocolError(
            f"MONGODB-AWS server-first 'h' must be 1 to {MAX_HOST_LENGTH} bytes, got {len(host)}"
        )
    labels = host.split(".")
    if not all(labels):
        raise RemoteProtocolError(f"MONGODB-AWS STS host {host!r} has an empty label")
    if not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise RemoteProtocolError(f"MONGODB-AWS STS host {host!r} is not a valid host name")
    return host


def sign_get_caller_identity(
    credentials: AwsCredentials, server_nonce: bytes, host: str, when: datetime
) -> dict[str, str]:
    """The client-final fields ``{a, d, t?}``: SigV4 over GetCallerIdentity, signed at `when`."""
    region = region_of_sts_host(host)
    stamp = when.strftime(AMZ_DATE_FORMAT)
    request = AWSRequest(
        method="POST",
        url=f"https://{host}/",
        data=STS_BODY,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Length": str(len(STS_BODY)),
            "Host": host,
            "X-Amz-Date": stamp,
            "X-MongoDB-Server-Nonce": base64.b64encode(server_nonce).decode("ascii"),
            "X-MongoDB-GS2-CB-Flag": "n",
        },
    )
    if credentials.session_token:
        request.headers["X-Amz-Security-Token"] = credentials.session_token
    signer = SigV4Auth(
        Credentials(
            credentials.access_key_id, credentials.secret_access_key, credentials.session_token
        ),
        "sts",
        region,
    )
    # botocore's add_auth reads the wall clock; we sign at the injected time instead.
    request.context["timestamp"] = stamp
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    signed_headers = signer.signed_headers(signer.headers_to_sign(request))
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={signer.scope(request)}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    final = {"a": authorization, "d": stamp}
    if credentials.session_token:
        final["t"] = credentials.session_token
    return final


class MongoDbAwsConversation:
    """One client-side MONGODB-AWS conversation (sans-IO): payload bytes in, bytes out."""

    def __init__(
        self, credentials: AwsCredentials, *, nonce: bytes | None = None, clock: Clock = utc_now
    ) -> None:
        if nonce is None:
            nonce = os.urandom(CLIENT_NONCE_BYTES)
        if len(nonce) != CLIENT_NONCE_BYTES:
            raise LocalProtocolError(f"MONGODB-AWS client nonce must be {CLIENT_NONCE_BYTES} bytes")
        self._credentials = credentials
        self._nonce = bytes(nonce)
        self._clock = clock
        self.state = ConversationState.START

    @property
    def client_nonce(self) -> bytes:
        """The 32 random bytes this conversation sent as ``r``."""
        return self._nonce

    def client_first(self) -> bytes:
        """The saslStart payload ``{r, p}``."""
        if self.state is not ConversationState.START:
            raise LocalProtocolError(f"MONGODB-AWS client-first sent in state {self.state.value}")
        self.state = ConversationState.SENT_CLIENT_FIRST
        return bson.encode({"r": Binary(self._nonce), "p": GS2_CB_FLAG_N})

    def client_final(self, server_first: bytes) -> bytes:
        """The saslContinue payload ``{a, d, t?}`` answering the server's ``{s, h}``."""
        if self.state is not ConversationState.SENT_CLIENT_FIRST:
            raise LocalProtocolError(f"MONGODB-AWS client-final sent in state {self.state.value}")
        self.state = ConversationState.FAILED  # until the server's payload checks out
        if len(server_first) > MAX_SERVER_PAYLOAD:
            raise RemoteProtocolError(
                f"MONGODB-AWS server-first payload is {len(server_first)} bytes "
                f"(limit {MAX_SERVER_PAYLOAD})"
            )
        try:
            document = bson.decode(server_first)
        except (BSONError, ValueError, TypeError, IndexError) as exc:
            raise RemoteProtocolError(
                f"MONGODB-AWS server-first payload is not BSON: {exc}"
            ) from None
        server_nonce = document.get("s")
        if not isinstance(server_nonce, bytes) or len(server_nonce) != SERVER_NONCE_BYTES:
            raise RemoteProtocolError(
                f"MONGODB-AWS server nonce must be {SERVER_NONCE_BYTES} bytes of binary data"
            )
        if not server_nonce.startswith(self._nonce):
            raise RemoteProtocolError("MONGODB-AWS server nonce does not start with our nonce")
        host = check_sts_host(document.get("h"))
        final = sign_get_caller_identity(
            self._credentials, bytes(server_nonce), host, self._clock()
        )
        self.state = ConversationState.SENT_CLIENT_FINAL
        return bson.encode(final)


def authentication_failed_message(role_arn: str, server_message: str = "") -> str:
    """The guide's MONGODB-AWS failure text plus the `$external` user to create."""
    extra = ""
    if server_message and server_message.strip().rstrip(".") != "Authentication failed":
        extra = f" (server said: {server_message[:300]})"
    return (
        f'unable to authenticate using mechanism "{MECHANISM}": Authentication failed.{extra}\n'
        f'Check that the IAM role {role_arn} exists as a user in the "$external" database '
        f"of the DocumentDB cluster, with the {MECHANISM} mechanism. Create it with the "
        "master user (guide step 5):\n"
        "  use $external;\n"
        f'  db.createUser( {{ user: "{role_arn}", mechanisms: ["{MECHANISM}"], '
        'roles: [ { role: "root", db: "admin" }, ] } );'
    )


def _refused(reply: dict[str, Any]) -> bool:
    return reply.get("ok") != 1 or reply.get("code") == AUTHENTICATION_FAILED


def _payload_of(reply: dict[str, Any]) -> bytes:
    payload = reply.get("payload")
    if not isinstance(payload, bytes):
        raise RemoteProtocolError("MONGODB-AWS: the server's SASL reply has no binary payload")
    return bytes(payload)


async def authenticate_mongodb_aws(
    command: CommandFunction, credentials: AwsCredentials, *, role_arn: str
) -> None:
    """Log in upstream as `credentials` with SASL MONGODB-AWS on ``$external``.

    `command(db, cmd)` runs one command on the upstream connection (adding ``$db``)
    and returns the reply document.
    """
    conversation = MongoDbAwsConversation(credentials)
    reply = await command(
        "$external",
        {"saslStart": 1, "mechanism": MECHANISM, "payload": Binary(conversation.client_first())},
    )
    if _refused(reply):
        raise UpstreamAuthError(authentication_failed_message(role_arn, str(reply.get("errmsg"))))
    final = conversation.client_final(_payload_of(reply))
    conversation_id = reply.get("conversationId")
    reply = await command(
        "$external",
        {"saslContinue": 1, "conversationId": conversation_id, "payload": Binary(final)},
    )
    for _ in range(MAX_EXTRA_ROUNDS):
        if _refused(reply):
            raise UpstreamAuthError(
                authentication_failed_message(role_arn, str(reply.get("errmsg", "")))
            )
        if reply.get("done") is True:
            return
        reply = await command(
            "$external",
            {"saslContinue": 1, "conversationId": conversation_id, "payload": Binary(b"")},
        )
    raise RemoteProtocolError("MONGODB-AWS: the server did not finish the conversation")
