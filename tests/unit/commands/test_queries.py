"""Read commands through the real handlers: find, getMore, killCursors, count, distinct."""

from __future__ import annotations

from typing import Any

import bson
from bson import Int64
from tests.unit.commands.conftest import Client

from localdocdb.state import AuthenticatedUser


async def _fill(client: Client, count: int) -> None:
    await client.insert("test", "c", [{"_id": i, "n": i, "parity": i % 2} for i in range(count)])


async def test_find_reply_shape_and_default_first_batch(client: Client) -> None:
    await _fill(client, 150)
    reply = await client.ok("test", {"find": "c"})
    cursor = reply["cursor"]
    assert set(reply) == {"cursor", "ok"}
    assert list(cursor) == ["firstBatch", "id", "ns"]
    assert len(cursor["firstBatch"]) == 101 and cursor["ns"] == "test.c"
    assert isinstance(cursor["id"], Int64) and cursor["id"] > 0
    more = await client.ok("test", {"getMore": cursor["id"], "collection": "c"})
    assert len(more["cursor"]["nextBatch"]) == 49 and more["cursor"]["id"] == 0


async def test_get_more_pages_over_many_docs(client: Client) -> None:
    await _fill(client, 1050)
    reply = await client.ok("test", {"find": "c", "batchSize": 100})
    ids = [d["_id"] for d in reply["cursor"]["firstBatch"]]
    cursor_id = reply["cursor"]["id"]
    batches = 1
    while cursor_id:
        more = await client.ok("test", {"getMore": cursor_id, "collection": "c", "batchSize": 100})
        ids.extend(d["_id"] for d in more["cursor"]["nextBatch"])
        cursor_id = more["cursor"]["id"]
        batches += 1
    assert ids == list(range(1050))
    assert batches == 11
    assert len(client.server.cursors) == 0


async def test_cursor_exhausted_exactly_reports_zero(client: Client) -> None:
    await _fill(client, 10)
    reply = await client.ok("test", {"find": "c", "batchSize": 10})
    assert reply["cursor"]["id"] == 0


async def test_batches_capped_by_reply_size(client: Client) -> None:
    blob = "x" * (5 * 1024 * 1024)
    for i in range(5):
        await client.insert("test", "big", [{"_id": i, "s": blob}])
    reply = await client.ok("test", {"find": "big"})
    assert len(reply["cursor"]["firstBatch"]) == 3
    assert len(bson.encode(reply)) < 16 * 1024 * 1024
    more = await client.ok("test", {"getMore": reply["cursor"]["id"], "collection": "big"})
    assert [d["_id"] for d in more["cursor"]["nextBatch"]] == [3, 4]


async def test_find_filter_sort_skip_limit_projection(client: Client) -> None:
    await _fill(client, 20)
    docs = await client.find_all(
        "test",
        "c",
        filter={"parity": 1},
        sort={"n": -1},
        skip=2,
        limit=3,
        projection={"n": 1, "_id": 0},
    )
    assert docs == [{"n": 15}, {"n": 13}, {"n": 11}]


async def test_find_negative_limit_is_single_batch(client: Client) -> None:
    await _fill(client, 20)
    reply = await client.ok("test", {"find": "c", "limit": -5})
    assert len(reply["cursor"]["firstBatch"]) == 5 and reply["cursor"]["id"] == 0
    single = await client.ok("test", {"find": "c", "batchSize": 3, "singleBatch": True})
    assert len(single["cursor"]["firstBatch"]) == 3 and single["cursor"]["id"] == 0


async def test_find_missing_collection_is_empty(client: Client) -> None:
    reply = await client.ok("test", {"find": "nothing"})
    assert reply["cursor"] == {"firstBatch": [], "id": 0, "ns": "test.nothing"}


async def test_find_by_id_and_bad_filter(client: Client) -> None:
    await _fill(client, 5)
    assert await client.find_all("test", "c", filter={"_id": 3}) == [
        {"_id": 3, "n": 3, "parity": 1}
    ]
    assert await client.find_all("test", "c", filter={"_id": 3, "n": 4}) == []
    await client.fails("test", {"find": "c", "filter": {"a": {"$bogus": 1}}}, 2)
    await client.fails("test", {"find": "c", "batchSize": -1}, 51024)


async def test_find_with_expr(client: Client) -> None:
    await client.insert("test", "c", [{"a": 1, "b": 2}, {"a": 3, "b": 2}])
    docs = await client.find_all("test", "c", filter={"$expr": {"$gt": ["$a", "$b"]}})
    assert [d["a"] for d in docs] == [3]


async def test_get_more_from_another_user_is_not_found(client: Client, user_client: Any) -> None:
    await _fill(client, 200)
    reply = await client.ok("test", {"find": "c"})
    cursor_id = reply["cursor"]["id"]
    other: Client = user_client("other", [("readWrite", "test")])
    await other.fails("test", {"getMore": cursor_id, "collection": "c"}, 43)
    await client.fails("test", {"getMore": cursor_id, "collection": "d"}, 13)
    await client.ok("test", {"getMore": cursor_id, "collection": "c"})


async def test_kill_cursors(client: Client) -> None:
    await _fill(client, 200)
    cursor_id = (await client.ok("test", {"find": "c"}))["cursor"]["id"]
    reply = await client.ok("test", {"killCursors": "c", "cursors": [cursor_id, Int64(12345)]})
    assert reply == {
        "cursorsKilled": [cursor_id],
        "cursorsNotFound": [12345],
        "cursorsAlive": [],
        "cursorsUnknown": [],
        "ok": 1.0,
    }
    await client.fails("test", {"getMore": cursor_id, "collection": "c"}, 43)


