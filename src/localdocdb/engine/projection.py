"""localdocdb engine layer: find-command projections compiled once and applied per document.

MongoDB's rules (https://www.mongodb.com/docs/manual/reference/method/db.collection.find/
#projection and https://www.mongodb.com/docs/manual/reference/operator/projection/):
- a projection either includes fields ({a: 1, "b.c": 1}) or excludes them ({a: 0}); mixing
  is refused (31254 / 31253) except for `_id`, which is included unless `_id: 0`;
- `$slice` alone keeps every other field; `$elemMatch`, positional `a.$` and computed values
  ("$field", literals, {$literal: v}) make the projection an inclusion;
- inclusion through arrays keeps only the documents (and nested arrays) inside them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from localdocdb.engine.compare import is_number, number_as_python
from localdocdb.engine.matcher import (
    ExprEvaluator,
    Matcher,
    compile_filter,
    first_matching_element,
    query_conditions_on,
)
from localdocdb.engine.paths import MISSING, resolve_field_path, set_path
from localdocdb.errors import CommandError, bad_value

MAX_PROJECTION_FIELDS: Final = 10_000


class ProjectionMode(Enum):
    """Whether a projection lists what to keep, what to drop, or nothing (keep everything)."""

    INCLUSION = "inclusion"
    EXCLUSION = "exclusion"
    IDENTITY = "identity"


class _Flag(Enum):
    INCLUDE = "include"
    EXCLUDE = "exclude"


@dataclass(frozen=True)
class _Slice:
    skip: int | None
    limit: int


@dataclass(frozen=True)
class _ElemMatch:
    field: str
    matcher: Matcher


@dataclass(frozen=True)
class _Positional:
    field: str
    matcher: Matcher | None


_Node = _Flag | _Slice | _ElemMatch | _Positional | dict[str, Any]
_Computed = Callable[[Mapping[str, Any]], Any]


def _path_collision(path: str) -> CommandError:
    return CommandError(31250, "Location31250", f"Path collision at {path}")


def _slice_spec(path: str, operand: Any) -> _Slice:
    if is_number(operand):
        return _Slice(None, _whole(operand, path))
    if isinstance(operand, list) and len(operand) == 2:
        skip = _whole(operand[0], path)
        limit = _whole(operand[1], path)
        if limit <= 0:
            raise bad_value(f"$slice limit must be positive, field: {path}")
        return _Slice(skip, limit)
    raise bad_value(f"$slice only supports numbers and [skip, limit] arrays, field: {path}")


def _whole(value: Any, path: str) -> int:
    if not is_number(value):
        raise bad_value(f"$slice only supports numbers and [skip, limit] arrays, field: {path}")
    number = number_as_python(value)
    try:
        return int(number)
    except (ValueError, OverflowError) as exc:
        raise bad_value(f"$slice arguments must be finite numbers, field: {path}") from exc


def apply_slice(value: Any, spec: _Slice) -> Any:
    """`$slice` on a value: arrays are cut, anything else is returned unchanged."""
    if not isinstance(value, list):
        return value
    if spec.skip is None:
        return value[: spec.limit] if spec.limit >= 0 else value[spec.limit :]
    start = spec.skip if spec.skip >= 0 else max(0, len(value) + spec.skip)
    return value[start : start + spec.limit]


class Projection:
    """A compiled find projection; `apply` returns a new document."""

    def __init__(
        self,
        mode: ProjectionMode,
        tree: dict[str, Any],
        computed: list[tuple[str, _Computed]],
    ) -> None:
        self.mode = mode
        self._tree = tree
        self._computed = computed

    def apply(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """The projected copy of a document."""
        if self.mode is ProjectionMode.IDENTITY:
            return dict(doc)
        if self.mode is ProjectionMode.EXCLUSION:
            return self._exclude(doc, self._tree)
        result = self._include(doc, self._tree, doc)
        for path, compute in self._computed:
            value = compute(doc)
            if value is not MISSING:
                set_path(result, path, value)
        return result

    def _include(
        self, doc: Mapping[str, Any], tree: dict[str, Any], root: Mapping[str, Any]
    ) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, value in doc.items():
            node = tree.get(name)
            if node is None:
                continue
            if node is _Flag.INCLUDE:
                result[name] = value
            elif isinstance(node, dict):
                projected = self._include_nested(value, node, root)
                if projected is not MISSING:
                    result[name] = projected
            elif isinstance(node, _Slice):
                result[name] = apply_slice(value, node)
            elif isinstance(node, _ElemMatch):
                if isinstance(value, list):
                    for element in value:
                        if node.matcher.matches({node.field: [element]}):
                            result[name] = [element]
                            break
            elif isinstance(node, _Positional):
                result[name] = _positional(value, node)
        return result

    def _include_nested(self, value: Any, tree: dict[str, Any], root: Mapping[str, Any]) -> Any:
        if isinstance(value, Mapping):
            return self._include(value, tree, root)
        if isinstance(value, list):
            return [
                self._include_nested(element, tree, root)
                for element in value
                if isinstance(element, Mapping | list)
            ]
        return MISSING

    def _exclude(self, doc: Mapping[str, Any], tree: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, value in doc.items():
            node = tree.get(name)
            if node is None:
                result[name] = value
            elif node is _Flag.EXCLUDE:
                continue
            elif isinstance(node, dict):
                result[name] = self._exclude_nested(value, node)
            elif isinstance(node, _Slice):
                result[name] = apply_slice(value, node)
        return result

    def _exclude_nested(self, value: Any, tree: dict[str, Any]) -> Any:
        if isinstance(value, Mapping):
            return self._exclude(value, tree)
        if isinstance(value, list):
            return [self._exclude_nested(element, tree) for element in value]
        return value


def _positional(value: Any, node: _Positional) -> Any:
    if not isinstance(value, list):
        return value
    if node.matcher is not None:
        index = first_matching_element(node.matcher, node.field, value)
        if index is not None:
            return [value[index]]
    raise CommandError(
        51246,
        "Location51246",
        "Executor error during find command :: caused by :: positional operator '.$' couldn't "
        "find a matching element in the array",
    )


class _Builder:
    """Collects a projection's fields into a tree, enforcing MongoDB's mixing rules."""

    def __init__(
        self, query: Mapping[str, Any] | None, expr_evaluator: ExprEvaluator | None
    ) -> None:
        self.query = query
        self.expr_evaluator = expr_evaluator
        self.tree: dict[str, Any] = {}
        self.mode: ProjectionMode | None = None
        self.id_flag: _Flag | None = None
        self.computed: list[tuple[str, _Computed]] = []
        self.count = 0

    def set_mode(self, mode: ProjectionMode, path: str) -> None:
        """Record inclusion/exclusion, refusing to mix the two (except for `_id`)."""
        if self.mode is None or self.mode is mode:
            self.mode = mode
            return
        if mode is ProjectionMode.EXCLUSION:
            raise CommandError(
                31254,
                "Location31254",
                f"Cannot do exclusion on field {path} in inclusion projection",
            )
        raise CommandError(
            31253, "Location31253", f"Cannot do inclusion on field {path} in exclusion projection"
        )

    def place(self, path: str, node: _Node) -> None:
        """Put a leaf in the tree at a dotted path, refusing path collisions."""
        parts = path.split(".")
        level = self.tree
        for part in parts[:-1]:
            child = level.get(part)
            if child is None:
                child = {}
                level[part] = child
            elif not isinstance(child, dict):
                raise _path_collision(path)
            level = child
        if parts[-1] in level:
            raise _path_collision(path)
        level[parts[-1]] = node

    def add(self, path: str, spec: Any) -> None:
        """Add one `path: spec` entry of the projection."""
        self.count += 1
        if self.count > MAX_PROJECTION_FIELDS:
            raise bad_value(f"projection has more than {MAX_PROJECTION_FIELDS} fields")
        if not isinstance(path, str) or not path:
            raise bad_value("projection field names must be non-empty strings")
        if path.endswith(".$"):
            self._add_positional(path[:-2], spec)
            return
        parts = path.split(".")
        if "" in parts or any(part.startswith("$") for part in parts):
            raise bad_value(f"FieldPath field names may not start with '$' or be empty: {path}")
        if isinstance(spec, bool) or is_number(spec):
            self._add_flag(path, bool(number_as_python(spec)) if is_number(spec) else spec)
        elif isinstance(spec, Mapping):
            self._add_document(path, spec)
        else:
            self._add_computed(path, spec)

    def _add_flag(self, path: str, include: bool) -> None:
        if path == "_id":
            self.id_flag = _Flag.INCLUDE if include else _Flag.EXCLUDE
            return
        self.set_mode(ProjectionMode.INCLUSION if include else ProjectionMode.EXCLUSION, path)
        self.place(path, _Flag.INCLUDE if include else _Flag.EXCLUDE)

    def _add_positional(self, field: str, spec: Any) -> None:
        if not field or "" in field.split(".") or "$" in field:
            raise bad_value(f"invalid positional projection on {field}.$")
        if not (spec is True or (is_number(spec) and number_as_python(spec) != 0)):
            raise bad_value(f"positional projection on {field}.$ must be an inclusion")
        matcher = None
        if self.query is not None:
            conditions = query_conditions_on(self.query, field)
            if conditions:
                matcher = compile_filter(conditions)
        self.set_mode(ProjectionMode.INCLUSION, field)
        self.place(field, _Positional(field, matcher))

    def _add_document(self, path: str, spec: Mapping[str, Any]) -> None:
        if not spec:
            raise bad_value(
                f"An empty sub-projection is not a valid value. Found empty object at path {path}"
            )
        first = next(iter(spec))
        if not str(first).startswith("$"):
            for name, sub_spec in spec.items():
                self.add(f"{path}.{name}", sub_spec)
            return
        if len(spec) != 1:
            raise bad_value(f"an expression specification must contain exactly one field: {path}")
        if first == "$slice":
            self.place(path, _slice_spec(path, spec["$slice"]))
        elif first == "$elemMatch":
            if "." in path:
                raise bad_value("Cannot use $elemMatch projection on a nested field.")
            condition = spec["$elemMatch"]
            if not isinstance(condition, Mapping):
                raise bad_value("elemMatch: Invalid argument, object required.")
            self.set_mode(ProjectionMode.INCLUSION, path)
            self.place(path, _ElemMatch(path, compile_filter({path: {"$elemMatch": condition}})))
        elif first == "$meta":
            raise bad_value(f"$meta projections are not supported: {path}")
        else:
            self._add_computed(path, spec)

    def _add_computed(self, path: str, spec: Any) -> None:
        self.set_mode(ProjectionMode.INCLUSION, path)
        self._reserve(path)
        self.computed.append((path, self._computation(spec)))

    def _reserve(self, path: str) -> None:
        # Computed paths take part in collision checks but are filled in after inclusion.
        parts = path.split(".")
        level = self.tree
        for part in parts[:-1]:
            child = level.setdefault(part, {})
            if not isinstance(child, dict):
                raise _path_collision(path)
            level = child
        if parts[-1] in level:
            raise _path_collision(path)

    def _computation(self, spec: Any) -> _Computed:
        if isinstance(spec, str) and spec.startswith("$"):
            field_path = spec[1:]
            if not field_path or field_path.startswith("$"):
                raise bad_value(f"'{spec}' is not a valid field path")
            return lambda doc: resolve_field_path(doc, field_path)
        if isinstance(spec, Mapping):
            if set(spec) == {"$literal"}:
                literal = spec["$literal"]
                return lambda doc: literal
            evaluator = self.expr_evaluator
            if evaluator is None:
                raise bad_value(f"Unsupported projection option: {dict(spec)!r}")
            return lambda doc: evaluator(spec, doc)
        return lambda doc: spec


def compile_projection(
    projection: Mapping[str, Any] | None,
    *,
    query: Mapping[str, Any] | None = None,
    expr_evaluator: ExprEvaluator | None = None,
) -> Projection:
    """Compile a find projection; `query` serves the positional `a.$` operator."""
    if not projection:
        return Projection(ProjectionMode.IDENTITY, {}, [])
    if not isinstance(projection, Mapping):
        raise CommandError(14, "TypeMismatch", "projection must be an object")
    builder = _Builder(query, expr_evaluator)
    for path, spec in projection.items():
        builder.add(path, spec)
    mode = builder.mode
    tree = builder.tree
    if mode is None:
        # Only _id and/or $slice entries: {_id: 1} alone keeps just _id; $slice keeps the rest.
        only_id = builder.id_flag is _Flag.INCLUDE and not tree
        mode = ProjectionMode.INCLUSION if only_id else ProjectionMode.EXCLUSION
    if mode is ProjectionMode.INCLUSION:
        if builder.id_flag is not _Flag.EXCLUDE and "_id" not in tree:
            tree["_id"] = _Flag.INCLUDE
    elif builder.id_flag is _Flag.EXCLUDE:
        tree["_id"] = _Flag.EXCLUDE
    if mode is ProjectionMode.EXCLUSION and not tree:
        return Projection(ProjectionMode.IDENTITY, {}, [])
    return Projection(mode, tree, builder.computed)
