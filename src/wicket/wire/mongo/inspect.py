"""Wire layer: command inspection for authorization (which namespaces a command touches).

Rules (a security boundary; the agent refuses whatever is not `known`):
- Every command name is looked up in an explicit table; a name not in it is unknown.
- Every namespace the command reads or writes is reported, including ones in other
  databases (`$lookup`/`$unionWith`/`$out`/`$merge` with `{db, coll}`,
  `renameCollection ... to`, `mapReduce` output, `bulkWrite` nsInfo, role grants).
- Aggregation stages are checked against an allow-list; a stage not on it, or any
  value of an unexpected type, makes the whole command unknown. We never guess.
- Inspection never raises on a decoded command, whatever its values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, assert_never

from wicket.errors import RemoteProtocolError
from wicket.wire.mongo.compression import OpCompressed
from wicket.wire.mongo.documents import DuplicateFieldError, decode_document
from wicket.wire.mongo.legacy import OpDelete, OpGetMore, OpInsert, OpKillCursors, OpUpdate
from wicket.wire.mongo.messages import Message
from wicket.wire.mongo.opmsg import OpMsg
from wicket.wire.mongo.opquery import OpQuery
from wicket.wire.mongo.opreply import OpReply

MAX_PIPELINE_DEPTH = 20
"""Nested pipelines ($lookup in $facet in $unionWith ...) deeper than this are unknown."""

EXTERNAL_DATABASE = "$external"
_INVALID_DATABASE_CHARACTERS = frozenset('/\\. "$\x00')
MAX_DATABASE_NAME_LENGTH = 64
MAX_NAMESPACE_LENGTH = 255

# OP_MSG document sequences that carry payload only (documents to insert, update and
# delete statements, bulkWrite ops referring to nsInfo by index): never namespaces.
PAYLOAD_SEQUENCES = frozenset({"documents", "updates", "deletes", "ops"})


class Access(Enum):
    """What kind of action a command is, for RBAC and audit."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"  # catalog / DDL changes
    AUTH = "auth"  # authenticating on this connection
    HANDSHAKE = "handshake"  # connection set-up and harmless introspection
    USER_ADMIN = "user_admin"  # users and roles
    CLUSTER = "cluster"  # server-wide, no namespace
    SESSION = "session"  # logical sessions and transactions
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Namespace:
    """A database, or one collection in it (`collection` None = the whole database)."""

    database: str
    collection: str | None = None

    def __str__(self) -> str:
        if self.collection is None:
            return self.database
        return f"{self.database}.{self.collection}"


@dataclass(frozen=True)
class CommandInfo:
    """What a command is and every namespace it reads or writes."""

    name: str
    database: str
    namespaces: tuple[Namespace, ...]
    access: Access
    known: bool


class _Unknown(Exception):
    """Raised inside the inspector when a value has a shape we do not classify."""


@dataclass
class _Collector:
    """Namespaces found so far (in order, without repeats) and the strongest access."""

    database: str
    namespaces: list[Namespace] = field(default_factory=list)
    writes: bool = False
    cluster: bool = False

    def add(self, namespace: Namespace) -> None:
        if namespace not in self.namespaces:
            self.namespaces.append(namespace)


# --- name checks -----------------------------------------------------------------------


def _valid_database(name: object) -> str:
    if not isinstance(name, str):
        raise _Unknown
    if name == EXTERNAL_DATABASE:
        return name
    if (
        not name
        or len(name) > MAX_DATABASE_NAME_LENGTH
        or any(character in _INVALID_DATABASE_CHARACTERS for character in name)
    ):
        raise _Unknown
    return name


def _valid_collection(name: object) -> str:
    if (
        not isinstance(name, str)
        or not name
        or name.startswith(("$", "."))
        or "\x00" in name
        or len(name) > MAX_NAMESPACE_LENGTH
    ):
        raise _Unknown
    return name


