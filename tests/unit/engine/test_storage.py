"""Storage: the _id index, unique secondary indexes, catalog operations."""

from __future__ import annotations

import pytest
from bson import Int64, ObjectId

from localdocdb.engine.keys import hashable_key
from localdocdb.engine.storage import Catalog, IndexSpec, format_key_value
from localdocdb.errors import CommandError


def test_numbers_share_keys_across_types() -> None:
    assert hashable_key(1) == hashable_key(1.0) == hashable_key(Int64(1))
    assert hashable_key(True) != hashable_key(1)
    assert hashable_key({"a": 1, "b": 2}) != hashable_key({"b": 2, "a": 1})
    assert hashable_key(float("nan")) == hashable_key(float("nan"))
    assert hashable_key("1") != hashable_key(1)
    assert hashable_key(None) != hashable_key([])


def test_id_index_treats_equal_numbers_as_duplicates() -> None:
    coll = Catalog.open(None).get_or_create_collection("db", "c")
    coll.insert({"_id": 1, "v": "a"})
    with pytest.raises(CommandError) as raised:
        coll.insert({"_id": 1.0})
    assert raised.value.code == 11000
    assert raised.value.errmsg == (
        "E11000 duplicate key error collection: db.c index: _id_ dup key: { _id: 1.0 }"
    )
    assert coll.get_by_id(Int64(1)) == {"_id": 1, "v": "a"}


def test_documents_keep_insertion_order_across_updates() -> None:
    coll = Catalog.open(None).get_or_create_collection("db", "c")
    for i in range(5):
        coll.insert({"_id": i})
    coll.replace({"_id": 2}, {"_id": 2, "x": 1})
    coll.delete({"_id": 0})
    assert [d["_id"] for d in coll.documents()] == [1, 2, 3, 4]
    assert len(coll) == 4


def test_unique_index_multikey_and_sparse() -> None:
    coll = Catalog.open(None).get_or_create_collection("db", "c")
    coll.create_index(IndexSpec("tags_1", (("tags", 1),), unique=True))
    coll.insert({"_id": 1, "tags": ["a", "b"]})
    with pytest.raises(CommandError) as raised:
        coll.insert({"_id": 2, "tags": ["c", "b"]})
    assert raised.value.code == 11000
    coll.insert({"_id": 3, "tags": "c"})
    coll.insert({"_id": 4})  # missing counts as null once
    with pytest.raises(CommandError):
        coll.insert({"_id": 5})
    coll.create_index(IndexSpec("s_1", (("s", 1),), unique=True, sparse=True))
    coll.insert({"_id": 6, "tags": "d"})  # sparse: no s field, no entry
    assert len(coll) == 4


def test_replace_failure_keeps_old_entries() -> None:
    coll = Catalog.open(None).get_or_create_collection("db", "c")
    coll.create_index(IndexSpec("a_1", (("a", 1),), unique=True))
    coll.insert({"_id": 1, "a": 1})
    coll.insert({"_id": 2, "a": 2})
    with pytest.raises(CommandError):
        coll.replace({"_id": 2}, {"_id": 2, "a": 1})
    with pytest.raises(CommandError):
        coll.insert({"_id": 3, "a": 2})  # still indexed under 2
    coll.replace({"_id": 2}, {"_id": 2, "a": 3})
    coll.insert({"_id": 3, "a": 2})


def test_compound_unique_index_message() -> None:
    coll = Catalog.open(None).get_or_create_collection("db", "c")
    coll.create_index(IndexSpec("a_1_b_-1", (("a", 1), ("b", -1)), unique=True))
    oid = ObjectId("64b7f0000000000000000000")
    coll.insert({"a": "x", "b": oid, "_id": 1})
    coll.insert({"a": "x", "b": 2, "_id": 2})
    with pytest.raises(CommandError) as raised:
        coll.insert({"a": "x", "b": oid, "_id": 3})
    assert raised.value.errmsg.endswith(
        "index: a_1_b_-1 dup key: { a: \"x\", b: ObjectId('64b7f0000000000000000000') }"
    )


def test_format_key_value() -> None:
    assert format_key_value({"a": [1, None, True]}) == "{ a: [ 1, null, true ] }"
    assert format_key_value(2.5) == "2.5"


def test_catalog_create_drop_rename() -> None:
    catalog = Catalog.open(None)
    catalog.create_collection("db", "a")
    with pytest.raises(CommandError) as raised:
        catalog.create_collection("db", "a")
    assert raised.value.code == 48
    catalog.get_or_create_collection("db", "b").insert({"_id": 1})
    catalog.rename_collection("db", "b", "db2", "c", drop_target=False)
    assert catalog.database_names() == ["db", "db2"]
    coll = catalog.collection("db2", "c")
    assert coll is not None and coll.full_name == "db2.c" and len(coll) == 1
    assert catalog.drop_collection("db", "a") is not None
    assert catalog.database_names() == ["db2"]
    assert catalog.drop_database("db2") and not catalog.drop_database("db2")
    assert catalog.database_names() == []


def test_index_conflicts() -> None:
    coll = Catalog.open(None).get_or_create_collection("db", "c")
    assert coll.create_index(IndexSpec("a_1", (("a", 1),)))
    assert not coll.create_index(IndexSpec("a_1", (("a", 1),)))
    with pytest.raises(CommandError) as same_name:
        coll.create_index(IndexSpec("a_1", (("b", 1),)))
    assert same_name.value.code == 86
    with pytest.raises(CommandError) as same_key:
        coll.create_index(IndexSpec("other", (("a", 1),), unique=True))
    assert same_key.value.code == 85
