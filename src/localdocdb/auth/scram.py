"""SCRAM-SHA-1 and SCRAM-SHA-256, server side: stored credentials and the conversation.

Auth layer of localdocdb, sans-IO: no sockets, no event loop. A `ScramServer` takes
the client's SASL payloads and returns the server's (RFC 5802 section 5, RFC 7677),
with MongoDB's specifics (MongoDB auth spec, "SCRAM-SHA-1" and "SCRAM-SHA-256"):

- SCRAM-SHA-1 hashes the hex MD5 of ``"user:mongo:password"``, not the password;
- SCRAM-SHA-256 hashes SASLprep(password) (RFC 4013);
- no channel binding (gs2 flag ``n`` or ``y``), no authzid, no extensions.

Credentials keep the salt, the iteration count, StoredKey and ServerKey only
(RFC 5802 section 3) — never the password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from pymongo.saslprep import saslprep

SCRAM_SHA_1 = "SCRAM-SHA-1"
SCRAM_SHA_256 = "SCRAM-SHA-256"
SCRAM_MECHANISMS = (SCRAM_SHA_1, SCRAM_SHA_256)

# MongoDB's defaults (scramIterationCount, scramSHA256IterationCount).
DEFAULT_ITERATIONS = {SCRAM_SHA_1: 10_000, SCRAM_SHA_256: 15_000}
# MongoDB's salt lengths: the digest size minus 4 bytes (16 for SHA-1, 28 for SHA-256).
SALT_LENGTHS = {SCRAM_SHA_1: 16, SCRAM_SHA_256: 28}
_DIGESTS = {SCRAM_SHA_1: "sha1", SCRAM_SHA_256: "sha256"}

MAX_PAYLOAD = 4096  # no legitimate SCRAM message comes near this
MAX_NONCE = 512
MIN_ITERATIONS = 4096  # RFC 7677 section 4, and pymongo refuses fewer
MAX_ITERATIONS = 1_000_000
SERVER_NONCE_BYTES = 24


class ScramError(Exception):
    """The client's SCRAM message is malformed or its proof is wrong (answer: code 18)."""


@dataclass(frozen=True)
class ScramCredential:
    """What the server keeps to verify a SCRAM client: never the password itself."""

    mechanism: str
    iteration_count: int
    salt: bytes
    stored_key: bytes
    server_key: bytes


def mongodb_password_digest(user: str, password: str) -> str:
    """The SCRAM-SHA-1 "password" MongoDB uses: hex MD5 of ``user:mongo:password``."""
    return hashlib.md5(f"{user}:mongo:{password}".encode()).hexdigest()  # noqa: S324


def prepare_password(mechanism: str, user: str, password: str, *, digested: bool = False) -> bytes:
    """The bytes SCRAM's Hi() runs over, per mechanism (`digested`: SHA-1 digest given)."""
    if mechanism == SCRAM_SHA_1:
        return (password if digested else mongodb_password_digest(user, password)).encode()
    if mechanism == SCRAM_SHA_256:
        if digested:
            raise ValueError("SCRAM-SHA-256 requires an undigested password")
        prepared: str = saslprep(password)
        return prepared.encode()
    raise ValueError(f"not a SCRAM mechanism: {mechanism}")


def _hmac(key: bytes, message: bytes, digest: str) -> bytes:
    return hmac.new(key, message, digest).digest()


def make_credential(
    mechanism: str,
    user: str,
    password: str,
    *,
    digested: bool = False,
    salt: bytes | None = None,
    iterations: int | None = None,
) -> ScramCredential:
    """Derive StoredKey and ServerKey for `password` (RFC 5802 section 3)."""
    digest = _DIGESTS[mechanism]
    salt = os.urandom(SALT_LENGTHS[mechanism]) if salt is None else salt
    iterations = DEFAULT_ITERATIONS[mechanism] if iterations is None else iterations
    secret = prepare_password(mechanism, user, password, digested=digested)
    salted = hashlib.pbkdf2_hmac(digest, secret, salt, iterations)
    client_key = _hmac(salted, b"Client Key", digest)
    stored_key = hashlib.new(digest, client_key).digest()
    server_key = _hmac(salted, b"Server Key", digest)
    return ScramCredential(mechanism, iterations, salt, stored_key, server_key)


