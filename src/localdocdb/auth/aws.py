"""MONGODB-AWS, server side, verified the way Amazon DocumentDB does it: by asking STS.

Auth layer of localdocdb. The conversation (MongoDB auth spec, "MONGODB-AWS"):

1. client-first: BSON ``{r: <32-byte client nonce>, p: 110}`` (``p`` is the gs2
   channel-binding flag ``'n'``); server-first: ``{s: client nonce + 32 random bytes,
   h: STS host}``.
2. client-final: ``{a: Authorization header, d: X-Amz-Date, t?: session token}`` — a
   SigV4 signature over ``POST / Action=GetCallerIdentity&Version=2011-06-15`` whose
   signed headers include our nonce (``X-MongoDB-Server-Nonce``, base64) and the gs2
   flag (``X-MongoDB-GS2-CB-Flag: n``).

The server cannot check the signature (it has no secret key): it rebuilds the signed
request with *its own* nonce and forwards it to STS. STS answers with the caller's ARN
only if the signature is right, so a proof made for another nonce fails there. STS
does not know our freshness rule, so the date is checked here (15 minutes).

Everything but `call_sts` is pure; `call_sts` is the one function doing I/O.
"""

from __future__ import annotations

import base64
import datetime
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any
from xml.etree import ElementTree

import aiohttp
import bson
from bson.binary import Binary
from bson.errors import BSONError
from yarl import URL

CLIENT_NONCE_BYTES = 32
SERVER_NONCE_BYTES = 64
GS2_CB_FLAG_N = ord("n")  # 110
STS_BODY = b"Action=GetCallerIdentity&Version=2011-06-15"
MAX_CLOCK_SKEW = datetime.timedelta(minutes=15)
STS_TIMEOUT_SECONDS = 10.0
MAX_PAYLOAD = 16 * 1024
MAX_AUTHORIZATION = 4096
MAX_SESSION_TOKEN = 8192
MAX_STS_RESPONSE = 64 * 1024
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

# Headers the client must have signed (auth spec; DocumentDB refuses proofs without them).
REQUIRED_SIGNED_HEADERS = frozenset(
    {"host", "x-amz-date", "x-mongodb-server-nonce", "x-mongodb-gs2-cb-flag"}
)
# Headers we send to STS; a signature over any other header could not verify.
FORWARDED_HEADERS = frozenset(
    {*REQUIRED_SIGNED_HEADERS, "content-type", "content-length", "x-amz-security-token"}
)

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 "
    r"Credential=(?P<key>[A-Za-z0-9]{1,128})/(?P<date>[0-9]{8})/(?P<region>[a-z0-9-]{1,64})"
    r"/(?P<service>[a-z0-9-]{1,64})/aws4_request, ?"
    r"SignedHeaders=(?P<signed>[a-z0-9;-]{1,1024}), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):(?P<service>iam|sts)::(?P<account>[0-9]{12}):(?P<resource>.+)"
)


class AwsAuthError(Exception):
    """Why a MONGODB-AWS login was refused (logged; the client only sees code 18)."""


def sts_host_for_region(region: str) -> str:
    """The STS host the server names in `h`: global for us-east-1, regional otherwise."""
    return "sts.amazonaws.com" if region == "us-east-1" else f"sts.{region}.amazonaws.com"


def region_of_sts_host(host: str) -> str:
    """The signing region a client derives from `h` (auth spec: "Region Calculation")."""
    parts = host.split(".")
    if len(parts) == 1 or host == "sts.amazonaws.com":
        return "us-east-1"
    return parts[1]


def _decode_bson(payload: bytes, what: str) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD:
        raise AwsAuthError(f"{what} is too long ({len(payload)} bytes)")
    try:
        document = bson.decode(payload)
    except (BSONError, ValueError, TypeError) as exc:
        raise AwsAuthError(f"{what} is not a BSON document: {exc}") from None
    return document


