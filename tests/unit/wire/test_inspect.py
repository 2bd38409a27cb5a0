"""Tests for wicket.wire.mongo.inspect: every namespace a command touches, or "unknown"."""

from __future__ import annotations

import struct
from typing import Any

import bson
import pytest
from bson.int64 import Int64
from hypothesis import given
from hypothesis import strategies as st

from wicket.errors import RemoteProtocolError
from wicket.wire.mongo import (
    Access,
    CommandInfo,
    Compressor,
    DocumentSequence,
    Namespace,
    Scope,
    compress_message,
    decode_message,
    encode_op_delete,
    encode_op_get_more,
    encode_op_insert,
    encode_op_kill_cursors,
    encode_op_msg,
    encode_op_query,
    encode_op_reply,
    encode_op_update,
    inspect_command,
    inspect_message,
)

R, W, A = Access.READ, Access.WRITE, Access.ADMIN


def ns(text: str) -> Namespace:
    database, _, collection = text.partition(".")
    return Namespace(database, collection or None)


# (command, database, expected namespaces as "db.coll"/"db", expected access)
KNOWN: list[tuple[dict[str, Any], str, list[str], Access]] = [
    # CRUD on db.<first value>
    ({"find": "c", "filter": {}}, "t", ["t.c"], R),
    ({"insert": "c", "documents": [{}]}, "t", ["t.c"], W),
    ({"update": "c", "updates": []}, "t", ["t.c"], W),
    ({"delete": "c", "deletes": []}, "t", ["t.c"], W),
    ({"findAndModify": "c", "query": {}}, "t", ["t.c"], W),
    ({"findandmodify": "c"}, "t", ["t.c"], W),
    ({"count": "c"}, "t", ["t.c"], R),
    ({"distinct": "c", "key": "a"}, "t", ["t.c"], R),
    ({"getMore": Int64(5), "collection": "c"}, "t", ["t.c"], R),
    ({"getMore": 5, "collection": "c"}, "t", ["t.c"], R),
    ({"getMore": 5, "collection": "$cmd.listCollections"}, "t", ["t"], R),
    ({"getMore": 5, "collection": "$cmd.aggregate"}, "t", ["t"], R),
    ({"getMore": 5, "collection": "$cmd.listIndexes.c"}, "t", ["t.c"], R),
    ({"killCursors": "$cmd.aggregate", "cursors": [Int64(5)]}, "t", ["t"], R),
    ({"killCursors": "$cmd.listCollections", "cursors": [Int64(5)]}, "t", ["t"], R),
    ({"killCursors": "c", "cursors": [Int64(5)]}, "t", ["t.c"], R),
    ({"listIndexes": "c"}, "t", ["t.c"], R),
    ({"createIndexes": "c", "indexes": []}, "t", ["t.c"], A),
    ({"dropIndexes": "c", "index": "*"}, "t", ["t.c"], A),
    ({"create": "c"}, "t", ["t.c"], A),
    ({"create": "v", "viewOn": "src", "pipeline": [{"$match": {}}]}, "t", ["t.v", "t.src"], A),
    (
        {"create": "v", "viewOn": "src", "pipeline": [{"$lookup": {"from": {"db": "o", "coll": "x"},
                                                                   "as": "y"}}]},
        "t", ["t.v", "t.src", "o.x"], A,
    ),
    ({"collMod": "v", "viewOn": "s2", "pipeline": []}, "t", ["t.v", "t.s2"], A),
    ({"drop": "c"}, "t", ["t.c"], A),
    ({"validate": "c"}, "t", ["t.c"], A),
    ({"collStats": "c"}, "t", ["t.c"], R),
    ({"dataSize": "other.c", "keyPattern": {"a": 1}}, "t", ["other.c"], R),
    ({"compact": "c"}, "t", ["t.c"], A),
    ({"reIndex": "c"}, "t", ["t.c"], A),
    ({"convertToCapped": "c", "size": 1000}, "t", ["t.c"], A),
    ({"cloneCollectionAsCapped": "a", "toCollection": "b", "size": 1}, "t", ["t.a", "t.b"], A),
    ({"renameCollection": "t.a", "to": "other.b"}, "admin", ["t.a", "other.b"], A),
    # explain: the wrapped command's namespaces
    ({"explain": {"find": "c"}, "verbosity": "queryPlanner"}, "t", ["t.c"], R),
    (
        {"explain": {"aggregate": "c", "pipeline": [{"$out": {"db": "o", "coll": "x"}}],
                     "cursor": {}}},
        "t", ["t.c", "o.x"], W,
    ),
    # bulkWrite: every nsInfo entry
    ({"bulkWrite": 1, "ops": [], "nsInfo": [{"ns": "a.x"}, {"ns": "b.y"}]}, "admin",
     ["a.x", "b.y"], W),
    # mapReduce
    ({"mapReduce": "c", "map": "", "reduce": "", "out": {"inline": 1}}, "t", ["t.c"], R),
    ({"mapReduce": "c", "map": "", "reduce": "", "out": "res"}, "t", ["t.c", "t.res"], W),
    ({"mapReduce": "c", "out": {"replace": "res", "db": "o"}}, "t", ["t.c", "o.res"], W),
    ({"mapReduce": "c", "out": {"merge": "res"}}, "t", ["t.c", "t.res"], W),
    # database level
    ({"listCollections": 1}, "t", ["t"], R),
    ({"dropDatabase": 1}, "t", ["t"], A),
    ({"dbStats": 1}, "t", ["t"], R),
    ({"listDatabases": 1}, "admin", [], Access.CLUSTER),
    # users and roles
    ({"createUser": "u", "pwd": "p", "roles": ["read"]}, "t", ["t"], Access.USER_ADMIN),
    (
        {"createUser": "arn:aws:iam::123456789012:role/r", "mechanisms": ["MONGODB-AWS"],
         "roles": [{"role": "root", "db": "admin"}]},
        "$external", ["$external", "admin"], Access.USER_ADMIN,
    ),
    ({"updateUser": "u", "roles": []}, "t", ["t"], Access.USER_ADMIN),
    ({"dropUser": "u"}, "t", ["t"], Access.USER_ADMIN),
    ({"dropAllUsersFromDatabase": 1}, "t", ["t"], Access.USER_ADMIN),
    ({"usersInfo": 1}, "t", ["t"], Access.USER_ADMIN),
    ({"usersInfo": {"user": "u", "db": "o"}}, "t", ["t", "o"], Access.USER_ADMIN),
    ({"usersInfo": ["u", {"user": "v", "db": "p"}]}, "t", ["t", "p"], Access.USER_ADMIN),
    ({"grantRolesToUser": "u", "roles": [{"role": "read", "db": "o"}]}, "t", ["t", "o"],
     Access.USER_ADMIN),
    ({"revokeRolesFromUser": "u", "roles": ["read"]}, "t", ["t"], Access.USER_ADMIN),
    ({"createRole": "r", "privileges": [], "roles": []}, "t", ["t"], Access.USER_ADMIN),
    ({"rolesInfo": 1}, "t", ["t"], Access.USER_ADMIN),
    ({"usersInfo": 1, "forAllDBs": True}, "admin", ["admin"], Access.USER_ADMIN),
    # auth
    ({"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": b""}, "admin", [], Access.AUTH),
    ({"saslContinue": 1, "conversationId": 1}, "admin", [], Access.AUTH),
    ({"authenticate": 1, "mechanism": "MONGODB-X509"}, "$external", [], Access.AUTH),
    ({"logout": 1}, "t", [], Access.AUTH),
    ({"getnonce": 1}, "t", [], Access.AUTH),
    ({"hello": 1, "speculativeAuthenticate": {"saslStart": 1}}, "admin", [], Access.AUTH),
    # handshake, cluster, sessions
    ({"hello": 1, "saslSupportedMechs": "admin.u"}, "admin", [], Access.HANDSHAKE),
    ({"isMaster": 1}, "admin", [], Access.HANDSHAKE),
    ({"ismaster": 1}, "admin", [], Access.HANDSHAKE),
    ({"ping": 1}, "admin", [], Access.HANDSHAKE),
    ({"buildInfo": 1}, "admin", [], Access.HANDSHAKE),
    ({"buildinfo": 1}, "admin", [], Access.HANDSHAKE),
    ({"connectionStatus": 1}, "admin", [], Access.HANDSHAKE),
    ({"whatsmyuri": 1}, "admin", [], Access.HANDSHAKE),
    ({"listCommands": 1}, "admin", [], Access.HANDSHAKE),
    ({"getLastError": 1}, "t", [], Access.HANDSHAKE),
    ({"atlasVersion": 1}, "admin", [], Access.HANDSHAKE),
    ({"getParameter": 1, "featureCompatibilityVersion": 1}, "admin", [], Access.CLUSTER),
    ({"hostInfo": 1}, "admin", [], Access.CLUSTER),
    ({"serverStatus": 1}, "admin", [], Access.CLUSTER),
    ({"getLog": "startupWarnings"}, "admin", [], Access.CLUSTER),
    ({"getCmdLineOpts": 1}, "admin", [], Access.CLUSTER),
    ({"currentOp": 1}, "admin", [], Access.CLUSTER),
    ({"killOp": 1, "op": 5}, "admin", [], Access.CLUSTER),
    ({"getFreeMonitoringStatus": 1}, "admin", [], Access.CLUSTER),
    ({"lockInfo": 1}, "admin", [], Access.CLUSTER),
    ({"top": 1}, "admin", [], Access.CLUSTER),
    ({"endSessions": []}, "admin", [], Access.SESSION),
    ({"killSessions": []}, "admin", [], Access.SESSION),
    ({"startSession": 1}, "admin", [], Access.SESSION),
    ({"refreshSessions": []}, "admin", [], Access.SESSION),
    ({"abortTransaction": 1}, "admin", [], Access.SESSION),
    ({"commitTransaction": 1}, "admin", [], Access.SESSION),
]  # fmt: skip

