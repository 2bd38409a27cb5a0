"""A minimal asyncio MongoDB client over TLS, built on our wire codec, for the IAM tests.

It stands in for the agent's upstream connection (one OP_MSG command at a time,
``$db`` added, replies decoded) so MONGODB-AWS runs over real bytes and TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path
from typing import Any

from wicket.wire.mongo import MessageFramer, OpMsg, decode_message, encode_op_msg

TIMEOUT_SECONDS = 15.0


class RawUpstream:
    """One TLS connection to a MongoDB-compatible server; `command(db, cmd)` runs one command."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._framer = MessageFramer()
        self._next_id = 0

    @classmethod
    async def connect(cls, port: int, ca_file: Path) -> RawUpstream:
        """Connect to 127.0.0.1:`port`, verifying the server as `localhost` against `ca_file`."""
        context = ssl.create_default_context(cafile=str(ca_file))
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost"),
            TIMEOUT_SECONDS,
        )
        return cls(reader, writer)

    async def command(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        """Send `cmd` to database `db` and return the reply document."""
        self._next_id += 1
        self._writer.write(encode_op_msg({**cmd, "$db": db}, request_id=self._next_id))
        await asyncio.wait_for(self._writer.drain(), TIMEOUT_SECONDS)
        while True:
            frame = self._framer.next_frame()
            if frame is not None:
                message = decode_message(frame.data)
                assert isinstance(message, OpMsg)
                assert message.header.response_to == self._next_id
                return message.body_document()
            chunk = await asyncio.wait_for(self._reader.read(65536), TIMEOUT_SECONDS)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self._framer.receive_data(chunk)

    async def close(self) -> None:
        """Close the connection."""
        self._writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(self._writer.wait_closed(), TIMEOUT_SECONDS)
