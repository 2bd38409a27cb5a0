"""The MongoDB workloads: ping round trip, concurrent inserts, find of many documents.

Layer: benchmark tooling. Every workload takes a target URI, so the same code
measures localdocdb directly and, later, through the Wicket proxy.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pymongo import MongoClient

from bench.harness import Better, Measurement, Metric, Target, Workload, median, percentile

PING_P50 = Metric("ping_p50", "ping round trip p50", "ms", Better.LOWER)
PING_P99 = Metric("ping_p99", "ping round trip p99", "ms", Better.LOWER)
INSERT_RATE = Metric("insert_rate", "insert, 8 clients", "ops/s", Better.HIGHER)
FIND_TIME = Metric("find_time", "find 10,000 docs (median)", "ms", Better.LOWER)
FIND_RATE = Metric("find_rate", "find 10,000 docs", "docs/s", Better.HIGHER)

CLIENT_TIMEOUT_MS = 20_000
WARMUP_PINGS = 50
SEED_BATCH = 1000
DATABASE = "bench"


def _client(target: Target) -> MongoClient[dict[str, Any]]:
    return MongoClient(
        target.uri,
        serverSelectionTimeoutMS=CLIENT_TIMEOUT_MS,
        connectTimeoutMS=CLIENT_TIMEOUT_MS,
        socketTimeoutMS=CLIENT_TIMEOUT_MS * 3,
    )


def _collection_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@dataclass
class PingBenchmark:
    """Round trip of `ping` on one warm connection: the per-message cost of the path."""

    name: str = "ping"

    def run(self, target: Target, workload: Workload) -> list[Measurement]:
        """Send warm-up pings, then time each of `workload.pings` pings."""
        client = _client(target)
        try:
            admin = client.admin
            for _ in range(WARMUP_PINGS):
                admin.command("ping")
            samples: list[float] = []
            for _ in range(workload.pings):
                start = time.perf_counter()
                admin.command("ping")
                samples.append((time.perf_counter() - start) * 1000.0)
        finally:
            client.close()
        detail = f"{workload.pings} pings"
        return [
            Measurement(target.name, PING_P50, percentile(samples, 0.50), detail),
            Measurement(target.name, PING_P99, percentile(samples, 0.99), detail),
        ]


@dataclass
class InsertBenchmark:
    """Single-document inserts from N threads, each with its own MongoClient."""

    name: str = "insert"

    def run(self, target: Target, workload: Workload) -> list[Measurement]:
        """All clients insert for `workload.insert_seconds`; report total ops/s."""
        collection_name = _collection_name("insert")
        clients = [_client(target) for _ in range(workload.insert_clients)]
        counts = [0] * len(clients)
        errors: list[BaseException] = []
        barrier = threading.Barrier(len(clients) + 1, timeout=60)
        stop_at = [0.0]

        def worker(index: int) -> None:
            collection = clients[index][DATABASE][collection_name]
            try:
                collection.database.command("ping")
                barrier.wait()
                n = 0
                while time.perf_counter() < stop_at[0]:
                    collection.insert_one({"worker": index, "n": n, "payload": "x" * 100})
                    n += 1
                counts[index] = n
            except BaseException as exc:  # reported after join
                errors.append(exc)
                barrier.abort()

        threads = [
            threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(clients))
        ]
        try:
            for thread in threads:
                thread.start()
            stop_at[0] = time.perf_counter() + 3600.0  # set properly once everyone is ready
            barrier.wait()
            started = time.perf_counter()
            stop_at[0] = started + workload.insert_seconds
            for thread in threads:
                thread.join(timeout=workload.insert_seconds + 60)
            elapsed = time.perf_counter() - started
            if errors:
                raise RuntimeError(f"insert worker failed: {errors[0]!r}") from errors[0]
            stored = clients[0][DATABASE][collection_name].count_documents({})
            if stored != sum(counts):
                raise RuntimeError(f"inserted {sum(counts)} documents but {stored} are stored")
            clients[0][DATABASE].drop_collection(collection_name)
        finally:
            for client in clients:
                client.close()
        detail = f"{sum(counts)} inserts in {elapsed:.1f} s by {len(clients)} clients"
        return [Measurement(target.name, INSERT_RATE, sum(counts) / elapsed, detail)]


@dataclass
class FindBenchmark:
    """Time to iterate a full cursor over N documents (the getMore batching path)."""

    name: str = "find"

    def run(self, target: Target, workload: Workload) -> list[Measurement]:
        """Seed N documents, then time `list(find({}))` `workload.find_runs` times."""
        collection_name = _collection_name("find")
        client = _client(target)
        try:
            collection = client[DATABASE][collection_name]
            for start in range(0, workload.find_documents, SEED_BATCH):
                stop = min(start + SEED_BATCH, workload.find_documents)
                collection.insert_many(
                    [
                        {"i": i, "name": f"document {i}", "tags": ["a", "b"]}
                        for i in range(start, stop)
                    ]
                )
            durations: list[float] = []
            for _ in range(workload.find_runs):
                start_time = time.perf_counter()
                found = sum(1 for _ in collection.find({}))
                durations.append(time.perf_counter() - start_time)
                if found != workload.find_documents:
                    raise RuntimeError(f"find returned {found}, expected {workload.find_documents}")
            client[DATABASE].drop_collection(collection_name)
        finally:
            client.close()
        middle = median(durations)
        detail = f"median of {workload.find_runs} runs"
        return [
            Measurement(target.name, FIND_TIME, middle * 1000.0, detail),
            Measurement(target.name, FIND_RATE, workload.find_documents / middle, detail),
        ]


ALL_BENCHMARKS = (PingBenchmark(), InsertBenchmark(), FindBenchmark())
