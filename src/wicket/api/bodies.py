"""Reading HTTP bodies whole but bounded (aiohttp's `read(n)` returns only what has arrived)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp import web

from wicket.errors import BadParameter

CHUNK = 64 * 1024


async def read_bounded(content: aiohttp.StreamReader, limit: int) -> bytes | None:
    """The whole body, or None as soon as it exceeds `limit` bytes."""
    raw = bytearray()
    async for chunk in content.iter_chunked(CHUNK):
        raw += chunk
        if len(raw) > limit:
            return None
    return bytes(raw)


def _size_text(limit: int) -> str:
    if limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    return f"{limit // 1024} KiB"


async def read_json_object(request: web.Request, limit: int) -> dict[str, Any]:
    """A request body that must be one JSON object of at most `limit` bytes (empty: {})."""
    too_large = f"request body is larger than {_size_text(limit)}"
    if request.content_length is not None and request.content_length > limit:
        raise BadParameter(too_large)
    raw = await read_bounded(request.content, limit)
    if raw is None:
        raise BadParameter(too_large)
    try:
        data = json.loads(raw or b"{}")
    except ValueError as exc:
        raise BadParameter(f"request body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadParameter("request body must be a JSON object")
    return data