def credential_matches(credential: ScramCredential, user: str, password: str) -> bool:
    """Whether `password` is the one `credential` was made from (same salt and count)."""
    again = make_credential(
        credential.mechanism,
        user,
        password,
        salt=credential.salt,
        iterations=credential.iteration_count,
    )
    return hmac.compare_digest(again.stored_key, credential.stored_key) and hmac.compare_digest(
        again.server_key, credential.server_key
    )


def decode_sasl_name(value: str) -> str:
    """Undo RFC 5802's saslname escaping (``=2C`` is ``,``, ``=3D`` is ``=``)."""
    out: list[str] = []
    index = 0
    while index < len(value):
        char = value[index]
        if char == "=":
            escape = value[index : index + 3]
            if escape == "=2C":
                out.append(",")
            elif escape == "=3D":
                out.append("=")
            else:
                raise ScramError("invalid escape in SCRAM user name")
            index += 3
            continue
        if char == ",":
            raise ScramError("unescaped ',' in SCRAM user name")
        out.append(char)
        index += 1
    return "".join(out)


def _attributes(message: str) -> list[tuple[str, str]]:
    """Split ``a=1,b=2`` into pairs; every attribute is one letter (RFC 5802 section 5.1)."""
    pairs: list[tuple[str, str]] = []
    for part in message.split(","):
        if len(part) < 2 or part[1] != "=" or not part[0].isalpha():
            raise ScramError("malformed SCRAM attribute")
        pairs.append((part[0], part[2:]))
    return pairs


def _printable_nonce(nonce: str) -> str:
    """Check a nonce is printable ASCII without ',' (RFC 5802 section 7, `printable`)."""
    if not nonce or len(nonce) > MAX_NONCE:
        raise ScramError("SCRAM nonce missing or too long")
    if any(not (0x21 <= ord(c) <= 0x7E) or c == "," for c in nonce):
        raise ScramError("SCRAM nonce has characters outside 'printable'")
    return nonce


def default_server_nonce() -> str:
    """The server's half of the nonce: 24 random bytes, base64 (printable, no ',')."""
    return base64.b64encode(os.urandom(SERVER_NONCE_BYTES)).decode()


class ScramState(Enum):
    """Where a server-side SCRAM conversation is."""

    EXPECT_CLIENT_FIRST = "expect-client-first"
    EXPECT_CLIENT_FINAL = "expect-client-final"
    SERVER_FINAL_SENT = "server-final-sent"  # waiting for the legacy empty exchange
    DONE = "done"
    FAILED = "failed"


CredentialLookup = Callable[[str], "ScramCredential | None"]


