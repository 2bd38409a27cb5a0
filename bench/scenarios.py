"""The scenarios of issue 8, each measured on one target at a time.

Layer: benchmark tooling. A scenario takes a `Target`, the run's `Sizes` and the shared
`Load` pool and returns `Measurement`s. Names are what `--only` filters on.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.harness import Better, Measurement, Metric, median, percentile
from bench.load import SEED_IDS, Load, client
from bench.targets import Target
from wicket.wire.mongo import MessageFramer, encode_op_query

MB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    """How much of everything; `quick` finishes the whole bench in a few minutes."""

    pings: int
    ops_seconds: float
    client_counts: tuple[int, ...]
    bulk_read_mb: int
    bulk_read_runs: int
    bulk_insert_mb: int
    connects: int
    idle_sessions: int
    soak_clients: int = 200
    soak_seconds: float = 60.0

    @classmethod
    def full(cls) -> Sizes:
        """The issue's sizes."""
        return cls(2000, 5.0, (1, 8, 32), 100, 3, 40, 30, 1000)

    @classmethod
    def quick(cls) -> Sizes:
        """Fewer repetitions and smaller sizes, same shapes."""
        return cls(300, 1.0, (1, 8, 32), 20, 1, 10, 8, 200)


Scenario = Callable[[Target, Sizes, Load], list[Measurement]]


def _metric(key: str, label: str, unit: str, better: Better) -> Metric:
    return Metric(key, label, unit, better)


def _collection() -> str:
    return f"c{uuid.uuid4().hex[:10]}"


def ping(target: Target, sizes: Sizes, load: Load) -> list[Measurement]:
    """Round trip of `ping` on one warm connection: the per-message cost of the path."""
    samples: list[float] = []
    with client(target.uri, maxPoolSize=1) as mongo:
        for _ in range(50):
            mongo.admin.command("ping")
        for _ in range(sizes.pings):
            began = time.perf_counter()
            mongo.admin.command("ping")
            samples.append((time.perf_counter() - began) * 1000.0)
    return [
        Measurement(
            target.name,
            _metric("ping_p50", "ping p50", "ms", Better.LOWER),
            percentile(samples, 0.5),
        ),
        Measurement(
            target.name,
            _metric("ping_p99", "ping p99", "ms", Better.LOWER),
            percentile(samples, 0.99),
        ),
    ]


def _seed_small(target: Target) -> str:
    name = _collection()
    with client(target.uri) as mongo:
        mongo.get_default_database()[name].insert_many(
            [
                {"_id": i, "name": f"document {i}", "tags": ["a", "b"], "n": i}
                for i in range(SEED_IDS)
            ]
        )
    return name


def _drop(target: Target, name: str) -> None:
    with client(target.uri) as mongo:
        mongo.get_default_database().drop_collection(name)


def _ops(operation: str) -> Scenario:
    def scenario(target: Target, sizes: Sizes, load: Load) -> list[Measurement]:
        name = _seed_small(target) if operation == "find" else _collection()
        found: list[Measurement] = []
        try:
            for clients in sizes.client_counts:
                result = load.run_clients(target.uri, operation, name, clients, sizes.ops_seconds)
                if result.errors:
                    raise RuntimeError(
                        f"{operation} x{clients}: {result.errors} errors ({result.first_error})"
                    )
                label = (
                    f"{'find by _id' if operation == 'find' else 'insert one'}, {clients} clients"
                )
                metric = _metric(f"{operation}_{clients}", label, "ops/s", Better.HIGHER)
                found.append(Measurement(target.name, metric, result.operations / result.seconds))
        finally:
            _drop(target, name)
        return found

    return scenario


def bulk_read(target: Target, sizes: Sizes, load: Load) -> list[Measurement]:
    """Iterate a cursor over ~`bulk_read_mb` MB (1 MB documents): the large-body path."""
    name = _collection()
    blob = os.urandom(MB - 100)
    durations: list[float] = []
    with client(target.uri) as mongo:
        coll = mongo.get_default_database()[name]
        for start in range(0, sizes.bulk_read_mb, 10):
            coll.insert_many(
                [
                    {"_id": i, "blob": blob}
                    for i in range(start, min(start + 10, sizes.bulk_read_mb))
                ]
            )
        for _ in range(sizes.bulk_read_runs):
            began = time.perf_counter()
            count = sum(1 for _ in coll.find({}))
            durations.append(time.perf_counter() - began)
            if count != sizes.bulk_read_mb:
                raise RuntimeError(f"bulk read returned {count} documents")
        mongo.get_default_database().drop_collection(name)
    metric = _metric("bulk_read", f"bulk read {sizes.bulk_read_mb} MB", "MB/s", Better.HIGHER)
    return [Measurement(target.name, metric, sizes.bulk_read_mb / median(durations))]


