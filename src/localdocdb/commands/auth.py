"""Authentication commands: saslStart, saslContinue, authenticate, logout, getnonce.

Command layer of localdocdb: argument handling only; the conversations themselves
live in `localdocdb.auth.sasl` (and the mechanisms beside it).
"""

from __future__ import annotations

import os
from typing import Any

from localdocdb.auth import sasl
from localdocdb.commands.registry import CommandContext, command


@command("saslStart", requires_auth=False)
async def sasl_start(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Begin a SCRAM or MONGODB-AWS conversation on the command's database."""
    return await sasl.sasl_start(ctx, cmd, ctx.database)


@command("saslContinue", requires_auth=False)
async def sasl_continue(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Take the next message of a conversation begun by saslStart (or speculatively)."""
    return await sasl.sasl_continue(ctx, cmd, ctx.database)


@command("authenticate", requires_auth=False)
async def authenticate(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Log in with MONGODB-X509 (the certificate the TLS layer verified)."""
    return await sasl.authenticate(ctx, cmd, ctx.database)


@command("logout", requires_auth=False)
async def logout(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Forget the connection's logins (MongoDB keeps the command for old drivers)."""
    sasl.logout(ctx.connection)
    return {"ok": 1.0}


@command("getnonce", requires_auth=False)
async def getnonce(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """A random nonce, as old drivers asked for before MONGODB-CR (which we do not offer)."""
    return {"nonce": os.urandom(8).hex(), "ok": 1.0}
