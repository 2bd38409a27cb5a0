"""Catalog commands: databases, collections and indexes, and their statistics (command layer).

listDatabases, listCollections, create, drop, dropDatabase, renameCollection,
createIndexes, listIndexes, dropIndexes, dbStats and collStats, with MongoDB's
reply shapes and privilege checks
(https://www.mongodb.com/docs/manual/reference/command/nav-administration/).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bson import Binary

from localdocdb.auth.roles import ResourceKind, is_authorized
from localdocdb.commands.arguments import (
    cursor_batch_size,
    cursor_owner,
    cursor_reply,
    optional_bool,
    optional_document,
    split_namespace,
    target_collection,
    validate_collection_name,
    validate_database_name,
)
from localdocdb.commands.registry import CommandContext, command
from localdocdb.engine.cursors import DEFAULT_FIRST_BATCH
from localdocdb.engine.matcher import compile_filter
from localdocdb.engine.storage import (
    ID_INDEX,
    ID_INDEX_NAME,
    Collection,
    IndexSpec,
    default_index_name,
)
from localdocdb.errors import (
    CommandError,
    bad_value,
    namespace_not_found,
    type_mismatch,
    unauthorized,
)

UNSUPPORTED_CREATE_OPTIONS = {
    "capped": "capped collections",
    "viewOn": "views",
    "timeseries": "time series collections",
    "clusteredIndex": "clustered collections",
    "encryptedFields": "queryable encryption",
}
INDEX_TYPES = frozenset({"text", "hashed", "2d", "2dsphere"})
MAX_INDEX_NAME_BYTES = 127


def _not_supported(what: str) -> CommandError:
    return CommandError(115, "CommandNotSupported", f"localdocdb does not support {what}")


def _admin_only(ctx: CommandContext, name: str) -> None:
    if ctx.database != "admin":
        raise unauthorized(f"{name} may only be run against the admin database.")


# -- databases ------------------------------------------------------------------------------


def _database_visible(ctx: CommandContext, database: str) -> bool:
    """Whether a user without listDatabases may see `database` (they hold a role on it)."""
    return any(ref.db == database for ref in ctx.roles())


@command("listDatabases")
async def list_databases(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """The databases, with sizes unless `nameOnly`; limited to authorized ones without privilege."""
    _admin_only(ctx, "listDatabases")
    privileged = is_authorized(ctx.roles(), "listDatabases", ResourceKind.CLUSTER)
    authorized_only = cmd.get("authorizedDatabases")
    if not privileged and authorized_only is False:
        ctx.require_cluster("listDatabases")
    name_only = optional_bool(cmd, "nameOnly")
    matcher = compile_filter(optional_document(cmd, "filter") or {})
    catalog = ctx.server.catalog
    entries: list[dict[str, Any]] = []
    total = 0
    for name in catalog.database_names():
        if not privileged and not _database_visible(ctx, name):
            continue
        size = catalog.database_size(name)
        entry: dict[str, Any] = {"name": name, "sizeOnDisk": size, "empty": size == 0}
        if not matcher.matches(entry):
            continue
        total += size
        entries.append({"name": name} if name_only else entry)
    if name_only:
        return {"databases": entries, "ok": 1.0}
    return {
        "databases": entries,
        "totalSize": total,
        "totalSizeMb": total // (1024 * 1024),
        "ok": 1.0,
    }


@command("dropDatabase")
async def drop_database(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Drop every collection of the database."""
    validate_database_name(ctx.database)
    ctx.require("dropDatabase")
    ctx.server.catalog.drop_database(ctx.database)
    return {"dropped": ctx.database, "ok": 1.0}