# aggregate: (pipeline, collection or 1, expected namespaces, access)
AGGREGATES: list[tuple[list[Any], Any, list[str], Access]] = [
    ([{"$match": {"a": 1}}, {"$group": {"_id": "$a"}}, {"$sort": {"_id": 1}}], "c", ["t.c"], R),
    ([{"$lookup": {"from": "o", "localField": "a", "foreignField": "b", "as": "x"}}], "c",
     ["t.c", "t.o"], R),
    ([{"$lookup": {"from": {"db": "other", "coll": "o"}, "as": "x", "pipeline": []}}], "c",
     ["t.c", "other.o"], R),
    ([{"$lookup": {"from": "o", "as": "x", "pipeline": [
        {"$lookup": {"from": "deep", "as": "y"}}]}}], "c", ["t.c", "t.o", "t.deep"], R),
    ([{"$lookup": {"as": "x", "pipeline": [{"$documents": [{"a": 1}]}]}}], "c", ["t.c"], R),
    ([{"$graphLookup": {"from": "g", "startWith": "$a", "connectFromField": "a",
                        "connectToField": "b", "as": "x"}}], "c", ["t.c", "t.g"], R),
    ([{"$unionWith": "u"}], "c", ["t.c", "t.u"], R),
    ([{"$unionWith": {"coll": "u", "pipeline": [{"$unionWith": "v"}]}}], "c",
     ["t.c", "t.u", "t.v"], R),
    ([{"$unionWith": {"pipeline": [{"$documents": []}]}}], "c", ["t.c"], R),
    ([{"$facet": {"a": [{"$lookup": {"from": {"db": "x", "coll": "y"}, "as": "z"}}],
                  "b": [{"$unionWith": {"coll": "w", "pipeline": [
                      {"$lookup": {"from": "q", "as": "r"}}]}}]}}], "c",
     ["t.c", "x.y", "t.w", "t.q"], R),
    ([{"$out": "res"}], "c", ["t.c", "t.res"], W),
    ([{"$out": {"db": "other", "coll": "res"}}], "c", ["t.c", "other.res"], W),
    ([{"$merge": {"into": {"db": "other", "coll": "m"}, "whenMatched": "merge"}}], "c",
     ["t.c", "other.m"], W),
    ([{"$merge": {"into": "m", "whenMatched": [{"$set": {"a": 1}}]}}], "c", ["t.c", "t.m"], W),
    ([{"$merge": "m"}], "c", ["t.c", "t.m"], W),
    ([{"$documents": [{"a": 1}]}, {"$project": {"a": 1}}], 1, ["t"], R),
    ([{"$currentOp": {}}], 1, [], Access.CLUSTER),
    ([{"$listLocalSessions": {}}], 1, [], Access.CLUSTER),
    ([{"$changeStream": {}}], 1, ["t"], R),
    ([{"$changeStream": {}}], "c", ["t.c"], R),
    ([{"$changeStream": {"allChangesForCluster": True}}], 1, [], Access.CLUSTER),
    ([{"$collStats": {"count": {}}}], "c", ["t.c"], R),
    ([{"$indexStats": {}}], "c", ["t.c"], R),
]  # fmt: skip

