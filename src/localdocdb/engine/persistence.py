"""On-disk persistence for the document catalog: a snapshot plus an append-only journal.

Storage layer (file I/O only; it knows nothing of queries). Two files in the data
directory, both mode 0600:

- `documents.snapshot`: BSON records that rebuild the whole catalog, written to a
  temporary file, fsynced and moved into place with `os.replace` (atomic).
- `documents.journal`: one BSON record per mutation, appended and flushed to the
  OS before the command replies, so a `kill -9` loses nothing that was answered.
  `close()` fsyncs.

Both files start with a header record carrying a generation number. At open the
snapshot is loaded, the journal is replayed only if its generation matches (a crash
between writing a new snapshot and resetting the journal must not apply the old
journal twice), and then everything is compacted into a new snapshot of the next
generation with an empty journal; a long-running server compacts the same way once
the journal outgrows the snapshot (and 64 MiB). A torn last record (the process
died mid-write) is dropped with a log line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import IO, Any

import bson
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions, DatetimeConversion

from localdocdb.errors import CommandError

LOG = logging.getLogger(__name__)

SNAPSHOT_FILE = "documents.snapshot"
JOURNAL_FILE = "documents.journal"
FORMAT_VERSION = 1
# A record holds one document (at most 16 MiB) plus a little framing.
MAX_RECORD_SIZE = 16 * 1024 * 1024 + 64 * 1024
MIN_RECORD_SIZE = 5
# A running server compacts when the journal passes this size and twice the last snapshot.
COMPACT_MIN_BYTES = 64 * 1024 * 1024

# Encoding accepts uuid.UUID values; decoding matches how the server decodes client
# documents (DATETIME_AUTO: dates outside Python's range come back as DatetimeMS, so a
# document the server accepted can always be read back).
ENCODE_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    uuid_representation=UuidRepresentation.STANDARD
)
_DECODE_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    document_class=dict, datetime_conversion=DatetimeConversion.DATETIME_AUTO
)


class RecordKind(Enum):
    """One kind of catalog mutation."""

    HEADER = "header"
    INSERT = "insert"
    UPDATE = "update"  # the full new document, replacing the one with its _id
    DELETE = "delete"
    CREATE = "create"
    DROP = "drop"
    DROP_DATABASE = "dropDatabase"
    RENAME = "rename"
    CREATE_INDEX = "createIndex"
    DROP_INDEX = "dropIndex"


@dataclass(frozen=True)
class Record:
    """One journal entry: a mutation of `database.collection` and its arguments."""

    kind: RecordKind
    database: str
    collection: str
    fields: dict[str, Any] = field(default_factory=dict)

    def to_bson(self) -> bytes:
        """The record as one BSON document."""
        doc: dict[str, Any] = {"op": self.kind.value, "db": self.database, "coll": self.collection}
        doc.update(self.fields)
        return bson.encode(doc, codec_options=ENCODE_OPTIONS)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Record:
        """Parse a decoded record; ValueError/KeyError if it is not one."""
        kind = RecordKind(doc.pop("op"))
        database = str(doc.pop("db"))
        collection = str(doc.pop("coll"))
        return cls(kind, database, collection, doc)


def header(generation: int) -> Record:
    """The first record of each file."""
    return Record(RecordKind.HEADER, "", "", {"generation": generation, "format": FORMAT_VERSION})


def read_records(path: Path) -> tuple[list[Record], bool]:
    """Every complete record of a file, and whether a torn or corrupt tail was dropped."""
    data = path.read_bytes()
    records: list[Record] = []
    offset = 0
    while offset < len(data):
        remaining = len(data) - offset
        if remaining < 4:
            return records, True
        length = int.from_bytes(data[offset : offset + 4], "little", signed=True)
        if length < MIN_RECORD_SIZE or length > MAX_RECORD_SIZE or length > remaining:
            return records, True
        try:
            doc = bson.decode(data[offset : offset + length], codec_options=_DECODE_OPTIONS)
            records.append(Record.from_document(doc))
        except (bson.errors.BSONError, ValueError, KeyError, TypeError):
            return records, True
        offset += length
    return records, False


def _open_private(path: Path, flags: int) -> int:
    """Open a file readable and writable by its owner only."""
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, records: Iterable[Record]) -> int:
    """Write `records` to a temp file, fsync it and move it over `path`; returns its size."""
    temp = path.with_name(path.name + ".tmp")
    fd = _open_private(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    size = 0
    with os.fdopen(fd, "wb") as out:
        for record in records:
            data = record.to_bson()
            out.write(data)
            size += len(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, path)
    _fsync_directory(path.parent)
    return size


def _generation(records: list[Record]) -> int | None:
    """The generation in a file's header record, None without a valid header."""
    if not records or records[0].kind is not RecordKind.HEADER:
        return None
    value = records[0].fields.get("generation")
    return value if isinstance(value, int) else None


