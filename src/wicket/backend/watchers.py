"""Storage layer: in-process fan-out of committed events to watchers, with log replay.

A backend publishes each transaction's events here, in revision order, on the event
loop thread. Every watcher has a bounded buffer; a live watcher that falls behind is
ended with `WatchOverflow` rather than growing memory.

Resuming (`from_revision`) without a gap or a duplicate: the watcher is registered
*before* the first log query is issued, so every event committed after that query's
snapshot reaches its buffer; the watcher pages through the log, then switches to its
buffer and drops what it already delivered (revision <= last delivered). While it is
still replaying, a full buffer is not an error: the buffer is discarded and the watcher
keeps paging, since everything discarded is in the log anyway; it only switches to
live once a page reaches the end of the log with nothing discarded since that page
was asked for.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from wicket.backend.base import Event, WatchOverflow
from wicket.errors import WicketError

DEFAULT_QUEUE_SIZE = 1024


@dataclass(frozen=True)
class ReplayPage:
    """Events read from the log after some revision; `exhausted` if the log ended there."""

    events: tuple[Event, ...]
    exhausted: bool


# (prefix, after_revision) -> the next page; raises WatchExpired if the log was pruned.
ReplayReader = Callable[[str, int], Awaitable[ReplayPage]]


class WatcherState(Enum):
    """Where a watcher takes its next event from."""

    REPLAYING = "replaying"
    LIVE = "live"
    FAILED = "failed"
    CLOSED = "closed"


class HubWatcher:
    """One watcher: replays the log if asked, then streams live events from its buffer."""

    def __init__(
        self,
        hub: WatchHub,
        prefix: str,
        after_revision: int,
        queue_size: int,
        reader: ReplayReader | None,
    ) -> None:
        self._hub = hub
        self.prefix = prefix
        self._last = after_revision
        self._queue_size = queue_size
        self._reader = reader
        self._buffer: deque[Event] = deque()
        self._page: deque[Event] = deque()
        self._page_exhausted = False
        self._discarded = False
        self._failure: WicketError | None = None
        self._wakeup = asyncio.Event()
        self.state = WatcherState.REPLAYING if reader is not None else WatcherState.LIVE

    def offer(self, event: Event) -> None:
        """Take a just-committed event (called by the hub on the loop thread)."""
        if self.state in (WatcherState.FAILED, WatcherState.CLOSED):
            return
        if event.item.revision <= self._last and self.state is WatcherState.LIVE:
            return
        if len(self._buffer) >= self._queue_size:
            if self.state is WatcherState.REPLAYING:
                # Still catching up from the log, which holds this event too.
                self._buffer.clear()
                self._discarded = True
                return
            self._fail(
                WatchOverflow(
                    f"watcher on {self.prefix!r} fell more than {self._queue_size} events "
                    f"behind; resume with from_revision={self._last}"
                )
            )
            return
        self._buffer.append(event)
        self._wakeup.set()

    def _fail(self, error: WicketError) -> None:
        """End the stream with `error` after the events already buffered."""
        self._failure = error
        self.state = WatcherState.FAILED
        self._hub.unregister(self)
        self._wakeup.set()

    async def prime(self) -> None:
        """Read the first replay page now, so an expired resume point fails at `watch()`."""
        await self._next_page()

    async def _next_page(self) -> None:
        assert self._reader is not None
        self._discarded = False
        try:
            page = await self._reader(self.prefix, self._last)
        except Exception:  # not CancelledError: a cancelled read is simply asked again
            if self.state is WatcherState.CLOSED:
                return  # closed meanwhile (or the backend closed): the stream just ends
            self.end()
            raise
        self._page.extend(page.events)
        self._page_exhausted = page.exhausted

    def __aiter__(self) -> HubWatcher:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self.state is WatcherState.CLOSED:
                raise StopAsyncIteration
            if self._page:
                event = self._page.popleft()
                self._last = event.item.revision
                return event
            if self.state is WatcherState.REPLAYING:
                if self._page_exhausted and not self._discarded:
                    self.state = WatcherState.LIVE
                    continue
                await self._next_page()
                continue  # the loop re-reads the state: the watcher may have closed meanwhile
            while self._buffer:
                event = self._buffer.popleft()
                if event.item.revision <= self._last:
                    continue
                self._last = event.item.revision
                return event
            if self._failure is not None:
                failure = self._failure
                self.state = WatcherState.CLOSED
                raise failure
            self._wakeup.clear()
            await self._wakeup.wait()

    async def close(self) -> None:
        """Stop watching; the iterator ends and buffered events are dropped."""
        self.end()

    def end(self) -> None:
        """Synchronous close, used by the hub when the backend closes."""
        self.state = WatcherState.CLOSED
        self._buffer.clear()
        self._page.clear()
        self._hub.unregister(self)
        self._wakeup.set()


class WatchHub:
    """The set of live watchers of one backend and the last revision published to them."""

    def __init__(self, *, revision: int, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        if queue_size < 1:
            raise ValueError("watch queue size must be at least 1")
        self.revision = revision
        self._queue_size = queue_size
        self._watchers: set[HubWatcher] = set()

    def publish(self, events: Sequence[Event]) -> None:
        """Hand one transaction's events (in revision order) to every matching watcher."""
        for event in events:
            self.revision = max(self.revision, event.item.revision)
            for watcher in tuple(self._watchers):
                if event.item.key.startswith(watcher.prefix):
                    watcher.offer(event)

    def watch_live(self, prefix: str) -> HubWatcher:
        """A watcher of events published from now on."""
        watcher = HubWatcher(self, prefix, self.revision, self._queue_size, None)
        self._watchers.add(watcher)
        return watcher

    async def watch_from(self, prefix: str, after: int, reader: ReplayReader) -> HubWatcher:
        """A watcher that replays the log after `after`, then continues live."""
        watcher = HubWatcher(self, prefix, after, self._queue_size, reader)
        self._watchers.add(watcher)  # before the first query: see the module docstring
        try:
            await watcher.prime()
        except BaseException:
            watcher.end()
            raise
        return watcher

    def unregister(self, watcher: HubWatcher) -> None:
        """Forget a watcher that closed or failed."""
        self._watchers.discard(watcher)

    def close_all(self) -> None:
        """End every watcher (the backend is closing)."""
        for watcher in tuple(self._watchers):
            watcher.end()

    def __len__(self) -> int:
        return len(self._watchers)
