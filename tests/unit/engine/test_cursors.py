"""Cursors: batching, byte caps, ownership, expiry, limits."""

from __future__ import annotations

import pytest

from localdocdb.engine.cursors import CursorManager, take_batch
from localdocdb.errors import CommandError

OWNER = frozenset({"admin.u"})


def _docs(count: int) -> list[dict[str, int]]:
    return [{"_id": i} for i in range(count)]


def test_batches_and_exhaustion() -> None:
    manager = CursorManager()
    batch, cursor_id = manager.open("db.c", iter(_docs(250)), OWNER)
    assert len(batch) == 101 and cursor_id
    batch2, same = manager.get_more(cursor_id, "db.c", OWNER, 100)
    assert [d["_id"] for d in batch2] == list(range(101, 201)) and same == cursor_id
    rest, done = manager.get_more(cursor_id, "db.c", OWNER, None)
    assert len(rest) == 49 and done == 0
    assert len(manager) == 0
    with pytest.raises(CommandError) as raised:
        manager.get_more(cursor_id, "db.c", OWNER, None)
    assert raised.value.code == 43


def test_batch_size_zero_keeps_cursor_open() -> None:
    manager = CursorManager()
    batch, cursor_id = manager.open("db.c", iter(_docs(3)), OWNER, batch_size=0)
    assert batch == [] and cursor_id
    batch, cursor_id = manager.get_more(cursor_id, "db.c", OWNER, None)
    assert len(batch) == 3 and cursor_id == 0


def test_empty_source_has_no_cursor() -> None:
    manager = CursorManager()
    assert manager.open("db.c", iter([]), OWNER) == ([], 0)


def test_byte_cap_always_makes_progress() -> None:
    docs = [{"s": "x" * 1000} for _ in range(5)]
    batch, ahead, exhausted = take_batch(iter(docs), None, max_bytes=2500)
    assert len(batch) == 2 and ahead is not None and not exhausted
    single, _, _ = take_batch(iter(docs), None, max_bytes=10)
    assert len(single) == 1


def test_owner_and_namespace_checked() -> None:
    manager = CursorManager()
    _, cursor_id = manager.open("db.c", iter(_docs(200)), OWNER)
    with pytest.raises(CommandError) as other_user:
        manager.get_more(cursor_id, "db.c", frozenset({"admin.v"}), None)
    assert other_user.value.code == 43
    with pytest.raises(CommandError) as other_ns:
        manager.get_more(cursor_id, "db.d", OWNER, None)
    assert other_ns.value.code == 13
    assert not manager.kill(cursor_id, "db.c", frozenset())
    assert manager.kill(cursor_id, "db.c", OWNER)
    assert not manager.kill(cursor_id, "db.c", OWNER)


def test_idle_cursors_expire() -> None:
    now = [1000.0]
    manager = CursorManager(clock=lambda: now[0])
    _, first = manager.open("db.c", iter(_docs(200)), OWNER)
    now[0] += 500
    _, second = manager.open("db.c", iter(_docs(200)), OWNER)
    manager.get_more(second, "db.c", OWNER, 1)  # keeps the second one fresh
    now[0] += 200
    assert manager.expire_idle() == 1
    with pytest.raises(CommandError):
        manager.get_more(first, "db.c", OWNER, 1)
    manager.get_more(second, "db.c", OWNER, 1)


def test_open_cursor_cap() -> None:
    manager = CursorManager(max_cursors=2)
    manager.open("db.c", iter(_docs(200)), OWNER)
    manager.open("db.c", iter(_docs(200)), OWNER)
    with pytest.raises(CommandError) as raised:
        manager.open("db.c", iter(_docs(200)), OWNER)
    assert "too many open cursors" in raised.value.errmsg
    # a result that fits in one batch needs no cursor, so it still works
    assert manager.open("db.c", iter(_docs(3)), OWNER)[1] == 0
