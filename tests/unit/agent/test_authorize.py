"""Per-message RBAC tables: allow/deny x db_names x wildcards and traits x message kinds.

Each case is a real wire message (OP_MSG, OP_QUERY, OP_COMPRESSED around OP_MSG),
inspected by the codec and decided by the authorizer with real roles.
"""

from __future__ import annotations

from typing import Any

import pytest

from wicket.agent.mongodb.authorize import MessageAuthorizer
from wicket.auth.roles import BUILTIN_ROLES, AccessChecker, Role
from wicket.wire.mongo import (
    Compressor,
    Message,
    compress_message,
    decode_message,
    decompress_message,
    encode_op_get_more,
    encode_op_msg,
    encode_op_query,
    inspect_message,
)

LABELS = {"env": "dev"}


def role(name: str, allow: dict[str, Any], deny: dict[str, Any] | None = None) -> Role:
    return Role.model_validate(
        {
            "kind": "role",
            "version": "v1",
            "metadata": {"name": name},
            "spec": {"allow": allow, "deny": deny or {}},
        }
    )


def opmsg(command: dict[str, Any]) -> Message:
    return decode_message(encode_op_msg(command, request_id=1))


def opquery(command: dict[str, Any]) -> Message:
    database = command.pop("$db")
    return decode_message(encode_op_query(f"{database}.$cmd", command, request_id=1))


def compressed(command: dict[str, Any]) -> Message:
    wire = compress_message(encode_op_msg(command, request_id=1), Compressor.ZLIB)
    return decode_message(decompress_message(decode_message(wire)))  # what the engine inspects


KINDS = {"OP_MSG": opmsg, "OP_QUERY": opquery, "OP_COMPRESSED": compressed}


def authorizer(roles: list[Role], traits: dict[str, list[str]]) -> MessageAuthorizer:
    return MessageAuthorizer(AccessChecker(roles, traits), LABELS)


ACCESS = BUILTIN_ROLES["access"]
DEV = role("dev", {"db_labels": {"env": "dev"}, "db_users": ["app"], "db_names": ["test", "rep*"]})
NO_ADMIN = role("no-admin", {}, {"db_names": ["admin", "secret"]})


