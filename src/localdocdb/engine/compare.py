"""localdocdb engine layer: BSON value ordering and equality, as MongoDB compares values.

MongoDB orders values of different types by a canonical type rank (MinKey < null < numbers <
string/symbol < object < array < binData < ObjectId < bool < date < timestamp < regex < MaxKey),
and values of one type by their content. Numbers of every BSON numeric type compare by value;
strings by code point (the "simple" binary collation). Reference:
https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/

Everything here is built on `sort_key`: a tuple that Python orders exactly as MongoDB orders the
values, so `compare_values`, `values_equal` and sorting can never disagree.
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
import uuid
from collections.abc import Mapping
from typing import Any, Final

from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp

# Canonical type ranks, as in MongoDB's canonicalizeBSONType (src/mongo/bson/bsontypes.cpp).
RANK_MIN_KEY: Final = -1
RANK_UNDEFINED: Final = 0
RANK_NULL: Final = 5
RANK_NUMBER: Final = 10
RANK_STRING: Final = 15
RANK_OBJECT: Final = 20
RANK_ARRAY: Final = 25
RANK_BINARY: Final = 30
RANK_OBJECT_ID: Final = 35
RANK_BOOL: Final = 40
RANK_DATE: Final = 45
RANK_TIMESTAMP: Final = 47
RANK_REGEX: Final = 50
RANK_DBREF: Final = 55
RANK_CODE: Final = 60
RANK_CODE_WITH_SCOPE: Final = 65
RANK_MAX_KEY: Final = 127

_EPOCH_NAIVE: Final = datetime.datetime(1970, 1, 1)  # naive: BSON dates are UTC
_ONE_MS: Final = datetime.timedelta(milliseconds=1)
_UUID_SUBTYPE: Final = 4

# Python re flags -> MongoDB regex option letters, in MongoDB's canonical (sorted) order.
_REGEX_FLAG_LETTERS: Final = (
    (re.IGNORECASE, "i"),
    (re.LOCALE, "l"),
    (re.MULTILINE, "m"),
    (re.DOTALL, "s"),
    (re.UNICODE, "u"),
    (re.VERBOSE, "x"),
)


def datetime_to_millis(value: datetime.datetime) -> int:
    """Milliseconds since the epoch, treating a naive datetime as UTC (as BSON does)."""
    if value.tzinfo is not None:
        offset = value.utcoffset()
        value = value.replace(tzinfo=None)
        if offset:
            value = value - offset
    return (value - _EPOCH_NAIVE) // _ONE_MS


def regex_flag_letters(flags: int) -> str:
    """MongoDB's option letters ("imsx...") for Python `re` flag bits."""
    return "".join(letter for bit, letter in _REGEX_FLAG_LETTERS if flags & bit)


def is_number(value: Any) -> bool:
    """Whether a value is a BSON number (int32, int64, double, decimal128); bool is not."""
    kind = type(value)
    if kind is int or kind is float or kind is Int64:
        return True
    if kind is str or kind is bool or kind is dict or kind is list or value is None:
        return False
    return (isinstance(value, int | float | Decimal128)) and not isinstance(value, bool)


def number_as_python(value: Any) -> int | float | decimal.Decimal:
    """A BSON number as a Python number that compares by value with the other kinds."""
    if isinstance(value, Decimal128):
        return value.to_decimal()
    return value  # type: ignore[no-any-return]


# Exact types decoded by pymongo's bson, for a dictionary lookup before the isinstance chain.
_RANK_BY_EXACT_TYPE: Final[dict[type, int]] = {
    type(None): RANK_NULL,
    bool: RANK_BOOL,
    int: RANK_NUMBER,
    float: RANK_NUMBER,
    Int64: RANK_NUMBER,
    Decimal128: RANK_NUMBER,
    str: RANK_STRING,
    dict: RANK_OBJECT,
    list: RANK_ARRAY,
    bytes: RANK_BINARY,
    Binary: RANK_BINARY,
    uuid.UUID: RANK_BINARY,
    ObjectId: RANK_OBJECT_ID,
    datetime.datetime: RANK_DATE,
    Timestamp: RANK_TIMESTAMP,
    Regex: RANK_REGEX,
    MinKey: RANK_MIN_KEY,
    MaxKey: RANK_MAX_KEY,
}


