"""The writing aggregation stages `$out` and `$merge` (engine layer).

`$out` fills a temporary collection in the target database (with the target's
indexes) and renames it over the target, so readers see either the old or the new
contents, never a mix (https://www.mongodb.com/docs/manual/reference/operator/aggregation/out/).
`$merge` folds the results into the target document by document
(https://www.mongodb.com/docs/manual/reference/operator/aggregation/merge/).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bson import ObjectId

from localdocdb.engine.expressions import ABSENT, field_path
from localdocdb.engine.keys import hashable_key
from localdocdb.engine.storage import ID_INDEX_NAME, Collection
from localdocdb.errors import CommandError, failed_to_parse

if TYPE_CHECKING:
    from localdocdb.engine.aggregate import PipelineEnvironment

WHEN_MATCHED = frozenset({"replace", "merge", "keepExisting", "fail"})
WHEN_NOT_MATCHED = frozenset({"insert", "discard", "fail"})


def _with_id(doc: dict[str, Any]) -> dict[str, Any]:
    """The document with an `_id` first, generating one if the pipeline dropped it."""
    if "_id" in doc:
        return doc
    return {"_id": ObjectId(), **doc}


def _target_names(spec: Any, database: str, stage: str) -> tuple[str, str]:
    if isinstance(spec, str) and spec:
        return database, spec
    if isinstance(spec, Mapping) and isinstance(spec.get("coll"), str):
        return str(spec.get("db", database)), spec["coll"]
    raise failed_to_parse(f"{stage} target must be a collection name or {{db, coll}}")


def out_stage(spec: Any, docs: list[dict[str, Any]], env: PipelineEnvironment) -> None:
    """Replace the target collection's contents with `docs`, atomically."""
    database, name = _target_names(spec, env.database, "$out")
    catalog = env.catalog
    existing = catalog.collection(database, name)
    temp_name = catalog.temporary_collection_name()
    temp = catalog.create_collection(database, temp_name)
    try:
        if existing is not None:
            for index in existing.indexes():
                if index.name != ID_INDEX_NAME:
                    temp.create_index(index)
        for doc in docs:
            temp.insert(_with_id(doc))
    except CommandError:
        catalog.drop_collection(database, temp_name)
        raise
    catalog.rename_collection(database, temp_name, database, name, drop_target=True)


def _on_fields(spec: Mapping[str, Any]) -> list[str]:
    on = spec.get("on", "_id")
    fields = [on] if isinstance(on, str) else on
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
        raise failed_to_parse("$merge 'on' must be a field name or an array of field names")
    return list(fields)


def _find_match(
    target: Collection, doc: Mapping[str, Any], fields: list[str]
) -> dict[str, Any] | None:
    """The target document whose `on` fields equal `doc`'s."""
    if fields == ["_id"]:
        return target.get_by_id(doc["_id"])
    wanted = [hashable_key(field_path(doc, f)) for f in fields]
    for candidate in target.documents():
        if [hashable_key(field_path(candidate, f)) for f in fields] == wanted:
            return candidate
    return None


def merge_stage(spec: Any, docs: list[dict[str, Any]], env: PipelineEnvironment) -> None:
    """Fold `docs` into the target collection as `whenMatched`/`whenNotMatched` say."""
    if isinstance(spec, str):
        spec = {"into": spec}
    if not isinstance(spec, Mapping) or "into" not in spec:
        raise failed_to_parse("$merge requires an 'into' target")
    database, name = _target_names(spec["into"], env.database, "$merge")
    when_matched = spec.get("whenMatched", "merge")
    when_not_matched = spec.get("whenNotMatched", "insert")
    if when_matched not in WHEN_MATCHED:
        raise CommandError(
            51191, "Location51191", f"$merge whenMatched {when_matched!r} is not supported"
        )
    if when_not_matched not in WHEN_NOT_MATCHED:
        raise failed_to_parse(f"$merge whenNotMatched must be one of {sorted(WHEN_NOT_MATCHED)}")
    fields = _on_fields(spec)
    target = env.catalog.get_or_create_collection(database, name)
    for raw in docs:
        doc = _with_id(raw) if fields == ["_id"] else raw
        for field_name in fields:
            if field_path(doc, field_name) is ABSENT:
                raise CommandError(
                    51132,
                    "Location51132",
                    f"$merge write error: 'on' field '{field_name}' cannot be missing, null, "
                    "undefined or an array",
                )
        match = _find_match(target, doc, fields)
        if match is None:
            if when_not_matched == "insert":
                target.insert(_with_id(dict(doc)))
            elif when_not_matched == "fail":
                raise CommandError(
                    13113,
                    "MergeStageNoMatchingDocument",
                    "$merge could not find a matching document in the target collection for at "
                    "least one document in the source collection",
                )
            continue
        if when_matched == "keepExisting":
            continue
        if when_matched == "fail":
            raise target.duplicate_key_error(target.indexes()[0], match)
        if when_matched == "replace":
            new = {"_id": match["_id"], **{k: v for k, v in doc.items() if k != "_id"}}
        else:
            new = dict(match)
            new.update({k: v for k, v in doc.items() if k != "_id"})
        target.replace(match, new)