def bulk_insert(target: Target, sizes: Sizes, load: Load) -> list[Measurement]:
    """`insert_many` of N x 1 MB documents in one call (pymongo splits it into messages)."""
    name = _collection()
    blob = os.urandom(MB - 100)
    with client(target.uri) as mongo:
        coll = mongo.get_default_database()[name]
        documents = [{"_id": i, "blob": blob} for i in range(sizes.bulk_insert_mb)]
        began = time.perf_counter()
        coll.insert_many(documents)
        elapsed = time.perf_counter() - began
        mongo.get_default_database().drop_collection(name)
    metric = _metric(
        "bulk_insert", f"bulk insert {sizes.bulk_insert_mb} x 1 MB", "MB/s", Better.HIGHER
    )
    return [Measurement(target.name, metric, sizes.bulk_insert_mb / elapsed)]


def connect(target: Target, sizes: Sizes, load: Load) -> list[Measurement]:
    """A new client to its first `ping` reply (the first is cold; the rest reuse caches)."""
    samples: list[float] = []
    for _ in range(sizes.connects + 1):
        began = time.perf_counter()
        with client(target.uri, maxPoolSize=1) as mongo:
            mongo.admin.command("ping")
            samples.append((time.perf_counter() - began) * 1000.0)
    return [
        Measurement(
            target.name,
            _metric("connect_first", "connect to first reply, first", "ms", Better.LOWER),
            samples[0],
        ),
        Measurement(
            target.name,
            _metric("connect_p50", "connect to first reply p50", "ms", Better.LOWER),
            percentile(samples[1:], 0.5),
        ),
    ]


def rss_kib(pid: int) -> int:
    """VmRSS of a process, in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _command(raw: Any, command: dict[str, Any], request_id: int) -> None:
    raw.sendall(encode_op_query("admin.$cmd", command, request_id=request_id))
    framer = MessageFramer()
    deadline = time.monotonic() + 60
    while framer.next_frame() is None:
        if time.monotonic() > deadline:
            raise TimeoutError("no hello reply")
        data = raw.recv(65536)
        if not data:
            raise ConnectionError("closed before the hello reply")
        framer.receive_data(data)


def idle(target: Target, sizes: Sizes, load: Load) -> list[Measurement]:
    """Hold N sessions open (each answered hello and ping); charge each process's RSS growth."""
    before = {role: rss_kib(pid) for role, pid in target.pids.items()}
    sockets: list[Any] = []
    try:
        endpoint = target.raw
        for index in range(sizes.idle_sessions):
            raw: Any = socket.create_connection((endpoint.host, endpoint.port), timeout=60)
            if endpoint.tls is not None:
                raw = endpoint.tls.wrap_socket(raw, server_hostname=endpoint.host)
            sockets.append(raw)
            # hello, then a command: a session that has reached the database, if lazily
            _command(raw, {"isMaster": 1}, 2 * index + 1)
            _command(raw, {"ping": 1}, 2 * index + 2)
        time.sleep(1.0)
        after = {role: rss_kib(pid) for role, pid in target.pids.items()}
    finally:
        for raw in sockets:
            raw.close()
    detail = f"{sizes.idle_sessions} sessions"
    found = []
    for role in target.pids:
        per = (after[role] - before[role]) / sizes.idle_sessions
        metric = _metric(f"idle_{role}", f"idle session RSS, {role}", "KiB", Better.LOWER)
        found.append(Measurement(target.name, metric, per, detail))
    total = sum(after[role] - before[role] for role in target.pids) / sizes.idle_sessions
    metric = _metric("idle_total", "idle session RSS, all hops", "KiB", Better.LOWER)
    found.append(Measurement(target.name, metric, total, detail))
    return found


def soak(target: Target, sizes: Sizes, load: Load) -> list[Measurement]:
    """Many clients, half finds and half inserts, for a minute: errors must be 0."""
    name = _seed_small(target)
    try:
        result = load.run_clients(target.uri, "mixed", name, sizes.soak_clients, sizes.soak_seconds)
    finally:
        _drop(target, name)
    label = f"{sizes.soak_clients} clients {sizes.soak_seconds:.0f} s"
    p99 = percentile(result.latencies_ms, 0.99) if result.latencies_ms else 0.0
    return [
        Measurement(
            target.name,
            _metric("soak_ops", f"{label}, ops/s", "ops/s", Better.HIGHER),
            result.operations / result.seconds,
        ),
        Measurement(target.name, _metric("soak_p99", f"{label}, p99", "ms", Better.LOWER), p99),
        Measurement(
            target.name,
            _metric("soak_errors", f"{label}, errors", "n", Better.LOWER),
            float(result.errors),
            result.first_error,
        ),
    ]


SCENARIOS: dict[str, Scenario] = {
    "ping": ping,
    "find": _ops("find"),
    "insert": _ops("insert"),
    "bulk-read": bulk_read,
    "bulk-insert": bulk_insert,
    "connect": connect,
    "idle": idle,
}
SLOW_SCENARIOS: dict[str, Scenario] = {"soak": soak}
