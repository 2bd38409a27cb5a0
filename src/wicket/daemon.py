"""`wicket start`: run the services a config enables, in one asyncio (uvloop) process.

Order: auth service (backend, CAs, API), then the proxy (its host certificate is
issued in-process when the auth service runs here), then the database agent (joins
through the proxy with its token the first time, then heartbeats and tunnels).
SIGINT/SIGTERM stop everything in reverse order; SIGHUP is logged and ignored.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

from wicket.agent.join import join_cluster, load_host_identity
from wicket.agent.service import DatabaseAgent
from wicket.api.client import AuthClient
from wicket.auth.databases import AwsSettings, Database, TlsMode, TlsSettings
from wicket.auth.users import SecondFactor
from wicket.authserver.server import AuthServer, AuthSettings
from wicket.backend.sqlite import SQLiteBackend
from wicket.config.loader import read_auth_token
from wicket.config.models import DatabaseConfig, ProxyTimeoutsConfig, WicketConfig
from wicket.descriptors import raise_descriptor_limit
from wicket.errors import BadParameter, WicketError
from wicket.logs import configure_logging
from wicket.proxy.service import ProxyIdentity, ProxyService, ProxySettings, ProxyTimeouts

log = logging.getLogger("wicket")

Closer = Callable[[], Awaitable[None]]
LOW_DESCRIPTOR_LIMIT = 8192


def database_from_config(config: DatabaseConfig) -> Database:
    """A static database from the agent's config, in the auth service's model."""
    aws = config.aws
    return Database(
        name=config.name,
        description=config.description,
        protocol="mongodb",
        uri=str(config.uri),
        labels=dict(config.static_labels),
        aws=AwsSettings(
            region=aws.region or "",
            account_id=aws.account_id or "",
            assume_role_arn=aws.assume_role_arn or "",
            external_id=aws.external_id or "",
        ),
        tls=TlsSettings(
            mode=TlsMode(config.tls.mode.value),
            ca_cert_file=str(config.tls.ca_cert_file) if config.tls.ca_cert_file else "",
        ),
    )


def _connect_host(host: str) -> str:
    """Where to reach a service listening on `host` from this machine."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _split_names(host: str) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) for a certificate naming `host`."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return [host], []
    return [], [host]


def proxy_timeouts(config: ProxyTimeoutsConfig) -> ProxyTimeouts:
    """The proxy's connection deadlines from the config, in seconds."""
    return ProxyTimeouts(
        client_hello=config.client_hello.total_seconds(),
        tls_handshake=config.tls_handshake.total_seconds(),
        first_request=config.first_request.total_seconds(),
        idle=config.idle.total_seconds(),
    )


def raise_and_log_descriptor_limit() -> None:
    """Raise the descriptor soft limit to the hard limit and log both (every connection
    is a descriptor; the usual soft limit of 1,024 runs out under a few hundred clients)."""
    change = raise_descriptor_limit()
    if change.after > change.before:
        log.info(
            "file descriptor limit raised from %d to %d (hard limit %d)",
            change.before,
            change.after,
            change.hard,
        )
    elif change.after < LOW_DESCRIPTOR_LIMIT:
        log.warning(
            "file descriptor limit %d (hard limit %d): raise the hard limit (LimitNOFILE= "
            "in the systemd unit, or `ulimit -Hn`) to serve more connections",
            change.after,
            change.hard,
        )
    else:
        log.info("file descriptor limit %d (hard limit %d)", change.after, change.hard)


async def _second_factor(auth: AuthClient) -> str:
    """The cluster's second-factor setting, as the auth service reports it."""
    info = await auth.get("/v1/cluster")
    return str(info.get("second_factor", "off")) if isinstance(info, dict) else "off"