UNKNOWN: list[tuple[dict[str, Any], str]] = [
    ({"applyOps": []}, "admin"),
    ({"eval": "db.x.drop()"}, "t"),
    ({"replSetReconfig": {}}, "admin"),
    ({"fooBar": 1}, "t"),
    ({}, "t"),
    ({"find": 5}, "t"),
    ({"find": ""}, "t"),
    ({"find": "$cmd.sys.inprog"}, "t"),
    ({"find": "c"}, ""),
    ({"find": "c"}, "a.b"),
    ({"find": "c"}, "a b"),
    ({"insert": None}, "t"),
    ({"getMore": "x", "collection": "c"}, "t"),
    ({"getMore": 5}, "t"),
    ({"renameCollection": "nodot", "to": "t.b"}, "admin"),
    ({"renameCollection": "t.a"}, "admin"),
    ({"renameCollection": "t.a", "to": ".b"}, "admin"),
    ({"dataSize": "nodot"}, "t"),
    ({"aggregate": "c"}, "t"),
    ({"aggregate": "c", "pipeline": {"$match": {}}}, "t"),
    ({"aggregate": "c", "pipeline": [{"$match": {}, "$sort": {}}]}, "t"),
    ({"aggregate": "c", "pipeline": [{"$newStage": {}}]}, "t"),
    ({"aggregate": "c", "pipeline": [{"$lookup": {"from": 5, "as": "x"}}]}, "t"),
    ({"aggregate": "c", "pipeline": [{"$lookup": {"as": "x"}}]}, "t"),
    ({"aggregate": "c", "pipeline": [{"$lookup": {"from": {"db": "o"}, "as": "x"}}]}, "t"),
    ({"aggregate": "c", "pipeline": [{"$lookup": {"from": "o", "pipeline": "x"}}]}, "t"),
    ({"aggregate": "c", "pipeline": [{"$facet": {"a": [{"$evil": {}}]}}]}, "t"),
    ({"aggregate": "c", "pipeline": [{"$out": 5}]}, "t"),
    ({"aggregate": "c", "pipeline": [{"$out": {"coll": "x"}}]}, "t"),
    ({"aggregate": "c", "pipeline": [{"$merge": {"whenMatched": "merge"}}]}, "t"),
    ({"aggregate": "c", "pipeline": [{"$unionWith": {"coll": 3}}]}, "t"),
    ({"aggregate": 2, "pipeline": []}, "t"),
    ({"aggregate": True, "pipeline": []}, "t"),
    ({"explain": {"drop": "c"}}, "t"),
    ({"explain": "find"}, "t"),
    ({"explain": {"find": 5}}, "t"),
    ({"bulkWrite": 1, "ops": []}, "admin"),
    ({"bulkWrite": 1, "nsInfo": [{"ns": "nodot"}]}, "admin"),
    ({"bulkWrite": 1, "nsInfo": ["a.b"]}, "admin"),
    ({"mapReduce": "c", "out": {"replace": "x", "merge": "y"}}, "t"),
    ({"mapReduce": "c", "out": 5}, "t"),
    ({"mapReduce": "c"}, "t"),
    ({"createUser": "u", "roles": [{"db": "admin"}]}, "t"),
    ({"createUser": "u", "roles": "root"}, "t"),
    ({"aggregate": 1, "pipeline": [{"$changeStream": True}]}, "t"),
    ({"getMore": 5, "collection": "$cmd.find"}, "t"),
    ({"getMore": 5, "collection": "$cmd.listCollections.x"}, "t"),
    ({"getMore": 5, "collection": "$cmd.listIndexes."}, "t"),
    ({"getMore": 5, "collection": "$cmd.listIndexes.$x"}, "t"),
    ({"killCursors": "$cmd.sys.inprog", "cursors": []}, "t"),
    ({"cloneCollectionAsCapped": "a", "size": 1}, "t"),
    ({"create": "v", "viewOn": 5}, "t"),
    ({"create": "v", "viewOn": "s", "pipeline": [{"$merge": {"into": 1}}]}, "t"),
]


