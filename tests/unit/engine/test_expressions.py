"""Aggregation expressions, table-driven against MongoDB's documented results.

Reference: https://www.mongodb.com/docs/manual/reference/operator/aggregation/
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from bson import Decimal128, Int64, ObjectId

from localdocdb.engine.expressions import ABSENT, evaluate
from localdocdb.errors import CommandError

DOC: dict[str, Any] = {
    "_id": 1,
    "a": 5,
    "b": 2,
    "s": "Hello",
    "arr": [1, 2, 3],
    "items": [{"x": 1}, {"x": 2}, {"y": 3}],
    "sub": {"k": "v", "n": None},
    "when": datetime.datetime(2024, 1, 2, 3, 4, 5, 6000),
}

CASES: list[tuple[Any, Any]] = [
    ("$a", 5),
    ("$sub.k", "v"),
    ("$sub.n", None),
    ("$missing", ABSENT),
    ("$items.x", [1, 2]),
    ("$$ROOT._id", 1),
    ("$$CURRENT.a", 5),
    ("plain", "plain"),
    ({"$literal": "$a"}, "$a"),
    ([1, "$a", "$missing"], [1, 5, None]),
    ({"k": "$a", "gone": "$missing"}, {"k": 5}),
    ({"$add": ["$a", "$b", 1]}, 8),
    ({"$add": ["$a", 0.5]}, 5.5),
    ({"$add": ["$a", None]}, None),
    ({"$add": ["$when", 1000]}, datetime.datetime(2024, 1, 2, 3, 4, 6, 6000)),
    ({"$subtract": ["$a", "$b"]}, 3),
    ({"$multiply": ["$a", "$b", 2]}, 20),
    ({"$divide": ["$a", "$b"]}, 2.5),
    ({"$mod": ["$a", "$b"]}, 1),
    ({"$mod": [-5, 2]}, -1),
    ({"$abs": -3}, 3),
    ({"$add": [Int64(1), 1]}, Int64(2)),
    ({"$add": [Decimal128("1.5"), 1]}, Decimal128("2.5")),
    ({"$eq": ["$a", 5.0]}, True),
    ({"$ne": ["$a", 5]}, False),
    ({"$gt": ["$a", "$b"]}, True),
    ({"$gte": ["$a", 5]}, True),
    ({"$lt": ["$s", 1]}, False),  # strings sort after numbers
    ({"$lte": ["$missing", None]}, True),
    ({"$cmp": ["$b", "$a"]}, -1),
    ({"$and": [1, "$a", True]}, True),
    ({"$and": [1, 0]}, False),
    ({"$or": [None, "$missing", []]}, True),
    ({"$not": ["$missing"]}, True),
    ({"$cond": [{"$gt": ["$a", 3]}, "big", "small"]}, "big"),
    ({"$cond": {"if": False, "then": 1, "else": 2}}, 2),
    ({"$ifNull": ["$missing", "$sub.n", "default"]}, "default"),
    ({"$ifNull": ["$a", "default"]}, 5),
    ({"$in": [2, "$arr"]}, True),
    ({"$in": [9, "$arr"]}, False),
    ({"$size": "$arr"}, 3),
    ({"$arrayElemAt": ["$arr", -1]}, 3),
    ({"$arrayElemAt": ["$arr", 10]}, ABSENT),
    ({"$concat": ["$s", " ", "world"]}, "Hello world"),
    ({"$concat": ["$s", "$missing"]}, None),
    ({"$toUpper": "$s"}, "HELLO"),
    ({"$toLower": "$s"}, "hello"),
    ({"$toLower": "$missing"}, ""),
    ({"$substr": ["$s", 1, 3]}, "ell"),
    ({"$substrCP": ["héllo", 1, 2]}, "él"),
    ({"$strLenCP": "héllo"}, 5),
    ({"$concatArrays": ["$arr", [4], []]}, [1, 2, 3, 4]),
    ({"$concatArrays": ["$arr", "$missing"]}, None),
    ({"$type": "$a"}, "int"),
    ({"$type": "$missing"}, "missing"),
    ({"$type": Int64(1)}, "long"),
    ({"$type": "$sub"}, "object"),
    ({"$type": "$arr"}, "array"),
    ({"$toString": "$a"}, "5"),
    ({"$toString": 2.5}, "2.5"),
    ({"$toString": True}, "true"),
    ({"$toString": "$when"}, "2024-01-02T03:04:05.006Z"),
    ({"$toString": ObjectId("64b7f0000000000000000000")}, "64b7f0000000000000000000"),
    ({"$toInt": "42"}, 42),
    ({"$toInt": 4.9}, 4),
    ({"$toDouble": "2.5"}, 2.5),
    ({"$toDouble": "$a"}, 5.0),
    ({"$max": "$arr"}, 3),
    ({"$min": [4, "$a", None]}, 4),
    ({"$sum": "$arr"}, 6),
    ({"$sum": ["$a", "$b", "x"]}, 7),
    ({"$avg": "$arr"}, 2.0),
    ({"$avg": []}, None),
    ({"$map": {"input": "$arr", "as": "v", "in": {"$multiply": ["$$v", 10]}}}, [10, 20, 30]),
    ({"$map": {"input": "$arr", "in": {"$add": ["$$this", "$a"]}}}, [6, 7, 8]),
    ({"$filter": {"input": "$arr", "as": "v", "cond": {"$gte": ["$$v", 2]}}}, [2, 3]),
    ({"$let": {"vars": {"t": {"$add": ["$a", 1]}}, "in": {"$multiply": ["$$t", 2]}}}, 12),
    ({"$mergeObjects": ["$sub", {"k": "w"}, None]}, {"k": "w", "n": None}),
    ({"$objectToArray": {"a": 1}}, [{"k": "a", "v": 1}]),
    ({"$arrayToObject": [[["a", 1]]]}, {"a": 1}),
    ({"$reduce": {"input": "$arr", "initialValue": 0, "in": {"$add": ["$$value", "$$this"]}}}, 6),
    ({"$switch": {"branches": [{"case": False, "then": 1}], "default": 2}}, 2),
    ("$$REMOVE", ABSENT),
]


@pytest.mark.parametrize(("expression", "expected"), CASES)
def test_expression(expression: Any, expected: Any) -> None:
    result = evaluate(expression, DOC)
    assert result == expected
    assert type(result) is type(expected)


def test_let_variables_passed_in() -> None:
    variables = {"ROOT": DOC, "CURRENT": DOC, "limit": 3}
    assert evaluate({"$lt": ["$a", "$$limit"]}, DOC, variables) is False


ERRORS: list[tuple[Any, int]] = [
    ({"$foo": 1}, 168),
    ({"$divide": [1, 0]}, 2),
    ({"$mod": [1, 0]}, 16610),
    ({"$size": "$a"}, 17124),
    ({"$in": [1, "$a"]}, 40081),
    ({"$concat": ["$s", 1]}, 16702),
    ({"$add": ["$s", 1]}, 16554),
    ({"$toInt": "nope"}, 241),
    ({"$toInt": 2**40}, 241),
    ("$$undefinedVar", 17276),
    ({"$subtract": [1]}, 16020),
    ({"a": 1, "$b": 2}, 168),
]


@pytest.mark.parametrize(("expression", "code"), ERRORS)
def test_expression_errors(expression: Any, code: int) -> None:
    with pytest.raises(CommandError) as raised:
        evaluate(expression, DOC)
    assert raised.value.code == code
    if code == 168:
        assert raised.value.errmsg.startswith("Unrecognized expression '$")
