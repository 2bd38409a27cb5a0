"""Built-in roles and the privilege check every localdocdb command goes through.

Roles and action names follow MongoDB's built-in roles
(https://www.mongodb.com/docs/manual/reference/built-in-roles/) for the commands
localdocdb implements. A privilege is an action on a resource: a collection
(`db.coll`), a whole database (`db`, collection None), or the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

# Actions, by the name MongoDB gives them.
READ_ACTIONS = frozenset(
    {"find", "listCollections", "listIndexes", "collStats", "dbStats", "dbHash", "killCursors"}
)
WRITE_ACTIONS = frozenset(
    {
        "insert",
        "update",
        "remove",
        "createCollection",
        "dropCollection",
        "createIndex",
        "dropIndex",
        "renameCollectionSameDB",
    }
)
DB_ADMIN_ACTIONS = frozenset(
    {
        "listCollections",
        "listIndexes",
        "collStats",
        "dbStats",
        "createCollection",
        "dropCollection",
        "createIndex",
        "dropIndex",
        "dropDatabase",
        "renameCollectionSameDB",
        "killCursors",
    }
)
USER_ADMIN_ACTIONS = frozenset(
    {
        "createUser",
        "dropUser",
        "updateUser",
        "grantRole",
        "revokeRole",
        "viewUser",
        "viewRole",
        "changePassword",
        "changeCustomData",
    }
)
CLUSTER_ADMIN_ACTIONS = frozenset(
    {
        "listDatabases",
        "serverStatus",
        "hostInfo",
        "getLog",
        "getParameter",
        "getCmdLineOpts",
        "inprog",
        "killop",
        "killAnySession",
        "connPoolStats",
        "replSetGetStatus",
    }
)

# What a database role may still do on `system.*` collections (listing, not reading).
SYSTEM_COLLECTION_ACTIONS = frozenset({"listCollections", "listIndexes", "collStats"})

ANY_DATABASE_ROLES = frozenset(
    {"readAnyDatabase", "readWriteAnyDatabase", "userAdminAnyDatabase", "dbAdminAnyDatabase"}
)
CLUSTER_ROLES = frozenset({"clusterAdmin", "clusterMonitor", "clusterManager", "root"})
BUILTIN_ROLES = frozenset(
    {"read", "readWrite", "dbAdmin", "userAdmin", "dbOwner", *ANY_DATABASE_ROLES, *CLUSTER_ROLES}
)


class ResourceKind(Enum):
    """What a privilege applies to."""

    COLLECTION = "collection"
    DATABASE = "database"
    CLUSTER = "cluster"


@dataclass(frozen=True)
class RoleRef:
    """A role granted to a user: `{role: NAME, db: DB}`."""

    role: str
    db: str


def _database_actions(role: str) -> frozenset[str]:
    """Actions a database-scoped role grants on its own database."""
    read_write = READ_ACTIONS | WRITE_ACTIONS
    table: dict[str, frozenset[str]] = {
        "read": READ_ACTIONS,
        "readWrite": read_write,
        "dbAdmin": DB_ADMIN_ACTIONS,
        "userAdmin": USER_ADMIN_ACTIONS,
        "dbOwner": read_write | DB_ADMIN_ACTIONS | USER_ADMIN_ACTIONS,
    }
    return table.get(role, frozenset())


def _any_database_actions(role: str) -> frozenset[str]:
    """Actions an `...AnyDatabase` or cluster role grants on every database."""
    table: dict[str, frozenset[str]] = {
        "readAnyDatabase": READ_ACTIONS,
        "readWriteAnyDatabase": READ_ACTIONS | WRITE_ACTIONS,
        "userAdminAnyDatabase": USER_ADMIN_ACTIONS,
        "dbAdminAnyDatabase": DB_ADMIN_ACTIONS,
        "clusterAdmin": frozenset({"dropDatabase"}),
        "root": READ_ACTIONS | WRITE_ACTIONS | DB_ADMIN_ACTIONS | USER_ADMIN_ACTIONS,
    }
    return table.get(role, frozenset())


def _cluster_actions(role: str) -> frozenset[str]:
    """Cluster-wide actions a role grants (only when granted on `admin`)."""
    if role in {"clusterAdmin", "root"}:
        return CLUSTER_ADMIN_ACTIONS
    if role == "clusterMonitor":
        return CLUSTER_ADMIN_ACTIONS - {"killop", "killAnySession"}
    if role in ANY_DATABASE_ROLES:
        return frozenset({"listDatabases"})
    return frozenset()


def is_authorized(
    roles: Iterable[RoleRef],
    action: str,
    kind: ResourceKind,
    database: str = "",
    collection: str | None = None,
) -> bool:
    """Whether any of `roles` grants `action` on the resource.

    `system.*` collections are never reached through read/readWrite: MongoDB keeps
    them for its own use (users live in `admin.system.users`).
    """
    system_collection = collection is not None and collection.startswith("system.")
    for ref in roles:
        if kind is ResourceKind.CLUSTER:
            if ref.db == "admin" and action in _cluster_actions(ref.role):
                return True
            continue
        any_database = ref.db == "admin" and action in _any_database_actions(ref.role)
        if any_database and (not system_collection or ref.role == "root"):
            return True
        own_database = ref.db == database and action in _database_actions(ref.role)
        if own_database and (not system_collection or action in SYSTEM_COLLECTION_ACTIONS):
            return True
    return False
