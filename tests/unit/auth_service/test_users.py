"""Users, invites, password logins and lockout against a real SQLiteBackend."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from tests.unit.auth_service.conftest import FakeClock

from wicket.auth.passwords import Passwords
from wicket.auth.roles import Role, RoleMetadata, RoleService
from wicket.auth.users import (
    LoginFailed,
    LoginFailure,
    LoginLocked,
    UserService,
)
from wicket.backend.sqlite import SQLiteBackend
from wicket.errors import AccessDenied, AlreadyExists, BadParameter, NotFound

PASSWORD = "correct horse battery"


@pytest.fixture
def users(
    backend: SQLiteBackend, clock: FakeClock, passwords: Passwords, roles: RoleService
) -> UserService:
    return UserService(backend, roles=roles, clock=clock, passwords=passwords)


async def enrolled(users: UserService, name: str = "alice") -> None:
    _, invite = await users.create(
        name, roles=["access"], traits={"db_users": ["app"], "db_names": ["test"]}
    )
    await users.complete_invite(invite.token, PASSWORD, None)


async def test_create_get_list_update_delete(users: UserService, clock: FakeClock) -> None:
    user, invite = await users.create(
        "alice", roles=["access"], traits={"db_users": ["app", "app"], "db_names": ["*"]}
    )
    assert user.name == "alice"
    assert user.roles == ("access",)
    assert user.traits == {"db_users": ("app",), "db_names": ("*",)}
    assert user.created == clock.now
    assert not user.has_password and not user.otp_enabled
    assert invite.user == "alice"
    assert invite.expires == clock.now + timedelta(hours=1)
    assert len(invite.token) == 64

    assert await users.get("alice") == user
    await users.create("bob", roles=["editor"], traits={})
    assert [u.name for u in await users.list()] == ["alice", "bob"]

    updated = await users.update("alice", traits={"db_names": ["test"], "db_users": []})
    assert updated.traits == {"db_names": ("test",)}
    assert updated.roles == ("access",)
    updated = await users.update("alice", roles=["access", "auditor"])
    assert updated.roles == ("access", "auditor")
    assert updated.traits == {"db_names": ("test",)}

    await users.delete("alice")
    with pytest.raises(NotFound, match='user "alice" not found'):
        await users.get("alice")
    with pytest.raises(NotFound):
        await users.delete("alice")
    with pytest.raises(NotFound, match="invite not found"):
        await users.lookup_invite(invite.token)


async def test_create_refuses_bad_input(users: UserService) -> None:
    await users.create("alice", roles=["access"], traits={})
    with pytest.raises(AlreadyExists, match='user "alice" already exists'):
        await users.create("alice", roles=["access"], traits={})
    with pytest.raises(NotFound, match='role "nope" not found'):
        await users.create("carol", roles=["nope"], traits={})
    with pytest.raises(NotFound, match='role "nope" not found'):
        await users.update("alice", roles=["nope"])
    for bad in ["", "-alice", "a/b", "x" * 65, "al ice", "ünï"]:
        with pytest.raises(BadParameter, match="invalid user name"):
            await users.create(bad, roles=["access"], traits={})
    with pytest.raises(BadParameter, match="invalid trait name"):
        await users.create("dave", roles=["access"], traits={"bad trait": ["x"]})
    with pytest.raises(BadParameter, match="must not contain"):
        await users.create("dave", roles=["access"], traits={"db_users": ["{{internal.x}}"]})
    with pytest.raises(BadParameter, match="list of strings"):
        await users.create("dave", roles=["access"], traits={"db_users": "app"})


async def test_custom_role_must_exist_then_works(users: UserService, roles: RoleService) -> None:
    await roles.upsert(Role(metadata=RoleMetadata(name="dev")))
    user, _ = await users.create("erin@example.com", roles=["dev"], traits={})
    assert user.roles == ("dev",)


async def test_invite_sets_password_and_is_single_use(users: UserService) -> None:
    _, invite = await users.create("alice", roles=["access"], traits={})
    info = await users.lookup_invite(invite.token)
    assert info.user == "alice" and not info.otp_required and info.otp_uri is None
    with pytest.raises(BadParameter, match="at least 12 characters"):
        await users.complete_invite(invite.token, "short", None)
    user = await users.complete_invite(invite.token, PASSWORD, None)
    assert user.has_password
    with pytest.raises(NotFound, match="invite not found"):
        await users.complete_invite(invite.token, PASSWORD, None)
    assert (await users.authenticate("alice", PASSWORD, None)).name == "alice"


async def test_invite_expires_after_one_hour(users: UserService, clock: FakeClock) -> None:
    _, invite = await users.create("alice", roles=["access"], traits={})
    clock.advance(timedelta(minutes=59))
    assert (await users.lookup_invite(invite.token)).user == "alice"
    clock.advance(timedelta(minutes=1))
    with pytest.raises(NotFound, match="invite"):
        await users.complete_invite(invite.token, PASSWORD, None)
    assert not (await users.get("alice")).has_password


async def test_wrong_password_and_unknown_user_get_the_same_message(users: UserService) -> None:
    await enrolled(users)
    with pytest.raises(LoginFailed) as wrong:
        await users.authenticate("alice", "not the password!", None)
    with pytest.raises(LoginFailed) as unknown:
        await users.authenticate("mallory", PASSWORD, None)
    with pytest.raises(LoginFailed) as malformed:
        await users.authenticate("../etc", PASSWORD, None)
    assert str(wrong.value) == str(unknown.value) == str(malformed.value)
    assert str(wrong.value) == "invalid username or password"
    assert wrong.value.reason is LoginFailure.BAD_PASSWORD and wrong.value.failures == 1
    assert unknown.value.reason is LoginFailure.UNKNOWN_USER
    assert isinstance(wrong.value, AccessDenied)


async def test_user_without_password_cannot_log_in(users: UserService) -> None:
    await users.create("alice", roles=["access"], traits={})
    with pytest.raises(LoginFailed, match="invalid username or password") as caught:
        await users.authenticate("alice", "", None)
    assert caught.value.reason is LoginFailure.NO_PASSWORD


async def test_lockout_after_repeated_failures(users: UserService, clock: FakeClock) -> None:
    await enrolled(users)
    for attempt in range(1, 5):
        with pytest.raises(LoginFailed) as caught:
            await users.authenticate("alice", "wrong password!!", None)
        assert not isinstance(caught.value, LoginLocked)
        assert caught.value.failures == attempt
    with pytest.raises(LoginLocked) as locked:
        await users.authenticate("alice", "wrong password!!", None)
    assert locked.value.just_locked
    assert locked.value.locked_until == clock.now + timedelta(minutes=15)
    assert str(locked.value) == (
        "user alice is locked until 10:42:00 UTC after 5 failed login attempts; "
        "ask an administrator to run `wctl users reset alice`"
    )
    # The right password is still refused while locked.
    clock.advance(timedelta(minutes=14, seconds=59))
    with pytest.raises(LoginLocked) as still:
        await users.authenticate("alice", PASSWORD, None)
    assert not still.value.just_locked
    # After the lockout window the right password works and clears the count.
    clock.advance(timedelta(seconds=1))
    assert (await users.authenticate("alice", PASSWORD, None)).name == "alice"
    with pytest.raises(LoginFailed) as fresh:
        await users.authenticate("alice", "wrong password!!", None)
    assert fresh.value.failures == 1


async def test_success_clears_failures_and_window_expires(
    users: UserService, clock: FakeClock
) -> None:
    await enrolled(users)
    for _ in range(4):
        with pytest.raises(LoginFailed):
            await users.authenticate("alice", "wrong password!!", None)
    await users.authenticate("alice", PASSWORD, None)
    for _ in range(4):
        with pytest.raises(LoginFailed):
            await users.authenticate("alice", "wrong password!!", None)
    clock.advance(timedelta(minutes=15))
    with pytest.raises(LoginFailed) as caught:
        await users.authenticate("alice", "wrong password!!", None)
    assert caught.value.failures == 1


async def test_unknown_users_are_locked_too(users: UserService) -> None:
    for _ in range(4):
        with pytest.raises(LoginFailed):
            await users.authenticate("ghost", PASSWORD, None)
    with pytest.raises(LoginLocked, match="user ghost is locked"):
        await users.authenticate("ghost", PASSWORD, None)


async def test_reset_clears_password_lockout_and_old_invites(users: UserService) -> None:
    _, first_invite = await users.create("alice", roles=["access"], traits={})
    await users.complete_invite(first_invite.token, PASSWORD, None)
    for _ in range(5):
        with pytest.raises(LoginFailed):
            await users.authenticate("alice", "wrong password!!", None)
    invite = await users.reset("alice")
    assert not (await users.get("alice")).has_password
    with pytest.raises(LoginFailed, match="invalid username or password"):
        await users.authenticate("alice", PASSWORD, None)
    second = await users.reset("alice")
    with pytest.raises(NotFound):
        await users.lookup_invite(invite.token)
    await users.complete_invite(second.token, "a brand new password", None)
    assert (await users.authenticate("alice", "a brand new password", None)).has_password


async def test_unlock_keeps_password(users: UserService) -> None:
    await enrolled(users)
    for _ in range(5):
        with pytest.raises(LoginFailed):
            await users.authenticate("alice", "wrong password!!", None)
    with pytest.raises(LoginLocked):
        await users.authenticate("alice", PASSWORD, None)
    await users.unlock("alice")
    assert (await users.authenticate("alice", PASSWORD, None)).name == "alice"


async def test_rehash_when_parameters_change(
    backend: SQLiteBackend, clock: FakeClock, roles: RoleService, passwords: Passwords
) -> None:
    users = UserService(backend, roles=roles, clock=clock, passwords=passwords)
    await enrolled(users)
    before = await backend.get("/users/alice")
    assert before is not None
    assert "t=1" in json.loads(before.value)["password_hash"]
    stronger = Passwords(PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    upgraded = UserService(backend, roles=roles, clock=clock, passwords=stronger)
    await upgraded.authenticate("alice", PASSWORD, None)
    after = await backend.get("/users/alice")
    assert after is not None
    new_hash = json.loads(after.value)["password_hash"]
    assert new_hash.startswith("$argon2id$") and "m=2048,t=2" in new_hash
    assert not stronger.needs_rehash(new_hash)
    await upgraded.authenticate("alice", PASSWORD, None)


async def test_secrets_never_leave_the_user(users: UserService, backend: SQLiteBackend) -> None:
    _, invite = await users.create("alice", roles=["access"], traits={})
    assert invite.token not in repr(invite)
    await users.complete_invite(invite.token, PASSWORD, None)
    stored = await backend.get("/users/alice")
    assert stored is not None
    password_hash = json.loads(stored.value)["password_hash"]
    assert password_hash.startswith("$argon2id$")
    user = await users.get("alice")
    listed = await users.list()
    outputs = [
        repr(user),
        str(user),
        repr(listed),
        json.dumps(user.to_public_dict()),
        repr(await users.authenticate("alice", PASSWORD, None)),
    ]
    for output in outputs:
        assert "argon2" not in output
        assert password_hash not in output
        assert PASSWORD not in output
    assert set(user.to_public_dict()) == {
        "name",
        "roles",
        "traits",
        "created",
        "has_password",
        "otp_enabled",
    }
    # The invite is stored by hash only.
    items = await backend.list_prefix("/invites/")
    assert all(
        invite.token not in item.key and invite.token.encode() not in item.value for item in items
    )


async def test_password_policy_messages() -> None:
    from wicket.auth.passwords import check_password_policy

    with pytest.raises(BadParameter, match="too short: use at least 12 characters"):
        check_password_policy("elevenchars")
    with pytest.raises(BadParameter, match="too long"):
        check_password_policy("x" * 1025)
    with pytest.raises(BadParameter, match="whitespace"):
        check_password_policy(" " * 12)
    check_password_policy("twelve chars")


async def test_concurrent_failures_are_all_counted(users: UserService) -> None:
    await enrolled(users)
    results = await asyncio.gather(
        *(users.authenticate("alice", f"wrong password {i:02d}", None) for i in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(r, LoginFailed) for r in results)
    assert sorted(r.failures for r in results if isinstance(r, LoginFailed)) == [1, 2, 3, 4, 5]
    assert sum(isinstance(r, LoginLocked) for r in results) == 1
    with pytest.raises(LoginLocked):
        await users.authenticate("alice", PASSWORD, None)
