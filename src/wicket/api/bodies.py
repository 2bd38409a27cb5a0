"""Reading HTTP bodies whole but bounded (aiohttp's `read(n)` returns only what has arrived)."""

from __future__ import annotations

import aiohttp

CHUNK = 64 * 1024


async def read_bounded(content: aiohttp.StreamReader, limit: int) -> bytes | None:
    """The whole body, or None as soon as it exceeds `limit` bytes."""
    raw = bytearray()
    async for chunk in content.iter_chunked(CHUNK):
        raw += chunk
        if len(raw) > limit:
            return None
    return bytes(raw)
