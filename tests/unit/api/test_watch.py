"""The access watch stream's line format: round trips, public users, bounded lines."""

from __future__ import annotations

import pytest

from wicket.api.watch import (
    Delete,
    LineSplitter,
    Ping,
    Put,
    Synced,
    WatchKind,
    WatchLine,
    decode_line,
    encode_line,
    public_user,
)
from wicket.errors import RemoteProtocolError

LINES: list[WatchLine] = [
    Put(WatchKind.USER, "bob", 3, {"name": "bob", "roles": ["dev"], "traits": {}}),
    Put(WatchKind.ROLE, "dev", 0, {"kind": "role", "metadata": {"name": "dev"}}),
    Delete(WatchKind.LOCK, "0b7c", 9),
    Synced(12),
    Ping(),
]


@pytest.mark.parametrize("line", LINES)
def test_every_line_round_trips(line: WatchLine) -> None:
    encoded = encode_line(line)
    assert encoded.endswith(b"\n") and encoded.count(b"\n") == 1
    assert decode_line(encoded[:-1]) == line


def test_a_user_leaves_with_public_fields_only() -> None:
    stored = {
        "name": "bob",
        "roles": ["dev"],
        "traits": {"db_names": ["test"]},
        "password_hash": "$argon2id$...",
        "otp_secret": "JBSWY3DPEHPK3PXP",
        "otp_last_counter": 7,
        "created": "2026-01-01T00:00:00+00:00",
    }
    assert public_user(stored) == {
        "name": "bob",
        "roles": ["dev"],
        "traits": {"db_names": ["test"]},
    }


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1]",
        b'{"type": "bogus"}',
        b'{"type": "put", "kind": "user", "name": "bob", "revision": 1}',
        b'{"type": "put", "kind": "group", "name": "x", "revision": 1, "resource": {}}',
        b'{"type": "delete", "kind": "user", "name": "", "revision": 1}',
        b'{"type": "delete", "kind": "user", "name": "bob", "revision": -1}',
        b'{"type": "synced", "revision": true}',
    ],
)
def test_foreign_lines_are_protocol_errors(raw: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_line(raw)


def test_lines_are_split_across_chunks_and_empty_ones_skipped() -> None:
    splitter = LineSplitter(max_line=64)
    assert list(splitter.feed(b'{"type":"pi')) == []
    assert list(splitter.feed(b'ng"}\n\n{"type":"synced","revision":1}\n{')) == [
        b'{"type":"ping"}',
        b'{"type":"synced","revision":1}',
    ]


@pytest.mark.parametrize("data", [b"x" * 65, b"x" * 65 + b"\n"])
def test_a_line_over_the_limit_drops_the_stream(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="longer than 64"):
        list(LineSplitter(max_line=64).feed(data))
