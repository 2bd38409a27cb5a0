"""Auth service domain layer: locks, which stop a user, a role or a database at once.

A lock in force means: no login, no certificate issued, no new session, and every
open session it matches ends (agents learn of it through the backend's watch). Locks
are stored at `/locks/<id>` as resources (`kind: lock`); one with an expiry is stored
with the backend's expiry, so it disappears by itself, and `in_force` also checks the
time so a lock never outlives its expiry by a sweeper's delay.

Matching (pure, used by the auth service and by agents alike):
- `user`: the user's name;
- `role`: any of the user's current roles;
- `db`: the database (service) name of the session or certificate route.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from wicket.auth.roles import NAME_RE
from wicket.auth.store import Clock, JsonStore, encode_time, key, utc_now
from wicket.backend.base import Backend
from wicket.errors import AccessDenied, BadParameter, NotFound

LOCKS = "/locks/"
MAX_MESSAGE_LENGTH = 1024
MAX_TARGET_LENGTH = 256
LOCK_ID_LENGTH = 36  # a UUID in text form


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LockTarget(_Model):
    """Exactly one of: a user, a role, a database."""

    user: str | None = Field(default=None, max_length=MAX_TARGET_LENGTH)
    role: str | None = Field(default=None, max_length=MAX_TARGET_LENGTH)
    db: str | None = Field(default=None, max_length=MAX_TARGET_LENGTH)

    @model_validator(mode="after")
    def _exactly_one(self) -> LockTarget:
        set_fields = [name for name in ("user", "role", "db") if getattr(self, name)]
        if len(set_fields) != 1:
            raise ValueError("a lock targets exactly one of: user, role, db")
        return self

    def describe(self) -> str:
        """`user bob`, `role dev`, `db prod-docdb`."""
        for name in ("user", "role", "db"):
            value = getattr(self, name)
            if value:
                return f"{name} {value}"
        raise AssertionError("validated target has no field")  # pragma: no cover


class LockSpec(_Model):
    """What is locked, why, until when, by whom."""

    target: LockTarget
    message: str = Field(default="", max_length=MAX_MESSAGE_LENGTH)
    expires: datetime | None = None
    created: datetime | None = None
    created_by: str = Field(default="", max_length=MAX_TARGET_LENGTH)


class LockMetadata(_Model):
    """The lock's id (a UUID chosen by the auth service)."""

    name: str = Field(min_length=1, max_length=LOCK_ID_LENGTH)


class Lock(_Model):
    """A lock resource, as stored and as `wctl get locks` shows it."""

    kind: Literal["lock"] = "lock"
    version: Literal["v1"] = "v1"
    metadata: LockMetadata
    spec: LockSpec

    @property
    def id(self) -> str:
        """The lock's id (`wctl rm lock/ID`)."""
        return self.metadata.name

    @property
    def target(self) -> LockTarget:
        """What the lock stops."""
        return self.spec.target

    @classmethod
    def from_resource(cls, data: object) -> Lock:
        """Parse a stored or transmitted lock resource; BadParameter with the field path."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "lock"
            raise BadParameter(f"lock: {where}: {first['msg']}") from None

    def to_resource(self) -> dict[str, Any]:
        """The JSON shape (times as RFC 3339, unset fields left out)."""
        spec: dict[str, Any] = {
            "target": self.spec.target.model_dump(exclude_none=True),
            "message": self.spec.message,
        }
        if self.spec.expires is not None:
            spec["expires"] = encode_time(self.spec.expires)
        if self.spec.created is not None:
            spec["created"] = encode_time(self.spec.created)
        if self.spec.created_by:
            spec["created_by"] = self.spec.created_by
        return {
            "kind": self.kind,
            "version": self.version,
            "metadata": {"name": self.id},
            "spec": spec,
        }

    def in_force(self, now: datetime) -> bool:
        """True until the lock's expiry (forever when it has none)."""
        return self.spec.expires is None or now < self.spec.expires

    def matches(self, *, user: str, roles: Iterable[str], database: str | None = None) -> bool:
        """Whether this lock stops `user` (holding `roles`) on `database` (None: any access)."""
        target = self.spec.target
        if target.user is not None:
            return target.user == user
        if target.role is not None:
            return target.role in set(roles)
        return database is not None and target.db == database

    def refusal(self) -> str:
        """The error text every refusal and ended session carries."""
        text = f"access locked ({self.target.describe()}, lock {self.id})"
        if self.spec.message:
            text += f": {self.spec.message}"
        if self.spec.expires is not None:
            text += f" [until {encode_time(self.spec.expires)}]"
        return text


