"""The agent's access mirror: the session verdict (pure) and the state the stream builds."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from wicket.agent.access import (
    AccessView,
    EndCause,
    MirrorState,
    SessionSubject,
    UserView,
    effective_checkers,
    evaluate,
)
from wicket.api.watch import Delete, Ping, Put, Synced, WatchKind
from wicket.auth.locks import Lock, LockMetadata, LockSpec, LockTarget
from wicket.auth.roles import BUILTIN_ROLES, Role
from wicket.errors import ProtocolError
from wicket.identity import DatabaseRoute

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LABELS = {"env": "dev"}


def role(name: str, db_names: list[str], *, ttl: str | None = None) -> Role:
    options: dict[str, Any] = {} if ttl is None else {"max_session_ttl": ttl}
    return Role.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "options": options,
                "allow": {"db_labels": {"env": "dev"}, "db_users": ["*"], "db_names": db_names},
            },
        }
    )


def lock(lock_id: str, *, expires: datetime | None = None, **target: str) -> Lock:
    return Lock(
        metadata=LockMetadata(name=lock_id),
        spec=LockSpec(target=LockTarget(**target), message="incident 42", expires=expires),
    )


def user(
    name: str, roles: tuple[str, ...], traits: Mapping[str, tuple[str, ...]] | None = None
) -> UserView:
    return UserView(name=name, roles=roles, traits=traits or {})


def view(
    *users: UserView, roles: tuple[Role, ...] = (), locks: tuple[Lock, ...] = ()
) -> AccessView:
    return AccessView(
        users={u.name: u for u in users},
        roles={**BUILTIN_ROLES, **{r.name: r for r in roles}},
        locks={item.id: item for item in locks},
    )


def subject(
    name: str = "bob",
    roles: tuple[str, ...] = ("dev",),
    *,
    db_name: str = "test",
    expires: datetime | None = NOW + timedelta(hours=1),
    started: datetime = NOW - timedelta(minutes=5),
    traits: Mapping[str, tuple[str, ...]] | None = None,
) -> SessionSubject:
    return SessionSubject(
        user=name,
        roles=roles,
        traits=traits or {},
        route=DatabaseRoute("my-docdb", "mongodb", "app", db_name),
        labels=LABELS,
        expires=expires,
        started=started,
    )


DEV = role("dev", ["test", "reports"])
BOB = user("bob", ("dev",))


def test_a_session_with_its_rights_goes_on_until_its_certificate_expires() -> None:
    verdict = evaluate(subject(), view(BOB, roles=(DEV,)), NOW)
    assert verdict.allowed and verdict.recheck_at == NOW + timedelta(hours=1)
    expired = evaluate(subject(), view(BOB, roles=(DEV,)), NOW + timedelta(hours=1))
    assert not expired.allowed and expired.cause is EndCause.EXPIRED
    assert expired.ended().startswith("session ended: certificate expired at 2026-03-01T13:00")


def test_without_any_state_only_the_certificate_decides() -> None:
    assert evaluate(subject(), None, NOW).allowed
    assert evaluate(subject(), None, NOW + timedelta(hours=2)).cause is EndCause.EXPIRED


def test_a_deleted_user_ends_the_session() -> None:
    verdict = evaluate(subject(), view(roles=(DEV,)), NOW)
    assert verdict.cause is EndCause.USER_DELETED
    assert verdict.ended() == 'session ended: user "bob" was deleted'
    assert verdict.refused() == 'session refused: user "bob" was deleted'


@pytest.mark.parametrize(
    "target",
    [{"user": "bob"}, {"role": "dev"}, {"db": "my-docdb"}, {"role": "ops"}],
)
def test_a_lock_on_the_user_a_role_or_the_database_ends_the_session(
    target: dict[str, str],
) -> None:
    # "ops" is only in the user's CURRENT roles, not in the certificate's
    bob = user("bob", ("dev", "ops"))
    state = view(bob, roles=(DEV, role("ops", [])), locks=(lock("l-1", **target),))
    verdict = evaluate(subject(), state, NOW)
    assert verdict.cause is EndCause.LOCKED
    assert "lock l-1" in verdict.reason and "incident 42" in verdict.reason


def test_locks_on_others_or_expired_locks_do_not_matter() -> None:
    state = view(
        BOB,
        roles=(DEV,),
        locks=(
            lock("l-1", user="alice"),
            lock("l-2", db="prod"),
            lock("l-3", user="bob", expires=NOW - timedelta(seconds=1)),
        ),
    )
    assert evaluate(subject(), state, NOW).allowed


def test_a_role_edit_that_withdraws_the_db_name_ends_the_session() -> None:
    narrowed = role("dev", ["reports"])
    verdict = evaluate(subject(), view(BOB, roles=(narrowed,)), NOW)
    assert verdict.cause is EndCause.ROLE_CHANGED
    assert verdict.reason.startswith("role change: ") and '"test"' in verdict.reason


def test_a_deleted_role_grants_nothing() -> None:
    verdict = evaluate(subject(), view(BOB), NOW)
    assert verdict.cause is EndCause.ROLE_CHANGED


def test_the_users_current_roles_and_traits_decide() -> None:
    # the user lost "dev" and now only has the built-in access role, driven by traits
    moved = user("bob", ("access",), {"db_users": ("*",), "db_names": ("reports",)})
    verdict = evaluate(subject(), view(moved, roles=(DEV,)), NOW)
    assert verdict.cause is EndCause.ROLE_CHANGED
    widened = user("bob", ("access",), {"db_users": ("*",), "db_names": ("test",)})
    assert evaluate(subject(roles=("access",)), view(widened), NOW).cause is EndCause.ROLE_CHANGED
    traits = {"db_users": ("*",), "db_names": ("test",)}
    assert evaluate(subject(roles=("access",), traits=traits), view(widened), NOW).allowed


def test_a_change_never_grants_more_than_the_certificate() -> None:
    broad = role("broad", ["*"])
    bob = user("bob", ("dev", "broad"))
    state = view(bob, roles=(DEV, broad))
    assert evaluate(subject(), state, NOW).allowed
    checkers = effective_checkers(subject(), state)
    assert checkers is not None
    current, certificate = checkers
    assert effective_checkers(subject(), view(BOB, roles=(DEV,))) is not None
    assert len(effective_checkers(subject(), view(BOB, roles=(DEV,))) or ()) == 1  # same rights
    assert current.check_db_name(LABELS, "prod").allowed
    assert not certificate.check_db_name(LABELS, "prod").allowed


def test_max_session_ttl_counts_from_the_session_start() -> None:
    capped = role("dev", ["test"], ttl="10m")
    state = view(BOB, roles=(capped,))
    started = NOW - timedelta(minutes=5)
    verdict = evaluate(subject(started=started), state, NOW)
    assert verdict.allowed and verdict.recheck_at == started + timedelta(minutes=10)
    ended = evaluate(subject(started=started), state, started + timedelta(minutes=10))
    assert ended.cause is EndCause.SESSION_TTL and "max_session_ttl (10m)" in ended.reason


# -- the mirrored state -----------------------------------------------------------------


def put_user(name: str, roles: list[str], revision: int = 1) -> Put:
    return Put(WatchKind.USER, name, revision, {"name": name, "roles": roles, "traits": {}})


def put_role(item: Role, revision: int = 1) -> Put:
    return Put(WatchKind.ROLE, item.name, revision, item.to_resource())


def test_a_snapshot_counts_only_once_complete() -> None:
    state = MirrorState()
    state.stream_started()
    assert state.receive(put_user("bob", ["dev"])) is False
    assert state.receive(put_role(DEV)) is False
    assert state.view is None and not state.synced
    assert state.receive(Synced(7)) is True
    assert state.synced and state.revision == 7
    assert state.view is not None and set(state.view.users) == {"bob"}


def test_changes_apply_in_order_and_pings_change_nothing() -> None:
    state = MirrorState()
    state.stream_started()
    state.receive(put_user("bob", ["dev"]))
    state.receive(Synced(1))
    assert state.receive(Ping()) is False
    assert state.receive(put_user("carol", ["dev"], 2)) is True
    assert state.receive(Delete(WatchKind.USER, "bob", 3)) is True
    lock_line = Put(WatchKind.LOCK, "l-1", 4, lock("l-1", user="carol").to_resource())
    assert state.receive(lock_line) is True
    assert state.view is not None
    assert set(state.view.users) == {"carol"} and set(state.view.locks) == {"l-1"}


def test_between_streams_the_last_state_stands_and_a_new_snapshot_replaces_it() -> None:
    state = MirrorState()
    state.stream_started()
    state.receive(put_user("bob", ["dev"]))
    state.receive(Synced(1))
    state.stream_ended()
    assert not state.synced and state.view is not None and "bob" in state.view.users
    state.stream_started()
    state.receive(put_user("carol", ["dev"], 5))
    assert state.view is not None and "bob" in state.view.users  # until the snapshot is in
    state.receive(Synced(5))
    assert state.view is not None and set(state.view.users) == {"carol"}


def test_malformed_or_out_of_place_lines_break_the_stream() -> None:
    state = MirrorState()
    with pytest.raises(ProtocolError):
        state.receive(put_user("bob", ["dev"]))  # no stream
    state.stream_started()
    with pytest.raises(ProtocolError):
        state.receive(Put(WatchKind.ROLE, "bad", 1, {"metadata": {"name": "bad"}, "spec": 3}))
    with pytest.raises(ProtocolError):
        state.receive(Put(WatchKind.USER, "bob", 1, {"name": "bob"}))
    state.receive(Synced(1))
    with pytest.raises(ProtocolError):
        state.receive(Synced(2))
