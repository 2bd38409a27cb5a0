"""localdocdb engine layer: sort specifications ({a: 1, "b.c": -1}) compiled into key functions.

MongoDB's rules (https://www.mongodb.com/docs/manual/reference/method/cursor.sort/): values of
different types sort in BSON comparison order; a missing field sorts as null; an array sorts by
its smallest element ascending and its largest element descending; an empty array sorts before
null. Sorting is stable, so documents with equal keys keep their input order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

from localdocdb.engine.compare import RANK_UNDEFINED, is_number, number_as_python, sort_key
from localdocdb.engine.paths import MISSING, iter_path_values
from localdocdb.errors import bad_value

DocumentT = TypeVar("DocumentT", bound=Mapping[str, Any])
SortKeyFunction = Callable[[Mapping[str, Any]], Any]

MAX_SORT_FIELDS: Final = 32
_NULL_KEY: Final = sort_key(None)
_EMPTY_ARRAY_KEY: Final = (RANK_UNDEFINED,)


class Descending:
    """Wraps a sort key so that it orders in reverse inside a tuple of keys."""

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key

    def __lt__(self, other: Descending) -> bool:
        return bool(other.key < self.key)

    def __gt__(self, other: Descending) -> bool:
        return bool(other.key > self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Descending) and bool(self.key == other.key)

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"Descending({self.key!r})"


def parse_sort_spec(sort_spec: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Validate a sort document into (path, direction) pairs; raises BadValue when malformed."""
    fields: list[tuple[str, int]] = []
    for path, direction in sort_spec.items():
        if not isinstance(path, str) or not path or path.startswith("$") or "" in path.split("."):
            raise bad_value(f"bad sort specification: invalid field name {path!r}")
        if isinstance(direction, Mapping):
            raise bad_value(f"$meta sort is not supported: {path}")
        if not is_number(direction) or number_as_python(direction) not in (1, -1):
            raise bad_value("$sort key ordering must be 1 (for ascending) or -1 (for descending)")
        fields.append((path, int(number_as_python(direction))))
    if len(fields) > MAX_SORT_FIELDS:
        raise bad_value(f"cannot sort with keys that are more than {MAX_SORT_FIELDS} fields")
    return fields


def field_sort_key(doc: Mapping[str, Any], parts: list[str], direction: int) -> Any:
    """One sort field's key for a document: min (ascending) or max (descending) of its values."""
    best: Any = None
    saw_empty_array = False
    for value in iter_path_values(doc, parts):
        if isinstance(value, list):
            if not value:
                saw_empty_array = True
                continue
            candidates = [sort_key(element) for element in value]
            key = min(candidates) if direction == 1 else max(candidates)
        elif value is MISSING:
            key = _NULL_KEY
        else:
            key = sort_key(value)
        if best is None or (key < best if direction == 1 else key > best):
            best = key
    if best is None:
        return _EMPTY_ARRAY_KEY if saw_empty_array else _NULL_KEY
    return best


def compile_sort(sort_spec: Mapping[str, Any] | None) -> SortKeyFunction | None:
    """A key function ordering documents as the sort spec says, or None for no sort."""
    if not sort_spec:
        return None
    fields = [(path.split("."), direction) for path, direction in parse_sort_spec(sort_spec)]
    if len(fields) == 1:
        ((parts, direction),) = fields
        if len(parts) == 1:
            name = parts[0]

            def top_level_key(doc: Mapping[str, Any]) -> Any:
                value = doc.get(name, MISSING)
                if value is MISSING or isinstance(value, list):
                    key = field_sort_key(doc, parts, direction)
                else:
                    key = sort_key(value)
                return key if direction == 1 else Descending(key)

            return top_level_key

    def key_function(doc: Mapping[str, Any]) -> Any:
        keys = []
        for parts, direction in fields:
            value = doc.get(parts[0], MISSING) if len(parts) == 1 else MISSING
            if value is MISSING or isinstance(value, list):
                key = field_sort_key(doc, parts, direction)
            else:
                key = sort_key(value)
            keys.append(key if direction == 1 else Descending(key))
        return tuple(keys)

    return key_function


def sort_documents(
    docs: Iterable[DocumentT], sort_spec: Mapping[str, Any] | None
) -> list[DocumentT]:
    """The documents in sort-spec order (stable); input order when the spec is empty."""
    key_function = compile_sort(sort_spec)
    if key_function is None:
        return list(docs)
    return sorted(docs, key=key_function)
