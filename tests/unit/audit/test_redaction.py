"""Audit layer: redaction tables and bounded, valid-JSON truncation of commands."""

from __future__ import annotations

import datetime
import json
from typing import Any

import bson
import pytest
from bson import Binary, Decimal128, Int64, ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st

from wicket.audit.redaction import (
    REDACTED,
    command_json,
    is_sensitive,
    json_size,
    redact,
    truncate_json,
)

SENSITIVE_NAMES = [
    "pwd",
    "PWD",
    "password",
    "Password",
    "digestPassword",
    "passphrase",
    "key",
    "KeyId",
    "apiKey",
    "secret",
    "clientSecret",
    "token",
    "sessionToken",
    "Authorization",
    "credential",
    "awsCredentials",
]
PLAIN_NAMES = ["find", "filter", "user", "db", "name", "payloadSize", "documents", "mechanism"]


@pytest.mark.parametrize("name", SENSITIVE_NAMES)
def test_sensitive_names(name: str) -> None:
    assert is_sensitive(name)
    assert redact({name: "hunter2", "x": 1}) == {name: REDACTED, "x": 1}


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_plain_names_are_kept(name: str) -> None:
    assert not is_sensitive(name)
    assert redact({name: "value"}) == {name: "value"}


REDACTION_TABLE: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {"createUser": "bob", "pwd": "s3cret", "roles": ["read"]},
        {"createUser": "bob", "pwd": REDACTED, "roles": ["read"]},
    ),
    (
        {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": b"n,,n=bob,r=abc"},
        {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": REDACTED},
    ),
    (
        {"saslContinue": 1, "conversationId": 1, "payload": "c=biws,p=proof"},
        {"saslContinue": 1, "conversationId": 1, "payload": REDACTED},
    ),
    (  # nested sasl document (hello's speculative authentication)
        {"hello": 1, "speculativeAuthenticate": {"saslStart": 1, "payload": b"x", "db": "a"}},
        {"hello": 1, "speculativeAuthenticate": {"saslStart": 1, "payload": REDACTED, "db": "a"}},
    ),
    (  # payload outside a sasl command is ordinary data
        {"insert": "c", "documents": [{"payload": "data"}]},
        {"insert": "c", "documents": [{"payload": "data"}]},
    ),
    (  # nested in documents and lists
        {
            "insert": "c",
            "documents": [{"a": {"b": [{"Secret": 1}, {"apiToken": [1, 2]}]}, "PassWord": "x"}],
        },
        {
            "insert": "c",
            "documents": [
                {"a": {"b": [{"Secret": REDACTED}, {"apiToken": REDACTED}]}, "PassWord": REDACTED}
            ],
        },
    ),
    (  # a whole sensitive sub-document goes
        {"update": "c", "updates": [{"q": {}, "u": {"$set": {"credentials": {"a": 1}}}}]},
        {"update": "c", "updates": [{"q": {}, "u": {"$set": {"credentials": REDACTED}}}]},
    ),
]


@pytest.mark.parametrize(("command", "expected"), REDACTION_TABLE)
def test_redaction_table(command: dict[str, Any], expected: dict[str, Any]) -> None:
    assert command_json(command) == expected
    assert command_json(bson.encode(command)) == expected  # raw BSON as the engine has it


def test_bson_values_become_extended_json() -> None:
    oid = ObjectId()
    moment = datetime.datetime(2026, 11, 24, 8, 35, tzinfo=datetime.UTC)
    result = command_json(
        {
            "find": "c",
            "filter": {
                "_id": oid,
                "at": moment,
                "n": Int64(7),
                "d": Decimal128("1.5"),
                "b": Binary(b"\x01\x02", 4),
                "f": float("nan"),
            },
        }
    )
    assert result["filter"]["_id"] == {"$oid": str(oid)}
    assert result["filter"]["at"] == {"$date": "2026-11-24T08:35:00Z"}
    assert result["filter"]["n"] == 7
    assert result["filter"]["d"] == {"$numberDecimal": "1.5"}
    assert result["filter"]["b"] == {"$binary": {"base64": "AQI=", "subType": "04"}}
    assert result["filter"]["f"] == {"$numberDouble": "NaN"}
    json.dumps(result, allow_nan=False)


def test_small_command_is_untouched() -> None:
    command = {"find": "c", "filter": {"a": 1}, "$db": "test"}
    assert command_json(command) == command


@pytest.mark.parametrize("limit", [64, 200, 1024, 4096])
def test_truncation_keeps_valid_json_with_marker(limit: int) -> None:
    command = {
        "insert": "c",
        "documents": [
            {"_id": i, "text": "x" * 500, "nested": {"list": list(range(50))}} for i in range(100)
        ],
        "$db": "test",
    }
    result = command_json(command, limit)
    text = json.dumps(result, separators=(",", ":"))
    assert len(text) <= limit
    assert json.loads(text) == result
    assert result["truncated"] is True
    assert result.get("insert") == "c"  # the command name comes first and survives


def test_huge_binary_is_cut_before_encoding() -> None:
    raw = bson.encode({"insert": "c", "documents": [{"blob": Binary(b"\x00" * (20 << 20))}]})
    result = command_json(raw)
    assert json_size(result) <= 4096
    assert result["truncated"] is True


def test_deep_nesting_is_bounded() -> None:
    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(80):
        deep = {"n": deep}
    result = command_json({"find": "c", "filter": deep})
    assert result["truncated"] is True
    assert json_size(result) <= 4096


def test_invalid_bson_is_reported_not_raised() -> None:
    result = command_json(b"\x05\x00\x00\x00\x01")
    assert result["unparsed"] is True


def test_truncate_json_directly() -> None:
    document = {"a": "y" * 100, "b": 2}
    assert truncate_json(document, 1000) == document
    cut = truncate_json(document, 40)
    assert cut["truncated"] is True and cut["a"].endswith("...")
    assert json_size(cut) <= 40


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=10), children, max_size=6)
    ),
    max_leaves=60,
)


@settings(max_examples=200, deadline=None)
@given(
    document=st.dictionaries(st.text(max_size=12), json_values, max_size=8),
    limit=st.integers(20, 600),
)
def test_truncation_property(document: dict[str, Any], limit: int) -> None:
    result = truncate_json(document, limit)
    assert json_size(result) <= limit
    if json_size(document) <= limit:
        assert result == document
    else:
        assert result["truncated"] is True
