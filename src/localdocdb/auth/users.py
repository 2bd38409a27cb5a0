"""The user store: who may log in to localdocdb, with which mechanisms and roles.

Auth layer of localdocdb. Users live in memory and, with a data directory, in
`users.json` (mode 0600, replaced atomically on every change). Like MongoDB's
`admin.system.users`, a record keeps SCRAM credentials (salt, iteration count,
StoredKey, ServerKey) and never a password. Users in `$external` have no
credentials: they log in with MONGODB-AWS (an IAM ARN) or MONGODB-X509 (a subject).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from bson import json_util
from bson.json_util import CANONICAL_JSON_OPTIONS

from localdocdb.auth.roles import ANY_DATABASE_ROLES, BUILTIN_ROLES, CLUSTER_ROLES, RoleRef
from localdocdb.auth.scram import (
    SCRAM_MECHANISMS,
    SCRAM_SHA_1,
    SCRAM_SHA_256,
    ScramCredential,
    credential_matches,
    make_credential,
)
from localdocdb.errors import CommandError, bad_value, type_mismatch

EXTERNAL_DB = "$external"
MONGODB_AWS = "MONGODB-AWS"
MONGODB_X509 = "MONGODB-X509"
EXTERNAL_MECHANISMS = (MONGODB_AWS, MONGODB_X509)

USERS_FILE = "users.json"
MAX_USERS_FILE = 64 * 1024 * 1024
MAX_NAME_LENGTH = 4096  # role ARNs and X.509 subjects are long; nothing legitimate is this long
MAX_PASSWORD_LENGTH = 4096
MAX_ROLES = 1024
_FORMAT_VERSION = 1


class Keep(Enum):
    """Marker for "leave this field as it is" in `UserStore.update_user`."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True)
class UserRecord:
    """One user: identity, roles, allowed mechanisms and SCRAM credentials (no password)."""

    db: str
    user: str
    roles: tuple[RoleRef, ...]
    mechanisms: tuple[str, ...]
    user_id: uuid.UUID
    custom_data: dict[str, Any] | None = None
    credentials: tuple[ScramCredential, ...] = field(default=(), repr=False)

    @property
    def qualified_name(self) -> str:
        """``user@db``, the form MongoDB's messages use."""
        return f"{self.user}@{self.db}"

    def credential(self, mechanism: str) -> ScramCredential | None:
        """The stored SCRAM credential for `mechanism`, if the user has one."""
        if mechanism not in self.mechanisms:
            return None
        for credential in self.credentials:
            if credential.mechanism == mechanism:
                return credential
        return None


def user_not_found(db: str, user: str) -> CommandError:
    """Code 11, as MongoDB answers dropUser/updateUser for an unknown user."""
    return CommandError(11, "UserNotFound", f'User "{user}@{db}" not found')


def role_not_found(role: str, db: str) -> CommandError:
    """Code 31, as MongoDB answers for a role that does not exist."""
    return CommandError(31, "RoleNotFound", f"Could not find role: {role}@{db}")


def _role_exists(role: str, db: str) -> bool:
    """Built-in roles exist in every database; the any-database and cluster ones only in admin."""
    if role not in BUILTIN_ROLES:
        return False
    if role in ANY_DATABASE_ROLES or role in CLUSTER_ROLES:
        return db == "admin"
    return True


def parse_roles(value: Any, default_db: str) -> list[RoleRef]:
    """Read a `roles` argument: ``["read", {role: "root", db: "admin"}]`` forms."""
    if not isinstance(value, list):
        raise type_mismatch("roles must be an array")
    if len(value) > MAX_ROLES:
        raise bad_value(f"too many roles (at most {MAX_ROLES})")
    roles: list[RoleRef] = []
    for item in value:
        if isinstance(item, str):
            ref = RoleRef(item, default_db)
        elif isinstance(item, Mapping):
            role, db = item.get("role"), item.get("db")
            if not isinstance(role, str) or not isinstance(db, str):
                raise type_mismatch("a role must be a string or a {role: string, db: string}")
            ref = RoleRef(role, db)
        else:
            raise type_mismatch("a role must be a string or a {role: string, db: string}")
        if not _role_exists(ref.role, ref.db):
            raise role_not_found(ref.role, ref.db)
        if ref not in roles:
            roles.append(ref)
    return roles


