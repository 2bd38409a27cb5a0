"""Query filters against MongoDB's documented behaviour.

Each table cites the operator's page under
https://www.mongodb.com/docs/manual/reference/operator/query/
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.regex import Regex

from localdocdb.engine.matcher import bson_type_code, compile_filter, expression_truth
from localdocdb.engine.paths import MISSING, get_path, get_path_values, resolve_field_path
from localdocdb.errors import CommandError

Case = tuple[dict[str, Any], dict[str, Any], bool]


def run_cases(cases: list[Case]) -> None:
    failures = []
    for filter_doc, doc, expected in cases:
        if compile_filter(filter_doc).matches(doc) is not expected:
            failures.append((filter_doc, doc, expected))
    assert not failures


# query/eq/ : equality, arrays (element or whole array), embedded documents (exact, ordered).
EQUALITY: list[Case] = [
    ({"a": 1}, {"a": 1}, True),
    ({"a": 1}, {"a": 1.0}, True),
    ({"a": 1}, {"a": Int64(1)}, True),
    ({"a": 1}, {"a": Decimal128("1.00")}, True),
    ({"a": 1}, {"a": "1"}, False),
    ({"a": 1}, {"a": True}, False),
    ({"a": True}, {"a": 1}, False),
    ({"a": 1}, {}, False),
    ({"a": 1}, {"a": [3, 1]}, True),
    ({"a": [1, 3]}, {"a": [1, 3]}, True),
    ({"a": [1, 3]}, {"a": [3, 1]}, False),
    ({"a": [1, 3]}, {"a": [[1, 3], 5]}, True),
    ({"a": {"x": 1, "y": 2}}, {"a": {"x": 1, "y": 2}}, True),
    ({"a": {"x": 1, "y": 2}}, {"a": {"y": 2, "x": 1}}, False),
    ({"a": {"x": 1}}, {"a": {"x": 1, "y": 2}}, False),
    ({"a.x": 1}, {"a": {"x": 1, "y": 2}}, True),
    ({"a.b": 2}, {"a": [{"b": 1}, {"b": 2}]}, True),
    ({"a.b": 3}, {"a": [{"b": 1}, {"b": [2, 3]}]}, True),
    ({"a.0": 5}, {"a": [5, 6]}, True),
    ({"a.1": 5}, {"a": [5, 6]}, False),
    ({"a.0.b": 1}, {"a": [{"b": 1}, {"b": 2}]}, True),
    ({"a.1.b": 1}, {"a": [{"b": 1}, {"b": 2}]}, False),
    ({"a.b": 1}, {"a": [[{"b": 1}]]}, False),  # arrays directly in arrays are not entered
    ({"a": {"$eq": 1}}, {"a": [1]}, True),
    ({"_id": ObjectId("0" * 24)}, {"_id": ObjectId("0" * 24)}, True),
    ({"s": "abc"}, {"s": "ABC"}, False),
    (
        {"d": datetime.datetime(2020, 1, 1)},
        {"d": datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)},
        True,
    ),
    ({"a": 1, "b": 2}, {"a": 1, "b": 2}, True),
    ({"a": 1, "b": 2}, {"a": 1, "b": 3}, False),
    ({}, {"anything": 1}, True),
    ({"r": {"$ref": "c", "$id": 1}}, {"r": {"$ref": "c", "$id": 1}}, True),  # DBRef shape
]

# query/eq/#equality-with-null, query/exists/, query/ne/ : null and missing.
NULLS: list[Case] = [
    ({"a": None}, {"a": None}, True),
    ({"a": None}, {}, True),
    ({"a": None}, {"a": 0}, False),
    ({"a": None}, {"a": [1, None]}, True),
    ({"a": None}, {"a": [1]}, False),
    ({"a.b": None}, {"a": [{"b": 1}, {"c": 1}]}, True),
    ({"a.b": None}, {"a": [{"b": 1}]}, False),
    ({"a.b": None}, {"a": 5}, True),
    ({"a": {"$ne": None}}, {}, False),
    ({"a": {"$ne": None}}, {"a": 1}, True),
    ({"a": {"$ne": 1}}, {}, True),
    ({"a": {"$ne": 1}}, {"a": [1, 2]}, False),
    ({"a": {"$ne": 1}}, {"a": [2, 3]}, True),
    ({"a": {"$exists": True}}, {"a": None}, True),
    ({"a": {"$exists": True}}, {}, False),
    ({"a": {"$exists": False}}, {}, True),
    ({"a": {"$exists": 0}}, {"a": 1}, False),
    ({"a.b": {"$exists": True}}, {"a": [{"c": 1}, {"b": 2}]}, True),
    ({"a.b": {"$exists": False}}, {"a": [{"c": 1}, {"b": 2}]}, False),
    ({"a": {"$in": [None]}}, {}, True),
    ({"a": {"$nin": [None]}}, {}, False),
    ({"a": {"$gte": None}}, {}, True),
    ({"a": {"$lte": None}}, {"a": None}, True),
    ({"a": {"$gt": None}}, {"a": None}, False),
    ({"a": {"$lt": None}}, {"a": 1}, False),
]

# query/gt/, query/lt/ ... : type bracketing and arrays.
COMPARISON: list[Case] = [
    ({"a": {"$gt": 1}}, {"a": 2}, True),
    ({"a": {"$gt": 1}}, {"a": 1}, False),
    ({"a": {"$gte": 1}}, {"a": 1.0}, True),
    ({"a": {"$gt": 1}}, {"a": "x"}, False),  # strings are not > numbers in a query
    ({"a": {"$lt": "b"}}, {"a": 1}, False),
    ({"a": {"$lt": "b"}}, {"a": "a"}, True),
    ({"a": {"$gt": 1}}, {"a": None}, False),
    ({"a": {"$gt": 1}}, {}, False),
    ({"a": {"$lt": 1}}, {}, False),
    ({"a": {"$gt": 5}}, {"a": [1, 7]}, True),
    ({"a": {"$gt": 5, "$lt": 7}}, {"a": [4, 8]}, True),  # different elements may satisfy each
    ({"a": {"$gt": 5, "$lt": 7}}, {"a": [4, 3]}, False),
    ({"a": {"$gt": Decimal128("1.5")}}, {"a": 2}, True),
    ({"a": {"$lt": Int64(3)}}, {"a": 2.5}, True),
    ({"a": {"$gt": [1]}}, {"a": [2]}, True),
    ({"a": {"$gt": datetime.datetime(2020, 1, 1)}}, {"a": datetime.datetime(2021, 1, 1)}, True),
    ({"a": {"$gt": datetime.datetime(2020, 1, 1)}}, {"a": 99999999999999}, False),
    ({"a.b": {"$lte": 1}}, {"a": [{"b": 5}, {"b": 0}]}, True),
    ({"a": {"$gt": float("nan")}}, {"a": 1}, False),
    ({"a": {"$gte": float("nan")}}, {"a": float("nan")}, True),
    ({"a": {"$lt": 5}}, {"a": float("nan")}, False),
]

# query/in/, query/nin/
MEMBERSHIP: list[Case] = [
    ({"a": {"$in": [1, 2]}}, {"a": 2}, True),
    ({"a": {"$in": [1, 2]}}, {"a": 3}, False),
    ({"a": {"$in": [1, 2]}}, {"a": [5, 1]}, True),
    ({"a": {"$in": [[5, 1]]}}, {"a": [5, 1]}, True),
    ({"a": {"$in": []}}, {"a": 1}, False),
    ({"a": {"$in": [1, "x"]}}, {"a": 1.0}, True),
    ({"a": {"$in": [1.5]}}, {"a": Decimal128("1.5")}, True),
    ({"a": {"$in": [Int64(7)]}}, {"a": 7}, True),
    ({"a": {"$in": ["1"]}}, {"a": 1}, False),
    ({"a": {"$in": [1]}}, {"a": True}, False),
    ({"a": {"$in": [float("nan")]}}, {"a": float("nan")}, True),
    ({"a": {"$in": [ObjectId("0" * 24)]}}, {"a": ObjectId("0" * 24)}, True),
    ({"a": {"$in": [{"b": 1}]}}, {"a": {"b": 1.0}}, True),
    ({"a": {"$in": [re.compile("^x")]}}, {"a": "xyz"}, True),
    ({"a": {"$in": [Regex("^X", "i")]}}, {"a": "xyz"}, True),
    ({"a": {"$nin": [1, 2]}}, {"a": 3}, True),
    ({"a": {"$nin": [1, 2]}}, {}, True),
    ({"a": {"$nin": [1, 2]}}, {"a": [3, 2]}, False),
]

# query/and/, query/or/, query/nor/, query/not/
LOGICAL: list[Case] = [
    ({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1, "b": 2}, True),
    ({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1}, False),
    ({"$or": [{"a": 1}, {"b": 2}]}, {"b": 2}, True),
    ({"$or": [{"a": 1}, {"b": 2}]}, {"c": 3}, False),
    ({"$nor": [{"a": 1}, {"b": 2}]}, {"c": 3}, True),
    ({"$nor": [{"a": 1}, {"b": 2}]}, {"a": 1}, False),
    ({"a": {"$not": {"$gt": 5}}}, {"a": 3}, True),
    ({"a": {"$not": {"$gt": 5}}}, {}, True),
    ({"a": {"$not": {"$gt": 5}}}, {"a": "x"}, True),
    ({"a": {"$not": {"$gt": 5}}}, {"a": 9}, False),
    ({"a": {"$not": re.compile("^x")}}, {"a": "xy"}, False),
    ({"a": {"$not": Regex("^x", "")}}, {"a": "yx"}, True),
    ({"$or": [{"a": 1}, {"$and": [{"b": 2}, {"c": 3}]}]}, {"b": 2, "c": 3}, True),
    ({"$comment": "why", "a": 1}, {"a": 1}, True),
]

# query/type/
TYPES: list[Case] = [
    ({"a": {"$type": "string"}}, {"a": "x"}, True),
    ({"a": {"$type": 2}}, {"a": "x"}, True),
    ({"a": {"$type": "number"}}, {"a": 1.5}, True),
    ({"a": {"$type": "number"}}, {"a": Decimal128("1")}, True),
    ({"a": {"$type": "number"}}, {"a": True}, False),
    ({"a": {"$type": "int"}}, {"a": 1}, True),
    ({"a": {"$type": "long"}}, {"a": 1}, False),
    ({"a": {"$type": "long"}}, {"a": Int64(1)}, True),
    ({"a": {"$type": "long"}}, {"a": 2**40}, True),
    ({"a": {"$type": "double"}}, {"a": 1}, False),
    ({"a": {"$type": "array"}}, {"a": []}, True),
    ({"a": {"$type": "array"}}, {"a": 1}, False),
    ({"a": {"$type": "string"}}, {"a": [1, "x"]}, True),
    ({"a": {"$type": "null"}}, {"a": None}, True),
    ({"a": {"$type": "null"}}, {}, False),
    ({"a": {"$type": "object"}}, {"a": {}}, True),
    ({"a": {"$type": "objectId"}}, {"a": ObjectId()}, True),
    ({"a": {"$type": "date"}}, {"a": datetime.datetime(2020, 1, 1)}, True),
    ({"a": {"$type": "bool"}}, {"a": False}, True),
    ({"a": {"$type": "binData"}}, {"a": b"x"}, True),
    ({"a": {"$type": "regex"}}, {"a": Regex("x", "")}, True),
    ({"a": {"$type": ["string", "int"]}}, {"a": 3}, True),
]

# query/regex/
REGEX: list[Case] = [
    ({"a": {"$regex": "^ab"}}, {"a": "abc"}, True),
    ({"a": {"$regex": "^AB"}}, {"a": "abc"}, False),
    ({"a": {"$regex": "^AB", "$options": "i"}}, {"a": "abc"}, True),
    ({"a": {"$regex": "^b", "$options": "m"}}, {"a": "a\nb"}, True),
    ({"a": {"$regex": "a.b", "$options": "s"}}, {"a": "a\nb"}, True),
    ({"a": {"$regex": "a # comment\n b", "$options": "x"}}, {"a": "ab"}, True),
    ({"a": {"$regex": Regex("^x", "i")}}, {"a": "Xy"}, True),
    ({"a": re.compile("b")}, {"a": "abc"}, True),
    ({"a": re.compile("b")}, {"a": 1}, False),
    ({"a": re.compile("b")}, {"a": ["x", "yb"]}, True),
    ({"a": Regex("^a$", "")}, {"a": "a"}, True),
    ({"a.b": {"$regex": "z"}}, {"a": [{"b": "x"}, {"b": "z"}]}, True),
    ({"a": {"$regex": "1"}}, {"a": 1}, False),
]

# query/all/, query/elemMatch/, query/size/, query/mod/
ARRAYS: list[Case] = [
    ({"a": {"$all": [1, 2]}}, {"a": [2, 3, 1]}, True),
    ({"a": {"$all": [1, 2]}}, {"a": [1, 3]}, False),
    ({"a": {"$all": [1]}}, {"a": 1}, True),
    ({"a": {"$all": []}}, {"a": [1]}, False),
    ({"a": {"$all": [[1, 2]]}}, {"a": [1, 2]}, True),
    ({"a": {"$all": [[1, 2]]}}, {"a": [[1, 2], 3]}, True),
    ({"a": {"$all": [re.compile("^x")]}}, {"a": ["xa"]}, True),
    (
        {"a": {"$all": [{"$elemMatch": {"b": 1}}, {"$elemMatch": {"c": 2}}]}},
        {"a": [{"b": 1}, {"c": 2}]},
        True,
    ),
    ({"a": {"$elemMatch": {"$gte": 80, "$lt": 85}}}, {"a": [82, 90]}, True),
    ({"a": {"$elemMatch": {"$gte": 80, "$lt": 85}}}, {"a": [79, 90]}, False),
    ({"a": {"$gte": 80, "$lt": 85}}, {"a": [79, 90]}, True),  # contrast: no $elemMatch
    ({"a": {"$elemMatch": {"b": 1, "c": 2}}}, {"a": [{"b": 1, "c": 2}]}, True),
    ({"a": {"$elemMatch": {"b": 1, "c": 2}}}, {"a": [{"b": 1}, {"c": 2}]}, False),
    ({"a.b": 1, "a.c": 2}, {"a": [{"b": 1}, {"c": 2}]}, True),  # contrast
    ({"a": {"$elemMatch": {"b": {"$gt": 1}}}}, {"a": [{"b": 0}, {"b": 3}]}, True),
    ({"a": {"$elemMatch": {"b": 1}}}, {"a": {"b": 1}}, False),  # not an array
    ({"a": {"$elemMatch": {"$or": [{"b": 1}, {"c": 1}]}}}, {"a": [{"c": 1}]}, True),
    ({"a": {"$elemMatch": {"$in": [3]}}}, {"a": [1, 3]}, True),
    ({"a": {"$size": 2}}, {"a": [1, 2]}, True),
    ({"a": {"$size": 2}}, {"a": [1]}, False),
    ({"a": {"$size": 0}}, {"a": []}, True),
    ({"a": {"$size": 0}}, {}, False),
    ({"a": {"$size": 1}}, {"a": 1}, False),
    ({"a": {"$size": 2.0}}, {"a": [1, 2]}, True),
    ({"a.b": {"$size": 1}}, {"a": [{"b": [1]}, {"b": [1, 2]}]}, True),
    ({"a": {"$mod": [4, 0]}}, {"a": 8}, True),
    ({"a": {"$mod": [4, 0]}}, {"a": 9}, False),
    ({"a": {"$mod": [4, 1]}}, {"a": 9.7}, True),  # truncated towards zero
    ({"a": {"$mod": [4, -1]}}, {"a": -5}, True),  # C remainder, sign of the dividend
    ({"a": {"$mod": [4, 0]}}, {"a": "8"}, False),
    ({"a": {"$mod": [4, 0]}}, {"a": [3, 12]}, True),
]


@pytest.mark.parametrize(
    "cases",
    [EQUALITY, NULLS, COMPARISON, MEMBERSHIP, LOGICAL, TYPES, REGEX, ARRAYS],
    ids=["equality", "nulls", "comparison", "membership", "logical", "types", "regex", "arrays"],
)
def test_operator_tables(cases: list[Case]) -> None:
    run_cases(cases)


@pytest.mark.parametrize(("filter_doc", "doc", "expected"), EQUALITY + NULLS + COMPARISON)
def test_each_case_individually(
    filter_doc: dict[str, Any], doc: dict[str, Any], expected: bool
) -> None:
    assert compile_filter(filter_doc).matches(doc) is expected


@pytest.mark.parametrize(
    ("filter_doc", "code", "fragment"),
    [
        ({"a": {"$foo": 1}}, 2, "unknown operator: $foo"),
        ({"$foo": 1}, 2, "unknown top level operator: $foo"),
        ({"$and": []}, 2, "non-empty array"),
        ({"$or": {"a": 1}}, 2, "non-empty array"),
        ({"$or": [1]}, 2, "entries must be objects"),
        ({"a": {"$in": 1}}, 2, "$in needs an array"),
        ({"a": {"$nin": "x"}}, 2, "$nin needs an array"),
        ({"a": {"$all": 1}}, 2, "$all needs an array"),
        ({"a": {"$size": -1}}, 2, "may not be negative"),
        ({"a": {"$size": "1"}}, 2, "$size needs a number"),
        ({"a": {"$size": 1.5}}, 2, "$size needs a number"),
        ({"a": {"$mod": [0, 1]}}, 2, "divisor cannot be 0"),
        ({"a": {"$mod": [1]}}, 2, "not enough elements"),
        ({"a": {"$mod": [1, 2, 3]}}, 2, "too many elements"),
        ({"a": {"$type": "nope"}}, 2, "Unknown type name alias: nope"),
        ({"a": {"$type": 99}}, 2, "Invalid numerical type code"),
        ({"a": {"$not": {}}}, 2, "$not cannot be empty"),
        ({"a": {"$not": 5}}, 2, "$not needs a regex or a document"),
        ({"a": {"$options": "i"}}, 2, "$options needs a $regex"),
        ({"a": {"$regex": "(", "$options": ""}}, 51091, "Regular expression is invalid"),
        ({"a": {"$regex": "a", "$options": "q"}}, 2, "invalid flag"),
        ({"a": {"$elemMatch": 1}}, 2, "$elemMatch needs an Object"),
        ({"a": {"$gt": re.compile("x")}}, 2, "RegEx"),
        ({"$expr": {"$eq": ["$a", 1]}}, 2, "$expr"),
        ({"$where": "true"}, 2, "$where"),
    ],
)
def test_malformed_filters_are_refused(
    filter_doc: dict[str, Any], code: int, fragment: str
) -> None:
    with pytest.raises(CommandError) as raised:
        compile_filter(filter_doc)
    assert raised.value.code == code
    assert fragment in raised.value.errmsg


def test_expr_delegates_to_the_evaluator() -> None:
    seen: list[Any] = []

    def evaluate(expression: Any, doc: Any) -> Any:
        seen.append(expression)
        # A real (tiny) evaluator: {$gt: ["$a", "$b"]}.
        left, right = (doc[operand[1:]] for operand in expression["$gt"])
        return left > right

    matcher = compile_filter({"$expr": {"$gt": ["$a", "$b"]}}, expr_evaluator=evaluate)
    assert matcher.matches({"a": 3, "b": 1})
    assert not matcher.matches({"a": 1, "b": 3})
    assert seen == [{"$gt": ["$a", "$b"]}] * 2


@pytest.mark.parametrize(
    ("value", "truth"),
    [
        (None, False),
        (False, False),
        (0, False),
        (0.0, False),
        (Decimal128("0"), False),
        (MISSING, False),
        (1, True),
        ("", True),
        ([], True),
        ({}, True),
        (True, True),
    ],
)
def test_expression_truth(value: Any, truth: bool) -> None:
    assert expression_truth(value) is truth


def test_equality_fields_collects_plain_eq_and_and_members() -> None:
    matcher = compile_filter(
        {
            "_id": 5,
            "a.b": "x",
            "c": {"$eq": 2},
            "d": {"$gt": 1},
            "e": re.compile("x"),
            "$and": [{"f": 1}, {"g": {"$in": [1]}}],
            "$or": [{"h": 1}],
        }
    )
    assert matcher.equality_fields() == {"_id": 5, "a.b": "x", "c": 2, "f": 1}


def test_filter_is_not_mutated_and_doc_is_not_mutated() -> None:
    filter_doc = {"a": {"$in": [1, 2]}, "b.c": None}
    doc = {"a": [2], "b": [{"c": 1}, {}]}
    assert compile_filter(filter_doc).matches(doc)
    assert filter_doc == {"a": {"$in": [1, 2]}, "b.c": None}
    assert doc == {"a": [2], "b": [{"c": 1}, {}]}


def test_bson_type_codes() -> None:
    values: list[Any] = [1.0, "s", {}, [], None, True, 1, Int64(1)]
    assert [bson_type_code(value) for value in values] == [
        1,
        2,
        3,
        4,
        10,
        8,
        16,
        18,
    ]


def test_deeply_nested_filters_are_capped() -> None:
    nested: dict[str, Any] = {"a": 1}
    for _ in range(150):
        nested = {"$and": [nested]}
    with pytest.raises(CommandError) as raised:
        compile_filter(nested)
    assert raised.value.code == 2


# paths.py: the path semantics the matcher is built on.
@pytest.mark.parametrize(
    ("doc", "path", "values"),
    [
        ({"a": [{"b": 1}, {"b": 2}]}, "a.b", [1, 2]),
        ({"a": [{"b": 1}, {"c": 2}]}, "a.b", [1]),
        ({"a": {"b": [1, 2]}}, "a.b", [[1, 2]]),
        ({"a": [{"b": 1}, {"b": 2}]}, "a.0.b", [1]),
        ({"a": [[1, 2], [3]]}, "a.0", [[1, 2]]),
        ({"a": [{"b": [{"c": 1}, {"c": 2}]}]}, "a.b.c", [1, 2]),
        ({"a": 1}, "a.b", []),
        ({}, "a", []),
    ],
)
def test_get_path_values(doc: dict[str, Any], path: str, values: list[Any]) -> None:
    assert get_path_values(doc, path) == values


def test_get_path_and_resolve_field_path() -> None:
    doc = {"a": [{"b": 1}, {"c": 2}, {"b": 3}], "d": {"e": [7, 8]}}
    assert get_path(doc, "a.2.b") == 3
    assert get_path(doc, "a.b") is MISSING
    assert get_path(doc, "d.e.1") == 8
    assert get_path(doc, "x") is MISSING
    assert resolve_field_path(doc, "a.b") == [1, 3]
    assert resolve_field_path(doc, "d.e") == [7, 8]
    assert resolve_field_path(doc, "nope") is MISSING
