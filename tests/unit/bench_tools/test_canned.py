"""The bench's canned upstream answers what pymongo and Wicket's agent send."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bench.targets import CannedServer
from pymongo import MongoClient


@pytest.fixture
def canned(tmp_path: Path) -> Iterator[CannedServer]:
    server = CannedServer(tmp_path / "tls", tmp_path / "canned.log")
    try:
        yield server
    finally:
        server.stop()


def test_hello_ping_insert_find_get_more(canned: CannedServer) -> None:
    client: MongoClient[dict[str, Any]]
    with MongoClient(
        f"mongodb://localhost:{canned.port}/bench?directConnection=true&retryWrites=false",
        tls=True,
        tlsCAFile=str(canned.ca_file),
        serverSelectionTimeoutMS=10_000,
    ) as client:
        assert client.admin.command("ping")["ok"] == 1.0
        things = client.bench.things
        things.insert_one({"_id": "one", "n": 1})
        things.insert_many([{"_id": i, "n": i} for i in range(250)])
        assert things.find_one({"_id": "one"}) == {"_id": "one", "n": 1}
        assert things.find_one({"_id": 7}) == {"_id": 7, "n": 7}
        assert things.find_one({"_id": "missing"}) is None
        # more than one batch: the cursor goes on with getMore
        assert len(list(things.find({}, batch_size=40))) == 251
        # the agent's MONGODB-X509 step is accepted without checking
        assert client["$external"].command("authenticate", 1, mechanism="MONGODB-X509")["ok"]
        things.drop()
        assert things.find_one({}) is None
