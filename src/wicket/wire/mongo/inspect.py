"""Wire layer: command inspection for authorization (which namespaces a command touches).

Rules (a security boundary; the agent refuses whatever is not `known`):
- Every command name is looked up in an explicit table; a name not in it is unknown.
- Every namespace the command reads or writes is reported, including ones in other
  databases (`$lookup`/`$unionWith`/`$out`/`$merge` with `{db, coll}`,
  `renameCollection ... to`, `mapReduce` output, `bulkWrite` nsInfo, role grants).
- Aggregation stages are checked against an allow-list; a stage not on it, or any
  value of an unexpected type, makes the whole command unknown. We never guess.
- Every command has a `Scope` in its table entry (a `CommandSpec` cannot be built
  without one): CONNECTION (this connection or its own logical sessions), NAMESPACE
  (what it names; `db_names` decides), SERVER (its effect or what it shows spans the
  server or other connections: `$db` never authorizes it), SERVER_LISTING (lists
  server-wide names; the agent narrows the reply). Options and stages that widen a
  namespaced command to the server (`$currentOp`, `allChangesForCluster`, `forAllDBs`,
  a cursor of an aggregation on `admin`) make it SERVER, and a command whose table
  scope is SERVER stays SERVER even when its values make it unknown.
- The database user is shared by every Wicket user of it, so "its own" operations,
  sessions and users are other people's too: they are server-wide.
- Cursors of commands without a collection live on `DB.$cmd.listCollections`,
  `DB.$cmd.aggregate` and `DB.$cmd.listIndexes.COLL`; `getMore`/`killCursors`/OP_GET_MORE
  on those names are the database (or that collection), no other `$` name is.
- Inspection never raises on a decoded command, whatever its values.

The vocabulary (Access, Scope, Namespace, CommandInfo, name checks) is in
`classify.py`, aggregation stages in `pipelines.py`; this module holds the command
table and the per-opcode entry points.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, assert_never

from wicket.errors import RemoteProtocolError
from wicket.wire.mongo.classify import (
    Access,
    Collector,
    CommandInfo,
    Namespace,
    Scope,
    Unclassified,
    collection_namespace,
    full_namespace,
    is_one,
    valid_database,
)
from wicket.wire.mongo.compression import OpCompressed
from wicket.wire.mongo.documents import DuplicateFieldError, decode_document
from wicket.wire.mongo.legacy import OpDelete, OpGetMore, OpInsert, OpKillCursors, OpUpdate
from wicket.wire.mongo.messages import Message
from wicket.wire.mongo.opmsg import OpMsg
from wicket.wire.mongo.opquery import OpQuery
from wicket.wire.mongo.opreply import OpReply
from wicket.wire.mongo.pipelines import inspect_pipeline

__all__ = [
    "COMMANDS",
    "Access",
    "CommandInfo",
    "CommandSpec",
    "Namespace",
    "Scope",
    "inspect_command",
    "inspect_message",
    "server_wide_commands",
]

# OP_MSG document sequences that carry payload only (documents to insert, update and
# delete statements, bulkWrite ops referring to nsInfo by index): never namespaces.
PAYLOAD_SEQUENCES = frozenset({"documents", "updates", "deletes", "ops"})

# --- commands --------------------------------------------------------------------------

_Handler = Callable[[Collector, Mapping[str, Any], str, object], Access]


def _on_collection(access: Access) -> _Handler:
    """A command whose first value names a collection in the current database."""

    def handler(
        collector: Collector, command: Mapping[str, Any], database: str, value: object
    ) -> Access:
        collector.add(collection_namespace(database, value))
        return access

    return handler


def _on_database(access: Access) -> _Handler:
    """A command about the current database as a whole."""

    def handler(
        collector: Collector, command: Mapping[str, Any], database: str, value: object
    ) -> Access:
        collector.add(Namespace(valid_database(database)))
        return access

    return handler


def _no_namespace(access: Access) -> _Handler:
    """A command that names no database object."""

    def handler(
        collector: Collector, command: Mapping[str, Any], database: str, value: object
    ) -> Access:
        return access

    return handler


def _aggregate(
    collector: Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    if is_one(value):
        valid_database(database)
    else:
        collector.add(collection_namespace(database, value))
    inspect_pipeline(collector, command.get("pipeline"), database, 0)
    if is_one(value) and not collector.server:
        # a pipeline over the database (a change stream on it, $documents); a server-wide
        # stage reads no database: the grant, not db_names, decides it
        collector.namespaces.insert(0, Namespace(database))
    if collector.writes:
        return Access.WRITE
    return Access.CLUSTER if collector.server else Access.READ


def _create_or_modify(access: Access) -> _Handler:
    """create/collMod: the collection, plus a view's source and pipeline."""

    def handler(
        collector: Collector, command: Mapping[str, Any], database: str, value: object
    ) -> Access:
        collector.add(collection_namespace(database, value))
        if "viewOn" in command:
            collector.add(collection_namespace(database, command["viewOn"]))
        if "pipeline" in command:
            inspect_pipeline(collector, command["pipeline"], database, 0)
        return access

    return handler


