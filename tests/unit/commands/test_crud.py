"""Write commands through the real handlers: insert, update, delete, findAndModify."""

from __future__ import annotations

from typing import Any

from bson import Int64, ObjectId
from tests.unit.commands.conftest import Client


async def test_insert_generates_id_first_and_counts(client: Client) -> None:
    reply = await client.ok("test", {"insert": "c", "documents": [{"a": 1}, {"b": 2, "_id": 7}]})
    assert reply == {"n": 2, "ok": 1.0}
    docs = await client.find_all("test", "c")
    assert list(docs[0]) == ["_id", "a"] and isinstance(docs[0]["_id"], ObjectId)
    assert docs[1] == {"_id": 7, "b": 2} and list(docs[1]) == ["_id", "b"]


async def test_insert_duplicate_key_ordered_stops(client: Client) -> None:
    docs = [{"_id": 1}, {"_id": 1}, {"_id": 2}]
    reply = await client.ok("test", {"insert": "c", "documents": docs})
    assert reply["n"] == 1
    (error,) = reply["writeErrors"]
    assert error["index"] == 1 and error["code"] == 11000
    assert error["errmsg"] == (
        "E11000 duplicate key error collection: test.c index: _id_ dup key: { _id: 1 }"
    )
    assert error["keyPattern"] == {"_id": 1} and error["keyValue"] == {"_id": 1}
    assert len(await client.find_all("test", "c")) == 1


async def test_insert_unordered_goes_on(client: Client) -> None:
    docs = [{"_id": 1}, {"_id": 1}, {"_id": 2}, {"$bad": 1}, {"_id": 3}]
    reply = await client.ok("test", {"insert": "c", "documents": docs, "ordered": False})
    assert reply["n"] == 3
    assert [(e["index"], e["code"]) for e in reply["writeErrors"]] == [(1, 11000), (3, 2)]


async def test_insert_refuses_too_large_document(client: Client) -> None:
    big = "x" * (16 * 1024 * 1024)
    reply = await client.ok("test", {"insert": "c", "documents": [{"s": big}]})
    assert reply["writeErrors"][0]["code"] == 10334
    assert reply["n"] == 0


async def test_insert_bad_namespaces(client: Client) -> None:
    await client.fails("test", {"insert": "system.x", "documents": [{}]}, 73)
    await client.fails("test", {"insert": "a$b", "documents": [{}]}, 73)
    await client.fails("test", {"insert": "", "documents": [{}]}, 73)
    await client.fails("bad db", {"insert": "c", "documents": [{}]}, 73)
    await client.fails("d" * 64, {"insert": "c", "documents": [{}]}, 73)
    await client.fails("test", {"insert": 5, "documents": [{}]}, 73)


async def test_array_id_refused(client: Client) -> None:
    reply = await client.ok("test", {"insert": "c", "documents": [{"_id": [1, 2]}]})
    assert reply["writeErrors"][0]["code"] == 2


async def test_read_only_user_cannot_insert(server: Any, user_client: Any) -> None:
    reader: Client = user_client("reader", [("read", "test")])
    reply = await reader.fails("test", {"insert": "c", "documents": [{"a": 1}]}, 13)
    assert "not authorized on test" in reply["errmsg"]
    assert server.catalog.collection("test", "c") is None
    await reader.ok("test", {"find": "c"})
    await reader.fails("test", {"update": "c", "updates": [{"q": {}, "u": {"a": 1}}]}, 13)
    await reader.fails("test", {"delete": "c", "deletes": [{"q": {}, "limit": 0}]}, 13)


async def test_read_write_user_confined_to_database(user_client: Any) -> None:
    writer: Client = user_client("writer", [("readWrite", "test")])
    await writer.insert("test", "c", [{"a": 1}])
    await writer.fails("admin", {"find": "c"}, 13)
    await writer.fails("other", {"insert": "c", "documents": [{}]}, 13)


async def test_update_operators_multi_and_nmodified(client: Client) -> None:
    await client.insert("test", "c", [{"_id": i, "a": i % 2} for i in range(4)])
    reply = await client.ok(
        "test",
        {"update": "c", "updates": [{"q": {"a": 1}, "u": {"$set": {"b": 1}}, "multi": True}]},
    )
    assert reply == {"n": 2, "nModified": 2, "ok": 1.0}
    again = await client.ok(
        "test",
        {"update": "c", "updates": [{"q": {"a": 1}, "u": {"$set": {"b": 1}}, "multi": True}]},
    )
    assert again == {"n": 2, "nModified": 0, "ok": 1.0}
    single = await client.ok(
        "test", {"update": "c", "updates": [{"q": {}, "u": {"$inc": {"a": 10}}}]}
    )
    assert single["n"] == 1 and single["nModified"] == 1
    docs = await client.find_all("test", "c", sort={"_id": 1})
    assert docs[0] == {"_id": 0, "a": 10}
    assert docs[1] == {"_id": 1, "a": 1, "b": 1}


async def test_update_upsert_reports_id(client: Client) -> None:
    reply = await client.ok(
        "test",
        {
            "update": "c",
            "updates": [
                {"q": {"k": "x"}, "u": {"$set": {"v": 1}}, "upsert": True},
                {"q": {"_id": 9}, "u": {"v": 2}, "upsert": True},
            ],
        },
    )
    assert reply["n"] == 2 and reply["nModified"] == 0
    first, second = reply["upserted"]
    assert first["index"] == 0 and isinstance(first["_id"], ObjectId)
    assert second == {"index": 1, "_id": 9}
    docs = await client.find_all("test", "c")
    assert docs[0] == {"_id": first["_id"], "k": "x", "v": 1}
    assert docs[1] == {"_id": 9, "v": 2}