def canonical_type_order(value: Any) -> int:
    """The rank of a value's BSON type in MongoDB's cross-type comparison order."""
    rank = _RANK_BY_EXACT_TYPE.get(type(value))
    if rank is not None:
        return rank
    # Order of checks matters: bool before int, Code before str, Binary before bytes.
    if value is None:
        return RANK_NULL
    if isinstance(value, bool):
        return RANK_BOOL
    if isinstance(value, int | float | Decimal128):
        return RANK_NUMBER
    if isinstance(value, Code):
        return RANK_CODE if value.scope is None else RANK_CODE_WITH_SCOPE
    if isinstance(value, str):
        return RANK_STRING
    if isinstance(value, Mapping | DBRef):
        return RANK_OBJECT
    if isinstance(value, list | tuple):
        return RANK_ARRAY
    if isinstance(value, bytes | uuid.UUID):
        return RANK_BINARY
    if isinstance(value, ObjectId):
        return RANK_OBJECT_ID
    if isinstance(value, datetime.datetime | DatetimeMS):
        return RANK_DATE
    if isinstance(value, Timestamp):
        return RANK_TIMESTAMP
    if isinstance(value, Regex | re.Pattern):
        return RANK_REGEX
    if isinstance(value, MinKey):
        return RANK_MIN_KEY
    if isinstance(value, MaxKey):
        return RANK_MAX_KEY
    raise TypeError(f"not a BSON value: {type(value).__name__}")


def _number_key(value: Any) -> tuple[Any, ...]:
    number = number_as_python(value)
    # NaN sorts below every other number and equals itself (MongoDB's numeric order).
    if isinstance(number, float):
        if math.isnan(number):
            return (RANK_NUMBER, 0)
    elif isinstance(number, decimal.Decimal) and number.is_nan():
        return (RANK_NUMBER, 0)
    return (RANK_NUMBER, 1, number)


def _binary_key(value: bytes | uuid.UUID) -> tuple[Any, ...]:
    # BinData compares by length, then subtype, then bytes.
    if isinstance(value, uuid.UUID):
        return (RANK_BINARY, 16, _UUID_SUBTYPE, value.bytes)
    subtype = value.subtype if isinstance(value, Binary) else 0
    return (RANK_BINARY, len(value), subtype, bytes(value))


def _object_key(value: Mapping[str, Any]) -> tuple[Any, ...]:
    # Objects compare field by field: type rank, then field name, then value; shorter is less.
    items = []
    for name, item in value.items():
        key = sort_key(item)
        items.append((key[0], name, key))
    return (RANK_OBJECT, tuple(items))


def sort_key(value: Any) -> Any:
    """A Python sort key for a BSON value, ordered exactly as MongoDB orders values."""
    kind = type(value)
    if kind is str:
        return (RANK_STRING, value)
    if kind is int or kind is float:
        if math.isnan(value):
            return (RANK_NUMBER, 0)
        return (RANK_NUMBER, 1, value)
    if value is None:
        return (RANK_NULL,)
    rank = canonical_type_order(value)
    if rank == RANK_NUMBER:
        return _number_key(value)
    if rank == RANK_STRING:
        return (RANK_STRING, str(value))
    if rank == RANK_BOOL:
        return (RANK_BOOL, bool(value))
    if rank == RANK_OBJECT:
        if isinstance(value, DBRef):
            return _object_key(value.as_doc())
        return _object_key(value)
    if rank == RANK_ARRAY:
        return (RANK_ARRAY, tuple(sort_key(item) for item in value))
    if rank == RANK_BINARY:
        return _binary_key(value)
    if rank == RANK_OBJECT_ID:
        return (RANK_OBJECT_ID, value.binary)
    if rank == RANK_DATE:
        if isinstance(value, DatetimeMS):
            return (RANK_DATE, int(value))
        return (RANK_DATE, datetime_to_millis(value))
    if rank == RANK_TIMESTAMP:
        return (RANK_TIMESTAMP, value.time, value.inc)
    if rank == RANK_REGEX:
        # Python sets re.UNICODE on every str pattern; it is not a distinguishing option.
        flags = (value.flags if isinstance(value.flags, int) else 0) & ~re.UNICODE
        return (RANK_REGEX, value.pattern, regex_flag_letters(flags))
    if rank == RANK_CODE:
        return (RANK_CODE, str(value))
    if rank == RANK_CODE_WITH_SCOPE:
        return (RANK_CODE_WITH_SCOPE, str(value), _object_key(value.scope))
    return (rank,)  # MinKey, MaxKey


def compare_values(a: Any, b: Any) -> int:
    """Compare two BSON values in MongoDB order: -1, 0 or 1."""
    if type(a) is type(b) and type(a) in (str, int):
        return int(a > b) - int(a < b)
    key_a = sort_key(a)
    key_b = sort_key(b)
    if key_a == key_b:
        return 0
    return -1 if key_a < key_b else 1


def values_equal(a: Any, b: Any) -> bool:
    """MongoDB equality: 1 == 1.0 == Int64(1); documents equal only with the same key order."""
    kind = type(a)
    if kind is type(b) and (kind is str or kind is int or kind is ObjectId):
        return bool(a == b)
    return bool(sort_key(a) == sort_key(b))