async def test_count_and_distinct(client: Client) -> None:
    await client.insert(
        "test",
        "c",
        [{"a": 1, "t": ["x", "y"]}, {"a": 2, "t": "x"}, {"a": 2}, {"a": 1.0, "t": ["z"]}],
    )
    assert (await client.ok("test", {"count": "c"}))["n"] == 4
    assert (await client.ok("test", {"count": "c", "query": {"a": 2}}))["n"] == 2
    assert (await client.ok("test", {"count": "c", "skip": 1, "limit": 2}))["n"] == 2
    assert (await client.ok("test", {"count": "none"}))["n"] == 0
    assert (await client.ok("test", {"distinct": "c", "key": "a"}))["values"] == [1, 2]
    reply = await client.ok("test", {"distinct": "c", "key": "t", "query": {"a": {"$lt": 2}}})
    assert reply["values"] == ["x", "y", "z"]


async def test_read_user_cannot_aggregate_into_collection(user_client: Any, client: Client) -> None:
    await _fill(client, 3)
    reader: Client = user_client("reader", [("read", "test")])
    assert len(await reader.aggregate("test", "c", [{"$match": {}}])) == 3
    await reader.fails("test", {"aggregate": "c", "pipeline": [{"$out": "copy"}], "cursor": {}}, 13)
    await reader.fails(
        "test",
        {
            "aggregate": "c",
            "pipeline": [{"$unionWith": {"coll": "c", "pipeline": [{"$out": "x"}]}}],
            "cursor": {},
        },
        51047,
    )


async def test_lookup_into_unreadable_database_refused(client: Client, user_client: Any) -> None:
    await _fill(client, 2)
    await client.insert("secret", "s", [{"_id": 0}])
    reader: Client = user_client("reader2", [("read", "test")])
    pipeline = [
        {
            "$lookup": {
                "from": {"db": "secret", "coll": "s"},
                "localField": "_id",
                "foreignField": "_id",
                "as": "j",
            }
        }
    ]
    await reader.fails("test", {"aggregate": "c", "pipeline": pipeline, "cursor": {}}, 13)
    joined = await client.aggregate("test", "c", pipeline)
    assert joined[0]["j"] == [{"_id": 0}] and joined[1]["j"] == []


async def test_aggregate_requires_cursor_and_db_level_rules(client: Client) -> None:
    await client.fails("test", {"aggregate": "c", "pipeline": []}, 9)
    await client.fails("test", {"aggregate": 1, "pipeline": [{"$match": {}}], "cursor": {}}, 73)
    docs = await client.aggregate(
        "test", 1, [{"$documents": [{"a": 1}, {"a": 2}]}, {"$match": {"a": 2}}]
    )
    assert docs == [{"a": 2}]
    await client.fails("test", {"aggregate": "c", "pipeline": [{"$nope": {}}], "cursor": {}}, 40324)


async def test_aggregate_paging(client: Client) -> None:
    await _fill(client, 300)
    reply = await client.ok(
        "test", {"aggregate": "c", "pipeline": [{"$sort": {"n": -1}}], "cursor": {"batchSize": 7}}
    )
    assert len(reply["cursor"]["firstBatch"]) == 7 and reply["cursor"]["ns"] == "test.c"
    docs = await client.aggregate("test", "c", [{"$sort": {"n": -1}}])
    assert [d["n"] for d in docs] == list(range(299, -1, -1))


async def test_cursor_owner_is_user_set(server: Any) -> None:
    first = Client(server, [AuthenticatedUser("u", "admin")])
    await first.insert("test", "c", [{"i": i} for i in range(200)])
    cursor_id = (await first.ok("test", {"find": "c"}))["cursor"]["id"]
    same = Client(server, [AuthenticatedUser("u", "admin")])
    reply = await same.ok("test", {"getMore": cursor_id, "collection": "c"})
    assert len(reply["cursor"]["nextBatch"]) == 99


async def test_out_and_merge_into_another_database(client: Client, user_client: Any) -> None:
    await _fill(client, 6)
    pipeline = [
        {"$group": {"_id": "$parity", "count": {"$sum": 1}}},
        {"$out": {"db": "reports", "coll": "parity"}},
    ]
    reply = await client.ok("test", {"aggregate": "c", "pipeline": pipeline, "cursor": {}})
    assert reply["cursor"] == {"firstBatch": [], "id": 0, "ns": "test.c"}
    docs = await client.find_all("reports", "parity", sort={"_id": 1})
    assert docs == [{"_id": 0, "count": 3}, {"_id": 1, "count": 3}]
    merge = [
        {"$match": {"n": {"$lt": 2}}},
        {"$project": {"_id": "$parity", "latest": "$n"}},
        {"$merge": {"into": {"db": "reports", "coll": "parity"}, "whenMatched": "merge"}},
    ]
    await client.ok("test", {"aggregate": "c", "pipeline": merge, "cursor": {}})
    docs = await client.find_all("reports", "parity", sort={"_id": 1})
    assert docs == [{"_id": 0, "count": 3, "latest": 0}, {"_id": 1, "count": 3, "latest": 1}]
    local: Client = user_client("local", [("readWrite", "test"), ("read", "reports")])
    await local.fails("test", {"aggregate": "c", "pipeline": pipeline, "cursor": {}}, 13)
    await local.fails("test", {"aggregate": "c", "pipeline": merge, "cursor": {}}, 13)
    assert len(await client.find_all("reports", "parity")) == 2


async def test_find_natural_order(client: Client) -> None:
    await _fill(client, 5)
    docs = await client.find_all("test", "c", sort={"$natural": -1}, projection={"_id": 1})
    assert [d["_id"] for d in docs] == [4, 3, 2, 1, 0]
    await client.fails("test", {"find": "c", "sort": {"$natural": 1, "n": 1}}, 2)
