"""Storage backends of the auth service: one small interface, SQLite and (later) PostgreSQL."""

from wicket.backend.base import Backend, Event, EventKind, Item, Watcher

__all__ = ["Backend", "Event", "EventKind", "Item", "Watcher"]
