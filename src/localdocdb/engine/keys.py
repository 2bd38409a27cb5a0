"""Hashable canonical keys for BSON values (engine layer, pure).

MongoDB treats `1`, `1.0` and `NumberLong(1)` as the same `_id`, the same `$group`
key and the same `distinct` value. Python dicts need hashable keys that agree with
that equality, so this module maps every decoded BSON value to a tuple whose
Python equality is MongoDB's equality. Numbers rely on Python's guarantee that
equal int, float and Decimal values hash alike.
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
import uuid
from collections.abc import Mapping
from typing import Any

from bson import Binary, Code, Decimal128, MaxKey, MinKey, ObjectId, Regex, Timestamp

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _number_key(value: int | float | Decimal128) -> tuple[Any, ...]:
    """Numbers equal in value share a key, whatever their BSON type."""
    if isinstance(value, Decimal128):
        number = value.to_decimal()
        if number.is_nan():
            return ("nan",)
        return ("num", number)
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    return ("num", value)


def _datetime_millis(value: datetime.datetime) -> int:
    """Milliseconds since the epoch; naive datetimes are UTC, as pymongo decodes them."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def hashable_key(value: Any) -> Any:
    """A hashable key such that two BSON values are equal exactly when their keys are."""
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float | Decimal128):
        return _number_key(value)
    if isinstance(value, decimal.Decimal):
        return ("nan",) if value.is_nan() else ("num", value)
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, Mapping):
        return ("doc", tuple((str(k), hashable_key(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("arr", tuple(hashable_key(v) for v in value))
    if isinstance(value, ObjectId):
        return ("oid", value.binary)
    if isinstance(value, datetime.datetime):
        return ("date", _datetime_millis(value))
    if isinstance(value, Binary):
        return ("bin", value.subtype, bytes(value))
    if isinstance(value, bytes):
        return ("bin", 0, value)
    if isinstance(value, uuid.UUID):
        return ("bin", 4, value.bytes)
    if isinstance(value, Timestamp):
        return ("ts", value.time, value.inc)
    if isinstance(value, MinKey):
        return ("minkey",)
    if isinstance(value, MaxKey):
        return ("maxkey",)
    if isinstance(value, Regex):
        return ("regex", str(value.pattern), str(value.flags))
    if isinstance(value, re.Pattern):
        return ("regex", value.pattern, str(value.flags))
    if isinstance(value, Code):
        return ("code", str(value), hashable_key(value.scope) if value.scope else None)
    return (type(value).__name__, repr(value))
