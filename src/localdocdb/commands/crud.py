"""Write commands: insert, update, delete and findAndModify (command layer).

Replies are shaped as MongoDB shapes them
(https://www.mongodb.com/docs/manual/reference/command/nav-crud/): per-statement
failures go to `writeErrors` (`{index, code, errmsg}`), ordered batches stop at the
first one, unordered batches go on. Authorization comes first, before any
argument is looked at beyond the namespace. Importing this module also registers
the read commands (`queries.py`).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import bson

from localdocdb.commands import queries as _queries  # noqa: F401  (registers find, getMore, ...)
from localdocdb.commands.arguments import (
    check_document_size,
    optional_bool,
    optional_document,
    prepare_insert,
    target_collection,
    write_error,
)
from localdocdb.commands.registry import CommandContext, command
from localdocdb.commands.selection import compile_query, select_documents
from localdocdb.engine.aggregate import PipelineEnvironment, run_pipeline, stage_name
from localdocdb.engine.keys import hashable_key
from localdocdb.engine.persistence import ENCODE_OPTIONS
from localdocdb.engine.projection import compile_projection
from localdocdb.engine.sort import sort_documents
from localdocdb.engine.storage import Collection
from localdocdb.engine.update import (
    UpdateKind,
    apply_update,
    classify_update,
    upsert_seed,
    validate_replacement,
)
from localdocdb.errors import CommandError, failed_to_parse, type_mismatch

UPDATE_PIPELINE_STAGES = frozenset(
    {"$addFields", "$set", "$project", "$unset", "$replaceRoot", "$replaceWith"}
)


def _statements(cmd: Mapping[str, Any], field: str, limit: int) -> list[Any]:
    value = cmd.get(field)
    if not isinstance(value, list):
        raise type_mismatch(f"BSON field '{field}' is missing or not an array")
    if not value or len(value) > limit:
        raise CommandError(
            16,
            "InvalidLength",
            f"Write batch sizes must be between 1 and {limit}. Got {len(value)} operations.",
        )
    return value


# -- insert ---------------------------------------------------------------------------------


@command("insert")
async def insert(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Insert documents; ordered batches stop at the first failure."""
    name = target_collection(ctx, cmd, for_write=True)
    ctx.require("insert", name)
    documents = _statements(cmd, "documents", ctx.server.config.max_write_batch_size)
    ordered = optional_bool(cmd, "ordered", True)
    collection = ctx.server.catalog.collection(ctx.database, name)
    if collection is None:
        ctx.require("createCollection", name)
    inserted = 0
    errors: list[dict[str, Any]] = []
    for index, raw in enumerate(documents):
        try:
            doc = prepare_insert(ctx, raw)
            if collection is None:
                collection = ctx.server.catalog.get_or_create_collection(ctx.database, name)
            collection.insert(doc)
            inserted += 1
        except CommandError as error:
            errors.append(write_error(index, error))
            if ordered:
                break
    reply: dict[str, Any] = {"n": inserted}
    if errors:
        reply["writeErrors"] = errors
    reply["ok"] = 1.0
    return reply


# -- update ---------------------------------------------------------------------------------


def _environment(ctx: CommandContext) -> PipelineEnvironment:
    return PipelineEnvironment(ctx.server.catalog, ctx.database)


