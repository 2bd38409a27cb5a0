"""Server-wide and per-connection state of a localdocdb server.

This module holds data only; the I/O lives in `server.py` and the behaviour in
`commands/`, `engine/` and `auth/`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from bson import ObjectId

from localdocdb.auth.users import UserStore
from localdocdb.engine.cursors import CursorManager
from localdocdb.engine.storage import Catalog


class Mode(Enum):
    """Which product localdocdb behaves like."""

    DOCDB = "docdb"  # SCRAM + MONGODB-AWS, like Amazon DocumentDB 5.0
    MONGODB = "mongodb"  # SCRAM + MONGODB-X509, like a self-hosted MongoDB


@dataclass(frozen=True)
class ServerConfig:
    """Everything `localdocdb serve` was told on its command line."""

    port: int
    tls_dir: Path
    master_user: str
    master_password: str = field(repr=False)
    host: str = "127.0.0.1"
    mode: Mode = Mode.DOCDB
    legacy_cn_cert: bool = False
    client_ca: Path | None = None
    sts_endpoint: str = "https://sts.amazonaws.com"
    data_dir: Path | None = None
    cluster_id: str = "localdocdb"
    aws_api_port: int | None = None
    region: str = "us-east-1"
    account_id: str = "123456789012"
    tags: tuple[tuple[str, str], ...] = ()
    max_message_size: int = 48_000_000
    max_bson_object_size: int = 16 * 1024 * 1024
    max_write_batch_size: int = 100_000


@dataclass(frozen=True)
class AuthenticatedUser:
    """A user this connection has authenticated as (`user` in database `db`)."""

    user: str
    db: str

    @property
    def qualified_name(self) -> str:
        """`db.user`, the form MongoDB prints."""
        return f"{self.db}.{self.user}"


@dataclass
class ConnectionState:
    """What the server knows about one client connection."""

    connection_id: int
    peer: str  # "host:port" of the client
    local: str  # "host:port" the client reached
    peer_certificate_der: bytes | None = None  # client's TLS certificate, for MONGODB-X509
    users: list[AuthenticatedUser] = field(default_factory=list)
    client_metadata: dict[str, Any] | None = None
    compressors: list[str] = field(default_factory=list)
    # SASL conversations in progress, by conversationId (objects owned by localdocdb.auth).
    sasl_conversations: dict[int, Any] = field(default_factory=dict)
    opened_at: float = field(default_factory=time.time)
    handshake_done: bool = False


@dataclass
class Operation:
    """One command in progress, as currentOp shows it and killOp ends it."""

    opid: int
    connection_id: int
    client: str
    command: dict[str, Any]
    ns: str
    started_at: float
    task: asyncio.Task[Any] | None = field(default=None, repr=False)
    killed: bool = False


class ServerState:
    """The server's shared state: documents, cursors, users and live operations."""

    def __init__(self, config: ServerConfig, catalog: Catalog, users: UserStore) -> None:
        self.config = config
        self.catalog = catalog
        self.users = users
        self.cursors = CursorManager()
        self.connections: dict[int, ConnectionState] = {}
        self.operations: dict[int, Operation] = {}
        self.started_at = time.time()
        self.process_id = ObjectId()  # topologyVersion.processId; stable for the process
        self.log_lines: list[str] = []
        self._connection_ids = itertools.count(1)
        self._opids = itertools.count(1)

    @classmethod
    def open(cls, config: ServerConfig) -> ServerState:
        """Load (or create) documents and users, and make sure the master user exists."""
        catalog = Catalog.open(config.data_dir)
        users = UserStore.open(config.data_dir)
        users.ensure_master_user(config.master_user, config.master_password)
        return cls(config, catalog, users)

    def close(self) -> None:
        """Flush and close persistent storage."""
        self.catalog.close()
        self.users.close()

    def next_connection_id(self) -> int:
        """A new connection id (`connectionId` in hello, `conn` in logs)."""
        return next(self._connection_ids)

    def next_opid(self) -> int:
        """A new operation id for currentOp/killOp."""
        return next(self._opids)

    def log(self, line: str) -> None:
        """Keep a line for `getLog` (bounded)."""
        self.log_lines.append(line)
        if len(self.log_lines) > 1024:
            del self.log_lines[:512]
