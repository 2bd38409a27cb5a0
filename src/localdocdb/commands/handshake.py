"""Connection handshake commands: hello/isMaster, buildInfo, ping, getParameter, connectionStatus.

The hello reply follows the MongoDB handshake and SDAM specs (mongodb/specifications
`mongodb-handshake/handshake.md`, `server-discovery-and-monitoring`): a standalone
server with a stable `topologyVersion`, awaitable when the client sends its
`topologyVersion` and `maxAwaitTimeMS`, and compression negotiated from the
client's list (`compression/OP_COMPRESSED.md`).
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from bson import Int64

from localdocdb.auth.sasl import speculative_authenticate, supported_mechanisms
from localdocdb.commands.registry import CommandContext, command
from localdocdb.errors import bad_value
from localdocdb.state import Mode

SERVER_VERSION = "5.0.0"
VERSION_ARRAY = [5, 0, 0, 0]
MIN_WIRE_VERSION = 0
MAX_WIRE_VERSION = 13  # MongoDB 5.0, which DocumentDB 5.0 speaks
SUPPORTED_COMPRESSORS = ("zstd", "snappy", "zlib")
MAX_AWAIT_TIME_MS = 60_000


def topology_version(ctx: CommandContext) -> dict[str, Any]:
    """This process's topology version; it never changes while the process lives."""
    return {"processId": ctx.server.process_id, "counter": Int64(0)}


def _negotiate_compression(ctx: CommandContext, requested: Any) -> list[str]:
    if not isinstance(requested, list):
        return []
    chosen = [name for name in requested if name in SUPPORTED_COMPRESSORS]
    ctx.connection.compressors = chosen
    return chosen


async def _await_topology_change(ctx: CommandContext, cmd: dict[str, Any]) -> None:
    """Awaitable hello: hold the reply up to maxAwaitTimeMS when the client is current."""
    client_version = cmd.get("topologyVersion")
    max_await = cmd.get("maxAwaitTimeMS")
    if client_version is None or max_await is None:
        return
    if not isinstance(max_await, int) or max_await < 0:
        raise bad_value("maxAwaitTimeMS must be a non-negative integer")
    ours = topology_version(ctx)
    if (
        isinstance(client_version, dict)
        and client_version.get("processId") == ours["processId"]
        and client_version.get("counter") == ours["counter"]
    ):
        await asyncio.sleep(min(max_await, MAX_AWAIT_TIME_MS) / 1000)


async def _hello_reply(ctx: CommandContext, cmd: dict[str, Any], *, legacy: bool) -> dict[str, Any]:
    await _await_topology_change(ctx, cmd)
    config = ctx.server.config
    reply: dict[str, Any] = {}
    if legacy:
        reply["ismaster"] = True
    else:
        reply["isWritablePrimary"] = True
    reply.update(
        {
            "topologyVersion": topology_version(ctx),
            "maxBsonObjectSize": config.max_bson_object_size,
            "maxMessageSizeBytes": config.max_message_size,
            "maxWriteBatchSize": config.max_write_batch_size,
            "localTime": datetime.datetime.now(datetime.UTC),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": ctx.connection.connection_id,
            "minWireVersion": MIN_WIRE_VERSION,
            "maxWireVersion": MAX_WIRE_VERSION,
            "readOnly": False,
        }
    )
    if not ctx.connection.handshake_done:
        metadata = cmd.get("client")
        if isinstance(metadata, dict):
            ctx.connection.client_metadata = metadata
        compression = _negotiate_compression(ctx, cmd.get("compression"))
        if compression:
            reply["compression"] = compression
        ctx.connection.handshake_done = True
    elif ctx.connection.compressors:
        reply["compression"] = list(ctx.connection.compressors)
    mechs_for = cmd.get("saslSupportedMechs")
    if isinstance(mechs_for, str):
        mechanisms = supported_mechanisms(ctx.server, mechs_for)
        if mechanisms is not None:
            reply["saslSupportedMechs"] = mechanisms
    speculative = cmd.get("speculativeAuthenticate")
    if isinstance(speculative, dict):
        result = await speculative_authenticate(ctx, speculative)
        if result is not None:
            reply["speculativeAuthenticate"] = result
    reply["ok"] = 1.0
    return reply


@command("hello", requires_auth=False)
async def hello(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """The modern handshake (MongoDB 4.4.2+)."""
    return await _hello_reply(ctx, cmd, legacy=False)


@command("isMaster", "ismaster", requires_auth=False)
async def is_master(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """The legacy handshake, still sent first by drivers over OP_QUERY."""
    return await _hello_reply(ctx, cmd, legacy=True)


@command("ping", requires_auth=False)
async def ping(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Answer ok; the cheapest round trip."""
    return {"ok": 1.0}


@command("buildInfo", "buildinfo", requires_auth=False)
async def build_info(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Server version and build facts; mongosh shows them at start."""
    return {
        "version": SERVER_VERSION,
        "gitVersion": "localdocdb",
        "modules": [],
        "allocator": "system",
        "javascriptEngine": "none",
        "sysInfo": "deprecated",
        "versionArray": VERSION_ARRAY,
        "bits": 64,
        "debug": False,
        "maxBsonObjectSize": ctx.server.config.max_bson_object_size,
        "storageEngines": ["localdocdb"],
        "ok": 1.0,
    }


PARAMETERS: dict[str, Any] = {
    "featureCompatibilityVersion": {"version": "5.0"},
    "authenticationMechanisms": None,  # filled per mode
    "maxBSONDepth": 100,
    "tlsMode": "requireTLS",
}


@command("getParameter")
async def get_parameter(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Read server parameters (`getParameter: 1, name: 1` or `getParameter: "*"`)."""
    ctx.require_cluster("getParameter")
    parameters = dict(PARAMETERS)
    if ctx.server.config.mode is Mode.DOCDB:
        parameters["authenticationMechanisms"] = ["SCRAM-SHA-1", "SCRAM-SHA-256", "MONGODB-AWS"]
    else:
        parameters["authenticationMechanisms"] = ["SCRAM-SHA-1", "SCRAM-SHA-256", "MONGODB-X509"]
    if cmd.get("getParameter") == "*":
        return {**parameters, "ok": 1.0}
    reply: dict[str, Any] = {}
    for key in cmd:
        if key in parameters:
            reply[key] = parameters[key]
    if not reply:
        raise bad_value("no option found to get")
    reply["ok"] = 1.0
    return reply


@command("connectionStatus", requires_auth=False)
async def connection_status(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Who this connection is authenticated as, and with which roles."""
    users = [{"user": u.user, "db": u.db} for u in ctx.connection.users]
    roles = [{"role": r.role, "db": r.db} for r in ctx.roles()]
    info: dict[str, Any] = {"authenticatedUsers": users, "authenticatedUserRoles": roles}
    if cmd.get("showPrivileges"):
        info["authenticatedUserPrivileges"] = []
    return {"authInfo": info, "ok": 1.0}


@command("whatsmyuri", requires_auth=False)
async def whats_my_uri(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """The client's own address as the server sees it."""
    return {"you": ctx.connection.peer, "ok": 1.0}
