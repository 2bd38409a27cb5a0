"""The backend interface everything the auth service stores goes through.

Keys are `/`-separated paths (`/users/alice`, `/tokens/<sha256>`); values are bytes
(JSON written by the layer above). Every write bumps a monotonically increasing
`revision` (per backend, not per key), which compare-and-swap uses and watchers
resume from. Items may carry an expiry; expired items are invisible to reads and
are deleted (with a DELETE event) by the backend's own sweeper.

The interface is async so a networked implementation (PostgreSQL with LISTEN/NOTIFY)
fits behind it without changes to callers.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from wicket.errors import WicketError


@dataclass(frozen=True)
class Item:
    """A stored value with its revision and optional expiry (UTC)."""

    key: str
    value: bytes
    revision: int
    expires: datetime.datetime | None = None


class WatchOverflow(WicketError):
    """A watcher fell too far behind; its stream ends here (resume with `from_revision`)."""


class WatchExpired(WicketError):
    """The events after the requested revision are no longer in the log; list and re-watch."""


class EventKind(Enum):
    """What happened to a key."""

    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True)
class Event:
    """One change seen by a watcher; `item.value` is empty for deletes."""

    kind: EventKind
    item: Item


class Watcher(Protocol):
    """A stream of events under a prefix, in revision order, until closed.

    Iteration raises `WatchOverflow` when the consumer fell behind (after the events it
    did receive) and `WatchExpired` when a resume point was pruned from the log; both
    leave the watcher closed. Closing the backend ends every watcher's iteration.
    """

    def __aiter__(self) -> AsyncIterator[Event]: ...

    async def close(self) -> None:
        """Stop watching; the iterator ends."""


class Backend(Protocol):
    """Key-value storage with revisions, prefix listing, CAS, expiry and watches."""

    async def get(self, key: str) -> Item | None:
        """The item at `key`, or None if absent or expired."""

    async def put(
        self, key: str, value: bytes, *, expires: datetime.datetime | None = None
    ) -> Item:
        """Create or replace `key`; returns the stored item with its new revision."""

    async def create(
        self, key: str, value: bytes, *, expires: datetime.datetime | None = None
    ) -> Item | None:
        """Create `key` only if absent (or expired); None if it exists."""

    async def compare_and_swap(
        self,
        key: str,
        expected_revision: int,
        value: bytes,
        *,
        expires: datetime.datetime | None = None,
    ) -> Item | None:
        """Replace `key` only if its current revision is `expected_revision`; None otherwise."""

    async def delete(self, key: str) -> bool:
        """Delete `key`; False if it did not exist."""

    async def compare_and_delete(self, key: str, expected_revision: int) -> bool:
        """Delete `key` only at `expected_revision` (single-use tokens are consumed this way)."""

    async def list_prefix(self, prefix: str, *, limit: int | None = None) -> list[Item]:
        """Live items whose keys start with `prefix`, in key order."""

    async def watch(self, prefix: str, *, from_revision: int | None = None) -> Watcher:
        """Events under `prefix` after `from_revision` (default: from now on).

        Raises `WatchExpired` if events after `from_revision` were pruned from the log.
        """

    async def close(self) -> None:
        """Release connections and files."""
