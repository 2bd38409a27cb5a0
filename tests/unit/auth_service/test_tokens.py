"""Join tokens: creation, masking, single-use races, expiry and types."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from tests.unit.auth_service.conftest import FakeClock

from wicket.auth.store import sha256_hex
from wicket.auth.tokens import (
    TokenExpired,
    TokenNotFound,
    TokenService,
    TokenType,
    TokenWrongType,
)
from wicket.backend.sqlite import SQLiteBackend
from wicket.errors import AccessDenied, AlreadyExists, BadParameter, NotFound


@pytest.fixture
def tokens(backend: SQLiteBackend, clock: FakeClock) -> TokenService:
    return TokenService(backend, clock=clock)


async def test_create_and_list_never_show_the_value(
    tokens: TokenService, backend: SQLiteBackend, clock: FakeClock
) -> None:
    value, info = await tokens.create("db")
    assert len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    assert info.type is TokenType.DB
    assert info.expires == clock.now + timedelta(minutes=30)
    assert info.single_use and info.use == "single-use"
    assert info.id == sha256_hex(value)[:8]
    stored = await backend.list_prefix("/tokens/")
    assert [item.key for item in stored] == [f"/tokens/{sha256_hex(value)}"]
    assert value.encode() not in stored[0].value
    listed = await tokens.list()
    assert listed == [info]
    for text in (repr(listed), json.dumps([i.to_public_dict() for i in listed])):
        assert value not in text
    _, proxy = await tokens.create(TokenType.PROXY, timedelta(hours=2), single_use=False)
    assert proxy.use == "reusable"
    assert [i.type for i in await tokens.list()] == [TokenType.DB, TokenType.PROXY]


async def test_injected_randomness(backend: SQLiteBackend, clock: FakeClock) -> None:
    tokens = TokenService(backend, clock=clock, random_bytes=lambda n: b"\x01" * n)
    value, _ = await tokens.create("db")
    assert value == "01" * 32
    with pytest.raises(AlreadyExists):
        await tokens.create("db")


async def test_single_use_token_race_has_exactly_one_winner(tokens: TokenService) -> None:
    value, _ = await tokens.create("db")
    results = await asyncio.gather(
        tokens.consume(value, "db"), tokens.consume(value, "db"), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1 and len(losers) == 1
    assert isinstance(losers[0], TokenNotFound)
    assert str(losers[0]) == "join token not found: it may have been used already or expired"
    with pytest.raises(TokenNotFound):
        await tokens.consume(value, "db")
    assert await tokens.list() == []


async def test_reusable_token_is_not_consumed(tokens: TokenService) -> None:
    value, _ = await tokens.create("proxy", single_use=False)
    for _ in range(3):
        assert (await tokens.consume(value, TokenType.PROXY)).type is TokenType.PROXY


async def test_expired_token(
    tokens: TokenService, clock: FakeClock, backend: SQLiteBackend
) -> None:
    value, info = await tokens.create("db", timedelta(minutes=30))
    clock.advance(timedelta(minutes=30))
    with pytest.raises(TokenExpired) as caught:
        await tokens.consume(value, "db")
    assert str(caught.value).startswith("join token expired at 2026-03-01 10:57:00 UTC")
    assert isinstance(caught.value, AccessDenied)
    assert await tokens.list() == []
    # Long after, the sweeper removes it and it is simply unknown.
    clock.advance(timedelta(days=2))
    await backend.sweep()
    assert await backend.list_prefix("/tokens/") == []
    with pytest.raises(TokenNotFound):
        await tokens.consume(value, "db")
    assert info.id


async def test_wrong_type_is_refused_and_not_consumed(tokens: TokenService) -> None:
    value, _ = await tokens.create("proxy")
    with pytest.raises(TokenWrongType, match="token is for proxy hosts, not db"):
        await tokens.consume(value, "db")
    assert (await tokens.consume(value, "proxy")).type is TokenType.PROXY


async def test_unknown_and_bad_inputs(tokens: TokenService) -> None:
    for bad in ["", "nope", "x" * 300]:
        with pytest.raises(TokenNotFound):
            await tokens.consume(bad, "db")
    with pytest.raises(BadParameter, match="unknown token type 'node'"):
        await tokens.create("node")
    with pytest.raises(BadParameter, match="TTL"):
        await tokens.create("db", timedelta(0))
    with pytest.raises(BadParameter, match="TTL"):
        await tokens.create("db", timedelta(days=31))
    with pytest.raises(BadParameter, match="join token must be"):
        await tokens.create("db", value="short")


async def test_delete_by_id_prefix_or_value(tokens: TokenService) -> None:
    first, first_info = await tokens.create("db")
    assert (await tokens.get(first)).id == first_info.id
    second, second_info = await tokens.create("db")
    third, _ = await tokens.create("db", value="my-own-token-value-123")
    assert (await tokens.delete(first_info.id)).id == first_info.id
    assert (await tokens.delete(second)).id == second_info.id
    assert (await tokens.delete("my-own-token-value-123")).type is TokenType.DB
    assert await tokens.list() == []
    for missing in (first_info.id, second, third, "zz"):
        with pytest.raises(NotFound):
            await tokens.delete(missing)


def colliding_values() -> tuple[str, str, str]:
    """Two token values whose SHA-256 share the first 4 hex digits, and that prefix."""
    seen: dict[str, str] = {}
    counter = 0
    while True:
        value = f"collision-test-value-{counter:06d}"
        prefix = sha256_hex(value)[:4]
        if prefix in seen:
            return seen[prefix], value, prefix
        seen[prefix] = value
        counter += 1


async def test_ambiguous_prefix(tokens: TokenService) -> None:
    first, second, prefix = colliding_values()
    _, first_info = await tokens.create("db", value=first)
    _, second_info = await tokens.create("db", value=second)
    with pytest.raises(BadParameter, match=f"join token id '{prefix}' is ambiguous"):
        await tokens.delete(prefix)
    with pytest.raises(NotFound):
        await tokens.delete(prefix[:3])
    assert first_info.id != second_info.id
    await tokens.delete(first_info.id)
    assert await tokens.list() == [second_info]


async def test_proxy_tokens_carry_normalized_names(tokens: TokenService) -> None:
    value, info = await tokens.create(
        "proxy", names=["Proxy.Example.com", "10.0.0.5", "[::1]", "proxy.example.com"]
    )
    assert info.names == ("proxy.example.com", "10.0.0.5", "::1")
    assert info.to_public_dict()["names"] == ["proxy.example.com", "10.0.0.5", "::1"]
    assert (await tokens.get(value)).names == info.names
    with pytest.raises(BadParameter, match="only proxy tokens carry names"):
        await tokens.create("db", names=["db.example.com"])
    for bad in ("wicket-auth", "*.example.com", "a b", "-x.example.com"):
        with pytest.raises(BadParameter):
            await tokens.create("proxy", names=[bad])


async def test_a_refused_check_leaves_the_token(tokens: TokenService) -> None:
    value, _ = await tokens.create("proxy")

    def refuse(info: object) -> None:
        raise BadParameter("no names")

    with pytest.raises(BadParameter):
        await tokens.consume(value, "proxy", check=refuse)
    assert (await tokens.consume(value, "proxy")).type is TokenType.PROXY
