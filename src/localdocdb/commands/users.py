"""User management commands, in MongoDB's shapes: createUser, updateUser, dropUser,
dropAllUsersFromDatabase, usersInfo, grantRolesToUser, revokeRolesFromUser.

Command layer of localdocdb: arguments are checked here, privileges with
`ctx.require` (MongoDB's actions: createUser, dropUser, changePassword,
changeCustomData, grantRole and revokeRole on the role's database, viewUser), and the
change itself is made by `localdocdb.auth.users.UserStore`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from bson.binary import Binary

from localdocdb.auth.roles import RoleRef
from localdocdb.auth.users import KEEP, Keep, UserRecord, parse_roles, user_not_found
from localdocdb.commands.registry import CommandContext, command
from localdocdb.errors import CommandError, bad_value, type_mismatch


def _name(cmd: dict[str, Any], field: str) -> str:
    value = cmd.get(field)
    if not isinstance(value, str) or not value:
        raise type_mismatch(f"'{field}' must be a non-empty string (the user name)")
    return value


def _missing(command_name: str, field: str) -> CommandError:
    return CommandError(
        40414,
        "Location40414",
        f"BSON field '{command_name}.{field}' is missing but a required field",
    )


def _password(cmd: dict[str, Any]) -> str | None:
    value = cmd.get("pwd")
    if value is None:
        return None
    if not isinstance(value, str):
        raise type_mismatch("'pwd' must be a string")
    return value


def _mechanisms(cmd: dict[str, Any]) -> list[str] | None:
    value = cmd.get("mechanisms")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise type_mismatch("'mechanisms' must be an array of strings")
    return value


def _digest_password(cmd: dict[str, Any]) -> bool:
    value = cmd.get("digestPassword", True)
    if not isinstance(value, bool):
        raise type_mismatch("'digestPassword' must be a boolean")
    return value


def _custom_data(cmd: dict[str, Any]) -> Mapping[str, Any] | Keep | None:
    if "customData" not in cmd:
        return KEEP
    value = cmd["customData"]
    if not isinstance(value, Mapping):
        raise type_mismatch("'customData' must be an object")
    return value


def _require_roles(ctx: CommandContext, action: str, roles: list[RoleRef]) -> None:
    """Granting or revoking a role needs grantRole/revokeRole on the role's database."""
    for db in sorted({r.db for r in roles}):
        ctx.require(action, database=db)


