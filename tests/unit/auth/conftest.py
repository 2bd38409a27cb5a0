"""Fixtures for auth tests: a real ServerState and a client that runs real command handlers."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from pymongo.errors import OperationFailure

import localdocdb.commands.auth
import localdocdb.commands.users  # noqa: F401 - registers the handlers
from localdocdb.auth.users import UserStore
from localdocdb.commands.registry import CommandContext
from localdocdb.dispatch import run_command
from localdocdb.engine.storage import Catalog
from localdocdb.state import ConnectionState, Mode, ServerConfig, ServerState

MASTER_USER = "master"
MASTER_PASSWORD = "master-pw"


class Client:
    """One connection to a ServerState; commands go through the registered handlers."""

    auth_ctx: Any = None

    def __init__(self, server: ServerState, peer_certificate_der: bytes | None = None) -> None:
        self.server = server
        connection_id = server.next_connection_id()
        self.connection = ConnectionState(
            connection_id,
            f"127.0.0.1:{40000 + connection_id}",
            "127.0.0.1:27017",
            peer_certificate_der,
        )
        server.connections[connection_id] = self.connection

    def context(self, db: str, name: str = "hello") -> CommandContext:
        """A handler context, as the hello handler would get it."""
        return CommandContext(self.server, self.connection, db, name)

    async def run(self, db: str, cmd: Mapping[str, Any]) -> dict[str, Any]:
        """Run a command through the server's own dispatch (auth gate, handler, errors)."""
        return await run_command(self.server, self.connection, dict(cmd), db)

    async def command(self, db: str, cmd: Mapping[str, Any], **_: Any) -> dict[str, Any]:
        """pymongo's AsyncConnection.command shape: raise OperationFailure on ok: 0."""
        reply = await self.run(db, cmd)
        if not reply["ok"]:
            raise OperationFailure(reply["errmsg"], reply["code"], reply)
        return reply


MakeServer = Callable[..., ServerState]


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[MakeServer]:
    """Build ServerStates (in memory unless data_dir is given); all closed afterwards."""
    servers: list[ServerState] = []

    def make(mode: Mode = Mode.DOCDB, data_dir: Path | None = None, **config: Any) -> ServerState:
        settings = ServerConfig(
            port=0,
            tls_dir=tmp_path / "tls",
            master_user=MASTER_USER,
            master_password=MASTER_PASSWORD,
            mode=mode,
            data_dir=data_dir,
            **config,
        )
        users = UserStore.open(data_dir)
        users.ensure_master_user(MASTER_USER, MASTER_PASSWORD)
        server = ServerState(settings, Catalog.open(data_dir), users)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()
