"""BSON comparison order and equality.

Reference: https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/
"""

from __future__ import annotations

import datetime
import functools
import itertools
import re
import uuid
from typing import Any

import pytest
from bson.binary import Binary
from bson.code import Code
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from localdocdb.engine.compare import (
    canonical_type_order,
    compare_values,
    sort_key,
    values_equal,
)

UTC = datetime.UTC

# One value of each type, in MongoDB's documented ascending order.
ASCENDING_TYPES: list[Any] = [
    MinKey(),
    None,
    -5,
    "",
    {},
    [],
    b"",
    ObjectId("000000000000000000000000"),
    False,
    datetime.datetime(1970, 1, 1, tzinfo=UTC),
    Timestamp(0, 0),
    Regex("a", ""),
    Code("x"),
    MaxKey(),
]


def test_type_order_follows_the_documented_order() -> None:
    ranks = [canonical_type_order(value) for value in ASCENDING_TYPES]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == len(ranks)
    for smaller, larger in itertools.pairwise(ASCENDING_TYPES):
        assert compare_values(smaller, larger) == -1, (smaller, larger)
        assert compare_values(larger, smaller) == 1, (smaller, larger)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # Numbers compare by value across int32/int64/double/decimal128.
        (1, 1.0, 0),
        (1, Int64(1), 0),
        (Int64(2), Decimal128("2.0"), 0),
        (1, 1.5, -1),
        (Decimal128("1.1"), 1, 1),
        (float("nan"), float("-inf"), -1),  # NaN sorts below every number
        (float("nan"), float("nan"), 0),
        (Decimal128("NaN"), float("nan"), 0),
        (2**62, 2**62 + 1, -1),  # exact, no double rounding
        # Strings by code point (simple binary collation): "B" < "a", "é" > "z".
        ("B", "a", -1),
        ("z", "é", -1),
        ("ab", "abc", -1),
        # Documents: field by field (type, then name, then value); shorter first.
        ({"a": 1}, {"a": 1}, 0),
        ({"a": 1}, {"a": 1.0}, 0),
        ({"a": 1}, {"b": 1}, -1),
        ({"a": 1}, {"a": 1, "b": 0}, -1),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, -1),  # key order matters
        ({"a": "x"}, {"a": 5}, 1),  # string field outranks number field
        # Arrays element by element.
        ([1, 2], [1, 3], -1),
        ([1, 2], [1, 2, 0], -1),
        ([2], [1, 9], 1),
        # BinData: length, then subtype, then bytes.
        (b"\x09", b"\x00\x00", -1),
        (Binary(b"\x01", 0), Binary(b"\x00", 5), -1),
        (uuid.UUID(int=1), Binary(uuid.UUID(int=1).bytes, 4), 0),
        (ObjectId("000000000000000000000001"), ObjectId("000000000000000000000002"), -1),
        (False, True, -1),
        # Dates by instant; naive means UTC.
        (datetime.datetime(2020, 1, 1), datetime.datetime(2020, 1, 1, tzinfo=UTC), 0),
        (
            datetime.datetime(2020, 1, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
            datetime.datetime(2020, 1, 1),
            -1,
        ),
        (Timestamp(1, 2), Timestamp(1, 3), -1),
        (Timestamp(2, 0), Timestamp(1, 9), 1),
        (Regex("a", "i"), re.compile("a", re.IGNORECASE), 0),
        (Regex("a", ""), Regex("a", "i"), -1),
        (MinKey(), MinKey(), 0),
        (MaxKey(), MaxKey(), 0),
    ],
)
def test_compare_values_table(a: Any, b: Any, expected: int) -> None:
    assert compare_values(a, b) == expected
    assert compare_values(b, a) == -expected
    assert values_equal(a, b) is (expected == 0)


def test_bool_is_not_a_number() -> None:
    assert not values_equal(True, 1)
    assert not values_equal(False, 0)
    assert compare_values(1_000_000, False) == -1


def test_code_with_scope_differs_from_code() -> None:
    assert canonical_type_order(Code("x", {"a": 1})) > canonical_type_order(Code("x"))
    assert not values_equal(Code("x"), "x")


def test_unknown_python_type_is_refused() -> None:
    with pytest.raises(TypeError):
        canonical_type_order(object())


# Hypothesis: compare_values is a total order over generated BSON values, and sort_key agrees.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(Int64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, places=3, min_value=-(10**6), max_value=10**6).map(
        lambda number: Decimal128(str(number))
    ),
    st.just(Decimal128("NaN")),
    st.text(max_size=4),
    st.binary(max_size=4),
    st.builds(Binary, st.binary(max_size=3), st.sampled_from([0, 5, 128])),
    st.binary(min_size=12, max_size=12).map(ObjectId),
    st.datetimes(
        min_value=datetime.datetime(1900, 1, 1), max_value=datetime.datetime(2100, 1, 1)
    ).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000)),
    st.builds(Timestamp, st.integers(min_value=0, max_value=2**32 - 1), st.integers(0, 2**32 - 1)),
    st.builds(Regex, st.text(alphabet="ab.", max_size=3), st.sampled_from(["", "i", "im"])),
    st.builds(Code, st.text(alphabet="xy", max_size=2)),
    st.just(MinKey()),
    st.just(MaxKey()),
)
bson_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(alphabet="ab", max_size=2), children, max_size=3),
    ),
    max_leaves=8,
)


@settings(deadline=None)
@given(bson_values, bson_values, bson_values)
def test_compare_values_is_a_total_order(a: Any, b: Any, c: Any) -> None:
    assert compare_values(a, a) == 0
    assert compare_values(a, b) == -compare_values(b, a)
    if compare_values(a, b) <= 0 and compare_values(b, c) <= 0:
        assert compare_values(a, c) <= 0
    if compare_values(a, b) == 0 and compare_values(b, c) == 0:
        assert compare_values(a, c) == 0


@settings(deadline=None)
@given(st.lists(bson_values, max_size=8))
def test_sort_key_agrees_with_compare_values(values: list[Any]) -> None:
    by_key = sorted(values, key=sort_key)
    by_compare = sorted(values, key=functools.cmp_to_key(compare_values))
    assert [sort_key(value) for value in by_key] == [sort_key(value) for value in by_compare]
    for earlier, later in itertools.pairwise(by_key):
        assert compare_values(earlier, later) <= 0
        assert values_equal(earlier, later) is (compare_values(earlier, later) == 0)
