"""Argument checks shared by the data commands: names, numbers, documents, cursor replies.

Command layer helpers (not handlers). Name rules follow MongoDB's
(https://www.mongodb.com/docs/manual/reference/limits/#naming-restrictions): database
names without `/\\. "$` and shorter than 64 bytes, collection names non-empty without
`$` or NUL, `system.*` not writable by users.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import bson
from bson import Int64, ObjectId, Regex
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions

from localdocdb.commands.registry import CommandContext
from localdocdb.engine.cursors import owner_of
from localdocdb.errors import CommandError, bad_value, invalid_namespace, type_mismatch

MAX_DATABASE_NAME_BYTES = 63
MAX_NAMESPACE_BYTES = 255
INVALID_DATABASE_CHARACTERS = frozenset('/\\. "$\0')
MAX_FIELD_NESTING = 180  # MongoDB's maximum document nesting depth
_SIZE_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    uuid_representation=UuidRepresentation.STANDARD
)


def validate_database_name(name: Any) -> str:
    """A usable database name, or InvalidNamespace (73)."""
    if not isinstance(name, str) or not name:
        raise invalid_namespace(f"Invalid database name: '{name}'")
    if len(name.encode()) > MAX_DATABASE_NAME_BYTES or INVALID_DATABASE_CHARACTERS & set(name):
        raise invalid_namespace(f"Invalid database name: '{name}'")
    return name


def validate_collection_name(database: str, name: Any, *, for_write: bool = False) -> str:
    """A usable collection name, or InvalidNamespace (73)."""
    if not isinstance(name, str):
        kind = type(name).__name__
        raise invalid_namespace(f"collection name has invalid type {kind}")
    if not name or name.startswith(".") or "\0" in name:
        raise invalid_namespace(f"Invalid namespace specified '{database}.{name}'")
    if "$" in name:
        raise invalid_namespace(f"Invalid collection name: {name}")
    if len(f"{database}.{name}".encode()) > MAX_NAMESPACE_BYTES:
        raise invalid_namespace(f"Fully qualified namespace is too long: {database}.{name}")
    if for_write and name.startswith("system."):
        raise invalid_namespace(f"cannot write to '{database}.{name}'")
    return name


def target_collection(
    ctx: CommandContext, cmd: Mapping[str, Any], *, for_write: bool = False
) -> str:
    """The collection named by the command's first field, validated with its database."""
    validate_database_name(ctx.database)
    return validate_collection_name(ctx.database, cmd.get(ctx.command_name), for_write=for_write)


def split_namespace(value: Any, field: str) -> tuple[str, str]:
    """`db.collection` -> (db, collection), validated."""
    if not isinstance(value, str) or "." not in value:
        raise invalid_namespace(f"Invalid {field} namespace: {value}")
    database, _, collection = value.partition(".")
    return validate_database_name(database), validate_collection_name(database, collection)


def optional_document(cmd: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """An optional sub-document argument (None when absent or null)."""
    value = cmd.get(name)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise type_mismatch(
            f"BSON field '{name}' is the wrong type '{type(value).__name__}', "
            "expected type 'object'"
        )
    return dict(value)


def optional_integer(cmd: Mapping[str, Any], name: str, default: int | None = None) -> int | None:
    """An optional whole-number argument (int, Int64 or integral double)."""
    value = cmd.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise type_mismatch(f"BSON field '{name}' is the wrong type, expected a number")
    return int(value)


def optional_bool(cmd: Mapping[str, Any], name: str, default: bool = False) -> bool:
    """An optional boolean argument (numbers are accepted as MongoDB does)."""
    value = cmd.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool | int | float):
        raise type_mismatch(f"BSON field '{name}' is the wrong type, expected a boolean")
    return bool(value)


def document_size(doc: Mapping[str, Any]) -> int:
    """The BSON size of a document."""
    return len(bson.encode(doc, codec_options=_SIZE_OPTIONS))


def check_document_size(
    ctx: CommandContext, doc: Mapping[str, Any], what: str = "object to insert"
) -> None:
    """BSONObjectTooLarge (10334) for documents over the server's 16 MiB limit."""
    size = document_size(doc)
    limit = ctx.server.config.max_bson_object_size
    if size > limit:
        raise CommandError(
            10334,
            "BSONObjectTooLarge",
            f"{what} too large. size in bytes: {size}, max size: {limit}",
        )


def _check_field_names(doc: Mapping[str, Any], depth: int) -> None:
    if depth > MAX_FIELD_NESTING:
        raise CommandError(15, "Overflow", "document nesting is too deep")
    for key, value in doc.items():
        if key.startswith("$"):
            raise bad_value(f"Document can't have $ prefixed field names: {key}")
        if isinstance(value, Mapping):
            _check_field_names(value, depth + 1)


def prepare_insert(ctx: CommandContext, doc: Any) -> dict[str, Any]:
    """The document as stored: `_id` first (generated if missing), names and size checked."""
    if not isinstance(doc, Mapping):
        raise type_mismatch("documents to insert must be objects")
    _check_field_names(doc, 0)
    if "_id" in doc:
        id_value = doc["_id"]
        if isinstance(id_value, list):
            raise bad_value("can't use an array for _id")
        if isinstance(id_value, Regex):
            raise bad_value("can't use a regex for _id")
        prepared = {"_id": id_value, **{k: v for k, v in doc.items() if k != "_id"}}
    else:
        prepared = {"_id": ObjectId(), **doc}
    check_document_size(ctx, prepared)
    return prepared


def write_error(index: int, error: CommandError) -> dict[str, Any]:
    """One `writeErrors` entry, as MongoDB shapes it."""
    entry: dict[str, Any] = {"index": index, "code": error.code}
    entry.update(error.extra)
    entry["errmsg"] = error.errmsg
    return entry


def cursor_owner(ctx: CommandContext) -> frozenset[str]:
    """The owner set for cursors this connection opens."""
    return owner_of(ctx.connection.users)


def cursor_reply(
    batch: list[dict[str, Any]], cursor_id: int, namespace: str, *, first: bool
) -> dict[str, Any]:
    """`{cursor: {firstBatch|nextBatch, id, ns}, ok: 1.0}`."""
    key = "firstBatch" if first else "nextBatch"
    return {"cursor": {key: batch, "id": Int64(cursor_id), "ns": namespace}, "ok": 1.0}


def batch_size_of(cmd: Mapping[str, Any], field: str = "batchSize") -> int | None:
    """A non-negative batchSize, or None when absent."""
    size = optional_integer(cmd, field)
    if size is not None and size < 0:
        raise CommandError(
            51024, "Location51024", f"BatchSize value must be non-negative, but received: {size}"
        )
    return size


def cursor_batch_size(cmd: Mapping[str, Any]) -> int | None:
    """`cursor: {batchSize}` of aggregate/listCollections/listIndexes (None = default)."""
    cursor = cmd.get("cursor")
    if cursor is None:
        return None
    if not isinstance(cursor, Mapping):
        raise type_mismatch("BSON field 'cursor' is the wrong type, expected type 'object'")
    return batch_size_of(cursor)
