"""In-memory document storage: databases, collections and their indexes (engine layer).

A `Catalog` holds databases; a database exists while it holds a collection, as in
MongoDB. A `Collection` keeps its documents in insertion order in a dict keyed by
the canonical `_id` key (so the `_id` index is the store itself) and maintains its
unique secondary indexes. Stored documents are never mutated in place: an update
stores a new dict, so cursors may hold references to documents safely.

When the catalog was opened with a data directory, every mutation is appended to
the journal (`persistence.py`) before the call returns, i.e. before the command
replies.
"""

from __future__ import annotations

import datetime
import itertools
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bson
from bson import ObjectId

from localdocdb.engine.keys import hashable_key
from localdocdb.engine.persistence import (
    COMPACT_MIN_BYTES,
    ENCODE_OPTIONS,
    Journal,
    Record,
    RecordKind,
)
from localdocdb.errors import CommandError, bad_value, namespace_exists, namespace_not_found

ID_INDEX_NAME = "_id_"
TEMPORARY_PREFIX = "tmp.agg_out."  # $out fills one, then renames it over its target
MAX_INDEXES = 64  # MongoDB's limit per collection


@dataclass(frozen=True)
class IndexSpec:
    """One index as createIndexes describes it: ordered key pattern, name and options."""

    name: str
    key: tuple[tuple[str, Any], ...]
    unique: bool = False
    sparse: bool = False
    options: tuple[tuple[str, Any], ...] = ()

    def key_document(self) -> dict[str, Any]:
        """The key pattern as a document (`{a: 1, b: -1}`)."""
        return dict(self.key)

    def to_document(self) -> dict[str, Any]:
        """The listIndexes entry: `{v: 2, key, name, unique?, sparse?, ...}`."""
        doc: dict[str, Any] = {"v": 2, "key": self.key_document(), "name": self.name}
        if self.unique and self.name != ID_INDEX_NAME:
            doc["unique"] = True
        if self.sparse:
            doc["sparse"] = True
        doc.update(self.options)
        return doc

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> IndexSpec:
        """Rebuild a spec from `to_document`'s output (journal replay)."""
        extra = {k: v for k, v in doc.items() if k not in {"v", "key", "name", "unique", "sparse"}}
        return cls(
            name=str(doc["name"]),
            key=tuple(dict(doc["key"]).items()),
            unique=bool(doc.get("unique", False)) or doc["name"] == ID_INDEX_NAME,
            sparse=bool(doc.get("sparse", False)),
            options=tuple(extra.items()),
        )


ID_INDEX = IndexSpec(name=ID_INDEX_NAME, key=(("_id", 1),), unique=True)


def default_index_name(key: Sequence[tuple[str, Any]]) -> str:
    """MongoDB's generated name: `a_1_b_-1`."""
    return "_".join(f"{name}_{value}" for name, value in key)


def format_key_value(value: Any) -> str:
    """A value as MongoDB prints it in E11000 messages (`"x"`, `ObjectId('…')`, `{ a: 1 }`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, ObjectId):
        return f"ObjectId('{value}')"
    if isinstance(value, float):
        return repr(value) if value != int(value) else f"{int(value)}.0"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        inner = ", ".join(f"{k}: {format_key_value(v)}" for k, v in value.items())
        return "{ " + inner + " }"
    if isinstance(value, list):
        return "[ " + ", ".join(format_key_value(v) for v in value) + " ]"
    if isinstance(value, datetime.datetime):
        return f"new Date({value.isoformat()})"
    return str(value)


def _path_value(doc: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path without array expansion; `_Missing` if absent."""
    current: Any = doc
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


class _Missing:
    """Marks an absent field while computing index keys."""


_MISSING = _Missing()


def _index_entries(spec: IndexSpec, doc: Mapping[str, Any]) -> list[tuple[Any, ...]] | None:
    """Canonical index keys `doc` contributes to `spec` (one per array element: multikey).

    Returns None for a sparse index when the document has none of the key fields.
    """
    per_field: list[list[Any]] = []
    present = False
    for path, _direction in spec.key:
        value = _path_value(doc, path)
        if value is _MISSING:
            per_field.append([None])
            continue
        present = True
        if isinstance(value, list):
            per_field.append(list(value) if value else [None])
        else:
            per_field.append([value])
    if spec.sparse and not present:
        return None
    entries = {tuple(hashable_key(v) for v in combo) for combo in itertools.product(*per_field)}
    return list(entries)