@command("createUser")
async def create_user(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Add a user to the command's database (in `$external`: no pwd, AWS/X.509 mechanisms)."""
    user = _name(cmd, "createUser")
    ctx.require("createUser")
    if "roles" not in cmd:
        raise _missing("createUser", "roles")
    roles = parse_roles(cmd["roles"], ctx.database)
    _require_roles(ctx, "grantRole", roles)
    custom = _custom_data(cmd)
    ctx.server.users.create_user(
        ctx.database,
        user,
        password=_password(cmd),
        mechanisms=_mechanisms(cmd),
        roles=roles,
        custom_data=None if isinstance(custom, Keep) else custom,
        digest_password=_digest_password(cmd),
    )
    ctx.server.log(f"conn{ctx.connection.connection_id}: created user {user}@{ctx.database}")
    return {"ok": 1.0}


@command("updateUser")
async def update_user(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Change a user's password, mechanisms, roles (replaced) or customData (replaced)."""
    user = _name(cmd, "updateUser")
    password = _password(cmd)
    mechanisms = _mechanisms(cmd)
    custom = _custom_data(cmd)
    roles = parse_roles(cmd["roles"], ctx.database) if "roles" in cmd else None
    if password is None and mechanisms is None and isinstance(custom, Keep) and roles is None:
        raise bad_value("Must specify at least one field to update in updateUser")
    if password is not None or mechanisms is not None:
        ctx.require("changePassword")
    if not isinstance(custom, Keep):
        ctx.require("changeCustomData")
    existing = ctx.server.users.get(ctx.database, user)
    if roles is not None:
        old = list(existing.roles) if existing is not None else []
        _require_roles(ctx, "grantRole", [r for r in roles if r not in old])
        _require_roles(ctx, "revokeRole", [r for r in old if r not in roles])
    if existing is None:
        raise user_not_found(ctx.database, user)
    ctx.server.users.update_user(
        ctx.database,
        user,
        password=password,
        mechanisms=mechanisms,
        roles=roles,
        custom_data=custom,
        digest_password=_digest_password(cmd),
    )
    return {"ok": 1.0}


@command("dropUser")
async def drop_user(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Remove a user (UserNotFound, 11, when there is none)."""
    user = _name(cmd, "dropUser")
    ctx.require("dropUser")
    if not ctx.server.users.drop_user(ctx.database, user):
        raise user_not_found(ctx.database, user)
    return {"ok": 1.0}


@command("dropAllUsersFromDatabase")
async def drop_all_users(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Remove every user of the command's database; `n` says how many."""
    ctx.require("dropUser")
    return {"n": ctx.server.users.drop_all_users(ctx.database), "ok": 1.0}


@command("grantRolesToUser")
async def grant_roles(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Add roles to a user; live connections see them on their next command."""
    user = _name(cmd, "grantRolesToUser")
    if "roles" not in cmd:
        raise _missing("grantRolesToUser", "roles")
    roles = parse_roles(cmd["roles"], ctx.database)
    _require_roles(ctx, "grantRole", roles)
    ctx.server.users.grant_roles(ctx.database, user, roles)
    return {"ok": 1.0}


@command("revokeRolesFromUser")
async def revoke_roles(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Remove roles from a user."""
    user = _name(cmd, "revokeRolesFromUser")
    if "roles" not in cmd:
        raise _missing("revokeRolesFromUser", "roles")
    roles = parse_roles(cmd["roles"], ctx.database)
    _require_roles(ctx, "revokeRole", roles)
    ctx.server.users.revoke_roles(ctx.database, user, roles)
    return {"ok": 1.0}


def _user_document(record: UserRecord, *, credentials: bool, custom_data: bool) -> dict[str, Any]:
    """One entry of usersInfo's `users`, shaped like MongoDB's."""
    document: dict[str, Any] = {
        "_id": f"{record.db}.{record.user}",
        "userId": Binary.from_uuid(record.user_id),
        "user": record.user,
        "db": record.db,
    }
    if custom_data and record.custom_data is not None:
        document["customData"] = record.custom_data
    document["roles"] = [{"role": r.role, "db": r.db} for r in record.roles]
    if credentials:
        document["credentials"] = {
            c.mechanism: {
                "iterationCount": c.iteration_count,
                "salt": base64.b64encode(c.salt).decode(),
                "storedKey": base64.b64encode(c.stored_key).decode(),
                "serverKey": base64.b64encode(c.server_key).decode(),
            }
            for c in record.credentials
        }
        if record.db == "$external":
            document["credentials"] = {"external": True}
    document["mechanisms"] = list(record.mechanisms)
    return document


def _requested_users(value: Any, default_db: str) -> list[tuple[str, str]]:
    """usersInfo's "name", {user, db} and list forms as (db, user) pairs."""
    items = value if isinstance(value, list) else [value]
    wanted: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, str):
            wanted.append((default_db, item))
        elif isinstance(item, Mapping):
            user, db = item.get("user"), item.get("db")
            if not isinstance(user, str) or not isinstance(db, str):
                raise type_mismatch("usersInfo entries must be {user: string, db: string}")
            wanted.append((db, user))
        else:
            raise type_mismatch("usersInfo must be 1, a user name, {user, db} or an array")
    return wanted


def _is_self(ctx: CommandContext, db: str, user: str) -> bool:
    return any(u.db == db and u.user == user for u in ctx.connection.users)


@command("usersInfo")
async def users_info(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Describe users: all of this database (1), some by name, or every user (forAllDBs)."""
    value = cmd.get("usersInfo")
    show_credentials = bool(cmd.get("showCredentials", False))
    show_custom = bool(cmd.get("showCustomData", True))
    records: list[UserRecord]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 1:
        if cmd.get("forAllDBs"):
            records = ctx.server.users.all_users()
            for db in sorted({r.db for r in records} | {"admin"}):
                ctx.require("viewUser", database=db)
        else:
            ctx.require("viewUser")
            records = ctx.server.users.users_in(ctx.database)
    else:
        records = []
        for db, user in _requested_users(value, ctx.database):
            if not _is_self(ctx, db, user):
                ctx.require("viewUser", database=db)
            record = ctx.server.users.get(db, user)
            if record is not None and record not in records:
                records.append(record)
    users = [
        _user_document(r, credentials=show_credentials, custom_data=show_custom) for r in records
    ]
    return {"users": users, "ok": 1.0}