@pytest.mark.parametrize(("command", "database", "namespaces", "access"), KNOWN)
def test_known_commands(
    command: dict[str, Any], database: str, namespaces: list[str], access: Access
) -> None:
    info = inspect_command(command, database)
    assert (info.name, info.database, info.namespaces, info.access, info.known) == (
        next(iter(command)),
        database,
        tuple(ns(n) for n in namespaces),
        access,
        True,
    )


@pytest.mark.parametrize(("pipeline", "target", "namespaces", "access"), AGGREGATES)
def test_aggregate(pipeline: list[Any], target: Any, namespaces: list[str], access: Access) -> None:
    info = inspect_command({"aggregate": target, "pipeline": pipeline, "cursor": {}}, "t")
    assert info.known
    assert info.access is access
    assert info.namespaces == tuple(ns(n) for n in namespaces)


@pytest.mark.parametrize(("command", "database"), UNKNOWN)
def test_unknown_or_malformed_is_never_guessed(command: dict[str, Any], database: str) -> None:
    info = inspect_command(command, database)
    assert not info.known
    assert info.access is Access.UNKNOWN
    assert info.namespaces == ()


def test_every_table_command_is_covered_by_a_test() -> None:
    from wicket.wire.mongo.inspect import _SERVER_WIDE, COMMANDS

    tested = {next(iter(c)) for c, *_ in KNOWN} | {"aggregate"}
    untested = set(COMMANDS) - tested
    # A few have the same handler as a tested sibling.
    untested = {name for name in untested if COMMANDS[name] is not _SERVER_WIDE}
    assert untested <= {
        "updateRole", "dropRole", "dropAllRolesFromDatabase", "grantRolesToRole",
        "revokeRolesFromRole", "grantPrivilegesToRole", "revokePrivilegesFromRole", "features",
        "replSetGetStatus", "getDefaultRWConcern", "killAllSessions", "killAllSessionsByPattern",
    }  # fmt: skip


