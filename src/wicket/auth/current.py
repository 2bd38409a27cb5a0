"""Auth service domain layer (pure): what a user certificate may do *now*.

A user certificate proves who the caller is, not what they may do: users are deleted,
roles narrowed and locks set long before a certificate expires. So every call with a
user certificate is decided from the user's current record and the locks in force:

- the user no longer exists: refused;
- roles: those the certificate carries that the user still holds (a certificate never
  grants more than its own roles, and a role taken away is gone at once);
- traits: the current record's (they may have been narrowed);
- a lock in force on the user, one of their current roles, or (for a database route)
  the database: refused with the lock's text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from types import MappingProxyType

from wicket.auth.locks import Lock, Locked, first_matching
from wicket.auth.users import User
from wicket.errors import AccessDenied
from wicket.identity import Identity, IdentityKind


def current_identity(certified: Identity, user: User | None) -> Identity:
    """The certificate's identity with roles and traits as the user's record has them now."""
    if certified.kind is not IdentityKind.USER:
        return certified
    if user is None or user.name != certified.name:
        raise AccessDenied(
            f'user "{certified.name}" no longer exists: ask an administrator for an account'
        )
    roles = tuple(role for role in certified.roles if role in user.roles)
    traits = MappingProxyType({name: tuple(values) for name, values in user.traits.items()})
    return dataclasses.replace(certified, roles=roles, traits=traits)


def applying_locks(
    locks: Sequence[Lock], *, user: User, now: datetime, database: str | None = None
) -> list[Lock]:
    """The locks in force that stop this user (on `database`, when one is given)."""
    return [
        lock
        for lock in locks
        if lock.in_force(now) and lock.matches(user=user.name, roles=user.roles, database=database)
    ]


def check_not_locked(
    locks: Sequence[Lock], *, user: User, now: datetime, database: str | None = None
) -> None:
    """Raise `Locked` when a lock in force stops this user (on `database`)."""
    lock = first_matching(locks, user=user.name, roles=user.roles, database=database, now=now)
    if lock is not None:
        raise Locked(lock)
