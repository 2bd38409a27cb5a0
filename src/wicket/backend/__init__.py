"""Storage backends of the auth service: one small interface, SQLite and (later) PostgreSQL."""

from wicket.backend.base import (
    Backend,
    Event,
    EventKind,
    Item,
    Watcher,
    WatchExpired,
    WatchOverflow,
)

__all__ = ["Backend", "Event", "EventKind", "Item", "WatchExpired", "WatchOverflow", "Watcher"]
