"""YAML/JSON resources for `wctl get/create/rm`: strict parsing, dumping, applying."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Literal

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.auth_service.conftest import FakeClock

from wicket.auth.databases import Database, DatabaseResource, DatabaseService
from wicket.auth.locks import Lock, LockService
from wicket.auth.passwords import Passwords
from wicket.auth.resources import (
    ResourceKind,
    ResourceManager,
    TokenResource,
    UserResource,
    dump_resources,
    parse_kind,
    parse_reference,
    parse_resources,
)
from wicket.auth.roles import Role, RoleService
from wicket.auth.tokens import TokenService, TokenType
from wicket.auth.users import UserService
from wicket.backend.sqlite import SQLiteBackend
from wicket.errors import AlreadyExists, BadParameter, NotFound

ROLE_YAML = """\
kind: role
version: v1
metadata: {name: docdb-dev}
spec:
  options: {max_session_ttl: 8h}
  allow:
    db_labels: {env: dev}
    db_users: ["teleport-docdb-user"]
    db_names: ["test", "reports"]
  deny: {}
"""

MIXED_YAML = (
    ROLE_YAML
    + """---
kind: db
version: v3
metadata:
  name: my-docdb
  labels: {env: dev}
spec:
  protocol: mongodb
  uri: docdb.example:27017
  aws: {region: eu-west-1}
---
kind: user
version: v2
metadata: {name: alice}
spec:
  roles: [access, docdb-dev]
  traits: {db_users: [app], db_names: [test]}
