"""Open sessions under live authorization: ended on changes and on time, never on pings."""

from __future__ import annotations

import asyncio
import ssl
from datetime import timedelta

from wicket.agent.access import AccessMirror, SessionSubject
from wicket.agent.live_sessions import LockingMode, SessionRegistry
from wicket.api.watch import Delete, Ping, Put, Synced, WatchKind
from wicket.auth.roles import AccessChecker, Role
from wicket.auth.store import utc_now
from wicket.identity import DatabaseRoute

DEV = Role.model_validate(
    {
        "metadata": {"name": "dev"},
        "spec": {"allow": {"db_labels": {"env": "dev"}, "db_users": ["*"], "db_names": ["test"]}},
    }
)


class RecordingSession:
    """A session as the registry sees it; records what it was told."""

    def __init__(self, user: str, *, expires_in: float = 3600.0) -> None:
        now = utc_now()
        self._subject = SessionSubject(
            user=user,
            roles=("dev",),
            traits={},
            route=DatabaseRoute("my-docdb", "mongodb", "app", "test"),
            labels={"env": "dev"},
            expires=now + timedelta(seconds=expires_in),
            started=now,
        )
        self.ended: list[str] = []
        self.rights: list[tuple[AccessChecker, ...]] = []

    @property
    def subject(self) -> SessionSubject:
        return self._subject

    def end(self, reason: str) -> None:
        self.ended.append(reason)

    def reauthorize(self, checkers: tuple[AccessChecker, ...]) -> None:
        self.rights.append(checkers)


def user_line(name: str, revision: int) -> Put:
    return Put(WatchKind.USER, name, revision, {"name": name, "roles": ["dev"], "traits": {}})


def synced_mirror(*users: str) -> AccessMirror:
    """A mirror fed by hand (no stream): roles dev, the given users."""
    mirror = AccessMirror("127.0.0.1:1", ssl.create_default_context)
    mirror.stream_started()
    mirror.apply(
        [
            Put(WatchKind.ROLE, "dev", 1, DEV.to_resource()),
            *(user_line(name, 2 + i) for i, name in enumerate(users)),
            Synced(10),
        ]
    )
    return mirror


async def test_a_change_ends_exactly_the_sessions_that_lost_their_rights() -> None:
    mirror = synced_mirror("bob", "carol")
    registry = SessionRegistry(mirror)
    bob, carol = RecordingSession("bob"), RecordingSession("carol")
    registry.add(bob)
    registry.add(carol)
    mirror.apply([Ping()])
    assert bob.rights == [] and carol.rights == []  # a ping is not a change
    mirror.apply([Delete(WatchKind.USER, "bob", 11)])
    assert bob.ended == ['session ended: user "bob" was deleted']
    assert carol.ended == [] and len(carol.rights) == 1 and len(carol.rights[0]) == 1
    assert len(registry) == 1


async def test_a_session_without_rights_ends_as_soon_as_it_is_added() -> None:
    registry = SessionRegistry(synced_mirror("carol"))
    dave = RecordingSession("dave")
    registry.add(dave)
    assert dave.ended == ['session ended: user "dave" was deleted'] and len(registry) == 0


async def test_certificate_expiry_ends_a_session_on_its_timer() -> None:
    registry = SessionRegistry(synced_mirror("bob"))
    bob = RecordingSession("bob", expires_in=0.2)
    gone = RecordingSession("bob", expires_in=0.2)
    registry.add(bob)
    registry.add(gone)
    registry.remove(gone)
    await asyncio.sleep(0.5)
    assert len(bob.ended) == 1 and bob.ended[0].startswith("session ended: certificate expired")
    assert gone.ended == []


async def test_best_effort_keeps_sessions_when_the_stream_drops() -> None:
    mirror = synced_mirror("bob")
    registry = SessionRegistry(mirror)
    bob = RecordingSession("bob")
    registry.add(bob)
    mirror.disconnected()
    assert bob.ended == []
    verdict, checkers = await registry.admit(RecordingSession("bob").subject)
    assert verdict.allowed and checkers is not None  # decided on the last complete state


async def test_strict_mode_refuses_and_ends_sessions_without_a_current_state() -> None:
    mirror = synced_mirror("bob")
    registry = SessionRegistry(mirror, mode=LockingMode.STRICT)
    bob = RecordingSession("bob")
    registry.add(bob)
    verdict, _ = await registry.admit(RecordingSession("bob").subject)
    assert verdict.allowed
    mirror.disconnected()
    assert len(bob.ended) == 1 and "locking_mode strict" in bob.ended[0]
    verdict, checkers = await registry.admit(RecordingSession("bob").subject)
    assert not verdict.allowed and checkers is None
    assert verdict.refused().startswith("session refused: the database agent has no current")
