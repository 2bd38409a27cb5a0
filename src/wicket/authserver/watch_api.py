"""The auth service's push channel to agents and proxies: `GET /v1/watch/access`, on aiohttp.

Callers: host certificates with role `db` or `proxy`. The answer is an NDJSON stream
(format in `wicket.api.watch`): first a snapshot of users (public fields only), roles
(built-in ones included) and locks, then `synced`, then every change under `/users/`,
`/roles/`, `/locks/` as it is committed, and a `ping` every few seconds.

Nothing is missed and nothing stale is replayed. The backend's watchers are registered
*before* the snapshot is listed, so every change committed after the listing reaches
them; some of what they deliver is already in the snapshot. `FeedFilter` sorts that out
per key: an event at or below the revision the snapshot (or an earlier event) showed for
its key is a duplicate; a PUT of a key the snapshot did not have is confirmed with a
`get` (it may be an old write of a key deleted before the listing: then the current
item's revision differs and the PUT is dropped; the DELETE that follows is dropped as
well). When the backend ends a watcher (`WatchOverflow`, `WatchExpired`, closing), the
stream ends and the reader reconnects for a new snapshot.

Limits: at most `MAX_STREAMS` streams at once, `MAX_STREAMS_PER_HOST` per host id (a
new one ends the host's oldest, which a dead peer may keep half-open); a bounded queue
between the watchers and the writer; every write has a timeout (a reader that stops
reading is dropped, and its watchers overflow rather than grow).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any

from aiohttp import web

from wicket.api.watch import (
    KEEPALIVE_SECONDS,
    MAX_LINE_BYTES,
    PREFIXES,
    WATCH_ACCESS_PATH,
    Delete,
    Ping,
    Put,
    Synced,
    WatchKind,
    WatchLine,
    encode_line,
    public_user,
)
from wicket.auth.locks import Lock
from wicket.auth.roles import BUILTIN_ROLES, Role
from wicket.authserver.api import AuthAPI
from wicket.backend.base import Backend, Event, EventKind, Watcher
from wicket.errors import AccessDenied, WicketError
from wicket.identity import HostRole, IdentityKind

log = logging.getLogger("wicket.auth")

MAX_STREAMS = 512
MAX_STREAMS_PER_HOST = 4  # a reconnecting host's older streams may be half-open: drop them
QUEUE_SIZE = 1024
WRITE_TIMEOUT = 30.0
FLUSH_BYTES = 64 * 1024
CALLERS = frozenset({HostRole.DB, HostRole.PROXY})


class FeedAction(Enum):
    """What to do with one watched event."""

    SKIP = "skip"  # already reflected (or a stale write of a key that is gone)
    CONFIRM = "confirm"  # a PUT of a key we do not know: check that it is current
    FORWARD = "forward"


class FeedFilter:
    """Per-key revisions of what the reader was told; decides each event's fate (pure)."""

    def __init__(self) -> None:
        self.known: dict[str, int] = {}

    def told(self, key: str, revision: int) -> None:
        """The reader now has `key` at `revision` (snapshot or forwarded PUT)."""
        self.known[key] = revision

    def classify(self, event: Event) -> FeedAction:
        """SKIP duplicates, CONFIRM PUTs of unknown keys, FORWARD the rest."""
        seen = self.known.get(event.item.key)
        if seen is not None and event.item.revision <= seen:
            return FeedAction.SKIP
        if event.kind is EventKind.DELETE:
            return FeedAction.FORWARD if seen is not None else FeedAction.SKIP
        return FeedAction.FORWARD if seen is not None else FeedAction.CONFIRM

    def forwarded(self, event: Event) -> None:
        """Record what was sent."""
        if event.kind is EventKind.DELETE:
            self.known.pop(event.item.key, None)
        else:
            self.known[event.item.key] = event.item.revision


def resource_for(kind: WatchKind, name: str, value: bytes) -> dict[str, Any] | None:
    """What the stream carries for a stored record (None when it is malformed: logged)."""
    try:
        data = json.loads(value)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        if kind is WatchKind.USER:
            return public_user(data)
        if kind is WatchKind.ROLE:
            return Role.model_validate(data).to_resource()
        return Lock.from_resource(data).to_resource()
    except (ValueError, WicketError) as error:
        log.warning("watch: ignoring malformed %s record %r: %s", kind.value, name, error)
        return None


@dataclass(frozen=True)
class _Ended:
    """A watcher stopped; the stream ends with it."""

    reason: str