@command("dbStats")
async def db_stats(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Counts and sizes for the database."""
    validate_database_name(ctx.database)
    ctx.require("dbStats")
    scale = cmd.get("scale", 1)
    if not isinstance(scale, int | float) or isinstance(scale, bool) or scale < 1:
        raise bad_value("Scale factor must be greater than zero")
    scale = int(scale)
    collections = ctx.server.catalog.collections(ctx.database)
    objects = sum(len(c) for c in collections)
    data_size = sum(c.data_size() for c in collections)
    indexes = sum(len(c.indexes()) for c in collections)
    return {
        "db": ctx.database,
        "collections": len(collections),
        "views": 0,
        "objects": objects,
        "avgObjSize": (data_size / objects) if objects else 0,
        "dataSize": data_size / scale,
        "storageSize": data_size / scale,
        "indexes": indexes,
        "indexSize": 0,
        "totalSize": data_size / scale,
        "scaleFactor": scale,
        "fsUsedSize": 0,
        "fsTotalSize": 0,
        "ok": 1.0,
    }


# -- collections ----------------------------------------------------------------------------


def collection_entry(collection: Collection) -> dict[str, Any]:
    """A listCollections entry."""
    return {
        "name": collection.name,
        "type": "collection",
        "options": dict(collection.info.options),
        "info": {"readOnly": False, "uuid": Binary.from_uuid(collection.info.uuid)},
        "idIndex": ID_INDEX.to_document(),
    }


@command("listCollections")
async def list_collections(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """The database's collections as a cursor (filter, nameOnly, authorizedCollections)."""
    database = validate_database_name(ctx.database)
    name_only = optional_bool(cmd, "nameOnly")
    authorized_only = optional_bool(cmd, "authorizedCollections")
    privileged = is_authorized(ctx.roles(), "listCollections", ResourceKind.DATABASE, database)
    if not privileged and not (authorized_only and name_only):
        ctx.require("listCollections")
    matcher = compile_filter(optional_document(cmd, "filter") or {})
    batch_size = cursor_batch_size(cmd)
    entries: list[dict[str, Any]] = []
    for collection in ctx.server.catalog.collections(database):
        if not privileged and not is_authorized(
            ctx.roles(), "find", ResourceKind.COLLECTION, database, collection.name
        ):
            continue
        entry = collection_entry(collection)
        if not matcher.matches(entry):
            continue
        entries.append({"name": entry["name"], "type": entry["type"]} if name_only else entry)
    namespace = f"{database}.$cmd.listCollections"
    first = DEFAULT_FIRST_BATCH if batch_size is None else batch_size
    batch, cursor_id = ctx.server.cursors.open(
        namespace, iter(entries), cursor_owner(ctx), batch_size=first
    )
    return cursor_reply(batch, cursor_id, namespace, first=True)


@command("create")
async def create(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Create a collection explicitly; NamespaceExists (48) if it is there."""
    name = target_collection(ctx, cmd, for_write=True)
    ctx.require("createCollection", name)
    for option, what in UNSUPPORTED_CREATE_OPTIONS.items():
        if cmd.get(option):
            raise _not_supported(what)
    options = {
        key: value
        for key, value in cmd.items()
        if key
        in {
            "validator",
            "validationLevel",
            "validationAction",
            "storageEngine",
            "indexOptionDefaults",
        }
    }
    ctx.server.catalog.create_collection(ctx.database, name, options)
    return {"ok": 1.0}


@command("drop")
async def drop(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Drop a collection; NamespaceNotFound (26) if it does not exist."""
    name = target_collection(ctx, cmd)
    ctx.require("dropCollection", name)
    dropped = ctx.server.catalog.drop_collection(ctx.database, name)
    if dropped is None:
        raise namespace_not_found("ns not found")
    return {"nIndexesWas": len(dropped.indexes()), "ns": f"{ctx.database}.{name}", "ok": 1.0}


@command("renameCollection")
async def rename_collection(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Move a collection to a new name, in the same or another database."""
    _admin_only(ctx, "renameCollection")
    source_db, source = split_namespace(cmd.get("renameCollection"), "source")
    target_db, target = split_namespace(cmd.get("to"), "target")
    validate_collection_name(target_db, target, for_write=True)
    drop_target = optional_bool(cmd, "dropTarget")
    catalog = ctx.server.catalog
    if source_db == target_db:
        ctx.require("renameCollectionSameDB", None, database=source_db)
    else:
        ctx.require("find", source, database=source_db)
        ctx.require("dropCollection", source, database=source_db)
        ctx.require("insert", target, database=target_db)
        ctx.require("createCollection", target, database=target_db)
    if drop_target and catalog.collection(target_db, target) is not None:
        ctx.require("dropCollection", target, database=target_db)
    catalog.rename_collection(source_db, source, target_db, target, drop_target=drop_target)
    return {"ok": 1.0}


@command("collStats")
async def coll_stats(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Counts and sizes for one collection."""
    name = target_collection(ctx, cmd)
    ctx.require("collStats", name)
    collection = ctx.server.catalog.collection(ctx.database, name)
    if collection is None:
        raise namespace_not_found(f"Collection [{ctx.database}.{name}] not found.")
    count = len(collection)
    size = collection.data_size()
    indexes = collection.indexes()
    return {
        "ns": collection.full_name,
        "count": count,
        "size": size,
        "avgObjSize": size // count if count else 0,
        "storageSize": size,
        "nindexes": len(indexes),
        "totalIndexSize": 0,
        "indexSizes": {index.name: 0 for index in indexes},
        "capped": False,
        "ok": 1.0,
    }


# -- indexes --------------------------------------------------------------------------------


def parse_index_spec(raw: Any) -> IndexSpec:
    """One `indexes` entry of createIndexes, validated."""
    if not isinstance(raw, Mapping):
        raise type_mismatch("each index specification must be an object")
    key = raw.get("key")
    if not isinstance(key, Mapping) or not key:
        raise CommandError(67, "CannotCreateIndex", "Index keys cannot be empty.")
    pairs: list[tuple[str, Any]] = []
    for field, direction in key.items():
        if not field or str(field).startswith("$"):
            raise CommandError(
                67, "CannotCreateIndex", f"Index key contains an illegal field name: {field}"
            )
        valid_number = (
            isinstance(direction, int | float)
            and not isinstance(direction, bool)
            and direction != 0
        )
        if not valid_number and direction not in INDEX_TYPES:
            raise CommandError(
                67, "CannotCreateIndex", f"Values in the index key pattern can't be {direction!r}"
            )
        whole = isinstance(direction, float) and direction == int(direction)
        pairs.append((str(field), int(direction) if whole else direction))
    name = raw.get("name", default_index_name(pairs))
    if not isinstance(name, str) or not name or len(name.encode()) > MAX_INDEX_NAME_BYTES:
        raise CommandError(67, "CannotCreateIndex", "index name must be a non-empty string")
    if name == ID_INDEX_NAME and pairs != [("_id", 1)]:
        raise bad_value("The index name '_id_' is reserved for the _id index")
    options = tuple(
        (k, v)
        for k, v in raw.items()
        if k in {"expireAfterSeconds", "partialFilterExpression", "collation"}
    )
    unique = bool(raw.get("unique", False))
    if pairs == [("_id", 1)]:
        unique = True
    return IndexSpec(name, tuple(pairs), unique, bool(raw.get("sparse", False)), options)


@command("createIndexes")
async def create_indexes(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Create indexes (unique ones refuse existing duplicates with 11000)."""
    name = target_collection(ctx, cmd, for_write=True)
    ctx.require("createIndex", name)
    raw_indexes = cmd.get("indexes")
    if not isinstance(raw_indexes, list) or not raw_indexes:
        raise bad_value("Must specify at least one index to create")
    specs = [parse_index_spec(raw) for raw in raw_indexes]
    catalog = ctx.server.catalog
    collection = catalog.collection(ctx.database, name)
    created_collection = collection is None
    if collection is None:
        ctx.require("createCollection", name)
        collection = catalog.create_collection(ctx.database, name)
    before = len(collection.indexes())
    created: list[str] = []
    try:
        for spec in specs:
            if spec.key == ID_INDEX.key and spec.name == ID_INDEX_NAME:
                continue
            if collection.create_index(spec):
                created.append(spec.name)
    except CommandError:
        for index_name in created:
            collection.drop_index(index_name)
        if created_collection:
            catalog.drop_collection(ctx.database, name)
        raise
    reply: dict[str, Any] = {
        "numIndexesBefore": before,
        "numIndexesAfter": len(collection.indexes()),
        "createdCollectionAutomatically": created_collection,
    }
    if not created:
        reply["note"] = "all indexes already exist"
    reply["ok"] = 1.0
    return reply


@command("listIndexes")
async def list_indexes(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """The indexes of a collection as a cursor."""
    name = target_collection(ctx, cmd)
    ctx.require("listIndexes", name)
    collection = ctx.server.catalog.collection(ctx.database, name)
    if collection is None:
        raise namespace_not_found(f"ns does not exist: {ctx.database}.{name}")
    batch_size = cursor_batch_size(cmd)
    entries = [index.to_document() for index in collection.indexes()]
    namespace = f"{ctx.database}.{name}"
    first = DEFAULT_FIRST_BATCH if batch_size is None else batch_size
    batch, cursor_id = ctx.server.cursors.open(
        namespace, iter(entries), cursor_owner(ctx), batch_size=first
    )
    return cursor_reply(batch, cursor_id, namespace, first=True)


def _indexes_to_drop(collection: Collection, selector: Any) -> list[str]:
    """Names selected by dropIndexes' `index` (name, key pattern, "*" or list of names)."""
    if selector == "*":
        return [i.name for i in collection.indexes() if i.name != ID_INDEX_NAME]
    if isinstance(selector, str):
        return [selector]
    if isinstance(selector, list) and all(isinstance(n, str) for n in selector):
        return list(selector)
    if isinstance(selector, Mapping):
        key = tuple(selector.items())
        for index in collection.indexes():
            if index.key == key:
                return [index.name]
        raise CommandError(27, "IndexNotFound", f"can't find index with key: {dict(selector)}")
    raise type_mismatch("dropIndexes 'index' must be a name, a key pattern, '*' or a list of names")


@command("dropIndexes", "deleteIndexes")
async def drop_indexes(ctx: CommandContext, cmd: dict[str, Any]) -> dict[str, Any]:
    """Drop indexes by name, key pattern, list of names or "*"."""
    name = target_collection(ctx, cmd)
    ctx.require("dropIndex", name)
    collection = ctx.server.catalog.collection(ctx.database, name)
    if collection is None:
        raise namespace_not_found(f"ns not found {ctx.database}.{name}")
    selector = cmd.get("index")
    names = _indexes_to_drop(collection, selector)
    before = len(collection.indexes())
    for index_name in names:
        if collection.index(index_name) is None:
            raise CommandError(27, "IndexNotFound", f"index not found with name [{index_name}]")
    for index_name in names:
        collection.drop_index(index_name)
    reply: dict[str, Any] = {"nIndexesWas": before}
    if selector == "*":
        reply["msg"] = "non-_id indexes dropped for collection"
    reply["ok"] = 1.0
    return reply
