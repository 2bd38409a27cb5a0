"""Wire layer: splitting the "db.collection" full names the legacy opcodes carry."""

from __future__ import annotations

from wicket.errors import LocalProtocolError


def split_full_name(full_name: str) -> tuple[str, str]:
    """Split at the first dot (database names cannot contain one); no dot -> ("name", "")."""
    database, _, collection = full_name.partition(".")
    return database, collection


def encode_cstring(value: str, what: str) -> bytes:
    """UTF-8 bytes plus the terminating NUL; a NUL inside would cut the string short."""
    raw = value.encode("utf-8")
    if b"\x00" in raw:
        raise LocalProtocolError(f"{what} contains a NUL byte")
    return raw + b"\x00"
