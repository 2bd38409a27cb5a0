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


class Scope(Enum):
    """How far a command reaches, which decides what may authorize it."""

    CONNECTION = "connection"  # this connection or the client's own logical sessions
    NAMESPACE = "namespace"  # the namespaces it names (or its $db); db_names decides
    SERVER = "server"  # the whole server or other connections; needs an explicit grant
    SERVER_LISTING = "server_listing"  # lists server-wide names; the reply is narrowed


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
    scope: Scope
    widened_by: str = ""
    """Why a command is server-wide when its name alone is not (a stage, an option)."""


class _Unknown(Exception):
    """Raised inside the inspector when a value has a shape we do not classify."""


@dataclass
class _Collector:
    """Namespaces found so far (in order, without repeats) and the strongest access."""

    database: str
    namespaces: list[Namespace] = field(default_factory=list)
    writes: bool = False
    server: bool = False
    widened_by: str = ""

    def widen(self, reason: str) -> None:
        """The command reaches the whole server because of `reason`."""
        if not self.server:
            self.server = True
            self.widened_by = reason

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
        "$changeStreamSplitLargeEvent",
        "$search",
        "$searchMeta",
        "$vectorSearch",
    }
)

# Stages that report on the server as a whole (or on every session of the shared db user).
SERVER_STAGES = frozenset(
    {
        "$currentOp",
        "$listLocalSessions",
        "$listSessions",
        "$shardedDataDistribution",
        "$listCatalog",
        "$listClusterCatalog",
        "$queryStats",
        "$querySettings",
        "$listSampledQueries",
    }
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
    if name in SERVER_STAGES:
        collector.widen(f"stage {name}")
        return
    if name == "$changeStream":
        if not isinstance(spec, Mapping):
            raise _Unknown
        if spec.get("allChangesForCluster", False) is not False:
            collector.widen("$changeStream allChangesForCluster")
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
        _valid_database(database)
    else:
        collector.add(_collection_namespace(database, value))
    _pipeline(collector, command.get("pipeline"), database, 0)
    if _is_one(value) and not collector.server:
        # a pipeline over the database (a change stream on it, $documents); a server-wide
        # stage reads no database: the grant, not db_names, decides it
        collector.namespaces.insert(0, Namespace(database))
    if collector.writes:
        return Access.WRITE
    return Access.CLUSTER if collector.server else Access.READ


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


# Cursors of commands that have no collection of their own: `DB.$cmd.<command>`.
CURSOR_DATABASE_COMMANDS = frozenset({"listCollections", "aggregate"})
LIST_INDEXES_CURSOR_PREFIX = "$cmd.listIndexes."
ADMIN_DATABASE = "admin"


def _cursor_namespace(collector: _Collector, database: str, collection: object) -> None:
    """The namespace of a cursor's collection name (getMore, killCursors, OP_GET_MORE).

    A real collection, or one of the pseudo-collections the server names cursors of
    `listCollections`, `aggregate: 1` and (older servers) `listIndexes` after. A cursor
    of an `aggregate: 1` on admin belongs to a server-wide pipeline ($currentOp, a
    cluster change stream), so continuing it is server-wide too.
    """
    if isinstance(collection, str) and collection.startswith("$cmd."):
        command = collection.removeprefix("$cmd.")
        if command in CURSOR_DATABASE_COMMANDS:
            namespace = Namespace(_valid_database(database))
            if command == "aggregate" and database == ADMIN_DATABASE:
                collector.widen("a cursor of an aggregation on admin")
                return
            collector.add(namespace)
            return
        if collection.startswith(LIST_INDEXES_CURSOR_PREFIX):
            inner = collection.removeprefix(LIST_INDEXES_CURSOR_PREFIX)
            collector.add(_collection_namespace(database, inner))
            return
        raise _Unknown
    collector.add(_collection_namespace(database, collection))


def _get_more(
    collector: _Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Unknown
    _cursor_namespace(collector, database, command.get("collection"))
    return Access.READ


def _kill_cursors(
    collector: _Collector, command: Mapping[str, Any], database: str, value: object
) -> Access:
    _cursor_namespace(collector, database, value)
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
    if command.get("forAllDBs", False) is not False:
        collector.widen("forAllDBs")  # every database's users: the grant decides
        return Access.USER_ADMIN
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
    "listDatabases": CommandSpec(Scope.SERVER_LISTING, _no_namespace(Access.CLUSTER)),
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
    collector: _Collector, command: Mapping[str, Any], database: str, name: str
) -> Access:
    spec = COMMANDS.get(name)
    if spec is None:
        raise _Unknown
    if spec.scope is Scope.SERVER:
        collector.widen("")
    return spec.handler(collector, command, database, command[name])


def _scope(collector: _Collector, name: str) -> Scope:
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
    collector = _Collector(database)
    try:
        _valid_database(database)
        access = _run_handler(collector, command, database, name)
    except (_Unknown, RecursionError):
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
        namespace = _full_namespace(full_name)
    except _Unknown:
        return CommandInfo(name, database, (), Access.UNKNOWN, False, Scope.NAMESPACE)
    return CommandInfo(name, namespace.database, (namespace,), access, True, Scope.NAMESPACE)


def _legacy_get_more(full_name: str) -> CommandInfo:
    """OP_GET_MORE: its cursor's namespace, `$cmd.<command>` cursors included."""
    database, _, collection = full_name.partition(".")
    collector = _Collector(database)
    try:
        _valid_database(database)
        _cursor_namespace(collector, database, collection)
    except _Unknown:
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
