"""TOTP enrollment through invites and logins with real pyotp codes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlparse

import pyotp
import pytest
from tests.unit.auth_service.conftest import FakeClock

from wicket.auth import otp
from wicket.auth.passwords import Passwords
from wicket.auth.roles import RoleService
from wicket.auth.store import JsonStore
from wicket.auth.users import LoginFailed, LoginFailure, SecondFactor, UserService
from wicket.backend.sqlite import SQLiteBackend
from wicket.errors import AccessDenied, BadParameter

PASSWORD = "correct horse battery"


def code_at(uri: str, when: datetime) -> str:
    secret = parse_qs(urlparse(uri).query)["secret"][0]
    return pyotp.TOTP(secret).at(when)


@pytest.fixture
def users(
    backend: SQLiteBackend, clock: FakeClock, passwords: Passwords, roles: RoleService
) -> UserService:
    return UserService(
        backend, roles=roles, clock=clock, passwords=passwords, second_factor=SecondFactor.OTP
    )


async def test_enrollment_and_login(
    users: UserService, clock: FakeClock, backend: SQLiteBackend
) -> None:
    await JsonStore(backend).put("/cluster/name", {"name": "example"})
    _, invite = await users.create("alice", roles=["access"], traits={})
    info = await users.lookup_invite(invite.token)
    assert info.otp_required and info.otp_uri is not None
    assert info.otp_uri not in repr(info)
    parsed = urlparse(info.otp_uri)
    assert parsed.scheme == "otpauth" and parsed.netloc == "totp"
    assert unquote(parsed.path) == "/Wicket:alice@example"
    assert parse_qs(parsed.query)["issuer"] == ["Wicket"]
    # A second lookup shows the same secret (the page may be reloaded).
    assert (await users.lookup_invite(invite.token)).otp_uri == info.otp_uri

    with pytest.raises(BadParameter, match=r"one-time code .* is required"):
        await users.complete_invite(invite.token, PASSWORD, None)
    with pytest.raises(AccessDenied, match="invalid one-time code"):
        await users.complete_invite(invite.token, PASSWORD, "000000")
    user = await users.complete_invite(invite.token, PASSWORD, code_at(info.otp_uri, clock.now))
    assert user.otp_enabled and user.has_password

    # The code used for enrollment cannot be replayed for a login.
    with pytest.raises(LoginFailed, match="invalid one-time code"):
        await users.authenticate("alice", PASSWORD, code_at(info.otp_uri, clock.now))
    clock.advance(timedelta(seconds=30))
    code = code_at(info.otp_uri, clock.now)
    assert (await users.authenticate("alice", PASSWORD, code)).name == "alice"
    with pytest.raises(LoginFailed, match="invalid one-time code") as replay:
        await users.authenticate("alice", PASSWORD, code)
    assert replay.value.reason is LoginFailure.BAD_OTP
    # One step of clock skew either way is accepted.
    clock.advance(timedelta(seconds=60))
    ahead = code_at(info.otp_uri, clock.now + timedelta(seconds=30))
    assert (await users.authenticate("alice", PASSWORD, ahead)).otp_enabled


async def test_wrong_or_missing_code_counts_toward_lockout(
    users: UserService, clock: FakeClock
) -> None:
    _, invite = await users.create("alice", roles=["access"], traits={})
    info = await users.lookup_invite(invite.token)
    assert info.otp_uri is not None
    await users.complete_invite(invite.token, PASSWORD, code_at(info.otp_uri, clock.now))
    clock.advance(timedelta(minutes=2))
    with pytest.raises(LoginFailed, match="invalid one-time code"):
        await users.authenticate("alice", PASSWORD, None)
    for _ in range(3):
        with pytest.raises(LoginFailed, match="invalid one-time code"):
            await users.authenticate("alice", PASSWORD, "123456x")
    with pytest.raises(LoginFailed, match="is locked until"):
        await users.authenticate("alice", PASSWORD, code_at(info.otp_uri, clock.now) + "9")
    with pytest.raises(LoginFailed, match="is locked until"):
        await users.authenticate("alice", PASSWORD, code_at(info.otp_uri, clock.now))


async def test_complete_needs_the_enrollment_first(users: UserService) -> None:
    _, invite = await users.create("alice", roles=["access"], traits={})
    with pytest.raises(BadParameter, match="open the invite link first"):
        await users.complete_invite(invite.token, PASSWORD, "123456")


async def test_user_without_otp_when_otp_turned_on(
    backend: SQLiteBackend, clock: FakeClock, passwords: Passwords, roles: RoleService
) -> None:
    plain = UserService(backend, roles=roles, clock=clock, passwords=passwords)
    _, invite = await plain.create("alice", roles=["access"], traits={})
    await plain.complete_invite(invite.token, PASSWORD, None)
    strict = UserService(
        backend, roles=roles, clock=clock, passwords=passwords, second_factor=SecondFactor.OTP
    )
    with pytest.raises(LoginFailed, match="no one-time code enrolled") as caught:
        await strict.authenticate("alice", PASSWORD, None)
    assert caught.value.reason is LoginFailure.OTP_NOT_ENROLLED
    # Wrong password still reads as a plain wrong password.
    with pytest.raises(LoginFailed, match="invalid username or password"):
        await strict.authenticate("alice", "wrong password!!", None)


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(-60, False), (-30, True), (0, True), (30, True), (60, False)],
)
def test_verify_code_window(offset: int, accepted: bool) -> None:
    secret = otp.new_secret()
    now = datetime(2026, 3, 1, 10, 0, 15, tzinfo=UTC)
    code = pyotp.TOTP(secret).at(now + timedelta(seconds=offset))
    assert (otp.verify_code(secret, code, now) is not None) is accepted


def test_verify_code_refuses_used_counters_and_junk() -> None:
    secret = otp.new_secret(lambda n: bytes(range(n)))
    now = datetime(2026, 3, 1, 10, 0, 15, tzinfo=UTC)
    code = pyotp.TOTP(secret).at(now)
    counter = otp.verify_code(secret, code, now)
    assert counter == int(now.timestamp()) // 30
    assert otp.verify_code(secret, code, now, after=counter) is None
    assert otp.verify_code(secret, f" {code[:3]} {code[3:]} ", now) == counter
    for junk in ["", "12345", "1234567", "abcdef", "\uff11\uff12\uff13\uff14\uff15\uff16"]:
        assert otp.verify_code(secret, junk, now) is None


def test_qr_svg_encodes_the_uri() -> None:
    uri = otp.provisioning_uri(otp.new_secret(), "alice@example")
    svg = otp.qr_svg(uri)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")


async def test_one_code_wins_one_concurrent_login(users: UserService, clock: FakeClock) -> None:
    _, invite = await users.create("alice", roles=["access"], traits={})
    info = await users.lookup_invite(invite.token)
    assert info.otp_uri is not None
    await users.complete_invite(invite.token, PASSWORD, code_at(info.otp_uri, clock.now))
    clock.advance(timedelta(seconds=30))
    code = code_at(info.otp_uri, clock.now)
    results = await asyncio.gather(
        users.authenticate("alice", PASSWORD, code),
        users.authenticate("alice", PASSWORD, code),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    [failure] = [r for r in results if isinstance(r, BaseException)]
    assert isinstance(failure, LoginFailed) and failure.reason is LoginFailure.BAD_OTP
