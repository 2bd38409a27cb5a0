"""The access watch stream's wire format (`GET /v1/watch/access`), shared by both ends.

Pure: no I/O. The auth service encodes, agents (and later proxies) decode. The body
is NDJSON, one JSON object per line, each at most `MAX_LINE_BYTES`:

- `{"type": "put", "kind": "user"|"role"|"lock", "name": N, "revision": R, "resource": {...}}`
- `{"type": "delete", "kind": ..., "name": N, "revision": R}`
- `{"type": "synced", "revision": R}`: the snapshot that started the stream is complete;
  what came before it is the whole state, what follows are changes as they happen.
- `{"type": "ping"}`: a keep-alive, every `KEEPALIVE_SECONDS`; a reader that hears nothing
  for `DEAD_AFTER_SECONDS` treats the stream as dead and reconnects.

Users are public data only (`name`, `roles`, `traits`): never a password hash or an OTP
secret. Roles and locks are their resources (`kind: role`, `kind: lock`). The stream
ends (the reader reconnects and gets a new snapshot) whenever the auth service cannot
keep up or a resume point is lost; no event is ever silently skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from wicket.errors import RemoteProtocolError

WATCH_ACCESS_PATH = "/v1/watch/access"
MAX_LINE_BYTES = 2 * 1024 * 1024  # a stored record is at most 1 MiB (wicket.auth.store)
KEEPALIVE_SECONDS = 5.0
DEAD_AFTER_SECONDS = 15.0


class WatchKind(Enum):
    """What a line is about; each kind lives under one backend prefix."""

    USER = "user"
    ROLE = "role"
    LOCK = "lock"


PREFIXES: Mapping[WatchKind, str] = {
    WatchKind.USER: "/users/",
    WatchKind.ROLE: "/roles/",
    WatchKind.LOCK: "/locks/",
}


@dataclass(frozen=True)
class Put:
    """A record was created or replaced (or is part of the snapshot)."""

    kind: WatchKind
    name: str
    revision: int
    resource: Mapping[str, Any]


@dataclass(frozen=True)
class Delete:
    """A record was deleted (or expired)."""

    kind: WatchKind
    name: str
    revision: int


@dataclass(frozen=True)
class Synced:
    """The snapshot is complete."""

    revision: int


@dataclass(frozen=True)
class Ping:
    """A keep-alive."""


WatchLine = Put | Delete | Synced | Ping


def public_user(data: Mapping[str, Any]) -> dict[str, Any]:
    """The only user fields that ever leave the auth service on this stream."""
    traits = data.get("traits")
    return {
        "name": str(data.get("name", "")),
        "roles": [str(role) for role in data.get("roles", ()) if isinstance(role, str)],
        "traits": {
            str(name): [str(v) for v in values if isinstance(v, str)]
            for name, values in (traits.items() if isinstance(traits, Mapping) else ())
            if isinstance(values, list | tuple)
        },
    }


def encode_line(line: WatchLine) -> bytes:
    """One NDJSON line (with its newline)."""
    body: dict[str, Any]
    if isinstance(line, Put):
        body = {
            "type": "put",
            "kind": line.kind.value,
            "name": line.name,
            "revision": line.revision,
            "resource": dict(line.resource),
        }
    elif isinstance(line, Delete):
        body = {
            "type": "delete",
            "kind": line.kind.value,
            "name": line.name,
            "revision": line.revision,
        }
    elif isinstance(line, Synced):
        body = {"type": "synced", "revision": line.revision}
    else:
        body = {"type": "ping"}
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def _kind(body: Mapping[str, Any]) -> WatchKind:
    try:
        return WatchKind(body.get("kind"))
    except ValueError:
        raise RemoteProtocolError(f"watch line of unknown kind {body.get('kind')!r}") from None


def _text(body: Mapping[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise RemoteProtocolError(f'watch line without a "{field}"')
    return value


def _revision(body: Mapping[str, Any]) -> int:
    value = body.get("revision")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RemoteProtocolError('watch line without a valid "revision"')
    return value


def decode_line(raw: bytes) -> WatchLine:
    """Parse one line (without its newline); RemoteProtocolError if it is not one of ours."""
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise RemoteProtocolError(f"watch line is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise RemoteProtocolError("watch line is not a JSON object")
    kind = body.get("type")
    if kind == "ping":
        return Ping()
    if kind == "synced":
        return Synced(_revision(body))
    if kind == "put":
        resource = body.get("resource")
        if not isinstance(resource, dict):
            raise RemoteProtocolError('watch "put" line without a resource')
        return Put(_kind(body), _text(body, "name"), _revision(body), resource)
    if kind == "delete":
        return Delete(_kind(body), _text(body, "name"), _revision(body))
    raise RemoteProtocolError(f"watch line of unknown type {kind!r}")


class LineSplitter:
    """Bytes in, whole lines out, with a cap on a line's length (limits at the edge)."""

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self.max_line = max_line
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The complete lines `data` finishes (empty lines skipped)."""
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > self.max_line:
                    raise RemoteProtocolError(
                        f"watch line longer than {self.max_line} bytes: stream dropped"
                    )
                return
            if end > self.max_line:
                raise RemoteProtocolError(
                    f"watch line longer than {self.max_line} bytes: stream dropped"
                )
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if line.strip():
                yield line
