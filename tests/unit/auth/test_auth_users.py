"""User store: records, persistence (0600, atomic, reopen), master user, parse_roles."""

from __future__ import annotations

import datetime
import json
import stat
from pathlib import Path

import pytest
from bson import ObjectId

from localdocdb.auth.roles import RoleRef
from localdocdb.auth.scram import SCRAM_SHA_1, SCRAM_SHA_256, credential_matches
from localdocdb.auth.users import (
    MONGODB_AWS,
    MONGODB_X509,
    UserStore,
    parse_roles,
)
from localdocdb.errors import CommandError

ROLE_ARN = "arn:aws:iam::123456789012:role/wicket-docdb-user"


def test_master_user_is_created_with_both_scram_mechanisms() -> None:
    store = UserStore.open(None)
    store.ensure_master_user("master", "pw1")
    record = store.get("admin", "master")
    assert record is not None
    assert record.roles == (RoleRef("root", "admin"),)
    assert record.mechanisms == (SCRAM_SHA_1, SCRAM_SHA_256)
    for mechanism in (SCRAM_SHA_1, SCRAM_SHA_256):
        credential = record.credential(mechanism)
        assert credential is not None
        assert credential_matches(credential, "master", "pw1")
    assert store.roles_of("admin", "master") == (RoleRef("root", "admin"),)
    assert store.roles_of("admin", "nobody") == ()


def test_master_password_change_updates_credentials(tmp_path: Path) -> None:
    store = UserStore.open(tmp_path)
    store.ensure_master_user("master", "old")
    user_id = store.get("admin", "master").user_id  # type: ignore[union-attr]
    store.close()
    store = UserStore.open(tmp_path)
    store.ensure_master_user("master", "new")
    record = store.get("admin", "master")
    assert record is not None and record.user_id == user_id
    credential = record.credential(SCRAM_SHA_256)
    assert credential is not None
    assert credential_matches(credential, "master", "new")
    assert not credential_matches(credential, "master", "old")


def test_persistence_file_is_private_and_has_no_password(tmp_path: Path) -> None:
    store = UserStore.open(tmp_path)
    store.ensure_master_user("master", "very-secret-password")
    store.create_user(
        "test",
        "app",
        password="app-password",
        mechanisms=["SCRAM-SHA-256"],
        roles=[RoleRef("readWrite", "test")],
        custom_data={"when": datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC), "id": ObjectId()},
    )
    store.create_user(
        "$external",
        ROLE_ARN,
        password=None,
        mechanisms=[MONGODB_AWS],
        roles=[RoleRef("root", "admin")],
    )
    path = tmp_path / "users.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "very-secret-password" not in text and "app-password" not in text
    assert json.loads(text)["version"] == 1
    assert not list(tmp_path.glob(".*tmp"))
    store.close()

    again = UserStore.open(tmp_path)
    app = again.get("test", "app")
    assert app is not None
    assert app.mechanisms == (SCRAM_SHA_256,)
    assert app.custom_data is not None and app.custom_data["when"].year == 2024
    assert isinstance(app.custom_data["id"], ObjectId)
    assert app.credential(SCRAM_SHA_1) is None
    cred = app.credential(SCRAM_SHA_256)
    assert cred is not None and credential_matches(cred, "app", "app-password")
    external = again.get("$external", ROLE_ARN)
    assert external is not None and external.mechanisms == (MONGODB_AWS,)
    assert [r.user for r in again.all_users()] == [ROLE_ARN, "master", "app"]


def test_reopen_restores_0600(tmp_path: Path) -> None:
    store = UserStore.open(tmp_path)
    store.ensure_master_user("m", "p")
    (tmp_path / "users.json").chmod(0o644)
    UserStore.open(tmp_path)
    assert stat.S_IMODE((tmp_path / "users.json").stat().st_mode) == 0o600


