"""The agent's mirror of who may do what: users, roles and locks pushed by the auth service.

Three layers, in the order of this file:

1. `evaluate(subject, view, now)`: pure. Whether one session may go on, and if not, why
   (the text its client sees). Time-driven limits (certificate expiry, `max_session_ttl`)
   come back as `recheck_at`, so the caller sets one timer per session, never one per
   message.
2. `MirrorState`: pure. Fed decoded stream lines (`wicket.api.watch`); a new stream's
   snapshot is collected aside and swapped in whole at `synced`, so a half-read snapshot
   never decides anything. Between streams the last state is kept (`connected` False).
3. `AccessMirror`: the I/O shell. Keeps `GET /v1/watch/access` open through the proxy's
   `wicket-auth` route, reconnects with a short capped backoff, treats a stream silent
   for `DEAD_AFTER_SECONDS` as dead, and calls its listeners after every change.

A session's rights (see docs/guides/rbac.md, "Session lifetime"): its user must still
exist, no lock in force may match it (the user, any role of the certificate or of the
user's current record, or its database), and its database, db user and db name must be
allowed both by the user's CURRENT roles and traits and by the certificate's own roles
(as they are defined now, with the certificate's traits): a change can only take rights
away from an open session, never add any.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

import aiohttp
from pydantic import ValidationError

from wicket.api.client import AUTH_SERVER_NAME
from wicket.api.watch import (
    DEAD_AFTER_SECONDS,
    WATCH_ACCESS_PATH,
    Delete,
    LineSplitter,
    Ping,
    Put,
    Synced,
    WatchKind,
    WatchLine,
    decode_line,
)
from wicket.auth.durations import format_duration
from wicket.auth.locks import Lock, first_matching
from wicket.auth.roles import AccessChecker, Role
from wicket.auth.store import encode_time, utc_now
from wicket.errors import BadParameter, ProtocolError, WicketError
from wicket.identity import DatabaseRoute

log = logging.getLogger("wicket.agent.access")

RECONNECT_FIRST = 0.5
RECONNECT_MAX = 2.0
READ_CHUNK = 64 * 1024
MAX_USERS = 100_000
MAX_ROLES = 10_000
MAX_LOCKS = 10_000

Clock = Callable[[], datetime]


# -- what is decided ---------------------------------------------------------------------


@dataclass(frozen=True)
class UserView:
    """A user as the stream shows it: public fields only."""

    name: str
    roles: tuple[str, ...]
    traits: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_resource(cls, data: Mapping[str, object]) -> UserView:
        """Parse the stream's user shape (BadParameter when malformed)."""
        name, roles, traits = data.get("name"), data.get("roles"), data.get("traits")
        if not isinstance(name, str) or not isinstance(roles, list):
            raise BadParameter("watched user without a name or roles")
        if not isinstance(traits, dict):
            raise BadParameter(f'watched user "{name}" without traits')
        return cls(
            name=name,
            roles=tuple(str(role) for role in roles),
            traits={str(k): tuple(str(v) for v in vs) for k, vs in traits.items()},
        )


@dataclass(frozen=True)
class AccessView:
    """One consistent state of users, roles and locks (a snapshot plus changes)."""

    users: Mapping[str, UserView] = field(default_factory=dict)
    roles: Mapping[str, Role] = field(default_factory=dict)
    locks: Mapping[str, Lock] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionSubject:
    """What a session is: its certificate's identity and route, its database, its start."""

    user: str
    roles: tuple[str, ...]
    traits: Mapping[str, tuple[str, ...]]
    route: DatabaseRoute
    labels: Mapping[str, str]
    expires: datetime | None
    started: datetime


class EndCause(Enum):
    """Why a session ends (or may not start)."""

    EXPIRED = "expired"
    SESSION_TTL = "session_ttl"
    USER_DELETED = "user_deleted"
    LOCKED = "locked"
    ROLE_CHANGED = "role_changed"
    NO_STATE = "no_state"


@dataclass(frozen=True)
class Verdict:
    """Whether a session may go on; `reason` is what its client is told when not."""

    allowed: bool
    reason: str = ""
    cause: EndCause | None = None
    recheck_at: datetime | None = None

    def ended(self) -> str:
        """The error an open session ends with."""
        return f"session ended: {self.reason}"

    def refused(self) -> str:
        """The error a new session is refused with."""
        return f"session refused: {self.reason}"


def _deny(cause: EndCause, reason: str) -> Verdict:
    return Verdict(False, reason, cause)


def _checker(
    view: AccessView, roles: tuple[str, ...], traits: Mapping[str, tuple[str, ...]]
) -> AccessChecker:
    """Roles that exist now (a deleted role grants nothing), with these traits."""
    return AccessChecker([view.roles[name] for name in roles if name in view.roles], traits)


