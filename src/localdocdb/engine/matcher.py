"""localdocdb engine layer: query filters compiled once into predicates over documents.

MongoDB's rules, which every operator here follows (reference:
https://www.mongodb.com/docs/manual/reference/operator/query/):
- a field that is an array matches when the whole array or any element satisfies the condition
  (`$size`, `$elemMatch` and `$all`-with-arrays look at the array itself);
- comparisons are type-bracketed: {$gt: 1} only considers numbers, {$gt: "a"} only strings;
- null matches null and missing fields; $ne / $nin / $not match documents lacking the field;
- a field's operator document is recognised by its first key starting with "$".
"""

from __future__ import annotations

import decimal
import math
import operator as arithmetic
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from bson.code import Code
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.regex import Regex

from localdocdb.engine.compare import (
    RANK_NUMBER,
    canonical_type_order,
    is_number,
    number_as_python,
    sort_key,
)
from localdocdb.engine.paths import MISSING, iter_path_values, set_path
from localdocdb.errors import CommandError, bad_value

DocPredicate = Callable[[Mapping[str, Any]], bool]
# A test over every value a path reaches (MISSING included where a branch lacks the field).
ValuesTest = Callable[[list[Any]], bool]
ValueTest = Callable[[Any], bool]
# Evaluates an aggregation expression against a document ($expr); the result's truth is used.
ExprEvaluator = Callable[[Any, Mapping[str, Any]], Any]

# Filters nest $and/$or/$elemMatch; MongoDB caps query depth at 100 levels.
MAX_FILTER_DEPTH: Final = 100
MAX_REGEX_LENGTH: Final = 32_764

_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1

# $type aliases: https://www.mongodb.com/docs/manual/reference/operator/query/type/
TYPE_ALIASES: Final[Mapping[str, int]] = {
    "double": 1,
    "string": 2,
    "object": 3,
    "array": 4,
    "binData": 5,
    "undefined": 6,
    "objectId": 7,
    "bool": 8,
    "date": 9,
    "null": 10,
    "regex": 11,
    "dbPointer": 12,
    "javascript": 13,
    "symbol": 14,
    "javascriptWithScope": 15,
    "int": 16,
    "timestamp": 17,
    "long": 18,
    "decimal": 19,
    "minKey": -1,
    "maxKey": 127,
}
_NUMBER_TYPE_CODES: Final = frozenset({1, 16, 18, 19})
_VALID_TYPE_CODES: Final = frozenset(TYPE_ALIASES.values())
_FAST_EQUALITY_TYPES: Final = (str, int, ObjectId)
_NAN_KEY: Final = sort_key(float("nan"))
_PLAIN_ORDERINGS: Final[Mapping[str, Callable[[Any, Any], bool]]] = {
    "$gt": arithmetic.gt,
    "$gte": arithmetic.ge,
    "$lt": arithmetic.lt,
    "$lte": arithmetic.le,
}
_ORDERINGS: Final[Mapping[str, Callable[[Any, Any], bool]]] = {
    "$gt": lambda key, target: bool(key > target),
    "$gte": lambda key, target: bool(key >= target),
    "$lt": lambda key, target: bool(key < target),
    "$lte": lambda key, target: bool(key <= target),
}


def bson_type_code(value: Any) -> int:
    """The BSON type number of a decoded value, as `$type` reports it."""
    if isinstance(value, bool):
        return 8
    if isinstance(value, Int64):
        return 18
    if isinstance(value, int):
        return 16 if _INT32_MIN <= value <= _INT32_MAX else 18
    if isinstance(value, float):
        return 1
    if isinstance(value, Decimal128):
        return 19
    if isinstance(value, Code):
        return 13 if value.scope is None else 15
    if isinstance(value, str):
        return 2
    if value is None:
        return 10
    if isinstance(value, list):
        return 4
    type_by_rank = {20: 3, 30: 5, 35: 7, 45: 9, 47: 17, 50: 11, -1: -1, 127: 127, 55: 3}
    return type_by_rank.get(canonical_type_order(value), 3)