class _Stream:
    """One reader's stream: watchers, the snapshot, then the live feed."""

    def __init__(self, backend: Backend, response: web.StreamResponse) -> None:
        self.backend = backend
        self.response = response
        self.filter = FeedFilter()
        self.queue: asyncio.Queue[tuple[WatchKind, Event] | _Ended] = asyncio.Queue(QUEUE_SIZE)
        self.pending = bytearray()

    async def _write(self, line: WatchLine, *, flush: bool = True) -> None:
        data = encode_line(line)
        if len(data) > MAX_LINE_BYTES:
            raise WicketError("watch: a record is larger than the stream's line limit")
        self.pending += data
        if flush or len(self.pending) >= FLUSH_BYTES:
            chunk, self.pending = bytes(self.pending), bytearray()
            await asyncio.wait_for(self.response.write(chunk), WRITE_TIMEOUT)

    async def _pump(self, kind: WatchKind, watcher: Watcher) -> None:
        reason = "the backend closed"
        try:
            async for event in watcher:
                await self.queue.put((kind, event))
        except WicketError as error:  # WatchOverflow, WatchExpired: the reader re-snapshots
            reason = str(error)
        await self.queue.put(_Ended(reason))

    async def serve(self) -> None:
        """Snapshot, then changes until a watcher ends or the reader goes away."""
        watchers: dict[WatchKind, Watcher] = {}
        pumps: list[asyncio.Task[None]] = []
        try:
            for kind, prefix in PREFIXES.items():
                watchers[kind] = await self.backend.watch(prefix)
            revision = await self._snapshot()
            await self._write(Synced(revision))
            pumps = [
                asyncio.create_task(self._pump(kind, watcher), name=f"watch {kind.value}")
                for kind, watcher in watchers.items()
            ]
            await self._feed()
        finally:
            for watcher in watchers.values():
                await watcher.close()
            for pump in pumps:
                pump.cancel()
            for pump in pumps:
                with contextlib.suppress(asyncio.CancelledError):
                    await pump

    async def _snapshot(self) -> int:
        revision = 0
        for role in BUILTIN_ROLES.values():
            await self._write(Put(WatchKind.ROLE, role.name, 0, role.to_resource()), flush=False)
        for kind, prefix in PREFIXES.items():
            for item in await self.backend.list_prefix(prefix):
                name = item.key[len(prefix) :]
                revision = max(revision, item.revision)
                self.filter.told(item.key, item.revision)
                if kind is WatchKind.ROLE and name in BUILTIN_ROLES:
                    continue  # built-in roles win over stored ones, as in RoleService
                resource = resource_for(kind, name, item.value)
                if resource is not None:
                    await self._write(Put(kind, name, item.revision, resource), flush=False)
        current = getattr(self.backend, "revision", None)
        return max(revision, current) if isinstance(current, int) else revision

    async def _feed(self) -> None:
        while True:
            try:
                entry = await asyncio.wait_for(self.queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                await self._write(Ping())
                continue
            if isinstance(entry, _Ended):
                log.info("watch stream ended (the reader will re-snapshot): %s", entry.reason)
                return
            kind, event = entry
            action = self.filter.classify(event)
            if action is FeedAction.CONFIRM:
                current = await self.backend.get(event.item.key)
                if current is None or current.revision != event.item.revision:
                    continue
            elif action is FeedAction.SKIP:
                continue
            line = self._line(kind, event)
            self.filter.forwarded(event)
            if line is not None:
                await self._write(line)

    def _line(self, kind: WatchKind, event: Event) -> WatchLine | None:
        name = event.item.key[len(PREFIXES[kind]) :]
        if kind is WatchKind.ROLE and name in BUILTIN_ROLES:
            return None
        if event.kind is EventKind.DELETE:
            return Delete(kind, name, event.item.revision)
        resource = resource_for(kind, name, event.item.value)
        if resource is None:
            return None
        return Put(kind, name, event.item.revision, resource)


class WatchAPI:
    """The `/v1/watch/access` handler, bound to the auth API (for identities) and a backend."""

    def __init__(self, api: AuthAPI, backend: Backend) -> None:
        self.api = api
        self.backend = backend
        self._streams: dict[asyncio.Task[Any], str] = {}  # stream task -> host id

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the auth API application."""
        return [web.get(WATCH_ACCESS_PATH, self.watch_access)]

    async def watch_access(self, request: web.Request) -> web.StreamResponse:
        """Stream users, roles and locks to an agent or a proxy."""
        identity = self.api.identity(request)
        if (
            identity is None
            or identity.kind is not IdentityKind.HOST
            or identity.host_role not in CALLERS
        ):
            raise AccessDenied("only database agents and proxies may watch access changes")
        host = identity.host_id or identity.name
        mine = [task for task, owner in self._streams.items() if owner == host]
        for stale in mine[: max(0, len(mine) - MAX_STREAMS_PER_HOST + 1)]:
            stale.cancel()  # oldest first (dicts keep insertion order)
            self._streams.pop(stale, None)
        if len(self._streams) >= MAX_STREAMS:
            raise WicketError(f"too many watch streams (at most {MAX_STREAMS}); retry later")
        task = asyncio.current_task()
        assert task is not None
        response = web.StreamResponse(
            headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        self._streams[task] = host
        try:
            await _Stream(self.backend, response).serve()
        except (TimeoutError, ConnectionError, WicketError) as error:
            log.info("watch stream of %s ended: %s", identity.name, error or type(error).__name__)
        finally:
            self._streams.pop(task, None)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
        return response

    async def close(self, _app: web.Application | None = None) -> None:
        """End every stream (the service is shutting down; readers reconnect elsewhere)."""
        for task in tuple(self._streams):
            task.cancel()


def add_watch_routes(app: web.Application, api: AuthAPI, backend: Backend) -> WatchAPI:
    """Register `/v1/watch/access` on the auth API application (before it starts)."""
    watch = WatchAPI(api, backend)
    app.add_routes(watch.routes())
    app.on_shutdown.append(watch.close)
    return watch


__all__ = ["FeedAction", "FeedFilter", "WatchAPI", "add_watch_routes", "resource_for"]