---
kind: token
version: v2
metadata: {name: my-chosen-token-value-1}
spec: {type: db, ttl: 1h}
"""
)


@pytest.fixture
def manager(
    backend: SQLiteBackend, clock: FakeClock, passwords: Passwords, roles: RoleService
) -> ResourceManager:
    return ResourceManager(
        roles=roles,
        users=UserService(backend, roles=roles, clock=clock, passwords=passwords),
        tokens=TokenService(backend, clock=clock),
        databases=DatabaseService(backend, clock=clock),
        locks=LockService(backend, clock=clock),
    )


def test_parse_the_design_role() -> None:
    [role] = parse_resources(ROLE_YAML)
    assert isinstance(role, Role)
    assert role.spec.allow.db_labels == {"env": ("dev",)}
    assert role.spec.options.max_session_ttl == timedelta(hours=8)


def test_parse_several_kinds_and_round_trip_yaml_and_json() -> None:
    resources = parse_resources(MIXED_YAML, source="all.yaml")
    assert [type(r) for r in resources] == [Role, DatabaseResource, UserResource, TokenResource]
    formats: tuple[Literal["yaml"], Literal["json"]] = ("yaml", "json")
    for fmt in formats:
        text = dump_resources(resources, fmt)
        assert parse_resources(text) == resources
    as_json = json.loads(dump_resources(resources, "json"))
    assert [doc["kind"] for doc in as_json] == ["role", "db", "user", "token"]
    docs = list(yaml.safe_load_all(dump_resources(resources, "yaml")))
    assert docs[0] == yaml.safe_load(ROLE_YAML)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no resources found"),
        ("kind: role\n", "document 1: metadata: Field required"),
        ("kind: cat\nmetadata: {name: x}\n", "unknown kind 'cat'"),
        ("metadata: {name: x}\n", "kind: required"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("kind: role\nkind: db\n", "duplicate key 'kind'"),
        (
            "kind: role\nmetadata: {name: r}\nspec: {allow: {db_user: [x]}}\n",
            'document 1 (role "r"): spec.allow.db_user: Extra inputs are not permitted',
        ),
        (
            ROLE_YAML
            + "---\nkind: db\nversion: v3\nmetadata: {name: d}\n"
            + "spec: {uri: h:1, aws: {account_id: '1'}}\n",
            'x.yaml: document 2 (db "d"): spec.aws.account_id',
        ),
        ("kind: user\nmetadata: {name: 'bad name'}\n", "invalid user name"),
        ("kind: token\nmetadata: {name: t}\nspec: {type: node}\n", "spec.type"),
        ("kind: role\n  bad: [indent\n", "not valid YAML"),
    ],
)
def test_strict_errors_name_the_field(text: str, message: str) -> None:
    with pytest.raises(BadParameter) as caught:
        parse_resources(text, source="x.yaml")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [
        ("role", ResourceKind.ROLE, None),
        ("roles/dev", ResourceKind.ROLE, "dev"),
        ("db/my-docdb", ResourceKind.DB, "my-docdb"),
        ("tokens", ResourceKind.TOKEN, None),
        ("users/alice", ResourceKind.USER, "alice"),
    ],
)
def test_references(text: str, kind: ResourceKind, name: str | None) -> None:
    assert parse_reference(text) == (kind, name)


def test_bad_references() -> None:
    with pytest.raises(BadParameter, match="unknown resource kind 'cats'"):
        parse_reference("cats/x")
    with pytest.raises(BadParameter, match="missing name"):
        parse_reference("role/")


async def test_create_get_delete(manager: ResourceManager, clock: FakeClock) -> None:
    applied = [await manager.create(r) for r in parse_resources(MIXED_YAML)]
    assert [a.message() for a in applied[:3]] == [
        'role "docdb-dev" has been created',
        'db "my-docdb" has been created',
        'user "alice" has been created',
    ]
    assert applied[2].invite is not None and applied[2].invite.user == "alice"
    assert applied[3].created and len(applied[3].name) == 8

    assert await manager.tokens.consume("my-chosen-token-value-1", TokenType.DB)

    for resource in parse_resources(MIXED_YAML)[:3]:
        with pytest.raises(AlreadyExists, match="already exists"):
            await manager.create(resource)

    [user] = await manager.get(ResourceKind.USER, "alice")
    assert isinstance(user, UserResource)
    assert user.spec.roles == ("access", "docdb-dev")
    assert user.status is not None and not user.status.has_password
    user_yaml = dump_resources([user], "yaml")
    assert "password" not in user_yaml.replace("has_password", "") and "argon" not in user_yaml

    # -f updates in place; traits not in the file are removed.
    changed = parse_resources(
        "kind: user\nversion: v2\nmetadata: {name: alice}\n"
        "spec: {roles: [access], traits: {db_users: ['*']}}\n"
    )[0]
    result = await manager.create(changed, overwrite=True)
    assert not result.created and result.invite is None
    alice = await manager.users.get("alice")
    assert alice.roles == ("access",) and alice.traits == {"db_users": ("*",)}

    role = parse_resources(ROLE_YAML.replace("8h", "4h"))[0]
    assert not (await manager.create(role, overwrite=True)).created
    [stored_role] = await manager.get(ResourceKind.ROLE, "docdb-dev")
    assert isinstance(stored_role, Role)
    assert stored_role.spec.options.max_session_ttl == timedelta(hours=4)
    assert [r.metadata.name for r in await manager.get(ResourceKind.ROLE)] == [
        "access",
        "editor",
        "auditor",
        "docdb-dev",
    ]

    value, _ = await manager.tokens.create("proxy")
    [token] = await manager.get(ResourceKind.TOKEN)
    assert isinstance(token, TokenResource)
    assert token.spec.type is TokenType.PROXY
    assert value not in dump_resources([token], "json")

    await manager.delete(ResourceKind.ROLE, "docdb-dev")
    await manager.delete(ResourceKind.USER, "alice")
    await manager.delete(ResourceKind.TOKEN, token.metadata.name)
    await manager.delete(ResourceKind.DB, "my-docdb")
    for kind in ResourceKind:
        if kind is ResourceKind.ROLE:
            continue
        assert await manager.get(kind) == []


LOCK = """\
kind: lock
version: v1
metadata:
  name: ignored-on-create
