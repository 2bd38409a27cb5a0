"""Audit layer (file I/O): the on-disk spool of events not yet acknowledged by the auth service.

A spool is a directory (0700) of numbered segment files `<seq>.jsonl` (0600), one event
JSON per line, drained in `seq` order. Two kinds of segment:
- journal segments, written whole by `write_segment` (temporary name, fsync, rename,
  directory fsync): a segment is either complete or absent, so a batch is on disk
  before it is sent;
- the overflow segment, appended to by `append_overflow` when the writer's queue is
  full (buffered; `sync` fsyncs it, the writer calls that in batches). While open it
  is `overflow.open`, outside the numbering; `seal` closes it and only then gives it
  its number, so it drains after every journal segment allocated before the seal
  (events still in the writer's queue when the overflow began are older: the writer
  journals them first). The next overflow event opens a new one; an `overflow.open`
  left by a crash is numbered at the next start.
A crash can leave a torn last line in an overflow segment: readers skip lines that are
not JSON objects. Segments are deleted only after every event in them was acknowledged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("wicket.audit")

MAX_LINE_BYTES = 256 * 1024  # events are at most 64 KiB; anything longer is corrupt
SEGMENT_RE = re.compile(r"^(\d{12})\.jsonl$")
TEMPORARY_RE = re.compile(r"^\.(\d{12})\.tmp$")
OVERFLOW_NAME = "overflow.open"


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def encode_lines(events: list[dict[str, Any]]) -> bytes:
    """Events as JSON lines (compact, ASCII)."""
    return b"".join(
        json.dumps(event, separators=(",", ":")).encode("ascii") + b"\n" for event in events
    )


def append_private(path: Path, data: bytes) -> None:
    """Append `data` to a 0600 file with one write (a JSON-lines log many writers share)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(descriptor, view)
            view = view[written:]
    finally:
        os.close(descriptor)


def prepare_private_directory(directory: Path) -> None:
    """Create `directory` (and parents) with mode 0700 if missing; tighten it if present."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)


class Spool:
    """The spool directory: journal segments, the overflow segment, draining helpers."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        prepare_private_directory(self.directory)
        self._recover_temporary_files()
        numbers = [int(m.group(1)) for m in map(SEGMENT_RE.match, self._names()) if m]
        self._next_seq = max(numbers, default=0) + 1
        self._overflow: IO[bytes] | None = None
        self._overflow_unsynced = 0
        if (self.directory / OVERFLOW_NAME).exists():  # a crash left it open: drain it last
            os.replace(self.directory / OVERFLOW_NAME, self.allocate())
            _fsync_directory(self.directory)

    def _names(self) -> list[str]:
        return sorted(os.listdir(self.directory))

    def _recover_temporary_files(self) -> None:
        """A journal segment written but not renamed before a crash is still worth sending."""
        for name in self._names():
            match = TEMPORARY_RE.match(name)
            if match:
                os.replace(self.directory / name, self.directory / f"{match.group(1)}.jsonl")

    def allocate(self) -> Path:
        """The path of the next segment (allocation order is drain order)."""
        path = self.directory / f"{self._next_seq:012d}.jsonl"
        self._next_seq += 1
        return path

    @staticmethod
    def write_segment(path: Path, events: list[dict[str, Any]]) -> None:
        """Write a whole journal segment durably (blocking: run it in a thread)."""
        temporary = path.with_name(f".{path.name.split('.')[0]}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            data = memoryview(encode_lines(events))
            while data:
                data = data[os.write(descriptor, data) :]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
        _fsync_directory(path.parent)

    def append_overflow(self, events: list[dict[str, Any]]) -> None:
        """Append to the open overflow segment (buffered; durable after `sync`)."""
        if self._overflow is None:
            path = self.directory / OVERFLOW_NAME
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._overflow = os.fdopen(descriptor, "ab", buffering=64 * 1024)
        self._overflow.write(encode_lines(events))
        self._overflow_unsynced += len(events)

    @property
    def unsynced(self) -> int:
        """Overflow events written but not yet fsync'd."""
        return self._overflow_unsynced

    def sync(self) -> None:
        """Flush and fsync the overflow segment."""
        if self._overflow is not None and self._overflow_unsynced:
            self._overflow.flush()
            os.fsync(self._overflow.fileno())
            self._overflow_unsynced = 0

    @property
    def overflowing(self) -> bool:
        """An overflow segment is open (events go there until it is sealed)."""
        return self._overflow is not None

    def seal(self) -> None:
        """Close the overflow segment (durably) and number it, so it drains next."""
        if self._overflow is None:
            return
        self.sync()
        self._overflow.close()
        self._overflow = None
        os.replace(self.directory / OVERFLOW_NAME, self.allocate())
        _fsync_directory(self.directory)

    def segments(self) -> list[Path]:
        """Complete segments ready to drain, oldest first (the open overflow one excluded)."""
        return [self.directory / name for name in self._names() if SEGMENT_RE.match(name)]

    @staticmethod
    def read(path: Path) -> Iterator[dict[str, Any]]:
        """The events of a segment in order; torn or corrupt lines are skipped (and logged)."""
        try:
            stream = path.open("rb")
        except FileNotFoundError:
            return
        with stream:
            number = 0
            while True:
                line = stream.readline(MAX_LINE_BYTES + 1)
                if not line:
                    return
                number += 1
                if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                    while line and not line.endswith(b"\n"):  # skip the rest of the long line
                        line = stream.readline(MAX_LINE_BYTES)
                    log.warning("audit spool %s line %d is too long; skipped", path, number)
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    log.warning("audit spool %s line %d is not JSON; skipped", path, number)
                    continue
                if isinstance(event, dict):
                    yield event

    @staticmethod
    def remove(path: Path) -> None:
        """Delete a segment whose events were all acknowledged."""
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def quarantine(self, path: Path) -> Path:
        """Set aside a segment the auth service refused as invalid (kept, never resent)."""
        target = self.directory / f"rejected-{path.name}"
        os.replace(path, target)
        return target

    def count(self) -> int:
        """Events waiting in the spool (complete segments and the overflow one)."""
        if self._overflow is not None:
            self._overflow.flush()
        paths = [self.directory / name for name in self._names() if SEGMENT_RE.match(name)]
        if self._overflow is not None:
            paths.append(self.directory / OVERFLOW_NAME)
        return sum(1 for path in paths for _ in self.read(path))

    def close(self) -> None:
        """Seal the overflow segment."""
        self.seal()
