"""Auth service domain layer: invites, the one-time links through which users set a password.

`/invites/<sha256(token)>` holds `{"user", "expires", "otp_secret"}` and expires
with the invite (1 h). The token is shown once, to the administrator who shares
it; the TOTP secret is generated when the invite page is first opened and becomes
the user's only if the invite is completed with a valid code.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from wicket.auth import otp
from wicket.auth.store import (
    INVITES,
    Clock,
    JsonItem,
    JsonStore,
    RandomBytes,
    decode_time,
    encode_time,
    key,
    sha256_hex,
    utc_now,
)
from wicket.errors import NotFound, WicketError

INVITE_TTL = timedelta(hours=1)
INVITE_TOKEN_BYTES = 32
MAX_INVITE_TOKEN_LENGTH = 256
_CAS_ATTEMPTS = 32


@dataclass(frozen=True)
class Invite:
    """A one-time link secret for a user to set their password (shown once, stored hashed)."""

    token: str = field(repr=False)
    user: str
    expires: datetime


@dataclass(frozen=True)
class InviteInfo:
    """What the invite page shows: whose invite, until when, and the TOTP enrollment."""

    user: str
    expires: datetime
    otp_required: bool
    otp_uri: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PendingInvite:
    """A stored, unexpired invite (with the revision that consuming it needs)."""

    user: str
    expires: datetime
    otp_secret: str | None = field(repr=False)
    item: JsonItem = field(repr=False)


class InviteStore:
    """Issue, look up, enroll and consume invites."""

    def __init__(
        self,
        store: JsonStore,
        *,
        clock: Clock = utc_now,
        random_bytes: RandomBytes = secrets.token_bytes,
    ) -> None:
        self.store = store
        self.clock = clock
        self.random_bytes = random_bytes

    async def issue(self, user: str) -> Invite:
        """A new invite for `user`, valid for one hour."""
        token = self.random_bytes(INVITE_TOKEN_BYTES).hex()
        expires = self.clock() + INVITE_TTL
        await self.store.put(
            key(INVITES, sha256_hex(token)),
            {"user": user, "expires": encode_time(expires), "otp_secret": None},
            expires=expires,
        )
        return Invite(token=token, user=user, expires=expires)

    async def delete_for(self, user: str) -> None:
        """Revoke every pending invite of `user` (on reset and delete)."""
        for item in await self.store.list(INVITES):
            if item.data.get("user") == user:
                await self.store.delete(item.key)

    async def find(self, token: str) -> PendingInvite:
        """The unexpired invite for `token`, or NotFound saying what to do."""
        missing = NotFound(
            "invite not found: it may have been used already or expired; "
            "ask an administrator for a new one (wctl users reset NAME)"
        )
        if not token or len(token) > MAX_INVITE_TOKEN_LENGTH:
            raise missing
        item = await self.store.get(key(INVITES, sha256_hex(token)))
        if item is None:
            raise missing
        try:
            user = str(item.data["user"])
            expires = decode_time(item.data["expires"])
        except KeyError:
            raise WicketError(f"stored invite {item.key} is malformed") from None
        if expires <= self.clock():
            raise NotFound(
                f"invite expired at {expires:%Y-%m-%d %H:%M:%S} UTC; "
                f"ask an administrator for a new one (wctl users reset {user})"
            )
        secret = item.data.get("otp_secret")
        return PendingInvite(user, expires, secret if isinstance(secret, str) else None, item)

    async def with_otp_secret(self, token: str) -> PendingInvite:
        """The invite, with a TOTP secret generated and stored on first use."""
        for _ in range(_CAS_ATTEMPTS):
            pending = await self.find(token)
            if pending.otp_secret is not None:
                return pending
            secret = otp.new_secret(self.random_bytes)
            item = pending.item
            swapped = await self.store.compare_and_swap(
                item.key,
                item.revision,
                {**item.data, "otp_secret": secret},
                expires=pending.expires,
            )
            if swapped is not None:
                return PendingInvite(pending.user, pending.expires, secret, swapped)
        raise WicketError("invite is being changed concurrently; try again")

    async def consume(self, pending: PendingInvite) -> None:
        """Use an invite up; NotFound if someone else used or changed it first."""
        if not await self.store.compare_and_delete(pending.item.key, pending.item.revision):
            raise NotFound("invite not found: it was used or changed at the same time; try again")
