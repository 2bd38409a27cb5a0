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
        "listDatabases needs admin",
        [ACCESS],
        {"db_names": ["test"]},
        {"listDatabases": 1, "$db": "admin"},
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