class Daemon:
    """The running services of one `wicket start`."""

    def __init__(self, config: WicketConfig) -> None:
        self.config = config
        self._closers: list[Closer] = []
        self.auth: AuthServer | None = None
        self.proxy: ProxyService | None = None
        self.agent: DatabaseAgent | None = None

    async def start(self) -> None:
        """Start every enabled service; on failure, stop what started."""
        config = self.config
        data_dir = config.wicket.data_dir
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            if config.auth_service.enabled:
                await self._start_auth(data_dir)
            if config.proxy_service.enabled:
                await self._start_proxy()
            if config.db_service.enabled:
                await self._start_agent(data_dir)
        except BaseException:
            await self.close()
            raise

    async def _start_auth(self, data_dir: Path) -> None:
        settings = self.config.auth_service
        backend = await SQLiteBackend.open(data_dir / "backend.sqlite")
        self._closers.append(backend.close)
        proxy = self.config.proxy_service
        self.auth = await AuthServer.start(
            backend,
            AuthSettings(
                cluster_name=str(settings.cluster_name),
                host=settings.listen_addr.host,
                port=settings.listen_addr.port,
                data_dir=data_dir,
                nodename=self.config.wicket.nodename,
                second_factor=SecondFactor(settings.authentication.second_factor.value),
                session_ttl=settings.session_ttl,
                proxy_public_addr=str(proxy.public_addr) if proxy.public_addr else None,
            ),
        )
        self._closers.append(self.auth.close)

    async def _start_proxy(self) -> None:
        settings = self.config.proxy_service
        if settings.public_addr is None:
            raise BadParameter("proxy_service.public_addr is required")
        if self.auth is None:
            await self._start_remote_proxy()
            return
        cluster = self.auth.cluster
        nodename = self.config.wicket.nodename
        public_host = settings.public_addr.host.strip("[]")
        dns, ips = _split_names(public_host)
        identity = ProxyIdentity.issued_by(
            cluster,
            host_id=f"proxy-{nodename}",
            dns_names=sorted({*dns, nodename, "localhost"}),
            ip_addresses=sorted({*ips, "127.0.0.1", "::1"}),
        )
        auth_host, auth_port = self.auth.address
        auth_client = identity.auth_client(f"{_connect_host(auth_host)}:{auth_port}")
        self.proxy = ProxyService(
            identity,
            ProxySettings(
                listen_host=settings.listen_addr.host,
                listen_port=settings.listen_addr.port,
                public_addr=str(settings.public_addr),
                auth_host=_connect_host(auth_host),
                auth_port=auth_port,
                second_factor=self.config.auth_service.authentication.second_factor.value,
                data_dir=self.config.wicket.data_dir,
                timeouts=proxy_timeouts(settings.timeouts),
            ),
            auth_client,
        )
        await self.proxy.start()
        self._closers.append(self.proxy.close)

    async def _start_remote_proxy(self) -> None:
        """A proxy on its own host: join the auth service with a proxy token, then serve."""
        settings = self.config.proxy_service
        glob = self.config.wicket
        assert settings.public_addr is not None
        if glob.auth_server is None:
            raise BadParameter(
                "proxy_service without auth_service needs wicket.auth_server (HOST:PORT)"
            )
        data_dir = glob.data_dir
        identity = load_host_identity(data_dir)
        if identity is None:
            if not glob.auth_token:
                raise BadParameter(
                    "this proxy has not joined the cluster yet and wicket.auth_token is not set: "
                    "create a token with `wctl tokens add --type=proxy` and set auth_token"
                )
            public_host = settings.public_addr.host.strip("[]")
            dns, ips = _split_names(public_host)
            identity = await join_cluster(
                data_dir=data_dir,
                proxy_addr=str(glob.auth_server),
                token=read_auth_token(glob.auth_token),
                hostname=glob.nodename,
                ca_pins=tuple(glob.ca_pin),
                role="proxy",
                direct_to_auth=True,
                dns_names=tuple(sorted({*dns, glob.nodename, "localhost"})),
                ip_addresses=tuple(sorted({*ips, "127.0.0.1", "::1"})),
            )
        proxy_identity = ProxyIdentity(
            cluster_name=identity.cluster_name,
            cert_pem=identity.cert_pem,
            key_pem=identity.key_pem,
            user_ca_pem=identity.user_ca_pem,
            host_ca_pem=identity.host_ca_pem,
        )
        auth_host = glob.auth_server.host.strip("[]")
        auth_client = proxy_identity.auth_client(str(glob.auth_server))
        self.proxy = ProxyService(
            proxy_identity,
            ProxySettings(
                listen_host=settings.listen_addr.host,
                listen_port=settings.listen_addr.port,
                public_addr=str(settings.public_addr),
                auth_host=auth_host,
                auth_port=glob.auth_server.port,
                second_factor=await _second_factor(auth_client),
                data_dir=data_dir,
                timeouts=proxy_timeouts(settings.timeouts),
            ),
            auth_client,
        )
        await self.proxy.start()
        self._closers.append(self.proxy.close)

    async def _start_agent(self, data_dir: Path) -> None:
        glob = self.config.wicket
        proxy_addr = glob.proxy_server
        if proxy_addr is None and self.config.proxy_service.public_addr is not None:
            proxy_addr = self.config.proxy_service.public_addr
        if proxy_addr is None:
            raise BadParameter("db_service needs wicket.proxy_server (the proxy's HOST:PORT)")
        identity = load_host_identity(data_dir)
        if identity is None:
            if not glob.auth_token:
                raise BadParameter(
                    "db_service has not joined the cluster yet and wicket.auth_token is not set: "
                    "create a token with `wctl tokens add --type=db` and set auth_token"
                )
            identity = await join_cluster(
                data_dir=data_dir,
                proxy_addr=str(proxy_addr),
                token=read_auth_token(glob.auth_token),
                hostname=glob.nodename,
                ca_pins=tuple(glob.ca_pin),
            )
        self.agent = DatabaseAgent(
            identity=identity,
            proxy_host=proxy_addr.host.strip("[]"),
            proxy_port=proxy_addr.port,
            hostname=glob.nodename,
            databases=[database_from_config(d) for d in self.config.db_service.databases],
            data_dir=data_dir,
            resource_matchers=[m.labels for m in self.config.db_service.resources],
            locking_mode=self.config.db_service.locking_mode,
        )
        await self.agent.start()
        self._closers.append(self.agent.close)

    async def close(self) -> None:
        """Stop services in reverse order."""
        while self._closers:
            closer = self._closers.pop()
            try:
                await closer()
            except (WicketError, OSError) as error:
                log.warning("error while stopping: %s", error)


async def serve(config: WicketConfig) -> None:
    """Run until SIGINT/SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(
        signal.SIGHUP, lambda: log.info("SIGHUP: configuration reload is not supported; ignored")
    )
    daemon = Daemon(config)
    await daemon.start()
    parts = []
    if daemon.auth is not None:
        parts.append("auth {}:{}".format(*daemon.auth.address))
    if daemon.proxy is not None:
        parts.append("proxy {}:{}".format(*daemon.proxy.address))
    if daemon.agent is not None:
        parts.append(f"db agent {daemon.agent.identity.host_id}")
    log.info("wicket started (pid %d): %s", os.getpid(), ", ".join(parts))
    try:
        await stop.wait()
    finally:
        log.info("wicket stopping")
        await daemon.close()


def run_daemon(config: WicketConfig, config_path: Path) -> int:
    """Run the enabled services until SIGINT/SIGTERM; returns the exit code."""
    configure_logging(config.wicket.log)
    log.debug("config %s", config_path)
    raise_and_log_descriptor_limit()
    uvloop.run(serve(config))
    return 0
