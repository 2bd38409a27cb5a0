"""listDatabases replies narrowed to the databases the roles allow; everything else untouched."""

from __future__ import annotations

from typing import Any

import bson
import pytest

from wicket.agent.mongodb.listing import MAX_PENDING, DatabaseListings, narrow_list_databases
from wicket.auth.roles import BUILTIN_ROLES, AccessChecker
from wicket.wire.mongo import (
    Compressor,
    OpMsg,
    OpReply,
    compress_message,
    decode_message,
    encode_op_msg,
    encode_op_reply,
)

MIB = 1024 * 1024
REPLY: dict[str, Any] = {
    "databases": [
        {"name": "admin", "sizeOnDisk": 5 * MIB, "empty": False},
        {"name": "test", "sizeOnDisk": 2 * MIB, "empty": False},
        {"name": "reports", "sizeOnDisk": 3 * MIB, "empty": False},
        {"name": "secret", "sizeOnDisk": 100 * MIB, "empty": False},
    ],
    "totalSize": 110 * MIB,
    "totalSizeMb": 110,
    "ok": 1.0,
}


def allows_from_roles(db_names: list[str]) -> Any:
    checker = AccessChecker([BUILTIN_ROLES["access"]], {"db_names": db_names})
    return lambda name: checker.check_db_name({"env": "dev"}, name).allowed


@pytest.mark.parametrize(
    ("db_names", "shown", "total"),
    [
        (["test"], ["test"], 2 * MIB),
        (["rep*", "test"], ["test", "reports"], 5 * MIB),
        (["*"], ["admin", "test", "reports", "secret"], 110 * MIB),
        ([], [], 0),
    ],
)
def test_narrowed_reply(db_names: list[str], shown: list[str], total: int) -> None:
    narrowed = narrow_list_databases(REPLY, allows_from_roles(db_names))
    assert [d["name"] for d in narrowed["databases"]] == shown
    assert narrowed["totalSize"] == total and narrowed["totalSizeMb"] == total // MIB
    names_only = narrow_list_databases(
        {"databases": [{"name": "test"}, {"name": "secret"}], "ok": 1}, allows_from_roles(db_names)
    )
    assert "totalSize" not in names_only
    assert [d["name"] for d in names_only["databases"]] == [
        n for n in ["test", "secret"] if n in shown
    ]


def test_errors_pass_and_odd_shapes_are_withheld() -> None:
    error = {"ok": 0.0, "errmsg": "not authorized", "code": 13}
    assert narrow_list_databases(error, lambda name: False) == error
    listings = DatabaseListings()
    for odd in ({"ok": 1}, {"ok": 1, "databases": [{"size": 1}]}, {"ok": 1, "databases": "x"}):
        assert listings.expect(5, lambda name: True)
        reply = decode_message(listings.relay(encode_op_msg(odd, request_id=1, response_to=5)))
        assert isinstance(reply, OpMsg)
        body = reply.body_document()
        assert body["ok"] == 0 and body["code"] == 13 and "withheld" in body["errmsg"]


def test_only_the_expected_reply_is_rewritten() -> None:
    listings = DatabaseListings()
    other = encode_op_msg(REPLY, request_id=1, response_to=6)
    assert listings.relay(other) == other  # nothing pending: byte for byte
    assert listings.expect(5, allows_from_roles(["test"]))
    assert listings.relay(other) == other  # another request's reply
    narrowed = decode_message(listings.relay(encode_op_msg(REPLY, request_id=2, response_to=5)))
    assert isinstance(narrowed, OpMsg) and narrowed.header.response_to == 5
    assert [d["name"] for d in narrowed.body_document()["databases"]] == ["test"]
    again = encode_op_msg(REPLY, request_id=3, response_to=5)
    assert listings.relay(again) == again  # answered once, then forgotten
    assert listings.pending == 0


def test_compressed_and_legacy_replies() -> None:
    listings = DatabaseListings()
    assert listings.expect(7, allows_from_roles(["test"]))
    wire = compress_message(encode_op_msg(REPLY, request_id=2, response_to=7), Compressor.ZSTD)
    narrowed = decode_message(listings.relay(wire))
    assert isinstance(narrowed, OpMsg)
    assert [d["name"] for d in narrowed.body_document()["databases"]] == ["test"]
    assert listings.expect(8, allows_from_roles(["test"]))
    legacy = decode_message(listings.relay(encode_op_reply([REPLY], request_id=3, response_to=8)))
    assert isinstance(legacy, OpReply)
    assert [d["name"] for d in bson.decode(legacy.documents[0])["databases"]] == ["test"]


def test_too_many_pending_are_refused_not_relayed_raw() -> None:
    listings = DatabaseListings()
    for request_id in range(MAX_PENDING):
        assert listings.expect(request_id, lambda name: False)
    assert not listings.expect(MAX_PENDING, lambda name: False)
