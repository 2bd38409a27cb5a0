"""Auth service domain layer: one-time move of audit events from the KV backend to the store.

Wicket before the indexed event store kept each event at
`/events/<time>-<uuid>` in the KV backend. On start the auth service moves them
into the event store in pages (insert, then delete the keys), so the move is
idempotent and resumable: a crash in the middle leaves keys that the next start
moves again, and the store keeps one event per id. After the first start, the
prefix is empty and the move costs one empty listing.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from wicket.auth.events import EventStore
from wicket.backend.base import Backend
from wicket.errors import BadParameter

log = logging.getLogger("wicket.auth")

LEGACY_PREFIX = "/events/"
PAGE = 500


async def import_kv_events(backend: Backend, store: EventStore) -> int:
    """Move every event under `/events/` into `store`; how many were moved."""
    moved = 0
    while True:
        items = await backend.list_prefix(LEGACY_PREFIX, limit=PAGE)
        if not items:
            break
        events: list[Any] = []
        for item in items:
            try:
                events.append(json.loads(item.value))
            except ValueError:
                log.error("dropping unreadable legacy audit event %s", item.key)
        try:
            await store.append(events)
        except BadParameter:  # one bad event must not keep the rest from moving
            for event in events:
                try:
                    await store.append([event])
                except BadParameter as error:
                    name = event.get("id") if isinstance(event, dict) else None
                    log.error("dropping invalid legacy audit event %s: %s", name, error)
        for item in items:
            await backend.delete(item.key)
        moved += len(items)
    if moved:
        log.info("moved %d audit events from the backend's /events/ to the event store", moved)
    return moved