def _collection_namespace(database: str, name: object) -> Namespace:
    return Namespace(_valid_database(database), _valid_collection(name))


def _full_namespace(full_name: object) -> Namespace:
    """ "db.coll" (as renameCollection, dataSize and bulkWrite nsInfo take it)."""
    if not isinstance(full_name, str) or "." not in full_name:
        raise _Unknown
    database, _, collection = full_name.partition(".")
    return _collection_namespace(database, collection)


def _is_one(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 1


# --- aggregation -----------------------------------------------------------------------

# Stages that only transform the documents flowing through (or read the collection
# the pipeline runs on): no other namespace involved.
PURE_STAGES = frozenset(
    {
        "$match",
        "$project",
        "$addFields",
        "$set",
        "$unset",
        "$group",
        "$sort",
        "$skip",
        "$limit",
        "$count",
        "$unwind",
        "$replaceRoot",
        "$replaceWith",
        "$sample",
        "$bucket",
        "$bucketAuto",
        "$sortByCount",
        "$redact",
        "$densify",
        "$fill",
        "$setWindowFields",
        "$geoNear",
        "$collStats",
        "$indexStats",
        "$planCacheStats",
        "$documents",
        "$changeStream",
        "$changeStreamSplitLargeEvent",
        "$search",
        "$searchMeta",
        "$vectorSearch",
    }
)

# Stages that report on the server as a whole.
CLUSTER_STAGES = frozenset(
    {"$currentOp", "$listLocalSessions", "$listSessions", "$shardedDataDistribution"}
)


def _pipeline(collector: _Collector, pipeline: object, database: str, depth: int) -> None:
    if depth > MAX_PIPELINE_DEPTH or not isinstance(pipeline, list):
        raise _Unknown
    for stage in pipeline:
        if not isinstance(stage, Mapping) or len(stage) != 1:
            raise _Unknown
        ((name, spec),) = stage.items()
        _stage(collector, name, spec, database, depth)


def _foreign(database: str, value: object) -> Namespace:
    """A stage's other collection: "coll" in this database or {db, coll}."""
    if isinstance(value, str):
        return _collection_namespace(database, value)
    if isinstance(value, Mapping) and set(value) <= {"db", "coll"} and "coll" in value:
        return _collection_namespace(value.get("db", database), value["coll"])
    raise _Unknown


def _stage(collector: _Collector, name: object, spec: object, database: str, depth: int) -> None:
    if name in PURE_STAGES:
        return
    if name in CLUSTER_STAGES:
        collector.cluster = True
        return
    if name == "$lookup":
        if not isinstance(spec, Mapping):
            raise _Unknown
        inner_database = database
        if "from" in spec:
            foreign = _foreign(database, spec["from"])
            collector.add(foreign)
            inner_database = foreign.database
        elif "pipeline" not in spec:
            raise _Unknown
        if "pipeline" in spec:
            _pipeline(collector, spec["pipeline"], inner_database, depth + 1)
    elif name == "$graphLookup":
        if not isinstance(spec, Mapping) or "from" not in spec:
            raise _Unknown
        collector.add(_foreign(database, spec["from"]))
    elif name == "$unionWith":
        if isinstance(spec, str):
            collector.add(_collection_namespace(database, spec))
        elif isinstance(spec, Mapping) and set(spec) <= {"coll", "db", "pipeline"}:
            inner_database = database
            if "coll" in spec:
                foreign = _collection_namespace(spec.get("db", database), spec["coll"])
                collector.add(foreign)
                inner_database = foreign.database
            elif "pipeline" not in spec or "db" in spec:
                raise _Unknown
            if "pipeline" in spec:
                _pipeline(collector, spec["pipeline"], inner_database, depth + 1)
        else:
            raise _Unknown
    elif name == "$out":
        collector.writes = True
        if isinstance(spec, Mapping) and "coll" in spec and "db" in spec:
            collector.add(_collection_namespace(spec["db"], spec["coll"]))
        elif isinstance(spec, str):
            collector.add(_collection_namespace(database, spec))
        else:
            raise _Unknown
    elif name == "$merge":
        collector.writes = True
        if isinstance(spec, str):
            collector.add(_collection_namespace(database, spec))
            return
        if not isinstance(spec, Mapping) or "into" not in spec:
            raise _Unknown
        collector.add(_foreign(database, spec["into"]))
        when_matched = spec.get("whenMatched")
        if isinstance(when_matched, list):
            _pipeline(collector, when_matched, database, depth + 1)
    elif name == "$facet":
        if not isinstance(spec, Mapping):
            raise _Unknown
        for sub_pipeline in spec.values():
            _pipeline(collector, sub_pipeline, database, depth + 1)
    else:
        raise _Unknown


# --- commands --------------------------------------------------------------------------

_Handler = Callable[[_Collector, Mapping[str, Any], str, object], Access]


def _on_collection(access: Access) -> _Handler:
    """A command whose first value names a collection in the current database."""

    def handler(
        collector: _Collector, command: Mapping[str, Any], database: str, value: object
    ) -> Access:
        collector.add(_collection_namespace(database, value))
        return access

    return handler


def _on_database(access: Access) -> _Handler:
    """A command about the current database as a whole."""

    def handler(
        collector: _Collector, command: Mapping[str, Any], database: str, value: object
    ) -> Access:
        collector.add(Namespace(_valid_database(database)))
        return access

    return handler


def _no_namespace(access: Access) -> _Handler:
    """A command that names no database object."""

    def handler(
        collector: _Collector, command: Mapping[str, Any], database: str, value: object
    ) -> Access:
        return access

    return handler


def _aggregate(
    collector: _Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    if _is_one(value):
        collector.add(Namespace(_valid_database(database)))
    else:
        collector.add(_collection_namespace(database, value))
    _pipeline(collector, command.get("pipeline"), database, 0)
    if collector.writes:
        return Access.WRITE
    return Access.CLUSTER if collector.cluster else Access.READ


def _create_or_modify(access: Access) -> _Handler:
    """create/collMod: the collection, plus a view's source and pipeline."""

    def handler(
        collector: _Collector, command: Mapping[str, Any], database: str, value: object
    ) -> Access:
        collector.add(_collection_namespace(database, value))
        if "viewOn" in command:
            collector.add(_collection_namespace(database, command["viewOn"]))
        if "pipeline" in command:
            _pipeline(collector, command["pipeline"], database, 0)
        return access

    return handler


def _get_more(
    collector: _Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Unknown
    collector.add(_collection_namespace(database, command.get("collection")))
    return Access.READ


def _data_size(
    collector: _Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    collector.add(_full_namespace(value))
    return Access.READ


def _rename_collection(
    collector: _Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    collector.add(_full_namespace(value))
    collector.add(_full_namespace(command.get("to")))
    return Access.ADMIN


def _clone_as_capped(
    collector: _Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    collector.add(_collection_namespace(database, value))
    collector.add(_collection_namespace(database, command.get("toCollection")))
    return Access.ADMIN


_MAP_REDUCE_OUTPUT_ACTIONS = ("replace", "merge", "reduce")


def _map_reduce(
    collector: _Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    collector.add(_collection_namespace(database, value))
    out = command.get("out")
    if isinstance(out, str):
        collector.add(_collection_namespace(database, out))
        return Access.WRITE
    if not isinstance(out, Mapping) or not out:
        raise _Unknown
    if "inline" in out:
        if len(out) != 1:
            raise _Unknown
        return Access.READ
    actions = [action for action in _MAP_REDUCE_OUTPUT_ACTIONS if action in out]
    if len(actions) != 1 or not set(out) <= {actions[0], "db", "sharded", "nonAtomic"}:
        raise _Unknown
    collector.add(_collection_namespace(out.get("db", database), out[actions[0]]))
    return Access.WRITE


# Commands explain can wrap (MongoDB's explainable commands).
EXPLAINABLE = frozenset(
    {"find", "aggregate", "count", "distinct", "update", "delete", "findAndModify",
     "findandmodify", "mapReduce"}
)  # fmt: skip


def _explain(
    collector: _Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    if not isinstance(value, Mapping) or not value:
        raise _Unknown
    inner_name = next(iter(value))
    if inner_name not in EXPLAINABLE:
        raise _Unknown
    return _run_handler(collector, value, database, inner_name)


def _bulk_write(
    collector: _Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    ns_info = command.get("nsInfo")
    if not isinstance(ns_info, list) or not ns_info:
        raise _Unknown
    for entry in ns_info:
        if not isinstance(entry, Mapping):
            raise _Unknown
        collector.add(_full_namespace(entry.get("ns")))
    return Access.WRITE


def _role_databases(collector: _Collector, roles: object, database: str) -> None:
    """Roles granted as {role, db} act on that database too."""
    if not isinstance(roles, list):
        raise _Unknown
    for role in roles:
        if isinstance(role, str):
            continue
        if not isinstance(role, Mapping) or not isinstance(role.get("role"), str):
            raise _Unknown
        collector.add(Namespace(_valid_database(role.get("db", database))))


def _user_admin(
    collector: _Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    collector.add(Namespace(_valid_database(database)))
    if "roles" in command:
        _role_databases(collector, command["roles"], database)
    return Access.USER_ADMIN


def _users_or_roles_info(
    collector: _Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    """usersInfo/rolesInfo may name users or roles of other databases."""
    collector.add(Namespace(_valid_database(database)))
    if command.get("forAllDBs") is not None:
        raise _Unknown  # every database: not expressible as namespaces, so refuse
    entries = value if isinstance(value, list) else [value]
    for entry in entries:
        if isinstance(entry, Mapping):
            collector.add(Namespace(_valid_database(entry.get("db", database))))
        elif not (isinstance(entry, str) or _is_one(entry)):
            raise _Unknown
    return Access.USER_ADMIN


def _hello(
    collector: _Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    # speculativeAuthenticate makes a handshake an authentication attempt.
    if "speculativeAuthenticate" in command:
        return Access.AUTH
    return Access.HANDSHAKE


COMMANDS: dict[str, _Handler] = {
    # CRUD and reads on db.<first value>
    "find": _on_collection(Access.READ),
    "count": _on_collection(Access.READ),
    "distinct": _on_collection(Access.READ),
    "listIndexes": _on_collection(Access.READ),
    "collStats": _on_collection(Access.READ),
    "killCursors": _on_collection(Access.READ),
    "getMore": _get_more,
    "dataSize": _data_size,
    "insert": _on_collection(Access.WRITE),
    "update": _on_collection(Access.WRITE),
    "delete": _on_collection(Access.WRITE),
    "findAndModify": _on_collection(Access.WRITE),
    "findandmodify": _on_collection(Access.WRITE),
    "aggregate": _aggregate,
    "mapReduce": _map_reduce,
    "explain": _explain,
    "bulkWrite": _bulk_write,
    # catalog / DDL
    "createIndexes": _on_collection(Access.ADMIN),
    "dropIndexes": _on_collection(Access.ADMIN),
    "create": _create_or_modify(Access.ADMIN),
    "collMod": _create_or_modify(Access.ADMIN),
    "drop": _on_collection(Access.ADMIN),
    "validate": _on_collection(Access.ADMIN),
    "compact": _on_collection(Access.ADMIN),
    "reIndex": _on_collection(Access.ADMIN),
    "convertToCapped": _on_collection(Access.ADMIN),
    "cloneCollectionAsCapped": _clone_as_capped,
    "renameCollection": _rename_collection,
    "dropDatabase": _on_database(Access.ADMIN),
    "listCollections": _on_database(Access.READ),
    "dbStats": _on_database(Access.READ),
    "listDatabases": _no_namespace(Access.CLUSTER),
    # users and roles
    "createUser": _user_admin,
    "updateUser": _user_admin,
    "dropUser": _user_admin,
    "dropAllUsersFromDatabase": _user_admin,
    "grantRolesToUser": _user_admin,
    "revokeRolesFromUser": _user_admin,
    "createRole": _user_admin,
    "updateRole": _user_admin,
    "dropRole": _user_admin,
    "dropAllRolesFromDatabase": _user_admin,
    "grantRolesToRole": _user_admin,
    "revokeRolesFromRole": _user_admin,
    "grantPrivilegesToRole": _user_admin,
    "revokePrivilegesFromRole": _user_admin,
    "usersInfo": _users_or_roles_info,
    "rolesInfo": _users_or_roles_info,
    # authentication on this connection
    "saslStart": _no_namespace(Access.AUTH),
    "saslContinue": _no_namespace(Access.AUTH),
    "authenticate": _no_namespace(Access.AUTH),
    "logout": _no_namespace(Access.AUTH),
    "getnonce": _no_namespace(Access.AUTH),
    # handshake and harmless introspection
    "hello": _hello,
    "isMaster": _hello,
    "ismaster": _hello,
    "ping": _no_namespace(Access.HANDSHAKE),
    "buildInfo": _no_namespace(Access.HANDSHAKE),
    "buildinfo": _no_namespace(Access.HANDSHAKE),
    "connectionStatus": _no_namespace(Access.HANDSHAKE),
    "whatsmyuri": _no_namespace(Access.HANDSHAKE),
    "listCommands": _no_namespace(Access.HANDSHAKE),
    "getLastError": _no_namespace(Access.HANDSHAKE),
    "atlasVersion": _no_namespace(Access.HANDSHAKE),
    "features": _no_namespace(Access.HANDSHAKE),
    # server-wide
    "getParameter": _no_namespace(Access.CLUSTER),
    "hostInfo": _no_namespace(Access.CLUSTER),
    "serverStatus": _no_namespace(Access.CLUSTER),
    "getLog": _no_namespace(Access.CLUSTER),
    "getCmdLineOpts": _no_namespace(Access.CLUSTER),
    "currentOp": _no_namespace(Access.CLUSTER),
    "killOp": _no_namespace(Access.CLUSTER),
    "getFreeMonitoringStatus": _no_namespace(Access.CLUSTER),
    "lockInfo": _no_namespace(Access.CLUSTER),
    "top": _no_namespace(Access.CLUSTER),
    "replSetGetStatus": _no_namespace(Access.CLUSTER),
    "getDefaultRWConcern": _no_namespace(Access.CLUSTER),
    # sessions and transactions
    "endSessions": _no_namespace(Access.SESSION),
    "killSessions": _no_namespace(Access.SESSION),
    "startSession": _no_namespace(Access.SESSION),
    "refreshSessions": _no_namespace(Access.SESSION),
    "abortTransaction": _no_namespace(Access.SESSION),
    "commitTransaction": _no_namespace(Access.SESSION),
}
"""Every command the inspector classifies. `applyOps`, `eval` & co. are deliberately absent."""


def _run_handler(
    collector: _Collector, command: Mapping[str, Any], database: str, name: str
) -> Access:
    handler = COMMANDS.get(name)
    if handler is None:
        raise _Unknown
    return handler(collector, command, database, command[name])


def inspect_command(command: Mapping[str, Any], database: str) -> CommandInfo:
    """Classify a decoded command sent to `database`; `known=False` means refuse it."""
    first: object = next(iter(command), "")
    name = first if isinstance(first, str) else ""
    collector = _Collector(database)
    try:
        _valid_database(database)
        access = _run_handler(collector, command, database, name)
    except (_Unknown, RecursionError):
        return CommandInfo(name, database, (), Access.UNKNOWN, known=False)
    return CommandInfo(name, database, tuple(collector.namespaces), access, known=True)


def _unwrap_legacy_command(query: dict[str, Any]) -> Mapping[str, Any]:
    """Old drivers send {$query: {...}, $readPreference: ...} (or `query`) on $cmd."""
    first = next(iter(query), None)
    if first in ("$query", "query") and isinstance(query[first], Mapping):
        inner: Mapping[str, Any] = query[first]
        return inner
    return query


def _legacy_namespace(name: str, full_name: str, access: Access) -> CommandInfo:
    database, _, _ = full_name.partition(".")
    try:
        namespace = _full_namespace(full_name)
    except _Unknown:
        return CommandInfo(name, database, (), Access.UNKNOWN, known=False)
    return CommandInfo(name, namespace.database, (namespace,), access, known=True)


def _unknown(name: object, database: str) -> CommandInfo:
    return CommandInfo(name if isinstance(name, str) else "", database, (), Access.UNKNOWN, False)


def _inspect_op_msg(message: OpMsg) -> CommandInfo:
    body = message.body_document()
    database = body.get("$db")
    if database is None:
        raise RemoteProtocolError("OP_MSG command has no $db")
    if not isinstance(database, str):
        raise RemoteProtocolError("OP_MSG command's $db is not a string")
    name = next(iter(body), "")
    try:
        command = decode_document(message.body, "OP_MSG body", unique_keys=True)
        for sequence in message.sequences:
            if sequence.identifier in command:
                raise RemoteProtocolError(
                    f"OP_MSG: document sequence {sequence.identifier!r} duplicates a body field"
                )
            if sequence.identifier in PAYLOAD_SEQUENCES:
                continue  # never holds namespaces; not worth decoding a 48 MB insert
            command[sequence.identifier] = [
                decode_document(raw, f"OP_MSG sequence {sequence.identifier!r}", unique_keys=True)
                for raw in sequence.documents
            ]
    except DuplicateFieldError:
        return _unknown(name, database)
    return inspect_command(command, database)


def _inspect_op_query(message: OpQuery) -> CommandInfo:
    if not message.is_command:
        return _legacy_namespace("find", message.full_collection_name, Access.READ)
    database = message.database
    try:
        query = decode_document(message.query, "OP_QUERY query", unique_keys=True)
    except DuplicateFieldError:
        return _unknown(next(iter(message.query_document()), ""), database)
    command = _unwrap_legacy_command(query)
    if "$db" in command and command["$db"] != database:
        return _unknown(next(iter(command), ""), database)
    return inspect_command(command, database)


def inspect_message(message: Message) -> CommandInfo:
    """Classify a client request; legacy opcodes are named after their command equivalent.

    A repeated field name anywhere in the command makes it unknown: the server acts on
    the first copy, so inspecting a dict (which keeps the last) could be fooled.
    """
    if isinstance(message, OpMsg):
        return _inspect_op_msg(message)
    if isinstance(message, OpQuery):
        return _inspect_op_query(message)
    if isinstance(message, OpGetMore):
        return _legacy_namespace("getMore", message.full_collection_name, Access.READ)
    if isinstance(message, OpInsert):
        return _legacy_namespace("insert", message.full_collection_name, Access.WRITE)
    if isinstance(message, OpUpdate):
        return _legacy_namespace("update", message.full_collection_name, Access.WRITE)
    if isinstance(message, OpDelete):
        return _legacy_namespace("delete", message.full_collection_name, Access.WRITE)
    if isinstance(message, OpKillCursors):
        return CommandInfo("killCursors", "", (), Access.READ, known=True)
    if isinstance(message, OpCompressed):
        raise RemoteProtocolError("OP_COMPRESSED: decompress first, then inspect")
    if isinstance(message, OpReply):
        raise RemoteProtocolError("OP_REPLY is a server reply; a client must not send it")
    assert_never(message)
