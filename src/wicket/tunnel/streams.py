"""Tunnel layer, I/O shell: read and write protocol frames on asyncio streams with timeouts."""

from __future__ import annotations

import asyncio
from typing import Any

from wicket.errors import RemoteProtocolError, Timeout
from wicket.tunnel.protocol import (
    FRAME_HEADER,
    MAX_FRAME_SIZE,
    ControlMessage,
    check_frame_length,
    decode_frame_body,
    decode_message,
    encode_message,
)


async def read_frame(
    reader: asyncio.StreamReader, *, max_size: int = MAX_FRAME_SIZE
) -> dict[str, Any]:
    """Read exactly one frame (nothing past it is consumed); EOF or a bad frame raises."""
    try:
        prefix = await reader.readexactly(FRAME_HEADER.size)
        (length,) = FRAME_HEADER.unpack(prefix)
        check_frame_length(length, max_size)
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError as error:
        raise RemoteProtocolError(
            f"tunnel connection closed mid-frame ({len(error.partial)} bytes read)"
            if error.partial
            else "tunnel connection closed"
        ) from None
    return decode_frame_body(body)


async def read_message(reader: asyncio.StreamReader, seconds: float | None) -> ControlMessage:
    """Read one control message, waiting at most `seconds` (None: no limit)."""
    try:
        async with asyncio.timeout(seconds):
            payload = await read_frame(reader)
    except TimeoutError:
        raise Timeout(f"no tunnel message within {seconds:g} s") from None
    return decode_message(payload)


async def write_message(
    writer: asyncio.StreamWriter, message: ControlMessage, seconds: float
) -> None:
    """Send one control message, waiting at most `seconds` for the buffer to drain."""
    writer.write(encode_message(message))
    try:
        async with asyncio.timeout(seconds):
            await writer.drain()
    except TimeoutError:
        raise Timeout(f"tunnel peer did not read a message within {seconds:g} s") from None


async def close_writer(writer: asyncio.StreamWriter, seconds: float = 5.0) -> None:
    """Close a stream and wait (bounded) for it; errors while closing do not matter."""
    writer.close()
    try:
        async with asyncio.timeout(seconds):
            await writer.wait_closed()
    except (OSError, TimeoutError):  # ssl.SSLError is an OSError: a lost close_notify
        return