def _dup_values(spec: IndexSpec, doc: Mapping[str, Any]) -> dict[str, Any]:
    """`keyValue` of a duplicate-key error: the document's values for the index fields."""
    values: dict[str, Any] = {}
    for path, _direction in spec.key:
        value = _path_value(doc, path)
        values[path] = None if value is _MISSING else value
    return values


@dataclass
class CollectionInfo:
    """Catalog facts about a collection that are not documents."""

    uuid: uuid.UUID = field(default_factory=uuid.uuid4)
    options: dict[str, Any] = field(default_factory=dict)


class Collection:
    """The documents of one namespace, in insertion order, with unique indexes enforced."""

    def __init__(
        self, database: str, name: str, journal: Journal | None, info: CollectionInfo | None = None
    ) -> None:
        self.database = database
        self.name = name
        self.info = info or CollectionInfo()
        self._journal = journal
        self._docs: dict[Any, dict[str, Any]] = {}
        self._indexes: dict[str, IndexSpec] = {ID_INDEX_NAME: ID_INDEX}
        # Unique secondary indexes: name -> canonical entry -> canonical _id key.
        self._unique: dict[str, dict[tuple[Any, ...], Any]] = {}

    @property
    def full_name(self) -> str:
        """`db.collection`, the namespace string."""
        return f"{self.database}.{self.name}"

    def __len__(self) -> int:
        return len(self._docs)

    def documents(self) -> Iterator[dict[str, Any]]:
        """Documents in natural (insertion) order; a snapshot safe against later writes."""
        return iter(list(self._docs.values()))

    def get_by_id(self, id_value: Any) -> dict[str, Any] | None:
        """The document with this `_id`, through the `_id` index."""
        return self._docs.get(hashable_key(id_value))

    def data_size(self) -> int:
        """Sum of the BSON sizes of the documents (collStats `size`)."""
        return sum(
            len(bson.encode(doc, codec_options=ENCODE_OPTIONS)) for doc in self._docs.values()
        )

    # -- indexes ---------------------------------------------------------------------------

    def indexes(self) -> list[IndexSpec]:
        """Every index, `_id_` first, in creation order."""
        return list(self._indexes.values())

    def index(self, name: str) -> IndexSpec | None:
        """The index named `name`, if any."""
        return self._indexes.get(name)

    def create_index(self, spec: IndexSpec) -> bool:
        """Add an index; False if an identical one exists. Existing duplicates refuse it."""
        existing = self._indexes.get(spec.name)
        if existing is not None:
            if existing.key == spec.key and existing.unique == spec.unique:
                return False
            raise CommandError(
                86,
                "IndexKeySpecsConflict",
                f"An existing index has the same name as the requested index. "
                f"Requested index: {spec.to_document()}, existing index: {existing.to_document()}",
            )
        for other in self._indexes.values():
            if other.key == spec.key:
                if other.unique == spec.unique and other.sparse == spec.sparse:
                    return False
                raise CommandError(
                    85,
                    "IndexOptionsConflict",
                    f"Index already exists with a different name: {other.name}",
                )
        if len(self._indexes) >= MAX_INDEXES:
            raise CommandError(
                67, "CannotCreateIndex", f"add index fails, too many indexes for {self.full_name}"
            )
        if spec.unique:
            table: dict[tuple[Any, ...], Any] = {}
            for id_key, doc in self._docs.items():
                for entry in _index_entries(spec, doc) or []:
                    if entry in table and table[entry] != id_key:
                        raise self.duplicate_key_error(spec, doc)
                    table[entry] = id_key
            self._unique[spec.name] = table
        self._indexes[spec.name] = spec
        self._log(RecordKind.CREATE_INDEX, spec=spec.to_document())
        return True

    def drop_index(self, name: str) -> IndexSpec:
        """Remove an index by name; `_id_` cannot be dropped."""
        if name == ID_INDEX_NAME:
            raise CommandError(72, "InvalidOptions", "cannot drop _id index")
        spec = self._indexes.pop(name, None)
        if spec is None:
            raise CommandError(27, "IndexNotFound", f"index not found with name [{name}]")
        self._unique.pop(name, None)
        self._log(RecordKind.DROP_INDEX, name=name)
        return spec

    def duplicate_key_error(self, spec: IndexSpec, doc: Mapping[str, Any]) -> CommandError:
        """MongoDB's E11000 error for `doc` colliding on `spec`."""
        key_value = _dup_values(spec, doc)
        shown = ", ".join(f"{k}: {format_key_value(v)}" for k, v in key_value.items())
        message = (
            f"E11000 duplicate key error collection: {self.full_name} "
            f"index: {spec.name} dup key: {{ {shown} }}"
        )
        return CommandError(
            11000, "DuplicateKey", message, keyPattern=spec.key_document(), keyValue=key_value
        )

    # -- writes ----------------------------------------------------------------------------

    def _check_unique(
        self, doc: Mapping[str, Any], id_key: Any
    ) -> list[tuple[str, list[tuple[Any, ...]]]]:
        """Index entries for `doc`, or the duplicate-key error if another doc holds one."""
        planned: list[tuple[str, list[tuple[Any, ...]]]] = []
        for name, table in self._unique.items():
            spec = self._indexes[name]
            entries = _index_entries(spec, doc) or []
            for entry in entries:
                holder = table.get(entry)
                if holder is not None and holder != id_key:
                    raise self.duplicate_key_error(spec, doc)
            planned.append((name, entries))
        return planned

    def _remove_entries(self, doc: Mapping[str, Any], id_key: Any) -> None:
        for name, table in self._unique.items():
            for entry in _index_entries(self._indexes[name], doc) or []:
                if table.get(entry) == id_key:
                    del table[entry]

    def insert(self, doc: dict[str, Any], *, journal: bool = True) -> None:
        """Store a new document (which has its `_id`); duplicate keys raise 11000."""
        if "_id" not in doc:
            raise bad_value("document to insert has no _id")
        id_key = hashable_key(doc["_id"])
        if id_key in self._docs:
            raise self.duplicate_key_error(ID_INDEX, doc)
        planned = self._check_unique(doc, id_key)
        for name, entries in planned:
            for entry in entries:
                self._unique[name][entry] = id_key
        self._docs[id_key] = doc
        if journal:
            self._log(RecordKind.INSERT, doc=doc)

    def replace(self, old: Mapping[str, Any], new: dict[str, Any]) -> None:
        """Swap a stored document for its updated version (same `_id`)."""
        id_key = hashable_key(old["_id"])
        if hashable_key(new.get("_id")) != id_key:
            raise CommandError(
                66,
                "ImmutableField",
                "Performing an update on the path '_id' would modify the immutable field '_id'",
            )
        if id_key not in self._docs:
            raise namespace_not_found(f"document vanished from {self.full_name}")
        current = self._docs[id_key]
        self._remove_entries(current, id_key)
        try:
            planned = self._check_unique(new, id_key)
        except CommandError:
            self._add_entries(current, id_key)
            raise
        for name, entries in planned:
            for entry in entries:
                self._unique[name][entry] = id_key
        self._docs[id_key] = new
        self._log(RecordKind.UPDATE, doc=new)

    def _add_entries(self, doc: Mapping[str, Any], id_key: Any) -> None:
        for name, table in self._unique.items():
            for entry in _index_entries(self._indexes[name], doc) or []:
                table[entry] = id_key

    def delete(self, doc: Mapping[str, Any]) -> bool:
        """Remove the document with `doc`'s `_id`; False if it is gone already."""
        id_key = hashable_key(doc["_id"])
        current = self._docs.pop(id_key, None)
        if current is None:
            return False
        self._remove_entries(current, id_key)
        self._log(RecordKind.DELETE, id=doc["_id"])
        return True

    def _log(self, kind: RecordKind, **fields: Any) -> None:
        if self._journal is not None:
            self._journal.append(Record(kind, self.database, self.name, fields))