def test_create_user_rules() -> None:
    store = UserStore.open(None)
    store.create_user("test", "a", password="pw", mechanisms=None, roles=[])
    with pytest.raises(CommandError) as exists:
        store.create_user("test", "a", password="pw", mechanisms=None, roles=[])
    assert (exists.value.code, exists.value.errmsg) == (51003, 'User "a@test" already exists')
    with pytest.raises(CommandError) as no_pwd:
        store.create_user("test", "b", password=None, mechanisms=None, roles=[])
    assert no_pwd.value.code == 2
    with pytest.raises(CommandError):  # $external users have no password
        store.create_user("$external", "x", password="pw", mechanisms=[MONGODB_X509], roles=[])
    with pytest.raises(CommandError):  # SCRAM is not for $external
        store.create_user("$external", "x", password=None, mechanisms=["SCRAM-SHA-256"], roles=[])
    with pytest.raises(CommandError):  # and AWS is only for $external
        store.create_user("test", "c", password="pw", mechanisms=[MONGODB_AWS], roles=[])
    with pytest.raises(CommandError):  # SCRAM-SHA-256 cannot use a client-digested password
        store.create_user(
            "test", "d", password="0" * 32, mechanisms=None, roles=[], digest_password=False
        )
    # mongosh's passwordDigestor "client": pwd is already hex MD5("user:mongo:pencil").
    digested = store.create_user(
        "test",
        "user",
        password="1c33006ec1ffd90f9cadcbcc0e118200",
        mechanisms=[SCRAM_SHA_1],
        roles=[],
        digest_password=False,
    )
    cred = digested.credential(SCRAM_SHA_1)
    assert cred is not None and credential_matches(cred, "user", "pencil")
    x509 = store.create_user("$external", "CN=alice", password=None, mechanisms=None, roles=[])
    assert x509.mechanisms == (MONGODB_X509,) and x509.credentials == ()


def test_update_grant_revoke_drop() -> None:
    store = UserStore.open(None)
    store.create_user("test", "a", password="pw", mechanisms=None, roles=[RoleRef("read", "test")])
    store.grant_roles("test", "a", [RoleRef("readWrite", "test"), RoleRef("read", "test")])
    assert store.roles_of("test", "a") == (RoleRef("read", "test"), RoleRef("readWrite", "test"))
    store.revoke_roles("test", "a", [RoleRef("read", "test"), RoleRef("dbOwner", "x")])
    assert store.roles_of("test", "a") == (RoleRef("readWrite", "test"),)
    updated = store.update_user("test", "a", mechanisms=[SCRAM_SHA_256], custom_data={"k": 1})
    assert updated.mechanisms == (SCRAM_SHA_256,) and updated.custom_data == {"k": 1}
    assert updated.credential(SCRAM_SHA_1) is None
    with pytest.raises(CommandError):  # mechanisms beyond the old ones need a new password
        store.update_user("test", "a", mechanisms=[SCRAM_SHA_1])
    both = store.update_user("test", "a", password="new", mechanisms=[SCRAM_SHA_1, SCRAM_SHA_256])
    cred = both.credential(SCRAM_SHA_1)
    assert cred is not None and credential_matches(cred, "a", "new")
    with pytest.raises(CommandError) as missing:
        store.grant_roles("test", "zz", [])
    assert missing.value.code == 11
    assert store.drop_user("test", "a") is True
    assert store.drop_user("test", "a") is False
    store.create_user("t2", "x", password="pw", mechanisms=None, roles=[])
    store.create_user("t2", "y", password="pw", mechanisms=None, roles=[])
    assert store.drop_all_users("t2") == 2 and store.users_in("t2") == []


def test_parse_roles_forms() -> None:
    assert parse_roles(["read", {"role": "root", "db": "admin"}, "read"], "test") == [
        RoleRef("read", "test"),
        RoleRef("root", "admin"),
    ]
    assert parse_roles([], "test") == []


@pytest.mark.parametrize(
    ("value", "code", "message"),
    [
        (["nosuch"], 31, "Could not find role: nosuch@test"),
        (["root"], 31, "Could not find role: root@test"),  # cluster roles live in admin only
        (
            [{"role": "readAnyDatabase", "db": "test"}],
            31,
            "Could not find role: readAnyDatabase@test",
        ),
        ("read", 14, None),
        ([1], 14, None),
        ([{"role": "read"}], 14, None),
    ],
)
def test_parse_roles_errors(value: object, code: int, message: str | None) -> None:
    with pytest.raises(CommandError) as error:
        parse_roles(value, "test")
    assert error.value.code == code
    if message:
        assert error.value.errmsg == message
        assert error.value.code_name == "RoleNotFound"