def test_deeply_nested_pipelines_are_unknown() -> None:
    pipeline: list[Any] = [{"$match": {}}]
    for _ in range(50):
        pipeline = [{"$facet": {"x": pipeline}}]
    assert not inspect_command({"aggregate": "c", "pipeline": pipeline}, "t").known


def test_namespace_str() -> None:
    assert str(Namespace("db", "c.d")) == "db.c.d"
    assert str(Namespace("db")) == "db"


# --- inspect_message -------------------------------------------------------------------


def _inspect(data: bytes) -> CommandInfo:
    return inspect_message(decode_message(data))


def test_op_msg_uses_db() -> None:
    info = _inspect(encode_op_msg({"find": "c", "$db": "shop"}, request_id=1))
    assert info == CommandInfo("find", "shop", (ns("shop.c"),), R, True, Scope.NAMESPACE)


def test_op_msg_without_db_is_a_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError, match=r"\$db"):
        _inspect(encode_op_msg({"find": "c"}, request_id=1))
    with pytest.raises(RemoteProtocolError, match=r"\$db"):
        _inspect(encode_op_msg({"find": "c", "$db": 5}, request_id=1))


def test_op_msg_bulk_write_ns_info_in_a_document_sequence() -> None:
    data = encode_op_msg(
        {"bulkWrite": 1, "$db": "admin"},
        request_id=1,
        sequences=[
            DocumentSequence("ops", (bson.encode({"insert": 0, "document": {}}),)),
            DocumentSequence("nsInfo", (bson.encode({"ns": "a.x"}), bson.encode({"ns": "b.y"}))),
        ],
    )
    info = _inspect(data)
    assert info.known and info.namespaces == (ns("a.x"), ns("b.y"))


def test_op_msg_insert_documents_sequence_is_not_needed() -> None:
    data = encode_op_msg(
        {"insert": "c", "$db": "t"},
        request_id=1,
        sequences=[DocumentSequence("documents", (bson.encode({"a": 1}),))],
    )
    assert _inspect(data).namespaces == (ns("t.c"),)


def test_op_query_command_and_wrappers() -> None:
    info = _inspect(encode_op_query("admin.$cmd", {"isMaster": 1}, request_id=1))
    assert info == CommandInfo("isMaster", "admin", (), Access.HANDSHAKE, True, Scope.CONNECTION)
    for wrapper in ("$query", "query"):
        wrapped = {wrapper: {"count": "c"}, "$readPreference": {"mode": "primary"}}
        info = _inspect(encode_op_query("t.$cmd", wrapped, request_id=1))
        assert info == CommandInfo("count", "t", (ns("t.c"),), R, True, Scope.NAMESPACE)


