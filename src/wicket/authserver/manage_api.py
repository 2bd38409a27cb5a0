"""The auth API's management endpoints: users, roles, join tokens, database resources.

Each handler states who may call it (`AuthAPI.require`, which decides from the
caller's current roles) and emits the administrative audit event of what it changed
(`user.created`, `role.updated`, `token.deleted`, `database.created`, ...). Path
parameters were checked against their format before any handler runs
(`wicket.authserver.paths`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from wicket.audit.events import ResourceAction
from wicket.auth.databases import database_from_resource
from wicket.auth.resources import parse_resource
from wicket.auth.roles import Role
from wicket.auth.store import encode_time
from wicket.authserver.bodies import read_json, strings, text
from wicket.authserver.bodies import traits as trait_map
from wicket.errors import BadParameter, NotFound
from wicket.identity import HostRole

if TYPE_CHECKING:
    from wicket.authserver.api import AuthAPI


async def exists(lookup: Awaitable[object]) -> bool:
    """Whether a lookup finds something (NotFound: no)."""
    try:
        await lookup
    except NotFound:
        return False
    return True


def role_from_resource(data: Mapping[str, Any]) -> Role:
    """Parse a role resource (YAML/JSON shape) with the domain's model."""
    resource = parse_resource(dict(data))
    if not isinstance(resource, Role):
        raise BadParameter("expected a resource of kind role")
    return resource


