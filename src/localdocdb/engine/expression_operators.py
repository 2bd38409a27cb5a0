"""Aggregation expression operators, registered into `expressions.OPERATORS` (engine layer).

Pure code, one function per operator family, following
https://www.mongodb.com/docs/manual/reference/operator/aggregation/. Each takes the
raw argument, the current document and the variables, and evaluates its own
arguments (so `$cond` and `$and` can short-circuit).
"""

from __future__ import annotations

import datetime
import decimal
import math
from collections.abc import Callable, Mapping
from typing import Any

from bson import Decimal128, Int64, ObjectId

from localdocdb.engine.compare import compare_values, values_equal
from localdocdb.engine.expressions import (
    ABSENT,
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    MAX_RANGE_LENGTH,
    OPERATORS,
    Operator,
    bson_type_name,
    conversion_error,
    evaluate,
    evaluate_arguments,
    expression_operator,
    failed_to_parse_expression,
    fixed_arguments,
    from_python_number,
    is_nullish,
    is_number,
    present,
    to_double,
    to_integer,
    to_python_number,
    to_string,
    truthy,
    type_error,
)
from localdocdb.errors import CommandError, bad_value

# literals and variables


@expression_operator("$literal")
def _literal(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    return argument


@expression_operator("$let")
def _let(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    if not isinstance(argument, Mapping) or "vars" not in argument or "in" not in argument:
        raise failed_to_parse_expression("$let requires 'vars' and 'in'")
    bound = dict(variables)
    for name, sub in dict(argument["vars"]).items():
        bound[name] = evaluate(sub, document, variables)
    return evaluate(argument["in"], document, bound)


# arithmetic


def _numeric_args(name: str, values: list[Any]) -> list[int | float | decimal.Decimal] | None:
    """Python numbers for the values, or None if any is null/missing."""
    if any(is_nullish(v) for v in values):
        return None
    numbers: list[int | float | decimal.Decimal] = []
    for value in values:
        if not is_number(value):
            raise type_error("numeric types", value, name)
        numbers.append(to_python_number(value))
    if any(isinstance(n, decimal.Decimal) for n in numbers):
        return [n if isinstance(n, decimal.Decimal) else decimal.Decimal(n) for n in numbers]
    return numbers


def _longish(values: list[Any]) -> bool:
    return any(isinstance(v, Int64) for v in values)


@expression_operator("$add")
def _add(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    values = evaluate_arguments(argument, document, variables)
    dates = [v for v in values if isinstance(v, datetime.datetime)]
    if dates:
        if len(dates) > 1:
            raise bad_value("only one date allowed in an $add expression")
        rest = _numeric_args("$add", [v for v in values if not isinstance(v, datetime.datetime)])
        if rest is None:
            return None
        return dates[0] + datetime.timedelta(milliseconds=float(sum(rest)))
    numbers = _numeric_args("$add", values)
    if numbers is None:
        return None
    total: Any = sum(numbers, start=0)
    return from_python_number(total, _longish(values))


@expression_operator("$subtract")
def _subtract(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    left, right = fixed_arguments("$subtract", argument, document, variables, 2)
    if is_nullish(left) or is_nullish(right):
        return None
    if isinstance(left, datetime.datetime):
        if isinstance(right, datetime.datetime):
            return Int64(int((left - right).total_seconds() * 1000))
        numbers = _numeric_args("$subtract", [right])
        assert numbers is not None
        return left - datetime.timedelta(milliseconds=float(numbers[0]))
    numbers = _numeric_args("$subtract", [left, right])
    assert numbers is not None
    first: Any = numbers[0]
    difference: Any = first - numbers[1]  # same kind: _numeric_args unifies decimals
    return from_python_number(difference, _longish([left, right]))


@expression_operator("$multiply")
def _multiply(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    values = evaluate_arguments(argument, document, variables)
    numbers = _numeric_args("$multiply", values)
    if numbers is None:
        return None
    product: Any = 1
    for number in numbers:
        product = product * number
    return from_python_number(product, _longish(values))


@expression_operator("$divide")
def _divide(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    values = fixed_arguments("$divide", argument, document, variables, 2)
    numbers = _numeric_args("$divide", values)
    if numbers is None:
        return None
    if numbers[1] == 0:
        raise CommandError(2, "BadValue", "can't $divide by zero")
    if isinstance(numbers[0], decimal.Decimal):
        return Decimal128(numbers[0] / decimal.Decimal(numbers[1]))
    return float(numbers[0]) / float(numbers[1])


@expression_operator("$mod")
def _mod(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    values = fixed_arguments("$mod", argument, document, variables, 2)
    numbers = _numeric_args("$mod", values)
    if numbers is None:
        return None
    if numbers[1] == 0:
        raise CommandError(16610, "Location16610", "can't $mod by zero")
    dividend, divisor = numbers
    result: Any = (
        math.fmod(float(dividend), float(divisor))
        if isinstance(dividend, float) or isinstance(divisor, float)
        else int(math.copysign(abs(int(dividend)) % abs(int(divisor)), int(dividend)))
    )
    return from_python_number(result, _longish(values))


@expression_operator("$abs")
def _abs(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    (value,) = fixed_arguments("$abs", argument, document, variables, 1)
    numbers = _numeric_args("$abs", [value])
    if numbers is None:
        return None
    magnitude: Any = abs(numbers[0])
    return from_python_number(magnitude, _longish([value]))


def _rounding(name: str, function: Callable[[float], int]) -> None:
    def rounding(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
        (value,) = fixed_arguments(name, argument, document, variables, 1)
        numbers = _numeric_args(name, [value])
        if numbers is None:
            return None
        if isinstance(value, float):
            return float(function(value)) if math.isfinite(value) else value
        if isinstance(value, Decimal128):
            return Decimal128(decimal.Decimal(function(float(numbers[0]))))
        return value

    OPERATORS[name] = rounding


_rounding("$ceil", math.ceil)
_rounding("$floor", math.floor)


# comparison


def _comparison(name: str, test: Callable[[int], bool]) -> Operator:
    def compare(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
        left, right = (present(v) for v in fixed_arguments(name, argument, document, variables, 2))
        if name == "$eq":
            return values_equal(left, right)
        if name == "$ne":
            return not values_equal(left, right)
        return test(compare_values(left, right))

    OPERATORS[name] = compare
    return compare


_comparison("$eq", lambda c: c == 0)
_comparison("$ne", lambda c: c != 0)
_comparison("$gt", lambda c: c > 0)
_comparison("$gte", lambda c: c >= 0)
_comparison("$lt", lambda c: c < 0)
_comparison("$lte", lambda c: c <= 0)


@expression_operator("$cmp")
def _cmp(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    left, right = (present(v) for v in fixed_arguments("$cmp", argument, document, variables, 2))
    return compare_values(left, right)


# boolean and conditional


@expression_operator("$and")
def _and(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    items = argument if isinstance(argument, list) else [argument]
    return all(truthy(evaluate(item, document, variables)) for item in items)


@expression_operator("$or")
def _or(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    items = argument if isinstance(argument, list) else [argument]
    return any(truthy(evaluate(item, document, variables)) for item in items)


@expression_operator("$not")
def _not(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    (value,) = fixed_arguments("$not", argument, document, variables, 1)
    return not truthy(value)


@expression_operator("$cond")
def _cond(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(argument, Mapping):
        missing = {"if", "then", "else"} - set(argument)
        if missing:
            raise failed_to_parse_expression(f"Missing '{sorted(missing)[0]}' parameter to $cond")
        condition, then, otherwise = argument["if"], argument["then"], argument["else"]
    elif isinstance(argument, list) and len(argument) == 3:
        condition, then, otherwise = argument
    else:
        raise CommandError(16020, "Location16020", "Expression $cond takes exactly 3 arguments.")
    chosen = then if truthy(evaluate(condition, document, variables)) else otherwise
    return evaluate(chosen, document, variables)


@expression_operator("$ifNull")
def _if_null(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    items = argument if isinstance(argument, list) else [argument]
    if len(items) < 2:
        raise failed_to_parse_expression("$ifNull needs at least two arguments")
    for item in items[:-1]:
        value = evaluate(item, document, variables)
        if not is_nullish(value):
            return value
    return evaluate(items[-1], document, variables)


@expression_operator("$switch")
def _switch(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    if not isinstance(argument, Mapping) or not isinstance(argument.get("branches"), list):
        raise failed_to_parse_expression("$switch requires an array of 'branches'")
    for branch in argument["branches"]:
        if truthy(evaluate(branch.get("case"), document, variables)):
            return evaluate(branch.get("then"), document, variables)
    if "default" not in argument:
        raise CommandError(
            40066,
            "Location40066",
            "$switch could not find a matching branch for an input, and no default was specified.",
        )
    return evaluate(argument["default"], document, variables)


# arrays


def _array_arg(name: str, value: Any) -> list[Any] | None:
    if is_nullish(value):
        return None
    if not isinstance(value, list):
        raise type_error("arrays", value, name)
    return value


@expression_operator("$in")
def _in(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    needle, haystack = fixed_arguments("$in", argument, document, variables, 2)
    if not isinstance(haystack, list):
        raise CommandError(
            40081,
            "Location40081",
            f"$in requires an array as a second argument, found: {bson_type_name(haystack)}",
        )
    needle = present(needle)
    return any(values_equal(needle, item) for item in haystack)


@expression_operator("$size")
def _size(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    (value,) = fixed_arguments("$size", argument, document, variables, 1)
    if not isinstance(value, list):
        raise CommandError(
            17124,
            "Location17124",
            f"The argument to $size must be an array. Type of argument: {bson_type_name(value)}",
        )
    return len(value)


@expression_operator("$isArray")
def _is_array(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    (value,) = fixed_arguments("$isArray", argument, document, variables, 1)
    return isinstance(value, list)


@expression_operator("$arrayElemAt")
def _array_elem_at(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    array_value, index = fixed_arguments("$arrayElemAt", argument, document, variables, 2)
    array = _array_arg("$arrayElemAt", array_value)
    if array is None or is_nullish(index):
        return None
    if not is_number(index):
        raise type_error("a numeric index", index, "$arrayElemAt")
    position = int(to_python_number(index))
    if -len(array) <= position < len(array):
        return array[position]
    return ABSENT


def _edge(name: str, pick_first: bool) -> None:
    def edge(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
        (value,) = fixed_arguments(name, argument, document, variables, 1)
        array = _array_arg(name, value)
        if array is None:
            return None
        if not array:
            return ABSENT
        return array[0] if pick_first else array[-1]

    OPERATORS[name] = edge


_edge("$first", True)
_edge("$last", False)


@expression_operator("$concatArrays")
def _concat_arrays(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    out: list[Any] = []
    for value in evaluate_arguments(argument, document, variables):
        array = _array_arg("$concatArrays", value)
        if array is None:
            return None
        out.extend(array)
    return out


@expression_operator("$reverseArray")
def _reverse_array(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    (value,) = fixed_arguments("$reverseArray", argument, document, variables, 1)
    array = _array_arg("$reverseArray", value)
    return None if array is None else list(reversed(array))


def _bind_each(
    name: str, argument: Any, document: Any, variables: Mapping[str, Any], body_key: str
) -> tuple[list[Any] | None, str, Any]:
    if not isinstance(argument, Mapping) or "input" not in argument or body_key not in argument:
        raise failed_to_parse_expression(f"{name} requires 'input' and '{body_key}'")
    array = _array_arg(name, evaluate(argument["input"], document, variables))
    return array, str(argument.get("as", "this")), argument[body_key]


@expression_operator("$map")
def _map(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    array, name, body = _bind_each("$map", argument, document, variables, "in")
    if array is None:
        return None
    out = []
    for item in array:
        bound = {**variables, name: item}
        out.append(present(evaluate(body, document, bound)))
    return out


@expression_operator("$filter")
def _filter(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    array, name, body = _bind_each("$filter", argument, document, variables, "cond")
    if array is None:
        return None
    limit = evaluate(argument.get("limit"), document, variables) if "limit" in argument else None
    out = []
    for item in array:
        if truthy(evaluate(body, document, {**variables, name: item})):
            out.append(item)
            if limit is not None and len(out) >= int(limit):
                break
    return out


@expression_operator("$reduce")
def _reduce(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    if not isinstance(argument, Mapping) or not {"input", "initialValue", "in"} <= set(argument):
        raise failed_to_parse_expression("$reduce requires 'input', 'initialValue' and 'in'")
    array = _array_arg("$reduce", evaluate(argument["input"], document, variables))
    if array is None:
        return None
    value = evaluate(argument["initialValue"], document, variables)
    for item in array:
        value = evaluate(argument["in"], document, {**variables, "value": value, "this": item})
    return value


@expression_operator("$range")
def _range(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    values = evaluate_arguments(argument, document, variables)
    if len(values) not in (2, 3) or not all(is_number(v) for v in values):
        raise failed_to_parse_expression("$range requires numeric start, end and optional step")
    start, end = int(values[0]), int(values[1])
    step = int(values[2]) if len(values) == 3 else 1
    if step == 0:
        raise CommandError(34449, "Location34449", "$range requires a non-zero step value")
    if abs(end - start) // abs(step) > MAX_RANGE_LENGTH:
        raise bad_value("$range would produce too many elements")
    return list(range(start, end, step))


# strings


def _string_arg(name: str, value: Any) -> str:
    if is_nullish(value):
        return ""
    if isinstance(value, str):
        return value
    if is_number(value) or isinstance(value, datetime.datetime):
        return str(to_string(value))
    raise type_error("strings", value, name)


@expression_operator("$concat")
def _concat(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    parts = []
    for value in evaluate_arguments(argument, document, variables):
        if is_nullish(value):
            return None
        if not isinstance(value, str):
            raise CommandError(
                16702,
                "Location16702",
                f"$concat only supports strings, not {bson_type_name(value)}",
            )
        parts.append(value)
    return "".join(parts)


@expression_operator("$toUpper")
def _to_upper(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    (value,) = fixed_arguments("$toUpper", argument, document, variables, 1)
    return _string_arg("$toUpper", value).upper()


@expression_operator("$toLower")
def _to_lower(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    (value,) = fixed_arguments("$toLower", argument, document, variables, 1)
    return _string_arg("$toLower", value).lower()


@expression_operator("$substr", "$substrCP")
def _substr_cp(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    value, start, length = fixed_arguments("$substrCP", argument, document, variables, 3)
    text = _string_arg("$substrCP", value)
    if not is_number(start) or not is_number(length):
        raise type_error("numeric start and length", start, "$substrCP")
    begin = max(int(to_python_number(start)), 0)
    count = int(to_python_number(length))
    return text[begin:] if count < 0 else text[begin : begin + count]


@expression_operator("$substrBytes")
def _substr_bytes(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    value, start, length = fixed_arguments("$substrBytes", argument, document, variables, 3)
    data = _string_arg("$substrBytes", value).encode()
    begin, count = int(to_python_number(start)), int(to_python_number(length))
    chunk = data[begin:] if count < 0 else data[begin : begin + count]
    try:
        return chunk.decode()
    except UnicodeDecodeError:
        raise CommandError(
            28656,
            "Location28656",
            "$substrBytes: Invalid range, ending index is in the middle of a UTF-8 character.",
        ) from None


@expression_operator("$strLenCP")
def _str_len_cp(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    (value,) = fixed_arguments("$strLenCP", argument, document, variables, 1)
    if not isinstance(value, str):
        raise CommandError(
            34471,
            "Location34471",
            f"$strLenCP requires a string argument, found: {bson_type_name(value)}",
        )
    return len(value)


@expression_operator("$strLenBytes")
def _str_len_bytes(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    (value,) = fixed_arguments("$strLenBytes", argument, document, variables, 1)
    if not isinstance(value, str):
        raise CommandError(
            34473,
            "Location34473",
            f"$strLenBytes requires a string argument, found: {bson_type_name(value)}",
        )
    return len(value.encode())


@expression_operator("$split")
def _split(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    value, separator = fixed_arguments("$split", argument, document, variables, 2)
    if is_nullish(value):
        return None
    if not isinstance(value, str) or not isinstance(separator, str) or not separator:
        raise type_error("a string and a non-empty string separator", value, "$split")
    return value.split(separator)


# types and conversions


@expression_operator("$type")
def _type(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    (value,) = fixed_arguments("$type", argument, document, variables, 1)
    return bson_type_name(value)


@expression_operator("$toString")
def _to_string(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    (value,) = fixed_arguments("$toString", argument, document, variables, 1)
    return to_string(value)


@expression_operator("$toInt")
def _to_int(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    (value,) = fixed_arguments("$toInt", argument, document, variables, 1)
    return to_integer(value, "int", INT32_MIN, INT32_MAX)


@expression_operator("$toLong")
def _to_long(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    (value,) = fixed_arguments("$toLong", argument, document, variables, 1)
    return to_integer(value, "long", INT64_MIN, INT64_MAX)


@expression_operator("$toDouble")
def _to_double(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    (value,) = fixed_arguments("$toDouble", argument, document, variables, 1)
    return to_double(value)


@expression_operator("$toBool")
def _to_bool(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    (value,) = fixed_arguments("$toBool", argument, document, variables, 1)
    return None if is_nullish(value) else truthy(value)


@expression_operator("$toObjectId")
def _to_object_id(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    (value,) = fixed_arguments("$toObjectId", argument, document, variables, 1)
    if is_nullish(value):
        return None
    if isinstance(value, ObjectId):
        return value
    if isinstance(value, str) and ObjectId.is_valid(value):
        return ObjectId(value)
    raise conversion_error(f"Failed to parse objectId '{value}' in $convert with no onError value")


# numeric reductions over arrays or argument lists


def _reduction_values(argument: Any, document: Any, variables: Mapping[str, Any]) -> list[Any]:
    values = evaluate_arguments(argument, document, variables)
    if len(values) == 1 and isinstance(values[0], list):
        return list(values[0])
    return values


@expression_operator("$sum")
def _sum(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    values = [v for v in _reduction_values(argument, document, variables) if is_number(v)]
    numbers = _numeric_args("$sum", values) or []
    return from_python_number(sum(numbers, start=0), _longish(values))


@expression_operator("$avg")
def _avg(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    values = [v for v in _reduction_values(argument, document, variables) if is_number(v)]
    numbers = _numeric_args("$avg", values) or []
    if not numbers:
        return None
    total: Any = sum(numbers, start=0)
    if isinstance(total, decimal.Decimal):
        return Decimal128(total / len(numbers))
    return float(total) / len(numbers)


@expression_operator("$max")
def _max(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    values = [v for v in _reduction_values(argument, document, variables) if not is_nullish(v)]
    best: Any = None
    for value in values:
        if best is None or compare_values(value, best) > 0:
            best = value
    return best


@expression_operator("$min")
def _min(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    values = [v for v in _reduction_values(argument, document, variables) if not is_nullish(v)]
    best: Any = None
    for value in values:
        if best is None or compare_values(value, best) < 0:
            best = value
    return best


# documents


@expression_operator("$mergeObjects")
def _merge_objects(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    out: dict[str, Any] = {}
    for value in evaluate_arguments(argument, document, variables):
        if is_nullish(value):
            continue
        if not isinstance(value, Mapping):
            raise CommandError(
                40400,
                "Location40400",
                "$mergeObjects requires object inputs, but input is of type "
                f"{bson_type_name(value)}",
            )
        out.update(value)
    return out


@expression_operator("$objectToArray")
def _object_to_array(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    (value,) = fixed_arguments("$objectToArray", argument, document, variables, 1)
    if is_nullish(value):
        return None
    if not isinstance(value, Mapping):
        raise type_error("objects", value, "$objectToArray")
    return [{"k": key, "v": item} for key, item in value.items()]


@expression_operator("$arrayToObject")
def _array_to_object(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    (value,) = fixed_arguments("$arrayToObject", argument, document, variables, 1)
    array = _array_arg("$arrayToObject", value)
    if array is None:
        return None
    out: dict[str, Any] = {}
    for item in array:
        if isinstance(item, Mapping) and set(item) == {"k", "v"} and isinstance(item["k"], str):
            out[item["k"]] = item["v"]
        elif isinstance(item, list) and len(item) == 2 and isinstance(item[0], str):
            out[item[0]] = item[1]
        else:
            raise bad_value("$arrayToObject requires [k, v] pairs or {k, v} documents")
    return out


@expression_operator("$getField")
def _get_field(argument: Any, document: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(argument, Mapping):
        name = evaluate(argument.get("field"), document, variables)
        source = evaluate(argument.get("input", "$$CURRENT"), document, variables)
    else:
        name, source = evaluate(argument, document, variables), variables.get("CURRENT", document)
    if not isinstance(source, Mapping):
        return ABSENT if is_nullish(source) else None
    return source.get(str(name), ABSENT)
