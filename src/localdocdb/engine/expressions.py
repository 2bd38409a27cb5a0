"""Aggregation expression evaluator: `$field.paths`, `$$variables` and operators (engine layer).

Pure code. `evaluate(expression, document, variables)` follows MongoDB's
aggregation expression semantics
(https://www.mongodb.com/docs/manual/reference/operator/aggregation/): a string
starting with `$` is a field path, `$$name` a variable (`ROOT`, `CURRENT`, `NOW`,
`REMOVE` and those bound by `$let`, `$map`, `$filter` or `$lookup`'s `let`), a
one-key document whose key starts with `$` an operator, any other document an
object expression, and everything else a literal. A missing value is `ABSENT`,
which `$project`/`$addFields` leave out of their output.
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp

from localdocdb.errors import CommandError

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_RANGE_LENGTH = 10_000_000  # bound on arrays built from input numbers


class _Absent:
    """The value of a field path that reaches nothing (MongoDB's "missing")."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT: Final = _Absent()


def invalid_operator(name: str) -> CommandError:
    """MongoDB's error for an expression operator it does not know."""
    return CommandError(168, "InvalidPipelineOperator", f"Unrecognized expression '{name}'")


def conversion_error(message: str) -> CommandError:
    """Code 241: a `$to...` conversion that cannot be done."""
    return CommandError(241, "ConversionFailure", message)


# -- field paths ---------------------------------------------------------------------------


def _walk(value: Any, parts: list[str]) -> Any:
    """Follow path parts; arrays map over their document elements as MongoDB does."""
    for index, part in enumerate(parts):
        if isinstance(value, Mapping):
            if part not in value:
                return ABSENT
            value = value[part]
        elif isinstance(value, list):
            rest = parts[index:]
            out = []
            for element in value:
                if isinstance(element, Mapping | list):
                    found = _walk(element, rest)
                    if found is not ABSENT:
                        out.append(found)
            return out
        else:
            return ABSENT
    return value


def field_path(document: Any, path: str) -> Any:
    """The value of a dotted path (without the `$`) in `document`."""
    return _walk(document, path.split("."))


def _variable(name_and_path: str, variables: Mapping[str, Any]) -> Any:
    """`$$name` or `$$name.path`."""
    name, _, path = name_and_path.partition(".")
    if name == "REMOVE":
        return ABSENT
    if name == "NOW":
        value: Any = variables.get("NOW") or datetime.datetime.now(datetime.UTC)
    elif name in variables:
        value = variables[name]
    else:
        raise CommandError(17276, "Location17276", f"Use of undefined variable: {name}")
    return _walk(value, path.split(".")) if path else value


# -- type helpers --------------------------------------------------------------------------


def is_number(value: Any) -> bool:
    """Whether `value` is a BSON number (bool is not)."""
    return isinstance(value, int | float | Decimal128) and not isinstance(value, bool)


def is_nullish(value: Any) -> bool:
    """null or missing, which most operators turn into null."""
    return value is None or value is ABSENT


def truthy(value: Any) -> bool:
    """Aggregation truthiness: false, null, missing and zero are false; all else true."""
    if value is None or value is ABSENT or value is False:
        return False
    if is_number(value):
        return to_python_number(value) != 0
    return True


def to_python_number(value: Any) -> int | float | decimal.Decimal:
    """A BSON number as a Python int, float or Decimal (for arithmetic)."""
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise type_error("a number", value)


def from_python_number(value: int | float | decimal.Decimal, like_long: bool = False) -> Any:
    """Back to a BSON-encodable number."""
    if isinstance(value, decimal.Decimal):
        return Decimal128(value)
    if isinstance(value, int):
        if value < INT64_MIN or value > INT64_MAX:
            return float(value)
        if like_long or value < INT32_MIN or value > INT32_MAX:
            return Int64(value)
        return value
    return value


def bson_type_name(value: Any) -> str:
    """The `$type` name of a value."""
    if value is ABSENT:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Int64):
        return "long"
    if isinstance(value, int):
        return "int" if INT32_MIN <= value <= INT32_MAX else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, Decimal128):
        return "decimal"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Binary | bytes | uuid.UUID):
        return "binData"
    if isinstance(value, ObjectId):
        return "objectId"
    if isinstance(value, datetime.datetime):
        return "date"
    if isinstance(value, Regex | re.Pattern):
        return "regex"
    if isinstance(value, Code):
        return "javascript"
    if isinstance(value, Timestamp):
        return "timestamp"
    if isinstance(value, MinKey):
        return "minKey"
    if isinstance(value, MaxKey):
        return "maxKey"
    return type(value).__name__


def type_error(expected: str, value: Any, operator: str = "") -> CommandError:
    """A TypeMismatch-style error naming the operator and the offending type."""
    where = f"{operator} " if operator else ""
    return CommandError(
        16554, "TypeMismatch", f"{where}only supports {expected}, not {bson_type_name(value)}"
    )