spec:
  target: {user: bob}
  message: incident 42
  expires: 2026-03-02T00:00:00Z
"""


async def test_locks_are_a_resource_kind(manager: ResourceManager) -> None:
    assert parse_kind("locks") is ResourceKind.LOCK
    assert parse_reference("lock/abc") == (ResourceKind.LOCK, "abc")
    [parsed] = parse_resources(LOCK)
    assert isinstance(parsed, Lock) and parsed.target.user == "bob"
    applied = await manager.create(parsed)
    assert applied.kind is ResourceKind.LOCK and applied.created
    [stored] = await manager.get(ResourceKind.LOCK)
    assert isinstance(stored, Lock) and stored.id == applied.name != "ignored-on-create"
    assert stored.spec.message == "incident 42"
    assert parse_resources(dump_resources([stored], "yaml")) == [stored]
    assert await manager.get(ResourceKind.LOCK, stored.id) == [stored]
    await manager.delete(ResourceKind.LOCK, stored.id)
    assert await manager.get(ResourceKind.LOCK) == []
    with pytest.raises(BadParameter, match="exactly one"):
        parse_resources(LOCK.replace("{user: bob}", "{user: bob, role: dev}"))


async def test_static_databases_show_but_cannot_be_removed(manager: ResourceManager) -> None:
    static = Database(name="static-db", uri="h:1", labels={"env": "dev"})
    await manager.databases.heartbeat("host-1", "agent", [static])
    [shown] = await manager.get(ResourceKind.DB)
    assert isinstance(shown, DatabaseResource) and shown.to_database() == static
    with pytest.raises(BadParameter, match="is static"):
        await manager.delete(ResourceKind.DB, "static-db")
    with pytest.raises(NotFound):
        await manager.delete(ResourceKind.DB, "nothing")
    with pytest.raises(NotFound):
        await manager.get(ResourceKind.DB, "nothing")


async def test_token_resource_with_expiry(manager: ResourceManager, clock: FakeClock) -> None:
    expires = (clock.now + timedelta(hours=3)).isoformat()
    [token] = parse_resources(
        "kind: token\nversion: v2\n"
        f"metadata: {{name: another-token-value-9, expires: '{expires}'}}\n"
        "spec: {type: proxy, single_use: false}\n"
    )
    await manager.create(token)
    [info] = await manager.tokens.list()
    assert info.expires == clock.now + timedelta(hours=3) and not info.single_use
    past = (clock.now - timedelta(minutes=1)).isoformat()
    [old] = parse_resources(
        f"kind: token\nversion: v2\nmetadata: {{name: old-token-value-1234, expires: '{past}'}}\n"
        "spec: {type: db}\n"
    )
    with pytest.raises(BadParameter, match="in the past"):
        await manager.create(old)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_parses_or_fails_with_bad_parameter(text: str) -> None:
    try:
        resources = parse_resources(text)
    except BadParameter:
        return
    assert resources


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12))
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
_KEYS = st.sampled_from(
    [
        "name",
        "allow",
        "deny",
        "db_labels",
        "db_users",
        "spec",
        "options",
        "max_session_ttl",
        "rules",
        "resources",
        "verbs",
        "uri",
        "aws",
        "tls",
        "mode",
        "roles",
        "traits",
        "type",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["role", "user", "token", "db"]),
    st.dictionaries(_KEYS, _VALUES, max_size=5),
    st.dictionaries(_KEYS, _VALUES, max_size=5),
)
def test_structured_garbage_fails_with_bad_parameter(
    kind: str, metadata: dict[str, object], spec: dict[str, object]
) -> None:
    document = {"kind": kind, "metadata": metadata, "spec": spec}
    for text in (json.dumps(document), yaml.safe_dump(document)):
        try:
            [resource] = parse_resources(text)
        except BadParameter:
            continue
        assert parse_resources(dump_resources([resource], "yaml")) == [resource]
