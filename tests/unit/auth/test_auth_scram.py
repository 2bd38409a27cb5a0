"""SCRAM server: RFC 5802/7677 test vectors, pymongo's own client math, malformed input."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymongo.auth_shared import _build_credentials_tuple
from pymongo.errors import OperationFailure
from pymongo.saslprep import saslprep
from pymongo.synchronous.auth import _authenticate_scram

from localdocdb.auth.scram import (
    SCRAM_SHA_1,
    SCRAM_SHA_256,
    ScramCredential,
    ScramError,
    ScramServer,
    ScramState,
    credential_matches,
    decode_sasl_name,
    make_credential,
    mongodb_password_digest,
)


def _server(
    mechanism: str, credential: ScramCredential | None, user: str = "user", nonce: str | None = None
) -> ScramServer:
    def lookup(name: str) -> ScramCredential | None:
        return credential if name == user else None

    return ScramServer(mechanism, lookup, make_nonce=(lambda: nonce) if nonce else None)


def test_rfc7677_sha256_vector() -> None:
    # RFC 7677 section 3: user "user", password "pencil".
    credential = make_credential(
        SCRAM_SHA_256,
        "user",
        "pencil",
        salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="),
        iterations=4096,
    )
    server = _server(SCRAM_SHA_256, credential, nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    first = server.client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    assert first == (
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    final = server.client_final(
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    assert final == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    server.finish()
    assert server.done and server.user == "user"


def test_rfc5802_sha1_vector() -> None:
    # RFC 5802 section 5; MongoDB would hash the MD5 digest, so feed "pencil" as the digest.
    credential = make_credential(
        SCRAM_SHA_1,
        "user",
        "pencil",
        digested=True,
        salt=base64.b64decode("QSXCR+Q6sek8bf92"),
        iterations=4096,
    )
    server = _server(SCRAM_SHA_1, credential, nonce="3rfcNHYJY1ZVvWVs7j")
    first = server.client_first(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL")
    assert first == b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
    final = server.client_final(
        b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
    )
    assert final == b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="


def test_wrong_proof_is_refused() -> None:
    credential = make_credential(
        SCRAM_SHA_256,
        "user",
        "pencil",
        salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="),
        iterations=4096,
    )
    server = _server(SCRAM_SHA_256, credential, nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    server.client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    with pytest.raises(ScramError, match="proof is wrong"):
        server.client_final(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7BndVQ="
        )
    assert server.state is ScramState.FAILED


class _PymongoLink:
    """Carries pymongo's real client-side SCRAM commands to a ScramServer."""

    auth_ctx = None

    def __init__(self, server: ScramServer) -> None:
        self.server = server
        self.commands: list[dict[str, Any]] = []

    def command(self, db: str, cmd: Mapping[str, Any]) -> dict[str, Any]:
        self.commands.append(dict(cmd))
        try:
            if "saslStart" in cmd:
                return {
                    "conversationId": 1,
                    "done": False,
                    "payload": self.server.client_first(cmd["payload"]),
                }
            if self.server.state is ScramState.EXPECT_CLIENT_FINAL:
                answer = self.server.client_final(cmd["payload"])
                return {"conversationId": 1, "done": False, "payload": answer}
            self.server.finish()
            return {"conversationId": 1, "done": True, "payload": b""}
        except ScramError as exc:
            raise OperationFailure("Authentication failed.", 18) from exc


def _pymongo_login(mechanism: str, user: str, password: str, stored_password: str) -> _PymongoLink:
    credential = make_credential(mechanism, user, stored_password)
    server = _server(mechanism, credential, user=user)
    link = _PymongoLink(server)
    creds = _build_credentials_tuple(mechanism, "admin", user, password, {}, None)
    _authenticate_scram(creds, link, mechanism)  # type: ignore[arg-type]
    return link


@pytest.mark.parametrize("mechanism", [SCRAM_SHA_1, SCRAM_SHA_256])
@pytest.mark.parametrize("user", ["master", "we,ird=user", "ünïcode"])
def test_pymongo_client_logs_in(mechanism: str, user: str) -> None:
    link = _pymongo_login(mechanism, user, "s3cret\u00a0pw", "s3cret\u00a0pw")
    assert link.server.done and link.server.user == user
    assert link.commands[0]["options"] == {"skipEmptyExchange": True}


@pytest.mark.parametrize("mechanism", [SCRAM_SHA_1, SCRAM_SHA_256])
def test_pymongo_client_with_wrong_password_fails(mechanism: str) -> None:
    with pytest.raises(OperationFailure):
        _pymongo_login(mechanism, "master", "wrong", "right")