def _check_name(kind: str, value: str) -> None:
    if not value:
        raise bad_value(f"{kind} name must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise bad_value(f"{kind} name is too long (at most {MAX_NAME_LENGTH} characters)")
    if "\0" in value:
        raise bad_value(f"{kind} name must not contain NUL")


def _validate_mechanisms(db: str, mechanisms: Sequence[str] | None) -> tuple[str, ...]:
    """Mechanisms for a new user: SCRAM outside `$external`, AWS/X.509 inside it."""
    external = db == EXTERNAL_DB
    allowed = EXTERNAL_MECHANISMS if external else SCRAM_MECHANISMS
    if mechanisms is None:
        return (MONGODB_X509,) if external else SCRAM_MECHANISMS
    result: list[str] = []
    for mechanism in mechanisms:
        if not isinstance(mechanism, str):
            raise type_mismatch("mechanisms must be an array of strings")
        if mechanism not in allowed:
            where = "the $external database" if external else f"database {db}"
            raise bad_value(f"Mechanism {mechanism} is not supported for users in {where}")
        if mechanism not in result:
            result.append(mechanism)
    if not result:
        raise bad_value("mechanisms field must not be empty")
    return tuple(result)


class UserStore:
    """All users of one server; persistent when opened with a data directory."""

    def __init__(self, path: Path | None, users: dict[tuple[str, str], UserRecord]) -> None:
        self._path = path
        self._users = users
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(cls, data_dir: Path | None) -> UserStore:
        """Load `data_dir/users.json` (created on first write); `None` keeps users in memory."""
        if data_dir is None:
            return cls(None, {})
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / USERS_FILE
        users: dict[tuple[str, str], UserRecord] = {}
        if path.exists():
            if path.stat().st_size > MAX_USERS_FILE:
                raise ValueError(f"{path} is larger than {MAX_USERS_FILE} bytes")
            os.chmod(path, 0o600)
            document = json.loads(path.read_text(encoding="utf-8"))
            if document.get("version") != _FORMAT_VERSION:
                raise ValueError(f"{path}: unknown format version {document.get('version')!r}")
            for item in document["users"]:
                record = _record_from_json(item)
                users[(record.db, record.user)] = record
        return cls(path, users)

    def close(self) -> None:
        """Stop accepting changes (every change is already on disk)."""
        self._closed = True

    # -- reads -------------------------------------------------------------

    def get(self, db: str, user: str) -> UserRecord | None:
        """The user `user` of database `db`, or None."""
        return self._users.get((db, user))

    def roles_of(self, db: str, user: str) -> tuple[RoleRef, ...]:
        """The user's roles now; () when the user does not exist (e.g. was dropped)."""
        record = self._users.get((db, user))
        return () if record is None else record.roles

    def users_in(self, db: str) -> list[UserRecord]:
        """Every user defined in `db`, sorted by name."""
        return sorted((r for r in self._users.values() if r.db == db), key=lambda r: r.user)

    def all_users(self) -> list[UserRecord]:
        """Every user of every database, sorted by (db, name)."""
        return sorted(self._users.values(), key=lambda r: (r.db, r.user))

    # -- changes -----------------------------------------------------------

    def ensure_master_user(self, name: str, password: str) -> None:
        """Make sure `name@admin` exists with role root and SCRAM-SHA-1/256 for `password`."""
        existing = self.get("admin", name)
        if existing is None:
            self.create_user(
                "admin", name, password=password, mechanisms=None, roles=[RoleRef("root", "admin")]
            )
            return
        up_to_date = set(SCRAM_MECHANISMS) <= set(existing.mechanisms) and all(
            (cred := existing.credential(m)) is not None
            and credential_matches(cred, name, password)
            for m in SCRAM_MECHANISMS
        )
        roles = existing.roles
        if RoleRef("root", "admin") not in roles:
            roles = (*roles, RoleRef("root", "admin"))
        if not up_to_date or roles != existing.roles:
            self.update_user(
                "admin", name, password=password, mechanisms=list(SCRAM_MECHANISMS), roles=roles
            )

    def create_user(
        self,
        db: str,
        user: str,
        *,
        password: str | None,
        mechanisms: Sequence[str] | None,
        roles: Sequence[RoleRef],
        custom_data: Mapping[str, Any] | None = None,
        digest_password: bool = True,
    ) -> UserRecord:
        """Add a user; SCRAM users need a password, `$external` users must not have one."""
        _check_name("user", user)
        _check_name("database", db)
        mechs = _validate_mechanisms(db, mechanisms)
        credentials = self._credentials_for(db, user, password, mechs, digest_password)
        record = UserRecord(
            db=db,
            user=user,
            roles=tuple(roles),
            mechanisms=mechs,
            user_id=uuid.uuid4(),
            custom_data=None if custom_data is None else dict(custom_data),
            credentials=credentials,
        )
        with self._lock:
            if (db, user) in self._users:
                raise CommandError(51003, "Location51003", f'User "{user}@{db}" already exists')
            self._users[(db, user)] = record
            self._save()
        return record

    def update_user(
        self,
        db: str,
        user: str,
        *,
        password: str | None = None,
        mechanisms: Sequence[str] | None = None,
        roles: Sequence[RoleRef] | None = None,
        custom_data: Mapping[str, Any] | Keep | None = KEEP,
        digest_password: bool = True,
    ) -> UserRecord:
        """Change a user as MongoDB's updateUser does (roles and customData are replaced)."""
        with self._lock:
            existing = self._users.get((db, user))
            if existing is None:
                raise user_not_found(db, user)
            mechs = existing.mechanisms
            credentials = existing.credentials
            if mechanisms is not None:
                mechs = _validate_mechanisms(db, mechanisms)
                if password is None and not set(mechs) <= set(existing.mechanisms):
                    raise bad_value(
                        "mechanisms field must be a subset of previously set mechanisms"
                    )
            if password is not None:
                credentials = self._credentials_for(db, user, password, mechs, digest_password)
            else:
                credentials = tuple(c for c in credentials if c.mechanism in mechs)
            record = replace(
                existing,
                mechanisms=mechs,
                credentials=credentials,
                roles=existing.roles if roles is None else tuple(roles),
                custom_data=(
                    existing.custom_data
                    if isinstance(custom_data, Keep)
                    else (None if custom_data is None else dict(custom_data))
                ),
            )
            self._users[(db, user)] = record
            self._save()
        return record

    def drop_user(self, db: str, user: str) -> bool:
        """Remove a user; False when there was none."""
        with self._lock:
            if self._users.pop((db, user), None) is None:
                return False
            self._save()
        return True

    def drop_all_users(self, db: str) -> int:
        """Remove every user of `db`; returns how many there were."""
        with self._lock:
            keys = [key for key in self._users if key[0] == db]
            for key in keys:
                del self._users[key]
            if keys:
                self._save()
        return len(keys)

    def grant_roles(self, db: str, user: str, roles: Sequence[RoleRef]) -> UserRecord:
        """Add roles to a user (roles it already has are kept once)."""
        with self._lock:
            existing = self._users.get((db, user))
            if existing is None:
                raise user_not_found(db, user)
            merged = list(existing.roles)
            merged.extend(r for r in roles if r not in merged)
            record = replace(existing, roles=tuple(merged))
            self._users[(db, user)] = record
            self._save()
        return record

    def revoke_roles(self, db: str, user: str, roles: Sequence[RoleRef]) -> UserRecord:
        """Remove roles from a user (roles it does not have are ignored, as in MongoDB)."""
        with self._lock:
            existing = self._users.get((db, user))
            if existing is None:
                raise user_not_found(db, user)
            record = replace(existing, roles=tuple(r for r in existing.roles if r not in roles))
            self._users[(db, user)] = record
            self._save()
        return record

    # -- internals ---------------------------------------------------------

    @staticmethod
    def _credentials_for(
        db: str,
        user: str,
        password: str | None,
        mechanisms: tuple[str, ...],
        digest_password: bool,
    ) -> tuple[ScramCredential, ...]:
        if db == EXTERNAL_DB:
            if password is not None:
                raise bad_value(
                    "Cannot set the password for users defined on the '$external' database"
                )
            return ()
        if password is None:
            raise bad_value(
                "Must provide a 'pwd' field for all user documents, except those"
                " with '$external' as the user's source db"
            )
        if not password:
            raise bad_value("Password must not be empty")
        if len(password) > MAX_PASSWORD_LENGTH:
            raise bad_value(f"Password is too long (at most {MAX_PASSWORD_LENGTH} characters)")
        if not digest_password and SCRAM_SHA_256 in mechanisms:
            raise bad_value("Use of SCRAM-SHA-256 requires undigested passwords")
        credentials: list[ScramCredential] = []
        for mechanism in mechanisms:
            try:
                credentials.append(
                    make_credential(mechanism, user, password, digested=not digest_password)
                )
            except ValueError as exc:  # SASLprep refused the password
                raise bad_value(f"Error preparing password for {mechanism}: {exc}") from None
        return tuple(credentials)

    def _save(self) -> None:
        """Write every user to users.json atomically (temp file 0600, fsync, rename)."""
        if self._closed:
            raise RuntimeError("user store is closed")
        if self._path is None:
            return
        document = {
            "version": _FORMAT_VERSION,
            "users": [_record_to_json(r) for r in sorted(self._users.values(), key=_sort_key)],
        }
        data = json.dumps(document, indent=1, sort_keys=True).encode()
        temporary = self._path.with_name(f".{self._path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self._path)
        directory = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _sort_key(record: UserRecord) -> tuple[str, str]:
    return (record.db, record.user)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _record_to_json(record: UserRecord) -> dict[str, Any]:
    custom = None
    if record.custom_data is not None:
        custom = json.loads(
            json_util.dumps(record.custom_data, json_options=CANONICAL_JSON_OPTIONS)
        )
    return {
        "db": record.db,
        "user": record.user,
        "userId": str(record.user_id),
        "roles": [{"role": r.role, "db": r.db} for r in record.roles],
        "mechanisms": list(record.mechanisms),
        "customData": custom,
        "credentials": {
            c.mechanism: {
                "iterationCount": c.iteration_count,
                "salt": _b64(c.salt),
                "storedKey": _b64(c.stored_key),
                "serverKey": _b64(c.server_key),
            }
            for c in record.credentials
        },
    }


def _record_from_json(item: dict[str, Any]) -> UserRecord:
    custom = item.get("customData")
    credentials = tuple(
        ScramCredential(
            mechanism=mechanism,
            iteration_count=int(value["iterationCount"]),
            salt=base64.b64decode(value["salt"]),
            stored_key=base64.b64decode(value["storedKey"]),
            server_key=base64.b64decode(value["serverKey"]),
        )
        for mechanism, value in item.get("credentials", {}).items()
        if mechanism in (SCRAM_SHA_1, SCRAM_SHA_256)
    )
    return UserRecord(
        db=str(item["db"]),
        user=str(item["user"]),
        roles=tuple(RoleRef(str(r["role"]), str(r["db"])) for r in item["roles"]),
        mechanisms=tuple(str(m) for m in item["mechanisms"]),
        user_id=uuid.UUID(item["userId"]),
        custom_data=None if custom is None else json_util.loads(json.dumps(custom)),
        credentials=credentials,
    )