def compile_regex(pattern: Any, options: Any = None) -> re.Pattern[str]:
    """A Python regex for a MongoDB $regex (string, bson.Regex or re.Pattern) and $options."""
    flags = 0
    if isinstance(pattern, re.Pattern):
        flags = pattern.flags & ~re.UNICODE
        pattern = pattern.pattern
    elif isinstance(pattern, Regex):
        flags = pattern.flags if isinstance(pattern.flags, int) else 0
        pattern = pattern.pattern
    if not isinstance(pattern, str):
        raise bad_value("$regex has to be a string")
    if len(pattern) > MAX_REGEX_LENGTH:
        raise bad_value("Regular expression is too long")
    if options is not None:
        if not isinstance(options, str):
            raise bad_value("$options has to be a string")
        for letter in options:
            if letter == "i":
                flags |= re.IGNORECASE
            elif letter == "m":
                flags |= re.MULTILINE
            elif letter == "s":
                flags |= re.DOTALL
            elif letter == "x":
                flags |= re.VERBOSE
            elif letter != "u":
                raise bad_value(f"invalid flag in regex options: {letter}")
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise CommandError(51091, "Location51091", f"Regular expression is invalid: {exc}") from exc


def _is_regex(value: Any) -> bool:
    return isinstance(value, Regex | re.Pattern)


def _is_operator_document(value: Any) -> bool:
    if not isinstance(value, Mapping) or not value:
        return False
    first = next(iter(value))
    # {$ref, $id} is a DBRef document compared by equality, not an operator.
    return isinstance(first, str) and first.startswith("$") and first != "$ref"


def _any_candidate(values: list[Any], test: ValueTest) -> bool:
    """MongoDB's implicit array rule: the value or, for an array, any of its elements."""
    for value in values:
        if value is MISSING:
            continue
        if test(value):
            return True
        if isinstance(value, list):
            for element in value:
                if test(element):
                    return True
    return False


def _has_missing_or_null(values: list[Any]) -> bool:
    for value in values:
        if value is MISSING or value is None:
            return True
        if isinstance(value, list) and any(element is None for element in value):
            return True
    return False


def _equality_value_test(operand: Any) -> ValueTest:
    kind = type(operand)
    if kind in (str, int, ObjectId):
        rank = canonical_type_order(operand)
        target = sort_key(operand)

        def fast(candidate: Any) -> bool:
            if type(candidate) is kind:
                return bool(candidate == operand)
            return canonical_type_order(candidate) == rank and sort_key(candidate) == target

        return fast
    target_key = sort_key(operand)
    return lambda candidate: bool(sort_key(candidate) == target_key)


def _eq_test(operand: Any) -> ValuesTest:
    if operand is None:
        return _has_missing_or_null
    test = _equality_value_test(operand)
    return lambda values: _any_candidate(values, test)


def _regex_value_test(pattern: re.Pattern[str]) -> ValueTest:
    def test(candidate: Any) -> bool:
        return isinstance(candidate, str) and pattern.search(candidate) is not None

    return test


def _regex_values_test(regex_test: ValueTest) -> ValuesTest:
    return lambda values: _any_candidate(values, regex_test)


def _in_test(operand: Any, operator: str) -> ValuesTest:
    if not isinstance(operand, list):
        raise bad_value(f"{operator} needs an array")
    tests: list[ValueTest] = []
    match_null = False
    # Hashable entries go in sets: Python numbers hash and compare by value across int, float
    # and Decimal, exactly like BSON numbers; strings and ObjectIds only equal their own type.
    numbers: set[Any] = set()
    strings: set[str] = set()
    object_ids: set[ObjectId] = set()
    for entry in operand:
        kind = type(entry)
        if kind is str:
            strings.add(entry)
        elif kind is ObjectId:
            object_ids.add(entry)
        elif is_number(entry) and _is_finite_or_infinite(number_as_python(entry)):
            numbers.add(number_as_python(entry))
        elif _is_regex(entry):
            tests.append(_regex_value_test(compile_regex(entry)))
        elif _is_operator_document(entry):
            raise bad_value(f"cannot nest $ under {operator}")
        else:
            if entry is None:
                match_null = True
            tests.append(_equality_value_test(entry))

    def candidate_test(candidate: Any) -> bool:
        kind = type(candidate)
        if kind is str:
            if candidate in strings:
                return True
        elif kind is ObjectId:
            if candidate in object_ids:
                return True
        elif numbers and is_number(candidate):
            number = number_as_python(candidate)
            if _is_finite_or_infinite(number) and number in numbers:
                return True
        return any(test(candidate) for test in tests)

    def values_test(values: list[Any]) -> bool:
        if match_null and _has_missing_or_null(values):
            return True
        return _any_candidate(values, candidate_test)

    return values_test


