"""Server-side cursors: batches for find/aggregate/list* and getMore/killCursors (engine layer).

A cursor is an iterator of result documents, the namespace it reads and the set of
users that opened it. getMore must come from the same users (otherwise the cursor
is reported not found, so ids cannot be probed). Idle cursors expire after ten
minutes (MongoDB's `cursorTimeoutMillis` default); the clock is injectable for
tests. Batches hold at most `batch_size` documents and stay under the 16 MiB reply
limit, but always hold at least one document so a cursor always makes progress.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import bson
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions

from localdocdb.errors import CommandError, cursor_not_found, unauthorized

DEFAULT_FIRST_BATCH = 101  # MongoDB's default first batch for find and aggregate
IDLE_TIMEOUT_SECONDS = 600.0
MAX_OPEN_CURSORS = 10_000
# Room left for the reply envelope ({cursor: {nextBatch, id, ns}, ok}) under 16 MiB.
MAX_BATCH_BYTES = 16 * 1024 * 1024 - 16 * 1024
_SIZE_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    uuid_representation=UuidRepresentation.STANDARD
)


def document_size(doc: Mapping[str, Any]) -> int:
    """The BSON size of a result document."""
    return len(bson.encode(doc, codec_options=_SIZE_OPTIONS))


@dataclass
class Cursor:
    """One open cursor."""

    cursor_id: int
    namespace: str
    owner: frozenset[str]
    source: Iterator[dict[str, Any]]
    last_used: float
    pending: dict[str, Any] | None = None  # read ahead, did not fit the last batch


def take_batch(
    source: Iterator[dict[str, Any]],
    batch_size: int | None,
    pending: dict[str, Any] | None = None,
    max_bytes: int = MAX_BATCH_BYTES,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, bool]:
    """Up to `batch_size` documents under `max_bytes`; returns (batch, read-ahead, exhausted)."""
    batch: list[dict[str, Any]] = []
    used = 0
    while batch_size is None or len(batch) < batch_size:
        if pending is not None:
            doc, pending = pending, None
        else:
            try:
                doc = next(source)
            except StopIteration:
                return batch, None, True
        size = document_size(doc)
        if batch and used + size > max_bytes:
            return batch, doc, False
        batch.append(doc)
        used += size
    if pending is not None:
        return batch, pending, False
    # Look one ahead so a cursor that is exactly used up answers id 0, as MongoDB does.
    try:
        ahead = next(source)
    except StopIteration:
        return batch, None, True
    return batch, ahead, False


def owner_of(users: Any) -> frozenset[str]:
    """The owner set of a cursor from `ctx.connection.users` (`db.user` strings)."""
    return frozenset(str(user.qualified_name) for user in users)


class CursorManager:
    """Every open cursor of the server, by id."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        idle_timeout: float = IDLE_TIMEOUT_SECONDS,
        max_cursors: int = MAX_OPEN_CURSORS,
    ) -> None:
        self._clock = clock
        self._idle_timeout = idle_timeout
        self._max_cursors = max_cursors
        self._cursors: dict[int, Cursor] = {}

    def __len__(self) -> int:
        return len(self._cursors)

    def expire_idle(self) -> int:
        """Close cursors idle longer than the timeout; returns how many."""
        deadline = self._clock() - self._idle_timeout
        stale = [cid for cid, cursor in self._cursors.items() if cursor.last_used < deadline]
        for cid in stale:
            del self._cursors[cid]
        return len(stale)

    def _new_id(self) -> int:
        while True:
            cursor_id = secrets.randbits(63)
            if cursor_id and cursor_id not in self._cursors:
                return cursor_id

    def open(
        self,
        namespace: str,
        source: Iterator[dict[str, Any]],
        owner: frozenset[str],
        *,
        batch_size: int | None = DEFAULT_FIRST_BATCH,
        single_batch: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        """Take the first batch; keep a cursor if more remain. Returns (batch, id or 0)."""
        self.expire_idle()
        batch, ahead, exhausted = take_batch(source, batch_size)
        if exhausted or single_batch:
            return batch, 0
        if len(self._cursors) >= self._max_cursors:
            raise CommandError(
                2,
                "BadValue",
                f"too many open cursors (limit {self._max_cursors}); "
                "close some with killCursors or read them to the end",
            )
        cursor_id = self._new_id()
        self._cursors[cursor_id] = Cursor(
            cursor_id, namespace, owner, source, self._clock(), pending=ahead
        )
        return batch, cursor_id

    def get_more(
        self, cursor_id: int, namespace: str, owner: frozenset[str], batch_size: int | None
    ) -> tuple[list[dict[str, Any]], int]:
        """The next batch of a cursor. Returns (batch, id or 0 once exhausted)."""
        self.expire_idle()
        cursor = self._cursors.get(cursor_id)
        if cursor is None or cursor.owner != owner:
            raise cursor_not_found(cursor_id)
        if cursor.namespace != namespace:
            raise unauthorized(
                f"Requested getMore on namespace '{namespace}', but cursor belongs to a "
                f"different namespace {cursor.namespace}"
            )
        batch, ahead, exhausted = take_batch(cursor.source, batch_size, cursor.pending)
        if exhausted:
            del self._cursors[cursor_id]
            return batch, 0
        cursor.pending = ahead
        cursor.last_used = self._clock()
        return batch, cursor_id

    def namespace_of(self, cursor_id: int) -> str | None:
        """The namespace a cursor reads, if it is open."""
        cursor = self._cursors.get(cursor_id)
        return None if cursor is None else cursor.namespace

    def kill(self, cursor_id: int, namespace: str, owner: frozenset[str]) -> bool:
        """Close a cursor of `namespace` owned by `owner`; False if there is none."""
        cursor = self._cursors.get(cursor_id)
        if cursor is None or cursor.owner != owner or cursor.namespace != namespace:
            return False
        del self._cursors[cursor_id]
        return True
