"""Role resources, trait substitution, label matching and deny-wins decisions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from wicket.auth.durations import format_duration, parse_duration
from wicket.auth.passwords import Passwords
from wicket.auth.roles import (
    BUILTIN_ROLES,
    AccessChecker,
    Role,
    RoleService,
    expand_traits,
    glob_match,
    labels_match,
)
from wicket.auth.users import UserService
from wicket.backend.sqlite import SQLiteBackend
from wicket.errors import AccessDenied, AlreadyExists, BadParameter, NotFound


def role(
    name: str,
    allow: dict[str, Any] | None = None,
    deny: dict[str, Any] | None = None,
    ttl: str | None = None,
) -> Role:
    spec: dict[str, Any] = {"allow": allow or {}, "deny": deny or {}}
    if ttl:
        spec["options"] = {"max_session_ttl": ttl}
    return Role.model_validate(
        {"kind": "role", "version": "v1", "metadata": {"name": name}, "spec": spec}
    )


TRAITS = {"db_users": ["app", "reporter"], "db_names": ["test"], "team": ["blue", "red"]}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{internal.db_users}}", ["app", "reporter"]),
        ("{{ internal.db_names }}", ["test"]),
        ("{{external.team}}", ["blue", "red"]),
        ("team-{{internal.team}}-db", ["team-blue-db", "team-red-db"]),
        ("{{internal.missing}}", []),
        ("{{internal.team}}-{{internal.db_names}}", ["blue-test", "red-test"]),
        ("literal", ["literal"]),
        ("*", ["*"]),
    ],
)
def test_trait_expansion(template: str, expected: list[str]) -> None:
    assert expand_traits(template, TRAITS) == expected


def test_trait_values_are_not_templates() -> None:
    assert expand_traits("{{internal.x}}", {"x": ["{{internal.y}}"], "y": ["boom"]}) == [
        "{{internal.y}}"
    ]


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("*", "anything", True),
        ("*", "", True),
        ("prod-*", "prod-eu", True),
        ("prod-*", "dev-eu", False),
        ("*-eu", "prod-eu", True),
        ("a*b*c", "aXXbYYc", True),
        ("a*b*c", "aXXbYY", False),
        ("test", "test", True),
        ("test", "Test", False),
        ("te.t", "test", False),
        ("[ab]", "a", False),
    ],
)
def test_glob(pattern: str, value: str, matches: bool) -> None:
    assert glob_match(pattern, value) is matches


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({"*": ("*",)}, {}, True),
        ({"*": ("*",)}, {"env": "prod"}, True),
        ({"*": ("x",)}, {"env": "prod"}, False),
        ({}, {"env": "prod"}, False),
        ({"env": ("dev",)}, {"env": "dev"}, True),
        ({"env": ("dev", "staging")}, {"env": "staging"}, True),
        ({"env": ("dev",)}, {"env": "prod"}, False),
        ({"env": ("dev",)}, {}, False),
        ({"env": ("*",)}, {"env": "prod"}, True),
        ({"env": ("*",)}, {"team": "x"}, False),
        ({"env": ("prod-*",)}, {"env": "prod-eu"}, True),
        ({"env": ("dev",), "team": ("blue",)}, {"env": "dev", "team": "blue"}, True),
        ({"env": ("dev",), "team": ("blue",)}, {"env": "dev", "team": "red"}, False),
    ],
)
def test_labels_match(
    selector: dict[str, tuple[str, ...]], labels: dict[str, str], matches: bool
) -> None:
    assert labels_match(selector, labels) is matches


DEV = {"env": "dev"}
PROD = {"env": "prod-eu"}

# (roles, traits, labels, check, value, allowed, reason fragment)
DECISIONS: list[tuple[list[Role], dict[str, list[str]], dict[str, str], str, str, bool, str]] = [
    # The built-in access role follows the user's traits.
    ([BUILTIN_ROLES["access"]], TRAITS, PROD, "db_user", "app", True, 'role "access"'),
    (
        [BUILTIN_ROLES["access"]],
        TRAITS,
        PROD,
        "db_user",
        "root",
        False,
        'no role allows db_user "root" (roles: access; allowed: [app, reporter])',
    ),
    ([BUILTIN_ROLES["access"]], {}, PROD, "db_user", "app", False, "allowed: []"),
    ([BUILTIN_ROLES["access"]], {"db_users": ["*"]}, PROD, "db_user", "root", True, "access"),
    ([BUILTIN_ROLES["access"]], TRAITS, DEV, "db_name", "test", True, "allow.db_names"),
    ([BUILTIN_ROLES["access"]], TRAITS, DEV, "db_name", "admin", False, 'db_name "admin"'),
    # Allow lists apply only to databases the same role's labels match.
    (
        [
            role("dev", {"db_labels": {"env": "dev"}, "db_users": ["*"]}),
            role("prod", {"db_labels": {"env": "prod-*"}, "db_users": ["reader"]}),
        ],
        {},
        PROD,
        "db_user",
        "writer",
        False,
        "allowed: [reader]",
    ),
    (
        [
            role("dev", {"db_labels": {"env": "dev"}, "db_users": ["*"]}),
            role("prod", {"db_labels": {"env": "prod-*"}, "db_users": ["reader"]}),
        ],
        {},
        DEV,
        "db_user",
        "writer",
        True,
        'role "dev"',
    ),
    # Deny wins, with wildcards, over any allow.
    (
        [BUILTIN_ROLES["access"], role("contractor", deny={"db_names": ["admin"]})],
        {"db_names": ["*"]},
        DEV,
        "db_name",
        "admin",
        False,
        'denied by role "contractor": deny.db_names matches "admin"',
    ),
    (
        [BUILTIN_ROLES["access"], role("contractor", deny={"db_names": ["admin"]})],
        {"db_names": ["*"]},
        DEV,
        "db_name",
        "test",
        True,
        "access",
    ),
    (
        [
            role("all", {"db_labels": {"*": "*"}, "db_users": ["*"]}),
            role("no-root", deny={"db_users": ["root*"]}),
        ],
        {},
        DEV,
        "db_user",
        "root-admin",
        False,
        'denied by role "no-root"',
    ),
    (
        [
            role("all", {"db_labels": {"*": "*"}, "db_users": ["*"]}),
            role("no-prod", deny={"db_labels": {"env": "prod-*"}}),
        ],
        {},
        PROD,
        "db_user",
        "app",
        False,
        'denied by role "no-prod": deny.db_labels',
    ),
    (
        [
            role("all", {"db_labels": {"*": "*"}, "db_users": ["*"]}),
            role("no-prod", deny={"db_labels": {"env": "prod-*"}}),
        ],
        {},
        DEV,
        "db_user",
        "app",
        True,
        'role "all"',
    ),
    (
        [
            role("all", {"db_labels": {"*": "*"}, "db_users": ["*"]}),
            role("scoped", deny={"db_labels": {"env": "dev"}, "db_users": ["app"]}),
        ],
        {},
        PROD,
        "db_user",
        "app",
        True,
        'role "all"',
    ),
    (
        [
            role("all", {"db_labels": {"*": "*"}, "db_names": ["*"]}),
            role("deny-all", deny={"db_names": ["*"]}),
        ],
        {},
        DEV,
        "db_name",
        "test",
        False,
        'denied by role "deny-all"',
    ),
    # Traits work in deny lists and label values too.
    (
        [
            role("all", {"db_labels": {"*": "*"}, "db_users": ["*"]}),
            role("no-own", deny={"db_users": ["{{internal.db_users}}"]}),
        ],
        TRAITS,
        DEV,
        "db_user",
        "reporter",
        False,
        'denied by role "no-own"',
    ),
    (
        [role("team", {"db_labels": {"team": "{{internal.team}}"}, "db_users": ["*"]})],
        TRAITS,
        {"team": "red"},
        "db_user",
        "x",
        True,
        'role "team"',
    ),
    (
        [role("team", {"db_labels": {"team": "{{internal.team}}"}, "db_users": ["*"]})],
        TRAITS,
        {"team": "green"},
        "db_user",
        "x",
        False,
        "no role allows a database",
    ),
    (
        [role("team", {"db_labels": {"team": "{{internal.nothing}}"}, "db_users": ["*"]})],
        TRAITS,
        {"team": "red"},
        "db_user",
        "x",
        False,
        "no role allows a database",
    ),
    # No roles at all.
    ([], {}, DEV, "db_user", "app", False, "roles: none"),
]


@pytest.mark.parametrize(
    ("roles", "traits", "labels", "check", "value", "allowed", "reason"), DECISIONS
)
def test_decisions(
    roles: list[Role],
    traits: dict[str, list[str]],
    labels: dict[str, str],
    check: str,
    value: str,
    allowed: bool,
    reason: str,
) -> None:
    checker = AccessChecker(roles, traits)
    decision = (
        checker.check_db_user(labels, value)
        if check == "db_user"
        else checker.check_db_name(labels, value)
    )
    assert decision.allowed is allowed, decision.reason
    assert reason in decision.reason


def test_allowed_lists_remove_denied_entries() -> None:
    checker = AccessChecker(
        [
            role(
                "a",
                {
                    "db_labels": {"*": "*"},
                    "db_users": ["app", "root", "{{internal.db_users}}"],
                    "db_names": ["test", "admin"],
                },
            ),
            role("b", deny={"db_users": ["root"], "db_names": ["adm*"]}),
        ],
        {"db_users": ["app", "reporter"]},
    )
    assert checker.allowed_db_users(DEV) == ["app", "reporter"]
    assert checker.allowed_db_names(DEV) == ["test"]
    blocked = AccessChecker([role("a", {"db_labels": {"env": "x"}, "db_users": ["app"]})], {})
    assert blocked.allowed_db_users(DEV) == []


def test_database_decision_reasons() -> None:
    checker = AccessChecker([role("dev", {"db_labels": {"env": ["dev", "test"]}})], {})
    ok = checker.check_database(DEV)
    assert ok.allowed and ok.reason == 'allowed by role "dev": allow.db_labels {env: [dev, test]}'
    refused = checker.check_database(PROD)
    assert not refused.allowed
    assert refused.reason == "no role allows a database with labels {env: prod-eu} (roles: dev)"


def test_can_and_max_session_ttl() -> None:
    editor = AccessChecker([BUILTIN_ROLES["editor"]], {})
    for resource in ("users", "roles", "tokens", "db"):
        for verb in ("list", "read", "create", "update", "delete"):
            assert editor.can(resource, verb)
    assert not editor.can("events", "list")
    auditor = AccessChecker([BUILTIN_ROLES["auditor"]], {})
    assert auditor.can("events", "list") and auditor.can("sessions", "read")
    assert not auditor.can("users", "create")
    access = AccessChecker([BUILTIN_ROLES["access"]], {})
    assert not access.can("users", "list")
    limited = AccessChecker(
        [
            BUILTIN_ROLES["editor"],
            role(
                "no-delete", deny={"rules": [{"resources": ["*"], "verbs": ["delete"]}]}, ttl="8h"
            ),
            role("short", ttl="1h30m"),
        ],
        {},
    )
    assert limited.can("users", "update") and not limited.can("users", "delete")
    assert limited.max_session_ttl() == timedelta(hours=1, minutes=30)
    assert access.max_session_ttl() is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"allow": {"db_users": "app"}}, "spec.allow.db_users"),
        ({"allow": {"db_users": ["{{internal.x"]}}, "invalid template"),
        ({"allow": {"db_users": ["{{foo.bar}}"]}}, "invalid template"),
        ({"allow": {"db_labels": {"env": []}}}, "needs at least one value"),
        ({"allow": {"rules": [{"resources": ["cats"], "verbs": ["list"]}]}}, "unknown resource"),
        ({"allow": {"rules": [{"resources": ["users"], "verbs": ["eat"]}]}}, "unknown verb"),
        ({"allow": {"db_user": ["app"]}}, "spec.allow.db_user"),
        ({"options": {"max_session_ttl": "forever"}}, "invalid duration"),
        ({"options": {"max_session_ttl": 3600}}, "expected a duration"),
    ],
)
def test_role_validation(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Role.model_validate(
            {"kind": "role", "version": "v1", "metadata": {"name": "r"}, "spec": spec}
        )
    text = str(caught.value) + " ".join(".".join(map(str, e["loc"])) for e in caught.value.errors())
    assert message in text


def test_role_resource_round_trip() -> None:
    original = role(
        "docdb-dev",
        {
            "db_labels": {"env": "dev", "tier": ["a", "b"]},
            "db_users": ["teleport-docdb-user"],
            "db_names": ["test", "reports"],
        },
        {"db_names": ["admin"]},
        ttl="8h",
    )
    data = original.to_resource()
    assert data == {
        "kind": "role",
        "version": "v1",
        "metadata": {"name": "docdb-dev"},
        "spec": {
            "options": {"max_session_ttl": "8h"},
            "allow": {
                "db_labels": {"env": "dev", "tier": ["a", "b"]},
                "db_users": ["teleport-docdb-user"],
                "db_names": ["test", "reports"],
            },
            "deny": {"db_names": ["admin"]},
        },
    }
    assert Role.model_validate(data) == original


async def test_role_service(
    backend: SQLiteBackend, roles: RoleService, passwords: Passwords
) -> None:
    assert [r.name for r in await roles.list()] == ["access", "editor", "auditor"]
    dev = role("dev", {"db_labels": {"env": "dev"}, "db_users": ["*"]})
    await roles.create(dev)
    with pytest.raises(AlreadyExists, match='role "dev" already exists'):
        await roles.create(dev)
    changed = role("dev", {"db_labels": {"env": "dev"}, "db_users": ["app"]})
    await roles.upsert(changed)
    assert await roles.get("dev") == changed
    assert [r.name for r in await roles.list()] == ["access", "editor", "auditor", "dev"]
    for name in ("access", "editor", "auditor"):
        with pytest.raises(BadParameter, match=f'role "{name}" is built in and cannot be deleted'):
            await roles.delete(name)
        with pytest.raises(BadParameter, match="is built in and cannot be changed"):
            await roles.upsert(role(name))
    users = UserService(backend, roles=roles, passwords=passwords)
    await users.create("alice", roles=["dev"], traits={})
    with pytest.raises(BadParameter, match='role "dev" is still assigned to users: alice'):
        await roles.delete("dev")
    await users.update("alice", roles=["access"])
    await roles.delete("dev")
    with pytest.raises(NotFound, match='role "dev" not found'):
        await roles.get("dev")
    with pytest.raises(NotFound):
        await roles.delete("dev")


async def test_checker_for_identity(roles: RoleService) -> None:
    await roles.create(role("dev", {"db_labels": {"env": "dev"}, "db_users": ["*"]}))
    checker = await AccessChecker.for_identity(roles, ["access", "dev"], {"db_users": ["app"]})
    assert checker.role_names == ("access", "dev")
    assert checker.check_db_user(DEV, "anyone").allowed
    assert not checker.check_db_user(PROD, "anyone").allowed
    with pytest.raises(AccessDenied, match='role "gone" no longer exists'):
        await AccessChecker.for_identity(roles, ["gone"], {})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("8h", 28800), ("30m", 1800), ("90s", 90), ("1h30m", 5400), ("1h0m15s", 3615), ("0s", 0)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "8", "h", "8x", "1m1h1", "-1h", "9000h", "1.5h", "8 h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=366 * 86400))
def test_duration_round_trip(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


def test_allow_server_commands_option() -> None:
    granted = Role.model_validate(
        {
            "kind": "role",
            "version": "v1",
            "metadata": {"name": "dba"},
            "spec": {
                "options": {"allow_server_commands": True},
                "allow": {"db_labels": {"env": ["dev", "staging-*"]}},
            },
        }
    )
    assert granted.spec.options.allow_server_commands is True
    assert Role.model_validate(granted.to_resource()) == granted
    assert role("plain").spec.options.allow_server_commands is False
    assert "allow_server_commands" not in role("plain").to_resource()["spec"]["options"]
    checker = AccessChecker([BUILTIN_ROLES["access"], granted], {})
    assert checker.server_commands_grant({"env": "staging-eu"}) == "dba"
    assert checker.server_commands_grant({"env": "prod"}) is None
    with pytest.raises(ValidationError):
        Role.model_validate(
            {
                "kind": "role",
                "version": "v1",
                "metadata": {"name": "x"},
                "spec": {"options": {"allow_server_commands": "maybe"}},
            }
        )
