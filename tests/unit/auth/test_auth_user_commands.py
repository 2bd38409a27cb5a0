"""User management commands in MongoDB's shapes, authorized by the built-in roles."""

from __future__ import annotations

import uuid
from typing import Any

from bson.binary import Binary, UuidRepresentation
from pymongo.asynchronous.auth import _authenticate_scram
from pymongo.auth_shared import _build_credentials_tuple

from localdocdb.auth.roles import RoleRef
from localdocdb.state import AuthenticatedUser

from .conftest import MASTER_PASSWORD, MASTER_USER, Client, MakeServer

ROLE_ARN = "arn:aws:iam::123456789012:role/wicket-docdb-user"


async def _login(client: Client, user: str, password: str, source: str) -> None:
    credentials = _build_credentials_tuple("SCRAM-SHA-256", source, user, password, {}, None)
    await _authenticate_scram(credentials, client, "SCRAM-SHA-256")  # type: ignore[arg-type]


async def _master(make_server: MakeServer) -> Client:
    client = Client(make_server())
    await _login(client, MASTER_USER, MASTER_PASSWORD, "admin")
    return client


async def test_guide_external_create_user(make_server: MakeServer) -> None:
    client = await _master(make_server)
    # What mongosh sends for the guide's call (it adds digestPassword only with passwordDigestor).
    reply = await client.run(
        "$external",
        {
            "createUser": ROLE_ARN,
            "mechanisms": ["MONGODB-AWS"],
            "roles": [{"role": "root", "db": "admin"}],
            "digestPassword": True,
            "writeConcern": {"w": "majority"},
            "lsid": {"id": Binary(uuid.uuid4().bytes, 4)},
            "$db": "$external",
        },
    )
    assert reply == {"ok": 1.0}
    record = client.server.users.get("$external", ROLE_ARN)
    assert record is not None
    assert record.mechanisms == ("MONGODB-AWS",) and record.roles == (RoleRef("root", "admin"),)
    again = await client.run(
        "$external", {"createUser": ROLE_ARN, "mechanisms": ["MONGODB-AWS"], "roles": []}
    )
    assert (again["code"], again["codeName"], again["errmsg"]) == (
        51003,
        "Location51003",
        f'User "{ROLE_ARN}@$external" already exists',
    )


async def test_create_user_argument_errors(make_server: MakeServer) -> None:
    client = await _master(make_server)
    cases: list[tuple[dict[str, Any], int]] = [
        ({"createUser": "a", "pwd": "x"}, 40414),  # roles missing
        ({"createUser": "a", "pwd": "x", "roles": ["nosuch"]}, 31),
        ({"createUser": "a", "roles": []}, 2),  # no pwd outside $external
        ({"createUser": "a", "pwd": 5, "roles": []}, 14),
        ({"createUser": "a", "pwd": "x", "roles": [], "mechanisms": ["MONGODB-AWS"]}, 2),
        ({"createUser": 1, "pwd": "x", "roles": []}, 14),
    ]
    for cmd, code in cases:
        reply = await client.run("test", cmd)
        assert reply["ok"] == 0.0 and reply["code"] == code, (cmd, reply)
    external = await client.run("$external", {"createUser": "CN=x", "pwd": "x", "roles": []})
    assert external["code"] == 2


async def test_users_info_forms(make_server: MakeServer) -> None:
    client = await _master(make_server)
    await client.run(
        "test",
        {"createUser": "app", "pwd": "pw", "roles": ["readWrite"], "customData": {"team": "a"}},
    )
    await client.run(
        "test", {"createUser": "bob", "pwd": "pw", "roles": [{"role": "read", "db": "test"}]}
    )
    await client.run(
        "$external",
        {
            "createUser": ROLE_ARN,
            "mechanisms": ["MONGODB-AWS"],
            "roles": [{"role": "root", "db": "admin"}],
        },
    )

    everything = await client.run("test", {"usersInfo": 1})
    assert [u["user"] for u in everything["users"]] == ["app", "bob"]
    app = everything["users"][0]
    assert app["_id"] == "test.app" and app["db"] == "test"
    assert app["roles"] == [{"role": "readWrite", "db": "test"}]
    assert app["mechanisms"] == ["SCRAM-SHA-1", "SCRAM-SHA-256"]
    assert app["customData"] == {"team": "a"}
    assert "credentials" not in app
    user_id = client.server.users.get("test", "app").user_id  # type: ignore[union-attr]
    assert app["userId"].as_uuid(UuidRepresentation.STANDARD) == user_id

    by_name = await client.run("test", {"usersInfo": "bob"})
    assert [u["_id"] for u in by_name["users"]] == ["test.bob"]
    by_doc = await client.run("admin", {"usersInfo": {"user": ROLE_ARN, "db": "$external"}})
    assert by_doc["users"][0]["mechanisms"] == ["MONGODB-AWS"]
    listed = await client.run(
        "test", {"usersInfo": ["app", {"user": "master", "db": "admin"}, "ghost"]}
    )
    assert [u["_id"] for u in listed["users"]] == ["test.app", "admin.master"]
    all_dbs = await client.run("admin", {"usersInfo": 1, "forAllDBs": True})
    assert [u["_id"] for u in all_dbs["users"]] == [
        f"$external.{ROLE_ARN}",
        "admin.master",
        "test.app",
        "test.bob",
    ]
    with_credentials = await client.run("test", {"usersInfo": "app", "showCredentials": True})
    credentials = with_credentials["users"][0]["credentials"]
    assert set(credentials) == {"SCRAM-SHA-1", "SCRAM-SHA-256"}
    assert credentials["SCRAM-SHA-256"]["iterationCount"] == 15000
    assert credentials["SCRAM-SHA-1"]["iterationCount"] == 10000
    bad = await client.run("test", {"usersInfo": 3.5})
    assert bad["code"] == 14


