"""Catalog commands through the real handlers: databases, collections, indexes, stats."""

from __future__ import annotations

from typing import Any

from bson import Binary
from tests.unit.commands.conftest import Client


async def _list_collections(client: Client, db: str, **options: Any) -> list[dict[str, Any]]:
    reply = await client.ok(db, {"listCollections": 1, **options})
    assert reply["cursor"]["ns"] == f"{db}.$cmd.listCollections"
    return list(reply["cursor"]["firstBatch"])


async def test_create_list_and_drop_collection(client: Client) -> None:
    assert await client.ok("test", {"create": "c"}) == {"ok": 1.0}
    reply = await client.fails("test", {"create": "c"}, 48)
    assert reply["codeName"] == "NamespaceExists"
    (entry,) = await _list_collections(client, "test")
    assert entry["name"] == "c" and entry["type"] == "collection" and entry["options"] == {}
    assert entry["info"]["readOnly"] is False
    assert isinstance(entry["info"]["uuid"], Binary) and entry["info"]["uuid"].subtype == 4
    assert entry["idIndex"] == {"v": 2, "key": {"_id": 1}, "name": "_id_"}
    dropped = await client.ok("test", {"drop": "c"})
    assert dropped == {"nIndexesWas": 1, "ns": "test.c", "ok": 1.0}
    await client.fails("test", {"drop": "c"}, 26)


async def test_create_refuses_capped_and_views(client: Client) -> None:
    reply = await client.fails("test", {"create": "c", "capped": True, "size": 100}, 115)
    assert "capped" in reply["errmsg"]
    await client.fails("test", {"create": "v", "viewOn": "c", "pipeline": []}, 115)


async def test_list_collections_filter_and_name_only(client: Client) -> None:
    for name in ("a", "b", "c"):
        await client.ok("test", {"create": name})
    names = await _list_collections(client, "test", filter={"name": {"$in": ["a", "c"]}})
    assert [e["name"] for e in names] == ["a", "c"]
    only = await _list_collections(client, "test", nameOnly=True)
    assert only == [{"name": n, "type": "collection"} for n in ("a", "b", "c")]


async def test_list_collections_authorized_collections(client: Client, user_client: Any) -> None:
    await client.ok("test", {"create": "a"})
    nobody: Client = user_client("nobody", [("read", "elsewhere")])
    await nobody.fails("test", {"listCollections": 1}, 13)
    empty = await nobody.ok(
        "test", {"listCollections": 1, "nameOnly": True, "authorizedCollections": True}
    )
    assert empty["cursor"]["firstBatch"] == []


async def test_list_databases_shapes_and_authorized(client: Client, user_client: Any) -> None:
    await client.insert("one", "c", [{"a": 1}])
    await client.insert("two", "c", [{"a": 1}])
    reply = await client.ok("admin", {"listDatabases": 1})
    names = [d["name"] for d in reply["databases"]]
    assert names == ["one", "two"]
    first = reply["databases"][0]
    assert set(first) == {"name", "sizeOnDisk", "empty"} and first["sizeOnDisk"] > 0
    assert reply["totalSize"] == sum(d["sizeOnDisk"] for d in reply["databases"])
    only = await client.ok("admin", {"listDatabases": 1, "nameOnly": True})
    assert only == {"databases": [{"name": "one"}, {"name": "two"}], "ok": 1.0}
    filtered = await client.ok("admin", {"listDatabases": 1, "filter": {"name": "two"}})
    assert [d["name"] for d in filtered["databases"]] == ["two"]
    await client.fails("test", {"listDatabases": 1}, 13)
    limited: Client = user_client("limited", [("readWrite", "two")])
    mine = await limited.ok("admin", {"listDatabases": 1, "nameOnly": True})
    assert mine["databases"] == [{"name": "two"}]
    await limited.fails("admin", {"listDatabases": 1, "authorizedDatabases": False}, 13)


async def test_drop_database(client: Client, user_client: Any) -> None:
    await client.insert("gone", "c", [{"a": 1}])
    writer: Client = user_client("w", [("readWrite", "gone")])
    await writer.fails("gone", {"dropDatabase": 1}, 13)
    assert await client.ok("gone", {"dropDatabase": 1}) == {"dropped": "gone", "ok": 1.0}
    assert "gone" not in client.server.catalog.database_names()