class Catalog:
    """Every database and collection of the server, optionally persisted to a data dir."""

    def __init__(self, journal: Journal | None = None) -> None:
        self._databases: dict[str, dict[str, Collection]] = {}
        self._journal = journal
        self._temp_ids = itertools.count(1)

    @classmethod
    def open(cls, data_dir: Path | None, *, compact_min_bytes: int = COMPACT_MIN_BYTES) -> Catalog:
        """An empty in-memory catalog, or the one stored in `data_dir` (snapshot + journal)."""
        if data_dir is None:
            return cls()
        catalog = cls()
        journal = Journal.open(
            data_dir,
            catalog.apply_record,
            catalog.snapshot_records,
            after_replay=catalog.drop_temporaries,
            compact_min_bytes=compact_min_bytes,
        )
        catalog._journal = journal
        for collection in catalog._all_collections():
            collection._journal = journal
        return catalog

    def close(self) -> None:
        """Flush, fsync and close the journal (no-op in memory)."""
        if self._journal is not None:
            self._journal.close()

    def _all_collections(self) -> list[Collection]:
        return [c for colls in self._databases.values() for c in colls.values()]

    # -- lookups ---------------------------------------------------------------------------

    def database_names(self) -> list[str]:
        """Names of databases holding at least one collection, sorted."""
        return sorted(name for name, colls in self._databases.items() if colls)

    def collections(self, db: str) -> list[Collection]:
        """Collections of `db`, in creation order."""
        return list(self._databases.get(db, {}).values())

    def collection(self, db: str, name: str) -> Collection | None:
        """The collection `db.name`, or None."""
        return self._databases.get(db, {}).get(name)

    def database_size(self, db: str) -> int:
        """Bytes of documents in `db` (listDatabases `sizeOnDisk`)."""
        return sum(c.data_size() for c in self.collections(db))

    # -- catalog writes --------------------------------------------------------------------

    def get_or_create_collection(self, db: str, name: str) -> Collection:
        """The collection, created implicitly (as a write to a new namespace does)."""
        existing = self.collection(db, name)
        if existing is not None:
            return existing
        return self.create_collection(db, name)

    def create_collection(
        self, db: str, name: str, options: Mapping[str, Any] | None = None
    ) -> Collection:
        """Create `db.name`; NamespaceExists (48) if it is there already."""
        if self.collection(db, name) is not None:
            raise namespace_exists(f"Collection {db}.{name} already exists.")
        info = CollectionInfo(options=dict(options or {}))
        collection = Collection(db, name, self._journal, info)
        self._databases.setdefault(db, {})[name] = collection
        if self._journal is not None:
            fields = {"uuid": bson.Binary.from_uuid(info.uuid), "options": info.options}
            self._journal.append(Record(RecordKind.CREATE, db, name, fields))
        return collection

    def drop_collection(self, db: str, name: str) -> Collection | None:
        """Remove `db.name`; returns the dropped collection or None if it did not exist."""
        colls = self._databases.get(db, {})
        collection = colls.pop(name, None)
        if collection is None:
            return None
        if not colls:
            self._databases.pop(db, None)
        if self._journal is not None:
            self._journal.append(Record(RecordKind.DROP, db, name, {}))
        return collection

    def drop_database(self, db: str) -> bool:
        """Remove every collection of `db`; False if it did not exist."""
        colls = self._databases.pop(db, None)
        if not colls:
            return False
        if self._journal is not None:
            self._journal.append(Record(RecordKind.DROP_DATABASE, db, "", {}))
        return True

    def rename_collection(
        self, source_db: str, source: str, target_db: str, target: str, *, drop_target: bool
    ) -> None:
        """Move a collection to a new namespace (documents, indexes and uuid go with it)."""
        collection = self.collection(source_db, source)
        if collection is None:
            raise namespace_not_found(f"Source collection {source_db}.{source} does not exist")
        if (source_db, source) == (target_db, target):
            raise CommandError(20, "IllegalOperation", "Can't rename a collection to itself")
        if self.collection(target_db, target) is not None:
            if not drop_target:
                raise namespace_exists("target namespace exists")
            self._databases[target_db].pop(target)
        colls = self._databases[source_db]
        colls.pop(source)
        if not colls:
            self._databases.pop(source_db, None)
        collection.database, collection.name = target_db, target
        self._databases.setdefault(target_db, {})[target] = collection
        if self._journal is not None:
            fields = {"to_db": target_db, "to_coll": target, "drop_target": drop_target}
            self._journal.append(Record(RecordKind.RENAME, source_db, source, fields))

    def temporary_collection_name(self) -> str:
        """A fresh collection name for `$out` to fill before renaming over its target."""
        return f"{TEMPORARY_PREFIX}{ObjectId()}.{next(self._temp_ids)}"

    # -- persistence -----------------------------------------------------------------------

    def drop_temporaries(self) -> None:
        """Drop `$out` temporaries a crash left behind; returns how many."""
        leftovers = [
            (c.database, c.name)
            for c in self._all_collections()
            if c.name.startswith(TEMPORARY_PREFIX)
        ]
        for database, name in leftovers:
            colls = self._databases.get(database, {})
            colls.pop(name, None)
            if not colls:
                self._databases.pop(database, None)

    def apply_record(self, record: Record) -> None:
        """Redo one journal record (replay at open); never journals again."""
        kind, db, name, fields = record.kind, record.database, record.collection, record.fields
        if kind is RecordKind.DROP_DATABASE:
            self._databases.pop(db, None)
            return
        if kind is RecordKind.CREATE:
            raw_uuid = fields.get("uuid")
            info = CollectionInfo(options=dict(fields.get("options") or {}))
            if isinstance(raw_uuid, bson.Binary):
                info.uuid = raw_uuid.as_uuid()
            elif isinstance(raw_uuid, uuid.UUID):
                info.uuid = raw_uuid
            self._databases.setdefault(db, {})[name] = Collection(db, name, None, info)
            return
        collection = self.collection(db, name)
        if collection is None:
            collection = Collection(db, name, None)
            self._databases.setdefault(db, {})[name] = collection
        if kind is RecordKind.DROP:
            self._databases[db].pop(name, None)
            if not self._databases[db]:
                self._databases.pop(db)
        elif kind is RecordKind.INSERT:
            collection.insert(fields["doc"], journal=False)
        elif kind is RecordKind.UPDATE:
            doc = fields["doc"]
            old = collection.get_by_id(doc["_id"])
            if old is None:
                collection.insert(doc, journal=False)
            else:
                journal, collection._journal = collection._journal, None
                collection.replace(old, doc)
                collection._journal = journal
        elif kind is RecordKind.DELETE:
            journal, collection._journal = collection._journal, None
            collection.delete({"_id": fields["id"]})
            collection._journal = journal
        elif kind is RecordKind.CREATE_INDEX:
            journal, collection._journal = collection._journal, None
            collection.create_index(IndexSpec.from_document(fields["spec"]))
            collection._journal = journal
        elif kind is RecordKind.DROP_INDEX:
            journal, collection._journal = collection._journal, None
            collection.drop_index(str(fields["name"]))
            collection._journal = journal
        elif kind is RecordKind.RENAME:
            journal, self._journal = self._journal, None
            self.rename_collection(
                db,
                name,
                str(fields["to_db"]),
                str(fields["to_coll"]),
                drop_target=bool(fields.get("drop_target")),
            )
            self._journal = journal

    def snapshot_records(self) -> Iterator[Record]:
        """The whole catalog as records that rebuild it (the compacted snapshot)."""
        for collection in self._all_collections():
            db, name = collection.database, collection.name
            fields = {
                "uuid": bson.Binary.from_uuid(collection.info.uuid),
                "options": collection.info.options,
            }
            yield Record(RecordKind.CREATE, db, name, fields)
            for spec in collection.indexes():
                if spec.name != ID_INDEX_NAME:
                    yield Record(RecordKind.CREATE_INDEX, db, name, {"spec": spec.to_document()})
            for doc in collection.documents():
                yield Record(RecordKind.INSERT, db, name, {"doc": doc})
