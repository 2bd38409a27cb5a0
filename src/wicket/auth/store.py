"""Auth service domain layer: JSON records over the backend, and the keys they live under.

The backend stores bytes; every service here stores one JSON object per key (see
`docs/architecture.md`, "Backend keys"). Secrets (join and invite tokens) are keyed
by their SHA-256 only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from wicket.backend.base import Backend, Item
from wicket.errors import BadParameter, WicketError

Clock = Callable[[], datetime]
RandomBytes = Callable[[int], bytes]

MAX_RECORD_BYTES = 1 << 20

USERS = "/users/"
INVITES = "/invites/"
ROLES = "/roles/"
TOKENS = "/tokens/"
DATABASES = "/databases/"
DB_SERVERS = "/db_servers/"
LOGIN_FAILURES = "/login_failures/"
CLUSTER_NAME = "/cluster/name"


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the default clock of every service)."""
    return datetime.now(UTC)


def sha256_hex(secret: str) -> str:
    """The hex SHA-256 under which a secret token is stored."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def key(prefix: str, *parts: str) -> str:
    """Join validated name parts under a prefix; a part may never contain `/`."""
    for part in parts:
        if not part or "/" in part:
            raise BadParameter(f"invalid name {part!r} for a stored key")
    return prefix + "/".join(parts)


def encode_time(value: datetime) -> str:
    """ISO 8601 in UTC, as records store times."""
    return value.astimezone(UTC).isoformat()


def decode_time(value: object) -> datetime:
    """Read a time written by `encode_time`."""
    if not isinstance(value, str) or len(value) > 64:
        raise WicketError(f"stored time {value!r} is not an ISO 8601 string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


@dataclass(frozen=True)
class JsonItem:
    """A stored JSON object with the revision compare-and-swap needs."""

    key: str
    data: dict[str, Any]
    revision: int
    expires: datetime | None = None


def _decode(item: Item) -> JsonItem:
    if len(item.value) > MAX_RECORD_BYTES:
        raise WicketError(f"stored record at {item.key} is larger than {MAX_RECORD_BYTES} bytes")
    try:
        data = json.loads(item.value)
    except ValueError as error:
        raise WicketError(f"stored record at {item.key} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise WicketError(f"stored record at {item.key} is not a JSON object")
    return JsonItem(item.key, data, item.revision, item.expires)


def _encode(record_key: str, data: dict[str, Any]) -> bytes:
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")
    if len(raw) > MAX_RECORD_BYTES:
        raise BadParameter(f"record for {record_key} is larger than {MAX_RECORD_BYTES} bytes")
    return raw


class JsonStore:
    """The backend seen as JSON objects: what every auth service reads and writes."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def get(self, record_key: str) -> JsonItem | None:
        """The record at `record_key`, or None."""
        item = await self.backend.get(record_key)
        return None if item is None else _decode(item)

    async def put(
        self, record_key: str, data: dict[str, Any], *, expires: datetime | None = None
    ) -> JsonItem:
        """Create or replace a record."""
        item = await self.backend.put(record_key, _encode(record_key, data), expires=expires)
        return JsonItem(item.key, data, item.revision, item.expires)

    async def create(
        self, record_key: str, data: dict[str, Any], *, expires: datetime | None = None
    ) -> JsonItem | None:
        """Create a record only if absent; None if it exists."""
        item = await self.backend.create(record_key, _encode(record_key, data), expires=expires)
        return None if item is None else JsonItem(item.key, data, item.revision, item.expires)

    async def compare_and_swap(
        self,
        record_key: str,
        revision: int,
        data: dict[str, Any],
        *,
        expires: datetime | None = None,
    ) -> JsonItem | None:
        """Replace a record only at `revision`; None when someone else changed it first."""
        item = await self.backend.compare_and_swap(
            record_key, revision, _encode(record_key, data), expires=expires
        )
        return None if item is None else JsonItem(item.key, data, item.revision, item.expires)

    async def delete(self, record_key: str) -> bool:
        """Delete a record; False if it did not exist."""
        return await self.backend.delete(record_key)

    async def compare_and_delete(self, record_key: str, revision: int) -> bool:
        """Delete a record only at `revision` (how single-use secrets are consumed)."""
        return await self.backend.compare_and_delete(record_key, revision)

    async def list(self, prefix: str) -> list[JsonItem]:
        """Every live record under `prefix`, in key order."""
        return [_decode(item) for item in await self.backend.list_prefix(prefix)]

    async def cluster_name(self, default: str = "wicket") -> str:
        """The cluster name the auth service stored on first start, else `default`."""
        record = await self.get(CLUSTER_NAME)
        if record is None:
            return default
        name = record.data.get("name")
        return name if isinstance(name, str) and name else default
