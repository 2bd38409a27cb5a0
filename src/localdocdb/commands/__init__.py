"""localdocdb command handlers, one module per family; importing them fills the table."""

from __future__ import annotations

import importlib

COMMAND_MODULES = ("handshake", "admin", "auth", "users", "crud", "queries", "catalog")


def load_all() -> None:
    """Import every command module so their `@command` registrations run."""
    for name in COMMAND_MODULES:
        importlib.import_module(f"localdocdb.commands.{name}")
