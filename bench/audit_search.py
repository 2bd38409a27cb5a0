"""`python -m bench.audit_search [--events 300000]`: audit searches under a full store.

Layer: benchmark tooling. Fills an audit event store (the auth service's
`SQLiteEventStore`) with `--events` events, then, on one asyncio loop, runs a TCP
echo "ping" every few milliseconds (a stand-in for the tunnel and web sessions the
auth/proxy process serves on that loop) while searches like `wctl events ls --limit 1`
run. It prints each search's time and the ping round trip p50/p99 idle and during the
searches: a search that blocked the loop would show up in the second p99.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness import median, percentile
from wicket.audit.events import SessionAudit
from wicket.auth.events import EventQuery
from wicket.auth.events_sqlite import SQLiteEventStore

FILL_BATCH = 1000
PING_INTERVAL = 0.005
SEARCH_ROUNDS = 20


def _events(count: int, start: datetime) -> list[list[dict[str, object]]]:
    batches: list[list[dict[str, object]]] = []
    sessions = [
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
    batch: list[dict[str, object]] = []
    for n in range(count):
        audit = sessions[n % len(sessions)]
        moment = start + timedelta(milliseconds=n)
        batch.append(
            audit.query(
                command="find",
                database="test",
                namespaces=["test.orders"],
                body={"find": "orders", "filter": {"n": n}},
                now=moment,
            ).to_json()
        )
        if len(batch) == FILL_BATCH:
            batches.append(batch)
            batch = []
    if batch:
        batches.append(batch)
    return batches


class Pinger:
    """A loopback echo on this loop, timed every `PING_INTERVAL` seconds."""

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


async def main_async(count: int, directory: Path) -> None:
    """Fill, then measure searches with the pinger running."""
    store = await SQLiteEventStore.open(directory / "events.sqlite", sweep_interval=None)
    try:
        started = time.perf_counter()
        for batch in _events(count, datetime.now(UTC) - timedelta(days=1)):
            await store.append(batch)
        print(f"filled {await store.count():,} events in {time.perf_counter() - started:.1f} s")
        pinger = Pinger()
        ping_task = asyncio.create_task(pinger.run())
        await asyncio.sleep(1.0)
        idle = pinger.take()
        queries = {
            "ls --limit 1": EventQuery(limit=1),
            "ls --limit 1000": EventQuery(limit=1000),
            "ls --user user-7 --limit 1": EventQuery(user="user-7", limit=1),
            "ls --type 'db.session.*' --limit 1": EventQuery(type="db.session.*", limit=1),
            "ls --db db-3 --since 1h --limit 100": EventQuery(
                db_service="db-3", since=datetime.now(UTC) - timedelta(hours=1), limit=100
            ),
        }
        print(f"{'search':40} {'median ms':>10} {'max ms':>10}")
        for name, query in queries.items():
            times: list[float] = []
            for _ in range(SEARCH_ROUNDS):
                before = time.perf_counter()
                await store.search(query)
                times.append((time.perf_counter() - before) * 1000)
            print(f"{name:40} {median(times):10.2f} {max(times):10.2f}")
        during = pinger.take()
        pinger.running = False
        await ping_task
        for label, samples in (("idle", idle), ("during searches", during)):
            print(
                f"ping {label:16} p50 {percentile(samples, 0.5):6.2f} ms"
                f"  p99 {percentile(samples, 0.99):6.2f} ms  ({len(samples)} pings)"
            )
        print(f"rows decoded by all searches: {store.stats.decoded:,}")
    finally:
        await store.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the scenario in a temporary directory."""
    parser = argparse.ArgumentParser(prog="python -m bench.audit_search", description=__doc__)
    parser.add_argument("--events", type=int, default=300_000, help="events to store first")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wicket-audit-bench-") as directory:
        asyncio.run(main_async(args.events, Path(directory)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
