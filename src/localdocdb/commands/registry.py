"""The command table: name → handler, and the context a handler runs in.

Handlers are `async def handler(ctx, command) -> reply_document`. They raise
`CommandError` to fail; the server turns that into the error reply. A handler that
touches a namespace calls `ctx.require(action, ...)` first, so every command is
authorized by the same built-in role table (`localdocdb.auth.roles`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from localdocdb.auth.roles import ResourceKind, RoleRef, is_authorized
from localdocdb.errors import unauthorized
from localdocdb.state import ConnectionState, ServerState

Handler = Callable[["CommandContext", dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class CommandSpec:
    """One command: its canonical name, handler and whether it needs a login first."""

    name: str
    handler: Handler
    requires_auth: bool


COMMANDS: dict[str, CommandSpec] = {}


def command(name: str, *aliases: str, requires_auth: bool = True) -> Callable[[Handler], Handler]:
    """Register `handler` under `name` (and `aliases`, e.g. `ismaster` for `isMaster`)."""

    def register(handler: Handler) -> Handler:
        spec = CommandSpec(name, handler, requires_auth)
        for key in (name, *aliases):
            if key in COMMANDS:
                raise RuntimeError(f"command {key!r} registered twice")
            COMMANDS[key] = spec
        return handler

    return register


@dataclass
class CommandContext:
    """What a handler sees: the server, the connection, the target `$db` and the command."""

    server: ServerState
    connection: ConnectionState
    database: str
    command_name: str

    @property
    def authenticated(self) -> bool:
        """Whether any user is logged in on this connection."""
        return bool(self.connection.users)

    def roles(self) -> list[RoleRef]:
        """Roles of every user authenticated on this connection, looked up now.

        Looked up per check (not cached at login) so grantRolesToUser and
        revokeRolesFromUser take effect on live connections, as in MongoDB.
        """
        roles: list[RoleRef] = []
        for user in self.connection.users:
            roles.extend(self.server.users.roles_of(user.db, user.user))
        return roles

    def _refusal(self, database: str) -> str:
        """MongoDB's wording for a refused command."""
        return f"not authorized on {database} to execute command {{ {self.command_name}: ... }}"

    def require(
        self, action: str, collection: str | None = None, database: str | None = None
    ) -> None:
        """Fail with Unauthorized (13) unless the users may do `action` on the namespace."""
        db = self.database if database is None else database
        kind = ResourceKind.DATABASE if collection is None else ResourceKind.COLLECTION
        if not is_authorized(self.roles(), action, kind, db, collection):
            raise unauthorized(self._refusal(db))

    def require_cluster(self, action: str) -> None:
        """Fail with Unauthorized (13) unless the users hold the cluster action."""
        if not is_authorized(self.roles(), action, ResourceKind.CLUSTER):
            raise unauthorized(self._refusal(self.database))
