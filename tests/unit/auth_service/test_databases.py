"""Database resources, agent heartbeats and what each user may see."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError
from tests.unit.auth_service.conftest import FakeClock

from wicket.auth.databases import (
    AwsSettings,
    Database,
    DatabaseService,
    TlsMode,
    TlsSettings,
    database_from_resource,
)
from wicket.auth.roles import BUILTIN_ROLES, AccessChecker, Role
from wicket.backend.sqlite import SQLiteBackend
from wicket.errors import AlreadyExists, BadParameter, NotFound

DOCDB = Database(
    name="my-docdb",
    description="DocumentDB in eu",
    uri="docdb.cluster-abc.eu-west-1.docdb.amazonaws.com:27017",
    labels={"env": "dev"},
    aws=AwsSettings(region="eu-west-1", account_id="123456789012"),
)
PROD = Database(name="prod-docdb", uri="prod:27017", labels={"env": "prod"})


@pytest.fixture
def databases(backend: SQLiteBackend, clock: FakeClock) -> DatabaseService:
    return DatabaseService(backend, clock=clock)


async def test_dynamic_crud(databases: DatabaseService) -> None:
    await databases.create(DOCDB)
    with pytest.raises(AlreadyExists, match='database "my-docdb" already exists'):
        await databases.create(DOCDB)
    assert await databases.get("my-docdb") == DOCDB
    changed = DOCDB.model_copy(update={"description": "changed"})
    await databases.upsert(changed)
    await databases.upsert(PROD)
    assert await databases.list() == [changed, PROD]
    await databases.delete("my-docdb")
    with pytest.raises(NotFound, match='database "my-docdb" not found'):
        await databases.get("my-docdb")
    with pytest.raises(NotFound):
        await databases.delete("my-docdb")


def test_resource_shape_round_trip() -> None:
    data = DOCDB.to_resource()
    assert data == {
        "kind": "db",
        "version": "v3",
        "metadata": {
            "name": "my-docdb",
            "description": "DocumentDB in eu",
            "labels": {"env": "dev"},
        },
        "spec": {
            "protocol": "mongodb",
            "uri": "docdb.cluster-abc.eu-west-1.docdb.amazonaws.com:27017",
            "aws": {"region": "eu-west-1", "account_id": "123456789012"},
        },
    }
    assert database_from_resource(data) == DOCDB
    tls = Database(
        name="x", uri="h:1", tls=TlsSettings(mode=TlsMode.VERIFY_CA, ca_cert_file="/ca.pem")
    )
    assert tls.to_resource()["spec"]["tls"] == {"mode": "verify-ca", "ca_cert_file": "/ca.pem"}
    assert database_from_resource(tls.to_resource()) == tls


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"metadata": {"name": "bad name"}}, "metadata.name"),
        ({"metadata": {"name": "ok", "labels": {"bad label!": "x"}}}, "metadata.labels"),
        ({"spec": {"uri": "h:1", "protocol": "postgres"}}, "spec.protocol"),
        ({"spec": {"uri": "h:1", "aws": {"account_id": "12"}}}, "spec.aws.account_id"),
        ({"spec": {"uri": "h:1", "aws": {"regoin": "eu-west-1"}}}, "spec.aws.regoin"),
        ({"spec": {"uri": "h:1", "tls": {"mode": "sometimes"}}}, "spec.tls.mode"),
        ({"spec": {}}, "spec.uri"),
    ],
)
def test_resource_validation_names_the_field(change: dict[str, object], path: str) -> None:
    data: dict[str, object] = {
        "kind": "db",
        "version": "v3",
        "metadata": {"name": "ok"},
        "spec": {"uri": "h:1"},
    }
    data.update(change)
    with pytest.raises((ValidationError, BadParameter)) as caught:
        database_from_resource(data)
    error = caught.value
    if isinstance(error, ValidationError):
        locations = [".".join(str(p) for p in e["loc"]) for e in error.errors()]
        assert any(loc.startswith(path) for loc in locations), locations
    else:
        assert str(error).startswith(path)


async def test_heartbeats_expire(
    databases: DatabaseService, backend: SQLiteBackend, clock: FakeClock
) -> None:
    expires = await databases.heartbeat("host-1", "agent-a", [DOCDB, PROD])
    assert expires == clock.now + timedelta(seconds=90)
    await databases.heartbeat("host-2", "agent-b", [DOCDB])
    servers = await databases.servers()
    assert [(s.database.name, s.host_id, s.hostname) for s in servers] == [
        ("my-docdb", "host-1", "agent-a"),
        ("my-docdb", "host-2", "agent-b"),
        ("prod-docdb", "host-1", "agent-a"),
    ]
    assert [s.host_id for s in await databases.servers("prod-docdb")] == ["host-1"]
    clock.advance(timedelta(seconds=60))
    await databases.heartbeat("host-2", "agent-b", [DOCDB])
    clock.advance(timedelta(seconds=31))
    # host-1 missed its heartbeat: gone from reads before and after the sweeper runs.
    assert [(s.database.name, s.host_id) for s in await databases.servers()] == [
        ("my-docdb", "host-2")
    ]
    assert await backend.sweep() == 2
    assert [item.key for item in await backend.list_prefix("/db_servers/")] == [
        "/db_servers/host-2/my-docdb"
    ]
    clock.advance(timedelta(seconds=60))
    assert await databases.servers() == []


async def test_heartbeat_drops_databases_no_longer_served(databases: DatabaseService) -> None:
    await databases.heartbeat("host-1", "agent-a", [DOCDB, PROD])
    await databases.heartbeat("host-1", "agent-a", [PROD])
    assert [s.database.name for s in await databases.servers()] == ["prod-docdb"]
    with pytest.raises(BadParameter, match="invalid host id"):
        await databases.heartbeat("../x", "agent", [PROD])
    with pytest.raises(BadParameter, match="TTL"):
        await databases.heartbeat("host-1", "agent", [PROD], ttl=timedelta(0))


async def test_list_for_filters_by_labels_and_dedupes(databases: DatabaseService) -> None:
    await databases.heartbeat("host-1", "agent-a", [DOCDB, PROD])
    await databases.heartbeat("host-2", "agent-b", [DOCDB])
    everyone = AccessChecker([BUILTIN_ROLES["access"]], {})
    assert [d.name for d in await databases.list_for(everyone)] == ["my-docdb", "prod-docdb"]
    dev_only = AccessChecker(
        [
            Role.model_validate(
                {"metadata": {"name": "dev"}, "spec": {"allow": {"db_labels": {"env": "dev"}}}}
            )
        ],
        {},
    )
    assert await databases.list_for(dev_only) == [DOCDB]
    no_prod = AccessChecker(
        [
            BUILTIN_ROLES["access"],
            Role.model_validate(
                {"metadata": {"name": "np"}, "spec": {"deny": {"db_labels": {"env": "prod"}}}}
            ),
        ],
        {},
    )
    assert await databases.list_for(no_prod) == [DOCDB]
    assert await databases.list_for(AccessChecker([], {})) == []
