"""Auth service domain layer: password policy and argon2id hashing.

Hashing is CPU-bound (tens of milliseconds by design), so it runs in a worker
thread and never stalls the event loop.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from wicket.errors import BadParameter

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024


def check_password_policy(password: str) -> None:
    """Refuse passwords a user should not pick, with a message saying what to change."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadParameter(f"password is too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise BadParameter(f"password is too long: use at most {MAX_PASSWORD_LENGTH} characters")
    if password.strip() == "":
        raise BadParameter("password must not be only whitespace")


class Passwords:
    """argon2id hashes: hash, verify, detect outdated parameters, and burn time for unknowns."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        """A new argon2id hash of `password`."""
        return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        """Whether `password` matches `password_hash` (False for malformed hashes)."""
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        return await asyncio.to_thread(self._verify, password_hash, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters than ours (rehash on login)."""
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    async def burn(self, password: str) -> None:
        """Spend as long as a real verification, so unknown users answer in the same time."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash("wicket-dummy-password-for-timing")
        await self.verify(self._dummy_hash, password[:MAX_PASSWORD_LENGTH])