def _comparison_test(operator: str, operand: Any) -> ValuesTest:
    if _is_regex(operand) and operator in ("$gt", "$gte", "$lt", "$lte"):
        raise bad_value(f"Can't have RegEx as arg to predicate over field: {operator}")
    if operand is None:
        # {$gte: null} and {$lte: null} are equality with null; $gt/$lt null match nothing.
        if operator in ("$gte", "$lte"):
            return _has_missing_or_null
        return lambda values: False
    rank = canonical_type_order(operand)
    target = sort_key(operand)
    holds = _ORDERINGS[operator]
    # NaN equals NaN but otherwise compares false (MongoDB's ComparisonMatchExpression).
    allows_equal = operator in ("$gte", "$lte")

    plain_number = type(operand) is int or (type(operand) is float and not math.isnan(operand))
    compare_plain = _PLAIN_ORDERINGS[operator]

    def test(candidate: Any) -> bool:
        kind = type(candidate)
        if plain_number and (kind is int or (kind is float and not math.isnan(candidate))):
            return compare_plain(candidate, operand)
        if canonical_type_order(candidate) != rank:
            return False
        key = sort_key(candidate)
        if rank == RANK_NUMBER and (_NAN_KEY in (key, target)):
            return allows_equal and key == target
        return holds(key, target)

    return lambda values: _any_candidate(values, test)


def _type_test(operand: Any) -> ValuesTest:
    entries = operand if isinstance(operand, list) else [operand]
    codes: set[int] = set()
    for entry in entries:
        if isinstance(entry, str):
            if entry == "number":
                codes |= _NUMBER_TYPE_CODES
            elif entry in TYPE_ALIASES:
                codes.add(TYPE_ALIASES[entry])
            else:
                raise bad_value(f"Unknown type name alias: {entry}")
        elif is_number(entry):
            number = number_as_python(entry)
            if number != int(number) or int(number) not in _VALID_TYPE_CODES:
                raise bad_value(f"Invalid numerical type code: {entry}")
            codes.add(int(number))
        else:
            raise type_mismatch_error("type must be represented as a number or a string")
    if not codes:
        raise failed_to_parse_error("$type must match at least one type")

    def test(candidate: Any) -> bool:
        return bson_type_code(candidate) in codes

    return lambda values: _any_candidate(values, test)


def type_mismatch_error(message: str) -> CommandError:
    """Code 14 for a query operand of the wrong type."""
    return CommandError(14, "TypeMismatch", message)


def failed_to_parse_error(message: str) -> CommandError:
    """Code 9 for a malformed query operand."""
    return CommandError(9, "FailedToParse", message)


def _is_finite(number: int | float | decimal.Decimal) -> bool:
    if isinstance(number, int):
        return True
    return number.is_finite() if isinstance(number, decimal.Decimal) else math.isfinite(number)


def _is_finite_or_infinite(number: int | float | decimal.Decimal) -> bool:
    """Not NaN (NaN is matched by the general rules, where it equals itself)."""
    if isinstance(number, int):
        return True
    return not (number.is_nan() if isinstance(number, decimal.Decimal) else math.isnan(number))


def _whole_number(operand: Any, message: str) -> int:
    if not is_number(operand):
        raise bad_value(message)
    number = number_as_python(operand)
    if not _is_finite(number) or number != int(number):
        raise bad_value(message)
    return int(number)


def _size_test(operand: Any) -> ValuesTest:
    size = _whole_number(operand, "$size needs a number")
    if size < 0:
        raise bad_value("$size may not be negative")

    def test(values: list[Any]) -> bool:
        return any(isinstance(value, list) and len(value) == size for value in values)

    return test