async def test_rename_collection_same_and_cross_database(client: Client) -> None:
    await client.insert("test", "a", [{"_id": 1}])
    await client.ok("test", {"createIndexes": "a", "indexes": [{"key": {"x": 1}, "name": "x_1"}]})
    await client.fails("test", {"renameCollection": "test.a", "to": "test.b"}, 13)
    await client.ok("admin", {"renameCollection": "test.a", "to": "test.b"})
    assert await client.find_all("test", "b") == [{"_id": 1}]
    assert client.server.catalog.collection("test", "a") is None
    await client.insert("test", "c", [{"_id": 2}])
    await client.fails("admin", {"renameCollection": "test.c", "to": "test.b"}, 48)
    await client.ok("admin", {"renameCollection": "test.c", "to": "test.b", "dropTarget": True})
    assert await client.find_all("test", "b") == [{"_id": 2}]
    await client.ok("admin", {"renameCollection": "test.b", "to": "other.moved"})
    assert await client.find_all("other", "moved") == [{"_id": 2}]
    await client.fails("admin", {"renameCollection": "test.none", "to": "test.z"}, 26)


async def test_rename_requires_privileges(client: Client, user_client: Any) -> None:
    await client.insert("test", "a", [{"_id": 1}])
    writer: Client = user_client("rw", [("readWrite", "test")])
    await writer.ok("admin", {"renameCollection": "test.a", "to": "test.b"})
    await writer.fails("admin", {"renameCollection": "test.b", "to": "other.b"}, 13)


async def test_create_indexes_unique_and_list(client: Client) -> None:
    reply = await client.ok(
        "test",
        {"createIndexes": "c", "indexes": [{"key": {"a": 1}, "name": "a_1", "unique": True}]},
    )
    assert reply == {
        "numIndexesBefore": 1,
        "numIndexesAfter": 2,
        "createdCollectionAutomatically": True,
        "ok": 1.0,
    }
    again = await client.ok(
        "test",
        {"createIndexes": "c", "indexes": [{"key": {"a": 1}, "name": "a_1", "unique": True}]},
    )
    assert again["note"] == "all indexes already exist" and again["numIndexesAfter"] == 2
    await client.insert("test", "c", [{"a": 1}])
    reply = await client.ok("test", {"insert": "c", "documents": [{"a": 1}]})
    assert reply["writeErrors"][0]["errmsg"] == (
        "E11000 duplicate key error collection: test.c index: a_1 dup key: { a: 1 }"
    )
    listed = await client.ok("test", {"listIndexes": "c"})
    assert listed["cursor"]["firstBatch"] == [
        {"v": 2, "key": {"_id": 1}, "name": "_id_"},
        {"v": 2, "key": {"a": 1}, "name": "a_1", "unique": True},
    ]
    await client.fails("test", {"listIndexes": "none"}, 26)


async def test_unique_index_refused_on_existing_duplicates(client: Client) -> None:
    await client.insert("test", "c", [{"a": "x"}, {"a": "x"}])
    reply = await client.fails(
        "test", {"createIndexes": "c", "indexes": [{"key": {"a": 1}, "unique": True}]}, 11000
    )
    assert 'dup key: { a: "x" }' in reply["errmsg"]
    listed = await client.ok("test", {"listIndexes": "c"})
    assert [i["name"] for i in listed["cursor"]["firstBatch"]] == ["_id_"]


async def test_drop_indexes_forms(client: Client) -> None:
    indexes = [
        {"key": {"a": 1}, "name": "a_1"},
        {"key": {"b": -1}, "name": "b_-1"},
        {"key": {"c": 1}, "name": "c_1"},
        {"key": {"d": 1}, "name": "d_1"},
    ]
    await client.ok("test", {"createIndexes": "c", "indexes": indexes})
    assert await client.ok("test", {"dropIndexes": "c", "index": "a_1"}) == {
        "nIndexesWas": 5,
        "ok": 1.0,
    }
    await client.ok("test", {"dropIndexes": "c", "index": {"b": -1}})
    await client.ok("test", {"dropIndexes": "c", "index": ["c_1"]})
    await client.fails("test", {"dropIndexes": "c", "index": "zzz"}, 27)
    await client.fails("test", {"dropIndexes": "c", "index": "_id_"}, 72)
    star = await client.ok("test", {"dropIndexes": "c", "index": "*"})
    assert star["nIndexesWas"] == 2
    listed = await client.ok("test", {"listIndexes": "c"})
    assert len(listed["cursor"]["firstBatch"]) == 1


async def test_db_and_coll_stats(client: Client) -> None:
    await client.insert("test", "c", [{"a": i} for i in range(4)])
    stats = await client.ok("test", {"dbStats": 1})
    assert stats["db"] == "test" and stats["collections"] == 1 and stats["objects"] == 4
    assert stats["dataSize"] > 0 and stats["indexes"] == 1
    coll = await client.ok("test", {"collStats": "c"})
    assert coll["ns"] == "test.c" and coll["count"] == 4 and coll["nindexes"] == 1
    assert coll["size"] == stats["dataSize"]
    await client.fails("test", {"collStats": "none"}, 26)
