"""localdocdb engine layer: update documents applied to a document, returning a new one.

Semantics follow https://www.mongodb.com/docs/manual/reference/operator/update/ :
- an update is either operators ({$set: ...}), a replacement document, or a pipeline (a list,
  evaluated by the aggregation layer, not here);
- two operators may not touch the same path or a path and its prefix (code 40);
- `_id` never changes (code 66);
- since MongoDB 5.0 fields are processed in lexicographic order (numeric names in numeric
  order), existing fields keep their place and new fields are appended.

The input document is never mutated. Containers on the written paths are copied (copy on
write); untouched sub-documents are shared between input and result, so callers must treat
stored documents as immutable values.
"""

from __future__ import annotations

import datetime
import decimal
import itertools
import operator as arithmetic
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from bson.decimal128 import Decimal128, create_decimal128_context
from bson.int64 import Int64
from bson.regex import Regex
from bson.timestamp import Timestamp

from localdocdb.engine.compare import (
    compare_values,
    is_number,
    number_as_python,
    sort_key,
    values_equal,
)
from localdocdb.engine.matcher import (
    TYPE_ALIASES,
    Matcher,
    bson_type_code,
    compile_filter,
    compile_value_test,
    first_matching_element,
    query_conditions_on,
)
from localdocdb.engine.paths import (
    MISSING,
    array_index,
    get_path,
    path_not_viable,
    set_path,
    unset_path,
)
from localdocdb.engine.sort import Descending, compile_sort
from localdocdb.errors import CommandError, bad_value, failed_to_parse, type_mismatch


class UpdateKind(Enum):
    """The three shapes an update specification can take."""

    OPERATORS = "operators"
    REPLACEMENT = "replacement"
    PIPELINE = "pipeline"


# fmt: off
UPDATE_OPERATORS: Final = frozenset({
    "$set", "$unset", "$inc", "$mul", "$min", "$max", "$rename", "$setOnInsert",
    "$currentDate", "$push", "$addToSet", "$pop", "$pull", "$pullAll",
})
# fmt: on
_PUSH_MODIFIERS: Final = frozenset({"$each", "$slice", "$sort", "$position"})
_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_DECIMAL_CONTEXT: Final = create_decimal128_context()
_IDENTIFIER: Final = re.compile(r"[a-z][a-zA-Z0-9]*\Z")
MAX_UPDATE_PATHS: Final = 100_000
_TYPE_NAMES: Final = {code: name for name, code in TYPE_ALIASES.items()}


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(bson_type_code(value), "unknown")


def immutable_id_error() -> CommandError:
    """Code 66: an update would change `_id`."""
    return CommandError(
        66,
        "ImmutableField",
        "Performing an update on the path '_id' would modify the immutable field '_id'",
    )


def classify_update(update: Mapping[str, Any] | list[Any]) -> UpdateKind:
    """Whether an update is operators, a replacement document or an aggregation pipeline."""
    if isinstance(update, list):
        return UpdateKind.PIPELINE
    if not isinstance(update, Mapping):
        raise failed_to_parse("Update argument must be either an object or an array")
    for name in update:
        return UpdateKind.OPERATORS if str(name).startswith("$") else UpdateKind.REPLACEMENT
    return UpdateKind.REPLACEMENT


def validate_replacement(doc: Mapping[str, Any]) -> None:
    """A replacement (or inserted) document may not have $-prefixed top-level field names."""
    for name in doc:
        if not isinstance(name, str):
            raise bad_value("field names must be strings")
        if name.startswith("$"):
            raise CommandError(
                52,
                "DollarPrefixedFieldName",
                f"The dollar ($) prefixed field '{name}' in '{name}' is not allowed in the "
                "context of an update's replacement document.",
            )


