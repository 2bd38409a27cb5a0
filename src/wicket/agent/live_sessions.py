"""The agent's open sessions, authorized continuously against the mirrored access state.

Every open session is registered here. After every change the mirror reports, each is
re-evaluated (`wicket.agent.access.evaluate`); a session that may not go on is ended with
the verdict's text, the others get their per-message rights rebuilt from the current
roles. Each session also has ONE timer, at the earliest moment time alone changes its
verdict (certificate expiry, `max_session_ttl`), re-armed at every evaluation.

While the mirror is disconnected (`locking_mode`):
- `best_effort` (default): the last complete state stands for open and new sessions;
  certificate expiry and `max_session_ttl` are still enforced locally. Before the first
  sync a new session waits up to `ADMIT_WAIT` for it, then is decided on its
  certificate alone (roles fetched from the auth service), as before live authorization.
- `strict`: new sessions are refused and open sessions end when the state is not
  current (Teleport's `locking_mode: strict`): no decision is taken on stale data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from enum import Enum
from typing import Protocol

from wicket.agent.access import (
    AccessView,
    Clock,
    EndCause,
    SessionSubject,
    Verdict,
    effective_checkers,
    evaluate,
)
from wicket.auth.roles import AccessChecker
from wicket.auth.store import utc_now

log = logging.getLogger("wicket.agent.access")

ADMIT_WAIT = 5.0
TIMER_SLACK = 0.05  # fire just after the deadline, so the evaluation sees it passed
NO_STATE = (
    "the database agent has no current access state from the auth service "
    "(locking_mode strict); retry when the auth service is reachable"
)


class LockingMode(Enum):
    """What the agent does while its access mirror is not current."""

    BEST_EFFORT = "best_effort"
    STRICT = "strict"


class AccessSource(Protocol):
    """Where the state comes from (`AccessMirror`)."""

    @property
    def synced(self) -> bool:
        """Whether the state is current."""

    def view(self) -> AccessView | None:
        """The last complete state, or None before the first sync."""

    async def wait_synced(self, seconds: float) -> bool:
        """Wait up to `seconds` for a current state."""

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Be told of every change."""


class LiveSession(Protocol):
    """What the registry needs from an open session (the MongoDB engine's `MongoSession`)."""

    @property
    def subject(self) -> SessionSubject:
        """Who and what the session is."""

    def end(self, reason: str) -> None:
        """End the session now; `reason` is the error its client sees."""

    def reauthorize(self, checkers: tuple[AccessChecker, ...]) -> None:
        """Check the session's next messages with these (current) rights."""


class SessionRegistry:
    """Open sessions of this agent; ends them when they lose their rights."""

    def __init__(
        self,
        source: AccessSource,
        *,
        mode: LockingMode = LockingMode.BEST_EFFORT,
        clock: Clock = utc_now,
    ) -> None:
        self.source = source
        self.mode = mode
        self.clock = clock
        self._sessions: dict[LiveSession, asyncio.TimerHandle | None] = {}
        source.add_listener(self.changed)

    def __len__(self) -> int:
        return len(self._sessions)

    async def admit(
        self, subject: SessionSubject
    ) -> tuple[Verdict, tuple[AccessChecker, ...] | None]:
        """The verdict for a new session, and its rights (None: decide on the certificate)."""
        if not self.source.synced:
            await self.source.wait_synced(ADMIT_WAIT if self.source.view() is None else 0.0)
        view = self.source.view()
        if self.mode is LockingMode.STRICT and not self.source.synced:
            return Verdict(False, NO_STATE, EndCause.NO_STATE), None
        verdict = evaluate(subject, view, self.clock())
        if not verdict.allowed or view is None:
            return verdict, None
        return verdict, effective_checkers(subject, view)

    def add(self, session: LiveSession) -> None:
        """Watch an open session (evaluated now: it may end at once)."""
        self._sessions[session] = None
        self._check(session, False)

    def remove(self, session: LiveSession) -> None:
        """Forget a session that ended."""
        timer = self._sessions.pop(session, None)
        if timer is not None:
            timer.cancel()

    def changed(self) -> None:
        """The state changed: re-evaluate every open session (the mirror's listener)."""
        for session in tuple(self._sessions):
            self._check(session, True)

    def _check(self, session: LiveSession, reauthorize: bool) -> None:
        if session not in self._sessions:
            return
        timer = self._sessions[session]
        if timer is not None:
            timer.cancel()
        self._sessions[session] = None
        view = self.source.view()
        if self.mode is LockingMode.STRICT and not self.source.synced:
            verdict = Verdict(False, NO_STATE, EndCause.NO_STATE)
        else:
            verdict = evaluate(session.subject, view, self.clock())
        if not verdict.allowed:
            log.info("ending session of %s: %s", session.subject.user, verdict.reason)
            self.remove(session)
            session.end(verdict.ended())
            return
        if verdict.recheck_at is not None:  # armed first: nothing below may lose the timer
            delay = max(0.0, (verdict.recheck_at - self.clock()).total_seconds()) + TIMER_SLACK
            loop = asyncio.get_running_loop()
            self._sessions[session] = loop.call_later(delay, self._check, session, False)
        if reauthorize and view is not None:
            checkers = effective_checkers(session.subject, view)
            if checkers is not None:
                try:
                    session.reauthorize(checkers)
                except Exception:  # fail closed: a session we cannot re-check does not go on
                    log.exception("cannot re-authorize a session of %s", session.subject.user)
                    self.remove(session)
                    session.end("session ended: its rights could not be re-checked")
