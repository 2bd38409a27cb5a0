"""The asyncio shell of localdocdb: TLS listener, per-connection read loop, replies.

Everything protocol-shaped is done by `wicket.wire.mongo` (framing, decoding,
encoding) and everything behavioural by `dispatch.run_command`; this module only
moves bytes, with a timeout on every wait and a cap on every buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from collections.abc import Iterator
from typing import Any

from localdocdb.dispatch import run_command
from localdocdb.state import ConnectionState, ServerState
from wicket.errors import ProtocolError
from wicket.wire.mongo import (
    COMPRESSOR_BY_ID,
    Compressor,
    Message,
    MessageFramer,
    OpCompressed,
    OpDelete,
    OpGetMore,
    OpInsert,
    OpKillCursors,
    OpMsg,
    OpMsgFlags,
    OpQuery,
    OpUpdate,
    compress_message,
    decode_message,
    decompress_message,
    encode_op_msg,
    encode_op_reply,
    op_reply_error,
)

log = logging.getLogger("localdocdb")

READ_CHUNK = 256 * 1024
IDLE_TIMEOUT = 3600.0  # seconds a connection may stay silent (drivers keep pooled ones idle)
WRITE_TIMEOUT = 60.0  # seconds a reply may take to drain to a slow client
TLS_HANDSHAKE_TIMEOUT = 15.0
HELLO_COMMANDS = frozenset({"hello", "isMaster", "ismaster"})
# Per the OP_COMPRESSED spec these are never compressed, so their replies are not either.
UNCOMPRESSIBLE = frozenset(
    {
        "hello",
        "isMaster",
        "ismaster",
        "saslStart",
        "saslContinue",
        "getnonce",
        "authenticate",
        "createUser",
        "updateUser",
        "copydbSaslStart",
        "copydbgetnonce",
        "copydb",
    }
)


def _address(value: Any) -> str:
    if isinstance(value, tuple) and len(value) >= 2:
        host = str(value[0])
        return f"[{host}]:{value[1]}" if ":" in host else f"{host}:{value[1]}"
    return str(value)


def _unwrap_query(query: dict[str, Any]) -> dict[str, Any]:
    """Old drivers wrap OP_QUERY commands as {$query: cmd, $readPreference: ...}."""
    for key in ("$query", "query"):
        inner = query.get(key)
        if isinstance(inner, dict) and len(query) <= 3 and next(iter(query)) == key:
            return inner
    return query


class ClientConnection:
    """One client connection: read frames, run commands, write replies."""

    def __init__(
        self,
        state: ServerState,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request_ids: Iterator[int],
    ) -> None:
        self.state = state
        self.reader = reader
        self.writer = writer
        self.request_ids = request_ids
        ssl_object = writer.get_extra_info("ssl_object")
        peer_der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self.connection = ConnectionState(
            connection_id=state.next_connection_id(),
            peer=_address(writer.get_extra_info("peername")),
            local=_address(writer.get_extra_info("sockname")),
            peer_certificate_der=peer_der,
        )
        self.framer = MessageFramer(state.config.max_message_size)

    async def run(self) -> None:
        """Serve the connection until the client leaves, errs or idles out."""
        state = self.state
        state.connections[self.connection.connection_id] = self.connection
        log.debug("connection %d from %s", self.connection.connection_id, self.connection.peer)
        try:
            while True:
                frame = self.framer.next_frame()
                if frame is None:
                    data = await asyncio.wait_for(self.reader.read(READ_CHUNK), IDLE_TIMEOUT)
                    if not data:
                        return
                    self.framer.receive_data(data)
                    continue
                await self.handle(frame.data)
        except ProtocolError as exc:
            state.log(f"conn{self.connection.connection_id}: closing: protocol error: {exc}")
            log.info("connection %d: protocol error: %s", self.connection.connection_id, exc)
        except TimeoutError:
            log.info("connection %d: timed out", self.connection.connection_id)
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            log.debug("connection %d: %s", self.connection.connection_id, exc)
        finally:
            state.connections.pop(self.connection.connection_id, None)
            self.writer.close()
            with contextlib.suppress(TimeoutError, ConnectionError, ssl.SSLError, OSError):
                await asyncio.wait_for(self.writer.wait_closed(), 5)

    async def send(self, data: bytes) -> None:
        """Write one reply and wait (bounded) for it to drain."""
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), WRITE_TIMEOUT)

    async def handle(self, data: bytes) -> None:
        """Decode one whole message and answer it the way MongoDB would."""
        max_size = self.state.config.max_message_size
        message: Message = decode_message(data, max_message_size=max_size)
        compressor: Compressor | None = None
        if isinstance(message, OpCompressed):
            compressor = message.compressor
            message = decode_message(decompress_message(message, max_message_size=max_size))
            if isinstance(message, OpCompressed):
                raise ProtocolError("OP_COMPRESSED inside OP_COMPRESSED")
        if isinstance(message, OpMsg):
            await self.handle_op_msg(message, compressor)
        elif isinstance(message, OpQuery):
            await self.handle_op_query(message, compressor)
        elif isinstance(message, OpGetMore):
            await self.send(
                op_reply_error(
                    request_id=next(self.request_ids),
                    response_to=message.header.request_id,
                    errmsg="OP_GET_MORE is no longer supported; use the getMore command",
                    code=5739101,
                    code_name="Location5739101",
                )
            )
        elif isinstance(message, OpInsert | OpUpdate | OpDelete | OpKillCursors):
            # Fire-and-forget legacy writes expect no reply; MongoDB 5.1+ ignores them too.
            self.state.log(
                f"conn{self.connection.connection_id}: "
                f"ignored legacy opcode {message.header.op_code}"
            )
        else:
            raise ProtocolError(f"a client may not send opcode {message.header.op_code}")

    def _encode(self, data: bytes, name: str, compressor: Compressor | None) -> bytes:
        if compressor is None or compressor == Compressor.NOOP or name in UNCOMPRESSIBLE:
            return data
        if COMPRESSOR_BY_ID.get(compressor, "") not in self.connection.compressors:
            return data
        return compress_message(data, compressor)

    async def handle_op_msg(self, message: OpMsg, compressor: Compressor | None) -> None:
        """Run an OP_MSG command; honour moreToCome and the exhaust protocol."""
        request_id = message.header.request_id
        try:
            command = message.command()
        except ProtocolError as exc:
            command = {}
            reply: dict[str, Any] = {
                "ok": 0.0,
                "errmsg": str(exc),
                "code": 22,
                "codeName": "InvalidBSON",
            }
        else:
            database = command.get("$db")
            if not isinstance(database, str) or not database:
                reply = {
                    "ok": 0.0,
                    "errmsg": "OP_MSG requests require a $db argument",
                    "code": 40571,
                    "codeName": "Location40571",
                }
            else:
                reply = await run_command(self.state, self.connection, command, database)
        if message.more_to_come:
            return  # the client asked for no reply (unacknowledged write)
        name = next(iter(command), "")
        while True:
            exhaust = message.exhaust_allowed and self._continues(name, command, reply)
            flags = OpMsgFlags.MORE_TO_COME if exhaust else OpMsgFlags(0)
            reply_id = next(self.request_ids)
            data = encode_op_msg(reply, request_id=reply_id, response_to=request_id, flags=flags)
            await self.send(self._encode(data, name, compressor))
            if not exhaust or self.reader.at_eof():
                return
            # Exhaust: keep answering the same request without being asked (spec: OP_MSG
            # exhaustAllowed); each reply answers the previous one.
            request_id = reply_id
            if name in HELLO_COMMANDS:
                command = {**command, "topologyVersion": reply.get("topologyVersion")}
            reply = await run_command(self.state, self.connection, command, command["$db"])

    @staticmethod
    def _continues(name: str, command: dict[str, Any], reply: dict[str, Any]) -> bool:
        if reply.get("ok") != 1.0:
            return False
        if name == "getMore":
            cursor = reply.get("cursor")
            return isinstance(cursor, dict) and cursor.get("id", 0) != 0
        return (
            name in HELLO_COMMANDS and "maxAwaitTimeMS" in command and "topologyVersion" in command
        )

    async def handle_op_query(self, message: OpQuery, compressor: Compressor | None) -> None:
        """OP_QUERY is only for commands now (drivers' first hello); legacy finds are refused."""
        reply_id = next(self.request_ids)
        if not message.is_command:
            await self.send(
                op_reply_error(
                    request_id=reply_id,
                    response_to=message.header.request_id,
                    errmsg=f"Unsupported OP_QUERY command: find on {message.full_collection_name}",
                    code=352,
                    code_name="UnsupportedOpQueryCommand",
                )
            )
            return
        command = _unwrap_query(message.query_document())
        reply = await run_command(self.state, self.connection, command, message.database)
        data = encode_op_reply([reply], request_id=reply_id, response_to=message.header.request_id)
        await self.send(self._encode(data, next(iter(command), ""), compressor))


class LocalDocDBServer:
    """A listening localdocdb server."""

    def __init__(self, state: ServerState, ssl_context: ssl.SSLContext) -> None:
        self.state = state
        self.ssl_context = ssl_context
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._request_ids = itertools.count(1)

    async def start(self) -> int:
        """Start listening; returns the port (useful with port 0)."""
        config = self.state.config
        self._server = await asyncio.start_server(
            self._accept,
            host=config.host,
            port=config.port,
            ssl=self.ssl_context,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
            limit=READ_CHUNK,
        )
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1]) if sockets else config.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await ClientConnection(self.state, reader, writer, self._request_ids).run()
        except asyncio.CancelledError:
            return  # close() ends every connection; nothing more to report
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def close(self) -> None:
        """Stop listening, end every connection, and flush storage."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self._server is not None:
            await asyncio.wait_for(self._server.wait_closed(), 5)
        self.state.close()