def copy_value(value: Any) -> Any:
    """A copy of a value's documents and arrays (scalars are immutable and shared)."""
    if isinstance(value, Mapping):
        return {name: copy_value(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [copy_value(item) for item in value]
    return value


def _same_id(before: Any, after: Any) -> bool:
    return type(before) is type(after) and values_equal(before, after)


def _apply_replacement(doc: Mapping[str, Any], replacement: Mapping[str, Any]) -> dict[str, Any]:
    validate_replacement(replacement)
    result: dict[str, Any] = {}
    if "_id" in doc:
        if "_id" in replacement and not _same_id(doc["_id"], replacement["_id"]):
            raise CommandError(
                66,
                "ImmutableField",
                "After applying the update, the (immutable) field '_id' was found to have "
                f"been altered to _id: {replacement['_id']!r}",
            )
        result["_id"] = doc["_id"]
    elif "_id" in replacement:
        result["_id"] = copy_value(replacement["_id"])
    for name, value in replacement.items():
        if name != "_id":
            result[name] = copy_value(value)
    return result


def _path_order(path: str) -> tuple[tuple[int, int, str], ...]:
    # MongoDB 5.0+: fields processed lexicographically, numeric field names numerically.
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.split("."))


def _validate_path(path: str) -> None:
    if not path:
        raise CommandError(56, "EmptyFieldName", "An empty update path is not valid.")
    if "" in path.split("."):
        raise CommandError(
            56,
            "EmptyFieldName",
            f"The update path '{path}' contains an empty field name, which is not allowed.",
        )


def _check_conflicts(paths: list[str]) -> None:
    ordered = sorted(paths, key=lambda path: path.split("."))
    for earlier, later in itertools.pairwise(ordered):
        earlier_parts = earlier.split(".")
        if later.split(".")[: len(earlier_parts)] == earlier_parts:
            raise CommandError(
                40,
                "ConflictingUpdateOperators",
                f"Updating the path '{later}' would create a conflict at '{earlier}'",
            )


class _Writer:
    """Copy-on-write access to the new document: containers on written paths are copied once."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.root: dict[str, Any] = dict(doc)
        self._owned: set[int] = {id(self.root)}
        self._keep: list[Any] = [self.root]

    def own(self, path: str, *, include_leaf: bool) -> None:
        """Copy every existing container along a path so that writing there is safe."""
        parts = path.split(".")
        if not include_leaf:
            parts = parts[:-1]
        container: Any = self.root
        for part in parts:
            if isinstance(container, dict):
                child = container.get(part, MISSING)
                slot: Any = part
            elif isinstance(container, list):
                index = array_index(part)
                if index is None or index >= len(container):
                    return
                child = container[index]
                slot = index
            else:
                return
            if isinstance(child, Mapping | list) and id(child) not in self._owned:
                child = dict(child) if isinstance(child, Mapping) else list(child)
                container[slot] = child
                self._owned.add(id(child))
                self._keep.append(child)
            elif not isinstance(child, Mapping | list):
                return
            container = child

    def get(self, path: str) -> Any:
        """The current value at a concrete path (MISSING when absent)."""
        return get_path(self.root, path)

    def set(self, path: str, value: Any) -> None:
        """Write a value at a concrete path."""
        self.own(path, include_leaf=False)
        set_path(self.root, path, value)

    def unset(self, path: str) -> None:
        """Remove the field at a concrete path."""
        self.own(path, include_leaf=False)
        unset_path(self.root, path)

    def array_for_write(self, path: str) -> Any:
        """The value at a path, with a list there copied so it can be changed in place."""
        self.own(path, include_leaf=True)
        return get_path(self.root, path)


class _ArrayFilters:
    """Compiled arrayFilters: identifier -> matcher over {identifier: element}."""

    def __init__(self, array_filters: Sequence[Mapping[str, Any]] | None) -> None:
        self.matchers: dict[str, Matcher] = {}
        for array_filter in array_filters or []:
            if not isinstance(array_filter, Mapping) or not array_filter:
                raise failed_to_parse("Cannot use an expression without a top-level field name")
            identifiers = {str(name).split(".")[0] for name in array_filter}
            if len(identifiers) != 1:
                found = sorted(identifiers)
                raise failed_to_parse(
                    "Error parsing array filter :: caused by :: Expected a single top-level "
                    f"field name, found '{found[0]}' and '{found[1]}'"
                )
            identifier = identifiers.pop()
            if not _IDENTIFIER.match(identifier):
                raise bad_value(
                    "Error parsing array filter :: caused by :: The top-level field name must "
                    f"be an alphanumeric string beginning with a lowercase letter, found "
                    f"'{identifier}'"
                )
            if identifier in self.matchers:
                raise failed_to_parse(
                    f"Found multiple array filters with the same top-level field name {identifier}"
                )
            self.matchers[identifier] = compile_filter(array_filter)

    def check_paths(self, paths: list[str]) -> None:
        """Every `$[id]` needs a filter and every filter must be used (checked before applying)."""
        used: set[str] = set()
        for path in paths:
            for part in path.split("."):
                if part.startswith("$[") and part.endswith("]") and len(part) > 3:
                    identifier = part[2:-1]
                    if identifier not in self.matchers:
                        raise bad_value(
                            f"No array filter found for identifier '{identifier}' in path '{path}'"
                        )
                    used.add(identifier)
        for identifier in self.matchers:
            if identifier not in used:
                raise failed_to_parse(
                    f"The array filter for identifier '{identifier}' was not used in the update."
                )

    def element_matches(self, identifier: str, element: Any) -> bool:
        """Whether an array element is selected by `$[identifier]`."""
        return self.matchers[identifier].matches({identifier: element})


class _Positional:
    """The positional `$`: the first element of an array that the update's query matched."""

    def __init__(self, query: Mapping[str, Any] | None) -> None:
        self.query = query
        self._matchers: dict[str, Matcher | None] = {}

    def index(self, doc: Mapping[str, Any], array_path: str, array: list[Any]) -> int:
        """The index `$` stands for in this document, or an error as MongoDB gives."""
        if array_path not in self._matchers:
            conditions = query_conditions_on(self.query or {}, array_path)
            self._matchers[array_path] = compile_filter(conditions) if conditions else None
        matcher = self._matchers[array_path]
        if matcher is not None:
            found = first_matching_element(matcher, array_path, array)
            if found is not None:
                return found
        raise bad_value("The positional operator did not find the match needed from the query.")


def _expand_path(
    writer: _Writer,
    path: str,
    filters: _ArrayFilters,
    positional: _Positional,
    *,
    is_insert: bool,
) -> list[str]:
    """Concrete paths for a path with `$`, `$[]` or `$[id]` placeholders."""
    if "$" not in path:
        return [path]
    parts = path.split(".")
    results: list[list[str]] = [[]]
    original_prefix: list[str] = []
    for part in parts:
        if part == "$":
            concrete: list[list[str]] = []
            for prefix in results:
                array = writer.get(".".join(prefix))
                if not isinstance(array, list):
                    raise bad_value(
                        "The positional operator did not find the match needed from the query."
                    )
                index = positional.index(writer.root, ".".join(original_prefix), array)
                concrete.append([*prefix, str(index)])
            results = concrete
        elif part.startswith("$[") and part.endswith("]"):
            identifier = part[2:-1]
            expanded: list[list[str]] = []
            for prefix in results:
                array = writer.get(".".join(prefix))
                if not isinstance(array, list):
                    if is_insert and array is MISSING:
                        continue
                    raise bad_value(
                        f"The path '{'.'.join(prefix)}' must exist in the document in order to "
                        "apply array updates."
                    )
                for index, element in enumerate(array):
                    if identifier and not filters.element_matches(identifier, element):
                        continue
                    expanded.append([*prefix, str(index)])
            results = expanded
        else:
            for prefix in results:
                prefix.append(part)
        original_prefix.append(part)
    return [".".join(prefix) for prefix in results]


def _arithmetic(current: Any, operand: Any, operation: Callable[[Any, Any], Any], name: str) -> Any:
    """$inc / $mul with MongoDB's type promotion: int32 -> int64 -> double; decimal wins."""
    if isinstance(current, Decimal128) or isinstance(operand, Decimal128):
        left = decimal.Decimal(number_as_python(current))
        right = decimal.Decimal(number_as_python(operand))
        with decimal.localcontext(_DECIMAL_CONTEXT):
            return Decimal128(operation(left, right))
    if isinstance(current, float) or isinstance(operand, float):
        return float(operation(float(current), float(operand)))
    result = int(operation(int(current), int(operand)))
    if (
        isinstance(current, Int64)
        or isinstance(operand, Int64)
        or not (_INT32_MIN <= result <= _INT32_MAX)
    ):
        if not _INT64_MIN <= result <= _INT64_MAX:
            raise bad_value(
                f"Failed to apply {name} operations to current value ({current!r}): "
                "integer overflow"
            )
        return Int64(result)
    return result


def _numeric_update(writer: _Writer, path: str, operand: Any, name: str, doc_id: Any) -> None:
    current = writer.get(path)
    if current is MISSING:
        if name == "$inc":
            writer.set(path, operand)
        else:
            zero: Any = Decimal128("0") if isinstance(operand, Decimal128) else type(operand)(0)
            writer.set(path, zero)
        return
    if not is_number(current):
        raise type_mismatch(
            f"Cannot apply {name} to a value of non-numeric type. {{_id: {doc_id!r}}} has the "
            f"field '{path.rsplit('.', maxsplit=1)[-1]}' of non-numeric type {_type_name(current)}"
        )
    operation = arithmetic.add if name == "$inc" else arithmetic.mul
    writer.set(path, _arithmetic(current, operand, operation, name))


def _push_sort_key(spec: Any) -> Callable[[Any], Any]:
    if isinstance(spec, Mapping):
        if not spec:
            raise bad_value("The $sort pattern is empty when it should be a set of fields.")
        document_key = compile_sort(spec)
        assert document_key is not None
        return lambda element: document_key(element if isinstance(element, Mapping) else {})
    if is_number(spec) and number_as_python(spec) in (1, -1):
        if number_as_python(spec) == 1:
            return sort_key
        return lambda element: Descending(sort_key(element))
    raise bad_value(
        "The $sort is invalid: use 1/-1 to sort the whole element, or {field:1/-1} to sort "
        "embedded fields"
    )


def _integer_modifier(value: Any, name: str) -> int:
    if not is_number(value) or number_as_python(value) != int(number_as_python(value)):
        raise bad_value(
            f"The value for {name} must be an integer value but was given type: {_type_name(value)}"
        )
    return int(number_as_python(value))


def _push(writer: _Writer, path: str, operand: Any, doc_id: Any) -> None:
    position: int | None = None
    slice_count: int | None = None
    sort_function: Callable[[Any], Any] | None = None
    if isinstance(operand, Mapping) and "$each" in operand:
        for modifier in operand:
            if modifier not in _PUSH_MODIFIERS:
                raise bad_value(f"Unrecognized clause in $push: {modifier}")
        each = operand["$each"]
        if not isinstance(each, list):
            raise bad_value(
                "The argument to $each in $push must be an array but it was of type: "
                f"{_type_name(each)}"
            )
        values = [copy_value(value) for value in each]
        if "$position" in operand:
            position = _integer_modifier(operand["$position"], "$position")
        if "$slice" in operand:
            slice_count = _integer_modifier(operand["$slice"], "$slice")
        if "$sort" in operand:
            sort_function = _push_sort_key(operand["$sort"])
    else:
        values = [copy_value(operand)]
    current = writer.array_for_write(path)
    if current is MISSING:
        array: list[Any] = []
    elif isinstance(current, list):
        array = current
    else:
        raise bad_value(
            f"The field '{path.rsplit('.', maxsplit=1)[-1]}' must be an array but is of type "
            f"{_type_name(current)} in document {{_id: {doc_id!r}}}"
        )
    if position is None:
        array.extend(values)
    else:
        index = position if position >= 0 else max(0, len(array) + position)
        array[index:index] = values
    if sort_function is not None:
        array.sort(key=sort_function)
    if slice_count is not None:
        if slice_count >= 0:
            del array[slice_count:]
        else:
            del array[: max(0, len(array) + slice_count)]
    if current is MISSING:
        writer.set(path, array)


def _add_to_set(writer: _Writer, path: str, operand: Any, doc_id: Any) -> None:
    if isinstance(operand, Mapping) and "$each" in operand:
        if len(operand) != 1:
            raise bad_value("Found unexpected fields after $each in $addToSet")
        each = operand["$each"]
        if not isinstance(each, list):
            raise type_mismatch(
                "The argument to $each in $addToSet must be an array but it was of type "
                f"{_type_name(each)}"
            )
        values = each
    else:
        values = [operand]
    current = writer.array_for_write(path)
    if current is MISSING:
        array: list[Any] = []
    elif isinstance(current, list):
        array = current
    else:
        raise bad_value(
            f"Cannot apply $addToSet to non-array field. Field named "
            f"'{path.rsplit('.', maxsplit=1)[-1]}' has non-array type {_type_name(current)}"
        )
    keys = [sort_key(element) for element in array]
    for value in values:
        key = sort_key(value)
        if key not in keys:
            keys.append(key)
            array.append(copy_value(value))
    if current is MISSING:
        writer.set(path, array)


def _pop(writer: _Writer, path: str, operand: Any) -> None:
    if not is_number(operand) or number_as_python(operand) not in (1, -1):
        raise failed_to_parse(f"$pop expects 1 or -1, found: {operand!r}")
    current = writer.get(path)
    if current is MISSING:
        return
    if not isinstance(current, list):
        raise type_mismatch(
            f"Path '{path}' contains an element of non-array type '{_type_name(current)}'"
        )
    if not current:
        return
    array = writer.array_for_write(path)
    if number_as_python(operand) == 1:
        array.pop()
    else:
        array.pop(0)


def _pull_test(operand: Any) -> Callable[[Any], bool]:
    if isinstance(operand, Mapping) and operand and not str(next(iter(operand))).startswith("$"):
        # {$pull: {results: {score: 8}}}: elements are matched as documents by a query.
        matcher = compile_filter(operand)
        return lambda element: isinstance(element, Mapping) and matcher.matches(element)
    if isinstance(operand, Mapping) and operand:
        return compile_value_test(operand)
    if isinstance(operand, re.Pattern | Regex):
        return compile_value_test(operand)
    key = sort_key(operand)
    return lambda element: bool(sort_key(element) == key)


def _pull(writer: _Writer, path: str, test: Callable[[Any], bool], name: str) -> None:
    current = writer.get(path)
    if current is MISSING:
        return
    if not isinstance(current, list):
        raise bad_value(f"Cannot apply {name} to a non-array value")
    kept = [element for element in current if not test(element)]
    if len(kept) != len(current):
        array = writer.array_for_write(path)
        array[:] = kept


def _rename(writer: _Writer, source: str, target: str) -> None:
    value = _value_outside_arrays(writer.root, source, "source")
    if value is MISSING:
        return
    _value_outside_arrays(writer.root, target, "destination")
    writer.unset(source)
    writer.set(target, value)


def _value_outside_arrays(doc: Mapping[str, Any], path: str, role: str) -> Any:
    container: Any = doc
    for part in path.split("."):
        if isinstance(container, list):
            raise bad_value(f"The {role} field cannot be an array element, '{path}' in doc")
        if not isinstance(container, Mapping):
            return MISSING
        container = container.get(part, MISSING)
        if container is MISSING:
            return MISSING
    return container


def _current_date(operand: Any, now: datetime.datetime) -> Any:
    if isinstance(operand, bool):
        return now
    if isinstance(operand, Mapping) and set(operand) == {"$type"}:
        if operand["$type"] == "date":
            return now
        if operand["$type"] == "timestamp":
            return Timestamp(int(now.timestamp()), 1)
    raise bad_value(
        "The '$type' string field is required to be 'date' or 'timestamp': "
        "{$currentDate: {field : {$type: 'date'}}}"
    )


def _parse_operations(update: Mapping[str, Any]) -> tuple[list[_Operation], list[str]]:
    operations: list[_Operation] = []
    conflict_paths: list[str] = []
    for name, fields in update.items():
        if name not in UPDATE_OPERATORS:
            raise failed_to_parse(
                f"Unknown modifier: {name}. Expected a valid update modifier or pipeline-style "
                "update specified as an array"
            )
        if not isinstance(fields, Mapping):
            raise failed_to_parse(
                f"Modifiers operate on fields but we found type {_type_name(fields)} instead. "
                f"For example: {{$mod: {{<field>: ...}}}} not {{{name}: {fields!r}}}"
            )
        for path, operand in fields.items():
            _validate_operation(name, path, operand)
            if name == "$rename":
                conflict_paths.append(operand)
            conflict_paths.append(path)
            operations.append(_Operation(path, name, operand, "$" in path))
    if len(conflict_paths) > MAX_UPDATE_PATHS:
        raise bad_value(f"an update may not touch more than {MAX_UPDATE_PATHS} paths")
    _check_conflicts(conflict_paths)
    operations.sort(key=lambda operation: _path_order(operation.path))
    return operations, conflict_paths


def _validate_operation(name: str, path: str, operand: Any) -> None:
    _validate_path(path)
    if name in ("$inc", "$mul") and not is_number(operand):
        verb = "increment" if name == "$inc" else "multiply"
        raise type_mismatch(f"Cannot {verb} with non-numeric argument: {{{path}: {operand!r}}}")
    if name == "$rename":
        if not isinstance(operand, str):
            raise bad_value(f"The 'to' field for $rename must be a string: {path}: {operand!r}")
        _validate_path(operand)
        if operand == path:
            raise bad_value(
                f"The source and target field for $rename must differ: {path}: {operand!r}"
            )
        if "$" in path or "$" in operand:
            raise bad_value(f"The source field for $rename may not be dynamic: {path}")
    if name == "$pullAll" and not isinstance(operand, list):
        raise bad_value(
            f"$pullAll requires an array argument but was given a {_type_name(operand)}"
        )


@dataclass(frozen=True)
class _Operation:
    path: str
    name: str
    operand: Any
    dynamic: bool  # the path holds $, $[] or $[id]


def _utc_now_ms() -> datetime.datetime:
    current = datetime.datetime.now(datetime.UTC)
    return current.replace(microsecond=current.microsecond // 1000 * 1000)


class CompiledUpdate:
    """An update specification parsed and checked once, then applied to many documents."""

    def __init__(
        self,
        update: Mapping[str, Any],
        *,
        array_filters: Sequence[Mapping[str, Any]] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> None:
        self.kind = classify_update(update)
        self._replacement: Mapping[str, Any] = {}
        self._operations: list[_Operation] = []
        self._filters = _ArrayFilters(array_filters)
        self._positional = _Positional(query)
        self._uses_clock = False
        if self.kind is UpdateKind.PIPELINE:
            raise bad_value("pipeline-style updates are evaluated by the aggregation engine")
        if self.kind is UpdateKind.REPLACEMENT:
            if array_filters:
                raise failed_to_parse("arrayFilters may not be specified for replacement updates")
            validate_replacement(update)
            self._replacement = update
            return
        self._operations, paths = _parse_operations(update)
        self._filters.check_paths(paths)
        self._uses_clock = "$currentDate" in update

    def apply(
        self,
        doc: Mapping[str, Any],
        *,
        is_insert: bool = False,
        now: datetime.datetime | None = None,
    ) -> dict[str, Any]:
        """The new document after this update; the input document is untouched."""
        if self.kind is UpdateKind.REPLACEMENT:
            return _apply_replacement(doc, self._replacement)
        if now is None and self._uses_clock:
            now = _utc_now_ms()
        writer = _Writer(doc)
        doc_id = doc.get("_id", MISSING)
        for operation in self._operations:
            if operation.name == "$setOnInsert" and not is_insert:
                continue
            if operation.dynamic:
                paths = _expand_path(
                    writer, operation.path, self._filters, self._positional, is_insert=is_insert
                )
            else:
                paths = [operation.path]
            for path in paths:
                _apply_operation(
                    writer, path, operation.name, operation.operand, doc_id=doc_id, now=now
                )
        result = writer.root
        if doc_id is not MISSING and not _same_id(doc_id, result.get("_id", MISSING)):
            raise immutable_id_error()
        return result


def compile_update(
    update: Mapping[str, Any],
    *,
    array_filters: Sequence[Mapping[str, Any]] | None = None,
    query: Mapping[str, Any] | None = None,
) -> CompiledUpdate:
    """Parse and check an operator or replacement update once (multi-document updates)."""
    return CompiledUpdate(update, array_filters=array_filters, query=query)


def apply_update(
    doc: Mapping[str, Any],
    update: Mapping[str, Any],
    *,
    is_insert: bool = False,
    array_filters: Sequence[Mapping[str, Any]] | None = None,
    now: datetime.datetime | None = None,
    query: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The new document after an operator or replacement update; the input is untouched.

    `query` (the update's filter) lets the positional `$` find the matched array element.
    """
    compiled = CompiledUpdate(update, array_filters=array_filters, query=query)
    return compiled.apply(doc, is_insert=is_insert, now=now)


def _apply_operation(
    writer: _Writer,
    path: str,
    name: str,
    operand: Any,
    *,
    doc_id: Any,
    now: datetime.datetime | None,
) -> None:
    if name in ("$set", "$setOnInsert"):
        writer.set(path, copy_value(operand))
    elif name == "$unset":
        writer.unset(path)
    elif name in ("$inc", "$mul"):
        _numeric_update(writer, path, operand, name, doc_id)
    elif name in ("$min", "$max"):
        current = writer.get(path)
        order = compare_values(operand, current) if current is not MISSING else 0
        if current is MISSING or (order < 0 if name == "$min" else order > 0):
            writer.set(path, copy_value(operand))
    elif name == "$rename":
        _rename(writer, path, operand)
    elif name == "$currentDate":
        writer.set(path, _current_date(operand, now or _utc_now_ms()))
    elif name == "$push":
        _push(writer, path, operand, doc_id)
    elif name == "$addToSet":
        _add_to_set(writer, path, operand, doc_id)
    elif name == "$pop":
        _pop(writer, path, operand)
    elif name == "$pull":
        _pull(writer, path, _pull_test(operand), "$pull")
    elif name == "$pullAll":
        keys = [sort_key(value) for value in operand]
        _pull(writer, path, lambda element: sort_key(element) in keys, "$pullAll")


def upsert_seed(filter_doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document an upsert starts from: the filter's equality conditions, dotted -> nested."""
    equalities = compile_filter(filter_doc).equality_fields()
    seed: dict[str, Any] = {}
    paths = sorted(equalities, key=lambda path: path != "_id" and not path.startswith("_id."))
    for path in paths:
        value = equalities[path]
        if isinstance(value, Mapping) and any(str(name).startswith("$") for name in value):
            continue
        if get_path(seed, path) is not MISSING or _has_set_prefix(seed, path):
            raise CommandError(
                54,
                "NotSingleValueField",
                f"cannot infer query fields to set, path '{path}' is matched twice",
            )
        try:
            set_path(seed, path, copy_value(value))
        except CommandError as exc:
            raise path_not_viable(path, seed) from exc
    return seed


def _has_set_prefix(seed: Mapping[str, Any], path: str) -> bool:
    parts = path.split(".")
    for length in range(1, len(parts)):
        value = get_path(seed, ".".join(parts[:length]))
        if value is not MISSING and not isinstance(value, Mapping):
            return True
    return False
