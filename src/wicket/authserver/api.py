"""The auth service's HTTP JSON API (`/v1/...`), on aiohttp.

Every request's caller is the identity in its verified client certificate (or
nobody: join and login are authenticated by their token or password). Each
handler states who may call it; the domain services in `wicket.auth` do the work.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from aiohttp import web
from cryptography import x509

from wicket import __version__
from wicket.api.errors import error_body
from wicket.audit.events import (
    ResourceAction,
    cert_issued,
    resource_changed,
    user_locked,
    user_login,
)
from wicket.audit.writer import AuditWriter
from wicket.auth.current import applying_locks, check_not_locked, current_identity
from wicket.auth.databases import Database, DatabaseService, database_from_resource
from wicket.auth.hosts import HostGrant, grant_for_join
from wicket.auth.locks import Lock, Locked, LockService, first_matching
from wicket.auth.roles import AccessChecker, RoleService
from wicket.auth.store import encode_time
from wicket.auth.tokens import TokenInfo, TokenService
from wicket.auth.users import LoginFailed, LoginLocked, User, UserService
from wicket.authserver.bodies import MAX_BODY_BYTES, read_json
from wicket.authserver.bodies import strings as _strings
from wicket.authserver.bodies import text as _text
from wicket.authserver.cluster import ClusterAuthorities
from wicket.authserver.forwarded import FORWARDED_FOR, client_address
from wicket.authserver.manage_api import ManagementAPI
from wicket.authserver.paths import check_path_parameters, undeclared_parameters
from wicket.errors import AccessDenied, BadParameter, NotFound, WicketError
from wicket.identity import DatabaseRoute, HostRole, Identity, IdentityKind
from wicket.pki.authority import verify_certificate
from wicket.pki.clock import utc_now
from wicket.pki.keys import load_public_key
from wicket.pki.mongodb import mongodb_subject
from wicket.pki.pem import certificate_pem
from wicket.tlsconfig import peer_certificate

log = logging.getLogger("wicket.auth")

HOST_CERT_TTL = timedelta(days=365)
MAX_JOIN_NAMES = 64
IDENTITY = web.RequestKey("identity", object)
CALLER = web.RequestKey("caller", object)
LOCK_EXEMPT = "_wicket_lock_exempt"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])


def lock_exempt(handler: H) -> H:
    """Mark a handler a locked user may still call (only to learn why they are locked).

    Every other handler refuses a user a lock stops before it runs (see `_middleware`).
    """
    setattr(handler, LOCK_EXEMPT, True)
    return handler


@dataclass(frozen=True)
class CallerState:
    """A user caller's current record and the locks in force, read once per request."""

    user: User
    locks: tuple[Lock, ...]
    now: datetime