def effective_checkers(
    subject: SessionSubject, view: AccessView
) -> tuple[AccessChecker, ...] | None:
    """The rights that must all allow: the user's current roles and traits, then the
    certificate's (one checker when they are the same); None when the user is gone."""
    user = view.users.get(subject.user)
    if user is None:
        return None
    current = _checker(view, user.roles, user.traits)
    if user.roles == subject.roles and dict(user.traits) == dict(subject.traits):
        return (current,)
    return current, _checker(view, subject.roles, subject.traits)


def _session_ttl(subject: SessionSubject, view: AccessView) -> timedelta | None:
    user = view.users.get(subject.user)
    names = set(subject.roles) | set(user.roles if user else ())
    ttls = [
        view.roles[name].spec.options.max_session_ttl
        for name in names
        if name in view.roles and view.roles[name].spec.options.max_session_ttl is not None
    ]
    return min(t for t in ttls if t is not None) if ttls else None


def evaluate(subject: SessionSubject, view: AccessView | None, now: datetime) -> Verdict:
    """May this session go on at `now`, given the mirrored state (None: no state yet)?"""
    recheck = subject.expires
    if subject.expires is not None and now >= subject.expires:
        return _deny(
            EndCause.EXPIRED,
            f"certificate expired at {encode_time(subject.expires)}; "
            "log in again (wsh login, then wsh db login)",
        )
    if view is None:
        return Verdict(True, recheck_at=recheck)
    checkers = effective_checkers(subject, view)
    if checkers is None:
        return _deny(EndCause.USER_DELETED, f'user "{subject.user}" was deleted')
    user = view.users[subject.user]
    lock = first_matching(
        view.locks.values(),
        user=subject.user,
        roles=sorted(set(subject.roles) | set(user.roles)),
        database=subject.route.service,
        now=now,
    )
    if lock is not None:
        return _deny(EndCause.LOCKED, lock.refusal())
    route = subject.route
    for checker in checkers:
        decision = checker.check_database(subject.labels)
        if decision.allowed and route.db_user:
            decision = checker.check_db_user(subject.labels, route.db_user)
        if decision.allowed and route.db_name:
            decision = checker.check_db_name(subject.labels, route.db_name)
        if not decision.allowed:
            return _deny(EndCause.ROLE_CHANGED, f"role change: {decision.reason}")
    ttl = _session_ttl(subject, view)
    if ttl is not None:
        deadline = subject.started + ttl
        if now >= deadline:
            return _deny(
                EndCause.SESSION_TTL,
                f"max_session_ttl ({format_duration(ttl)}) of the user's roles reached "
                f"(session started {encode_time(subject.started)})",
            )
        recheck = deadline if recheck is None else min(recheck, deadline)
    return Verdict(True, recheck_at=recheck)


# -- the mirrored state ------------------------------------------------------------------


class _Collecting:
    """A view being built (a snapshot, or the live state being changed)."""

    def __init__(self, view: AccessView | None = None) -> None:
        self.users: dict[str, UserView] = dict(view.users) if view else {}
        self.roles: dict[str, Role] = dict(view.roles) if view else {}
        self.locks: dict[str, Lock] = dict(view.locks) if view else {}

    def apply(self, line: Put | Delete) -> None:
        tables: dict[WatchKind, tuple[dict[str, Any], int]] = {
            WatchKind.USER: (self.users, MAX_USERS),
            WatchKind.ROLE: (self.roles, MAX_ROLES),
            WatchKind.LOCK: (self.locks, MAX_LOCKS),
        }
        table, cap = tables[line.kind]
        if isinstance(line, Delete):
            table.pop(line.name, None)
            return
        if line.name not in table and len(table) >= cap:
            raise ProtocolError(f"the watch stream sent more than {cap} {line.kind.value}s")
        table[line.name] = _parse(line)

    def view(self) -> AccessView:
        return AccessView(users=self.users, roles=self.roles, locks=self.locks)


def _parse(line: Put) -> UserView | Role | Lock:
    try:
        if line.kind is WatchKind.USER:
            return UserView.from_resource(line.resource)
        if line.kind is WatchKind.ROLE:
            return Role.model_validate(line.resource)
        return Lock.from_resource(line.resource)
    except (ValidationError, WicketError) as error:
        raise ProtocolError(
            f"watched {line.kind.value} {line.name!r} is malformed: {error}"
        ) from None