def _mod_test(operand: Any) -> ValuesTest:
    if not isinstance(operand, list):
        raise bad_value("malformed mod, needs to be an array")
    if len(operand) < 2:
        raise bad_value("malformed mod, not enough elements")
    if len(operand) > 2:
        raise bad_value("malformed mod, too many elements")
    if not is_number(operand[0]) or not is_number(operand[1]):
        raise bad_value("malformed mod, divisor and remainder must be numbers")
    divisor = int(number_as_python(operand[0]))
    remainder = int(number_as_python(operand[1]))
    if divisor == 0:
        raise bad_value("divisor cannot be 0")

    def test(candidate: Any) -> bool:
        if not is_number(candidate):
            return False
        number = number_as_python(candidate)
        if not _is_finite(number):
            return False
        value = int(number)
        # MongoDB uses C's truncating remainder, not Python's floor modulo.
        truncated = abs(value) % abs(divisor)
        return (truncated if value >= 0 else -truncated) == remainder

    return lambda values: _any_candidate(values, test)


def _exists_test(operand: Any) -> ValuesTest:
    wanted = not (operand is None or operand is False or (is_number(operand) and not operand))

    def test(values: list[Any]) -> bool:
        present = any(value is not MISSING for value in values)
        return present is wanted

    return test


class _Compiler:
    """Turns a filter document into nested closures; one instance per compile_filter call."""

    def __init__(self, expr_evaluator: ExprEvaluator | None) -> None:
        self.expr_evaluator = expr_evaluator

    def compile_document(self, filter_doc: Mapping[str, Any], depth: int) -> DocPredicate:
        """A predicate for a whole filter document (the implicit $and of its fields)."""
        if depth > MAX_FILTER_DEPTH:
            raise bad_value(f"exceeded maximum filter depth of {MAX_FILTER_DEPTH}")
        predicates: list[DocPredicate] = []
        for name, condition in filter_doc.items():
            if not isinstance(name, str):
                raise bad_value("filter field names must be strings")
            if name.startswith("$"):
                predicate = self._compile_top_level(name, condition, depth)
                if predicate is not None:
                    predicates.append(predicate)
            else:
                predicates.append(self.compile_field(name, condition, depth))
        if not predicates:
            return lambda doc: True
        if len(predicates) == 1:
            return predicates[0]
        if len(predicates) == 2:
            first, second = predicates
            return lambda doc: first(doc) and second(doc)
        return lambda doc: all(predicate(doc) for predicate in predicates)

    def _compile_top_level(self, name: str, condition: Any, depth: int) -> DocPredicate | None:
        if name in ("$and", "$or", "$nor"):
            if not isinstance(condition, list) or not condition:
                raise bad_value(f"{name} argument must be a non-empty array")
            members: list[DocPredicate] = []
            for member in condition:
                if not isinstance(member, Mapping):
                    raise bad_value(f"{name} argument's entries must be objects")
                members.append(self.compile_document(member, depth + 1))
            if name == "$and":
                return lambda doc: all(member(doc) for member in members)
            if name == "$or":
                return lambda doc: any(member(doc) for member in members)
            return lambda doc: not any(member(doc) for member in members)
        if name == "$comment":
            return None
        if name == "$expr":
            evaluator = self.expr_evaluator
            if evaluator is None:
                raise bad_value("$expr is not allowed in this context")
            expression = condition
            return lambda doc: expression_truth(evaluator(expression, doc))
        if name == "$where":
            raise bad_value("$where is not supported")
        raise bad_value(f"unknown top level operator: {name}")

    def compile_field(self, path: str, condition: Any, depth: int) -> DocPredicate:
        """A predicate for one `path: condition` pair of a filter."""
        if _is_operator_document(condition):
            test = self.compile_operators(condition, depth)
        elif _is_regex(condition):
            regex_test = _regex_value_test(compile_regex(condition))

            def test(values: list[Any]) -> bool:
                return _any_candidate(values, regex_test)

        else:
            test = _eq_test(condition)
            if "." not in path and type(condition) in _FAST_EQUALITY_TYPES:
                return _fast_equality(path, condition, test)
        if "." not in path:
            return lambda doc: test([doc.get(path, MISSING)])
        parts = path.split(".")
        return lambda doc: test(path_values(doc, parts))

    def compile_operators(self, operators: Mapping[str, Any], depth: int) -> ValuesTest:
        """A test over a path's values for an operator document such as {$gt: 1, $lt: 5}."""
        if depth > MAX_FILTER_DEPTH:
            raise bad_value(f"exceeded maximum filter depth of {MAX_FILTER_DEPTH}")
        tests: list[ValuesTest] = []
        if "$options" in operators and "$regex" not in operators:
            raise bad_value("$options needs a $regex")
        for operator, operand in operators.items():
            if operator == "$options":
                continue
            tests.append(self._compile_operator(operator, operand, operators, depth))
        if len(tests) == 1:
            return tests[0]
        return lambda values: all(test(values) for test in tests)

    def _compile_operator(
        self, operator: str, operand: Any, operators: Mapping[str, Any], depth: int
    ) -> ValuesTest:
        if operator == "$eq":
            return _eq_test(operand)
        if operator == "$ne":
            if _is_regex(operand):
                raise bad_value("Can't have regex as arg to $ne.")
            equal = _eq_test(operand)
            return lambda values: not equal(values)
        if operator in ("$gt", "$gte", "$lt", "$lte"):
            return _comparison_test(operator, operand)
        if operator == "$in":
            return _in_test(operand, "$in")
        if operator == "$nin":
            contained = _in_test(operand, "$nin")
            return lambda values: not contained(values)
        if operator == "$exists":
            return _exists_test(operand)
        if operator == "$type":
            return _type_test(operand)
        if operator == "$regex":
            regex_test = _regex_value_test(compile_regex(operand, operators.get("$options")))
            return lambda values: _any_candidate(values, regex_test)
        if operator == "$size":
            return _size_test(operand)
        if operator == "$mod":
            return _mod_test(operand)
        if operator == "$all":
            return self._all_test(operand, depth)
        if operator == "$elemMatch":
            return self._elem_match_test(operand, depth)
        if operator == "$not":
            return self._not_test(operand, depth)
        if operator == "$comment":
            return lambda values: True
        raise bad_value(f"unknown operator: {operator}")

    def _not_test(self, operand: Any, depth: int) -> ValuesTest:
        if _is_regex(operand):
            regex_test = _regex_value_test(compile_regex(operand))
            return lambda values: not _any_candidate(values, regex_test)
        if not isinstance(operand, Mapping):
            raise bad_value("$not needs a regex or a document")
        if not operand:
            raise bad_value("$not cannot be empty")
        if not _is_operator_document(operand):
            raise bad_value(f"unknown operator: {next(iter(operand))}")
        inner = self.compile_operators(operand, depth + 1)
        return lambda values: not inner(values)

    def _all_test(self, operand: Any, depth: int) -> ValuesTest:
        if not isinstance(operand, list):
            raise bad_value("$all needs an array")
        if not operand:
            return lambda values: False
        tests: list[ValuesTest] = []
        for entry in operand:
            if isinstance(entry, Mapping) and "$elemMatch" in entry:
                if len(entry) != 1:
                    raise bad_value("$all/$elemMatch has to be consistent")
                tests.append(self._elem_match_test(entry["$elemMatch"], depth))
            elif _is_operator_document(entry):
                raise bad_value("no $ expressions in $all")
            elif _is_regex(entry):
                regex_test = _regex_value_test(compile_regex(entry))
                tests.append(_regex_values_test(regex_test))
            else:
                tests.append(_eq_test(entry))
        return lambda values: all(test(values) for test in tests)

    def _elem_match_test(self, operand: Any, depth: int) -> ValuesTest:
        if not isinstance(operand, Mapping):
            raise bad_value("$elemMatch needs an Object")
        if _is_operator_document(operand) and next(iter(operand)) not in (
            "$and",
            "$or",
            "$nor",
            "$expr",
            "$where",
            "$comment",
        ):
            # Operator form: {$elemMatch: {$gte: 80, $lt: 85}} tests each element as a value.
            element_test = self.compile_operators(operand, depth + 1)

            def operator_form(values: list[Any]) -> bool:
                for value in values:
                    if isinstance(value, list):
                        for element in value:
                            if element_test([element]):
                                return True
                return False

            return operator_form
        # Object form: each element that is a document must match the whole sub-filter.
        sub_filter = self.compile_document(operand, depth + 1)

        def object_form(values: list[Any]) -> bool:
            for value in values:
                if isinstance(value, list):
                    for element in value:
                        if isinstance(element, Mapping) and sub_filter(element):
                            return True
            return False

        return object_form


