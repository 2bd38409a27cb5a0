"""What the web side lets reach an auth API path or body (wicket.proxy.inputs)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from wicket.auth.invites import INVITE_TOKEN_BYTES
from wicket.errors import BadParameter, NotFound
from wicket.proxy.inputs import auth_path, invite_token, login_body

GOOD = secrets.token_bytes(INVITE_TOKEN_BYTES).hex()


def test_tokens_as_invites_make_them_pass() -> None:
    assert invite_token(GOOD) == GOOD
    assert auth_path("/v1/invites", invite_token(GOOD)) == f"/v1/invites/{GOOD}"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "..",
        "../users",
        "..%2fusers",
        "%2e%2e%2fusers",
        "../../v1/users",
        GOOD[:-1],
        GOOD + "0",
        GOOD.upper(),
        "g" * 64,
        "a" * 5000,
        GOOD[:-1] + "\n",
        GOOD + "\n",
        GOOD[:32] + "/" + GOOD[33:],
        GOOD[:-1] + "\u0660",  # a non-ASCII digit
    ],
)
def test_anything_else_is_not_found(token: str) -> None:
    with pytest.raises(NotFound, match="invite link is not valid"):
        invite_token(token)


def test_auth_path_keeps_each_segment_one_segment() -> None:
    assert auth_path("/v1/x", "../users", "a b?c#d") == "/v1/x/..%2Fusers/a%20b%3Fc%23d"


def login(**fields: Any) -> dict[str, Any]:
    return {"user": "alice", "password": "pw", "public_key_pem": "PEM", **fields}


def test_login_body_keeps_known_fields_only() -> None:
    body = login(otp="123456", ttl_seconds=60, admin=True, user_agent="x")
    assert login_body(body) == login(otp="123456", ttl_seconds=60)
    assert login_body(login(password="")) == login(password="")


@pytest.mark.parametrize(
    "body",
    [
        {"password": "pw", "public_key_pem": "PEM"},
        login(user=["alice"]),
        login(user=""),
        login(user="a" * 300),
        login(password=None),
        login(password=5),
        login(otp=123456),
        login(public_key_pem={"pem": 1}),
        login(ttl_seconds="60"),
        login(ttl_seconds=True),
        login(ttl_seconds=-1),
    ],
)
def test_malformed_login_bodies_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(BadParameter):
        login_body(body)
