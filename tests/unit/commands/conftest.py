"""Fixtures for command tests: a real ServerState and clients that run the real handlers.

Replies go through a BSON encode/decode round trip, as the server would send them,
so a reply holding a value BSON cannot carry fails the test.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import bson
import pytest
from bson.codec_options import CodecOptions

import localdocdb.commands.catalog
import localdocdb.commands.crud  # noqa: F401 - registers the handlers
from localdocdb.auth.roles import RoleRef
from localdocdb.auth.users import UserStore
from localdocdb.commands.registry import COMMANDS, CommandContext
from localdocdb.engine.storage import Catalog
from localdocdb.errors import CommandError
from localdocdb.state import AuthenticatedUser, ConnectionState, ServerConfig, ServerState

MASTER_USER = "u"
MASTER_PASSWORD = "p"
_DECODE = CodecOptions(document_class=dict)


class Client:
    """One authenticated connection; `run` calls the registered handler like dispatch does."""

    def __init__(self, server: ServerState, users: list[AuthenticatedUser]) -> None:
        self.server = server
        connection_id = server.next_connection_id()
        self.connection = ConnectionState(
            connection_id, f"127.0.0.1:{40000 + connection_id}", "127.0.0.1:27017"
        )
        self.connection.users = list(users)
        server.connections[connection_id] = self.connection

    async def run(self, db: str, cmd: Mapping[str, Any]) -> dict[str, Any]:
        """The reply document (errors as `{ok: 0, code, errmsg}`), after a BSON round trip."""
        name = next(iter(cmd))
        spec = COMMANDS[name]
        ctx = CommandContext(self.server, self.connection, db, name)
        try:
            reply = await spec.handler(ctx, dict(cmd))
        except CommandError as error:
            reply = error.to_document()
        reply.setdefault("ok", 1.0)
        return bson.decode(bson.encode(reply), codec_options=_DECODE)

    async def ok(self, db: str, cmd: Mapping[str, Any]) -> dict[str, Any]:
        """Run a command that must succeed."""
        reply = await self.run(db, cmd)
        assert reply["ok"] == 1.0, reply
        return reply

    async def fails(self, db: str, cmd: Mapping[str, Any], code: int) -> dict[str, Any]:
        """Run a command that must fail with `code`."""
        reply = await self.run(db, cmd)
        assert reply["ok"] == 0.0, reply
        assert reply["code"] == code, reply
        return reply

    async def insert(self, db: str, coll: str, docs: list[dict[str, Any]]) -> dict[str, Any]:
        """Insert documents and require success."""
        reply = await self.ok(db, {"insert": coll, "documents": docs})
        assert "writeErrors" not in reply, reply
        return reply

    async def find_all(self, db: str, coll: str, **options: Any) -> list[dict[str, Any]]:
        """Every document a find returns, following getMore until the cursor is exhausted."""
        reply = await self.ok(db, {"find": coll, **options})
        docs = list(reply["cursor"]["firstBatch"])
        cursor_id = reply["cursor"]["id"]
        while cursor_id:
            more = await self.ok(db, {"getMore": cursor_id, "collection": coll})
            docs.extend(more["cursor"]["nextBatch"])
            cursor_id = more["cursor"]["id"]
        return docs

    async def aggregate(self, db: str, coll: Any, pipeline: list[Any]) -> list[dict[str, Any]]:
        """The results of a pipeline (all batches)."""
        reply = await self.ok(db, {"aggregate": coll, "pipeline": pipeline, "cursor": {}})
        docs = list(reply["cursor"]["firstBatch"])
        cursor_id = reply["cursor"]["id"]
        name = reply["cursor"]["ns"].split(".", 1)[1]
        while cursor_id:
            more = await self.ok(db, {"getMore": cursor_id, "collection": name})
            docs.extend(more["cursor"]["nextBatch"])
            cursor_id = more["cursor"]["id"]
        return docs


def make_server(tmp_path: Path, catalog: Catalog | None = None) -> ServerState:
    """A ServerState over an in-memory (or given) catalog with the master user."""
    config = ServerConfig(
        port=0, tls_dir=tmp_path, master_user=MASTER_USER, master_password=MASTER_PASSWORD
    )
    users = UserStore.open(None)
    users.ensure_master_user(MASTER_USER, MASTER_PASSWORD)
    return ServerState(config, catalog or Catalog.open(None), users)


@pytest.fixture
def server(tmp_path: Path) -> ServerState:
    """A fresh in-memory server."""
    return make_server(tmp_path)


@pytest.fixture
def client(server: ServerState) -> Client:
    """A connection authenticated as the master user (root)."""
    return Client(server, [AuthenticatedUser(MASTER_USER, "admin")])


UserFactory = Callable[[str, list[tuple[str, str]]], Awaitable[Client]]


@pytest.fixture
def user_client(server: ServerState) -> Callable[[str, list[tuple[str, str]]], Client]:
    """Create a user in `admin` with (role, db) pairs and return a connection logged in as it."""

    def make(name: str, roles: list[tuple[str, str]]) -> Client:
        server.users.create_user(
            "admin",
            name,
            password="secret-pw",
            mechanisms=None,
            roles=[RoleRef(role, db) for role, db in roles],
        )
        return Client(server, [AuthenticatedUser(name, "admin")])

    return make
