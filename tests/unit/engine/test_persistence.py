"""Persistence: journal, snapshot compaction, torn tails, generations, file modes."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from bson import ObjectId

from localdocdb.engine.persistence import JOURNAL_FILE, SNAPSHOT_FILE, read_records
from localdocdb.engine.storage import Catalog, IndexSpec


def _populate(catalog: Catalog) -> ObjectId:
    oid = ObjectId()
    coll = catalog.get_or_create_collection("app", "users")
    coll.create_index(IndexSpec("email_1", (("email", 1),), unique=True))
    coll.insert({"_id": oid, "email": "a@x", "n": 1})
    coll.insert({"_id": 2, "email": "b@x"})
    coll.replace({"_id": 2}, {"_id": 2, "email": "c@x", "changed": True})
    coll.delete({"_id": oid})
    catalog.create_collection("app", "tmp")
    catalog.drop_collection("app", "tmp")
    catalog.get_or_create_collection("gone", "x").insert({"_id": 1})
    catalog.drop_database("gone")
    catalog.get_or_create_collection("app", "old").insert({"_id": "k"})
    catalog.rename_collection("app", "old", "other", "new", drop_target=False)
    coll.create_index(IndexSpec("n_1", (("n", 1),)))
    coll.drop_index("n_1")
    return oid


def _state(catalog: Catalog) -> dict[str, object]:
    return {
        f"{c.full_name}": (list(c.documents()), [i.to_document() for i in c.indexes()])
        for db in catalog.database_names()
        for c in catalog.collections(db)
    }


def test_write_close_reopen(tmp_path: Path) -> None:
    catalog = Catalog.open(tmp_path)
    _populate(catalog)
    before = _state(catalog)
    uuid_before = catalog.collection("app", "users").info.uuid  # type: ignore[union-attr]
    catalog.close()
    reopened = Catalog.open(tmp_path)
    assert _state(reopened) == before
    assert reopened.collection("app", "users").info.uuid == uuid_before  # type: ignore[union-attr]
    # the unique index still works after replay
    users = reopened.collection("app", "users")
    assert users is not None
    try:
        users.insert({"_id": 9, "email": "c@x"})
    except Exception as exc:
        assert getattr(exc, "code", None) == 11000
    else:
        raise AssertionError("unique index lost on reopen")
    reopened.close()


def test_unclosed_journal_survives_like_kill_9(tmp_path: Path) -> None:
    catalog = Catalog.open(tmp_path)
    catalog.get_or_create_collection("db", "c").insert({"_id": 1, "v": "kept"})
    # no close(): records are flushed to the OS as they are written
    reopened = Catalog.open(tmp_path)
    coll = reopened.collection("db", "c")
    assert coll is not None and coll.get_by_id(1) == {"_id": 1, "v": "kept"}
    reopened.close()
    catalog.close()


def test_files_are_private_and_compacted(tmp_path: Path) -> None:
    catalog = Catalog.open(tmp_path)
    _populate(catalog)
    catalog.close()
    Catalog.open(tmp_path).close()
    for name in (SNAPSHOT_FILE, JOURNAL_FILE):
        mode = stat.S_IMODE(os.stat(tmp_path / name).st_mode)
        assert mode == 0o600, (name, oct(mode))
    journal, torn = read_records(tmp_path / JOURNAL_FILE)
    assert not torn and len(journal) == 1  # only the header after compaction


def test_torn_tail_is_ignored_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    catalog = Catalog.open(tmp_path)
    coll = catalog.get_or_create_collection("db", "c")
    coll.insert({"_id": 1})
    coll.insert({"_id": 2, "pad": "x" * 100})
    catalog.close()
    journal = tmp_path / JOURNAL_FILE
    data = journal.read_bytes()
    journal.write_bytes(data[:-30])  # the last record is cut mid-write
    with caplog.at_level(logging.WARNING):
        reopened = Catalog.open(tmp_path)
    assert "torn" in caplog.text
    coll2 = reopened.collection("db", "c")
    assert coll2 is not None and [d["_id"] for d in coll2.documents()] == [1]
    reopened.close()
    # the compaction removed the torn bytes: opening again is clean
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        Catalog.open(tmp_path).close()
    assert "torn" not in caplog.text


def test_garbage_tail_is_ignored(tmp_path: Path) -> None:
    catalog = Catalog.open(tmp_path)
    catalog.get_or_create_collection("db", "c").insert({"_id": 1})
    catalog.close()
    with open(tmp_path / JOURNAL_FILE, "ab") as out:
        out.write(b"\xff\xff\xff\x7fgarbage")
    reopened = Catalog.open(tmp_path)
    assert reopened.collection("db", "c") is not None
    reopened.close()


def test_stale_journal_generation_not_replayed_twice(tmp_path: Path) -> None:
    catalog = Catalog.open(tmp_path)
    catalog.get_or_create_collection("db", "c").insert({"_id": 1})
    catalog.close()
    stale = (tmp_path / JOURNAL_FILE).read_bytes()
    # A crash after the new snapshot was written but before the journal was reset leaves the
    # previous generation's journal next to a snapshot that already holds its records.
    Catalog.open(tmp_path).close()
    (tmp_path / JOURNAL_FILE).write_bytes(stale)
    reopened = Catalog.open(tmp_path)
    coll = reopened.collection("db", "c")
    assert coll is not None and len(coll) == 1
    reopened.close()


def test_in_memory_catalog_writes_nothing(tmp_path: Path) -> None:
    catalog = Catalog.open(None)
    catalog.get_or_create_collection("db", "c").insert({"_id": 1})
    catalog.close()
    assert list(tmp_path.iterdir()) == []


def test_running_server_compacts_a_large_journal(tmp_path: Path) -> None:
    catalog = Catalog.open(tmp_path, compact_min_bytes=4096)
    coll = catalog.get_or_create_collection("db", "c")
    for i in range(200):
        coll.insert({"_id": i, "pad": "y" * 50})
        if i % 2:
            coll.delete({"_id": i})
    journal_size = (tmp_path / JOURNAL_FILE).stat().st_size
    snapshot_size = (tmp_path / SNAPSHOT_FILE).stat().st_size
    # compacted along the way: never much past the threshold (a 300-record journal is ~30 KiB)
    assert journal_size <= max(4096, 2 * snapshot_size) + 200
    snapshot, torn = read_records(tmp_path / SNAPSHOT_FILE)
    assert not torn and snapshot[0].fields["generation"] > 2
    # no close(): what was flushed so far must rebuild the same state
    reopened = Catalog.open(tmp_path)
    again = reopened.collection("db", "c")
    assert again is not None and [d["_id"] for d in again.documents()] == list(range(0, 200, 2))
    reopened.close()
    catalog.close()


def test_leftover_out_temporary_is_dropped(tmp_path: Path) -> None:
    catalog = Catalog.open(tmp_path)
    name = catalog.temporary_collection_name()
    catalog.create_collection("db", name).insert({"_id": 1})
    catalog.get_or_create_collection("db", "real").insert({"_id": 1})
    # the process dies here, before the rename over the target
    reopened = Catalog.open(tmp_path)
    assert [c.name for c in reopened.collections("db")] == ["real"]
    reopened.close()
    catalog.close()


def test_unusual_bson_values_round_trip(tmp_path: Path) -> None:
    import datetime
    import uuid

    from bson import Binary, Decimal128, Int64, Regex, Timestamp
    from bson.datetime_ms import DatetimeMS

    doc = {
        "_id": uuid.UUID(int=7),
        "big": Int64(2**40),
        "dec": Decimal128("1.10"),
        "when": datetime.datetime(2024, 5, 6, 7, 8, 9, 123000),
        "far": DatetimeMS(2**62),  # outside Python's datetime range
        "bin": Binary(b"\x00\x01", 0),
        "re": Regex("^a", "i"),
        "ts": Timestamp(5, 1),
        "nested": {"list": [1, {"x": None}]},
    }
    catalog = Catalog.open(tmp_path)
    catalog.get_or_create_collection("db", "c").insert(doc)
    catalog.close()
    reopened = Catalog.open(tmp_path)
    coll = reopened.collection("db", "c")
    assert coll is not None
    (stored,) = list(coll.documents())
    assert stored["big"] == 2**40 and isinstance(stored["big"], Int64)
    assert stored["dec"] == Decimal128("1.10")
    assert stored["far"] == DatetimeMS(2**62)
    assert stored["when"] == doc["when"]
    assert stored["_id"] == Binary.from_uuid(uuid.UUID(int=7))
    assert coll.get_by_id(Binary.from_uuid(uuid.UUID(int=7))) is not None
    assert stored["nested"] == doc["nested"] and stored["ts"] == doc["ts"]
    reopened.close()
