"""The database agent: heartbeats its databases to the auth service and keeps reverse tunnels.

It never listens: everything goes out to the proxy, so it can sit behind NAT.
Database sessions arriving on the tunnel are served by the protocol engine
(`wicket.agent.mongodb`, issue 4); until that lands they are refused cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from wicket.agent.join import HostIdentity
from wicket.api.client import AUTH_ALPN, AuthClient
from wicket.auth.databases import Database
from wicket.errors import WicketError
from wicket.tunnel.client import TunnelClient
from wicket.tunnel.protocol import SessionHeader

log = logging.getLogger("wicket.agent")

HEARTBEAT_INTERVAL = 30.0
HEARTBEAT_RETRY = 5.0
TUNNEL_ALPN = "wicket-tunnel"


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
    ) -> None:
        self.identity = identity
        self.proxy_host = proxy_host
        self.proxy_port = proxy_port
        self.hostname = hostname
        self.static_databases = list(databases)
        self.auth = AuthClient(f"{proxy_host}:{proxy_port}", identity.client_context(AUTH_ALPN))
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

    def _announced(self) -> list[Mapping[str, Any]]:
        return [database.to_resource() for database in self.static_databases]

    async def start(self) -> None:
        """Begin heartbeating and tunneling (both retry on their own)."""
        self._tasks = [
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self.tunnel.run(), name="tunnel"),
        ]

    async def heartbeat_once(self) -> None:
        """Tell the auth service which databases this agent serves."""
        await self.auth.post(
            "/v1/heartbeat", {"hostname": self.hostname, "databases": self._announced()}
        )
        self.heartbeats += 1

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
        log.warning(
            "session %s for %s refused: the database engine is not available in this build",
            header.session_id,
            header.route.get("service"),
        )
        writer.close()

    async def close(self) -> None:
        """Stop heartbeating and close the tunnels."""
        await self.tunnel.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, WicketError):
                await task
        await self.auth.close()
