"""Find projections against MongoDB's documented behaviour.

References: https://www.mongodb.com/docs/manual/reference/method/db.collection.find/#projection
and https://www.mongodb.com/docs/manual/reference/operator/projection/ ($, $elemMatch, $slice).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from localdocdb.engine.projection import ProjectionMode, compile_projection
from localdocdb.errors import CommandError

DOC: dict[str, Any] = {
    "_id": 1,
    "name": "x",
    "size": {"h": 14, "w": 21, "uom": "cm"},
    "tags": ["a", "b", "c", "d"],
    "items": [{"k": 1, "v": "p"}, {"k": 2, "v": "q"}, 7],
    "qty": 5,
}


@pytest.mark.parametrize(
    ("projection", "expected"),
    [
        (None, DOC),
        ({}, DOC),
        ({"name": 1}, {"_id": 1, "name": "x"}),
        ({"name": True, "_id": 0}, {"name": "x"}),
        ({"_id": 1}, {"_id": 1}),
        ({"_id": 0}, {k: v for k, v in DOC.items() if k != "_id"}),
        ({"qty": 1, "name": 1}, {"_id": 1, "name": "x", "qty": 5}),  # document order kept
        ({"size.uom": 1}, {"_id": 1, "size": {"uom": "cm"}}),
        ({"size": {"uom": 1}}, {"_id": 1, "size": {"uom": "cm"}}),
        ({"items.k": 1}, {"_id": 1, "items": [{"k": 1}, {"k": 2}]}),  # scalars in arrays dropped
        ({"missing": 1}, {"_id": 1}),
        ({"name.x": 1}, {"_id": 1}),
        ({"name": 0, "tags": 0, "items": 0, "size": 0}, {"_id": 1, "qty": 5}),
        (
            {"size.uom": 0, "_id": 0, "tags": 0, "items": 0},
            {"name": "x", "size": {"h": 14, "w": 21}, "qty": 5},
        ),
        (
            {"items.v": 0, "tags": 0, "size": 0},
            {"_id": 1, "name": "x", "items": [{"k": 1}, {"k": 2}, 7], "qty": 5},
        ),
        ({"name": 2.5}, {"_id": 1, "name": "x"}),  # any non-zero number includes
    ],
)
def test_inclusion_and_exclusion(
    projection: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    before = copy.deepcopy(DOC)
    result = compile_projection(projection).apply(DOC)
    assert result == expected
    assert list(result) == list(expected)
    assert before == DOC


@pytest.mark.parametrize(
    ("projection", "expected"),
    [
        # $slice alone keeps every other field.
        ({"tags": {"$slice": 2}}, {**DOC, "tags": ["a", "b"]}),
        ({"tags": {"$slice": -1}}, {**DOC, "tags": ["d"]}),
        ({"tags": {"$slice": [1, 2]}}, {**DOC, "tags": ["b", "c"]}),
        ({"tags": {"$slice": [-3, 1]}}, {**DOC, "tags": ["b"]}),
        ({"tags": {"$slice": [10, 1]}}, {**DOC, "tags": []}),
        ({"name": {"$slice": 1}}, DOC),  # not an array: unchanged
        ({"tags": {"$slice": 1}, "name": 1}, {"_id": 1, "name": "x", "tags": ["a"]}),
        (
            {"tags": {"$slice": 1}, "qty": 0},
            {k: (["a"] if k == "tags" else v) for k, v in DOC.items() if k != "qty"},
        ),
        # $elemMatch: first matching element only, or the field is left out.
        ({"items": {"$elemMatch": {"k": 2}}}, {"_id": 1, "items": [{"k": 2, "v": "q"}]}),
        ({"items": {"$elemMatch": {"k": {"$gt": 0}}}}, {"_id": 1, "items": [{"k": 1, "v": "p"}]}),
        ({"items": {"$elemMatch": {"k": 9}}}, {"_id": 1}),
        (
            {"items": {"$elemMatch": {"k": 2}}, "name": 1},
            {"_id": 1, "name": "x", "items": [{"k": 2, "v": "q"}]},
        ),
        # Computed values (MongoDB 4.4+): field paths and literals.
        ({"name": 1, "height": "$size.h"}, {"_id": 1, "name": "x", "height": 14}),
        ({"label": "fixed", "_id": 0}, {"label": "fixed"}),
        ({"one": {"$literal": 1}, "_id": 0}, {"one": 1}),
        ({"ks": "$items.k", "_id": 0}, {"ks": [1, 2]}),
        ({"nothing": "$nope", "_id": 0}, {}),
    ],
)
def test_operators(projection: dict[str, Any], expected: dict[str, Any]) -> None:
    result = compile_projection(projection).apply(DOC)
    assert result == expected
    assert list(result) == list(expected)


def test_positional_projection_uses_the_query() -> None:
    # projection/positional/: grades.$ returns the first element matching the query's condition.
    doc = {"_id": 1, "semester": 1, "grades": [70, 87, 90]}
    projection = compile_projection({"grades.$": 1}, query={"semester": 1, "grades": {"$gte": 85}})
    assert projection.apply(doc) == {"_id": 1, "grades": [87]}
    docs = {"_id": 2, "g": [{"m": 1, "s": 5}, {"m": 2, "s": 9}]}
    by_field = compile_projection({"g.$": 1, "_id": 0}, query={"g.s": {"$gt": 6}})
    assert by_field.apply(docs) == {"g": [{"m": 2, "s": 9}]}
    with pytest.raises(CommandError) as raised:
        compile_projection({"grades.$": 1}, query={"semester": 1}).apply(doc)
    assert raised.value.code == 51246


def test_expression_hook_for_computed_fields() -> None:
    def evaluate(expression: Any, doc: Any) -> Any:
        ((operator, operands),) = expression.items()
        assert operator == "$add"
        return sum(
            doc[operand[1:]] if isinstance(operand, str) else operand for operand in operands
        )

    projection = compile_projection(
        {"total": {"$add": ["$qty", 1]}, "_id": 0}, expr_evaluator=evaluate
    )
    assert projection.apply(DOC) == {"total": 6}
    with pytest.raises(CommandError):
        compile_projection({"total": {"$add": ["$qty", 1]}})


def test_modes() -> None:
    assert compile_projection({"a": 1}).mode is ProjectionMode.INCLUSION
    assert compile_projection({"a": 0}).mode is ProjectionMode.EXCLUSION
    assert compile_projection({"a": {"$slice": 1}}).mode is ProjectionMode.EXCLUSION
    assert compile_projection(None).mode is ProjectionMode.IDENTITY


@pytest.mark.parametrize(
    ("projection", "code", "fragment"),
    [
        ({"a": 1, "b": 0}, 31254, "Cannot do exclusion on field b in inclusion projection"),
        ({"a": 0, "b": 1}, 31253, "Cannot do inclusion on field b in exclusion projection"),
        ({"a": 0, "b": "$x"}, 31253, "inclusion"),
        ({"a": 1, "a.b": 1}, 31250, "Path collision"),
        ({"a.b": 1, "a": 1}, 31250, "Path collision"),
        ({"a.b": {"$elemMatch": {"x": 1}}}, 2, "nested field"),
        ({"a": {"$elemMatch": 1}}, 2, "object required"),
        ({"a": {"$slice": "x"}}, 2, "$slice"),
        ({"a": {"$slice": [1, 0]}}, 2, "positive"),
        ({"a": {"$meta": "textScore"}}, 2, "$meta"),
        ({"a": {}}, 2, "empty sub-projection"),
        ({"$a": 1}, 2, "may not start with '$'"),
        ({"a..b": 1}, 2, "empty"),
        ({"a.$": 0}, 2, "inclusion"),
    ],
)
def test_invalid_projections(projection: dict[str, Any], code: int, fragment: str) -> None:
    with pytest.raises(CommandError) as raised:
        compile_projection(projection)
    assert raised.value.code == code
    assert fragment in raised.value.errmsg
