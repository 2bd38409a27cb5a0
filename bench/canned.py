"""A fast canned-reply MongoDB server: the upstream that cannot hide Wicket's own cost.

Layer: benchmark tooling. `python -m bench.canned --tls-dir DIR` serves TLS on loopback
and prints `ready <port>`. It keeps documents in memory and answers what the bench and
Wicket's agent send: the handshake (hello / isMaster, OP_QUERY or OP_MSG),
`authenticate` (MONGODB-X509, accepted without checking: this is not a database, it is a
stopwatch), ping, insert, find (by `_id` or everything, with cursors), getMore,
killCursors, drop and anything else with `ok: 1`. localdocdb does real work per
message; this answers from a dict, so the time left is the path's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bson
from bson.raw_bson import RawBSONDocument

from localdocdb.tls import ensure_tls_material, server_ssl_context
from wicket.wire.mongo import (
    MessageFramer,
    OpMsg,
    OpQuery,
    decode_message,
    encode_op_msg,
    encode_op_reply,
)

MAX_MESSAGE_BYTES = 48 * 1024 * 1024
MAX_BATCH_BYTES = 16 * 1024 * 1024 - 64 * 1024
READ_CHUNK = 256 * 1024
HELLO_NAMES = frozenset({"hello", "ismaster", "isMaster"})
RAW = bson.CodecOptions(document_class=RawBSONDocument)

HELLO_REPLY: dict[str, Any] = {
    "isWritablePrimary": True,
    "ismaster": True,
    "helloOk": True,
    "maxBsonObjectSize": 16 * 1024 * 1024,
    "maxMessageSizeBytes": MAX_MESSAGE_BYTES,
    "maxWriteBatchSize": 100_000,
    "localTime": None,
    "logicalSessionTimeoutMinutes": 30,
    "connectionId": 1,
    "minWireVersion": 0,
    "maxWireVersion": 17,
    "readOnly": False,
    "ok": 1.0,
}


@dataclass
class Cursor:
    """What is left of a find: raw documents not sent yet."""

    namespace: str
    documents: list[RawBSONDocument]


@dataclass
class Store:
    """Collections of raw documents by `_id`, and open cursors (shared by connections)."""

    collections: dict[str, dict[Any, RawBSONDocument]] = field(default_factory=dict)
    cursors: dict[int, Cursor] = field(default_factory=dict)
    cursor_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def answer(self, command: dict[str, Any], documents: Sequence[RawBSONDocument]) -> bytes:
        """The reply document (BSON) for one command; `documents` is its insert sequence."""
        name = next(iter(command), "")
        database = str(command.get("$db", "admin"))
        reply: dict[str, Any]
        if name in HELLO_NAMES:
            reply = dict(HELLO_REPLY)
        elif name == "insert":
            collection = self.collections.setdefault(f"{database}.{command[name]}", {})
            batch = [*documents, *command.get("documents", [])]
            for document in batch:
                collection[_key(document["_id"])] = document
            reply = {"n": len(batch), "ok": 1.0}
        elif name == "find":
            reply = self._find(f"{database}.{command[name]}", command)
        elif name == "getMore":
            reply = self._get_more(int(command[name]), command)
        elif name == "killCursors":
            for cursor_id in command.get("cursors", []):
                self.cursors.pop(int(cursor_id), None)
            reply = {"cursorsKilled": command.get("cursors", []), "ok": 1.0}
        elif name == "drop":
            self.collections.pop(f"{database}.{command[name]}", None)
            reply = {"ok": 1.0}
        elif name in ("count", "countDocuments"):
            found = self.collections.get(f"{database}.{command[name]}", {})
            reply = {"n": len(found), "ok": 1.0}
        else:  # ping, authenticate, endSessions, buildInfo, ...: all fine
            reply = {"ok": 1.0}
        return bson.encode(reply)

    def _find(self, namespace: str, command: dict[str, Any]) -> dict[str, Any]:
        collection = self.collections.get(namespace, {})
        wanted = command.get("filter") or {}
        if "_id" in wanted:
            one = collection.get(_key(wanted["_id"]))
            matches = [] if one is None else [one]
        else:
            matches = list(collection.values())
        limit = int(command.get("limit") or 0)
        if limit > 0:
            matches = matches[:limit]
        first = int(command.get("batchSize", 101))
        return self._batch(namespace, matches, first, "firstBatch", command)

    def _get_more(self, cursor_id: int, command: dict[str, Any]) -> dict[str, Any]:
        cursor = self.cursors.pop(cursor_id, None)
        if cursor is None:
            return {"ok": 0.0, "code": 43, "codeName": "CursorNotFound", "errmsg": "no cursor"}
        size = int(command.get("batchSize") or 1_000_000)
        return self._batch(cursor.namespace, cursor.documents, size, "nextBatch", command)

    def _batch(
        self,
        namespace: str,
        documents: list[RawBSONDocument],
        count: int,
        key: str,
        command: dict[str, Any],
    ) -> dict[str, Any]:
        taken: list[RawBSONDocument] = []
        size = 0
        for document in documents:
            if len(taken) >= count or (taken and size + len(document.raw) > MAX_BATCH_BYTES):
                break
            taken.append(document)
            size += len(document.raw)
        rest = documents[len(taken) :]
        cursor_id = 0
        if rest and not command.get("singleBatch"):
            cursor_id = next(self.cursor_ids)
            self.cursors[cursor_id] = Cursor(namespace, rest)
        return {"cursor": {"id": bson.Int64(cursor_id), "ns": namespace, key: taken}, "ok": 1.0}


def _key(value: Any) -> Any:
    """A hashable form of an `_id` (ObjectId, str and int are already hashable)."""
    if isinstance(value, (dict, list, RawBSONDocument)):
        return bson.encode({"v": value})
    return value


async def serve_connection(
    store: Store, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer one connection's messages in order until it closes."""
    framer = MessageFramer(MAX_MESSAGE_BYTES)
    replies = itertools.count(1)
    try:
        while True:
            data = await reader.read(READ_CHUNK)
            if not data:
                return
            framer.receive_data(data)
            while (frame := framer.next_frame()) is not None:
                writer.write(_reply_to(store, frame.data, next(replies)))
            await writer.drain()
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


def _reply_to(store: Store, data: bytes, reply_id: int) -> bytes:
    message = decode_message(data)
    request_id = message.header.request_id
    if isinstance(message, OpQuery):
        command = bson.decode(message.query)
        body = store.answer(command, ())
        return encode_op_reply([body], request_id=reply_id, response_to=request_id)
    if isinstance(message, OpMsg):
        command = bson.decode(message.body)
        documents = [
            RawBSONDocument(raw, RAW)
            for sequence in message.sequences
            for raw in sequence.documents
        ]
        body = store.answer(command, documents)
        return encode_op_msg(body, request_id=reply_id, response_to=request_id)
    raise ValueError(f"canned server: unsupported opcode {message.header.op_code}")


async def serve(tls_dir: Path, host: str, port: int) -> None:
    """Serve until cancelled; print `ready <port>` once listening."""
    context: ssl.SSLContext = server_ssl_context(ensure_tls_material(tls_dir))
    store = Store()
    tasks: set[asyncio.Task[None]] = set()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await serve_connection(store, reader, writer)
        finally:
            tasks.discard(task)

    server = await asyncio.start_server(
        accept, host, port, ssl=context, limit=READ_CHUNK, backlog=2048
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"ready {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench.canned --tls-dir DIR [--port N]`."""
    parser = argparse.ArgumentParser(prog="python -m bench.canned", description=__doc__)
    parser.add_argument("--tls-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.tls_dir, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