# Cursors of commands that have no collection of their own: `DB.$cmd.<command>`.
CURSOR_DATABASE_COMMANDS = frozenset({"listCollections", "aggregate"})
LIST_INDEXES_CURSOR_PREFIX = "$cmd.listIndexes."
ADMIN_DATABASE = "admin"


def _cursor_namespace(collector: Collector, database: str, collection: object) -> None:
    """The namespace of a cursor's collection name (getMore, killCursors, OP_GET_MORE).

    A real collection, or one of the pseudo-collections the server names cursors of
    `listCollections`, `aggregate: 1` and (older servers) `listIndexes` after. A cursor
    of an `aggregate: 1` on admin belongs to a server-wide pipeline ($currentOp, a
    cluster change stream), so continuing it is server-wide too.
    """
    if isinstance(collection, str) and collection.startswith("$cmd."):
        command = collection.removeprefix("$cmd.")
        if command in CURSOR_DATABASE_COMMANDS:
            namespace = Namespace(valid_database(database))
            if command == "aggregate" and database == ADMIN_DATABASE:
                collector.widen("a cursor of an aggregation on admin")
                return
            collector.add(namespace)
            return
        if collection.startswith(LIST_INDEXES_CURSOR_PREFIX):
            inner = collection.removeprefix(LIST_INDEXES_CURSOR_PREFIX)
            collector.add(collection_namespace(database, inner))
            return
        raise Unclassified
    collector.add(collection_namespace(database, collection))