async def test_update_replacement_keeps_id_and_refuses_id_change(client: Client) -> None:
    await client.insert("test", "c", [{"_id": 1, "a": 1}])
    reply = await client.ok("test", {"update": "c", "updates": [{"q": {"_id": 1}, "u": {"z": 2}}]})
    assert reply["nModified"] == 1
    assert await client.find_all("test", "c") == [{"_id": 1, "z": 2}]
    bad = await client.ok(
        "test", {"update": "c", "updates": [{"q": {"_id": 1}, "u": {"$set": {"_id": 2}}}]}
    )
    assert bad["writeErrors"][0]["code"] == 66


async def test_update_pipeline_form(client: Client) -> None:
    await client.insert("test", "c", [{"_id": 1, "a": 2, "b": 3}])
    reply = await client.ok(
        "test",
        {
            "update": "c",
            "updates": [
                {"q": {}, "u": [{"$set": {"sum": {"$add": ["$a", "$b"]}}}, {"$unset": "b"}]}
            ],
        },
    )
    assert reply["nModified"] == 1
    assert await client.find_all("test", "c") == [{"_id": 1, "a": 2, "sum": 5}]


async def test_update_respects_unique_index(client: Client) -> None:
    await client.ok(
        "test",
        {"createIndexes": "c", "indexes": [{"key": {"a": 1}, "name": "a_1", "unique": True}]},
    )
    await client.insert("test", "c", [{"_id": 1, "a": 1}, {"_id": 2, "a": 2}])
    reply = await client.ok(
        "test", {"update": "c", "updates": [{"q": {"_id": 2}, "u": {"$set": {"a": 1}}}]}
    )
    error = reply["writeErrors"][0]
    assert error["code"] == 11000
    assert error["errmsg"].endswith("index: a_1 dup key: { a: 1 }")
    assert (await client.find_all("test", "c", filter={"_id": 2}))[0]["a"] == 2


async def test_delete_limit_one_and_all(client: Client) -> None:
    await client.insert("test", "c", [{"a": 1}, {"a": 1}, {"a": 2}])
    one = await client.ok("test", {"delete": "c", "deletes": [{"q": {"a": 1}, "limit": 1}]})
    assert one == {"n": 1, "ok": 1.0}
    rest = await client.ok("test", {"delete": "c", "deletes": [{"q": {}, "limit": 0}]})
    assert rest == {"n": 2, "ok": 1.0}
    bad = await client.ok("test", {"delete": "c", "deletes": [{"q": {}, "limit": 5}]})
    assert bad["writeErrors"][0]["code"] == 9


async def test_find_and_modify_update_new_and_old(client: Client) -> None:
    await client.insert("test", "c", [{"_id": 1, "n": 1}, {"_id": 2, "n": 5}])
    reply = await client.ok(
        "test",
        {"findAndModify": "c", "query": {}, "sort": {"n": -1}, "update": {"$inc": {"n": 1}}},
    )
    assert reply == {
        "lastErrorObject": {"n": 1, "updatedExisting": True},
        "value": {"_id": 2, "n": 5},
        "ok": 1.0,
    }
    reply = await client.ok(
        "test",
        {
            "findandmodify": "c",
            "query": {"_id": 2},
            "update": {"$inc": {"n": 1}},
            "new": True,
            "fields": {"_id": 0},
        },
    )
    assert reply["value"] == {"n": 7}


async def test_find_and_modify_upsert_and_remove(client: Client) -> None:
    reply = await client.ok(
        "test",
        {
            "findAndModify": "c",
            "query": {"k": 1},
            "update": {"$set": {"v": 1}},
            "upsert": True,
            "new": True,
        },
    )
    upserted = reply["lastErrorObject"]["upserted"]
    assert reply["lastErrorObject"] == {"n": 1, "updatedExisting": False, "upserted": upserted}
    assert reply["value"] == {"_id": upserted, "k": 1, "v": 1}
    removed = await client.ok("test", {"findAndModify": "c", "query": {"k": 1}, "remove": True})
    assert removed["lastErrorObject"] == {"n": 1}
    assert removed["value"]["_id"] == upserted
    none = await client.ok("test", {"findAndModify": "c", "query": {"k": 1}, "remove": True})
    assert none == {"lastErrorObject": {"n": 0}, "value": None, "ok": 1.0}
    missing = await client.ok(
        "test", {"findAndModify": "c", "query": {"k": 2}, "update": {"$set": {"v": 1}}}
    )
    assert missing["lastErrorObject"] == {"n": 0, "updatedExisting": False}
    await client.fails("test", {"findAndModify": "c", "query": {}}, 9)
    await client.fails("test", {"findAndModify": "c", "remove": True, "update": {"a": 1}}, 9)


async def test_insert_reply_ids_are_int64_safe(client: Client) -> None:
    await client.insert("test", "c", [{"_id": Int64(2**40)}])
    assert (await client.find_all("test", "c", filter={"_id": 2**40}))[0]["_id"] == 2**40


async def test_empty_and_missing_batches_refused(client: Client) -> None:
    await client.fails("test", {"insert": "c", "documents": []}, 16)
    await client.fails("test", {"insert": "c"}, 14)
    await client.fails("test", {"update": "c", "updates": []}, 16)
    await client.fails("test", {"delete": "c", "deletes": "x"}, 14)
