"""Storage layer: the argument rules every backend enforces the same way.

Keys are `/`-separated paths with no empty segment; values are bytes up to 16 MiB;
expiry times are timezone-aware. Shared so SQLite and PostgreSQL refuse exactly the
same inputs with the same `BadParameter` messages.
"""

from __future__ import annotations

import datetime

from wicket.errors import BadParameter

MAX_KEY_BYTES = 4096
MAX_VALUE_BYTES = 16 * 1024 * 1024
MAX_LIST_LIMIT = 1_000_000


def _check_path_text(text: object, what: str) -> str:
    """Common rules of keys and prefixes: a str, starts with `/`, printable, bounded."""
    if not isinstance(text, str):
        raise BadParameter(f"backend {what} must be a string, not {type(text).__name__}")
    if not text.startswith("/"):
        raise BadParameter(f"backend {what} {text[:100]!r} must start with '/'")
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadParameter(f"backend {what} {text[:100]!r} is not valid UTF-8") from exc
    if len(encoded) > MAX_KEY_BYTES:
        raise BadParameter(f"backend {what} is {len(encoded)} bytes; the limit is {MAX_KEY_BYTES}")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        raise BadParameter(f"backend {what} {text[:100]!r} contains a control character")
    return text


def check_key(key: object) -> str:
    """Refuse keys that are not `/a/b/c` paths so prefixes and listings stay unambiguous."""
    text = _check_path_text(key, "key")
    if "" in text[1:].split("/"):
        raise BadParameter(f"backend key {text[:100]!r} has an empty path segment")
    return text


def check_prefix(prefix: object) -> str:
    """Refuse prefixes that could never match a valid key (a trailing `/` is allowed)."""
    text = _check_path_text(prefix, "prefix")
    if "//" in text:
        raise BadParameter(f"backend prefix {text[:100]!r} has an empty path segment")
    return text


def check_value(value: object) -> bytes:
    """Refuse non-bytes and values over 16 MiB before they reach storage."""
    if not isinstance(value, bytes):
        raise BadParameter(f"backend value must be bytes, not {type(value).__name__}")
    if len(value) > MAX_VALUE_BYTES:
        raise BadParameter(
            f"backend value is {len(value)} bytes; the limit is {MAX_VALUE_BYTES} (16 MiB)"
        )
    return value


def check_expires(expires: object) -> datetime.datetime | None:
    """Refuse naive or non-datetime expiry times; returns the time in UTC."""
    if expires is None:
        return None
    if not isinstance(expires, datetime.datetime):
        raise BadParameter(f"expiry must be a datetime, not {type(expires).__name__}")
    if expires.tzinfo is None or expires.utcoffset() is None:
        raise BadParameter("expiry must be timezone-aware (UTC), not a naive datetime")
    return expires.astimezone(datetime.UTC)


def check_revision(revision: object, what: str = "revision") -> int:
    """Refuse revisions that are not non-negative integers."""
    if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
        raise BadParameter(f"{what} must be a non-negative integer, not {revision!r}")
    return revision


def check_limit(limit: object) -> int | None:
    """Refuse listing limits that are not positive integers."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise BadParameter(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}, not {limit!r}")
    return limit