def path_values(doc: Mapping[str, Any], parts: list[str]) -> list[Any]:
    """What a dotted path reaches (MISSING included); plain documents walked without a generator."""
    value: Any = doc
    for index, part in enumerate(parts):
        if type(value) is dict:
            value = value.get(part, MISSING)
            if value is MISSING:
                return [MISSING]
        else:
            return list(iter_path_values(value, parts, index))
    return [value]


def _fast_equality(path: str, operand: Any, slow: ValuesTest) -> DocPredicate:
    """Equality on a top-level field: a type check and == before the general rules."""
    kind = type(operand)

    def predicate(doc: Mapping[str, Any]) -> bool:
        value = doc.get(path, MISSING)
        if type(value) is kind:
            return bool(value == operand)
        if value is MISSING:
            return False
        return slow([value])

    return predicate


def expression_truth(value: Any) -> bool:
    """Aggregation truthiness: false, null, missing and numeric zero are false."""
    if value is None or value is False or value is MISSING:
        return False
    if is_number(value):
        return bool(number_as_python(value) != 0)
    return True


def _collect_equalities(filter_doc: Mapping[str, Any], into: dict[str, Any]) -> None:
    for name, condition in filter_doc.items():
        if name == "$and" and isinstance(condition, list):
            for member in condition:
                if isinstance(member, Mapping):
                    _collect_equalities(member, into)
            continue
        if name.startswith("$"):
            continue
        if _is_operator_document(condition):
            if "$eq" in condition and not _is_regex(condition["$eq"]):
                into.setdefault(name, condition["$eq"])
        elif not _is_regex(condition):
            into.setdefault(name, condition)