def parse_client_first(payload: bytes) -> bytes:
    """Check client-first ``{r, p}`` and return the 32-byte client nonce."""
    document = _decode_bson(payload, "MONGODB-AWS client-first payload")
    nonce = document.get("r")
    flag = document.get("p")
    if not isinstance(nonce, bytes) or len(nonce) != CLIENT_NONCE_BYTES:
        raise AwsAuthError("MONGODB-AWS client nonce must be 32 bytes of binary data")
    if isinstance(flag, bool) or not isinstance(flag, int) or flag != GS2_CB_FLAG_N:
        raise AwsAuthError(f"MONGODB-AWS gs2 channel-binding flag must be 110 ('n'), got {flag!r}")
    return bytes(nonce)


def server_first_payload(server_nonce: bytes, sts_host: str) -> bytes:
    """The server-first BSON payload ``{s: server nonce, h: STS host}``."""
    return bson.encode({"s": Binary(server_nonce), "h": sts_host})


@dataclass(frozen=True)
class ClientFinal:
    """The client's signed proof: Authorization header, X-Amz-Date, optional token."""

    authorization: str
    amz_date: str
    session_token: str | None


def parse_client_final(payload: bytes) -> ClientFinal:
    """Read client-final ``{a, d, t?}`` with every length bounded."""
    document = _decode_bson(payload, "MONGODB-AWS client-final payload")
    authorization, amz_date, token = document.get("a"), document.get("d"), document.get("t")
    if not isinstance(authorization, str) or not 0 < len(authorization) <= MAX_AUTHORIZATION:
        raise AwsAuthError("MONGODB-AWS payload field 'a' (Authorization) missing or too long")
    if not isinstance(amz_date, str) or len(amz_date) != len("20200101T000000Z"):
        raise AwsAuthError("MONGODB-AWS payload field 'd' (X-Amz-Date) missing or malformed")
    if token is not None and (
        not isinstance(token, str) or not 0 < len(token) <= MAX_SESSION_TOKEN
    ):
        raise AwsAuthError("MONGODB-AWS payload field 't' (session token) malformed or too long")
    for value in (authorization, amz_date, token or ""):
        if any(ord(c) < 0x20 or ord(c) > 0x7E for c in value):
            raise AwsAuthError("MONGODB-AWS payload holds characters not allowed in HTTP headers")
    return ClientFinal(authorization, amz_date, token)


@dataclass(frozen=True)
class AuthorizationHeader:
    """The parts of a SigV4 Authorization header the server checks."""

    access_key_id: str
    scope_date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> AuthorizationHeader:
    """Parse ``AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…``."""
    match = _AUTHORIZATION.fullmatch(value)
    if match is None:
        raise AwsAuthError("Authorization is not an AWS4-HMAC-SHA256 header")
    return AuthorizationHeader(
        access_key_id=match["key"],
        scope_date=match["date"],
        region=match["region"],
        service=match["service"],
        signed_headers=tuple(match["signed"].split(";")),
        signature=match["signature"],
    )


def parse_amz_date(value: str) -> datetime.datetime:
    """X-Amz-Date (``YYYYMMDDTHHMMSSZ``) as an aware UTC datetime."""
    try:
        parsed = datetime.datetime.strptime(value, AMZ_DATE_FORMAT)
    except ValueError:
        raise AwsAuthError(f"X-Amz-Date {value!r} is not YYYYMMDDTHHMMSSZ") from None
    return parsed.replace(tzinfo=datetime.UTC)


def check_client_final(
    final: ClientFinal, *, now: datetime.datetime, sts_host: str
) -> AuthorizationHeader:
    """The checks STS cannot make for us: freshness, required signed headers, scope."""
    header = parse_authorization(final.authorization)
    signed_at = parse_amz_date(final.amz_date)
    if abs(now - signed_at) > MAX_CLOCK_SKEW:
        raise AwsAuthError(
            f"X-Amz-Date {final.amz_date} is more than 15 minutes from the server's clock"
        )
    if header.scope_date != final.amz_date[:8]:
        raise AwsAuthError("the credential scope date does not match X-Amz-Date")
    if header.service != "sts":
        raise AwsAuthError(f"the request was signed for service {header.service!r}, not 'sts'")
    expected_region = region_of_sts_host(sts_host)
    if header.region != expected_region:
        raise AwsAuthError(
            f"the request was signed for region {header.region!r}, not {expected_region!r}"
        )
    signed = set(header.signed_headers)
    missing = REQUIRED_SIGNED_HEADERS - signed
    if final.session_token is not None:
        missing |= {"x-amz-security-token"} - signed
    if missing:
        raise AwsAuthError(f"SignedHeaders lacks {', '.join(sorted(missing))}")
    unknown = signed - FORWARDED_HEADERS
    if unknown:
        raise AwsAuthError(f"SignedHeaders names headers we do not forward: {sorted(unknown)}")
    return header