class MirrorState:
    """The state the stream builds (pure): snapshot aside until `synced`, then live changes."""

    def __init__(self) -> None:
        self.view: AccessView | None = None
        self.connected = False
        self._snapshot: _Collecting | None = None
        self.revision = 0

    @property
    def synced(self) -> bool:
        """True while a stream is open and its snapshot is in."""
        return self.connected and self._snapshot is None and self.view is not None

    def stream_started(self) -> None:
        """A new stream: its snapshot will replace the state once complete."""
        self._snapshot = _Collecting()
        self.connected = False

    def stream_ended(self) -> None:
        """The stream is gone; the last complete state stays (best effort)."""
        self._snapshot = None
        self.connected = False

    def receive(self, line: WatchLine) -> bool:
        """Apply one line; True when the live state changed (sessions must be re-evaluated)."""
        if isinstance(line, Ping):
            return False
        if isinstance(line, Synced):
            if self._snapshot is None:
                raise ProtocolError("the watch stream sent a second snapshot end")
            self.view = self._snapshot.view()
            self._snapshot = None
            self.connected = True
            self.revision = line.revision
            return True
        if self._snapshot is not None:
            self._snapshot.apply(line)
            return False
        if not self.connected or self.view is None:
            raise ProtocolError("a watch change arrived outside a stream")
        live = _Collecting(self.view)
        live.apply(line)
        self.view = live.view()
        self.revision = max(self.revision, line.revision)
        return True


# -- the I/O shell -----------------------------------------------------------------------


Listener = Callable[[], None]


class AccessMirror:
    """Keeps the watch stream open and the state current; tells listeners of every change."""

    def __init__(
        self,
        address: str,
        ssl_context_factory: Callable[[], ssl.SSLContext],
        *,
        clock: Clock = utc_now,
        dead_after: float = DEAD_AFTER_SECONDS,
    ) -> None:
        self.address = address  # HOST:PORT of the proxy (its wicket-auth route)
        self._ssl_factory = ssl_context_factory
        self.clock = clock
        self.dead_after = dead_after
        self.state = MirrorState()
        self._listeners: list[Listener] = []
        self._synced = asyncio.Event()
        self.last_error: str | None = None
        self.streams_opened = 0  # how many times a snapshot was (re)started

    def add_listener(self, listener: Listener) -> None:
        """Call `listener()` after every change of the state (and at every re-sync)."""
        self._listeners.append(listener)

    def view(self) -> AccessView | None:
        """The last complete state (kept while disconnected), or None before the first sync."""
        return self.state.view

    @property
    def synced(self) -> bool:
        """Whether the state is current (a stream is open and its snapshot is in)."""
        return self.state.synced

    async def wait_synced(self, seconds: float) -> bool:
        """Wait up to `seconds` for a current state; True if there is one."""
        if self.synced:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._synced.wait(), seconds)
        return self.synced

    def _notify(self) -> None:
        for listener in tuple(self._listeners):
            try:
                listener()
            except Exception:  # a listener's bug must not stop the mirror
                log.exception("access listener failed")

    def disconnected(self) -> None:
        """The stream is gone (the last state stays; listeners hear if it was current)."""
        self._disconnected()

    def _disconnected(self) -> None:
        was_synced = self.state.synced
        self.state.stream_ended()
        self._synced.clear()
        if was_synced:
            self._notify()  # strict mode ends sessions when the state stops being current

    async def run(self) -> None:
        """Forever: open the stream, follow it, reconnect after a short, capped backoff."""
        delay = RECONNECT_FIRST
        while True:
            try:
                await self._follow()
                delay = RECONNECT_FIRST
            except (WicketError, OSError, TimeoutError, aiohttp.ClientError) as error:
                text = str(error) or type(error).__name__
                if text != self.last_error:
                    log.warning("access watch stream failed (retrying): %s", text)
                self.last_error = text
            finally:
                self._disconnected()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    async def _follow(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10.0, sock_read=None)
        connector = aiohttp.TCPConnector(ssl=self._ssl_factory(), limit=1, force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            session.get(
                f"https://{self.address}{WATCH_ACCESS_PATH}", server_hostname=AUTH_SERVER_NAME
            ) as response,
        ):
            if response.status != 200:
                body = (await response.content.read(4096)).decode(errors="replace")
                raise WicketError(f"watch refused (HTTP {response.status}): {body}")
            self.stream_started()
            splitter = LineSplitter()
            while True:
                chunk = await asyncio.wait_for(response.content.readany(), self.dead_after)
                if not chunk:
                    raise WicketError("the auth service ended the watch stream")
                self.apply([decode_line(raw) for raw in splitter.feed(chunk)])

    def apply(self, lines: list[WatchLine]) -> None:
        """Take lines of the current stream; listeners hear once if the state changed."""
        changed = False
        for line in lines:
            changed = self.state.receive(line) or changed
        if not changed:
            return
        if self.state.synced and not self._synced.is_set():
            self._synced.set()
            self.last_error = None
            view = self.state.view
            assert view is not None
            log.info(
                "access state synced: %d users, %d roles, %d locks",
                len(view.users),
                len(view.roles),
                len(view.locks),
            )
        self._notify()

    def stream_started(self) -> None:
        """A new stream is open: its snapshot comes next."""
        self.streams_opened += 1
        self.state.stream_started()