def test_op_query_command_with_conflicting_db_is_unknown() -> None:
    info = _inspect(encode_op_query("t.$cmd", {"find": "c", "$db": "other"}, request_id=1))
    assert not info.known


def test_op_query_legacy_find() -> None:
    info = _inspect(encode_op_query("t.c.d", {"a": 1}, request_id=1))
    assert info == CommandInfo("find", "t", (ns("t.c.d"),), R, True, Scope.NAMESPACE)
    assert not _inspect(encode_op_query("nodot", {}, request_id=1)).known
    inprog = _inspect(encode_op_query("admin.$cmd.sys.inprog", {}, request_id=1))
    assert inprog.name == "currentOp" and inprog.scope is Scope.SERVER


def test_legacy_opcodes() -> None:
    assert _inspect(encode_op_get_more("t.c", 5, request_id=1)) == CommandInfo(
        "getMore", "t", (ns("t.c"),), R, True, Scope.NAMESPACE
    )
    assert _inspect(encode_op_insert("t.c", [{}], request_id=1)).access is W
    assert _inspect(encode_op_update("t.c", {}, {}, request_id=1)).namespaces == (ns("t.c"),)
    assert _inspect(encode_op_delete("o.c", {}, request_id=1)).namespaces == (ns("o.c"),)
    info = _inspect(encode_op_kill_cursors([1], request_id=1))
    assert info.known and info.namespaces == () and info.scope is Scope.SERVER


def test_compressed_and_reply_are_protocol_errors() -> None:
    ping = encode_op_msg({"ping": 1, "$db": "a"}, request_id=1)
    with pytest.raises(RemoteProtocolError, match="decompress first"):
        _inspect(compress_message(ping, Compressor.ZLIB))
    with pytest.raises(RemoteProtocolError):
        _inspect(encode_op_reply([], request_id=1, response_to=1))


# --- repeated field names: the server reads the first copy, a dict keeps the last ------


def _document(*elements: tuple[str, Any]) -> bytes:
    """A BSON document with the given elements in order, repeats allowed."""
    payload = b"".join(bson.encode({key: value})[4:-1] for key, value in elements)
    return struct.pack("<i", len(payload) + 5) + payload + b"\x00"


def test_repeated_command_field_is_unknown() -> None:
    body = _document(("find", "secret"), ("find", "allowed"), ("$db", "t"))
    assert bson.decode(body)["find"] == "allowed"  # what a naive dict decode would check
    info = _inspect(encode_op_msg(body, request_id=1))
    assert info == CommandInfo("find", "t", (), Access.UNKNOWN, False, Scope.NAMESPACE)


def test_repeated_db_is_unknown() -> None:
    body = _document(("find", "c"), ("$db", "secret"), ("$db", "t"))
    assert not _inspect(encode_op_msg(body, request_id=1)).known


def test_repeated_field_deep_in_a_pipeline_is_unknown() -> None:
    lookup = _document(("from", "secret"), ("from", "allowed"), ("as", "x"))
    stage_payload = b"\x03$lookup\x00" + lookup
    stage = struct.pack("<i", len(stage_payload) + 5) + stage_payload + b"\x00"
    array_payload = b"\x030\x00" + stage
    array = struct.pack("<i", len(array_payload) + 5) + array_payload + b"\x00"
    body_payload = (
        bson.encode({"aggregate": "c"})[4:-1]
        + b"\x04pipeline\x00"
        + array
        + bson.encode({"cursor": {}, "$db": "t"})[4:-1]
    )
    body = struct.pack("<i", len(body_payload) + 5) + body_payload + b"\x00"
    assert bson.decode(body)["pipeline"] == [{"$lookup": {"from": "allowed", "as": "x"}}]
    assert not _inspect(encode_op_msg(body, request_id=1)).known


def test_repeated_field_in_a_sequence_document_is_unknown() -> None:
    data = encode_op_msg(
        {"bulkWrite": 1, "$db": "admin"},
        request_id=1,
        sequences=[DocumentSequence("nsInfo", (_document(("ns", "s.x"), ("ns", "a.x")),))],
    )
    assert not _inspect(data).known


