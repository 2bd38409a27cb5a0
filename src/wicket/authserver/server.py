"""Run the auth service: open the backend, load the CAs, serve the API over mutual TLS.

On start it also (re)writes the local admin identity into `data_dir/admin/`, which
`wctl` on the auth host uses: a certificate for `wicket-admin` (kind admin), its key
(0600), the cluster's CA certificates and the address to call.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from wicket.api.client import AUTH_SERVER_NAME
from wicket.audit.writer import AuditWriter, spool_directory
from wicket.auth.databases import DatabaseService
from wicket.auth.events_legacy import import_kv_events
from wicket.auth.events_sqlite import SQLiteEventStore, events_file
from wicket.auth.locks import LockService
from wicket.auth.roles import RoleService
from wicket.auth.tokens import TokenService
from wicket.auth.users import SecondFactor, UserService
from wicket.authserver.api import AuthAPI, host_certificate_for_self
from wicket.authserver.cluster import ClusterAuthorities, load_or_create
from wicket.authserver.events_api import add_event_routes, events_log_path
from wicket.authserver.locks_api import add_lock_routes
from wicket.authserver.watch_api import add_watch_routes
from wicket.backend.base import Backend
from wicket.identity import HostRole, Identity, IdentityKind
from wicket.pki.keys import generate_private_key, private_key_pem, write_private_file
from wicket.pki.pem import certificate_pem
from wicket.tlsconfig import server_context

log = logging.getLogger("wicket.auth")

ADMIN_NAME = "wicket-admin"
ADMIN_CERT_TTL = timedelta(days=30)


@dataclass(frozen=True)
class AuthSettings:
    """What the auth service needs from the config."""

    cluster_name: str
    host: str
    port: int
    data_dir: Path
    nodename: str
    second_factor: SecondFactor = SecondFactor.OFF
    session_ttl: timedelta = timedelta(hours=12)
    proxy_public_addr: str | None = None


@dataclass(frozen=True)
class AdminIdentityFiles:
    """Where the local admin identity lives."""

    directory: Path

    @property
    def cert(self) -> Path:
        """Admin certificate (PEM)."""
        return self.directory / "cert.pem"

    @property
    def key(self) -> Path:
        """Admin private key (PEM, 0600)."""
        return self.directory / "key.pem"

    @property
    def cas(self) -> Path:
        """The cluster's CA certificates, JSON by kind."""
        return self.directory / "cluster.json"


def admin_identity_files(data_dir: Path) -> AdminIdentityFiles:
    """The admin identity directory of a data dir."""
    return AdminIdentityFiles(data_dir / "admin")


def _bound_address(site: web.TCPSite, host: str, port: int) -> tuple[str, int]:
    """The address a site really listens on (port 0 picks a free one)."""
    server = site._server  # aiohttp keeps the asyncio server private
    if isinstance(server, asyncio.Server) and server.sockets:
        name = server.sockets[0].getsockname()
        return str(name[0]), int(name[1])
    return host, port


class AuthServer:
    """A running auth service."""

    def __init__(self, api: AuthAPI, runner: web.AppRunner, address: tuple[str, int]) -> None:
        self.api = api
        self.runner = runner
        self.address = address
        self.audit_task: asyncio.Task[None] | None = None
        self.events: SQLiteEventStore | None = None

    @property
    def cluster(self) -> ClusterAuthorities:
        """The cluster's name and CAs."""
        return self.api.cluster

    @classmethod
    async def start(cls, backend: Backend, settings: AuthSettings) -> AuthServer:
        """Load or create the cluster, start listening, write the admin identity."""
        cluster = await load_or_create(backend, settings.cluster_name)
        roles = RoleService(backend)
        users = UserService(
            backend,
            roles=roles,
            second_factor=settings.second_factor,
            cluster_name=cluster.name,
        )
        events = await SQLiteEventStore.open(events_file(settings.data_dir))
        await import_kv_events(backend, events)  # events older versions kept in the backend

        async def store_events(batch: list[dict[str, Any]]) -> None:
            await events.append(batch)

        api = AuthAPI(
            cluster=cluster,
            users=users,
            roles=roles,
            tokens=TokenService(backend),
            databases=DatabaseService(backend),
            locks=LockService(backend),
            session_ttl=settings.session_ttl,
            proxy_public_addr=settings.proxy_public_addr,
            audit=AuditWriter(
                send=store_events,
                spool_dir=spool_directory(settings.data_dir) / "auth",
                jsonl_path=None,
            ),
        )
        key = generate_private_key()
        # Every auth client dials it as `wicket-auth` (whatever address reaches it) and
        # accepts only the auth host role there: that one name is all it needs.
        cert = host_certificate_for_self(
            cluster,
            key.public_key(),
            host_id=f"auth-{settings.nodename}",
            role=HostRole.AUTH,
            dns_names=[AUTH_SERVER_NAME],
            ip_addresses=[],
        )
        context = server_context(
            certificate_pem(cert),
            private_key_pem(key),
            client_cas=[cluster.user.cert_pem(), cluster.host.cert_pem()],
            require_client_cert=False,
        )
        app = api.application()
        add_event_routes(app, api, events, jsonl_path=events_log_path(settings.data_dir))
        add_lock_routes(app, api)
        add_watch_routes(app, api, backend)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=5, keepalive_timeout=120
        )
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port, ssl_context=context)
        await site.start()
        bound = _bound_address(site, settings.host, settings.port)
        server = cls(api, runner, (str(bound[0]), int(bound[1])))
        server.events = events
        server.write_admin_identity(settings.data_dir)
        server.audit_task = api.audit.start()
        log.info("auth service for cluster %s on %s:%d", cluster.name, *server.address)
        return server

    def write_admin_identity(self, data_dir: Path) -> AdminIdentityFiles:
        """A fresh admin certificate for `wctl` on this host (key 0600, dir 0700)."""
        files = admin_identity_files(data_dir)
        key = generate_private_key()
        identity = Identity(
            cluster=self.cluster.name,
            kind=IdentityKind.ADMIN,
            name=ADMIN_NAME,
            roles=("editor",),
        )
        cert = self.cluster.user.issue(key.public_key(), identity, ttl=ADMIN_CERT_TTL)
        write_private_file(files.key, private_key_pem(key))
        write_private_file(files.cert, certificate_pem(cert))
        host, port = self.address
        connect_host = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
        info = {**self.cluster.public(), "auth_addr": f"{connect_host}:{port}"}
        write_private_file(files.cas, json.dumps(info, indent=2).encode())
        return files

    async def close(self) -> None:
        """Stop serving; flush (or spool) the auth service's own audit events."""
        await self.runner.cleanup()
        await self.api.audit.close()
        if self.events is not None:
            await self.events.close()