CASES = [
    # (case id, roles, traits, command, allowed)
    ("trait allows its db", [ACCESS], {"db_names": ["test"]}, {"find": "c", "$db": "test"}, True),
    (
        "trait refuses other db",
        [ACCESS],
        {"db_names": ["test"]},
        {"find": "c", "$db": "prod"},
        False,
    ),
    (
        "wildcard trait",
        [ACCESS],
        {"db_names": ["*"]},
        {"insert": "c", "documents": [{}], "$db": "x"},
        True,
    ),
    ("glob in role", [DEV], {}, {"find": "c", "$db": "reports"}, True),
    ("glob miss", [DEV], {}, {"find": "c", "$db": "prod"}, False),
    ("deny wins", [ACCESS, NO_ADMIN], {"db_names": ["*"]}, {"find": "c", "$db": "secret"}, False),
    (
        "deny does not touch others",
        [ACCESS, NO_ADMIN],
        {"db_names": ["*"]},
        {"find": "c", "$db": "test"},
        True,
    ),
    (
        "lookup into a denied db",
        [ACCESS],
        {"db_names": ["test"]},
        {
            "aggregate": "c",
            "pipeline": [
                {
                    "$lookup": {
                        "from": {"db": "prod", "coll": "x"},
                        "as": "y",
                        "localField": "a",
                        "foreignField": "b",
                    }
                }
            ],
            "cursor": {},
            "$db": "test",
        },
        False,
    ),
    (
        "out into a denied db",
        [ACCESS],
        {"db_names": ["test"]},
        {
            "aggregate": "c",
            "pipeline": [{"$out": {"db": "prod", "coll": "x"}}],
            "cursor": {},
            "$db": "test",
        },
        False,
    ),
    (
        "rename across dbs",
        [ACCESS],
        {"db_names": ["test"]},
        {"renameCollection": "test.a", "to": "prod.b", "$db": "admin"},
        False,
    ),
    (
        "listDatabases is allowed (its reply narrowed)",
        [ACCESS],
        {"db_names": ["test"]},
        {"listDatabases": 1, "$db": "admin"},
        True,
    ),
    (
        "currentOp with an allowed $db",
        [ACCESS],
        {"db_names": ["*"]},
        {"currentOp": 1, "$db": "admin"},
        False,
    ),
    ("hello always", [ACCESS], {"db_names": []}, {"hello": 1, "$db": "admin"}, True),
    ("ping always", [ACCESS], {"db_names": []}, {"ping": 1, "$db": "admin"}, True),
    (
        "client's own auth refused",
        [ACCESS],
        {"db_names": ["*"]},
        {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": b"x", "$db": "admin"},
        False,
    ),
    (
        "speculative auth refused",
        [ACCESS],
        {"db_names": ["*"]},
        {"hello": 1, "speculativeAuthenticate": {"saslStart": 1}, "$db": "admin"},
        False,
    ),
    (
        "unknown command refused",
        [ACCESS],
        {"db_names": ["*"]},
        {"frobnicate": 1, "$db": "test"},
        False,
    ),
    ("no traits, no dbs", [ACCESS], {}, {"find": "c", "$db": "test"}, False),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("roles", "traits", "command", "allowed"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_message_decisions(
    kind: str,
    roles: list[Role],
    traits: dict[str, list[str]],
    command: dict[str, Any],
    allowed: bool,
) -> None:
    message = KINDS[kind](dict(command))
    decision = authorizer(roles, traits).check(inspect_message(message))
    assert decision.allowed is allowed, decision.reason
    if not allowed:
        assert decision.reason  # every refusal says why


def test_refusal_names_the_database_and_role() -> None:
    decision = authorizer([ACCESS, NO_ADMIN], {"db_names": ["*"]}).check(
        inspect_message(opmsg({"find": "c", "$db": "secret"}))
    )
    assert '"secret"' in decision.reason
    assert "no-admin" in decision.reason


def test_unknown_commands_only_when_a_matching_role_opts_in() -> None:
    opt_in = Role.model_validate(
        {
            "kind": "role",
            "version": "v1",
            "metadata": {"name": "tinkerer"},
            "spec": {
                "options": {"allow_unknown_commands": True},
                "allow": {"db_labels": {"env": "dev"}, "db_names": ["*"]},
            },
        }
    )
    other_env = Role.model_validate(
        {
            "kind": "role",
            "version": "v1",
            "metadata": {"name": "prod-tinkerer"},
            "spec": {
                "options": {"allow_unknown_commands": True},
                "allow": {"db_labels": {"env": "prod"}, "db_names": ["*"]},
            },
        }
    )
    info = inspect_message(opmsg({"frobnicate": 1, "$db": "test"}))
    for roles, allowed in (([opt_in], True), ([other_env], False), ([ACCESS], False)):
        checker = AccessChecker(roles, {"db_names": ["*"]})
        authorizer = MessageAuthorizer(
            checker, LABELS, allow_unknown_commands=checker.allows_unknown_commands(LABELS)
        )
        assert authorizer.check(info).allowed is allowed
    # the client's own authentication stays refused even then
    checker = AccessChecker([opt_in], {})
    authorizer = MessageAuthorizer(checker, LABELS, allow_unknown_commands=True)
    sasl = inspect_message(opmsg({"saslStart": 1, "mechanism": "PLAIN", "$db": "admin"}))
    assert not authorizer.check(sasl).allowed


# --- server-wide commands: only an explicit grant, never $db ---------------------------

SERVER_COMMANDS: list[dict[str, Any]] = [
    {"currentOp": 1, "$db": "admin"},
    {"currentOp": 1, "$ownOps": True, "$db": "admin"},
    {"killOp": 1, "op": 12, "$db": "admin"},
    {"getLog": "global", "$db": "admin"},
    {"getCmdLineOpts": 1, "$db": "admin"},
    {"serverStatus": 1, "$db": "test"},
    {"hostInfo": 1, "$db": "admin"},
    {"top": 1, "$db": "admin"},
    {"lockInfo": 1, "$db": "admin"},
    {"getParameter": "*", "$db": "admin"},
    {"killSessions": [], "$db": "admin"},
    {"createUser": "sneaky", "pwd": "x", "roles": ["readWrite"], "$db": "test"},
    {"usersInfo": 1, "showCredentials": True, "$db": "test"},
    {"usersInfo": 1, "forAllDBs": True, "$db": "admin"},
    {"aggregate": 1, "pipeline": [{"$currentOp": {"allUsers": True}}], "cursor": {},
     "$db": "admin"},
    {"aggregate": 1, "pipeline": [{"$listSessions": {}}], "cursor": {}, "$db": "config"},
    {"aggregate": 1, "pipeline": [{"$listLocalSessions": {}}], "cursor": {}, "$db": "admin"},
    {"aggregate": 1, "pipeline": [{"$changeStream": {"allChangesForCluster": True}}],
     "cursor": {}, "$db": "admin"},
    {"getMore": 99, "collection": "$cmd.aggregate", "$db": "admin"},
]  # fmt: skip


def server_role(name: str, labels: dict[str, str], **options: Any) -> Role:
    return Role.model_validate(
        {
            "kind": "role",
            "version": "v1",
            "metadata": {"name": name},
            "spec": {
                "options": {"allow_server_commands": True, **options},
                "allow": {"db_labels": labels},
            },
        }
    )


DBA = server_role("dba", {"env": "dev"})
PROD_DBA = server_role("prod-dba", {"env": "prod"})
UNKNOWN_OK = Role.model_validate(
    {
        "kind": "role",
        "version": "v1",
        "metadata": {"name": "tinkerer"},
        "spec": {
            "options": {"allow_unknown_commands": True},
            "allow": {"db_labels": {"env": "dev"}, "db_names": ["*"]},
        },
    }
)


def decide(roles: list[Role], traits: dict[str, list[str]], message: Message) -> Any:
    checker = AccessChecker(roles, traits)
    return MessageAuthorizer(
        checker, LABELS, allow_unknown_commands=checker.allows_unknown_commands(LABELS)
    ).check(inspect_message(message))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", SERVER_COMMANDS, ids=lambda c: next(iter(c)))
def test_server_wide_commands_need_the_grant(kind: str, command: dict[str, Any]) -> None:
    every_db = {"db_names": ["*"]}
    for roles in ([ACCESS], [ACCESS, UNKNOWN_OK], [ACCESS, PROD_DBA]):
        refused = decide(roles, every_db, KINDS[kind](dict(command)))
        assert not refused.allowed
        assert "server-wide" in refused.reason
        assert "options.allow_server_commands: true" in refused.reason
    # the grant alone is enough: the database it is sent to need not be in db_names
    granted = decide([ACCESS, DBA], {"db_names": ["test"]}, KINDS[kind](dict(command)))
    if "createUser" in command or "usersInfo" in command:
        # ... but what it names still is: users of "test" are fine, of "admin" are not
        assert granted.allowed is (command["$db"] == "test"), granted.reason
    else:
        assert granted.allowed, granted.reason


def test_a_server_wide_command_with_a_grant_still_checks_what_it_names() -> None:
    grant_root = opmsg(
        {"grantRolesToUser": "app", "roles": [{"role": "root", "db": "admin"}], "$db": "test"}
    )
    assert not decide([ACCESS, DBA], {"db_names": ["test"]}, grant_root).allowed
    assert decide([ACCESS, DBA], {"db_names": ["test", "admin"]}, grant_root).allowed
    lookup = opmsg(
        {
            "aggregate": 1,
            "pipeline": [{"$currentOp": {}}, {"$lookup": {"from": "secrets", "as": "s"}}],
            "cursor": {},
            "$db": "admin",
        }
    )
    decision = decide([ACCESS, DBA], {"db_names": ["test"]}, lookup)
    assert not decision.allowed and '"admin"' in decision.reason


NAMESPACED: list[tuple[dict[str, Any], bool]] = [
    ({"find": "c", "$db": "test"}, True),
    ({"find": "c", "$db": "admin"}, False),
    ({"aggregate": 1, "pipeline": [{"$changeStream": {}}], "cursor": {}, "$db": "test"}, True),
    ({"aggregate": 1, "pipeline": [{"$changeStream": {}}], "cursor": {}, "$db": "prod"}, False),
    ({"getMore": 5, "collection": "$cmd.listCollections", "$db": "test"}, True),
    ({"getMore": 5, "collection": "$cmd.listCollections", "$db": "prod"}, False),
    ({"getMore": 5, "collection": "$cmd.aggregate", "$db": "test"}, True),
    ({"getMore": 5, "collection": "$cmd.listIndexes.c", "$db": "test"}, True),
    ({"killCursors": "$cmd.aggregate", "cursors": [5], "$db": "test"}, True),
    ({"killCursors": "$cmd.listCollections", "cursors": [5], "$db": "prod"}, False),
    ({"hello": 1, "$db": "admin"}, True),
    ({"endSessions": [], "$db": "admin"}, True),
    ({"buildInfo": 1, "$db": "admin"}, True),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("command", "allowed"), NAMESPACED, ids=lambda c: str(c)[:40])
def test_namespaced_commands_are_unaffected_by_the_grant(
    kind: str, command: dict[str, Any], allowed: bool
) -> None:
    for roles in ([ACCESS], [ACCESS, DBA]):
        decision = decide(roles, {"db_names": ["test"]}, KINDS[kind](dict(command)))
        assert decision.allowed is allowed, decision.reason
        assert not decision.narrow_databases


def test_legacy_get_more_on_command_cursors() -> None:
    for full_name, allowed in (
        ("test.$cmd.listCollections", True),
        ("test.$cmd.aggregate", True),
        ("prod.$cmd.aggregate", False),
        ("admin.$cmd.aggregate", False),
    ):
        message = decode_message(encode_op_get_more(full_name, 5, request_id=1))
        assert decide([ACCESS], {"db_names": ["test"]}, message).allowed is allowed, full_name


def test_list_databases_is_narrowed_without_the_grant() -> None:
    message = opmsg({"listDatabases": 1, "nameOnly": True, "$db": "admin"})
    narrowed = decide([ACCESS], {"db_names": ["test"]}, message)
    assert narrowed.allowed and narrowed.narrow_databases
    full = decide([ACCESS, DBA], {"db_names": ["test"]}, message)
    assert full.allowed and not full.narrow_databases
    # a filter runs over the hidden databases too (an oracle for their names): grant only
    oracle = {"$expr": {"$cond": [{"$eq": ["$name", "secret"]}, {"$divide": [1, 0]}, True]}}
    filtered = opmsg({"listDatabases": 1, "filter": oracle, "$db": "admin"})
    refused = decide([ACCESS], {"db_names": ["test"]}, filtered)
    assert not refused.allowed and "filter" in refused.reason
    assert decide([ACCESS, DBA], {"db_names": ["test"]}, filtered).allowed
    empty = opmsg({"listDatabases": 1, "filter": {}, "$db": "admin"})
    assert decide([ACCESS], {"db_names": ["test"]}, empty).narrow_databases


def test_grant_counts_only_for_matching_labels_and_says_which_role() -> None:
    assert AccessChecker([DBA], {}).server_commands_grant(LABELS) == "dba"
    assert AccessChecker([PROD_DBA], {}).server_commands_grant(LABELS) is None
    assert AccessChecker([ACCESS], {}).server_commands_grant(LABELS) is None