def _get_more(
    collector: Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Unclassified
    _cursor_namespace(collector, database, command.get("collection"))
    return Access.READ


def _kill_cursors(
    collector: Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    _cursor_namespace(collector, database, value)
    return Access.READ


def _data_size(
    collector: Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    collector.add(full_namespace(value))
    return Access.READ


def _rename_collection(
    collector: Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    collector.add(full_namespace(value))
    collector.add(full_namespace(command.get("to")))
    return Access.ADMIN


def _clone_as_capped(
    collector: Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    collector.add(collection_namespace(database, value))
    collector.add(collection_namespace(database, command.get("toCollection")))
    return Access.ADMIN


_MAP_REDUCE_OUTPUT_ACTIONS = ("replace", "merge", "reduce")


def _map_reduce(
    collector: Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    collector.add(collection_namespace(database, value))
    out = command.get("out")
    if isinstance(out, str):
        collector.add(collection_namespace(database, out))
        return Access.WRITE
    if not isinstance(out, Mapping) or not out:
        raise Unclassified
    if "inline" in out:
        if len(out) != 1:
            raise Unclassified
        return Access.READ
    actions = [action for action in _MAP_REDUCE_OUTPUT_ACTIONS if action in out]
    if len(actions) != 1 or not set(out) <= {actions[0], "db", "sharded", "nonAtomic"}:
        raise Unclassified
    collector.add(collection_namespace(out.get("db", database), out[actions[0]]))
    return Access.WRITE


# Commands explain can wrap (MongoDB's explainable commands).
EXPLAINABLE = frozenset(
    {"find", "aggregate", "count", "distinct", "update", "delete", "findAndModify",
     "findandmodify", "mapReduce"}
)  # fmt: skip


def _explain(
    collector: Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    if not isinstance(value, Mapping) or not value:
        raise Unclassified
    inner_name = next(iter(value))
    if inner_name not in EXPLAINABLE:
        raise Unclassified
    return _run_handler(collector, value, database, inner_name)


def _bulk_write(
    collector: Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    ns_info = command.get("nsInfo")
    if not isinstance(ns_info, list) or not ns_info:
        raise Unclassified
    for entry in ns_info:
        if not isinstance(entry, Mapping):
            raise Unclassified
        collector.add(full_namespace(entry.get("ns")))
    return Access.WRITE


def _role_databases(collector: Collector, roles: object, database: str) -> None:
    """Roles granted as {role, db} act on that database too."""
    if not isinstance(roles, list):
        raise Unclassified
    for role in roles:
        if isinstance(role, str):
            continue
        if not isinstance(role, Mapping) or not isinstance(role.get("role"), str):
            raise Unclassified
        collector.add(Namespace(valid_database(role.get("db", database))))


def _user_admin(
    collector: Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    collector.add(Namespace(valid_database(database)))
    if "roles" in command:
        _role_databases(collector, command["roles"], database)
    return Access.USER_ADMIN


def _users_or_roles_info(
    collector: Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    """usersInfo/rolesInfo may name users or roles of other databases."""
    collector.add(Namespace(valid_database(database)))
    if command.get("forAllDBs", False) is not False:
        collector.widen("forAllDBs")  # every database's users: the grant decides
        return Access.USER_ADMIN
    entries = value if isinstance(value, list) else [value]
    for entry in entries:
        if isinstance(entry, Mapping):
            collector.add(Namespace(valid_database(entry.get("db", database))))
        elif not (isinstance(entry, str) or is_one(entry)):
            raise Unclassified
    return Access.USER_ADMIN


def _list_databases(
    collector: Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    # Narrowing drops hidden databases from the reply, but a filter runs over all of them
    # first: one that fails on a name ({$expr: ...}) would tell which databases exist.
    if command.get("filter") not in (None, {}):
        collector.widen("a filter (it runs over every database, hidden ones too)")
    return Access.CLUSTER


def _hello(
    collector: Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    # speculativeAuthenticate makes a handshake an authentication attempt.
    if "speculativeAuthenticate" in command:
        return Access.AUTH
    return Access.HANDSHAKE


@dataclass(frozen=True)
class CommandSpec:
    """One entry of the command table: how far the command reaches and how to read it."""

    scope: Scope
    handler: _Handler


def _connection(handler: _Handler) -> CommandSpec:
    return CommandSpec(Scope.CONNECTION, handler)


def _namespaced(handler: _Handler) -> CommandSpec:
    return CommandSpec(Scope.NAMESPACE, handler)


def _server(handler: _Handler) -> CommandSpec:
    return CommandSpec(Scope.SERVER, handler)


_SERVER_WIDE = _server(_no_namespace(Access.CLUSTER))

COMMANDS: dict[str, CommandSpec] = {
    # CRUD and reads on db.<first value>
    "find": _namespaced(_on_collection(Access.READ)),
    "count": _namespaced(_on_collection(Access.READ)),
    "distinct": _namespaced(_on_collection(Access.READ)),
    "listIndexes": _namespaced(_on_collection(Access.READ)),
    "collStats": _namespaced(_on_collection(Access.READ)),
    "killCursors": _namespaced(_kill_cursors),
    "getMore": _namespaced(_get_more),
    "dataSize": _namespaced(_data_size),
    "insert": _namespaced(_on_collection(Access.WRITE)),
    "update": _namespaced(_on_collection(Access.WRITE)),
    "delete": _namespaced(_on_collection(Access.WRITE)),
    "findAndModify": _namespaced(_on_collection(Access.WRITE)),
    "findandmodify": _namespaced(_on_collection(Access.WRITE)),
    "aggregate": _namespaced(_aggregate),  # server-wide stages widen it
    "mapReduce": _namespaced(_map_reduce),
    "explain": _namespaced(_explain),  # the wrapped command's scope
    "bulkWrite": _namespaced(_bulk_write),
    # catalog / DDL
    "createIndexes": _namespaced(_on_collection(Access.ADMIN)),
    "dropIndexes": _namespaced(_on_collection(Access.ADMIN)),
    "create": _namespaced(_create_or_modify(Access.ADMIN)),
    "collMod": _namespaced(_create_or_modify(Access.ADMIN)),
    "drop": _namespaced(_on_collection(Access.ADMIN)),
    "validate": _namespaced(_on_collection(Access.ADMIN)),
    "compact": _namespaced(_on_collection(Access.ADMIN)),
    "reIndex": _namespaced(_on_collection(Access.ADMIN)),
    "convertToCapped": _namespaced(_on_collection(Access.ADMIN)),
    "cloneCollectionAsCapped": _namespaced(_clone_as_capped),
    "renameCollection": _namespaced(_rename_collection),
    "dropDatabase": _namespaced(_on_database(Access.ADMIN)),
    "listCollections": _namespaced(_on_database(Access.READ)),
    "dbStats": _namespaced(_on_database(Access.READ)),
    # every database's name: allowed, the reply narrowed to the databases the roles allow
    "listDatabases": CommandSpec(Scope.SERVER_LISTING, _list_databases),
    # users and roles: credentials made inside the database work without Wicket, and
    # usersInfo shows (with showCredentials, the secrets of) the shared db users
    "createUser": _server(_user_admin),
    "updateUser": _server(_user_admin),
    "dropUser": _server(_user_admin),
    "dropAllUsersFromDatabase": _server(_user_admin),
    "grantRolesToUser": _server(_user_admin),
    "revokeRolesFromUser": _server(_user_admin),
    "createRole": _server(_user_admin),
    "updateRole": _server(_user_admin),
    "dropRole": _server(_user_admin),
    "dropAllRolesFromDatabase": _server(_user_admin),
    "grantRolesToRole": _server(_user_admin),
    "revokeRolesFromRole": _server(_user_admin),
    "grantPrivilegesToRole": _server(_user_admin),
    "revokePrivilegesFromRole": _server(_user_admin),
    "usersInfo": _server(_users_or_roles_info),
    "rolesInfo": _server(_users_or_roles_info),
    # authentication on this connection (refused: Wicket authenticates)
    "saslStart": _connection(_no_namespace(Access.AUTH)),
    "saslContinue": _connection(_no_namespace(Access.AUTH)),
    "authenticate": _connection(_no_namespace(Access.AUTH)),
    "logout": _connection(_no_namespace(Access.AUTH)),
    "getnonce": _connection(_no_namespace(Access.AUTH)),
    # handshake and harmless introspection of this connection (the agent answers hellos)
    "hello": _connection(_hello),
    "isMaster": _connection(_hello),
    "ismaster": _connection(_hello),
    "ping": _connection(_no_namespace(Access.HANDSHAKE)),
    "buildInfo": _connection(_no_namespace(Access.HANDSHAKE)),  # the version hello shows
    "buildinfo": _connection(_no_namespace(Access.HANDSHAKE)),
    "connectionStatus": _connection(_no_namespace(Access.HANDSHAKE)),
    "whatsmyuri": _connection(_no_namespace(Access.HANDSHAKE)),
    "listCommands": _connection(_no_namespace(Access.HANDSHAKE)),
    "getLastError": _connection(_no_namespace(Access.HANDSHAKE)),
    "atlasVersion": _connection(_no_namespace(Access.HANDSHAKE)),
    "features": _connection(_no_namespace(Access.HANDSHAKE)),
    # server-wide: the server's state, logs, settings, other connections' operations
    "getParameter": _SERVER_WIDE,
    "setParameter": _SERVER_WIDE,
    "hostInfo": _SERVER_WIDE,
    "serverStatus": _SERVER_WIDE,
    "getLog": _SERVER_WIDE,
    "getCmdLineOpts": _SERVER_WIDE,
    "currentOp": _SERVER_WIDE,  # $ownOps too: the db user's ops are other users' ops
    "killOp": _SERVER_WIDE,
    "getFreeMonitoringStatus": _SERVER_WIDE,
    "lockInfo": _SERVER_WIDE,
    "top": _SERVER_WIDE,
    "replSetGetStatus": _SERVER_WIDE,
    "replSetGetConfig": _SERVER_WIDE,
    "replSetStepDown": _SERVER_WIDE,
    "replSetFreeze": _SERVER_WIDE,
    "getDefaultRWConcern": _SERVER_WIDE,
    "setDefaultRWConcern": _SERVER_WIDE,
    "setFeatureCompatibilityVersion": _SERVER_WIDE,
    "getDiagnosticData": _SERVER_WIDE,
    "connPoolStats": _SERVER_WIDE,
    "profile": _SERVER_WIDE,  # slowms, sampleRate and filter are server-wide settings
    "logRotate": _SERVER_WIDE,
    "fsync": _SERVER_WIDE,
    "fsyncUnlock": _SERVER_WIDE,
    "shutdown": _SERVER_WIDE,
    # every session of the shared db user, i.e. other Wicket users' sessions too
    "killSessions": _server(_no_namespace(Access.SESSION)),
    "killAllSessions": _server(_no_namespace(Access.SESSION)),
    "killAllSessionsByPattern": _server(_no_namespace(Access.SESSION)),
    # the client's own logical sessions and transactions (by their lsid)
    "endSessions": _connection(_no_namespace(Access.SESSION)),
    "startSession": _connection(_no_namespace(Access.SESSION)),
    "refreshSessions": _connection(_no_namespace(Access.SESSION)),
    "abortTransaction": _connection(_no_namespace(Access.SESSION)),
    "commitTransaction": _connection(_no_namespace(Access.SESSION)),
}
"""Every command the inspector classifies. `applyOps`, `eval` & co. are deliberately absent."""


def server_wide_commands() -> frozenset[str]:
    """The command names whose table scope is SERVER (for docs and tests)."""
    return frozenset(name for name, spec in COMMANDS.items() if spec.scope is Scope.SERVER)


def _run_handler(
    collector: Collector, command: Mapping[str, Any], database: str, name: str
) -> Access:
    spec = COMMANDS.get(name)
    if spec is None:
        raise Unclassified
    if spec.scope is Scope.SERVER:
        collector.widen("")
    return spec.handler(collector, command, database, command[name])


def _scope(collector: Collector, name: str) -> Scope:
    if collector.server:
        return Scope.SERVER
    spec = COMMANDS.get(name)
    return spec.scope if spec is not None else Scope.NAMESPACE


def inspect_command(command: Mapping[str, Any], database: str) -> CommandInfo:
    """Classify a decoded command sent to `database`; `known=False` means refuse it.

    An unknown command keeps the scope its name (or what was read of it) has: a
    malformed server-wide command is still server-wide.
    """
    first: object = next(iter(command), "")
    name = first if isinstance(first, str) else ""
    collector = Collector(database)
    try:
        valid_database(database)
        access = _run_handler(collector, command, database, name)
    except (Unclassified, RecursionError):
        return CommandInfo(
            name, database, (), Access.UNKNOWN, False, _scope(collector, name), collector.widened_by
        )
    return CommandInfo(
        name,
        database,
        tuple(collector.namespaces),
        access,
        True,
        _scope(collector, name),
        collector.widened_by,
    )


def _unwrap_legacy_command(query: dict[str, Any]) -> Mapping[str, Any]:
    """Old drivers send {$query: {...}, $readPreference: ...} (or `query`) on $cmd."""
    first = next(iter(query), None)
    if first in ("$query", "query") and isinstance(query[first], Mapping):
        inner: Mapping[str, Any] = query[first]
        return inner
    return query


# Legacy pseudo-commands: OP_QUERY on `admin.$cmd.sys.inprog` is currentOp, and so on.
LEGACY_SERVER_COLLECTIONS = {
    "$cmd.sys.inprog": "currentOp",
    "$cmd.sys.killop": "killOp",
    "$cmd.sys.unlock": "fsyncUnlock",
}


def _legacy_namespace(name: str, full_name: str, access: Access) -> CommandInfo:
    database, _, collection = full_name.partition(".")
    server_command = LEGACY_SERVER_COLLECTIONS.get(collection)
    if server_command is not None:
        return CommandInfo(
            server_command, database, (), Access.CLUSTER, True, Scope.SERVER, f"legacy {full_name}"
        )
    try:
        namespace = full_namespace(full_name)
    except Unclassified:
        return CommandInfo(name, database, (), Access.UNKNOWN, False, Scope.NAMESPACE)
    return CommandInfo(name, namespace.database, (namespace,), access, True, Scope.NAMESPACE)


def _legacy_get_more(full_name: str) -> CommandInfo:
    """OP_GET_MORE: its cursor's namespace, `$cmd.<command>` cursors included."""
    database, _, collection = full_name.partition(".")
    collector = Collector(database)
    try:
        valid_database(database)
        _cursor_namespace(collector, database, collection)
    except Unclassified:
        return CommandInfo("getMore", database, (), Access.UNKNOWN, False, _scope(collector, ""))
    return CommandInfo(
        "getMore",
        database,
        tuple(collector.namespaces),
        Access.READ,
        True,
        _scope(collector, "getMore"),
        collector.widened_by,
    )


def _unknown(name: object, database: str) -> CommandInfo:
    text = name if isinstance(name, str) else ""
    spec = COMMANDS.get(text)
    scope = spec.scope if spec is not None else Scope.NAMESPACE
    return CommandInfo(text, database, (), Access.UNKNOWN, False, scope)


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
        return _legacy_get_more(message.full_collection_name)
    if isinstance(message, OpInsert):
        return _legacy_namespace("insert", message.full_collection_name, Access.WRITE)
    if isinstance(message, OpUpdate):
        return _legacy_namespace("update", message.full_collection_name, Access.WRITE)
    if isinstance(message, OpDelete):
        return _legacy_namespace("delete", message.full_collection_name, Access.WRITE)
    if isinstance(message, OpKillCursors):
        # cursor ids of any namespace and, through the shared db user, of anyone
        return CommandInfo(
            "killCursors", "", (), Access.READ, True, Scope.SERVER, "legacy OP_KILL_CURSORS"
        )
    if isinstance(message, OpCompressed):
        raise RemoteProtocolError("OP_COMPRESSED: decompress first, then inspect")
    if isinstance(message, OpReply):
        raise RemoteProtocolError("OP_REPLY is a server reply; a client must not send it")
    assert_never(message)