def test_repeated_field_in_op_query_command_is_unknown() -> None:
    query = _document(("count", "secret"), ("count", "ok"))
    info = _inspect(encode_op_query("t.$cmd", query, request_id=1))
    assert info == CommandInfo("count", "t", (), Access.UNKNOWN, False, Scope.NAMESPACE)


# --- scopes: every table entry has one; server-wide is never authorized by $db -------

C, N, S, L = Scope.CONNECTION, Scope.NAMESPACE, Scope.SERVER, Scope.SERVER_LISTING

# The scope of every command in the table, spelled out: changing one is a reviewed change.
EXPECTED_SCOPES: dict[Scope, set[str]] = {
    C: {
        "saslStart", "saslContinue", "authenticate", "logout", "getnonce", "hello", "isMaster",
        "ismaster", "ping", "buildInfo", "buildinfo", "connectionStatus", "whatsmyuri",
        "listCommands", "getLastError", "atlasVersion", "features", "endSessions",
        "startSession", "refreshSessions", "abortTransaction", "commitTransaction",
    },
    N: {
        "find", "count", "distinct", "listIndexes", "collStats", "killCursors", "getMore",
        "dataSize", "insert", "update", "delete", "findAndModify", "findandmodify", "aggregate",
        "mapReduce", "explain", "bulkWrite", "createIndexes", "dropIndexes", "create", "collMod",
        "drop", "validate", "compact", "reIndex", "convertToCapped", "cloneCollectionAsCapped",
        "renameCollection", "dropDatabase", "listCollections", "dbStats",
    },
    S: {
        "createUser", "updateUser", "dropUser", "dropAllUsersFromDatabase", "grantRolesToUser",
        "revokeRolesFromUser", "createRole", "updateRole", "dropRole", "dropAllRolesFromDatabase",
        "grantRolesToRole", "revokeRolesFromRole", "grantPrivilegesToRole",
        "revokePrivilegesFromRole", "usersInfo", "rolesInfo", "getParameter", "setParameter",
        "hostInfo", "serverStatus", "getLog", "getCmdLineOpts", "currentOp", "killOp",
        "getFreeMonitoringStatus", "lockInfo", "top", "replSetGetStatus", "replSetGetConfig",
        "replSetStepDown", "replSetFreeze", "getDefaultRWConcern", "setDefaultRWConcern",
        "setFeatureCompatibilityVersion", "getDiagnosticData", "connPoolStats", "profile",
        "logRotate", "fsync", "fsyncUnlock", "shutdown", "killSessions", "killAllSessions",
        "killAllSessionsByPattern",
    },
    L: {"listDatabases"},
}  # fmt: skip


def test_every_table_entry_has_its_expected_scope() -> None:
    from wicket.wire.mongo.inspect import COMMANDS, CommandSpec

    actual: dict[Scope, set[str]] = {}
    for name, spec in COMMANDS.items():
        assert isinstance(spec, CommandSpec) and isinstance(spec.scope, Scope), name
        actual.setdefault(spec.scope, set()).add(name)
    assert actual == EXPECTED_SCOPES


@pytest.mark.parametrize("name", sorted(EXPECTED_SCOPES[S]))
def test_server_wide_commands_report_server_scope_on_any_database(name: str) -> None:
    for database in ("admin", "test"):
        info = inspect_command({name: 1}, database)
        assert info.scope is Scope.SERVER, info


# (command, database, what widened it) - a namespaced command reaching the whole server
WIDENED: list[tuple[dict[str, Any], str, str]] = [
    ({"aggregate": 1, "pipeline": [{"$currentOp": {"allUsers": True}}], "cursor": {}},
     "admin", "stage $currentOp"),
    ({"aggregate": 1, "pipeline": [{"$currentOp": {}}, {"$match": {}}], "cursor": {}},
     "test", "stage $currentOp"),
    ({"aggregate": 1, "pipeline": [{"$listSessions": {"allUsers": True}}]}, "config",
     "stage $listSessions"),
    ({"aggregate": 1, "pipeline": [{"$listLocalSessions": {}}]}, "admin",
     "stage $listLocalSessions"),
    ({"aggregate": 1, "pipeline": [{"$changeStream": {"allChangesForCluster": True}}]},
     "admin", "allChangesForCluster"),
    ({"aggregate": "c", "pipeline": [{"$facet": {"x": [{"$listLocalSessions": {}}]}}]}, "t",
     "stage $listLocalSessions"),
    ({"explain": {"aggregate": 1, "pipeline": [{"$currentOp": {}}], "cursor": {}}}, "admin",
     "stage $currentOp"),
    ({"usersInfo": 1, "forAllDBs": True}, "admin", ""),
    ({"getMore": Int64(7), "collection": "$cmd.aggregate"}, "admin", "aggregation on admin"),
    ({"killCursors": "$cmd.aggregate", "cursors": [Int64(7)]}, "admin", "aggregation on admin"),
]  # fmt: skip


