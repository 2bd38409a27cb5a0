"""Read commands: find, getMore, killCursors, count, distinct and aggregate (command layer).

Cursor replies are `{cursor: {firstBatch|nextBatch, id, ns}, ok}`; the first batch
defaults to 101 documents and every batch stays under the 16 MiB reply limit
(https://www.mongodb.com/docs/manual/reference/command/find/). Pipelines are
authorized namespace by namespace before they run: `$lookup`/`$unionWith` need
`find` on what they read, `$out`/`$merge` need write actions on their target.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from localdocdb.commands.arguments import (
    batch_size_of,
    cursor_batch_size,
    cursor_owner,
    cursor_reply,
    optional_bool,
    optional_document,
    optional_integer,
    target_collection,
    validate_collection_name,
    validate_database_name,
)
from localdocdb.commands.registry import CommandContext, command
from localdocdb.commands.selection import compile_query, expr_evaluator, select_documents
from localdocdb.engine.aggregate import (
    PipelineEnvironment,
    pipeline_namespaces,
    run_pipeline,
    stage_name,
    type_mismatch_pipeline,
)
from localdocdb.engine.cursors import DEFAULT_FIRST_BATCH
from localdocdb.engine.expressions import ABSENT, field_path
from localdocdb.engine.keys import hashable_key
from localdocdb.engine.projection import compile_projection
from localdocdb.engine.sort import sort_documents
from localdocdb.errors import (
    CommandError,
    bad_value,
    failed_to_parse,
    invalid_namespace,
    type_mismatch,
)


def _limited(
    docs: Iterable[dict[str, Any]], skip: int, limit: int | None
) -> Iterator[dict[str, Any]]:
    stop = None if limit is None else skip + limit
    return itertools.islice(docs, skip, stop)


@command("find")
async def find(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Open a cursor over the matching documents (filter, sort, skip, limit, projection)."""
    name = target_collection(ctx, cmd)
    ctx.require("find", name)
    filter_doc = optional_document(cmd, "filter") or {}
    projection_spec = optional_document(cmd, "projection")
    sort_spec = optional_document(cmd, "sort")
    skip = optional_integer(cmd, "skip", 0) or 0
    if skip < 0:
        raise bad_value(f"skip value must be non-negative, but received: {skip}")
    limit = optional_integer(cmd, "limit")
    single_batch = optional_bool(cmd, "singleBatch")
    if limit is not None and limit < 0:
        limit, single_batch = -limit, True
    if limit == 0:
        limit = None
    batch_size = batch_size_of(cmd)
    matcher = compile_query(filter_doc)
    projection = (
        compile_projection(projection_spec, query=filter_doc, expr_evaluator=expr_evaluator)
        if projection_spec
        else None
    )
    collection = ctx.server.catalog.collection(ctx.database, name)
    docs: Iterable[dict[str, Any]] = select_documents(collection, filter_doc, matcher)
    if sort_spec and "$natural" in sort_spec:
        # {$natural: -1} is reverse insertion order; no other key may accompany it.
        if len(sort_spec) != 1:
            raise bad_value("$natural sort cannot be combined with other sort keys")
        if sort_spec["$natural"] == -1:
            docs = list(docs)[::-1]
        sort_spec = None
    if sort_spec:
        docs = sort_documents(docs, sort_spec)
    results = _limited(docs, skip, limit)
    if projection is not None:
        results = (projection.apply(doc) for doc in results)
    first = DEFAULT_FIRST_BATCH if batch_size is None else batch_size
    if single_batch and limit is not None and batch_size is None:
        first = limit
    namespace = f"{ctx.database}.{name}"
    batch, cursor_id = ctx.server.cursors.open(
        namespace, results, cursor_owner(ctx), batch_size=first, single_batch=single_batch
    )
    return cursor_reply(batch, cursor_id, namespace, first=True)


def _cursor_collection_action(collection: str) -> tuple[str, str | None]:
    """The privilege a getMore on this collection name needs: (action, collection or None)."""
    if collection == "$cmd.listCollections":
        return "listCollections", None
    return "find", collection


