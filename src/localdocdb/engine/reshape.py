"""Aggregation `$project`, `$addFields`/`$set` and `$unset` (engine layer, pure).

A projection spec is parsed once into a tree (`{"a.b": 1}` and `{a: {b: 1}}` give the
same tree) and then applied per document. Semantics follow
https://www.mongodb.com/docs/manual/reference/operator/aggregation/project/:
inclusion keeps the listed fields in document order and appends computed fields;
exclusion removes fields; the two cannot be mixed except for `_id`; `_id` is kept
unless excluded. Sub-projections apply to every document inside an array.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from localdocdb.engine.expressions import ABSENT, evaluate
from localdocdb.errors import CommandError

MAX_PROJECTION_DEPTH = 100


class ProjectionMode(Enum):
    """Whether a `$project` keeps or removes the fields it names."""

    INCLUSION = "inclusion"
    EXCLUSION = "exclusion"


@dataclass
class _Node:
    """One level of a projection tree."""

    include: set[str] = field(default_factory=set)
    exclude: set[str] = field(default_factory=set)
    computed: dict[str, Any] = field(default_factory=dict)  # name -> expression
    children: dict[str, _Node] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # computed/children names in spec order


def _projection_error(code: int, message: str) -> CommandError:
    return CommandError(code, f"Location{code}", message)


def _is_expression(value: Any) -> bool:
    """Whether a projection value is an expression rather than 0/1/true/false or a sub-spec."""
    if isinstance(value, bool) or (isinstance(value, int | float) and not isinstance(value, bool)):
        return False
    if isinstance(value, Mapping):
        return any(str(key).startswith("$") for key in value) or not value
    return True


class AggregateProjection:
    """A compiled `$project` stage."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        if not isinstance(spec, Mapping) or not spec:
            raise _projection_error(51272, "$project specification must be a non-empty object")
        self.root = _Node()
        self.mode: ProjectionMode | None = None
        self.exclude_id = False
        for path, value in spec.items():
            self._add(self.root, str(path).split("."), value, 0, top=True)
        if self.mode is None:
            self.mode = ProjectionMode.EXCLUSION if self.exclude_id else ProjectionMode.INCLUSION

    def _set_mode(self, mode: ProjectionMode, path: str) -> None:
        if self.mode is None:
            self.mode = mode
        elif self.mode is not mode:
            if mode is ProjectionMode.EXCLUSION:
                raise _projection_error(
                    31254,
                    f"Invalid $project :: caused by :: Cannot do exclusion on field {path} "
                    "in inclusion projection",
                )
            raise _projection_error(
                31253,
                f"Invalid $project :: caused by :: Cannot do inclusion on field {path} "
                "in exclusion projection",
            )

    def _add(self, node: _Node, parts: list[str], value: Any, depth: int, top: bool) -> None:
        if depth > MAX_PROJECTION_DEPTH:
            raise _projection_error(31258, "projection is nested too deeply")
        name = parts[0]
        if not name or name.startswith("$"):
            raise _projection_error(16410, f"FieldPath field names may not start with '$': {name}")
        if len(parts) > 1:
            child = node.children.get(name)
            if child is None:
                child = node.children[name] = _Node()
                node.order.append(name)
            self._add(child, parts[1:], value, depth + 1, top=False)
            return
        is_id = top and name == "_id"
        if isinstance(value, Mapping) and value and not _is_expression(value):
            child = node.children.get(name)
            if child is None:
                child = node.children[name] = _Node()
                node.order.append(name)
            for sub_name, sub_value in value.items():
                self._add(child, str(sub_name).split("."), sub_value, depth + 1, top=False)
            return
        if _is_expression(value):
            self._set_mode(ProjectionMode.INCLUSION, name)
            node.computed[name] = value
            node.order.append(name)
            return
        if value:  # 1 / true
            if not is_id:
                self._set_mode(ProjectionMode.INCLUSION, name)
            node.include.add(name)
            return
        if is_id:
            self.exclude_id = True
            node.exclude.add(name)
            return
        self._set_mode(ProjectionMode.EXCLUSION, name)
        node.exclude.add(name)

    def apply(
        self, doc: Mapping[str, Any], variables: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The projected document."""
        if self.mode is ProjectionMode.EXCLUSION:
            return _exclude(doc, self.root)
        out = _include(doc, self.root, doc, variables, top=True, exclude_id=self.exclude_id)
        return out


def _include(
    doc: Mapping[str, Any],
    node: _Node,
    root: Mapping[str, Any],
    variables: Mapping[str, Any] | None,
    *,
    top: bool,
    exclude_id: bool = False,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if top and "_id" in node.computed:  # a computed _id still comes first
        computed_id = evaluate(node.computed["_id"], root, variables)
        if computed_id is not ABSENT:
            out["_id"] = computed_id
    for name, value in doc.items():
        keep_id = top and name == "_id" and not exclude_id and "_id" not in node.computed
        if name in node.include or keep_id:
            out[name] = value
        elif name in node.children and name not in node.computed:
            projected = _include_value(value, node.children[name], root, variables)
            if projected is not ABSENT:
                out[name] = projected
    for name in node.order:
        if top and name == "_id":
            continue
        if name in node.computed:
            result = evaluate(node.computed[name], root, variables)
            if result is not ABSENT:
                out[name] = result
        elif name in node.children and name not in doc:
            child = node.children[name]
            if child.computed:
                out[name] = _include({}, child, root, variables, top=False)
    return out


def _include_value(
    value: Any, node: _Node, root: Mapping[str, Any], variables: Mapping[str, Any] | None
) -> Any:
    if isinstance(value, Mapping):
        return _include(value, node, root, variables, top=False)
    if isinstance(value, list):
        return [
            _include_value(item, node, root, variables)
            for item in value
            if isinstance(item, Mapping | list)
        ]
    if node.computed:
        return _include({}, node, root, variables, top=False)
    return ABSENT


def _exclude(doc: Mapping[str, Any], node: _Node) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in doc.items():
        if name in node.exclude:
            continue
        if name in node.children:
            out[name] = _exclude_value(value, node.children[name])
        else:
            out[name] = value
    return out


def _exclude_value(value: Any, node: _Node) -> Any:
    if isinstance(value, Mapping):
        return _exclude(value, node)
    if isinstance(value, list):
        return [_exclude_value(item, node) for item in value]
    return value


def unset_projection(spec: Any) -> AggregateProjection:
    """`$unset: "a"` or `["a", "b.c"]` as the exclusion projection it stands for."""
    paths = [spec] if isinstance(spec, str) else spec
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise _projection_error(
            31002, "$unset specification must be a string or an array of strings"
        )
    return AggregateProjection(dict.fromkeys(paths, 0))


def _set_field(doc: dict[str, Any], parts: list[str], value: Any) -> None:
    """Set a dotted path in a fresh copy chain; `ABSENT` removes the field."""
    name = parts[0]
    if len(parts) == 1:
        if value is ABSENT:
            doc.pop(name, None)
        else:
            doc[name] = value
        return
    current = doc.get(name)
    if isinstance(current, list):
        doc[name] = [
            _set_in_copy(item, parts[1:], value) if isinstance(item, Mapping) else item
            for item in current
        ]
        return
    child = dict(current) if isinstance(current, Mapping) else {}
    _set_field(child, parts[1:], value)
    doc[name] = child


def _set_in_copy(item: Mapping[str, Any], parts: list[str], value: Any) -> dict[str, Any]:
    copy = dict(item)
    _set_field(copy, parts, value)
    return copy


def _merge_object_spec(
    existing: Any,
    spec: Mapping[str, Any],
    root: Mapping[str, Any],
    variables: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """`$addFields: {a: {b: expr}}` adds `b` inside `a`, keeping `a`'s other fields."""
    out = dict(existing) if isinstance(existing, Mapping) else {}
    for key, sub in spec.items():
        if isinstance(sub, Mapping) and sub and not _is_expression(sub):
            out[key] = _merge_object_spec(out.get(key), sub, root, variables)
        else:
            value = evaluate(sub, root, variables)
            if value is ABSENT:
                out.pop(key, None)
            else:
                out[key] = value
    return out


class AddFields:
    """A compiled `$addFields` / `$set` stage."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        if not isinstance(spec, Mapping):
            raise _projection_error(40272, "$addFields specification stage must be an object")
        for path in spec:
            if not path or str(path).startswith("$"):
                raise _projection_error(
                    16410, f"FieldPath field names may not start with '$': {path}"
                )
        self.spec = dict(spec)

    def apply(
        self, doc: Mapping[str, Any], variables: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The document with the new fields."""
        out = dict(doc)
        for path, expression in self.spec.items():
            parts = str(path).split(".")
            if isinstance(expression, Mapping) and expression and not _is_expression(expression):
                existing = out.get(parts[0]) if len(parts) == 1 else None
                value: Any = _merge_object_spec(existing, expression, doc, variables)
            else:
                value = evaluate(expression, doc, variables)
            _set_field(out, parts, value)
        return out
