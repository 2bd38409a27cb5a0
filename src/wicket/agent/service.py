"""The database agent: heartbeats its databases to the auth service and keeps reverse tunnels.

It never listens: everything goes out to the proxy, so it can sit behind NAT.
Database sessions arriving on the tunnel are served by the MongoDB engine
(`wicket.agent.mongodb.engine`); its audit events go through an `AuditWriter` that
spools to `data_dir/audit-spool/` whenever the auth service cannot be reached.

Sessions are authorized continuously: the agent mirrors users, roles and locks from the
auth service's watch stream (`wicket.agent.access`), and its `SessionRegistry`
(`wicket.agent.live_sessions`) ends open sessions that lose their rights. Roles come
from that mirror; only while it has never synced are they fetched one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from wicket.agent.access import AccessMirror
from wicket.agent.join import HostIdentity
from wicket.agent.live_sessions import LockingMode, SessionRegistry
from wicket.agent.mongodb.engine import EngineContext, MongoSession
from wicket.agent.mongodb.iam import IamAuthenticator
from wicket.api.client import AUTH_ALPN, AuthClient
from wicket.audit.writer import AuditWriter, auth_api_sender, spool_directory
from wicket.auth.databases import Database, database_from_resource
from wicket.auth.resources import parse_resource
from wicket.auth.roles import Role, labels_match
from wicket.errors import AccessDenied, NotFound, WicketError
from wicket.pki.keys import generate_private_key, private_key_pem, public_key_pem
from wicket.pki.pem import load_certificate
from wicket.tunnel.client import TunnelClient
from wicket.tunnel.protocol import SessionHeader

log = logging.getLogger("wicket.agent")

CLIENT_CERT_SECONDS = 3600
HEARTBEAT_INTERVAL = 30.0
HEARTBEAT_RETRY = 5.0
TUNNEL_ALPN = "wicket-tunnel"
HOST_REFUSAL_HINT = (
    "check that this agent's host identity (data_dir/host) is of this cluster, "
    "or join again with a new token"
)


class DatabaseAgent:
    """One agent process: static databases from its config, tunnels to one proxy."""

    def __init__(
        self,
        *,
        identity: HostIdentity,
        proxy_host: str,
        proxy_port: int,
        hostname: str,
        databases: Sequence[Database],
        data_dir: Path,
        resource_matchers: Sequence[Mapping[str, Sequence[str]]] = (),
        locking_mode: LockingMode | str = LockingMode.BEST_EFFORT,
    ) -> None:
        self.identity = identity
        self.proxy_host = proxy_host
        self.proxy_port = proxy_port
        self.hostname = hostname
        self.static_databases = list(databases)
        # dynamic databases (`wctl create`) whose labels one of these selectors matches
        self.resource_matchers = [dict(m) for m in resource_matchers]
        self.dynamic_databases: list[Database] = []
        self.auth = AuthClient(
            f"{proxy_host}:{proxy_port}",
            identity.client_context(AUTH_ALPN),
            refusal_hint=HOST_REFUSAL_HINT,
        )
        self.tunnel = TunnelClient(
            proxy_addr=(proxy_host, proxy_port),
            ssl_context_factory=lambda: identity.client_context(TUNNEL_ALPN),
            agent_id=identity.host_id,
            databases=self._announced,
            handle_session=self._handle_session,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self.heartbeats = 0
        self.last_heartbeat_error: str | None = None
        self.audit = AuditWriter(
            send=auth_api_sender(self.auth),
            spool_dir=spool_directory(data_dir) / "agent",
            jsonl_path=data_dir / "log" / "events.jsonl",
        )
        self.access = AccessMirror(
            f"{proxy_host}:{proxy_port}", lambda: identity.client_context(AUTH_ALPN)
        )
        self.sessions = SessionRegistry(self.access, mode=LockingMode(locking_mode))
        self._client_certs: dict[str, tuple[float, tuple[bytes, bytes]]] = {}
        self._client_key = generate_private_key()
        self.engine = EngineContext(
            cluster_name=identity.cluster_name,
            user_ca=load_certificate(identity.user_ca_pem),
            host_id=identity.host_id,
            database=self._database,
            role=self._role,
            client_certificate=self._client_certificate,
            iam=IamAuthenticator(),
            emit=self.audit.emit,
            sessions=self.sessions,
        )

    async def _database(self, name: str) -> Database:
        for database in self.served():
            if database.name == name:
                return database
        raise NotFound(f'this database service does not serve "{name}"')

    async def _role(self, name: str) -> Role:
        """A role from the mirror; fetched only while the mirror has no state (no cache)."""
        view = self.access.view()
        if view is not None:
            mirrored = view.roles.get(name)
            if mirrored is None:
                raise AccessDenied(f'role "{name}" no longer exists; log in again')
            return mirrored
        try:
            resource = parse_resource(await self.auth.get(f"/v1/roles/{quote(name, safe='')}"))
        except NotFound:
            raise AccessDenied(f'role "{name}" no longer exists; log in again') from None
        if not isinstance(resource, Role):
            raise WicketError(f'the auth service sent something else than role "{name}"')
        return resource

    async def _client_certificate(self, db_user: str) -> tuple[bytes, bytes]:
        """A client certificate for MONGODB-X509 as `db_user`, from the cluster's db CA."""
        now = time.monotonic()
        cached = self._client_certs.get(db_user)
        if cached is not None and cached[0] > now:
            return cached[1]
        answer = await self.auth.post(
            "/v1/certs/mongodb",
            {
                "db_user": db_user,
                "public_key_pem": public_key_pem(self._client_key).decode(),
                "ttl_seconds": CLIENT_CERT_SECONDS,
            },
        )
        pair = (str(answer["cert_pem"]).encode(), private_key_pem(self._client_key))
        self._client_certs[db_user] = (now + CLIENT_CERT_SECONDS - 300, pair)
        return pair

    def served(self) -> list[Database]:
        """Static databases, then matched dynamic ones (a static name wins)."""
        names = {database.name for database in self.static_databases}
        return self.static_databases + [d for d in self.dynamic_databases if d.name not in names]

    def _announced(self) -> list[Mapping[str, Any]]:
        return [database.to_resource() for database in self.served()]

    def _match_dynamic(self, resources: Any) -> bool:
        """Pick the dynamic databases this agent serves; True when the set changed."""
        if not isinstance(resources, list) or not self.resource_matchers:
            return False
        matched: list[Database] = []
        for resource in resources:
            try:
                database = database_from_resource(resource)
            except (WicketError, ValueError) as error:
                log.warning("ignoring a malformed dynamic database: %s", error)
                continue
            if any(labels_match(m, database.labels) for m in self.resource_matchers):
                matched.append(database)
        changed = [d.to_resource() for d in matched] != [
            d.to_resource() for d in self.dynamic_databases
        ]
        self.dynamic_databases = matched
        return changed

    async def start(self) -> None:
        """Begin heartbeating and tunneling (both retry on their own)."""
        self._tasks = [
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self.tunnel.run(), name="tunnel"),
            asyncio.create_task(self.access.run(), name="access watch"),
            self.audit.start(),
        ]

    async def heartbeat_once(self) -> None:
        """Tell the auth service which databases this agent serves (and learn dynamic ones)."""
        answer = await self.auth.post(
            "/v1/heartbeat", {"hostname": self.hostname, "databases": self._announced()}
        )
        self.heartbeats += 1
        if isinstance(answer, dict) and self._match_dynamic(answer.get("dynamic_databases")):
            log.info("serving dynamic databases: %s", [d.name for d in self.dynamic_databases])
            await self.auth.post(
                "/v1/heartbeat", {"hostname": self.hostname, "databases": self._announced()}
            )

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await self.heartbeat_once()
                self.last_heartbeat_error = None
                await asyncio.sleep(HEARTBEAT_INTERVAL)
            except WicketError as error:
                if self.last_heartbeat_error != str(error):
                    log.warning("heartbeat failed (will retry): %s", error)
                self.last_heartbeat_error = str(error)
                await asyncio.sleep(HEARTBEAT_RETRY)

    async def _handle_session(
        self, header: SessionHeader, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            await MongoSession(self.engine, header, reader, writer).run()
        except (WicketError, OSError, TimeoutError) as error:
            log.info("session %s ended: %s", header.session_id, error)

    async def close(self) -> None:
        """Stop heartbeating, close the tunnels, flush (or spool) the audit trail."""
        await self.tunnel.close()
        await self.audit.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, WicketError):
                await task
        await self.auth.close()
