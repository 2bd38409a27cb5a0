"""Auth service domain layer: users, invites, password and one-time-code logins, lockout.

A user record (`/users/<name>`) holds the argon2id hash and the TOTP secret; neither
ever leaves this module: `User` (what callers see) only says whether they are set.
Invites (`/invites/<sha256(token)>`) are the only way a password gets set, so an
administrator never learns it. Login failures (`/login_failures/<name>`) are
counted for every well-formed name, known or not, so lockout does not reveal which
users exist.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from wicket.auth import otp
from wicket.auth.invites import Invite, InviteInfo, InviteStore
from wicket.auth.passwords import Passwords, check_password_policy
from wicket.auth.roles import NAME_RE, RoleService
from wicket.auth.store import (
    LOGIN_FAILURES,
    USERS,
    Clock,
    JsonItem,
    JsonStore,
    RandomBytes,
    decode_time,
    encode_time,
    key,
    utc_now,
)
from wicket.backend.base import Backend
from wicket.config.models import SecondFactor
from wicket.errors import AccessDenied, AlreadyExists, BadParameter, NotFound, WicketError

__all__ = [
    "Invite",
    "InviteInfo",
    "LoginFailed",
    "LoginFailure",
    "LoginLocked",
    "SecondFactor",
    "User",
    "UserService",
    "check_user_name",
    "normalize_traits",
]

TRAIT_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_TRAITS = 64
MAX_TRAIT_VALUES = 256
MAX_TRAIT_VALUE_LENGTH = 256
MAX_ROLES = 64
_CAS_ATTEMPTS = 32

Traits = Mapping[str, tuple[str, ...]]


def check_user_name(name: str) -> str:
    """Refuse names that cannot be a user (they end up in keys, certificates and URLs)."""
    if not NAME_RE.match(name):
        raise BadParameter(
            f"invalid user name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def normalize_traits(traits: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    """Validated traits with duplicates removed; an empty value list drops the trait."""
    if len(traits) > MAX_TRAITS:
        raise BadParameter(f"a user may have at most {MAX_TRAITS} traits")
    result: dict[str, tuple[str, ...]] = {}
    for name, values in traits.items():
        if not TRAIT_NAME_RE.match(name):
            raise BadParameter(f"invalid trait name {name!r}: use letters, digits, '_', '.', '-'")
        if isinstance(values, str):
            raise BadParameter(f"trait {name!r} must be a list of strings")
        unique: list[str] = []
        for value in values:
            if not isinstance(value, str) or not value or len(value) > MAX_TRAIT_VALUE_LENGTH:
                raise BadParameter(
                    f"trait {name!r}: values must be strings of 1 to "
                    f"{MAX_TRAIT_VALUE_LENGTH} characters"
                )
            if "{{" in value or "}}" in value:
                raise BadParameter(f"trait {name!r}: value {value!r} must not contain {{{{ or }}}}")
            if value not in unique:
                unique.append(value)
        if len(unique) > MAX_TRAIT_VALUES:
            raise BadParameter(f"trait {name!r} may have at most {MAX_TRAIT_VALUES} values")
        if unique:
            result[name] = tuple(unique)
    return result


def _trait_values(name: str, values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise BadParameter(f"trait {name!r} must be a list of strings")
    return tuple(values)


def _check_roles(roles: Iterable[str]) -> tuple[str, ...]:
    if isinstance(roles, str):
        raise BadParameter("roles must be a list of role names")
    unique = tuple(dict.fromkeys(roles))
    if len(unique) > MAX_ROLES:
        raise BadParameter(f"a user may have at most {MAX_ROLES} roles")
    return unique


@dataclass(frozen=True)
class User:
    """A user as every caller sees it: no password hash, no OTP secret."""

    name: str
    roles: tuple[str, ...]
    traits: Traits
    created: datetime
    has_password: bool
    otp_enabled: bool

    def to_public_dict(self) -> dict[str, Any]:
        """JSON-ready view for the API and `wctl users ls`."""
        return {
            "name": self.name,
            "roles": list(self.roles),
            "traits": {k: list(v) for k, v in self.traits.items()},
            "created": encode_time(self.created),
            "has_password": self.has_password,
            "otp_enabled": self.otp_enabled,
        }


class LoginFailure(Enum):
    """Why a login failed, for the audit log (the user sees a generic message)."""

    UNKNOWN_USER = "unknown_user"
    NO_PASSWORD = "no_password"  # noqa: S105 - a reason, not a password
    BAD_PASSWORD = "bad_password"  # noqa: S105 - a reason, not a password
    BAD_OTP = "bad_otp"
    OTP_NOT_ENROLLED = "otp_not_enrolled"
    LOCKED = "locked"


class LoginFailed(AccessDenied):
    """A refused login; `reason` and `failures` are for the audit event, not the user."""

    def __init__(self, message: str, *, user: str, reason: LoginFailure, failures: int) -> None:
        super().__init__(message)
        self.user = user
        self.reason = reason
        self.failures = failures


class LoginLocked(LoginFailed):
    """A login refused because the user is locked out after repeated failures."""

    def __init__(
        self, message: str, *, user: str, failures: int, locked_until: datetime, just_locked: bool
    ) -> None:
        super().__init__(message, user=user, reason=LoginFailure.LOCKED, failures=failures)
        self.locked_until = locked_until
        self.just_locked = just_locked


@dataclass(frozen=True)
class _UserRecord:
    name: str
    roles: tuple[str, ...]
    traits: dict[str, tuple[str, ...]]
    created: datetime
    password_hash: str | None = field(default=None, repr=False)
    otp_secret: str | None = field(default=None, repr=False)
    otp_last_counter: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _UserRecord:
        try:
            return cls(
                name=str(data["name"]),
                roles=tuple(str(r) for r in data.get("roles", ())),
                traits={str(k): tuple(str(x) for x in v) for k, v in data["traits"].items()},
                created=decode_time(data["created"]),
                password_hash=data.get("password_hash"),
                otp_secret=data.get("otp_secret"),
                otp_last_counter=data.get("otp_last_counter"),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise WicketError(f"stored user record is malformed: {error!r}") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "roles": list(self.roles),
            "traits": {k: list(v) for k, v in self.traits.items()},
            "created": encode_time(self.created),
            "password_hash": self.password_hash,
            "otp_secret": self.otp_secret,
            "otp_last_counter": self.otp_last_counter,
        }

    def to_user(self) -> User:
        return User(
            name=self.name,
            roles=self.roles,
            traits=dict(self.traits),
            created=self.created,
            has_password=self.password_hash is not None,
            otp_enabled=self.otp_secret is not None,
        )

    def replace(self, **changes: Any) -> _UserRecord:
        return dataclasses.replace(self, **changes)


class UserService:
    """Users and their invites and logins, over the backend."""

    def __init__(
        self,
        backend: Backend,
        *,
        roles: RoleService | None = None,
        clock: Clock = utc_now,
        second_factor: SecondFactor = SecondFactor.OFF,
        max_failures: int = 5,
        lockout: timedelta = timedelta(minutes=15),
        failure_window: timedelta | None = None,
        passwords: Passwords | None = None,
        random_bytes: RandomBytes = secrets.token_bytes,
        cluster_name: str | None = None,
    ) -> None:
        if max_failures < 1:
            raise BadParameter("max_failures must be at least 1")
        self.store = JsonStore(backend)
        self.roles = roles or RoleService(backend)
        self.clock = clock
        self.second_factor = second_factor
        self.max_failures = max_failures
        self.lockout = lockout
        self.failure_window = failure_window or lockout
        self.passwords = passwords or Passwords()
        self.random_bytes = random_bytes
        self._cluster_name = cluster_name
        self.invites = InviteStore(self.store, clock=clock, random_bytes=random_bytes)

    # --- records -------------------------------------------------------------------

    async def _record(self, name: str) -> tuple[_UserRecord, JsonItem]:
        check_user_name(name)
        item = await self.store.get(key(USERS, name))
        if item is None:
            raise NotFound(f'user "{name}" not found')
        return _UserRecord.from_json(item.data), item

    async def _modify(self, name: str, change: Callable[[_UserRecord], _UserRecord]) -> _UserRecord:
        """Apply `change(record) -> record` with compare-and-swap, retrying on races."""
        for _ in range(_CAS_ATTEMPTS):
            record, item = await self._record(name)
            updated = change(record)
            if await self.store.compare_and_swap(item.key, item.revision, updated.to_json()):
                return updated
        raise WicketError(f'user "{name}" is being changed concurrently; try again')

    async def get(self, name: str) -> User:
        """The user called `name`."""
        record, _ = await self._record(name)
        return record.to_user()

    async def list(self) -> list[User]:
        """Every user, by name."""
        return [_UserRecord.from_json(item.data).to_user() for item in await self.store.list(USERS)]

    async def create(
        self, name: str, *, roles: Iterable[str], traits: Mapping[str, Iterable[str]]
    ) -> tuple[User, Invite]:
        """Create a user without a password and the invite through which they set one."""
        check_user_name(name)
        role_names = _check_roles(roles)
        await self.roles.require(role_names)
        record = _UserRecord(
            name=name, roles=role_names, traits=normalize_traits(traits), created=self.clock()
        )
        if await self.store.create(key(USERS, name), record.to_json()) is None:
            raise AlreadyExists(f'user "{name}" already exists')
        return record.to_user(), await self.invites.issue(name)

    async def update(
        self,
        name: str,
        *,
        roles: Iterable[str] | None = None,
        traits: Mapping[str, Iterable[str]] | None = None,
    ) -> User:
        """Replace the roles and/or the given traits (an empty value list removes a trait)."""
        role_names = None if roles is None else _check_roles(roles)
        if role_names is not None:
            await self.roles.require(role_names)
        given = None if traits is None else {k: _trait_values(k, v) for k, v in traits.items()}
        new_traits = None if given is None else normalize_traits(given)
        dropped = set() if given is None else {k for k, v in given.items() if not v}

        def change(record: _UserRecord) -> _UserRecord:
            merged = dict(record.traits)
            if new_traits is not None:
                merged.update(new_traits)
                for trait in dropped:
                    merged.pop(trait, None)
            return record.replace(
                roles=record.roles if role_names is None else role_names, traits=merged
            )

        return (await self._modify(name, change)).to_user()

    async def delete(self, name: str) -> None:
        """Delete a user, their pending invites and their login failures."""
        check_user_name(name)
        if not await self.store.delete(key(USERS, name)):
            raise NotFound(f'user "{name}" not found')
        await self.invites.delete_for(name)
        await self.store.delete(key(LOGIN_FAILURES, name))

    async def reset(self, name: str) -> Invite:
        """Clear password and OTP enrollment (and any lockout); issue a fresh invite."""
        await self._modify(
            name,
            lambda r: r.replace(password_hash=None, otp_secret=None, otp_last_counter=None),
        )
        await self.store.delete(key(LOGIN_FAILURES, name))
        await self.invites.delete_for(name)
        return await self.invites.issue(name)

    async def unlock(self, name: str) -> None:
        """Clear a lockout without touching the password."""
        check_user_name(name)
        await self.store.delete(key(LOGIN_FAILURES, name))

    # --- invites -------------------------------------------------------------------

    async def lookup_invite(self, token: str) -> InviteInfo:
        """Describe an invite; with OTP on, enroll its TOTP secret (kept until completion)."""
        if self.second_factor is SecondFactor.OFF:
            pending = await self.invites.find(token)
            return InviteInfo(user=pending.user, expires=pending.expires, otp_required=False)
        pending = await self.invites.with_otp_secret(token)
        assert pending.otp_secret is not None
        cluster = self._cluster_name or await self.store.cluster_name()
        uri = otp.provisioning_uri(pending.otp_secret, f"{pending.user}@{cluster}")
        return InviteInfo(
            user=pending.user, expires=pending.expires, otp_required=True, otp_uri=uri
        )

    async def complete_invite(self, token: str, password: str, otp_code: str | None) -> User:
        """Set the user's password (and TOTP) from an invite, which is then used up."""
        pending = await self.invites.find(token)
        name = pending.user
        check_password_policy(password)
        secret: str | None = None
        counter: int | None = None
        if self.second_factor is SecondFactor.OTP:
            stored = pending.otp_secret
            if stored is None:
                raise BadParameter(
                    "this invite needs a one-time code: open the invite link first to enroll "
                    "an authenticator app"
                )
            if not otp_code:
                raise BadParameter("a one-time code from your authenticator app is required")
            counter = otp.verify_code(stored, otp_code, self.clock())
            if counter is None:
                raise AccessDenied("invalid one-time code")
            secret = stored
        password_hash = await self.passwords.hash(password)
        await self.invites.consume(pending)
        updated = await self._modify(
            name,
            lambda r: r.replace(
                password_hash=password_hash, otp_secret=secret, otp_last_counter=counter
            ),
        )
        await self.store.delete(key(LOGIN_FAILURES, name))
        return updated.to_user()

    # --- login ---------------------------------------------------------------------

    def _locked(self, name: str, failures: int, until: datetime, *, just: bool) -> LoginLocked:
        return LoginLocked(
            f"user {name} is locked until {until:%H:%M:%S} UTC after {failures} failed login "
            f"attempts; ask an administrator to run `wctl users reset {name}`",
            user=name,
            failures=failures,
            locked_until=until,
            just_locked=just,
        )

    async def _check_lock(self, name: str) -> None:
        item = await self.store.get(key(LOGIN_FAILURES, name))
        if item is None or item.data.get("locked_until") is None:
            return
        until = decode_time(item.data["locked_until"])
        if until > self.clock():
            raise self._locked(name, int(item.data.get("failures", 0)), until, just=False)

    async def _fail(self, name: str, message: str, reason: LoginFailure) -> LoginFailed:
        """Count one failure (CAS); the error to raise, a lockout if this one tipped it."""
        record_key = key(LOGIN_FAILURES, name)
        for _ in range(_CAS_ATTEMPTS):
            now = self.clock()
            item = await self.store.get(record_key)
            failures, start = 1, now
            if item is not None:
                previous_start = decode_time(item.data["window_start"])
                locked = item.data.get("locked_until")
                lock_over = locked is not None and decode_time(locked) <= now
                if not lock_over and previous_start + self.failure_window > now:
                    failures, start = int(item.data["failures"]) + 1, previous_start
            until = now + self.lockout if failures >= self.max_failures else None
            expires = max(start + self.failure_window, until or start)
            data = {
                "failures": failures,
                "window_start": encode_time(start),
                "locked_until": None if until is None else encode_time(until),
            }
            if item is None:
                written = await self.store.create(record_key, data, expires=expires)
            else:
                written = await self.store.compare_and_swap(
                    record_key, item.revision, data, expires=expires
                )
            if written is None:
                continue
            if until is not None:
                return self._locked(name, failures, until, just=True)
            return LoginFailed(message, user=name, reason=reason, failures=failures)
        return LoginFailed(message, user=name, reason=reason, failures=self.max_failures)

    async def authenticate(self, name: str, password: str, otp_code: str | None) -> User:
        """Check a password (and TOTP code); raise LoginFailed / LoginLocked with audit detail."""
        bad_credentials = "invalid username or password"
        if not NAME_RE.match(name):
            await self.passwords.burn(password)
            raise LoginFailed(
                bad_credentials, user=name[:64], reason=LoginFailure.UNKNOWN_USER, failures=0
            )
        await self._check_lock(name)
        for _ in range(_CAS_ATTEMPTS):
            item = await self.store.get(key(USERS, name))
            if item is None:
                await self.passwords.burn(password)
                raise await self._fail(name, bad_credentials, LoginFailure.UNKNOWN_USER)
            record = _UserRecord.from_json(item.data)
            if record.password_hash is None:
                await self.passwords.burn(password)
                raise await self._fail(name, bad_credentials, LoginFailure.NO_PASSWORD)
            if not await self.passwords.verify(record.password_hash, password):
                raise await self._fail(name, bad_credentials, LoginFailure.BAD_PASSWORD)
            if record.otp_secret is None and self.second_factor is SecondFactor.OTP:
                raise LoginFailed(
                    f"user {name} has no one-time code enrolled; ask an administrator to run "
                    f"`wctl users reset {name}`",
                    user=name,
                    reason=LoginFailure.OTP_NOT_ENROLLED,
                    failures=0,
                )
            counter = None
            if record.otp_secret is not None:
                # A code is accepted once: its counter must be newer than the last one used.
                counter = otp.verify_code(
                    record.otp_secret, otp_code or "", self.clock(), after=record.otp_last_counter
                )
                if counter is None:
                    raise await self._fail(name, "invalid one-time code", LoginFailure.BAD_OTP)
            new_hash = None
            if self.passwords.needs_rehash(record.password_hash):
                new_hash = await self.passwords.hash(password)
            if counter is None and new_hash is None:
                break
            updated = record.replace(
                otp_last_counter=record.otp_last_counter if counter is None else counter,
                password_hash=new_hash or record.password_hash,
            )
            if await self.store.compare_and_swap(item.key, item.revision, updated.to_json()):
                record = updated
                break
        else:
            raise WicketError(f"user {name} is logging in concurrently; try again")
        await self.store.delete(key(LOGIN_FAILURES, name))
        return record.to_user()
