"""Per-message authorization for MongoDB sessions (pure: no I/O).

Every client message is inspected (`wicket.wire.mongo.inspect`) and checked here
before a single byte of it reaches the database:

- the client's own authentication (`saslStart`, `authenticate`, `logout`, a hello
  with `speculativeAuthenticate`) is refused: Wicket authenticates for the user;
- a server-wide command (scope SERVER: other connections' operations, logs, server
  settings, user management, ...) is refused unless a role whose db_labels match the
  database sets `options.allow_server_commands: true`; `$db` never authorizes it, and
  `allow_unknown_commands` does not either (a malformed server-wide command is still
  server-wide). With the grant, the namespaces it names (if any) are still checked;
  the database it is sent to (usually admin) is not, since it does not read it;
- `listDatabases` is allowed; without the grant its reply is narrowed to the
  databases `db_names` allows (`MessageDecision.narrow_databases`);
- a command the inspector cannot classify is refused unless one of the user's roles
  that matches the database sets `options.allow_unknown_commands: true`;
- every namespace the command reads or writes, in any database, must be allowed
  by `db_names` (deny wins); a namespaced command that names none is checked
  against the database it runs on (`$db`);
- commands about this connection (handshake, ping, its own logical sessions) pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from wicket.auth.roles import AccessChecker
from wicket.wire.mongo import Access, CommandInfo, Scope

UNAUTHORIZED = 13  # MongoDB's Unauthorized code, which every driver understands
GRANT_HINT = (
    "a role whose db_labels match this database must set options.allow_server_commands: true "
    "(see Server-wide commands in docs/guides/rbac.md)"
)


@dataclass(frozen=True)
class MessageDecision:
    """Whether one message may go to the database, why not, and what to do to its reply."""

    allowed: bool
    reason: str = ""
    narrow_databases: bool = False
    """Forward it, but show only the databases `db_names` allows in its reply."""


ALLOWED = MessageDecision(True)
NARROWED = MessageDecision(True, narrow_databases=True)


class MessageAuthorizer:
    """Checks messages of one session (one user, one database)."""

    def __init__(
        self,
        checker: AccessChecker,
        labels: Mapping[str, str],
        *,
        allow_unknown_commands: bool = False,
    ) -> None:
        self.checker = checker
        self.labels = dict(labels)
        self.allow_unknown_commands = allow_unknown_commands
        self.server_grant = checker.server_commands_grant(self.labels)
        self._names: dict[str, MessageDecision] = {}

    def _database(self, name: str) -> MessageDecision:
        cached = self._names.get(name)
        if cached is None:
            decision = self.checker.check_db_name(self.labels, name)
            cached = ALLOWED if decision.allowed else MessageDecision(False, decision.reason)
            if len(self._names) < 1024:
                self._names[name] = cached
        return cached

    def allows_database(self, name: str) -> bool:
        """Whether `db_names` allows logical database `name` (for narrowing listings)."""
        return self._database(name).allowed

    def _server_refusal(self, name: str, info: CommandInfo) -> MessageDecision:
        what = f'"{name}"'
        if info.widened_by:
            what = f'"{name}" with {info.widened_by}'
        return MessageDecision(
            False,
            f"{what} is a server-wide command (what it does or shows spans the whole server "
            "and other users' sessions, so no database name allows it); "
            f"no role grants server-wide commands: {GRANT_HINT}",
        )

    def check(self, info: CommandInfo) -> MessageDecision:
        """The decision for one inspected message."""
        name = info.name or "(empty command)"
        if info.access is Access.AUTH:
            return MessageDecision(
                False,
                f'"{name}" is refused: Wicket authenticates to the database for you, so the '
                "client must not send its own credentials (remove them from the connection string)",
            )
        if info.scope is Scope.SERVER and self.server_grant is None:
            return self._server_refusal(name, info)
        unknown = not info.known or info.access is Access.UNKNOWN
        if unknown and not self.allow_unknown_commands:
            return MessageDecision(
                False,
                f'command "{name}" is not one Wicket can check, so it is refused '
                "(no role allows unknown commands)",
            )
        if info.scope is Scope.CONNECTION:
            return ALLOWED
        if info.scope is Scope.SERVER_LISTING:
            return ALLOWED if self.server_grant is not None else NARROWED
        databases = {namespace.database for namespace in info.namespaces}
        if info.scope is Scope.NAMESPACE and not databases:
            databases.add(info.database)
        for database in sorted(databases):
            decision = self._database(database)
            if not decision.allowed:
                return MessageDecision(
                    False, f'"{name}" on database "{database}": {decision.reason}'
                )
        return ALLOWED
