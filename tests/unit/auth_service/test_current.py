"""What a user certificate may do now: the current record and the locks decide, not the cert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from wicket.auth.current import applying_locks, check_not_locked, current_identity
from wicket.auth.locks import Lock, Locked, LockMetadata, LockSpec, LockTarget
from wicket.auth.users import User
from wicket.errors import AccessDenied
from wicket.identity import HostRole, Identity, IdentityKind

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def certified(**changes: object) -> Identity:
    fields: dict[str, object] = {
        "cluster": "example.com",
        "kind": IdentityKind.USER,
        "name": "bob",
        "roles": ("access", "editor"),
        "traits": {"db_users": ("*",)},
    }
    fields.update(changes)
    return Identity(**fields)  # type: ignore[arg-type]


def user(roles: tuple[str, ...] = ("access",), **traits: tuple[str, ...]) -> User:
    return User(
        name="bob",
        roles=roles,
        traits=traits or {"db_users": ("reader",)},
        created=NOW,
        has_password=True,
        otp_enabled=False,
    )


def lock(expires: datetime | None = None, **target: str) -> Lock:
    return Lock(
        metadata=LockMetadata(name="3f1c0d7e-2a55-4b9e-9a39-1d2f6f9f0a01"),
        spec=LockSpec(target=LockTarget(**target), message="incident 42", expires=expires),
    )


def test_a_deleted_user_is_refused() -> None:
    with pytest.raises(AccessDenied, match='user "bob" no longer exists'):
        current_identity(certified(), None)


def test_roles_are_the_certificates_that_the_user_still_holds() -> None:
    now = current_identity(certified(), user(roles=("access", "auditor")))
    assert now.roles == ("access",)  # editor taken away; auditor never in the certificate
    assert dict(now.traits) == {"db_users": ("reader",)}  # narrowed traits win
    assert now.name == "bob" and now.kind is IdentityKind.USER


def test_other_identities_pass_unchanged() -> None:
    host = Identity(
        cluster="example.com",
        kind=IdentityKind.HOST,
        name="h1",
        host_id="h1",
        host_role=HostRole.DB,
    )
    assert current_identity(host, None) is host


def test_locks_on_the_user_a_current_role_or_the_database() -> None:
    locks = [lock(user="bob"), lock(role="access"), lock(db="prod"), lock(user="alice")]
    found = applying_locks(locks, user=user(), now=NOW)
    assert [item.target.describe() for item in found] == ["user bob", "role access"]
    with_db = applying_locks(locks, user=user(), now=NOW, database="prod")
    assert len(with_db) == 3
    with pytest.raises(Locked, match="incident 42"):
        check_not_locked(locks, user=user(), now=NOW)


def test_an_expired_lock_no_longer_stops_anyone() -> None:
    expired = lock(expires=NOW - timedelta(seconds=1), user="bob")
    check_not_locked([expired], user=user(), now=NOW)
    assert applying_locks([expired], user=user(), now=NOW) == []
    with pytest.raises(Locked):
        check_not_locked([lock(db="prod")], user=user(), now=NOW, database="prod")
    check_not_locked([lock(db="prod")], user=user(), now=NOW, database="staging")
