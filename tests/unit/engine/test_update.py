"""Update operators against MongoDB's documented behaviour.

Each table cites its page under https://www.mongodb.com/docs/manual/reference/operator/update/
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.timestamp import Timestamp

from localdocdb.engine.update import (
    UpdateKind,
    apply_update,
    classify_update,
    compile_update,
    upsert_seed,
    validate_replacement,
)
from localdocdb.errors import CommandError

Case = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]


def check(doc: dict[str, Any], update: dict[str, Any], expected: dict[str, Any], **kw: Any) -> None:
    before = copy.deepcopy(doc)
    result = apply_update(doc, update, **kw)
    assert result == expected
    assert list(result) == list(expected), "field order"
    assert doc == before, "input document mutated"


# update/set/, update/unset/: field order (existing in place, new appended in lexicographic
# order since 5.0), dotted paths creating documents, array indexes padding with null.
SET_UNSET: list[Case] = [
    ({"_id": 1, "a": 1}, {"$set": {"a": 2}}, {"_id": 1, "a": 2}),
    ({"_id": 1, "z": 1}, {"$set": {"b": 1, "a": 1}}, {"_id": 1, "z": 1, "a": 1, "b": 1}),
    ({"_id": 1}, {"$set": {"a.b.c": 1}}, {"_id": 1, "a": {"b": {"c": 1}}}),
    ({"_id": 1, "a": {"x": 1}}, {"$set": {"a.y": 2}}, {"_id": 1, "a": {"x": 1, "y": 2}}),
    ({"_id": 1, "a": [1, 2]}, {"$set": {"a.1": 5}}, {"_id": 1, "a": [1, 5]}),
    ({"_id": 1, "a": [1]}, {"$set": {"a.3": 5}}, {"_id": 1, "a": [1, None, None, 5]}),
    ({"_id": 1, "a": [{"b": 1}]}, {"$set": {"a.0.b": 2}}, {"_id": 1, "a": [{"b": 2}]}),
    ({"_id": 1, "a": {"0": 1}}, {"$set": {"a.0": 2}}, {"_id": 1, "a": {"0": 2}}),
    ({"_id": 1, "a": 1}, {"$set": {"_id": 1}}, {"_id": 1, "a": 1}),  # unchanged _id is fine
    ({"_id": 1, "a": 1, "b": 2}, {"$unset": {"a": ""}}, {"_id": 1, "b": 2}),
    ({"_id": 1}, {"$unset": {"a.b": ""}}, {"_id": 1}),
    ({"_id": 1, "a": {"b": 1, "c": 2}}, {"$unset": {"a.b": 1}}, {"_id": 1, "a": {"c": 2}}),
    ({"_id": 1, "a": [1, 2, 3]}, {"$unset": {"a.1": ""}}, {"_id": 1, "a": [1, None, 3]}),
    ({"_id": 1}, {"$set": {}}, {"_id": 1}),
]

# update/inc/, update/mul/: numeric types and promotion.
ARITHMETIC: list[Case] = [
    ({"_id": 1, "a": 1}, {"$inc": {"a": 2}}, {"_id": 1, "a": 3}),
    ({"_id": 1}, {"$inc": {"a": 2}}, {"_id": 1, "a": 2}),
    ({"_id": 1, "a": 1}, {"$inc": {"a": -0.5}}, {"_id": 1, "a": 0.5}),
    ({"_id": 1, "a": 1}, {"$inc": {"a": Decimal128("0.1")}}, {"_id": 1, "a": Decimal128("1.1")}),
    ({"_id": 1, "a": 2**31 - 1}, {"$inc": {"a": 1}}, {"_id": 1, "a": Int64(2**31)}),
    ({"_id": 1, "a": Int64(1)}, {"$inc": {"a": 1}}, {"_id": 1, "a": Int64(2)}),
    ({"_id": 1, "a": 3}, {"$mul": {"a": 2}}, {"_id": 1, "a": 6}),
    ({"_id": 1, "a": 3}, {"$mul": {"a": 1.5}}, {"_id": 1, "a": 4.5}),
    ({"_id": 1}, {"$mul": {"a": 2}}, {"_id": 1, "a": 0}),
    ({"_id": 1}, {"$mul": {"a": 2.5}}, {"_id": 1, "a": 0.0}),
    ({"_id": 1, "a": {"b": 1}}, {"$inc": {"a.b": 1, "a.c": 1}}, {"_id": 1, "a": {"b": 2, "c": 1}}),
]

# update/min/, update/max/ (BSON comparison order), update/rename/, update/currentDate/
MIN_MAX_RENAME: list[Case] = [
    ({"_id": 1, "a": 5}, {"$min": {"a": 3}}, {"_id": 1, "a": 3}),
    ({"_id": 1, "a": 5}, {"$min": {"a": 7}}, {"_id": 1, "a": 5}),
    ({"_id": 1, "a": 5}, {"$max": {"a": 7}}, {"_id": 1, "a": 7}),
    ({"_id": 1}, {"$max": {"a": 7}}, {"_id": 1, "a": 7}),
    ({"_id": 1, "a": 5}, {"$max": {"a": "x"}}, {"_id": 1, "a": "x"}),  # string > number
    ({"_id": 1, "a": 5}, {"$min": {"a": None}}, {"_id": 1, "a": None}),
    ({"_id": 1, "a": 1, "b": 2}, {"$rename": {"a": "c"}}, {"_id": 1, "b": 2, "c": 1}),
    ({"_id": 1, "b": 2}, {"$rename": {"a": "c"}}, {"_id": 1, "b": 2}),
    ({"_id": 1, "a": {"x": 1}}, {"$rename": {"a.x": "b.y"}}, {"_id": 1, "a": {}, "b": {"y": 1}}),
    ({"_id": 1, "a": 1, "c": 9}, {"$rename": {"a": "c"}}, {"_id": 1, "c": 1}),
]

# update/push/ (+$each, $position, $sort, $slice), update/addToSet/, update/pop/,
# update/pull/, update/pullAll/
ARRAY_OPERATORS: list[Case] = [
    ({"_id": 1, "a": [1]}, {"$push": {"a": 2}}, {"_id": 1, "a": [1, 2]}),
    ({"_id": 1}, {"$push": {"a": 2}}, {"_id": 1, "a": [2]}),
    ({"_id": 1, "a": [1]}, {"$push": {"a": [2, 3]}}, {"_id": 1, "a": [1, [2, 3]]}),
    ({"_id": 1, "a": [1]}, {"$push": {"a": {"$each": [2, 3]}}}, {"_id": 1, "a": [1, 2, 3]}),
    (
        {"_id": 1, "a": [1, 2]},
        {"$push": {"a": {"$each": [9], "$position": 1}}},
        {"_id": 1, "a": [1, 9, 2]},
    ),
    (
        {"_id": 1, "a": [1, 2, 3]},
        {"$push": {"a": {"$each": [9], "$position": -1}}},
        {"_id": 1, "a": [1, 2, 9, 3]},
    ),
    (
        {"_id": 1, "a": [5, 1]},
        {"$push": {"a": {"$each": [3], "$sort": 1, "$slice": 2}}},
        {"_id": 1, "a": [1, 3]},
    ),
    (
        {"_id": 1, "a": [5, 1]},
        {"$push": {"a": {"$each": [3], "$sort": -1, "$slice": -2}}},
        {"_id": 1, "a": [3, 1]},
    ),
    (
        {"_id": 1, "a": [{"s": 2}, {"s": 1}]},
        {"$push": {"a": {"$each": [{"s": 3}], "$sort": {"s": -1}}}},
        {"_id": 1, "a": [{"s": 3}, {"s": 2}, {"s": 1}]},
    ),
    ({"_id": 1, "a": [1, 2]}, {"$push": {"a": {"$each": [], "$slice": 0}}}, {"_id": 1, "a": []}),
    ({"_id": 1, "a": [1, 2]}, {"$addToSet": {"a": 2}}, {"_id": 1, "a": [1, 2]}),
    ({"_id": 1, "a": [1, 2]}, {"$addToSet": {"a": 2.0}}, {"_id": 1, "a": [1, 2]}),
    ({"_id": 1, "a": [1]}, {"$addToSet": {"a": {"$each": [1, 3, 3]}}}, {"_id": 1, "a": [1, 3]}),
    ({"_id": 1}, {"$addToSet": {"a": 1}}, {"_id": 1, "a": [1]}),
    (
        {"_id": 1, "a": [{"x": 1, "y": 2}]},
        {"$addToSet": {"a": {"y": 2, "x": 1}}},
        {"_id": 1, "a": [{"x": 1, "y": 2}, {"y": 2, "x": 1}]},
    ),
    ({"_id": 1, "a": [1, 2, 3]}, {"$pop": {"a": 1}}, {"_id": 1, "a": [1, 2]}),
    ({"_id": 1, "a": [1, 2, 3]}, {"$pop": {"a": -1}}, {"_id": 1, "a": [2, 3]}),
    ({"_id": 1, "a": []}, {"$pop": {"a": 1}}, {"_id": 1, "a": []}),
    ({"_id": 1}, {"$pop": {"a": 1}}, {"_id": 1}),
    ({"_id": 1, "a": [1, 2, 1, 3]}, {"$pull": {"a": 1}}, {"_id": 1, "a": [2, 3]}),
    ({"_id": 1, "a": [1, 5, 7]}, {"$pull": {"a": {"$gte": 5}}}, {"_id": 1, "a": [1]}),
    ({"_id": 1, "a": [1, 5, 7]}, {"$pull": {"a": {"$in": [1, 7]}}}, {"_id": 1, "a": [5]}),
    (
        {"_id": 1, "a": [{"s": 8, "i": "B"}, {"s": 8, "i": "C"}, 3]},
        {"$pull": {"a": {"s": 8, "i": "B"}}},
        {"_id": 1, "a": [{"s": 8, "i": "C"}, 3]},
    ),
    ({"_id": 1, "a": [[1], [2]]}, {"$pull": {"a": [1]}}, {"_id": 1, "a": [[2]]}),
    ({"_id": 1}, {"$pull": {"a": 1}}, {"_id": 1}),
    ({"_id": 1, "a": [0, 5, 0, 1]}, {"$pullAll": {"a": [0, 5]}}, {"_id": 1, "a": [1]}),
]

# update/positional-all/ and update/positional-filtered/
ALL_POSITIONAL: list[Case] = [
    ({"_id": 1, "a": [1, 2]}, {"$inc": {"a.$[]": 10}}, {"_id": 1, "a": [11, 12]}),
    (
        {"_id": 1, "a": [{"b": 1}, {"b": 2}]},
        {"$set": {"a.$[].c": 0}},
        {"_id": 1, "a": [{"b": 1, "c": 0}, {"b": 2, "c": 0}]},
    ),
    (
        {"_id": 1, "a": [[1, 2], [3]]},
        {"$inc": {"a.$[].$[]": 1}},
        {"_id": 1, "a": [[2, 3], [4]]},
    ),
    ({"_id": 1, "a": []}, {"$set": {"a.$[]": 1}}, {"_id": 1, "a": []}),
]


@pytest.mark.parametrize(
    ("doc", "update", "expected"),
    SET_UNSET + ARITHMETIC + MIN_MAX_RENAME + ARRAY_OPERATORS + ALL_POSITIONAL,
)
def test_update_operators(
    doc: dict[str, Any], update: dict[str, Any], expected: dict[str, Any]
) -> None:
    check(doc, update, expected)


def test_array_filters_select_elements() -> None:
    # update/positional-filtered/: grades >= 100 become 100.
    check(
        {"_id": 1, "grades": [95, 102, 90, 150]},
        {"$set": {"grades.$[element]": 100}},
        {"_id": 1, "grades": [95, 100, 90, 100]},
        array_filters=[{"element": {"$gte": 100}}],
    )
    check(
        {"_id": 1, "g": [{"m": 80, "s": 1}, {"m": 90, "s": 2}]},
        {"$inc": {"g.$[e].s": 10}},
        {"_id": 1, "g": [{"m": 80, "s": 1}, {"m": 90, "s": 12}]},
        array_filters=[{"e.m": {"$gt": 85}}],
    )


@pytest.mark.parametrize(
    ("array_filters", "update", "code"),
    [
        ([{"x": 1}], {"$set": {"a.$[y]": 1}}, 2),  # no filter for y
        ([{"x": 1}, {"y": 1}], {"$set": {"a.$[x]": 1}}, 9),  # y unused
        ([{"x": 1, "z": 1}], {"$set": {"a.$[x]": 1}}, 9),  # two identifiers in one filter
        ([{"X": 1}], {"$set": {"a.$[X]": 1}}, 2),  # must start lowercase
    ],
)
def test_array_filter_errors(
    array_filters: list[dict[str, Any]], update: dict[str, Any], code: int
) -> None:
    with pytest.raises(CommandError) as raised:
        apply_update({"_id": 1, "a": [1]}, update, array_filters=array_filters)
    assert raised.value.code == code


def test_set_on_insert_only_when_inserting() -> None:
    update = {"$set": {"a": 1}, "$setOnInsert": {"b": 2}}
    check({"_id": 1}, update, {"_id": 1, "a": 1})
    check({"_id": 1}, update, {"_id": 1, "a": 1, "b": 2}, is_insert=True)


def test_current_date_uses_the_given_clock() -> None:
    now = datetime.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=datetime.UTC)
    check(
        {"_id": 1},
        {"$currentDate": {"d": True, "t": {"$type": "timestamp"}, "e": {"$type": "date"}}},
        {"_id": 1, "d": now, "e": now, "t": Timestamp(int(now.timestamp()), 1)},
        now=now,
    )
    result = apply_update({"_id": 1}, {"$currentDate": {"d": True}})
    assert isinstance(result["d"], datetime.datetime)
    assert result["d"].microsecond % 1000 == 0  # BSON dates hold milliseconds


@pytest.mark.parametrize(
    ("doc", "update", "code", "fragment"),
    [
        ({"_id": 1}, {"$set": {"a": 1}, "$inc": {"a": 1}}, 40, "would create a conflict at 'a'"),
        ({"_id": 1}, {"$set": {"a": 1, "a.b": 1}}, 40, "conflict"),
        ({"_id": 1}, {"$set": {"a.b": 1}, "$unset": {"a": 1}}, 40, "conflict"),
        ({"_id": 1, "a": 1}, {"$rename": {"a": "b"}, "$set": {"b": 1}}, 40, "conflict"),
        ({"_id": 1}, {"$set": {"_id": 2}}, 66, "immutable field '_id'"),
        ({"_id": 1}, {"$unset": {"_id": ""}}, 66, "immutable field '_id'"),
        ({"_id": 1}, {"$set": {"_id": 1.0}}, 66, "immutable"),  # same value, other type
        ({"_id": {"x": 1}}, {"$set": {"_id.x": 2}}, 66, "immutable"),
        ({"_id": 1, "a": "x"}, {"$inc": {"a": 1}}, 14, "non-numeric type string"),
        ({"_id": 1}, {"$inc": {"a": "1"}}, 14, "Cannot increment with non-numeric argument"),
        ({"_id": 1}, {"$mul": {"a": None}}, 14, "Cannot multiply with non-numeric argument"),
        ({"_id": 1, "a": Int64(2**63 - 1)}, {"$inc": {"a": 1}}, 2, "overflow"),
        ({"_id": 1}, {"$foo": {"a": 1}}, 9, "Unknown modifier: $foo"),
        ({"_id": 1}, {"$set": 5}, 9, "Modifiers operate on fields"),
        ({"_id": 1}, {"$set": {"": 1}}, 56, "empty update path"),
        ({"_id": 1}, {"$set": {"a..b": 1}}, 56, "empty field name"),
        ({"_id": 1, "a": 5}, {"$set": {"a.b": 1}}, 28, "Cannot create field 'b'"),
        ({"_id": 1, "a": [1]}, {"$set": {"a.b": 1}}, 28, "Cannot create field 'b'"),
        ({"_id": 1, "a": 5}, {"$push": {"a": 1}}, 2, "must be an array"),
        ({"_id": 1}, {"$push": {"a": {"$each": 1}}}, 2, "$each"),
        ({"_id": 1}, {"$push": {"a": {"$each": [], "$bad": 1}}}, 2, "Unrecognized clause"),
        ({"_id": 1}, {"$push": {"a": {"$each": [], "$slice": "x"}}}, 2, "$slice"),
        ({"_id": 1}, {"$push": {"a": {"$each": [], "$sort": 2}}}, 2, "$sort is invalid"),
        ({"_id": 1, "a": 5}, {"$addToSet": {"a": 1}}, 2, "non-array"),
        ({"_id": 1, "a": [1]}, {"$pop": {"a": 2}}, 9, "$pop expects 1 or -1"),
        ({"_id": 1, "a": 5}, {"$pop": {"a": 1}}, 14, "non-array"),
        ({"_id": 1, "a": 5}, {"$pull": {"a": 1}}, 2, "non-array"),
        ({"_id": 1}, {"$pullAll": {"a": 1}}, 2, "$pullAll requires an array"),
        ({"_id": 1}, {"$rename": {"a": 1}}, 2, "must be a string"),
        ({"_id": 1}, {"$rename": {"a": "a"}}, 2, "must differ"),
        ({"_id": 1, "a": [{"b": 1}]}, {"$rename": {"a.0.b": "c"}}, 2, "array element"),
        ({"_id": 1}, {"$currentDate": {"d": {"$type": "x"}}}, 2, "date' or 'timestamp"),
        ({"_id": 1, "a": [1]}, {"$set": {"a.$": 1}}, 2, "positional operator"),
        ({"_id": 1}, {"$set": {"a.$[]": 1}}, 2, "must exist in the document"),
    ],
)
def test_update_errors(
    doc: dict[str, Any], update: dict[str, Any], code: int, fragment: str
) -> None:
    before = copy.deepcopy(doc)
    with pytest.raises(CommandError) as raised:
        apply_update(doc, update)
    assert raised.value.code == code, raised.value.errmsg
    assert fragment in raised.value.errmsg
    assert doc == before


def test_conflict_error_has_mongodb_code_name() -> None:
    with pytest.raises(CommandError) as raised:
        apply_update({"_id": 1}, {"$set": {"a": 1}, "$inc": {"a": 1}})
    assert raised.value.code_name == "ConflictingUpdateOperators"


def test_result_does_not_share_written_containers_with_input_or_update() -> None:
    doc: dict[str, Any] = {"_id": 1, "a": {"b": [1, 2]}, "untouched": {"x": 1}}
    update: dict[str, Any] = {"$push": {"a.b": 3}, "$set": {"n": {"deep": [1]}}}
    result = apply_update(doc, update)
    assert doc == {"_id": 1, "a": {"b": [1, 2]}, "untouched": {"x": 1}}
    result["n"]["deep"].append(2)
    assert update == {"$push": {"a.b": 3}, "$set": {"n": {"deep": [1]}}}
    assert result["a"]["b"] is not doc["a"]["b"]


@pytest.mark.parametrize(
    ("update", "kind"),
    [
        ({"$set": {"a": 1}}, UpdateKind.OPERATORS),
        ({"a": 1}, UpdateKind.REPLACEMENT),
        ({}, UpdateKind.REPLACEMENT),
        ([{"$set": {"a": 1}}], UpdateKind.PIPELINE),
    ],
)
def test_classify_update(update: Any, kind: UpdateKind) -> None:
    assert classify_update(update) is kind


def test_replacement_keeps_id_first() -> None:
    check({"_id": 7, "a": 1, "b": 2}, {"c": 3, "a": 4}, {"_id": 7, "c": 3, "a": 4})
    check({"_id": 7, "a": 1}, {"a": 2, "_id": 7}, {"_id": 7, "a": 2})
    check({}, {"a": 2, "_id": 3}, {"_id": 3, "a": 2})
    with pytest.raises(CommandError) as raised:
        apply_update({"_id": 7}, {"_id": 8, "a": 1})
    assert raised.value.code == 66


def test_replacement_refuses_dollar_fields_and_pipelines_are_not_applied_here() -> None:
    with pytest.raises(CommandError) as raised:
        validate_replacement({"a": 1, "$set": {"b": 1}})
    assert raised.value.code == 52
    with pytest.raises(CommandError):
        apply_update({"_id": 1}, {"a": 1, "$set": {"b": 1}})
    with pytest.raises(CommandError):
        apply_update({"_id": 1}, [{"$set": {"a": 1}}])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("filter_doc", "seed"),
    [
        ({"_id": 1, "a": 2}, {"_id": 1, "a": 2}),
        ({"a": 2, "_id": 1}, {"_id": 1, "a": 2}),
        ({"a.b": 1, "c": {"$eq": 2}}, {"a": {"b": 1}, "c": 2}),
        ({"a": {"$gt": 1}, "b": 1}, {"b": 1}),
        ({"$and": [{"a": 1}, {"b.c": 2}]}, {"a": 1, "b": {"c": 2}}),
        ({"$or": [{"a": 1}]}, {}),
        ({"a": {"x": 1}}, {"a": {"x": 1}}),
    ],
)
def test_upsert_seed(filter_doc: dict[str, Any], seed: dict[str, Any]) -> None:
    result = upsert_seed(filter_doc)
    assert result == seed
    assert list(result) == list(seed)


def test_upsert_seed_then_update_builds_the_inserted_document() -> None:
    seed = upsert_seed({"_id": 5, "name": "x"})
    result = apply_update(
        seed, {"$set": {"n": 1}, "$setOnInsert": {"created": True}}, is_insert=True
    )
    assert result == {"_id": 5, "name": "x", "n": 1, "created": True}


def test_upsert_seed_refuses_a_path_matched_twice() -> None:
    with pytest.raises(CommandError) as raised:
        upsert_seed({"$and": [{"a": 1}, {"a.b": 2}]})
    assert raised.value.code == 54


def test_positional_operator_uses_the_query() -> None:
    # update/positional/: grades.$ is the first element the query matched.
    check(
        {"_id": 1, "grades": [85, 80, 80]},
        {"$set": {"grades.$": 82}},
        {"_id": 1, "grades": [85, 82, 80]},
        query={"_id": 1, "grades": 80},
    )
    check(
        {"_id": 4, "grades": [{"g": 80, "m": 75}, {"g": 85, "m": 90}]},
        {"$inc": {"grades.$.m": 1}},
        {"_id": 4, "grades": [{"g": 80, "m": 75}, {"g": 85, "m": 91}]},
        query={"grades.g": 85},
    )
    check(
        {"_id": 5, "g": [{"s": 1}, {"s": 9}]},
        {"$set": {"g.$.ok": True}},
        {"_id": 5, "g": [{"s": 1}, {"s": 9, "ok": True}]},
        query={"$and": [{"g": {"$elemMatch": {"s": {"$gt": 5}}}}]},
    )
    with pytest.raises(CommandError) as raised:
        apply_update({"_id": 1, "a": [1]}, {"$set": {"a.$": 2}}, query={"a": 5})
    assert raised.value.code == 2


def test_compiled_update_applies_to_many_documents() -> None:
    compiled = compile_update({"$inc": {"n": 1}, "$push": {"log": "x"}})
    docs = [{"_id": index, "n": index} for index in range(3)]
    results = [compiled.apply(doc) for doc in docs]
    assert results == [{"_id": index, "n": index + 1, "log": ["x"]} for index in range(3)]
    assert docs == [{"_id": index, "n": index} for index in range(3)]
    assert compile_update({"a": 1}).kind is UpdateKind.REPLACEMENT
    with pytest.raises(CommandError):
        compile_update({"$set": {"a": 1}, "$unset": {"a": 1}})
