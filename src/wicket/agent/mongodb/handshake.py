"""Agent layer, MongoDB engine: the answer to every handshake of a session (pure: no I/O).

The agent answers each `hello` / `isMaster` / `ismaster` of a session itself, the
first one and every later one alike (OP_MSG, or OP_QUERY on `$cmd`, either possibly
inside OP_COMPRESSED), from the hello the database gave the agent's own connection:

- on the way in, nothing of the client's handshake reaches the database, so
  `saslSupportedMechs: "admin.someuser"` cannot enumerate database users and
  `speculativeAuthenticate` cannot authenticate (the authorizer refuses a handshake
  that carries it before it gets here);
- on the way out, `HIDDEN_FIELDS` never reach the client: the private fields
  (another user's mechanisms, a speculative conversation), and the topology fields
  (the client always sees one standalone server, which is what it talks to).

`topologyVersion` is hidden too: with it, drivers switch their monitoring connection
to awaitable hellos (`topologyVersion` + `maxAwaitTimeMS`, streamed with exhaust).
Answered here at once, those would spin; held, they would delay the session's other
messages. Without it, drivers poll at their heartbeat interval (SDAM spec, "Polling
Protocol"); an awaitable hello sent anyway is answered at once (its topologyVersion
cannot match ours: we have none) and never with moreToCome, so no client hangs.

The primary field follows the command (MongoDB's own rule): `isWritablePrimary` for
`hello`, `ismaster` for the legacy names; `helloOk: true` when the client asks (the
database answered the agent's `hello`, so it speaks it). `localTime` is the agent's
clock at the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from wicket.agent.mongodb.upstream import TOPOLOGY_FIELDS
from wicket.wire.mongo import Message, OpMsg, OpQuery, encode_op_msg, encode_op_reply

HELLO_NAMES = frozenset({"hello", "isMaster", "ismaster"})
PRIVATE_FIELDS = frozenset({"speculativeAuthenticate", "saslSupportedMechs"})
PRIMARY_FIELDS = frozenset({"isWritablePrimary", "ismaster", "helloOk"})
HIDDEN_FIELDS = TOPOLOGY_FIELDS | PRIVATE_FIELDS | {"topologyVersion"}


def handshake_command(message: Message) -> tuple[str, dict[str, Any]] | None:
    """(name, command) if `message` (decompressed) is a hello/isMaster, else None."""
    if isinstance(message, OpMsg):
        command = message.command()
    elif isinstance(message, OpQuery) and message.is_command:
        command = message.query_document()
        for wrapper in ("$query", "query"):
            inner = command.get(wrapper)
            if next(iter(command), None) == wrapper and isinstance(inner, dict):
                command = inner
                break
    else:
        return None
    name = next(iter(command), "")
    return (name, command) if name in HELLO_NAMES else None


def handshake_reply(
    upstream_hello: Mapping[str, Any], name: str, command: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """The hello document the client sees for its handshake `name`/`command`."""
    primary = bool(upstream_hello.get("isWritablePrimary") or upstream_hello.get("ismaster"))
    reply: dict[str, Any] = {"isWritablePrimary" if name == "hello" else "ismaster": primary}
    if command.get("helloOk") is True:
        reply["helloOk"] = True
    for key, value in upstream_hello.items():
        if key not in HIDDEN_FIELDS and key not in PRIMARY_FIELDS:
            reply[key] = now if key == "localTime" else value
    reply["ok"] = 1.0
    return reply


def handshake_answer(
    request: Message, upstream_hello: Mapping[str, Any], *, request_id: int, now: datetime
) -> bytes:
    """The encoded answer to a handshake request, in the shape the client sent it."""
    handshake = handshake_command(request)
    name, command = handshake if handshake is not None else ("hello", {})
    reply = handshake_reply(upstream_hello, name, command, now)
    if isinstance(request, OpQuery):
        return encode_op_reply(
            [reply], request_id=request_id, response_to=request.header.request_id
        )
    return encode_op_msg(reply, request_id=request_id, response_to=request.header.request_id)