def _format_double(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _format_date(value: datetime.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def to_string(value: Any) -> Any:
    """`$toString`."""
    if is_nullish(value):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _format_double(value)
    if isinstance(value, int | Decimal128):
        return str(value)
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime.datetime):
        return _format_date(value)
    raise conversion_error(f"Unsupported conversion from {bson_type_name(value)} to string")


def to_integer(value: Any, target: str, low: int, high: int) -> Any:
    """`$toInt`/`$toLong`: a value as a whole number within [low, high]."""
    if is_nullish(value):
        return None
    if isinstance(value, bool):
        result = int(value)
    elif isinstance(value, int):
        result = value
    elif isinstance(value, float | Decimal128):
        number = to_python_number(value)
        if isinstance(number, float) and not math.isfinite(number):
            raise conversion_error(f"Attempt to convert NaN or infinity value to {target}")
        result = int(number)
    elif isinstance(value, str):
        try:
            result = int(value.strip(), 10)
        except ValueError:
            raise conversion_error(
                f"Failed to parse number '{value}' in $convert with no onError value"
            ) from None
    elif isinstance(value, datetime.datetime) and target == "long":
        result = int(value.replace(tzinfo=datetime.UTC).timestamp() * 1000)
    else:
        raise conversion_error(f"Unsupported conversion from {bson_type_name(value)} to {target}")
    if result < low or result > high:
        raise conversion_error("Conversion would overflow target type in $convert")
    return Int64(result) if target == "long" else result


def to_double(value: Any) -> Any:
    """`$toDouble`."""
    if is_nullish(value):
        return None
    if isinstance(value, bool):
        return float(value)
    if is_number(value):
        return float(to_python_number(value))
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise conversion_error(
                f"Failed to parse number '{value}' in $convert with no onError value"
            ) from None
    if isinstance(value, datetime.datetime):
        return float(int(value.replace(tzinfo=datetime.UTC).timestamp() * 1000))
    raise conversion_error(f"Unsupported conversion from {bson_type_name(value)} to double")


# -- the evaluator -------------------------------------------------------------------------

Operator = Callable[[Any, Any, Mapping[str, Any]], Any]
OPERATORS: dict[str, Operator] = {}


def expression_operator(*names: str) -> Callable[[Operator], Operator]:
    """Register the decorated function as the operator(s) `names`."""

    def register(function: Operator) -> Operator:
        for name in names:
            OPERATORS[name] = function
        return function

    return register


def base_variables(document: Any) -> dict[str, Any]:
    """The system variables for a document at the top of a pipeline stage."""
    return {"ROOT": document, "CURRENT": document}


def evaluate(expression: Any, document: Any, variables: Mapping[str, Any] | None = None) -> Any:
    """The value of an aggregation expression for one document."""
    if variables is None:
        variables = base_variables(document)
    if isinstance(expression, str):
        if expression.startswith("$$"):
            return _variable(expression[2:], variables)
        if expression.startswith("$"):
            if len(expression) == 1:
                raise CommandError(16872, "Location16872", "'$' by itself is not a valid FieldPath")
            current = variables.get("CURRENT", document)
            return field_path(current, expression[1:])
        return expression
    if isinstance(expression, Mapping):
        if len(expression) == 1:
            ((name, argument),) = expression.items()
            if isinstance(name, str) and name.startswith("$"):
                operator = OPERATORS.get(name)
                if operator is None:
                    raise invalid_operator(name)
                return operator(argument, document, variables)
        out: dict[str, Any] = {}
        for key, sub in expression.items():
            if key.startswith("$"):
                raise invalid_operator(key)
            value = evaluate(sub, document, variables)
            if value is not ABSENT:
                out[key] = value
        return out
    if isinstance(expression, list):
        return [present(evaluate(item, document, variables)) for item in expression]
    return expression


def present(value: Any) -> Any:
    """Missing becomes null inside arrays, as MongoDB does."""
    return None if value is ABSENT else value


def evaluate_arguments(argument: Any, document: Any, variables: Mapping[str, Any]) -> list[Any]:
    """Evaluate an operator's argument list (a lone argument counts as a list of one)."""
    items = argument if isinstance(argument, list) else [argument]
    return [evaluate(item, document, variables) for item in items]


def fixed_arguments(
    name: str, argument: Any, document: Any, variables: Mapping[str, Any], count: int
) -> list[Any]:
    """Evaluate an operator's arguments, requiring exactly `count` of them."""
    values = evaluate_arguments(argument, document, variables)
    if len(values) != count:
        raise CommandError(
            16020,
            "Location16020",
            f"Expression {name} takes exactly {count} arguments. {len(values)} were passed in.",
        )
    return values


def failed_to_parse_expression(message: str) -> CommandError:
    """A malformed operator argument."""
    return CommandError(9, "FailedToParse", message)


# The operators live in their own module; importing it fills OPERATORS.
from localdocdb.engine import expression_operators as _expression_operators  # noqa: E402, F401