class ManagementAPI:
    """Route handlers for users, roles, join tokens and database resources."""

    def __init__(self, api: AuthAPI) -> None:
        self.api = api

    def routes(self) -> list[web.RouteDef]:
        """The routes, with their path parameters named for their format."""
        return [
            web.get("/v1/users", self.users_list),
            web.post("/v1/users", self.users_create),
            web.get("/v1/users/{user}", self.users_get),
            web.put("/v1/users/{user}", self.users_update),
            web.delete("/v1/users/{user}", self.users_delete),
            web.post("/v1/users/{user}/reset", self.users_reset),
            web.get("/v1/roles", self.roles_list),
            web.get("/v1/roles/{role}", self.roles_get),
            web.put("/v1/roles/{role}", self.roles_put),
            web.delete("/v1/roles/{role}", self.roles_delete),
            web.get("/v1/tokens", self.tokens_list),
            web.post("/v1/tokens", self.tokens_create),
            web.delete("/v1/tokens/{token_id}", self.tokens_delete),
            web.get("/v1/databases/{db}", self.databases_get),
            web.get("/v1/db_resources", self.db_resources),
            web.put("/v1/databases/{db}", self.databases_put),
            web.delete("/v1/databases/{db}", self.databases_delete),
        ]

    # -- users --------------------------------------------------------------------------

    async def users_list(self, request: web.Request) -> web.Response:
        """All users."""
        await self.api.require(request, "users", "list")
        return web.json_response([u.to_public_dict() for u in await self.api.users.list()])

    async def users_get(self, request: web.Request) -> web.Response:
        """One user."""
        await self.api.require(request, "users", "read")
        user = await self.api.users.get(request.match_info["user"])
        return web.json_response(user.to_public_dict())

    async def users_create(self, request: web.Request) -> web.Response:
        """A user without a password, and the invite URL to set one."""
        await self.api.require(request, "users", "create")
        body = await read_json(request)
        name = text(body, "name")
        assert name is not None
        user, invite = await self.api.users.create(
            name, roles=strings(body, "roles"), traits=trait_map(body)
        )
        self.api.audit_change(
            request, "user", ResourceAction.CREATED, user.name, roles=list(user.roles)
        )
        return web.json_response(
            {
                "user": user.to_public_dict(),
                "invite_url": self.api.invite_url(invite.token),
                "expires": encode_time(invite.expires),
            }
        )

    async def users_update(self, request: web.Request) -> web.Response:
        """Change a user's roles and/or traits."""
        await self.api.require(request, "users", "update")
        body = await read_json(request)
        roles = strings(body, "roles") if "roles" in body else None
        traits = trait_map(body) if "traits" in body else None
        user = await self.api.users.update(request.match_info["user"], roles=roles, traits=traits)
        self.api.audit_change(
            request,
            "user",
            ResourceAction.UPDATED,
            user.name,
            roles=list(user.roles),
            traits=sorted(user.traits),
        )
        return web.json_response(user.to_public_dict())

    async def users_delete(self, request: web.Request) -> web.Response:
        """Remove a user."""
        await self.api.require(request, "users", "delete")
        name = request.match_info["user"]
        await self.api.users.delete(name)
        self.api.audit_change(request, "user", ResourceAction.DELETED, name)
        return web.json_response({"deleted": name})

    async def users_reset(self, request: web.Request) -> web.Response:
        """Clear a user's password and OTP; a new invite URL."""
        await self.api.require(request, "users", "update")
        invite = await self.api.users.reset(request.match_info["user"])
        self.api.audit_change(request, "user", ResourceAction.RESET, invite.user)
        return web.json_response(
            {
                "invite_url": self.api.invite_url(invite.token),
                "expires": encode_time(invite.expires),
            }
        )

    # -- roles --------------------------------------------------------------------------

    async def roles_list(self, request: web.Request) -> web.Response:
        """All roles, built-in ones included."""
        await self.api.require(request, "roles", "list")
        return web.json_response([r.to_resource() for r in await self.api.roles.list()])

    async def roles_get(self, request: web.Request) -> web.Response:
        """One role (database agents read them to authorize sessions)."""
        identity = self.api.identity(request)
        if identity is None or identity.host_role is not HostRole.DB:
            await self.api.require(request, "roles", "read")
        return web.json_response(
            (await self.api.roles.get(request.match_info["role"])).to_resource()
        )

    async def roles_put(self, request: web.Request) -> web.Response:
        """Create or replace a role."""
        await self.api.require(request, "roles", "update")
        from_body = await read_json(request)
        role = role_from_resource(from_body)
        if role.name != request.match_info["role"]:
            raise BadParameter("the role's metadata.name does not match the URL")
        existed = await exists(self.api.roles.get(role.name))
        stored = await self.api.roles.upsert(role)
        action = ResourceAction.UPDATED if existed else ResourceAction.CREATED
        self.api.audit_change(request, "role", action, stored.name)
        return web.json_response(stored.to_resource())

    async def roles_delete(self, request: web.Request) -> web.Response:
        """Remove a role (built-in roles cannot be removed)."""
        await self.api.require(request, "roles", "delete")
        name = request.match_info["role"]
        await self.api.roles.delete(name)
        self.api.audit_change(request, "role", ResourceAction.DELETED, name)
        return web.json_response({"deleted": name})

    # -- join tokens --------------------------------------------------------------------

    async def tokens_list(self, request: web.Request) -> web.Response:
        """Join tokens (ids and expiry only; values are never stored)."""
        await self.api.require(request, "tokens", "list")
        return web.json_response([t.to_public_dict() for t in await self.api.tokens.list()])

    async def tokens_create(self, request: web.Request) -> web.Response:
        """A new join token; its value is shown only in this answer."""
        await self.api.require(request, "tokens", "create")
        body = await read_json(request)
        ttl_seconds = body.get("ttl_seconds", 1800)
        if not isinstance(ttl_seconds, int) or isinstance(ttl_seconds, bool):
            raise BadParameter('"ttl_seconds" must be an integer')
        single_use = body.get("single_use", True)
        if not isinstance(single_use, bool):
            raise BadParameter('"single_use" must be true or false')
        value = body.get("value")
        if value is not None and not isinstance(value, str):
            raise BadParameter('"value" must be a string')
        token, info = await self.api.tokens.create(
            str(text(body, "type")),
            timedelta(seconds=ttl_seconds),
            single_use=single_use,
            value=value,
            names=strings(body, "names"),
        )
        self.api.audit_change(
            request,
            "token",
            ResourceAction.CREATED,
            info.id,
            type=info.type.value,
            single_use=info.single_use,
            expires=encode_time(info.expires),
            names=list(info.names),
        )
        return web.json_response({"token": token, **info.to_public_dict()})

    async def tokens_delete(self, request: web.Request) -> web.Response:
        """Remove a join token by id (prefix) or value."""
        await self.api.require(request, "tokens", "delete")
        info = await self.api.tokens.delete(request.match_info["token_id"])
        self.api.audit_change(request, "token", ResourceAction.DELETED, info.id)
        return web.json_response({"deleted": info.id})

    # -- databases -----------------------------------------------------------------------

    async def db_resources(self, request: web.Request) -> web.Response:
        """Dynamic database resources, served by an agent or not (`wctl get db`)."""
        await self.api.require(request, "db", "list")
        return web.json_response([d.to_resource() for d in await self.api.databases.list()])

    async def databases_get(self, request: web.Request) -> web.Response:
        """One dynamic database resource."""
        await self.api.require(request, "db", "read")
        return web.json_response(
            (await self.api.databases.get(request.match_info["db"])).to_resource()
        )

    async def databases_put(self, request: web.Request) -> web.Response:
        """Create or replace a dynamic database resource."""
        await self.api.require(request, "db", "update")
        database = database_from_resource(await read_json(request))
        if database.name != request.match_info["db"]:
            raise BadParameter("the database's name does not match the URL")
        existed = await exists(self.api.databases.get(database.name))
        stored = await self.api.databases.upsert(database)
        action = ResourceAction.UPDATED if existed else ResourceAction.CREATED
        self.api.audit_change(request, "database", action, stored.name)
        return web.json_response(stored.to_resource())

    async def databases_delete(self, request: web.Request) -> web.Response:
        """Remove a dynamic database resource."""
        await self.api.require(request, "db", "delete")
        name = request.match_info["db"]
        await self.api.databases.delete(name)
        self.api.audit_change(request, "database", ResourceAction.DELETED, name)
        return web.json_response({"deleted": name})
