"""Per-message authorization for MongoDB sessions (pure: no I/O).

Every client message is inspected (`wicket.wire.mongo.inspect`) and checked here
before a single byte of it reaches the database:

- the client's own authentication (`saslStart`, `authenticate`, `logout`, a hello
  with `speculativeAuthenticate`) is refused: Wicket authenticates for the user;
- a command the inspector cannot classify is refused unless one of the user's roles
  that matches the database sets `options.allow_unknown_commands: true`;
- every namespace the command reads or writes, in any database, must be allowed
  by `db_names` (deny wins); server-wide and user-admin commands are checked
  against the database they run on (`$db`);
- handshake and session bookkeeping commands pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from wicket.auth.roles import AccessChecker
from wicket.wire.mongo import Access, CommandInfo

UNAUTHORIZED = 13  # MongoDB's Unauthorized code, which every driver understands


@dataclass(frozen=True)
class MessageDecision:
    """Whether one message may go to the database, and why not."""

    allowed: bool
    reason: str = ""


ALLOWED = MessageDecision(True)


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
        self._names: dict[str, MessageDecision] = {}

    def _database(self, name: str) -> MessageDecision:
        cached = self._names.get(name)
        if cached is None:
            decision = self.checker.check_db_name(self.labels, name)
            cached = ALLOWED if decision.allowed else MessageDecision(False, decision.reason)
            if len(self._names) < 1024:
                self._names[name] = cached
        return cached

    def check(self, info: CommandInfo) -> MessageDecision:
        """The decision for one inspected message."""
        name = info.name or "(empty command)"
        if info.access is Access.AUTH:
            return MessageDecision(
                False,
                f'"{name}" is refused: Wicket authenticates to the database for you, so the '
                "client must not send its own credentials (remove them from the connection string)",
            )
        unknown = not info.known or info.access is Access.UNKNOWN
        if unknown and not self.allow_unknown_commands:
            return MessageDecision(
                False,
                f'command "{name}" is not one Wicket can check, so it is refused '
                "(no role allows unknown commands)",
            )
        if info.access is Access.HANDSHAKE or info.access is Access.SESSION:
            return ALLOWED
        databases = {namespace.database for namespace in info.namespaces}
        if info.access in {Access.CLUSTER, Access.USER_ADMIN} or not databases:
            databases.add(info.database)
        for database in sorted(databases):
            decision = self._database(database)
            if not decision.allowed:
                return MessageDecision(
                    False, f'"{name}" on database "{database}": {decision.reason}'
                )
        return ALLOWED
