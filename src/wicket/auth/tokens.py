"""Auth service domain layer: join tokens for hosts (`wctl tokens add --type=db|proxy`).

A token's value is shown once; it is stored as `/tokens/<sha256(value)>` and listed
by a masked id (the first 8 hex digits of that hash). Records are kept a while past
their expiry so a late join gets "expired at ..." instead of "not found".
Single-use tokens are consumed with compare-and-delete: of two joins racing with
one token, exactly one wins. A proxy token may carry the names its proxy's
certificate is allowed (`--names`); the auth service decides the rest
(`wicket.auth.hosts`).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from wicket.auth.hosts import token_names
from wicket.auth.store import (
    TOKENS,
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
from wicket.backend.base import Backend
from wicket.errors import AccessDenied, AlreadyExists, BadParameter, NotFound, WicketError

DEFAULT_TOKEN_TTL = timedelta(minutes=30)
MAX_TOKEN_TTL = timedelta(days=30)
TOKEN_BYTES = 32
MIN_TOKEN_LENGTH = 16
MAX_TOKEN_LENGTH = 256
MASKED_ID_LENGTH = 8
EXPIRED_RETENTION = timedelta(hours=24)
_TOKEN_VALUE_RE = re.compile(r"^[A-Za-z0-9._-]+$")
_HEX_RE = re.compile(r"^[0-9a-f]+$")


class TokenType(Enum):
    """Which kind of host a token lets join."""

    DB = "db"
    PROXY = "proxy"


class JoinRefused(AccessDenied):
    """A join token cannot be used; subclasses say why."""


class TokenNotFound(JoinRefused):
    """The token does not exist (never did, was used, or is long expired)."""


class TokenExpired(JoinRefused):
    """The token exists but its TTL has passed."""


class TokenWrongType(JoinRefused):
    """The token is for another kind of host."""


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token: never its value."""

    id: str
    type: TokenType
    expires: datetime
    single_use: bool
    created: datetime
    names: tuple[str, ...] = ()  # proxy tokens: names the proxy's certificate may carry

    @property
    def use(self) -> str:
        """`single-use` or `reusable`, as `wctl tokens ls` shows it."""
        return "single-use" if self.single_use else "reusable"

    def to_public_dict(self) -> dict[str, Any]:
        """JSON-ready view for the API and `wctl tokens ls --format json`."""
        return {
            "id": self.id,
            "type": self.type.value,
            "expires": encode_time(self.expires),
            "single_use": self.single_use,
            "created": encode_time(self.created),
            "names": list(self.names),
        }


def check_token_value(value: str) -> str:
    """Refuse token values that could not have come from `create` (or a sane admin)."""
    if not MIN_TOKEN_LENGTH <= len(value) <= MAX_TOKEN_LENGTH or not _TOKEN_VALUE_RE.match(value):
        raise BadParameter(
            f"a join token must be {MIN_TOKEN_LENGTH} to {MAX_TOKEN_LENGTH} letters, digits, "
            "'.', '_' or '-'"
        )
    return value


def _info(item: JsonItem) -> TokenInfo:
    data = item.data
    try:
        return TokenInfo(
            id=item.key.removeprefix(TOKENS)[:MASKED_ID_LENGTH],
            type=TokenType(data["type"]),
            expires=decode_time(data["expires"]),
            single_use=bool(data["single_use"]),
            created=decode_time(data["created"]),
            names=tuple(str(name) for name in data.get("names", [])),
        )
    except (KeyError, ValueError, TypeError) as error:
        raise WicketError(f"stored join token is malformed: {error!r}") from None