def test_sha256_uses_saslprep_and_sha1_uses_md5_digest() -> None:
    # RFC 4013 maps U+00AD (soft hyphen) to nothing: "I\u00adX" and "IX" are one password.
    cred = make_credential(SCRAM_SHA_256, "u", "I\u00adX")
    assert credential_matches(cred, "u", "IX")
    cred1 = make_credential(SCRAM_SHA_1, "u", "I\u00adX")
    assert not credential_matches(cred1, "u", "IX")
    assert mongodb_password_digest("user", "pencil") == "1c33006ec1ffd90f9cadcbcc0e118200"


@pytest.mark.parametrize(
    ("value", "prepared"),
    [("I\u00adX", "IX"), ("user", "user"), ("USER", "USER"), ("\u00aa", "a"), ("\u2168", "IX")],
)
def test_saslprep_rfc4013_examples(value: str, prepared: str) -> None:
    assert saslprep(value) == prepared


@pytest.mark.parametrize("value", ["\u0007", "\u0627\u0031"])
def test_saslprep_rfc4013_prohibited(value: str) -> None:
    with pytest.raises(ValueError):
        make_credential(SCRAM_SHA_256, "u", value)


def test_sasl_name_escapes() -> None:
    assert decode_sasl_name("a=2Cb=3Dc") == "a,b=c"
    for bad in ("a=2", "a=41", "a,b"):
        with pytest.raises(ScramError):
            decode_sasl_name(bad)


@pytest.mark.parametrize(
    "message",
    [
        b"p=tls-unique,,n=user,r=abc",  # channel binding
        b"n,a=admin,n=user,r=abc",  # authzid
        b"n,,n=user,r=abc,m=ext",  # mandatory extension
        b"n,,r=abc,n=user",  # wrong order
        b"n,,n=,r=abc",  # empty user
        b"n,,n=user,r=",  # empty nonce
        b"n,,n=user,r=a,b",  # ',' in nonce position
        b"n,,n=nobody,r=abc",  # unknown user
        b"\xff\xfe",  # not UTF-8
        b"n,,n=user,r=" + b"a" * 5000,  # too long
    ],
)
def test_malformed_client_first(message: bytes) -> None:
    server = _server(SCRAM_SHA_256, make_credential(SCRAM_SHA_256, "user", "pw", iterations=4096))
    with pytest.raises(ScramError):
        server.client_first(message)


def _started(nonce: str = "SERVER") -> ScramServer:
    credential = make_credential(SCRAM_SHA_256, "user", "pw", iterations=4096)
    server = _server(SCRAM_SHA_256, credential, nonce=nonce)
    server.client_first(b"n,,n=user,r=CLIENT")
    return server


@pytest.mark.parametrize(
    "message",
    [
        b"c=biws,r=CLIENTSERVER",  # no proof
        b"c=eSws,r=CLIENTSERVER,p=AAAA",  # channel binding does not match the gs2 header
        b"c=biws,r=CLIENTOTHER,p=AAAA",  # someone else's nonce
        b"c=biws,r=CLIENTSERVER,p=!!!!",  # proof not base64
        b"c=biws,r=CLIENTSERVER,p=AAAA",  # proof of the wrong length
    ],
)
def test_malformed_client_final(message: bytes) -> None:
    server = _started()
    with pytest.raises(ScramError):
        server.client_final(message)


def test_messages_out_of_order_are_refused() -> None:
    server = _started()
    with pytest.raises(ScramError):
        server.client_first(b"n,,n=user,r=CLIENT")
    fresh = _server(SCRAM_SHA_256, None)
    with pytest.raises(ScramError):
        fresh.client_final(b"c=biws,r=x,p=AAAA")
    with pytest.raises(ScramError):
        fresh.finish()


@given(st.binary(max_size=300))
def test_arbitrary_client_first_only_raises_scram_error(data: bytes) -> None:
    credential = make_credential(SCRAM_SHA_1, "user", "pw", iterations=4096, salt=b"0" * 16)
    server = _server(SCRAM_SHA_1, credential)
    try:
        server.client_first(data)
    except ScramError:
        assert server.state is ScramState.FAILED


@given(st.binary(max_size=300))
def test_arbitrary_client_final_only_raises_scram_error(data: bytes) -> None:
    server = _started()
    try:
        server.client_final(data)
    except ScramError:
        assert server.state is ScramState.FAILED
        return
    raise AssertionError("random bytes must never pass as a SCRAM proof")


LookupFactory = Callable[[str], ScramCredential | None]