def _peer_identity(request: web.Request, cluster: ClusterAuthorities) -> Identity | None:
    """The caller's identity from its client certificate, checked against the right CA."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    cert = peer_certificate(ssl_object) if ssl_object is not None else None
    if cert is None:
        return None
    if cert.issuer == cluster.host.certificate.subject:
        return verify_certificate(
            cert, cluster.host.certificate, cluster=cluster.name, kinds={IdentityKind.HOST}
        )
    return verify_certificate(
        cert,
        cluster.user.certificate,
        cluster=cluster.name,
        kinds={IdentityKind.USER, IdentityKind.ADMIN},
    )


class AuthAPI:
    """Route handlers bound to the cluster's services."""

    def __init__(
        self,
        *,
        cluster: ClusterAuthorities,
        users: UserService,
        roles: RoleService,
        tokens: TokenService,
        databases: DatabaseService,
        locks: LockService,
        session_ttl: timedelta,
        proxy_public_addr: str | None,
        audit: AuditWriter,
    ) -> None:
        self.cluster = cluster
        self.users = users
        self.roles = roles
        self.tokens = tokens
        self.databases = databases
        self.locks = locks
        self.session_ttl = session_ttl
        self.proxy_public_addr = proxy_public_addr
        self.audit = audit

    # -- plumbing -------------------------------------------------------------------

    def application(self) -> web.Application:
        """The aiohttp application with every route."""
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY_BYTES)
        routes = [
            web.get("/v1/ping", self.ping),
            web.get("/v1/cluster", self.cluster_info),
            web.get("/v1/status", self.status),
            web.post("/v1/join", self.join),
            web.post("/v1/login", self.login),
            web.get("/v1/invites/{invite}", self.invite_info),
            web.post("/v1/invites/{invite}", self.invite_complete),
            *ManagementAPI(self).routes(),
            web.get("/v1/databases", self.databases_list),
            web.get("/v1/db_servers", self.db_servers),
            web.post("/v1/heartbeat", self.heartbeat),
            web.post("/v1/certs/database", self.database_certificate),
            web.post("/v1/certs/mongodb", self.mongodb_client_certificate),
        ]
        app.add_routes(routes)
        app.on_startup.append(_check_route_parameters)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Check path parameters, then resolve the caller from the certificate *and* now.

        For a user certificate the caller's roles and traits come from the user's
        current record (`wicket.auth.current`); a deleted user is refused here, and so
        is a locked one, except on the handlers marked `lock_exempt`.
        """
        try:
            check_path_parameters(request.match_info)
            identity = _peer_identity(request, self.cluster)
            if identity is not None and identity.kind is IdentityKind.USER:
                route_handler = request.match_info.handler
                identity = await self._current_caller(
                    request, identity, enforce_locks=not getattr(route_handler, LOCK_EXEMPT, False)
                )
            request[IDENTITY] = identity
            return await handler(request)
        except WicketError as error:
            status, body = error_body(error)
            if status >= 500:
                log.error("%s %s: %s", request.method, request.path, error)
            return web.json_response(body, status=status)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as error:
            kind = "not_found" if error.status == 404 else "bad_parameter"
            message = (
                f"no such API path {request.path[:128]!r}"
                if error.status == 404
                else f"{request.method} is not allowed on {request.path[:128]!r}"
            )
            return web.json_response(
                {"error": {"kind": kind, "message": message}}, status=error.status
            )

    async def _current_caller(
        self, request: web.Request, certified: Identity, *, enforce_locks: bool
    ) -> Identity:
        """The user caller as of now: one user read and one locks list (see `CallerState`)."""
        try:
            user: User | None = await self.users.get(certified.name)
        except NotFound:
            user = None
        identity = current_identity(certified, user)
        assert user is not None
        now = self.locks.clock()
        locks = tuple(await self.locks.list())
        if enforce_locks:
            check_not_locked(locks, user=user, now=now)
        request[CALLER] = CallerState(user=user, locks=locks, now=now)
        return identity

    @staticmethod
    def caller_state(request: web.Request) -> CallerState:
        """The user caller's current record and locks (only for user callers)."""
        value = request.get(CALLER)
        if not isinstance(value, CallerState):
            raise AccessDenied("this call needs a user certificate: log in first (wsh login)")
        return value

    def client_addr(self, request: web.Request) -> str | None:
        """The address the request came from, for audit events (forwarded only by proxies)."""
        return client_address(
            self.identity(request), request.remote, request.headers.get(FORWARDED_FOR)
        )

    def audit_change(
        self,
        request: web.Request,
        resource: str,
        action: ResourceAction,
        name: str,
        **changes: Any,
    ) -> None:
        """Emit the administrative event for a change the caller just made."""
        actor = self.identity(request)
        self.audit.emit(
            resource_changed(
                cluster=self.cluster.name,
                resource=resource,
                action=action,
                name=name,
                actor=actor.name if actor is not None else "anonymous",
                actor_roles=actor.roles if actor is not None else (),
                client_addr=self.client_addr(request),
                changes={key: value for key, value in changes.items() if value is not None},
            )
        )

    @staticmethod
    def identity(request: web.Request) -> Identity | None:
        """The caller (None when no client certificate was sent)."""
        value = request.get(IDENTITY)
        return value if isinstance(value, Identity) else None

    async def require(self, request: web.Request, resource: str, verb: str) -> Identity:
        """The caller, if it is the local admin or a user whose roles allow `verb` on `resource`."""
        identity = self.identity(request)
        if identity is None:
            raise AccessDenied("this call needs a client certificate: log in first (wsh login)")
        if identity.kind is IdentityKind.ADMIN:
            return identity
        if identity.kind is IdentityKind.USER:
            checker = await AccessChecker.for_identity(self.roles, identity.roles, identity.traits)
            if checker.can(resource, verb):
                return identity
            raise AccessDenied(
                f'user "{identity.name}" (roles: {", ".join(identity.roles) or "none"}) '
                f"may not {verb} {resource}"
            )
        raise AccessDenied(f"host {identity.name} may not {verb} {resource}")

    def require_user(self, request: web.Request) -> Identity:
        """Any logged-in user or the admin."""
        identity = self.identity(request)
        if identity is None or identity.kind is IdentityKind.HOST:
            raise AccessDenied("this call needs a user certificate: log in first (wsh login)")
        return identity

    def invite_url(self, token: str) -> str:
        """Where a new user sets their password: the proxy's invite page."""
        address = self.proxy_public_addr or "<proxy address>"
        return f"https://{address}/web/invite/{token}"

    # -- public -----------------------------------------------------------------------

    async def ping(self, request: web.Request) -> web.Response:
        """Liveness and version."""
        return web.json_response({"cluster_name": self.cluster.name, "server_version": __version__})

    async def cluster_info(self, request: web.Request) -> web.Response:
        """The cluster name, CA certificates and CA pin (public information)."""
        return web.json_response(
            {
                **self.cluster.public(),
                "server_version": __version__,
                "second_factor": self.users.second_factor.value,
            }
        )

    @lock_exempt
    async def status(self, request: web.Request) -> web.Response:
        """`wctl status` / `wsh status`: cluster, version, CA pins; a user's locks, if any.

        A locked user may call this (and only this), to learn which locks stop them.
        """
        identity = self.require_user(request)
        extra: dict[str, Any] = {}
        if identity.kind is IdentityKind.USER:
            state = self.caller_state(request)
            locks = applying_locks(state.locks, user=state.user, now=state.now)
            extra = {
                "user": state.user.name,
                "roles": list(identity.roles),
                "locks": [{**lock.to_resource(), "refusal": lock.refusal()} for lock in locks],
            }
        return web.json_response(
            {
                **extra,
                "cluster_name": self.cluster.name,
                "server_version": __version__,
                "ca_pins": {
                    "user": self.cluster.user.pin(),
                    "host": self.cluster.host.pin(),
                    "db": self.cluster.db.pin(),
                },
                "ca_pin": self.cluster.host.pin(),
                "proxy_public_addr": self.proxy_public_addr,
            }
        )

    async def join(self, request: web.Request) -> web.Response:
        """A host trades a join token (and its public key) for a host certificate.

        The auth service decides the host's id and certificate names
        (`wicket.auth.hosts.grant_for_join`): a caller-supplied `host_id` is refused;
        requested `dns_names`/`ip_addresses` the token's role does not allow are left
        out and listed in `not_granted`.
        """
        body = await read_json(request)
        token = _text(body, "token")
        role = _text(body, "role")
        assert token is not None and role is not None
        if role not in {HostRole.DB.value, HostRole.PROXY.value}:
            raise BadParameter('"role" must be "db" or "proxy"')
        if body.get("host_id") is not None:
            raise BadParameter(
                "a joining host cannot choose its host id: the auth service assigns one; "
                'leave "host_id" out of the join request'
            )
        hostname = _text(body, "hostname")
        assert hostname is not None
        public_key = load_public_key(str(_text(body, "public_key_pem")).encode())
        requested = _strings(body, "dns_names") + _strings(body, "ip_addresses")
        if len(requested) > MAX_JOIN_NAMES or not all(
            0 < len(name) <= 253 and name.isprintable() for name in requested
        ):
            raise BadParameter(
                f'"dns_names" and "ip_addresses" take at most {MAX_JOIN_NAMES} host names '
                "or addresses"
            )
        grants: list[HostGrant] = []

        def decide(info: TokenInfo) -> None:
            grants.append(
                grant_for_join(
                    HostRole(info.type.value),
                    bound_names=info.names,
                    proxy_public_addr=self.proxy_public_addr,
                )
            )

        await self.tokens.consume(token, role, check=decide)
        grant = grants[0]
        identity = Identity(
            cluster=self.cluster.name,
            kind=IdentityKind.HOST,
            name=grant.host_id,
            host_id=grant.host_id,
            host_role=grant.role,
        )
        cert = self.cluster.host.issue(
            public_key,
            identity,
            ttl=HOST_CERT_TTL,
            server=grant.server,
            client=True,
            dns_names=grant.names.dns_names,
            ip_addresses=grant.names.ip_addresses,
        )
        not_granted = grant.not_granted(requested)
        log.info(
            "host %s (%s) joined as %s with names [%s]%s",
            grant.host_id,
            hostname,
            role,
            ", ".join(grant.names.all),
            f" (not granted: {', '.join(not_granted)})" if not_granted else "",
        )
        return web.json_response(
            {
                "host_id": grant.host_id,
                "cert_pem": certificate_pem(cert).decode(),
                "dns_names": list(grant.names.dns_names),
                "ip_addresses": list(grant.names.ip_addresses),
                "not_granted": not_granted,
                **self.cluster.public(),
            }
        )

    async def login(self, request: web.Request) -> web.Response:
        """Password (and OTP) for a short-lived user certificate."""
        body = await read_json(request)
        name = _text(body, "user")
        password = body.get("password")
        otp = body.get("otp")
        assert name is not None
        if not isinstance(password, str):
            raise BadParameter('"password" must be a string')
        if otp is not None and not isinstance(otp, str):
            raise BadParameter('"otp" must be a string')
        public_key = load_public_key(str(_text(body, "public_key_pem")).encode())
        client = self.client_addr(request)
        try:
            user = await self.users.authenticate(name, password, otp)
        except LoginFailed as failure:
            log.warning("login of %r refused: %s", name, failure.reason.value)
            self.audit.emit(
                user_login(
                    cluster=self.cluster.name,
                    user=name,
                    success=False,
                    error=failure.reason.value,
                    client_addr=client,
                )
            )
            if isinstance(failure, LoginLocked) and failure.just_locked:
                self.audit.emit(
                    user_locked(
                        cluster=self.cluster.name,
                        user=name,
                        locked_until=failure.locked_until,
                        failures=failure.failures,
                        client_addr=client,
                    )
                )
            raise
        lock = first_matching(
            await self.locks.list(), user=user.name, roles=user.roles, now=self.locks.clock()
        )
        if lock is not None:
            refused = Locked(lock)
            log.warning("login of %r refused: %s", name, refused)
            self.audit.emit(
                user_login(
                    cluster=self.cluster.name,
                    user=user.name,
                    success=False,
                    error=refused,
                    roles=user.roles,
                    client_addr=client,
                )
            )
            raise refused
        self.audit.emit(
            user_login(
                cluster=self.cluster.name,
                user=user.name,
                success=True,
                roles=user.roles,
                client_addr=client,
            )
        )
        checker = await AccessChecker.for_identity(self.roles, user.roles, user.traits)
        ttl = self.session_ttl
        requested = body.get("ttl_seconds")
        if isinstance(requested, int) and requested >= 60:
            ttl = min(ttl, timedelta(seconds=requested))
        role_cap = checker.max_session_ttl()
        if role_cap is not None:
            ttl = min(ttl, role_cap)
        identity = Identity(
            cluster=self.cluster.name,
            kind=IdentityKind.USER,
            name=user.name,
            roles=user.roles,
            traits=user.traits,
        )
        cert = self.cluster.user.issue(public_key, identity, ttl=ttl, client=True)
        self.audit.emit(
            cert_issued(
                cluster=self.cluster.name,
                kind="user",
                subject=user.name,
                serial=cert.serial_number,
                expires=cert.not_valid_after_utc,
                ttl=ttl,
                actor=user.name,
                actor_roles=user.roles,
                client_addr=client,
            )
        )
        log.info("user %s logged in (certificate valid %s)", user.name, ttl)
        return web.json_response(
            {
                "cert_pem": certificate_pem(cert).decode(),
                "expires": encode_time(cert.not_valid_after_utc),
                "user": user.to_public_dict(),
                **self.cluster.public(),
            }
        )

    async def invite_info(self, request: web.Request) -> web.Response:
        """What the invite page shows (the token in the URL is the credential)."""
        info = await self.users.lookup_invite(request.match_info["invite"])
        return web.json_response(
            {
                "user": info.user,
                "expires": encode_time(info.expires),
                "otp_required": info.otp_required,
                "otp_uri": info.otp_uri,
                "cluster_name": self.cluster.name,
            }
        )

    async def invite_complete(self, request: web.Request) -> web.Response:
        """Set the password (and enroll OTP) through an invite."""
        body = await read_json(request)
        password = body.get("password")
        otp = body.get("otp")
        if not isinstance(password, str):
            raise BadParameter('"password" must be a string')
        if otp is not None and not isinstance(otp, str):
            raise BadParameter('"otp" must be a string')
        user = await self.users.complete_invite(request.match_info["invite"], password, otp)
        return web.json_response({"user": user.to_public_dict()})

    # -- databases -----------------------------------------------------------------------

    async def databases_list(self, request: web.Request) -> web.Response:
        """Databases being served; users see only those their roles allow, with their limits."""
        identity = self.identity(request)
        if identity is None:
            raise AccessDenied("this call needs a client certificate: log in first (wsh login)")
        servers = await self.databases.servers()
        if identity.kind is IdentityKind.USER:
            checker = await AccessChecker.for_identity(self.roles, identity.roles, identity.traits)
        elif identity.kind is IdentityKind.ADMIN:
            checker = None
        else:
            await self.require(request, "db", "list")
            checker = None
        seen: dict[str, dict[str, Any]] = {}
        for server in servers:
            database = server.database
            if database.name in seen:
                seen[database.name]["agents"].append(server.host_id)
                continue
            entry: dict[str, Any] = {**database.to_resource(), "agents": [server.host_id]}
            if checker is not None:
                if not checker.check_database(database.labels).allowed:
                    continue
                entry["allowed_db_users"] = checker.allowed_db_users(database.labels)
                entry["allowed_db_names"] = checker.allowed_db_names(database.labels)
            seen[database.name] = entry
        return web.json_response(list(seen.values()))

    async def db_servers(self, request: web.Request) -> web.Response:
        """Which agents serve which databases (live heartbeats); for `wctl db ls` and proxies."""
        identity = self.identity(request)
        if identity is None or identity.kind is not IdentityKind.HOST:
            await self.require(request, "db", "list")
        servers = await self.databases.servers()
        return web.json_response([s.to_public_dict() for s in servers])

    async def database_certificate(self, request: web.Request) -> web.Response:
        """A user certificate for one database route (`wsh db login`), capped by the caller's."""
        identity = self.identity(request)
        if identity is None or identity.kind is not IdentityKind.USER:
            raise AccessDenied("database certificates are for logged-in users: run wsh login")
        body = await read_json(request)
        service = str(_text(body, "service"))
        db_user = _text(body, "db_user", required=False)
        db_name = _text(body, "db_name", required=False)
        public_key = load_public_key(str(_text(body, "public_key_pem")).encode())
        database = await self._find_database(service)
        state = self.caller_state(request)
        check_not_locked(state.locks, user=state.user, now=state.now, database=database.name)
        checker = await AccessChecker.for_identity(self.roles, identity.roles, identity.traits)
        decision = checker.check_database(database.labels)
        if not decision.allowed:
            raise AccessDenied(f'access to database "{service}" denied: {decision.reason}')
        if db_user is not None:
            decision = checker.check_db_user(database.labels, db_user)
            if not decision.allowed:
                raise AccessDenied(decision.reason)
        if db_name is not None:
            decision = checker.check_db_name(database.labels, db_name)
            if not decision.allowed:
                raise AccessDenied(decision.reason)
        route = DatabaseRoute(
            service=service, protocol=database.protocol, db_user=db_user, db_name=db_name
        )
        now = utc_now()
        remaining = (identity.expires - now) if identity.expires else self.session_ttl
        if remaining <= timedelta(0):
            raise AccessDenied("your session expired: run wsh login")
        ttl = min(remaining, self.session_ttl)
        role_cap = checker.max_session_ttl()
        if role_cap is not None:
            ttl = min(ttl, role_cap)
        cert = self.cluster.user.issue(public_key, identity.with_route(route), ttl=ttl)
        self.audit.emit(
            cert_issued(
                cluster=self.cluster.name,
                kind="database",
                subject=identity.name,
                serial=cert.serial_number,
                expires=cert.not_valid_after_utc,
                ttl=ttl,
                actor=identity.name,
                actor_roles=identity.roles,
                db_service=route.service,
                db_protocol=route.protocol,
                db_user=route.db_user,
                db_name=route.db_name,
                client_addr=self.client_addr(request),
            )
        )
        return web.json_response(
            {
                "cert_pem": certificate_pem(cert).decode(),
                "expires": encode_time(cert.not_valid_after_utc),
                "database": database.to_resource(),
                **self.cluster.public(),
            }
        )

    async def mongodb_client_certificate(self, request: web.Request) -> web.Response:
        """A short-lived client certificate from the db CA for a self-hosted MongoDB user.

        Only database agents ask: they authenticate upstream with MONGODB-X509 as the
        session's db user. The agent keeps the private key; only its public key travels.
        """
        identity = self.identity(request)
        if identity is None or identity.host_role is not HostRole.DB:
            raise AccessDenied("only database agents may request MongoDB client certificates")
        body = await read_json(request)
        db_user = str(_text(body, "db_user"))
        public_key = load_public_key(str(_text(body, "public_key_pem")).encode())
        ttl_seconds = body.get("ttl_seconds", 3600)
        if not isinstance(ttl_seconds, int) or not 60 <= ttl_seconds <= 12 * 3600:
            raise BadParameter('"ttl_seconds" must be between 60 and 43200')
        db_identity = Identity(cluster=self.cluster.name, kind=IdentityKind.USER, name=db_user)
        cert = self.cluster.db.issue(
            public_key,
            db_identity,
            ttl=timedelta(seconds=ttl_seconds),
            client=True,
            subject=mongodb_subject(db_user),
        )
        self.audit.emit(
            cert_issued(
                cluster=self.cluster.name,
                kind="mongodb",
                subject=db_user,
                serial=cert.serial_number,
                expires=cert.not_valid_after_utc,
                ttl=timedelta(seconds=ttl_seconds),
                actor=identity.name,
                db_user=db_user,
                client_addr=self.client_addr(request),
                server_id=identity.host_id,
            )
        )
        return web.json_response(
            {
                "cert_pem": certificate_pem(cert).decode(),
                "db_ca_pem": self.cluster.db.cert_pem().decode(),
            }
        )

    async def _find_database(self, name: str) -> Database:
        """A served database by name, else a dynamic one."""
        for server in await self.databases.servers(name):
            return server.database
        try:
            return await self.databases.get(name)
        except NotFound:
            raise NotFound(
                f'database "{name}" not found: `wsh db ls` lists the ones you can use'
            ) from None

    async def heartbeat(self, request: web.Request) -> web.Response:
        """A database agent says which databases it serves (expires unless repeated)."""
        identity = self.identity(request)
        if identity is None or identity.host_role is not HostRole.DB or identity.host_id is None:
            raise AccessDenied("only database agents (host certificates for role db) heartbeat")
        body = await read_json(request)
        raw = body.get("databases", [])
        if not isinstance(raw, list):
            raise BadParameter('"databases" must be a list')
        databases: list[Database] = [database_from_resource(item) for item in raw]
        hostname = _text(body, "hostname")
        assert hostname is not None
        expires = await self.databases.heartbeat(identity.host_id, hostname, databases)
        dynamic = [d.to_resource() for d in await self.databases.list()]
        return web.json_response({"expires": encode_time(expires), "dynamic_databases": dynamic})


async def _check_route_parameters(app: web.Application) -> None:
    """Refuse to start with a route whose path parameter has no declared format."""
    patterns = [str(item.get_info().get("formatter", "")) for item in app.router.resources()]
    undeclared = undeclared_parameters(patterns)
    if undeclared:
        raise WicketError(
            "auth API routes with path parameters of no known format (add them to "
            f"wicket.authserver.paths.PATH_FORMATS): {', '.join(undeclared)}"
        )


def host_certificate_for_self(
    cluster: ClusterAuthorities,
    public_key: Any,
    *,
    host_id: str,
    role: HostRole,
    dns_names: list[str],
    ip_addresses: list[str],
) -> x509.Certificate:
    """A host certificate the auth process issues to its own services (auth, proxy)."""
    identity = Identity(
        cluster=cluster.name, kind=IdentityKind.HOST, name=host_id, host_id=host_id, host_role=role
    )
    return cluster.host.issue(
        public_key,
        identity,
        ttl=HOST_CERT_TTL,
        clock=utc_now,
        server=True,
        client=True,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
    )
