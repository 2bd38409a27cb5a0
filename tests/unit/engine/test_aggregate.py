"""The aggregation pipeline, stage by stage, over a real in-memory catalog."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId

from localdocdb.engine.aggregate import (
    Namespace,
    PipelineEnvironment,
    pipeline_namespaces,
    run_pipeline,
)
from localdocdb.engine.storage import Catalog, IndexSpec
from localdocdb.errors import CommandError

SALES = [
    {"_id": 1, "item": "abc", "price": 10, "qty": 2, "tags": ["a", "b"]},
    {"_id": 2, "item": "jkl", "price": 20, "qty": 1, "tags": ["b"]},
    {"_id": 3, "item": "xyz", "price": 5, "qty": 10, "tags": []},
    {"_id": 4, "item": "xyz", "price": 5, "qty": 20},
    {"_id": 5, "item": "abc", "price": 10, "qty": 10, "tags": None},
]


@pytest.fixture
def catalog() -> Catalog:
    catalog = Catalog.open(None)
    sales = catalog.get_or_create_collection("shop", "sales")
    for doc in SALES:
        sales.insert(dict(doc))
    items = catalog.get_or_create_collection("shop", "items")
    items.insert({"_id": "abc", "name": "Alpha", "stock": 3})
    items.insert({"_id": "xyz", "name": "Omega", "stock": 0})
    return catalog


def run(catalog: Catalog, pipeline: list[Any], source: str = "sales") -> list[dict[str, Any]]:
    pipeline_namespaces(pipeline, "shop")
    coll = catalog.collection("shop", source)
    docs = coll.documents() if coll is not None else iter(())
    return run_pipeline(pipeline, docs, PipelineEnvironment(catalog, "shop"))


def test_match_with_expr(catalog: Catalog) -> None:
    out = run(catalog, [{"$match": {"item": "xyz", "$expr": {"$gt": ["$qty", 15]}}}])
    assert [d["_id"] for d in out] == [4]


def test_project_inclusion_exclusion_and_computed(catalog: Catalog) -> None:
    out = run(catalog, [{"$match": {"_id": 1}}, {"$project": {"qty": 1, "item": 1}}])
    assert out == [{"_id": 1, "item": "abc", "qty": 2}]
    out = run(
        catalog,
        [
            {"$match": {"_id": 1}},
            {"$project": {"_id": 0, "total": {"$multiply": ["$price", "$qty"]}, "item": 1}},
        ],
    )
    assert out == [{"item": "abc", "total": 20}]
    out = run(catalog, [{"$match": {"_id": 2}}, {"$project": {"tags": 0, "price": 0}}])
    assert out == [{"_id": 2, "item": "jkl", "qty": 1}]
    with pytest.raises(CommandError) as raised:
        run(catalog, [{"$project": {"a": 1, "b": 0}}])
    assert raised.value.code == 31254


def test_project_nested_paths() -> None:
    catalog = Catalog.open(None)
    catalog.get_or_create_collection("shop", "n").insert(
        {"_id": 1, "a": {"b": 1, "c": 2}, "l": [{"b": 1, "c": 2}, 5]}
    )
    out = run(catalog, [{"$project": {"a.b": 1, "l": {"c": 1}}}], "n")
    assert out == [{"_id": 1, "a": {"b": 1}, "l": [{"c": 2}]}]


def test_add_fields_set_and_unset(catalog: Catalog) -> None:
    out = run(
        catalog,
        [
            {"$match": {"_id": 2}},
            {"$addFields": {"total": {"$multiply": ["$price", "$qty"]}, "meta.src": "x"}},
            {"$set": {"item": {"$toUpper": "$item"}, "tags": "$$REMOVE"}},
            {"$unset": ["price", "meta"]},
        ],
    )
    assert out == [{"_id": 2, "item": "JKL", "qty": 1, "total": 20}]


def test_group_accumulators(catalog: Catalog) -> None:
    out = run(
        catalog,
        [
            {
                "$group": {
                    "_id": "$item",
                    "total": {"$sum": {"$multiply": ["$price", "$qty"]}},
                    "count": {"$sum": 1},
                    "n": {"$count": {}},
                    "avgQty": {"$avg": "$qty"},
                    "minQty": {"$min": "$qty"},
                    "maxQty": {"$max": "$qty"},
                    "first": {"$first": "$_id"},
                    "last": {"$last": "$_id"},
                    "ids": {"$push": "$_id"},
                    "prices": {"$addToSet": "$price"},
                }
            },
            {"$sort": {"_id": 1}},
        ],
    )
    assert out[0] == {
        "_id": "abc",
        "total": 120,
        "count": 2,
        "n": 2,
        "avgQty": 6.0,
        "minQty": 2,
        "maxQty": 10,
        "first": 1,
        "last": 5,
        "ids": [1, 5],
        "prices": [10],
    }
    assert [d["_id"] for d in out] == ["abc", "jkl", "xyz"]
    everything = run(catalog, [{"$group": {"_id": None, "qty": {"$sum": "$qty"}}}])
    assert everything == [{"_id": None, "qty": 43}]


def test_group_by_compound_key_and_errors(catalog: Catalog) -> None:
    out = run(catalog, [{"$group": {"_id": {"i": "$item", "p": "$price"}}}, {"$sort": {"_id": 1}}])
    assert out[0] == {"_id": {"i": "abc", "p": 10}}
    with pytest.raises(CommandError) as raised:
        run(catalog, [{"$group": {"_id": 1, "x": {"$bogus": 1}}}])
    assert raised.value.code == 15952
    with pytest.raises(CommandError):
        run(catalog, [{"$group": {"x": {"$sum": 1}}}])


def test_sort_skip_limit_count(catalog: Catalog) -> None:
    out = run(catalog, [{"$sort": {"qty": -1}}, {"$skip": 1}, {"$limit": 2}])
    assert [d["_id"] for d in out] == [3, 5]
    assert run(catalog, [{"$match": {"qty": {"$gt": 5}}}, {"$count": "big"}]) == [{"big": 3}]
    assert run(catalog, [{"$match": {"qty": 999}}, {"$count": "n"}]) == []
    with pytest.raises(CommandError):
        run(catalog, [{"$limit": 0}])


def test_unwind_forms(catalog: Catalog) -> None:
    out = run(catalog, [{"$unwind": "$tags"}])
    assert [(d["_id"], d["tags"]) for d in out] == [(1, "a"), (1, "b"), (2, "b")]
    out = run(
        catalog,
        [
            {
                "$unwind": {
                    "path": "$tags",
                    "includeArrayIndex": "i",
                    "preserveNullAndEmptyArrays": True,
                }
            }
        ],
    )
    assert [(d["_id"], d.get("tags", "-"), d["i"]) for d in out] == [
        (1, "a", 0),
        (1, "b", 1),
        (2, "b", 0),
        (3, "-", None),
        (4, "-", None),
        (5, None, None),
    ]


def test_lookup_local_foreign(catalog: Catalog) -> None:
    out = run(
        catalog,
        [
            {"$match": {"_id": {"$in": [1, 2]}}},
            {"$lookup": {"from": "items", "localField": "item", "foreignField": "_id", "as": "it"}},
        ],
    )
    assert out[0]["it"] == [{"_id": "abc", "name": "Alpha", "stock": 3}]
    assert out[1]["it"] == []


def test_lookup_pipeline_with_let(catalog: Catalog) -> None:
    out = run(
        catalog,
        [
            {"$match": {"_id": {"$in": [1, 3]}}},
            {
                "$lookup": {
                    "from": "items",
                    "let": {"wanted": "$item", "q": "$qty"},
                    "pipeline": [
                        {"$match": {"$expr": {"$eq": ["$_id", "$$wanted"]}}},
                        {"$project": {"_id": 0, "name": 1, "short": {"$lt": ["$stock", "$$q"]}}},
                    ],
                    "as": "joined",
                }
            },
            {"$project": {"joined": 1}},
        ],
    )
    assert out == [
        {"_id": 1, "joined": [{"name": "Alpha", "short": False}]},
        {"_id": 3, "joined": [{"name": "Omega", "short": True}]},
    ]


def test_lookup_from_other_database() -> None:
    catalog = Catalog.open(None)
    catalog.get_or_create_collection("a", "orders").insert({"_id": 1, "sku": "s1"})
    catalog.get_or_create_collection("b", "skus").insert({"_id": "s1", "n": 1})
    found = pipeline_namespaces(
        [
            {
                "$lookup": {
                    "from": {"db": "b", "coll": "skus"},
                    "localField": "sku",
                    "foreignField": "_id",
                    "as": "s",
                }
            }
        ],
        "a",
    )
    assert found.reads == [Namespace("b", "skus")]
    coll = catalog.collection("a", "orders")
    assert coll is not None
    out = run_pipeline(
        [
            {
                "$lookup": {
                    "from": {"db": "b", "coll": "skus"},
                    "localField": "sku",
                    "foreignField": "_id",
                    "as": "s",
                }
            }
        ],
        coll.documents(),
        PipelineEnvironment(catalog, "a"),
    )
    assert out == [{"_id": 1, "sku": "s1", "s": [{"_id": "s1", "n": 1}]}]


def test_replace_root_replace_with_sort_by_count_sample(catalog: Catalog) -> None:
    out = run(catalog, [{"$match": {"_id": 1}}, {"$replaceRoot": {"newRoot": {"i": "$item"}}}])
    assert out == [{"i": "abc"}]
    out = run(
        catalog, [{"$match": {"_id": 2}}, {"$replaceWith": {"$mergeObjects": [{"x": 1}, "$$ROOT"]}}]
    )
    assert out[0]["x"] == 1 and out[0]["_id"] == 2
    with pytest.raises(CommandError) as raised:
        run(catalog, [{"$replaceWith": "$qty"}])
    assert raised.value.code == 40228
    counts = run(catalog, [{"$sortByCount": "$item"}])
    assert counts[0]["count"] == 2 and {c["_id"] for c in counts} == {"abc", "jkl", "xyz"}
    assert counts[-1] == {"_id": "jkl", "count": 1}
    sample = run(catalog, [{"$sample": {"size": 3}}])
    assert len(sample) == 3 and len({d["_id"] for d in sample}) == 3
    assert len(run(catalog, [{"$sample": {"size": 50}}])) == 5


def test_facet_and_union_with(catalog: Catalog) -> None:
    out = run(
        catalog,
        [
            {
                "$facet": {
                    "cheap": [{"$match": {"price": {"$lt": 10}}}, {"$count": "n"}],
                    "items": [{"$group": {"_id": "$item"}}, {"$sort": {"_id": 1}}],
                }
            }
        ],
    )
    assert out == [{"cheap": [{"n": 2}], "items": [{"_id": "abc"}, {"_id": "jkl"}, {"_id": "xyz"}]}]
    union = run(
        catalog,
        [
            {"$project": {"_id": 1}},
            {"$unionWith": {"coll": "items", "pipeline": [{"$project": {"name": 1}}]}},
        ],
    )
    assert len(union) == 7 and union[-1] == {"_id": "xyz", "name": "Omega"}


def test_out_replaces_target_in_other_database(catalog: Catalog) -> None:
    target = catalog.get_or_create_collection("report", "totals")
    target.insert({"_id": "stale"})
    target.create_index(IndexSpec("total_1", (("total", 1),)))
    found = pipeline_namespaces([{"$out": {"db": "report", "coll": "totals"}}], "shop")
    assert found.writes == [("$out", Namespace("report", "totals"))]
    out = run(
        catalog,
        [
            {"$group": {"_id": "$item", "total": {"$sum": "$qty"}}},
            {"$out": {"db": "report", "coll": "totals"}},
        ],
    )
    assert out == []
    totals = catalog.collection("report", "totals")
    assert totals is not None
    assert sorted(d["_id"] for d in totals.documents()) == ["abc", "jkl", "xyz"]
    assert [i.name for i in totals.indexes()] == ["_id_", "total_1"]
    assert [n for n in catalog.database_names()] == ["report", "shop"]
    assert [c.name for c in catalog.collections("report")] == ["totals"]


def test_out_duplicate_ids_leave_target_untouched(catalog: Catalog) -> None:
    catalog.get_or_create_collection("shop", "dest").insert({"_id": "keep"})
    with pytest.raises(CommandError) as raised:
        run(catalog, [{"$project": {"_id": "$item"}}, {"$out": "dest"}])
    assert raised.value.code == 11000
    dest = catalog.collection("shop", "dest")
    assert dest is not None and [d["_id"] for d in dest.documents()] == ["keep"]
    assert [c.name for c in catalog.collections("shop")] == ["sales", "items", "dest"]


def test_out_generates_missing_ids(catalog: Catalog) -> None:
    run(catalog, [{"$project": {"_id": 0, "item": 1}}, {"$out": "copy"}])
    copy = catalog.collection("shop", "copy")
    assert copy is not None and len(copy) == 5
    assert all(isinstance(d["_id"], ObjectId) for d in copy.documents())


def test_merge_modes_into_other_database(catalog: Catalog) -> None:
    target = catalog.get_or_create_collection("report", "m")
    target.insert({"_id": "abc", "total": 0, "note": "kept"})
    base = [{"$group": {"_id": "$item", "total": {"$sum": "$qty"}}}]
    run(catalog, [*base, {"$merge": {"into": {"db": "report", "coll": "m"}}}])
    docs = {d["_id"]: d for d in target.documents()}
    assert docs["abc"] == {"_id": "abc", "total": 12, "note": "kept"}
    assert docs["xyz"] == {"_id": "xyz", "total": 30}
    run(
        catalog,
        [*base, {"$merge": {"into": {"db": "report", "coll": "m"}, "whenMatched": "replace"}}],
    )
    assert target.get_by_id("abc") == {"_id": "abc", "total": 12}
    run(
        catalog,
        [
            {"$project": {"_id": "$item", "total": {"$literal": -1}}},
            {"$merge": {"into": {"db": "report", "coll": "m"}, "whenMatched": "keepExisting"}},
        ],
    )
    assert target.get_by_id("abc") == {"_id": "abc", "total": 12}
    with pytest.raises(CommandError) as failed:
        run(
            catalog,
            [*base, {"$merge": {"into": {"db": "report", "coll": "m"}, "whenMatched": "fail"}}],
        )
    assert failed.value.code == 11000
    run(
        catalog,
        [
            {"$project": {"_id": "new"}},
            {"$merge": {"into": {"db": "report", "coll": "m"}, "whenNotMatched": "discard"}},
        ],
    )
    assert target.get_by_id("new") is None
    with pytest.raises(CommandError) as no_match:
        run(
            catalog,
            [
                {"$project": {"_id": "new"}},
                {"$merge": {"into": {"db": "report", "coll": "m"}, "whenNotMatched": "fail"}},
            ],
        )
    assert no_match.value.code == 13113


def test_merge_on_other_field(catalog: Catalog) -> None:
    target = catalog.get_or_create_collection("shop", "byname")
    target.insert({"_id": 100, "item": "abc", "seen": True})
    run(
        catalog,
        [
            {"$group": {"_id": "$item", "q": {"$sum": "$qty"}}},
            {"$project": {"_id": 0, "item": "$_id", "q": 1}},
            {"$merge": {"into": "byname", "on": "item"}},
        ],
    )
    assert target.get_by_id(100) == {"_id": 100, "item": "abc", "seen": True, "q": 12}
    assert len(target) == 3


def test_stage_validation() -> None:
    with pytest.raises(CommandError) as unknown:
        pipeline_namespaces([{"$nope": 1}], "db")
    assert unknown.value.code == 40324
    with pytest.raises(CommandError) as not_last:
        pipeline_namespaces([{"$out": "x"}, {"$match": {}}], "db")
    assert not_last.value.code == 40601
    with pytest.raises(CommandError) as two_keys:
        pipeline_namespaces([{"$match": {}, "$limit": 1}], "db")
    assert two_keys.value.code == 40323
    with pytest.raises(CommandError) as in_facet:
        pipeline_namespaces([{"$facet": {"x": [{"$out": "y"}]}}], "db")
    assert in_facet.value.code == 40600
    nested = pipeline_namespaces(
        [{"$lookup": {"from": "a", "as": "x", "pipeline": [{"$unionWith": "b"}]}}], "db"
    )
    assert nested.reads == [Namespace("db", "a"), Namespace("db", "b")]


def test_group_accumulators_treat_arrays_as_values() -> None:
    catalog = Catalog.open(None)
    coll = catalog.get_or_create_collection("shop", "arr")
    coll.insert({"_id": 1, "v": [5, 9]})
    coll.insert({"_id": 2, "v": 3})
    coll.insert({"_id": 3, "v": None})
    out = run(
        catalog,
        [
            {
                "$group": {
                    "_id": None,
                    "s": {"$sum": "$v"},
                    "a": {"$avg": "$v"},
                    "mx": {"$max": "$v"},
                    "mn": {"$min": "$v"},
                }
            }
        ],
        "arr",
    )
    # arrays sort after numbers; $sum/$avg skip the array and the null
    assert out == [{"_id": None, "s": 3, "a": 3.0, "mx": [5, 9], "mn": 3}]


def test_project_computed_id_comes_first(catalog: Catalog) -> None:
    out = run(catalog, [{"$match": {"_id": 1}}, {"$project": {"qty": 1, "_id": "$item"}}])
    assert out == [{"_id": "abc", "qty": 2}]
    assert list(out[0]) == ["_id", "qty"]