class Journal:
    """The append-only journal of one data directory."""

    def __init__(
        self,
        directory: Path,
        snapshot: Callable[[], Iterator[Record]],
        *,
        compact_min_bytes: int = COMPACT_MIN_BYTES,
    ) -> None:
        self.directory = directory
        self.generation = 0
        self._snapshot = snapshot
        self._compact_min_bytes = compact_min_bytes
        self._file: IO[bytes] | None = None
        self._journal_bytes = 0
        self._snapshot_bytes = 0

    @classmethod
    def open(
        cls,
        directory: Path,
        apply: Callable[[Record], None],
        snapshot: Callable[[], Iterator[Record]],
        *,
        after_replay: Callable[[], None] | None = None,
        compact_min_bytes: int = COMPACT_MIN_BYTES,
    ) -> Journal:
        """Replay snapshot and journal into `apply`, compact via `snapshot`, open for appends."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        snapshot_path = directory / SNAPSHOT_FILE
        journal_path = directory / JOURNAL_FILE
        generation = 0
        if snapshot_path.exists():
            records, torn = read_records(snapshot_path)
            if torn:
                LOG.warning("%s: ignoring a damaged tail", snapshot_path)
            generation = _generation(records) or 0
            _replay(records[1:] if generation else records, apply, snapshot_path)
        if journal_path.exists():
            records, torn = read_records(journal_path)
            if torn:
                LOG.warning(
                    "%s: ignoring a torn last record (the server stopped mid-write)", journal_path
                )
            if _generation(records) == generation:
                _replay(records[1:], apply, journal_path)
            elif records:
                LOG.info(
                    "%s: journal of an older generation, already in the snapshot", journal_path
                )
        if after_replay is not None:
            after_replay()
        journal = cls(directory, snapshot, compact_min_bytes=compact_min_bytes)
        journal.generation = generation
        journal.compact()
        return journal

    def compact(self) -> None:
        """Write the whole state as a new snapshot generation and start an empty journal."""
        if self._file is not None:
            self._file.close()
            self._file = None
        snapshot_path = self.directory / SNAPSHOT_FILE
        journal_path = self.directory / JOURNAL_FILE
        generation = self.generation + 1
        records = [header(generation), *self._snapshot()]
        self._snapshot_bytes = write_atomically(snapshot_path, records)
        self._journal_bytes = write_atomically(journal_path, [header(generation)])
        self.generation = generation
        fd = _open_private(journal_path, os.O_WRONLY | os.O_APPEND)
        self._file = os.fdopen(fd, "ab")

    def append(self, record: Record) -> None:
        """Write one record and flush it to the OS (survives the process being killed)."""
        if self._file is None:
            raise RuntimeError("journal is closed")
        data = record.to_bson()
        self._file.write(data)
        self._file.flush()
        self._journal_bytes += len(data)
        if self._journal_bytes > max(self._compact_min_bytes, 2 * self._snapshot_bytes):
            self.compact()

    def close(self) -> None:
        """Flush, fsync and close the journal file."""
        if self._file is None:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None


def _replay(records: list[Record], apply: Callable[[Record], None], source: Path) -> None:
    """Apply records in order; one that cannot apply is logged and skipped."""
    for record in records:
        if record.kind is RecordKind.HEADER:
            continue
        try:
            apply(record)
        except (CommandError, KeyError, TypeError, ValueError) as exc:
            LOG.warning(
                "%s: skipping a record that does not apply (%s): %s", source, record.kind, exc
            )