async def test_update_grant_revoke_drop_commands(make_server: MakeServer) -> None:
    client = await _master(make_server)
    await client.run("test", {"createUser": "app", "pwd": "pw", "roles": ["read"]})
    assert (await client.run("test", {"grantRolesToUser": "app", "roles": ["readWrite"]}))[
        "ok"
    ] == 1.0
    assert client.server.users.roles_of("test", "app") == (
        RoleRef("read", "test"),
        RoleRef("readWrite", "test"),
    )
    assert (
        await client.run(
            "test", {"revokeRolesFromUser": "app", "roles": [{"role": "read", "db": "test"}]}
        )
    )["ok"]
    assert client.server.users.roles_of("test", "app") == (RoleRef("readWrite", "test"),)
    nothing = await client.run("test", {"updateUser": "app"})
    assert nothing["code"] == 2
    assert (await client.run("test", {"updateUser": "app", "pwd": "new", "customData": {"x": 1}}))[
        "ok"
    ] == 1.0
    fresh = Client(client.server)
    await _login(fresh, "app", "new", "test")
    assert fresh.connection.users == [AuthenticatedUser("app", "test")]
    missing = await client.run("test", {"updateUser": "ghost", "pwd": "x"})
    assert missing["code"] == 11
    missing = await client.run("test", {"grantRolesToUser": "ghost", "roles": ["read"]})
    assert missing["code"] == 11
    assert (await client.run("test", {"dropUser": "app"}))["ok"] == 1.0
    dropped = await client.run("test", {"dropUser": "app"})
    assert (dropped["code"], dropped["codeName"], dropped["errmsg"]) == (
        11,
        "UserNotFound",
        'User "app@test" not found',
    )
    await client.run("t2", {"createUser": "a", "pwd": "pw", "roles": []})
    await client.run("t2", {"createUser": "b", "pwd": "pw", "roles": []})
    assert (await client.run("t2", {"dropAllUsersFromDatabase": 1}))["n"] == 2


async def test_user_commands_are_authorized(make_server: MakeServer) -> None:
    master = await _master(make_server)
    server = master.server
    await master.run("test", {"createUser": "reader", "pwd": "pw", "roles": ["read"]})
    await master.run("test", {"createUser": "owner", "pwd": "pw", "roles": ["dbOwner"]})

    anonymous = Client(server)
    reply = await anonymous.run("test", {"usersInfo": 1})
    assert reply["code"] == 13

    reader = Client(server)
    await _login(reader, "reader", "pw", "test")
    for cmd in (
        {"createUser": "x", "pwd": "pw", "roles": []},
        {"dropUser": "owner"},
        {"usersInfo": 1},
    ):
        reply = await reader.run("test", cmd)
        assert reply["code"] == 13, cmd
    own = await reader.run("test", {"usersInfo": "reader"})  # a user may always see itself
    assert [u["user"] for u in own["users"]] == ["reader"]

    owner = Client(server)
    await _login(owner, "owner", "pw", "test")
    assert (await owner.run("test", {"createUser": "x", "pwd": "pw", "roles": ["read"]}))[
        "ok"
    ] == 1.0
    # dbOwner on test may not hand out admin roles, nor create users elsewhere.
    escalate = await owner.run(
        "test", {"createUser": "y", "pwd": "pw", "roles": [{"role": "root", "db": "admin"}]}
    )
    assert escalate["code"] == 13
    assert (await owner.run("other", {"createUser": "z", "pwd": "pw", "roles": []}))["code"] == 13
    assert (
        await owner.run(
            "test", {"grantRolesToUser": "reader", "roles": [{"role": "root", "db": "admin"}]}
        )
    )["code"] == 13

    # Revoking takes effect on live connections (roles are looked up per command).
    assert (await master.run("test", {"revokeRolesFromUser": "owner", "roles": ["dbOwner"]}))[
        "ok"
    ] == 1.0
    assert (await owner.run("test", {"usersInfo": 1}))["code"] == 13
