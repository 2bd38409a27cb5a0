"""Wire layer: the vocabulary of command inspection (what a command is, how far it reaches).

`inspect.py` classifies commands with these: `Access` (what kind of action), `Scope`
(what may authorize it), `Namespace`, the resulting `CommandInfo`, the name checks
every database and collection name goes through, and the `Collector` a command's
handlers fill. `Unclassified` is raised, never returned: a value of a shape we do not
classify makes the whole command unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

EXTERNAL_DATABASE = "$external"
_INVALID_DATABASE_CHARACTERS = frozenset('/\\. "$\x00')
MAX_DATABASE_NAME_LENGTH = 64
MAX_NAMESPACE_LENGTH = 255


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


class Unclassified(Exception):
    """Raised inside the inspector when a value has a shape we do not classify."""


@dataclass
class Collector:
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
        """Record a namespace the command touches (once)."""
        if namespace not in self.namespaces:
            self.namespaces.append(namespace)


# --- name checks -----------------------------------------------------------------------


def valid_database(name: object) -> str:
    """`name` if it can be a database name (MongoDB's rules), else Unclassified."""
    if not isinstance(name, str):
        raise Unclassified
    if name == EXTERNAL_DATABASE:
        return name
    if (
        not name
        or len(name) > MAX_DATABASE_NAME_LENGTH
        or any(character in _INVALID_DATABASE_CHARACTERS for character in name)
    ):
        raise Unclassified
    return name


def valid_collection(name: object) -> str:
    """`name` if it can be a real collection name (no `$` pseudo-collections)."""
    if (
        not isinstance(name, str)
        or not name
        or name.startswith(("$", "."))
        or "\x00" in name
        or len(name) > MAX_NAMESPACE_LENGTH
    ):
        raise Unclassified
    return name


def collection_namespace(database: str, name: object) -> Namespace:
    """The namespace of collection `name` in `database`, both names checked."""
    return Namespace(valid_database(database), valid_collection(name))


def full_namespace(full_name: object) -> Namespace:
    """A "db.coll" full name (as renameCollection, dataSize and bulkWrite nsInfo take it)."""
    if not isinstance(full_name, str) or "." not in full_name:
        raise Unclassified
    database, _, collection = full_name.partition(".")
    return collection_namespace(database, collection)


def is_one(value: object) -> bool:
    """Whether a command value is the number 1 (`aggregate: 1`), booleans excluded."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 1