@pytest.mark.parametrize(("command", "database", "reason"), WIDENED)
def test_options_and_stages_that_reach_the_server_widen_the_scope(
    command: dict[str, Any], database: str, reason: str
) -> None:
    info = inspect_command(command, database)
    assert info.known, info
    assert info.scope is Scope.SERVER
    assert reason in info.widened_by
    assert Namespace(database) not in info.namespaces or next(iter(command)) == "usersInfo"


def test_namespaced_variants_stay_namespaced() -> None:
    for command, database in [
        ({"aggregate": 1, "pipeline": [{"$changeStream": {}}], "cursor": {}}, "test"),
        ({"aggregate": "c", "pipeline": [{"$changeStream": {"fullDocument": "updateLookup"}}]},
         "test"),
        ({"aggregate": 1, "pipeline": [{"$documents": [{}]}], "cursor": {}}, "test"),
        ({"getMore": Int64(7), "collection": "$cmd.aggregate"}, "test"),
        ({"find": "c"}, "admin"),
    ]:  # fmt: skip
        info = inspect_command(command, database)
        assert info.known and info.scope is Scope.NAMESPACE, info
        assert info.namespaces


def test_a_malformed_server_wide_command_stays_server_wide() -> None:
    for command in (
        {"usersInfo": 5},
        {"createUser": "u", "roles": "root"},
        {"aggregate": 1, "pipeline": [{"$currentOp": {}}, {"$evil": {}}]},
    ):
        info = inspect_command(command, "admin")
        assert not info.known
        assert info.scope is Scope.SERVER
    # ... also when the whole message is unreadable (a repeated field)
    body = _document(("usersInfo", 1), ("usersInfo", 2), ("$db", "admin"))
    assert _inspect(encode_op_msg(body, request_id=1)).scope is Scope.SERVER


def test_legacy_get_more_on_command_cursors() -> None:
    for full_name, namespace in [
        ("t.$cmd.listCollections", ns("t")),
        ("t.$cmd.aggregate", ns("t")),
        ("t.$cmd.listIndexes.c", ns("t.c")),
    ]:
        info = _inspect(encode_op_get_more(full_name, 5, request_id=1))
        assert info == CommandInfo("getMore", "t", (namespace,), R, True, Scope.NAMESPACE)
    cluster = _inspect(encode_op_get_more("admin.$cmd.aggregate", 5, request_id=1))
    assert cluster.known and cluster.scope is Scope.SERVER
    for bad in ("t.$cmd.sys.inprog", "t.$cmd", "t.$evil", "$x.$cmd.aggregate"):
        assert not _inspect(encode_op_get_more(bad, 5, request_id=1)).known, bad


@given(
    name=st.sampled_from(sorted(EXPECTED_SCOPES[S])),
    extra=st.dictionaries(
        st.text(min_size=1, max_size=12).filter(lambda k: k[0] != "$" and "\x00" not in k),
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
        max_size=4,
    ),
    database=st.sampled_from(["admin", "test", "local", "config"]),
)
def test_no_field_makes_a_server_wide_command_narrower(
    name: str, extra: dict[str, Any], database: str
) -> None:
    command = {name: 1, **{k: v for k, v in extra.items() if k != name}}
    assert inspect_command(command, database).scope is Scope.SERVER


@given(collection=st.text(max_size=40).map(lambda text: "$" + text))
def test_only_the_known_command_cursors_are_dollar_collections(collection: str) -> None:
    info = inspect_command({"getMore": Int64(1), "collection": collection}, "t")
    known_forms = collection in ("$cmd.listCollections", "$cmd.aggregate") or (
        collection.startswith("$cmd.listIndexes.")
    )
    if info.known:
        assert known_forms
        assert all(n.database == "t" for n in info.namespaces)
