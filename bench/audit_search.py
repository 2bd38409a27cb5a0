"""`python -m bench.audit_search [--events 300000]`: audit searches under a full store.

Layer: benchmark tooling. Starts a real auth service (in this process, as the
all-in-one daemon runs it) and fills its event store with `--events` events. Then,
on the auth service's own event loop, a TCP echo "ping" runs every few milliseconds
(a stand-in for the tunnel and web sessions the auth/proxy process serves on that
loop) while `GET /v1/events` searches (what `wctl events ls` sends, over mutual TLS as
the admin) run from another thread. It prints each search's time and the ping round
trip p50/p99 idle and during the searches: a search that blocked the loop would show
up in the second p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from bench.harness import median, percentile
from wicket.api.client import AuthClient
from wicket.audit.events import SessionAudit, format_time
from wicket.authserver.server import AuthServer, AuthSettings
from wicket.backend.sqlite import SQLiteBackend
from wicket.tlsconfig import client_context

T = TypeVar("T")
FILL_BATCH = 5000
PING_INTERVAL = 0.005
SEARCH_ROUNDS = 10
SEARCHES = {
    "ls --limit 1": {"limit": "1"},
    "ls --limit 1000": {"limit": "1000"},
    "ls --user user-7 --limit 1": {"user": "user-7", "limit": "1"},
    "ls --type 'db.session.*' --limit 1": {"type": "db.session.*", "limit": "1"},
    "ls --db db-3 --limit 100": {"db_service": "db-3", "limit": "100"},
}


class LoopThread:
    """An event loop on its own thread: the auth service's loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 1800) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _batches(count: int, start: datetime) -> list[list[dict[str, Any]]]:
    audits = [
        SessionAudit(
            cluster="bench",
            user=f"user-{n % 50}",
            roles=("access",),
            session_id=str(uuid.uuid4()),
            db_service=f"db-{n % 5}",
            db_protocol="mongodb",
            db_user="wicket-docdb-user",
            db_name="test",
            client_addr="127.0.0.1:1",
            server_id="agent-1",
        )
        for n in range(500)
    ]
    templates = [
        audit.query(
            command="find",
            database="test",
            namespaces=["test.orders"],
            body={"find": "orders", "filter": {"status": "open"}},
        ).to_json()
        for audit in audits
    ]
    events = [
        {
            **templates[n % len(templates)],
            "id": str(uuid.UUID(int=n + 1)),
            "time": format_time(start + timedelta(milliseconds=n)),
        }
        for n in range(count)
    ]
    return [events[i : i + FILL_BATCH] for i in range(0, count, FILL_BATCH)]


class Pinger:
    """A loopback echo on the auth service's loop, timed every `PING_INTERVAL` seconds."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.running = True

    async def run(self) -> None:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(64):
                writer.write(data)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while self.running:
                started = time.perf_counter()
                writer.write(b"ping")
                await writer.drain()
                await asyncio.wait_for(reader.readexactly(4), 30)
                self.samples.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(PING_INTERVAL)
        finally:
            writer.close()
            server.close()
            await server.wait_closed()

    def take(self) -> list[float]:
        samples, self.samples = self.samples, []
        return samples


def _admin_client(data_dir: Path) -> AuthClient:
    """What `wctl` on the auth host uses: the admin identity files."""
    admin = data_dir / "admin"
    info = json.loads((admin / "cluster.json").read_text())
    context = client_context(
        ca_pems=[info["cas"]["host"].encode()],
        cert_chain_pem=(admin / "cert.pem").read_bytes(),
        key_pem=(admin / "key.pem").read_bytes(),
    )
    return AuthClient(info["auth_addr"], context, timeout=120)


async def _searches(data_dir: Path) -> list[tuple[str, float, float]]:
    results: list[tuple[str, float, float]] = []
    async with _admin_client(data_dir) as client:
        for name, query in SEARCHES.items():
            times: list[float] = []
            for _ in range(SEARCH_ROUNDS):
                before = time.perf_counter()
                await client.get(f"/v1/events?{urlencode(query)}")
                times.append((time.perf_counter() - before) * 1000)
            results.append((name, median(times), max(times)))
    return results


def run(count: int, directory: Path) -> None:
    """Start the auth service, fill its store, then measure searches against the ping."""
    server_loop = LoopThread()

    async def start() -> tuple[SQLiteBackend, AuthServer]:
        backend = await SQLiteBackend.open(directory / "wicket.db")
        settings = AuthSettings("bench", "127.0.0.1", 0, directory, "bench")
        return backend, await AuthServer.start(backend, settings)

    backend, server = server_loop.run(start())
    store = server.events
    assert store is not None
    try:
        started = time.perf_counter()
        for batch in _batches(count, datetime.now(UTC) - timedelta(days=1)):
            server_loop.run(store.append(batch))
        stored = server_loop.run(store.count())
        print(f"filled {stored:,} events in {time.perf_counter() - started:.1f} s")
        pinger = Pinger()
        ping_task = asyncio.run_coroutine_threadsafe(pinger.run(), server_loop.loop)
        time.sleep(1.0)
        idle = pinger.take()
        decoded_before = store.stats.decoded
        results = asyncio.run(_searches(directory))  # a client on its own loop, like wctl
        during = pinger.take()
        pinger.running = False
        ping_task.result(30)
        print(f"{'GET /v1/events (wctl events ...)':40} {'median ms':>10} {'max ms':>10}")
        for name, middle, most in results:
            print(f"{name:40} {middle:10.2f} {most:10.2f}")
        for label, samples in (("idle", idle), ("during searches", during)):
            print(
                f"ping {label:16} p50 {percentile(samples, 0.5):6.2f} ms"
                f"  p99 {percentile(samples, 0.99):6.2f} ms"
                f"  max {max(samples):6.2f} ms  ({len(samples)} pings)"
            )
        print(f"rows decoded by the searches: {store.stats.decoded - decoded_before:,}")
    finally:
        server_loop.run(server.close())
        server_loop.run(backend.close())
        server_loop.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the scenario in a temporary directory."""
    parser = argparse.ArgumentParser(prog="python -m bench.audit_search", description=__doc__)
    parser.add_argument("--events", type=int, default=300_000, help="events to store first")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wicket-audit-bench-") as directory:
        run(args.events, Path(directory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