@dataclass(frozen=True)
class StsRequest:
    """The GetCallerIdentity request we forward: headers exactly as the client signed them."""

    headers: tuple[tuple[str, str], ...]
    body: bytes = STS_BODY


def build_sts_request(final: ClientFinal, server_nonce: bytes, sts_host: str) -> StsRequest:
    """Rebuild the signed request with OUR nonce and host, so only a proof for them verifies."""
    headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Content-Length", str(len(STS_BODY))),
        ("Host", sts_host),
        ("X-Amz-Date", final.amz_date),
        ("X-MongoDB-Server-Nonce", base64.b64encode(server_nonce).decode()),
        ("X-MongoDB-GS2-CB-Flag", "n"),
    ]
    if final.session_token is not None:
        headers.append(("X-Amz-Security-Token", final.session_token))
    headers.append(("Authorization", final.authorization))
    return StsRequest(tuple(headers))


@dataclass(frozen=True)
class CallerIdentity:
    """What STS's GetCallerIdentity says about the signer."""

    arn: str
    account: str
    user_id: str


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_caller_identity(body: bytes) -> CallerIdentity:
    """Read Arn, Account and UserId from a GetCallerIdentityResponse (size-capped)."""
    if len(body) > MAX_STS_RESPONSE:
        raise AwsAuthError("STS response too large")
    try:
        root = ElementTree.fromstring(body)  # noqa: S314 - size-capped; expat refuses entity bombs
    except ElementTree.ParseError as exc:
        raise AwsAuthError(f"STS response is not XML: {exc}") from None
    if _local_name(root.tag) != "GetCallerIdentityResponse":
        raise AwsAuthError(f"STS answered {_local_name(root.tag)}, not GetCallerIdentityResponse")
    fields: dict[str, str] = {}
    for element in root.iter():
        name = _local_name(element.tag)
        if name in ("Arn", "Account", "UserId") and element.text:
            fields.setdefault(name, element.text.strip())
    if "Arn" not in fields:
        raise AwsAuthError("STS response has no Arn")
    return CallerIdentity(fields["Arn"], fields.get("Account", ""), fields.get("UserId", ""))


def sts_error_code(body: bytes) -> str:
    """The `<Code>` of an STS error response, for the log ("unknown" when absent)."""
    try:
        root = ElementTree.fromstring(body[:MAX_STS_RESPONSE])  # noqa: S314 - size-capped
    except ElementTree.ParseError:
        return "unknown"
    for element in root.iter():
        if _local_name(element.tag) == "Code" and element.text:
            return element.text.strip()[:200]
    return "unknown"


def principal_arn(arn: str) -> str:
    """The `$external` user name for a caller ARN.

    ``arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`` becomes ``arn:aws:iam::ACCT:role/ROLE``
    (an assumed-role ARN carries the role's name, never its path); IAM users and
    anything else stay as STS wrote them.
    """
    match = _ARN.fullmatch(arn)
    if match is None:
        raise AwsAuthError(f"STS returned an ARN we cannot read: {arn!r}")
    resource = match["resource"]
    if match["service"] == "sts" and resource.startswith("assumed-role/"):
        role, slash, session = resource[len("assumed-role/") :].rpartition("/")
        if not role or not slash or not session:
            raise AwsAuthError(f"malformed assumed-role ARN: {arn!r}")
        return f"arn:{match['partition']}:iam::{match['account']}:role/{role}"
    return arn


