"""Server administration commands: logs, status, host facts, sessions and operations."""

from __future__ import annotations

import asyncio
import datetime
import os
import platform
import socket
import sys
import time
import uuid
from typing import Any

from bson import Binary

from localdocdb.commands.handshake import SERVER_VERSION
from localdocdb.commands.registry import COMMANDS, CommandContext, command
from localdocdb.errors import bad_value

START_MONOTONIC = time.monotonic()


@command("getLog")
async def get_log(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Recent log lines: `getLog: "*"` lists the logs; `"global"`, `"startupWarnings"` read one."""
    ctx.require_cluster("getLog")
    which = cmd.get("getLog")
    if which == "*":
        return {"names": ["global", "startupWarnings"], "ok": 1.0}
    if which == "startupWarnings":
        return {"totalLinesWritten": 0, "log": [], "ok": 1.0}
    if which == "global":
        lines = list(ctx.server.log_lines)
        return {"totalLinesWritten": len(lines), "log": lines, "ok": 1.0}
    raise bad_value(f"no RecentEntries named: {which}")


@command("hostInfo")
async def host_info(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Facts about the machine localdocdb runs on."""
    ctx.require_cluster("hostInfo")
    pages = os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    page_size = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0
    return {
        "system": {
            "currentTime": datetime.datetime.now(datetime.UTC),
            "hostname": socket.gethostname(),
            "cpuAddrSize": 64,
            "memSizeMB": pages * page_size // (1024 * 1024),
            "numCores": os.cpu_count() or 1,
            "cpuArch": platform.machine(),
        },
        "os": {
            "type": platform.system(),
            "name": platform.platform(),
            "version": platform.release(),
        },
        "extra": {"pythonVersion": sys.version.split()[0]},
        "ok": 1.0,
    }


@command("serverStatus")
async def server_status(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Uptime, connections and operation counts."""
    ctx.require_cluster("serverStatus")
    uptime = time.monotonic() - START_MONOTONIC
    return {
        "host": socket.gethostname(),
        "version": SERVER_VERSION,
        "process": "localdocdb",
        "pid": os.getpid(),
        "uptime": float(int(uptime)),
        "uptimeMillis": int(uptime * 1000),
        "uptimeEstimate": int(uptime),
        "localTime": datetime.datetime.now(datetime.UTC),
        "connections": {
            "current": len(ctx.server.connections),
            "available": 10_000 - len(ctx.server.connections),
            "totalCreated": ctx.server.next_connection_id() - 1,
        },
        "ok": 1.0,
    }


@command("getCmdLineOpts")
async def get_cmd_line_opts(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """The server's command line, with the master password left out."""
    ctx.require_cluster("getCmdLineOpts")
    config = ctx.server.config
    parsed = {
        "net": {"bindIp": config.host, "port": config.port},
        "mode": config.mode.value,
        "storage": {"dbPath": str(config.data_dir) if config.data_dir else None},
    }
    argv = [arg for arg in sys.argv if arg != config.master_password]
    return {"argv": argv, "parsed": parsed, "ok": 1.0}


@command("endSessions", requires_auth=False)
async def end_sessions(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Drivers end their logical sessions at close; sessions hold no server state here."""
    return {"ok": 1.0}


@command("killSessions", "killAllSessions", "refreshSessions", "startSession")
async def session_noop(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Logical sessions hold no server state in localdocdb, so there is nothing to change."""
    if ctx.command_name == "startSession":
        return {"id": {"id": Binary(uuid.uuid4().bytes, 4)}, "timeoutMinutes": 30, "ok": 1.0}
    return {"ok": 1.0}


@command("currentOp")
async def current_op(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Operations in progress (`$ownOps: true` shows only this connection's users' ones)."""
    own_only = bool(cmd.get("$ownOps"))
    if not own_only:
        ctx.require_cluster("inprog")
    now = time.time()
    mine = {u.qualified_name for u in ctx.connection.users}
    inprog = []
    for op in ctx.server.operations.values():
        connection = ctx.server.connections.get(op.connection_id)
        owners = {u.qualified_name for u in connection.users} if connection else set()
        if own_only and not owners & mine:
            continue
        inprog.append(
            {
                "type": "op",
                "opid": op.opid,
                "active": True,
                "connectionId": op.connection_id,
                "client": op.client,
                "secs_running": int(now - op.started_at),
                "microsecs_running": int((now - op.started_at) * 1_000_000),
                "ns": op.ns,
                "command": op.command,
                "killPending": op.killed,
            }
        )
    return {"inprog": inprog, "ok": 1.0}


@command("killOp")
async def kill_op(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Interrupt an operation in progress by its opid."""
    ctx.require_cluster("killop")
    opid = cmd.get("op")
    if not isinstance(opid, int) or isinstance(opid, bool):
        raise bad_value('Did not provide "op" field')
    operation = ctx.server.operations.get(opid)
    if operation is not None and not operation.killed:
        operation.killed = True
        if operation.task is not None and operation.task is not asyncio.current_task():
            operation.task.cancel()
    return {"info": "attempting to kill op", "ok": 1.0}


@command("listCommands")
async def list_commands(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Every command this server knows."""
    commands = {
        name: {"help": (spec.handler.__doc__ or "").strip(), "requiresAuth": spec.requires_auth}
        for name, spec in sorted(COMMANDS.items())
    }
    return {"commands": commands, "ok": 1.0}
