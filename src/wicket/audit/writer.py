"""Audit layer (asyncio shell): the writer that never blocks the data path and loses nothing.

How an event travels (DESIGN.md "Performance shape"):
1. `emit` (synchronous, never awaits) appends it to a bounded in-memory queue. When
   the queue is full, or the writer is closed, the event goes straight to the spool's
   overflow segment (buffered write; fsync'd in batches by a timer): never dropped.
   Order is kept: once an overflow segment is open, every event goes there until it
   is sealed, and before sealing it the writer journals what is still queued (older
   events), so the spool drains in emit order. (The auth service accepts a session's
   events only after its start: see `wicket.auth.event_policy`.)
2. `run` takes batches (up to `batch_size`, or what arrived within `flush_interval`)
   and journals each to a spool segment (in a thread: write, fsync, rename) before
   anything is sent, so a crash mid-send loses nothing. The JSON-lines file, when
   configured, gets each event once, when it is first written to disk.
3. It then drains the spool's segments in order through `send` (the auth API's
   `POST /v1/events`); a segment is deleted only after every event in it was
   acknowledged. A failed send keeps the segment and retries with exponential
   backoff, while new events keep being journaled. A resend after a lost
   acknowledgement is harmless: the store keeps one event per id.
4. A batch the auth service refuses (`BadParameter`: invalid, or events this host may
   not record) can never succeed as it is. The writer resends its events one by one,
   so one refused event does not take the others with it: each event refused on its
   own is logged (id, type and the reason; never its body), set aside in
   `rejected-<segment>.jsonl` (kept on disk, never resent) and dropped from
   delivery, and draining goes on. Any other failure (unreachable, timeout, 5xx, a
   refused certificate) is transient: the segment stays and is retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wicket.api.client import AuthClient
from wicket.audit.events import AuditEvent
from wicket.audit.redaction import json_size
from wicket.audit.spool import Spool, append_private, encode_lines, prepare_private_directory
from wicket.errors import BadParameter, UpstreamError

log = logging.getLogger("wicket.audit")

Send = Callable[[list[dict[str, Any]]], Awaitable[None]]
MAX_BATCH_BYTES = 4 * 1024 * 1024
SPOOL_DIR_NAME = "audit-spool"


@dataclass
class WriterStats:
    """Counters for tests and status output (mutable, owned by the writer)."""

    emitted: int = 0
    overflowed: int = 0
    sent: int = 0
    send_failures: int = 0
    rejected: int = 0


class AuditWriter:
    """Collects events from the data path and delivers them to the auth service, via disk."""

    def __init__(
        self,
        *,
        send: Send,
        spool_dir: Path,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        jsonl_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        send_timeout: float = 30.0,
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
    ) -> None:
        if queue_size < 1 or batch_size < 1 or flush_interval <= 0 or send_timeout <= 0:
            raise BadParameter("audit writer sizes and intervals must be positive")
        self._send = send
        self._spool = Spool(spool_dir)
        self._queue: deque[AuditEvent] = deque()
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._jsonl_path = jsonl_path
        if jsonl_path is not None:
            prepare_private_directory(jsonl_path.parent)
        self._clock = clock
        self._send_timeout = send_timeout
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._wakeup = asyncio.Event()
        self._closing = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._sync_timer: asyncio.TimerHandle | None = None
        self._cache: dict[Path, list[dict[str, Any]]] = {}  # journaled by us: no re-read
        # segment writes in worker threads; `close` waits for them (they hold the only copy)
        self._writes: set[asyncio.Future[None]] = set()
        self._acknowledged: dict[Path, int] = {}  # events of a segment already acknowledged
        self.stats = WriterStats()

    @property
    def spool(self) -> Spool:
        """The spool (for inspection)."""
        return self._spool

    @property
    def queued(self) -> int:
        """Events in memory, not yet on disk."""
        return len(self._queue)

    # -- the data path's side ---------------------------------------------------------------

    def emit(self, event: AuditEvent) -> None:
        """Record an event without ever waiting: queue it, or spill it to the spool."""
        self.stats.emitted += 1
        if not self._closed and not self._spool.overflowing and len(self._queue) < self._queue_size:
            self._queue.append(event)
            if len(self._queue) >= self._batch_size:
                self._wakeup.set()
            return
        self.stats.overflowed += 1
        data = [event.to_json()]
        self._spool.append_overflow(data)
        self._write_jsonl(data)
        if self._closed:  # nobody will seal it: number it now, for the next start to send
            self._spool.seal()
        else:
            self._schedule_sync()

    def _schedule_sync(self) -> None:
        """fsync the overflow segment in batches: at most one timer, or now without a loop."""
        if self._sync_timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or self._closed:
            self._spool.sync()
            return
        self._sync_timer = loop.call_later(self._flush_interval, self._sync_now)

    def _sync_now(self) -> None:
        self._sync_timer = None
        self._spool.sync()

    def _write_jsonl(self, events: list[dict[str, Any]]) -> None:
        if self._jsonl_path is not None:
            try:
                append_private(self._jsonl_path, encode_lines(events))
            except OSError as error:  # the local log is a copy; the spool is what counts
                log.error("cannot append to %s: %s", self._jsonl_path, error)

    # -- background delivery ------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Start `run` as a task (kept here, so `close` can finish it)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="audit writer")
        return self._task

    async def run(self) -> None:
        """Journal batches and deliver the spool until closed."""
        if self._task is None or self._task.done():
            self._task = asyncio.current_task()
        backoff = self._retry_initial
        next_attempt = 0.0
        most_batches = max(1, self._queue_size // self._batch_size)
        while True:
            # Everything queued goes to disk first (bounded, so delivery is never starved).
            for _ in range(most_batches):
                if not self._queue:
                    break
                await self._journal(self._take_batch())
            if self._closing or self._clock() >= next_attempt:
                if await self._drain():
                    backoff = self._retry_initial
                    next_attempt = 0.0
                else:
                    next_attempt = self._clock() + backoff
                    backoff = min(backoff * 2, self._retry_max)
            if self._closing and not self._queue:
                return
            self._wakeup.clear()
            if len(self._queue) < self._batch_size and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._flush_interval)

    def _take_batch(self) -> list[AuditEvent]:
        batch: list[AuditEvent] = []
        while self._queue and len(batch) < self._batch_size:
            batch.append(self._queue.popleft())
        return batch

    async def _journal(self, batch: list[AuditEvent]) -> None:
        """Put a batch on disk (and in the JSON-lines file) before any attempt to send it."""
        if not batch:
            return
        data = [event.to_json() for event in batch]
        path = self._spool.allocate()
        # Once the events left the queue they are only in `data`: the write goes on even if
        # this task is cancelled meanwhile, and `close` waits for it before it returns.
        write = asyncio.ensure_future(asyncio.to_thread(self._write_segment, path, data))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)
        await asyncio.shield(write)
        if sum(len(events) for events in self._cache.values()) + len(data) <= self._queue_size:
            self._cache[path] = data

    def _write_segment(self, path: Path, data: list[dict[str, Any]]) -> None:
        Spool.write_segment(path, data)
        self._write_jsonl(data)

    async def _drain(self) -> bool:
        """Send every complete segment in order; False at the first failure."""
        if self._sync_timer is not None:
            self._sync_timer.cancel()
            self._sync_timer = None
        if self._spool.overflowing:
            while self._queue:  # older than the overflow: journaled before it is numbered
                await self._journal(self._take_batch())
        self._spool.seal()
        for path in self._spool.segments():
            events = self._cache.pop(path, None)
            if events is None:
                events = await asyncio.to_thread(_read_segment, path)
            done = self._acknowledged.get(path, 0)
            try:
                for chunk_start, chunk in _chunks(events, self._batch_size, done):
                    try:
                        await asyncio.wait_for(self._send(chunk), self._send_timeout)
                        self.stats.sent += len(chunk)
                    except BadParameter as error:
                        await self._send_one_by_one(path, chunk_start, chunk, error)
                    self._acknowledged[path] = chunk_start + len(chunk)
            except asyncio.CancelledError:
                self._cache[path] = events
                raise
            except Exception as error:  # unreachable, timeout, 5xx: keep, retry later
                self._cache[path] = events
                self.stats.send_failures += 1
                log.warning("audit events not delivered, kept in the spool: %s", error)
                return False
            self._acknowledged.pop(path, None)
            self._spool.remove(path)
        return True

    async def _send_one_by_one(
        self, path: Path, chunk_start: int, chunk: list[dict[str, Any]], error: BadParameter
    ) -> None:
        """Deliver a refused batch's events singly; set aside (and log) each one refused."""
        for offset, item in enumerate(chunk):
            if len(chunk) == 1:
                refusal: BadParameter | None = error
            else:
                try:
                    await asyncio.wait_for(self._send([item]), self._send_timeout)
                    refusal = None
                except BadParameter as single:
                    refusal = single
            if refusal is None:
                self.stats.sent += 1
            else:
                target = self._spool.directory / f"rejected-{path.name}"
                await asyncio.to_thread(append_private, target, encode_lines([item]))
                self.stats.rejected += 1
                log.error(
                    "the auth service refused audit event %s (%s): %s; set aside in %s",
                    item.get("id"),
                    item.get("type"),
                    refusal,
                    target,
                )
            self._acknowledged[path] = chunk_start + offset + 1

    async def close(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 (the agreed API)
        """Deliver what can be delivered within `timeout`; everything else stays spooled."""
        self._closing = True
        self._wakeup.set()
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            except Exception as error:
                log.error("audit writer stopped with an error: %s", error)
        for outcome in await asyncio.gather(*self._writes, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.error("audit events could not be journaled: %s", outcome)
        self._closed = True
        if self._sync_timer is not None:
            self._sync_timer.cancel()
            self._sync_timer = None
        if self._queue:  # older than any open overflow: a segment of its own, before it
            data = [event.to_json() for event in self._queue]
            self._queue.clear()
            self.stats.overflowed += len(data)
            Spool.write_segment(self._spool.allocate(), data)
            self._write_jsonl(data)
        self._spool.close()


def _read_segment(path: Path) -> list[dict[str, Any]]:
    return list(Spool.read(path))


def _chunks(
    events: list[dict[str, Any]], batch_size: int, start: int
) -> list[tuple[int, list[dict[str, Any]]]]:
    """Send-sized pieces of a segment from `start`: at most `batch_size` events and 4 MiB."""
    pieces: list[tuple[int, list[dict[str, Any]]]] = []
    index = start
    while index < len(events):
        piece: list[dict[str, Any]] = []
        size = 0
        first = index
        while index < len(events) and len(piece) < batch_size:
            event_size = json_size(events[index])
            if piece and size + event_size > MAX_BATCH_BYTES:
                break
            piece.append(events[index])
            size += event_size
            index += 1
        pieces.append((first, piece))
    return pieces


def auth_api_sender(client: AuthClient) -> Send:
    """A `send` for the writer: `POST /v1/events` as the client's identity."""

    async def send(events: list[dict[str, Any]]) -> None:
        answer = await client.post("/v1/events", {"events": events})
        if not isinstance(answer, dict) or not isinstance(answer.get("accepted"), int):
            raise UpstreamError("the auth service did not acknowledge the audit events")

    return send


def spool_directory(data_dir: Path) -> Path:
    """Where a process with `data_dir` keeps its audit spool."""
    return Path(data_dir) / SPOOL_DIR_NAME
