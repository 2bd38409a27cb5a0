"""Concurrent pymongo clients across worker processes (one Python process is one core).

Layer: benchmark tooling. `run_clients` splits N clients over up to two spawned worker
processes, each running its share as threads; every client connects first, then all
start at the same wall-clock moment and run the operation until the deadline. The
result is total operations, errors and a latency sample.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from pymongo import MongoClient

WORKER_PROCESSES = 2
CLIENT_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_SECONDS = 120.0
SEED_IDS = 1000


@dataclass(frozen=True)
class LoadResult:
    """What all clients did between start and deadline."""

    operations: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    first_error: str


def client(uri: str, **options: Any) -> MongoClient[dict[str, Any]]:
    """A pymongo client with the bench's timeouts."""
    return MongoClient(
        uri,
        serverSelectionTimeoutMS=CLIENT_TIMEOUT_MS,
        connectTimeoutMS=CLIENT_TIMEOUT_MS,
        socketTimeoutMS=CLIENT_TIMEOUT_MS * 2,
        **options,
    )


def _operation(name: str, mongo: MongoClient[dict[str, Any]], collection: str, index: int) -> Any:
    coll = mongo.get_default_database()[collection]
    counter = [0]

    def find() -> None:
        counter[0] += 1
        if coll.find_one({"_id": (index * 7919 + counter[0]) % SEED_IDS}) is None:
            raise RuntimeError("find by _id found nothing")

    def insert() -> None:
        coll.insert_one({"w": index, "payload": "x" * 100})

    def mixed() -> None:
        counter[0] += 1
        if counter[0] % 2:
            find()
        else:
            insert()

    return {"find": find, "insert": insert, "mixed": mixed}[name]


def _worker(
    uri: str, operation: str, collection: str, clients: int, offset: int, seconds: float, ready: Any
) -> LoadResult:
    """Connect `clients` clients, meet the other workers at `ready`, run for `seconds`."""
    counts = [0] * clients
    errors = [0] * clients
    latencies: list[list[float]] = [[] for _ in range(clients)]
    first_error: list[str] = []
    connected = threading.Barrier(clients + 1, timeout=CONNECT_TIMEOUT_SECONDS)
    go = threading.Event()
    window = [0.0]

    def run(slot: int) -> None:
        mongo = client(uri, maxPoolSize=1)
        action = None
        try:
            try:
                mongo.admin.command("ping")
                action = _operation(operation, mongo, collection, offset + slot)
            except Exception as exc:
                errors[slot] += 1
                first_error.append(repr(exc))
            connected.wait()
            go.wait(CONNECT_TIMEOUT_SECONDS)
            while action is not None and time.perf_counter() < window[0]:
                began = time.perf_counter()
                try:
                    action()
                except Exception as exc:  # counted: the soak requires 0
                    errors[slot] += 1
                    first_error.append(repr(exc))
                    continue
                latencies[slot].append((time.perf_counter() - began) * 1000.0)
                counts[slot] += 1
        finally:
            mongo.close()

    threads = [threading.Thread(target=run, args=(slot,), daemon=True) for slot in range(clients)]
    for thread in threads:
        thread.start()
    connected.wait()
    ready.wait()  # every worker process has connected all its clients
    window[0] = time.perf_counter() + seconds
    go.set()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    return LoadResult(
        sum(counts),
        sum(errors),
        seconds,
        [value for sample in latencies for value in sample],
        first_error[0] if first_error else "",
    )


class Load:
    """A pool of worker processes, reused across runs (spawned once: imports are slow)."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._manager = context.Manager()
        self._pool = ProcessPoolExecutor(WORKER_PROCESSES, mp_context=context)

    def run_clients(
        self, uri: str, operation: str, collection: str, clients: int, seconds: float
    ) -> LoadResult:
        """`clients` clients doing `operation` for `seconds` (after all have connected)."""
        processes = min(clients, WORKER_PROCESSES)
        ready = self._manager.Barrier(processes, timeout=CONNECT_TIMEOUT_SECONDS)
        shares = [
            clients // processes + (1 if i < clients % processes else 0) for i in range(processes)
        ]
        futures = []
        offset = 0
        for share in shares:
            futures.append(
                self._pool.submit(
                    _worker, uri, operation, collection, share, offset, seconds, ready
                )
            )
            offset += share
        results = [future.result(timeout=seconds + 300) for future in futures]
        return LoadResult(
            sum(r.operations for r in results),
            sum(r.errors for r in results),
            seconds,
            [value for r in results for value in r.latencies_ms],
            next((r.first_error for r in results if r.first_error), ""),
        )

    def close(self) -> None:
        """Stop the workers."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._manager.shutdown()