async def call_sts(
    endpoint: str, request: StsRequest, *, timeout_seconds: float = STS_TIMEOUT_SECONDS
) -> CallerIdentity:
    """POST the signed request to `endpoint` and return who STS says signed it."""
    url = URL(endpoint).with_path("/").with_query(None)
    if url.scheme not in ("http", "https") or not url.host:
        raise AwsAuthError(f"STS endpoint {endpoint!r} is not an http(s) URL")
    client_timeout = aiohttp.ClientTimeout(total=timeout_seconds)
    try:
        async with (
            aiohttp.ClientSession(timeout=client_timeout, auto_decompress=False) as session,
            session.post(
                url,
                data=request.body,
                headers=list(request.headers),
                allow_redirects=False,
                skip_auto_headers=("Content-Type",),
            ) as response,
        ):
            body = bytearray()
            async for chunk in response.content.iter_chunked(16 * 1024):
                body += chunk
                if len(body) > MAX_STS_RESPONSE:
                    raise AwsAuthError("STS response too large")
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise AwsAuthError(f"STS at {url} could not be reached: {exc!r}") from None
    if status != 200:
        raise AwsAuthError(f"STS refused the proof: HTTP {status} {sts_error_code(bytes(body))}")
    return parse_caller_identity(bytes(body))


class AwsState(Enum):
    """Where a server-side MONGODB-AWS conversation is."""

    EXPECT_CLIENT_FIRST = "expect-client-first"
    EXPECT_CLIENT_FINAL = "expect-client-final"
    VERIFYING = "verifying"  # the proof is with STS
    DONE = "done"
    FAILED = "failed"


def utc_now() -> datetime.datetime:
    """The current time, aware, in UTC (the default clock)."""
    return datetime.datetime.now(datetime.UTC)


class AwsServer:
    """One MONGODB-AWS conversation, server side; `verify()` is its only I/O step."""

    def __init__(
        self,
        sts_host: str,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
        now: Callable[[], datetime.datetime] = utc_now,
    ) -> None:
        self.sts_host = sts_host
        self.state = AwsState.EXPECT_CLIENT_FIRST
        self.server_nonce = b""
        self._random_bytes = random_bytes
        self._now = now

    def _fail(self, error: AwsAuthError) -> AwsAuthError:
        self.state = AwsState.FAILED
        return error

    def client_first(self, payload: bytes) -> bytes:
        """Take ``{r, p}``, answer ``{s, h}`` with our 64-byte nonce."""
        if self.state is not AwsState.EXPECT_CLIENT_FIRST:
            raise self._fail(AwsAuthError("unexpected MONGODB-AWS client-first message"))
        try:
            client_nonce = parse_client_first(payload)
        except AwsAuthError as exc:
            raise self._fail(exc) from None
        extra = self._random_bytes(SERVER_NONCE_BYTES - CLIENT_NONCE_BYTES)
        self.server_nonce = client_nonce + extra
        self.state = AwsState.EXPECT_CLIENT_FINAL
        return server_first_payload(self.server_nonce, self.sts_host)

    def client_final(self, payload: bytes) -> StsRequest:
        """Check the proof locally and return the request to forward to STS."""
        if self.state is not AwsState.EXPECT_CLIENT_FINAL:
            raise self._fail(AwsAuthError("unexpected MONGODB-AWS client-final message"))
        try:
            final = parse_client_final(payload)
            check_client_final(final, now=self._now(), sts_host=self.sts_host)
        except AwsAuthError as exc:
            raise self._fail(exc) from None
        self.state = AwsState.VERIFYING
        return build_sts_request(final, self.server_nonce, self.sts_host)

    async def verify(self, request: StsRequest, sts_endpoint: str) -> str:
        """Forward the proof to STS; return the `$external` user name it proves."""
        if self.state is not AwsState.VERIFYING:
            raise self._fail(AwsAuthError("MONGODB-AWS proof verified out of order"))
        try:
            identity = await call_sts(sts_endpoint, request)
            principal = principal_arn(identity.arn)
        except AwsAuthError as exc:
            raise self._fail(exc) from None
        self.state = AwsState.DONE
        return principal