class TokenService:
    """Create, list, delete and consume join tokens."""

    def __init__(
        self,
        backend: Backend,
        *,
        clock: Clock = utc_now,
        random_bytes: RandomBytes = secrets.token_bytes,
    ) -> None:
        self.store = JsonStore(backend)
        self.clock = clock
        self.random_bytes = random_bytes

    async def create(
        self,
        type: TokenType | str,  # the CLI's and the guide's word
        ttl: timedelta = DEFAULT_TOKEN_TTL,
        *,
        single_use: bool = True,
        value: str | None = None,
        names: Sequence[str] = (),
    ) -> tuple[str, TokenInfo]:
        """A new token (random 32 bytes hex unless `value` is given) and its public info.

        `names` (proxy tokens only) are the DNS names / IP addresses the joining
        proxy's certificate may carry.
        """
        token_type = _token_type(type)
        bound = token_names(names)
        if bound and token_type is not TokenType.PROXY:
            raise BadParameter(
                "only proxy tokens carry names: database agents only dial out and get none"
            )
        if not timedelta(seconds=1) <= ttl <= MAX_TOKEN_TTL:
            raise BadParameter("token TTL must be between 1s and 720h (30 days)")
        token = check_token_value(value) if value else self.random_bytes(TOKEN_BYTES).hex()
        now = self.clock()
        expires = now + ttl
        data: dict[str, object] = {
            "type": token_type.value,
            "expires": encode_time(expires),
            "single_use": single_use,
            "created": encode_time(now),
        }
        if bound:
            data["names"] = list(bound)
        item = await self.store.create(
            key(TOKENS, sha256_hex(token)), data, expires=expires + EXPIRED_RETENTION
        )
        if item is None:
            raise AlreadyExists("a join token with this value already exists")
        return token, _info(item)

    async def list(self) -> list[TokenInfo]:
        """Unexpired tokens, soonest expiry first."""
        now = self.clock()
        infos = [_info(item) for item in await self.store.list(TOKENS)]
        return sorted((i for i in infos if i.expires > now), key=lambda i: (i.expires, i.id))

    async def get(self, id_prefix_or_value: str) -> TokenInfo:
        """The token named by its value, full hash or masked id (a unique prefix)."""
        return _info(await self._find(id_prefix_or_value))

    async def _find(self, id_prefix_or_value: str) -> JsonItem:
        text = id_prefix_or_value.strip()
        if not text or len(text) > MAX_TOKEN_LENGTH:
            raise NotFound("join token not found")
        if _TOKEN_VALUE_RE.match(text):
            by_value = await self.store.get(key(TOKENS, sha256_hex(text)))
            if by_value is not None:
                return by_value
        lowered = text.lower()
        if len(lowered) < 4 or not _HEX_RE.match(lowered):
            raise NotFound(f"join token {text!r} not found")
        matches = await self.store.list(TOKENS + lowered)
        if not matches:
            raise NotFound(f"join token {text!r} not found")
        if len(matches) > 1:
            raise BadParameter(f"join token id {text!r} is ambiguous; give more characters")
        return matches[0]

    async def delete(self, id_prefix_or_value: str) -> TokenInfo:
        """Delete a token by value, hash or masked id; returns what was deleted."""
        item = await self._find(id_prefix_or_value)
        if not await self.store.delete(item.key):
            raise NotFound(f"join token {id_prefix_or_value!r} not found")
        return _info(item)

    async def consume(
        self,
        value: str,
        expected_type: TokenType | str,
        *,
        check: Callable[[TokenInfo], object] | None = None,
    ) -> TokenInfo:
        """Check a token for a join; a single-use one is used up atomically.

        `check` runs on the valid token before it is used up: a join it refuses
        (by raising) leaves a single-use token in place.
        """
        wanted = _token_type(expected_type)
        not_found = TokenNotFound("join token not found: it may have been used already or expired")
        if not value or len(value) > MAX_TOKEN_LENGTH:
            raise not_found
        item = await self.store.get(key(TOKENS, sha256_hex(value)))
        if item is None:
            raise not_found
        info = _info(item)
        if info.expires <= self.clock():
            raise TokenExpired(
                f"join token expired at {info.expires:%Y-%m-%d %H:%M:%S} UTC; "
                f"create a new one with `wctl tokens add --type={info.type.value}`"
            )
        if info.type is not wanted:
            raise TokenWrongType(
                f"token is for {info.type.value} hosts, not {wanted.value}; "
                f"create one with `wctl tokens add --type={wanted.value}`"
            )
        if check is not None:
            check(info)
        if info.single_use and not await self.store.compare_and_delete(item.key, item.revision):
            raise not_found
        return info


def _token_type(value: TokenType | str) -> TokenType:
    if isinstance(value, TokenType):
        return value
    try:
        return TokenType(value)
    except ValueError:
        raise BadParameter(
            f"unknown token type {value!r}; use one of: " + ", ".join(t.value for t in TokenType)
        ) from None