class ScramServer:
    """One SCRAM conversation, server side: payload in, payload out, no I/O.

    `lookup(user)` returns the user's stored credential for this mechanism (or None);
    `make_nonce()` the server's half of the nonce (injectable for test vectors).
    After `client_final()` succeeds, `user` is authenticated.
    """

    def __init__(
        self,
        mechanism: str,
        lookup: CredentialLookup,
        make_nonce: Callable[[], str] | None = None,
    ) -> None:
        if mechanism not in _DIGESTS:
            raise ValueError(f"not a SCRAM mechanism: {mechanism}")
        self.mechanism = mechanism
        self.state = ScramState.EXPECT_CLIENT_FIRST
        self.user = ""
        self._lookup = lookup
        self._make_nonce = make_nonce or default_server_nonce
        self._digest = _DIGESTS[mechanism]
        self._credential: ScramCredential | None = None
        self._gs2_header = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""

    @property
    def done(self) -> bool:
        """Whether the conversation finished successfully."""
        return self.state is ScramState.DONE

    def _fail(self, reason: str) -> ScramError:
        self.state = ScramState.FAILED
        return ScramError(reason)

    def client_first(self, payload: bytes) -> bytes:
        """Take client-first-message, answer server-first-message (RFC 5802 section 5.1)."""
        try:
            return self._client_first(payload)
        except ScramError:
            self.state = ScramState.FAILED
            raise

    def client_final(self, payload: bytes) -> bytes:
        """Check the client proof, answer server-final-message (RFC 5802 section 5.1)."""
        try:
            return self._client_final(payload)
        except ScramError:
            self.state = ScramState.FAILED
            raise

    def _client_first(self, payload: bytes) -> bytes:
        if self.state is not ScramState.EXPECT_CLIENT_FIRST:
            raise self._fail("unexpected SCRAM client-first message")
        text = self._decode(payload)
        # gs2-header = gs2-cbind-flag "," [ authzid ] ","
        flag, _, rest = text.partition(",")
        authzid, _, bare = rest.partition(",")
        if flag not in ("n", "y"):
            raise self._fail("SCRAM channel binding is not supported")
        if authzid:
            raise self._fail("SCRAM authzid is not supported")
        attributes = _attributes(bare)
        if len(attributes) < 2 or attributes[0][0] != "n" or attributes[1][0] != "r":
            raise self._fail("SCRAM client-first must start with n= and r=")
        if len(attributes) > 2:
            raise self._fail("SCRAM extensions are not supported")
        self.user = decode_sasl_name(attributes[0][1])
        if not self.user:
            raise self._fail("empty SCRAM user name")
        client_nonce = _printable_nonce(attributes[1][1])
        credential = self._lookup(self.user)
        if credential is None:
            raise self._fail(f"no {self.mechanism} credentials for user {self.user!r}")
        self._credential = credential
        self._gs2_header = f"{flag},,"
        self._client_first_bare = bare
        server_nonce = _printable_nonce(self._make_nonce())
        self._nonce = client_nonce + server_nonce
        salt = base64.b64encode(credential.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={credential.iteration_count}"
        self.state = ScramState.EXPECT_CLIENT_FINAL
        return self._server_first.encode()

    def _client_final(self, payload: bytes) -> bytes:
        if self.state is not ScramState.EXPECT_CLIENT_FINAL or self._credential is None:
            raise self._fail("unexpected SCRAM client-final message")
        text = self._decode(payload)
        attributes = _attributes(text)
        if [key for key, _ in attributes] != ["c", "r", "p"]:
            raise self._fail("SCRAM client-final must be c=, r=, p=")
        channel_binding, nonce, proof_b64 = (value for _, value in attributes)
        expected_binding = base64.b64encode(self._gs2_header.encode()).decode()
        if channel_binding != expected_binding:
            raise self._fail("SCRAM channel binding does not match the gs2 header")
        if not hmac.compare_digest(nonce.encode(), self._nonce.encode()):
            raise self._fail("SCRAM nonce does not match")
        try:
            proof = base64.b64decode(proof_b64, validate=True)
        except binascii.Error:
            raise self._fail("SCRAM proof is not base64") from None
        credential = self._credential
        without_proof = text[: text.rindex(",p=")]
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        client_signature = _hmac(credential.stored_key, auth_message, self._digest)
        if len(proof) != len(client_signature):
            raise self._fail("SCRAM proof has the wrong length")
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
        if not hmac.compare_digest(
            hashlib.new(self._digest, client_key).digest(), credential.stored_key
        ):
            raise self._fail(f"SCRAM proof is wrong for user {self.user!r}")
        server_signature = _hmac(credential.server_key, auth_message, self._digest)
        self.state = ScramState.SERVER_FINAL_SENT
        return b"v=" + base64.b64encode(server_signature)

    def finish(self) -> None:
        """Mark the conversation done (right after server-final, or after the empty exchange)."""
        if self.state is not ScramState.SERVER_FINAL_SENT:
            raise self._fail("SCRAM conversation is not ready to finish")
        self.state = ScramState.DONE

    def _decode(self, payload: bytes) -> str:
        if len(payload) > MAX_PAYLOAD:
            raise self._fail("SCRAM message too long")
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail("SCRAM message is not UTF-8") from None
