"""localdocdb engine layer: dotted field paths into documents and arrays.

Queries read paths with MongoDB's implicit array traversal ("a.b" over {a: [{b: 1}, {b: 2}]}
reaches 1 and 2; a numeric component such as "a.0.b" indexes an array). Updates write paths,
creating the documents on the way and padding arrays with null. References:
https://www.mongodb.com/docs/manual/core/document/#dot-notation
https://www.mongodb.com/docs/manual/reference/operator/update/set/
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from localdocdb.errors import CommandError


class _Missing:
    """The type of `MISSING`: a field that is absent, as distinct from a field that is null."""

    __slots__ = ()
    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()

# Arrays padded by a write may not grow past this many elements (MongoDB refuses huge pads too).
MAX_ARRAY_PAD: Final = 1_500_000


def array_index(component: str) -> int | None:
    """The array index a path component names, or None when it is not all decimal digits."""
    if component.isdigit() and component.isascii():
        return int(component)
    return None


def path_not_viable(component: str, container: Any) -> CommandError:
    """Code 28: a write path goes through a value that cannot hold the next field."""
    return CommandError(
        28,
        "PathNotViable",
        f"Cannot create field '{component}' in element {{{_describe(container)}}}",
    )


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def iter_path_values(value: Any, parts: list[str], start: int = 0) -> Iterator[Any]:
    """Yield what a query path reaches, with MISSING where a branch lacks the field.

    Arrays met before the last component are traversed (one level, as MongoDB does: an array
    directly inside an array is not entered by a field name); the value at the end of the path
    is yielded as is, so callers decide whether a leaf array also stands for its elements.
    """
    index = start
    while index < len(parts):
        component = parts[index]
        if isinstance(value, Mapping):
            value = value.get(component, MISSING)
            if value is MISSING:
                yield MISSING
                return
            index += 1
            continue
        if isinstance(value, list):
            position = array_index(component)
            if position is not None:
                if position < len(value):
                    yield from iter_path_values(value[position], parts, index + 1)
                else:
                    yield MISSING
                return
            found = False
            for element in value:
                if isinstance(element, Mapping):
                    found = True
                    yield from iter_path_values(element, parts, index)
            if not found:
                yield MISSING
            return
        yield MISSING
        return
    yield value


def get_path_values(doc: Mapping[str, Any], path: str) -> list[Any]:
    """Every value a path reaches, expanding arrays on the way as MongoDB queries do."""
    return [value for value in iter_path_values(doc, path.split(".")) if value is not MISSING]


def get_path(doc: Mapping[str, Any], path: str) -> Any:
    """The single value at a path without array expansion (numeric parts index arrays)."""
    value: Any = doc
    for component in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(component, MISSING)
        elif isinstance(value, list):
            position = array_index(component)
            if position is None or position >= len(value):
                return MISSING
            value = value[position]
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value


def resolve_field_path(doc: Any, path: str) -> Any:
    """Aggregation field-path semantics ("$a.b"): arrays map to the list of their elements' values.

    Unlike queries, numeric components do not index arrays here; elements lacking the field are
    left out. Returns MISSING when nothing is found outside an array.
    """
    return _resolve(doc, path.split("."), 0)


def _resolve(value: Any, parts: list[str], index: int) -> Any:
    if index == len(parts):
        return value
    if isinstance(value, Mapping):
        child = value.get(parts[index], MISSING)
        if child is MISSING:
            return MISSING
        return _resolve(child, parts, index + 1)
    if isinstance(value, list):
        results = []
        for element in value:
            if isinstance(element, Mapping | list):
                found = _resolve(element, parts, index)
                if found is not MISSING:
                    results.append(found)
        return results
    return MISSING


def set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    """Write a value at a path, creating documents on the way; array indexes pad with null."""
    parts = path.split(".")
    container: Any = doc
    for position, component in enumerate(parts):
        last = position == len(parts) - 1
        if isinstance(container, dict):
            if last:
                container[component] = value
                return
            child = container.get(component, MISSING)
            if child is MISSING:
                child = {}
                container[component] = child
            container = child
        elif isinstance(container, list):
            index = array_index(component)
            if index is None:
                raise path_not_viable(component, container)
            if index >= len(container):
                if index > MAX_ARRAY_PAD:
                    raise CommandError(
                        2, "BadValue", f"can't pad array to {index} elements: too large"
                    )
                container.extend([None] * (index + 1 - len(container)))
                if not last:
                    container[index] = {}
            if last:
                container[index] = value
                return
            container = container[index]
        else:
            raise path_not_viable(component, container)


def unset_path(doc: dict[str, Any], path: str) -> None:
    """Remove the field at a path; an array element is set to null instead (as $unset does)."""
    parts = path.split(".")
    container: Any = doc
    for component in parts[:-1]:
        if isinstance(container, dict):
            container = container.get(component, MISSING)
        elif isinstance(container, list):
            index = array_index(component)
            if index is None or index >= len(container):
                return
            container = container[index]
        else:
            return
    last = parts[-1]
    if isinstance(container, dict):
        container.pop(last, None)
    elif isinstance(container, list):
        index = array_index(last)
        if index is not None and index < len(container):
            container[index] = None