def compute_update(
    ctx: CommandContext,
    doc: Mapping[str, Any],
    update: Any,
    *,
    is_insert: bool,
    array_filters: list[Mapping[str, Any]] | None,
    query: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The new version of `doc` after an operator, replacement or pipeline update.

    `query` is the statement's filter, which the positional `$` operator refers to.
    """
    kind = classify_update(update)
    if kind is UpdateKind.PIPELINE:
        for stage in update:
            if stage_name(stage) not in UPDATE_PIPELINE_STAGES:
                raise CommandError(
                    72,
                    "InvalidOptions",
                    f"{stage_name(stage)} is not allowed to be used within an update",
                )
        results = run_pipeline(list(update), [dict(doc)], _environment(ctx))
        new = results[0] if results else {}
        if "_id" in doc:
            if "_id" in new and hashable_key(new["_id"]) != hashable_key(doc["_id"]):
                raise CommandError(
                    66,
                    "ImmutableField",
                    "Performing an update on the path '_id' would modify the immutable field '_id'",
                )
            new = {"_id": doc["_id"], **{k: v for k, v in new.items() if k != "_id"}}
        return new
    now = datetime.datetime.now(datetime.UTC)
    return apply_update(
        doc, update, is_insert=is_insert, array_filters=array_filters, now=now, query=query
    )


def _array_filters(statement: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    filters = statement.get("arrayFilters")
    if filters is None:
        return None
    if not isinstance(filters, list) or not all(isinstance(f, Mapping) for f in filters):
        raise type_mismatch("BSON field 'arrayFilters' must be an array of objects")
    return filters


def _same_document(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Byte equality: an update that changes nothing (not even a type) is not a modification."""
    return bson.encode(a, codec_options=ENCODE_OPTIONS) == bson.encode(
        b, codec_options=ENCODE_OPTIONS
    )


def upsert_document(
    ctx: CommandContext,
    collection: Collection,
    filter_doc: Mapping[str, Any],
    update: Any,
    array_filters: list[Mapping[str, Any]] | None,
) -> dict[str, Any]:
    """Insert the document an upsert creates; returns it."""
    seed = upsert_seed(filter_doc)
    if classify_update(update) is UpdateKind.REPLACEMENT:
        validate_replacement(update)
        new = dict(update)
        if "_id" in seed and "_id" not in new:
            new = {"_id": seed["_id"], **new}
    else:
        new = compute_update(
            ctx, seed, update, is_insert=True, array_filters=array_filters, query=filter_doc
        )
    prepared = prepare_insert(ctx, new)
    collection.insert(prepared)
    return prepared


def _update_one_statement(
    ctx: CommandContext, name: str, statement: Any
) -> tuple[int, int, Any | None]:
    """Run one update statement: (matched, modified, upserted _id or None)."""
    if not isinstance(statement, Mapping):
        raise type_mismatch("update statements must be objects")
    filter_doc = statement.get("q", {})
    update = statement.get("u")
    if update is None or not isinstance(update, Mapping | list):
        raise failed_to_parse("BSON field 'u' is missing or not an object or array")
    multi = optional_bool(statement, "multi")
    upsert = optional_bool(statement, "upsert")
    if multi and classify_update(update) is UpdateKind.REPLACEMENT and update:
        raise failed_to_parse("multi update is not supported for replacement-style update")
    array_filters = _array_filters(statement)
    matcher = compile_query(filter_doc)
    catalog = ctx.server.catalog
    collection = catalog.collection(ctx.database, name)
    matched = modified = 0
    for doc in list(select_documents(collection, filter_doc, matcher)):
        assert collection is not None
        matched += 1
        new = compute_update(
            ctx, doc, update, is_insert=False, array_filters=array_filters, query=filter_doc
        )
        if not _same_document(doc, new):
            check_document_size(ctx, new, "Resulting document after update")
            collection.replace(doc, new)
            modified += 1
        if not multi:
            break
    if matched == 0 and upsert:
        if collection is None:
            ctx.require("createCollection", name)
            collection = catalog.get_or_create_collection(ctx.database, name)
        created = upsert_document(ctx, collection, filter_doc, update, array_filters)
        return 0, 0, created["_id"]
    return matched, modified, None


@command("update")
async def update(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Apply update statements; reply n, nModified, upserted and writeErrors."""
    name = target_collection(ctx, cmd, for_write=True)
    ctx.require("update", name)
    statements = _statements(cmd, "updates", ctx.server.config.max_write_batch_size)
    if any(isinstance(s, Mapping) and s.get("upsert") for s in statements):
        ctx.require("insert", name)
    ordered = optional_bool(cmd, "ordered", True)
    matched_total = modified_total = 0
    upserted: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for index, statement in enumerate(statements):
        try:
            matched, modified, upserted_id = _update_one_statement(ctx, name, statement)
        except CommandError as error:
            errors.append(write_error(index, error))
            if ordered:
                break
            continue
        matched_total += matched
        modified_total += modified
        if upserted_id is not None:
            upserted.append({"index": index, "_id": upserted_id})
    reply: dict[str, Any] = {"n": matched_total + len(upserted), "nModified": modified_total}
    if upserted:
        reply["upserted"] = upserted
    if errors:
        reply["writeErrors"] = errors
    reply["ok"] = 1.0
    return reply


# -- delete ---------------------------------------------------------------------------------


@command("delete")
async def delete(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Delete matching documents (`limit: 1` one, `limit: 0` all) per statement."""
    name = target_collection(ctx, cmd, for_write=True)
    ctx.require("remove", name)
    statements = _statements(cmd, "deletes", ctx.server.config.max_write_batch_size)
    ordered = optional_bool(cmd, "ordered", True)
    collection = ctx.server.catalog.collection(ctx.database, name)
    deleted = 0
    errors: list[dict[str, Any]] = []
    for index, statement in enumerate(statements):
        try:
            if not isinstance(statement, Mapping):
                raise type_mismatch("delete statements must be objects")
            limit = statement.get("limit", 0)
            if limit not in (0, 1):
                raise failed_to_parse(
                    f"The limit field in delete objects must be 0 or 1. Got {limit}"
                )
            filter_doc = statement.get("q", {})
            matcher = compile_query(filter_doc)
            for doc in list(select_documents(collection, filter_doc, matcher)):
                assert collection is not None
                if collection.delete(doc):
                    deleted += 1
                if limit == 1:
                    break
        except CommandError as error:
            errors.append(write_error(index, error))
            if ordered:
                break
    reply: dict[str, Any] = {"n": deleted}
    if errors:
        reply["writeErrors"] = errors
    reply["ok"] = 1.0
    return reply


# -- findAndModify --------------------------------------------------------------------------


@command("findAndModify", "findandmodify")
async def find_and_modify(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Update or remove one document and return it (before or after, per `new`)."""
    name = target_collection(ctx, cmd, for_write=True)
    remove = optional_bool(cmd, "remove")
    update_spec = cmd.get("update")
    upsert = optional_bool(cmd, "upsert")
    return_new = optional_bool(cmd, "new")
    if remove:
        ctx.require("remove", name)
    else:
        ctx.require("update", name)
        if upsert:
            ctx.require("insert", name)
        ctx.require("find", name)
    if remove and update_spec is not None:
        raise failed_to_parse("Cannot specify both an update and remove=true")
    if not remove and update_spec is None:
        raise failed_to_parse("Either an update or remove=true must be specified")
    if remove and (upsert or return_new):
        raise failed_to_parse(
            "Cannot specify both upsert=true and remove=true"
            if upsert
            else "Cannot specify both new=true and remove=true; "
            "'remove' always returns the deleted document"
        )
    if update_spec is not None and not isinstance(update_spec, Mapping | list):
        raise failed_to_parse("Update argument must be either an object or an array")
    filter_doc = optional_document(cmd, "query") or {}
    sort_spec = optional_document(cmd, "sort")
    fields = optional_document(cmd, "fields")
    array_filters = _array_filters(cmd)
    matcher = compile_query(filter_doc)
    catalog = ctx.server.catalog
    collection = catalog.collection(ctx.database, name)
    candidates = list(select_documents(collection, filter_doc, matcher))
    if sort_spec:
        candidates = sort_documents(candidates, sort_spec)
    target = candidates[0] if candidates else None
    last_error: dict[str, Any]
    value: dict[str, Any] | None
    if remove:
        if target is not None:
            assert collection is not None
            collection.delete(target)
        last_error = {"n": 1 if target is not None else 0}
        value = target
    elif target is not None:
        assert collection is not None
        assert update_spec is not None
        new = compute_update(
            ctx, target, update_spec, is_insert=False, array_filters=array_filters, query=filter_doc
        )
        if not _same_document(target, new):
            check_document_size(ctx, new, "Resulting document after update")
            collection.replace(target, new)
        last_error = {"n": 1, "updatedExisting": True}
        value = new if return_new else target
    elif upsert:
        if collection is None:
            ctx.require("createCollection", name)
            collection = catalog.get_or_create_collection(ctx.database, name)
        created = upsert_document(ctx, collection, filter_doc, update_spec, array_filters)
        last_error = {"n": 1, "updatedExisting": False, "upserted": created["_id"]}
        value = created if return_new else None
    else:
        last_error = {"n": 0, "updatedExisting": False}
        value = None
    if value is not None and fields:
        value = compile_projection(fields).apply(value)
    return {"lastErrorObject": last_error, "value": value, "ok": 1.0}
