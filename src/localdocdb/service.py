"""Run a localdocdb server process: storage, TLS listener, optional AWS control plane."""

from __future__ import annotations

import asyncio
import signal
import ssl
import sys

import uvloop

from localdocdb import controlplane
from localdocdb.server import LocalDocDBServer
from localdocdb.state import Mode, ServerConfig, ServerState
from localdocdb.tls import ensure_tls_material, server_ssl_context
from wicket.errors import BadParameter


async def serve_until_stopped(config: ServerConfig, stop: asyncio.Event) -> None:
    """Start everything, print `ready <port>`, and run until `stop` is set."""
    try:
        material = ensure_tls_material(config.tls_dir)
        context = server_ssl_context(
            material,
            legacy_cn=config.legacy_cn_cert,
            client_ca=config.client_ca,
            request_client_certificates=config.mode is Mode.MONGODB,
        )
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise BadParameter(f"--tls-dir {config.tls_dir}: {_reason(exc)}") from exc
    try:
        state = ServerState.open(config)
    except OSError as exc:
        raise BadParameter(f"--data-dir {config.data_dir}: {_reason(exc)}") from exc
    server = LocalDocDBServer(state, context)
    runner = None
    try:
        port = await server.start()
        if config.aws_api_port is not None:
            info = controlplane.ClusterInfo(
                cluster_id=config.cluster_id,
                region=config.region,
                account_id=config.account_id,
                endpoint="localhost",
                reader_endpoint="localhost",
                port=port,
                tags=config.tags,
                master_user=config.master_user,
            )
            runner = await controlplane.start(info, config.host, config.aws_api_port)
        print(f"ready {port}", flush=True)
        await stop.wait()
    finally:
        if runner is not None:
            await runner.cleanup()
        await server.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}" + (f" ({exc.filename})" if exc.filename else "")
    return str(exc)


def run_service(config: ServerConfig) -> None:
    """Run the server in this process until SIGINT or SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_until_stopped(config, stop)

    uvloop.run(main())
    sys.stdout.flush()