class Matcher:
    """A compiled query filter: compile once, then test many documents."""

    __slots__ = ("_equalities", "_predicate", "filter")

    def __init__(self, filter_doc: Mapping[str, Any], predicate: DocPredicate) -> None:
        self.filter = filter_doc
        self._predicate = predicate
        equalities: dict[str, Any] = {}
        _collect_equalities(filter_doc, equalities)
        self._equalities = equalities

    def matches(self, doc: Mapping[str, Any]) -> bool:
        """Whether the document satisfies the filter."""
        return self._predicate(doc)

    def equality_fields(self) -> dict[str, Any]:
        """Top-level {path: value} equality conditions, for upsert seeds and index lookups."""
        return dict(self._equalities)


def compile_filter(
    filter_doc: Mapping[str, Any] | None, *, expr_evaluator: ExprEvaluator | None = None
) -> Matcher:
    """Compile a MongoDB filter document; raises CommandError for a malformed filter."""
    if filter_doc is None:
        filter_doc = {}
    if not isinstance(filter_doc, Mapping):
        raise type_mismatch_error("filter must be an object")
    predicate = _Compiler(expr_evaluator).compile_document(filter_doc, 0)
    return Matcher(filter_doc, predicate)


def compile_value_test(
    condition: Any, *, expr_evaluator: ExprEvaluator | None = None
) -> Callable[[Any], bool]:
    """A test of one value against a condition ($pull, arrayFilters): operators or equality."""
    compiler = _Compiler(expr_evaluator)
    if _is_operator_document(condition):
        test = compiler.compile_operators(condition, 0)
    elif _is_regex(condition):
        regex_test = _regex_value_test(compile_regex(condition))
        return lambda value: _any_candidate([value], regex_test)
    else:
        test = _eq_test(condition)
    return lambda value: test([value])


def query_conditions_on(query: Mapping[str, Any], field: str) -> dict[str, Any]:
    """The parts of a query that constrain `field` or its sub-paths (for the positional `$`)."""
    found: dict[str, Any] = {}
    for name, condition in query.items():
        if name == "$and" and isinstance(condition, list):
            for member in condition:
                if isinstance(member, Mapping):
                    for key, value in query_conditions_on(member, field).items():
                        found.setdefault(key, value)
        elif name == field or name.startswith(field + "."):
            found[name] = condition
    return found


def first_matching_element(matcher: Matcher, field: str, array: list[Any]) -> int | None:
    """Index of the first array element for which `matcher` holds with `field` set to [element]."""
    for index, element in enumerate(array):
        probe: dict[str, Any] = {}
        set_path(probe, field, [element])
        if matcher.matches(probe):
            return index
    return None