class Locked(AccessDenied):
    """Refused because a lock is in force; the message is the lock's refusal text."""

    def __init__(self, lock: Lock) -> None:
        super().__init__(lock.refusal())
        self.lock = lock


def first_matching(
    locks: Iterable[Lock],
    *,
    user: str,
    roles: Sequence[str],
    database: str | None = None,
    now: datetime,
) -> Lock | None:
    """The first lock in force that matches this access, if any."""
    for lock in locks:
        if lock.in_force(now) and lock.matches(user=user, roles=roles, database=database):
            return lock
    return None


def _check_target_value(field: str, value: str) -> str:
    if not NAME_RE.match(value):
        raise BadParameter(f'lock: "{value}" is not a valid {field} name')
    return value


class LockService:
    """Stored locks: create, list (those in force), delete, and the check every access makes."""

    def __init__(self, backend: Backend, *, clock: Clock = utc_now) -> None:
        self.store = JsonStore(backend)
        self.clock = clock

    async def create(
        self,
        *,
        user: str | None = None,
        role: str | None = None,
        db: str | None = None,
        message: str = "",
        ttl: timedelta | None = None,
        expires: datetime | None = None,
        created_by: str = "",
    ) -> Lock:
        """A new lock in force from now; `ttl` or `expires` (not both) bound it."""
        if ttl is not None and expires is not None:
            raise BadParameter("give a lock a ttl or an expiry time, not both")
        now = self.clock()
        if ttl is not None:
            if ttl <= timedelta(0):
                raise BadParameter("a lock's ttl must be positive")
            expires = now + ttl
        if expires is not None:
            if expires.tzinfo is None:
                raise BadParameter("a lock's expiry must carry a time zone (RFC 3339)")
            if expires <= now:
                raise BadParameter(f"lock expiry {encode_time(expires)} is in the past")
        if len(message) > MAX_MESSAGE_LENGTH:
            raise BadParameter(f"a lock's message is limited to {MAX_MESSAGE_LENGTH} characters")
        for field, value in (("user", user), ("role", role), ("db", db)):
            if value is not None:
                _check_target_value(field, value)
        try:
            target = LockTarget(user=user, role=role, db=db)
        except ValidationError:
            raise BadParameter("a lock targets exactly one of: --user, --role, --db") from None
        lock = Lock(
            metadata=LockMetadata(name=str(uuid.uuid4())),
            spec=LockSpec(
                target=target,
                message=message,
                expires=expires,
                created=now,
                created_by=created_by,
            ),
        )
        await self.store.put(key(LOCKS, lock.id), lock.to_resource(), expires=expires)
        return lock

    async def get(self, lock_id: str) -> Lock:
        """The lock with this id (NotFound when absent or expired)."""
        record = None
        if 0 < len(lock_id) <= LOCK_ID_LENGTH and NAME_RE.match(lock_id):
            record = await self.store.get(key(LOCKS, lock_id))
        if record is None:
            raise NotFound(f'lock "{lock_id}" not found (wctl locks ls lists them)')
        lock = Lock.from_resource(record.data)
        if not lock.in_force(self.clock()):
            raise NotFound(f'lock "{lock_id}" has expired')
        return lock

    async def list(self) -> list[Lock]:
        """Every lock in force, oldest first."""
        now = self.clock()
        locks = [Lock.from_resource(item.data) for item in await self.store.list(LOCKS)]
        in_force = [lock for lock in locks if lock.in_force(now)]
        return sorted(in_force, key=lambda lock: (lock.spec.created or now, lock.id))

    async def delete(self, lock_id: str) -> Lock:
        """Remove a lock; the access it stopped is possible again."""
        lock = await self.get(lock_id)
        if not await self.store.delete(key(LOCKS, lock.id)):
            raise NotFound(f'lock "{lock_id}" not found')
        return lock

    async def check(self, *, user: str, roles: Sequence[str], database: str | None = None) -> None:
        """Raise `Locked` when a lock in force stops this access."""
        lock = first_matching(
            await self.list(), user=user, roles=roles, database=database, now=self.clock()
        )
        if lock is not None:
            raise Locked(lock)
