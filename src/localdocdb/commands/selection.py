"""Choosing the documents a command reads or writes (command layer helper, no handlers).

Filters are compiled with `$expr` support; a filter that pins `_id` to one plain
value is answered through the `_id` index instead of a scan.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import bson

from localdocdb.engine.expressions import evaluate
from localdocdb.engine.matcher import Matcher, compile_filter
from localdocdb.engine.storage import Collection
from localdocdb.errors import type_mismatch


def expr_evaluator(expression: Any, doc: Mapping[str, Any]) -> Any:
    """`$expr` support for query filters (no `let` variables at the top level)."""
    return evaluate(expression, doc)


def compile_query(filter_doc: Any) -> Matcher:
    """A filter argument compiled, with `$expr` enabled."""
    if filter_doc is not None and not isinstance(filter_doc, Mapping):
        raise type_mismatch("BSON field 'filter' is the wrong type, expected type 'object'")
    return compile_filter(filter_doc or {}, expr_evaluator=expr_evaluator)


def _simple_id(filter_doc: Mapping[str, Any] | None) -> tuple[bool, Any]:
    """(True, value) when the filter pins `_id` to one plain value (index lookup)."""
    if not filter_doc or "_id" not in filter_doc:
        return False, None
    value = filter_doc["_id"]
    if isinstance(value, Mapping):
        if set(value) == {"$eq"}:
            value = value["$eq"]
        else:
            return False, None
    if isinstance(value, list | Mapping | bson.Regex | re.Pattern):
        return False, None
    return True, value


def select_documents(
    collection: Collection | None, filter_doc: Mapping[str, Any] | None, matcher: Matcher
) -> Iterator[dict[str, Any]]:
    """Documents matching the filter, in natural order, via the `_id` index when possible."""
    if collection is None:
        return iter(())
    pinned, id_value = _simple_id(filter_doc)
    if pinned:
        doc = collection.get_by_id(id_value)
        return iter([doc] if doc is not None and matcher.matches(doc) else [])
    return (doc for doc in collection.documents() if matcher.matches(doc))
