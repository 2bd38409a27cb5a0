"""Sort specifications against MongoDB's documented behaviour.

Reference: https://www.mongodb.com/docs/manual/reference/method/cursor.sort/ (ascending and
descending across types, arrays by min/max element, missing as null, stability).
"""

from __future__ import annotations

import datetime
import itertools
from typing import Any

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st

from localdocdb.engine.compare import compare_values
from localdocdb.engine.sort import compile_sort, sort_documents
from localdocdb.errors import CommandError


def ids(docs: list[dict[str, Any]]) -> list[Any]:
    return [doc["_id"] for doc in docs]


MIXED: list[dict[str, Any]] = [
    {"_id": "maxkey", "a": MaxKey()},
    {"_id": "date", "a": datetime.datetime(2020, 1, 1)},
    {"_id": "true", "a": True},
    {"_id": "oid", "a": ObjectId("0" * 24)},
    {"_id": "bin", "a": b"\x00"},
    {"_id": "array", "a": [{"x": 1}]},  # its only element is an object
    {"_id": "obj", "a": {"x": 1}},
    {"_id": "str", "a": "s"},
    {"_id": "dec", "a": Decimal128("2.5")},
    {"_id": "int", "a": 2},
    {"_id": "long", "a": Int64(3)},
    {"_id": "double", "a": 1.5},
    {"_id": "missing"},
    {"_id": "null", "a": None},
    {"_id": "minkey", "a": MinKey()},
]


def test_mixed_types_ascending() -> None:
    result = sort_documents(MIXED, {"a": 1})
    assert ids(result) == [
        "minkey",
        "missing",  # missing sorts as null; stable with the null document after it
        "null",
        "double",
        "int",
        "dec",
        "long",
        "str",
        "array",  # an array sorts by its smallest element, here an object (tie: input order)
        "obj",
        "bin",
        "oid",
        "true",
        "date",
        "maxkey",
    ]


def test_mixed_types_descending_is_the_reverse_up_to_ties() -> None:
    result = sort_documents(MIXED, {"a": -1})
    assert ids(result)[:4] == ["maxkey", "date", "true", "oid"]
    assert ids(result)[-3:] == ["missing", "null", "minkey"]


@pytest.mark.parametrize(
    ("direction", "expected"),
    [
        # Ascending: [1, 9] sorts by 1, [5] by 5, [] before null; descending: [1, 9] by 9.
        (1, ["empty", "none", "low", "five", "mid"]),
        (-1, ["low", "mid", "five", "none", "empty"]),
    ],
)
def test_arrays_sort_by_min_or_max(direction: int, expected: list[str]) -> None:
    docs: list[dict[str, Any]] = [
        {"_id": "low", "a": [1, 9]},
        {"_id": "five", "a": [5]},
        {"_id": "none"},
        {"_id": "empty", "a": []},
        {"_id": "mid", "a": 6},
    ]
    assert ids(sort_documents(docs, {"a": direction})) == expected


def test_compound_and_dotted_keys() -> None:
    docs = [
        {"_id": 1, "g": "b", "s": {"n": 1}},
        {"_id": 2, "g": "a", "s": {"n": 1}},
        {"_id": 3, "g": "b", "s": {"n": 3}},
        {"_id": 4, "g": "a", "s": {"n": 2}},
        {"_id": 5, "g": "a", "s": [{"n": 0}, {"n": 9}]},
    ]
    assert ids(sort_documents(docs, {"g": 1, "s.n": -1})) == [5, 4, 2, 3, 1]
    assert ids(sort_documents(docs, {"s.n": 1, "_id": -1})) == [5, 2, 1, 4, 3]


def test_sort_is_stable_and_empty_spec_keeps_order() -> None:
    docs = [{"_id": index, "k": index % 2} for index in range(10)]
    assert ids(sort_documents(docs, {"k": 1})) == [0, 2, 4, 6, 8, 1, 3, 5, 7, 9]
    assert ids(sort_documents(docs, {"k": -1})) == [1, 3, 5, 7, 9, 0, 2, 4, 6, 8]
    assert ids(sort_documents(docs, None)) == list(range(10))
    assert compile_sort({}) is None


def test_key_function_is_usable_directly() -> None:
    key = compile_sort({"a": -1, "b": 1})
    assert key is not None
    docs = [{"a": 1, "b": 2}, {"a": 1, "b": 1}, {"a": 2, "b": 3}]
    assert sorted(docs, key=key) == [{"a": 2, "b": 3}, {"a": 1, "b": 1}, {"a": 1, "b": 2}]


@pytest.mark.parametrize(
    "spec",
    [
        {"a": 2},
        {"a": 0},
        {"a": "asc"},
        {"a": {"$meta": "textScore"}},
        {"": 1},
        {"$a": 1},
    ],
)
def test_invalid_sort_specs(spec: dict[str, Any]) -> None:
    with pytest.raises(CommandError) as raised:
        compile_sort(spec)
    assert raised.value.code == 2


def test_accepted_direction_types() -> None:
    docs = [{"a": 2}, {"a": 1}]
    assert sort_documents(docs, {"a": 1.0}) == [{"a": 1}, {"a": 2}]
    assert sort_documents(docs, {"a": Int64(-1)}) == [{"a": 2}, {"a": 1}]


@settings(deadline=None)
@given(
    st.lists(
        st.one_of(st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=2), st.none()),
        max_size=12,
    ),
    st.sampled_from([1, -1]),
)
def test_scalar_sort_agrees_with_compare_values(values: list[Any], direction: int) -> None:
    docs = [{"_id": index, "v": value} for index, value in enumerate(values)]
    result = sort_documents(docs, {"v": direction})
    for earlier, later in itertools.pairwise(result):
        order = compare_values(earlier["v"], later["v"]) * direction
        assert order <= 0
        if order == 0:
            assert earlier["_id"] < later["_id"]  # stable
