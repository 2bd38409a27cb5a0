"""The auth service's lock endpoints (`/v1/locks`), on aiohttp.

Contract (JSON; errors are the API's usual `{"error": {"kind", "message"}}`):
- `GET /v1/locks`: every lock in force, oldest first, as lock resources
  (`{"kind": "lock", "version": "v1", "metadata": {"name": ID}, "spec": {"target":
  {"user"|"role"|"db": NAME}, "message", "expires"?, "created", "created_by"}}`).
  The admin, users whose roles allow `list` on `locks`, and hosts with role db or
  proxy (they stop sessions a lock matches).
- `POST /v1/locks` `{"user"|"role"|"db": NAME, "message"?: TEXT, "ttl_seconds"?: N |
  "expires"?: RFC3339}` (or a lock resource's `spec`): a new lock; answers the
  resource. `create` on `locks`. Audited as `lock.created`.
- `GET /v1/locks/{lock_id}`: one lock (`read`, or a db/proxy host).
- `DELETE /v1/locks/{lock_id}`: `{"deleted": ID}`. `delete` on `locks`. Audited as
  `lock.deleted`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from wicket.audit.events import ResourceAction, parse_time
from wicket.auth.locks import Lock, LockService
from wicket.authserver.api import AuthAPI
from wicket.authserver.bodies import read_json
from wicket.errors import BadParameter
from wicket.identity import HostRole, IdentityKind

LOCKS_PATH = "/v1/locks"
MAX_LOCK_TTL = timedelta(days=3650)
_HOST_READERS = {HostRole.DB, HostRole.PROXY}


def _optional_text(body: Mapping[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadParameter(f'"{field}" must be a string')
    return value


def lock_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The LockService.create arguments a POST body asks for (flat, or a resource spec)."""
    spec = body.get("spec")
    if isinstance(spec, Mapping):
        target = spec.get("target")
        flat: dict[str, Any] = dict(target) if isinstance(target, Mapping) else {}
        flat.update({k: v for k, v in spec.items() if k in {"message", "expires"}})
        body = flat
    unknown = set(body) - {"user", "role", "db", "message", "ttl_seconds", "expires"}
    if unknown:
        raise BadParameter(f"unknown lock field(s): {', '.join(sorted(unknown))}")
    ttl: timedelta | None = None
    raw_ttl = body.get("ttl_seconds")
    if raw_ttl is not None:
        if not isinstance(raw_ttl, int) or isinstance(raw_ttl, bool) or raw_ttl <= 0:
            raise BadParameter('"ttl_seconds" must be a positive integer')
        ttl = timedelta(seconds=raw_ttl)
        if ttl > MAX_LOCK_TTL:
            raise BadParameter("a lock's ttl is limited to 3650 days (give none: no expiry)")
    expires: datetime | None = None
    raw_expires = body.get("expires")
    if raw_expires is not None:
        expires = parse_time(raw_expires)
    return {
        "user": _optional_text(body, "user"),
        "role": _optional_text(body, "role"),
        "db": _optional_text(body, "db"),
        "message": _optional_text(body, "message") or "",
        "ttl": ttl,
        "expires": expires,
    }


class LocksAPI:
    """Route handlers for locks, bound to the auth API (caller checks, audit) and the locks."""

    def __init__(self, api: AuthAPI, locks: LockService) -> None:
        self.api = api
        self.locks = locks

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the auth API application."""
        return [
            web.get(LOCKS_PATH, self.list_locks),
            web.post(LOCKS_PATH, self.create_lock),
            web.get(LOCKS_PATH + "/{lock_id}", self.get_lock),
            web.delete(LOCKS_PATH + "/{lock_id}", self.delete_lock),
        ]

    async def _require_reader(self, request: web.Request, verb: str) -> None:
        identity = self.api.identity(request)
        if (
            identity is not None
            and identity.kind is IdentityKind.HOST
            and identity.host_role in _HOST_READERS
        ):
            return
        await self.api.require(request, "locks", verb)

    async def list_locks(self, request: web.Request) -> web.Response:
        """Every lock in force."""
        await self._require_reader(request, "list")
        return web.json_response([lock.to_resource() for lock in await self.locks.list()])

    async def get_lock(self, request: web.Request) -> web.Response:
        """One lock by id."""
        await self._require_reader(request, "read")
        lock = await self.locks.get(request.match_info["lock_id"])
        return web.json_response(lock.to_resource())

    async def create_lock(self, request: web.Request) -> web.Response:
        """A new lock, in force at once."""
        caller = await self.api.require(request, "locks", "create")
        arguments = lock_request(await read_json(request))
        lock = await self.locks.create(**arguments, created_by=caller.name)
        self._audit(request, ResourceAction.CREATED, lock)
        return web.json_response(lock.to_resource())

    async def delete_lock(self, request: web.Request) -> web.Response:
        """Remove a lock: what it stopped is possible again."""
        await self.api.require(request, "locks", "delete")
        lock = await self.locks.delete(request.match_info["lock_id"])
        self._audit(request, ResourceAction.DELETED, lock)
        return web.json_response({"deleted": lock.id})

    def _audit(self, request: web.Request, action: ResourceAction, lock: Lock) -> None:
        spec = lock.to_resource()["spec"]
        self.api.audit_change(
            request,
            "lock",
            action,
            lock.id,
            target=spec["target"],
            message=lock.spec.message or None,
            expires=spec.get("expires"),
        )


def add_lock_routes(app: web.Application, api: AuthAPI) -> LocksAPI:
    """Register `/v1/locks` on the auth API application (with the API's own LockService)."""
    handlers = LocksAPI(api, api.locks)
    app.add_routes(handlers.routes())
    return handlers
