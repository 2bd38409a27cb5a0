"""Audit layer (pure): a client's command as bounded, credential-free JSON for its audit event.

Rules (binding, see docs/audit.md):
- The value of every key named like a credential is replaced by `REDACTED`, at any
  depth, in documents and in documents inside lists: `pwd`, `password`, `key`,
  `secret`, `token`, `authorization`, and any name matching
  /pass|secret|token|key|credential/i (so `digestPassword`, `sessionToken`, `keyId`).
- In any document whose first key starts with `sasl` (`saslStart`, `saslContinue`,
  also when nested, as in hello's `speculativeAuthenticate`), `payload` is redacted.
- BSON values become relaxed Extended JSON (`{"$oid": ...}`, `{"$date": ...}`, ...).
- Work is bounded before any JSON exists: at most `MAX_NODES` values are visited,
  strings and binaries are cut, nesting stops at `MAX_DEPTH`. The JSON is then cut
  to the byte limit structurally (whole keys and items dropped, the last string
  shortened), so it is always valid JSON; a cut document carries `"truncated": true`.
Sizes are those of compact, ASCII-escaped JSON, i.e. bytes as stored.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from bson import json_util
from bson.binary import Binary
from bson.raw_bson import RawBSONDocument

REDACTED = "<redacted>"
DEFAULT_LIMIT = 4096
MAX_DEPTH = 32
MAX_NODES = 4096
ELLIPSIS = "..."
TRUNCATED_MARKER = "truncated"

_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_SENSITIVE = re.compile(r"pass|secret|token|key|credential", re.IGNORECASE)
_SENSITIVE_EXACT = frozenset({"pwd", "password", "key", "secret", "token", "authorization"})


def is_sensitive(name: str) -> bool:
    """Whether a field's value must never reach the audit log."""
    return name.lower() in _SENSITIVE_EXACT or _SENSITIVE.search(name) is not None


def json_size(value: Any) -> int:
    """Bytes of `value` as compact ASCII JSON (the way events are stored)."""
    return len(json.dumps(value, separators=(",", ":")))


class _Walk:
    """One bounded conversion of BSON-ish values to redacted plain JSON."""

    def __init__(self, max_nodes: int, max_string: int) -> None:
        self.nodes_left = max_nodes
        self.max_string = max_string
        self.truncated = False

    def value(self, value: Any, depth: int) -> Any:
        self.nodes_left -= 1
        if self.nodes_left < 0 or depth > MAX_DEPTH:
            self.truncated = True
            return ELLIPSIS
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):  # bson.Int64 too
            return int(value)
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            return {"$numberDouble": _NON_FINITE[repr(value)]}
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return self.mapping(value, depth)
        if isinstance(value, list | tuple):
            return self.sequence(value, depth)
        if isinstance(value, bytes | bytearray | memoryview):
            return self.binary(bytes(value[: self.max_string]), value, len(value))
        try:
            converted = json_util.default(value, json_util.RELAXED_JSON_OPTIONS)
        except Exception:  # any BSON type json_util cannot express: its text
            return self.text(str(value))
        return self.value(converted, depth)

    def text(self, value: str) -> str:
        if len(value) <= self.max_string:
            return value
        self.truncated = True
        return value[: self.max_string] + ELLIPSIS

    def binary(self, head: bytes, original: object, length: int) -> dict[str, Any]:
        if length > len(head):
            self.truncated = True
        subtype = original.subtype if isinstance(original, Binary) else 0
        return {"$binary": {"base64": base64.b64encode(head).decode(), "subType": f"{subtype:02x}"}}

    def mapping(self, value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        sasl = False
        for index, (raw_name, item) in enumerate(value.items()):
            if self.nodes_left <= 0:
                self.truncated = True
                break
            name = str(raw_name)
            if index == 0:
                sasl = name.lower().startswith("sasl")
            if is_sensitive(name) or (sasl and name.lower() == "payload"):
                self.nodes_left -= 1
                out[name] = REDACTED
                continue
            out[name] = self.value(item, depth + 1)
        return out

    def sequence(self, value: list[Any] | tuple[Any, ...], depth: int) -> list[Any]:
        out: list[Any] = []
        for item in value:
            if self.nodes_left <= 0:
                self.truncated = True
                break
            out.append(self.value(item, depth + 1))
        return out


def redact(value: Any, *, max_nodes: int = MAX_NODES, max_string: int = DEFAULT_LIMIT) -> Any:
    """`value` as plain JSON with credential-like fields redacted (bounded work)."""
    return _Walk(max_nodes, max_string).value(value, 0)


class _NoRoom(Exception):
    """The value cannot be represented in the remaining budget at all."""


def _fit(value: Any, budget: int) -> Any:
    """The largest prefix-shaped form of `value` whose JSON fits in `budget` bytes."""
    if json_size(value) <= budget:
        return value
    if isinstance(value, str):
        low, high = 0, len(value)
        if json_size(ELLIPSIS) > budget:
            raise _NoRoom
        while low < high:  # largest n with json_size(value[:n] + ELLIPSIS) <= budget
            middle = (low + high + 1) // 2
            if json_size(value[:middle] + ELLIPSIS) <= budget:
                low = middle
            else:
                high = middle - 1
        return value[:low] + ELLIPSIS
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        used = 2
        for name, item in value.items():
            room = budget - used - (1 if out else 0) - json_size(name) - 1
            if room < 1:
                break
            try:
                fitted = _fit(item, room)
            except _NoRoom:
                break
            out[name] = fitted
            used += (1 if len(out) > 1 else 0) + json_size(name) + 1 + json_size(fitted)
            if fitted is not item:
                break
        if json_size(out) > budget:
            raise _NoRoom
        return out
    if isinstance(value, list):
        items: list[Any] = []
        used = 2
        for item in value:
            room = budget - used - (1 if items else 0)
            if room < 1:
                break
            try:
                fitted = _fit(item, room)
            except _NoRoom:
                break
            items.append(fitted)
            used += (1 if len(items) > 1 else 0) + json_size(fitted)
            if fitted is not item:
                break
        if json_size(items) > budget:
            raise _NoRoom
        return items
    raise _NoRoom


def truncate_json(document: dict[str, Any], limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """`document` cut to at most `limit` bytes of JSON, marked `"truncated": true` if cut."""
    if json_size(document) <= limit:
        return document
    marker_cost = json_size({TRUNCATED_MARKER: True}) - 1  # `"truncated":true` plus a comma
    body = {name: item for name, item in document.items() if name != TRUNCATED_MARKER}
    try:
        fitted = _fit(body, max(2, limit - marker_cost))
    except _NoRoom:
        fitted = {}
    return {TRUNCATED_MARKER: True, **fitted}


def command_json(command: Mapping[str, Any] | bytes, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """A client command (decoded, or raw BSON bytes) as redacted JSON of at most `limit` bytes."""
    document: Mapping[str, Any]
    if isinstance(command, bytes | bytearray | memoryview):
        try:
            document = RawBSONDocument(bytes(command))
            list(document.keys())  # validates the top level now, not mid-walk
        except Exception as error:  # bson raises InvalidBSON and friends
            return {"unparsed": True, "error": str(error)[:200]}
    else:
        document = command
    walk = _Walk(MAX_NODES, limit)
    plain = walk.mapping(document, 0)
    fitted = truncate_json(plain, limit)
    if walk.truncated and fitted.get(TRUNCATED_MARKER) is not True:
        fitted = truncate_json({TRUNCATED_MARKER: True, **plain}, limit)
    return fitted