@command("getMore")
async def get_more(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """The next batch of an open cursor (same users, same namespace)."""
    cursor_id = cmd.get("getMore")
    if isinstance(cursor_id, bool) or not isinstance(cursor_id, int):
        raise type_mismatch("BSON field 'getMore.getMore' is the wrong type, expected type 'long'")
    collection = cmd.get("collection")
    if not isinstance(collection, str) or not collection:
        raise type_mismatch("BSON field 'getMore.collection' is missing or not a string")
    validate_database_name(ctx.database)
    action, resource = _cursor_collection_action(collection)
    ctx.require(action, resource)
    batch_size = batch_size_of(cmd)
    namespace = f"{ctx.database}.{collection}"
    batch, next_id = ctx.server.cursors.get_more(
        int(cursor_id), namespace, cursor_owner(ctx), batch_size or None
    )
    return cursor_reply(batch, next_id, namespace, first=False)


@command("killCursors")
async def kill_cursors(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Close cursors by id; reports which were killed and which were not found."""
    collection = cmd.get("killCursors")
    if not isinstance(collection, str) or not collection:
        raise invalid_namespace("killCursors needs a collection name")
    validate_database_name(ctx.database)
    ctx.require("killCursors", collection if not collection.startswith("$cmd.") else None)
    ids = cmd.get("cursors")
    if not isinstance(ids, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in ids
    ):
        raise type_mismatch("BSON field 'killCursors.cursors' must be an array of longs")
    namespace = f"{ctx.database}.{collection}"
    owner = cursor_owner(ctx)
    killed: list[Any] = []
    not_found: list[Any] = []
    for cursor_id in ids:
        (killed if ctx.server.cursors.kill(int(cursor_id), namespace, owner) else not_found).append(
            cursor_id
        )
    return {
        "cursorsKilled": killed,
        "cursorsNotFound": not_found,
        "cursorsAlive": [],
        "cursorsUnknown": [],
        "ok": 1.0,
    }


@command("count")
async def count(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """How many documents match `query` (after `skip`, capped by `limit`)."""
    name = target_collection(ctx, cmd)
    ctx.require("find", name)
    filter_doc = optional_document(cmd, "query") or {}
    skip = optional_integer(cmd, "skip", 0) or 0
    if skip < 0:
        raise bad_value("skip value is negative in count query")
    limit = optional_integer(cmd, "limit")
    limit = None if not limit else abs(limit)
    matcher = compile_query(filter_doc)
    collection = ctx.server.catalog.collection(ctx.database, name)
    total = sum(1 for _ in _limited(select_documents(collection, filter_doc, matcher), skip, limit))
    return {"n": total, "ok": 1.0}


@command("distinct")
async def distinct(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """The distinct values of `key` among matching documents (arrays contribute elements)."""
    name = target_collection(ctx, cmd)
    ctx.require("find", name)
    key = cmd.get("key")
    if not isinstance(key, str) or not key:
        raise failed_to_parse("BSON field 'distinct.key' is missing or not a string")
    filter_doc = optional_document(cmd, "query") or {}
    matcher = compile_query(filter_doc)
    collection = ctx.server.catalog.collection(ctx.database, name)
    seen: set[Any] = set()
    values: list[Any] = []
    for doc in select_documents(collection, filter_doc, matcher):
        found = field_path(doc, key)
        if found is ABSENT:
            continue
        items = found if isinstance(found, list) else [found]
        for item in items:
            marker = hashable_key(item)
            if marker not in seen:
                seen.add(marker)
                values.append(item)
    return {"values": sort_documents_values(values), "ok": 1.0}


def sort_documents_values(values: list[Any]) -> list[Any]:
    """Distinct values in BSON order, as MongoDB returns them."""
    wrapped = sort_documents(({"v": v} for v in values), {"v": 1})
    return [w["v"] for w in wrapped]


def _authorize_pipeline(ctx: CommandContext, pipeline: list[Any]) -> None:
    """Check every namespace a pipeline reads or writes, before it runs."""
    found = pipeline_namespaces(pipeline, ctx.database)
    for namespace in found.reads:
        validate_database_name(namespace.database)
        validate_collection_name(namespace.database, namespace.collection)
        ctx.require("find", namespace.collection, database=namespace.database)
    for stage, target in found.writes:
        validate_database_name(target.database)
        validate_collection_name(target.database, target.collection, for_write=True)
        ctx.require("insert", target.collection, database=target.database)
        ctx.require(
            "remove" if stage == "$out" else "update", target.collection, database=target.database
        )
        if ctx.server.catalog.collection(target.database, target.collection) is None:
            ctx.require("createCollection", target.collection, database=target.database)


@command("aggregate")
async def aggregate(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Run an aggregation pipeline over a collection (or `aggregate: 1` with `$documents`)."""
    source = cmd.get("aggregate")
    pipeline = cmd.get("pipeline")
    if not isinstance(pipeline, list):
        raise type_mismatch_pipeline()
    if cmd.get("explain"):
        raise CommandError(
            115, "CommandNotSupported", "localdocdb does not support aggregate explain"
        )
    if "cursor" not in cmd:
        raise failed_to_parse(
            "The 'cursor' option is required, except for aggregate with the explain argument"
        )
    batch_size = cursor_batch_size(cmd)
    validate_database_name(ctx.database)
    if source == 1 or (isinstance(source, float) and source == 1.0):
        if not pipeline or stage_name(pipeline[0]) != "$documents":
            first_stage = stage_name(pipeline[0]) if pipeline else "an empty pipeline"
            raise invalid_namespace(
                f"{{aggregate: 1}} is not valid for '{first_stage}'; a collection is required."
            )
        collection_name = "$cmd.aggregate"
        documents: Iterable[dict[str, Any]] = ()
    else:
        collection_name = target_collection(ctx, cmd)
        ctx.require("find", collection_name)
        collection = ctx.server.catalog.collection(ctx.database, collection_name)
        documents = collection.documents() if collection is not None else ()
    _authorize_pipeline(ctx, pipeline)
    variables = optional_document(cmd, "let") or {}
    env = PipelineEnvironment(ctx.server.catalog, ctx.database, dict(variables))
    results = run_pipeline(pipeline, documents, env)
    namespace = f"{ctx.database}.{collection_name}"
    first = DEFAULT_FIRST_BATCH if batch_size is None else batch_size
    batch, cursor_id = ctx.server.cursors.open(
        namespace, iter(results), cursor_owner(ctx), batch_size=first
    )
    return cursor_reply(batch, cursor_id, namespace, first=True)
