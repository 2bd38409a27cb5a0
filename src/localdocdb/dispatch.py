"""Command dispatch: one command document in, one reply document out.

No sockets here; `server.py` decodes the wire messages and calls `run_command`.
Every command goes through the same gate: known name, authenticated if it needs
to be, then the handler (which checks privileges with `ctx.require`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from localdocdb.commands import load_all
from localdocdb.commands.registry import COMMANDS, CommandContext
from localdocdb.errors import CommandError, command_not_found, failed_to_parse, unauthorized
from localdocdb.state import ConnectionState, Operation, ServerState

log = logging.getLogger("localdocdb")

load_all()

# Fields that are part of every command's envelope, never its own argument.
GENERIC_FIELDS = frozenset({"$db", "lsid", "$clusterTime", "$readPreference", "txnNumber"})


def command_name(command: dict[str, Any]) -> str:
    """The command's name: its first key (MongoDB's rule)."""
    for key in command:
        return key
    raise failed_to_parse("empty command document")


async def run_command(
    server: ServerState, connection: ConnectionState, command: dict[str, Any], database: str
) -> dict[str, Any]:
    """Run one command and return its reply, errors included (never raises CommandError)."""
    operation: Operation | None = None
    try:
        name = command_name(command)
        spec = COMMANDS.get(name)
        if spec is None:
            raise command_not_found(name)
        if command.get("startTransaction") or command.get("autocommit") is False:
            raise CommandError(
                20, "IllegalOperation", "localdocdb does not support multi-document transactions"
            )
        if spec.requires_auth and not connection.users:
            raise unauthorized(f"Command {name} requires authentication")
        ctx = CommandContext(server, connection, database, name)
        operation = Operation(
            opid=server.next_opid(),
            connection_id=connection.connection_id,
            client=connection.peer,
            command={k: v for k, v in command.items() if k not in GENERIC_FIELDS},
            ns=f"{database}.{command.get(name)}"
            if isinstance(command.get(name), str)
            else database,
            started_at=time.time(),
            task=asyncio.current_task(),
        )
        server.operations[operation.opid] = operation
        try:
            reply = await spec.handler(ctx, command)
        finally:
            server.operations.pop(operation.opid, None)
    except CommandError as error:
        return error.to_document()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or operation is None or not operation.killed:
            raise
        task.uncancel()  # killOp interrupted this command, not the connection
        return CommandError(11601, "Interrupted", "operation was interrupted").to_document()
    except Exception as exc:  # a bug in a handler must not take the connection down
        log.exception("internal error in command %r", next(iter(command), "?"))
        return CommandError(1, "InternalError", f"localdocdb internal error: {exc}").to_document()
    reply.setdefault("ok", 1.0)
    return reply
