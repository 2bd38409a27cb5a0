"""Auth service domain layer: database resources and the agents' heartbeats.

A database is static (from an agent's config, known only through its heartbeats) or
dynamic (`wctl create`, stored under `/databases/<name>`; agents pick those up).
Each agent heartbeats every database it serves to `/db_servers/<host_id>/<name>`
with a 90 s expiry; what users can connect to is what is heartbeating.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from wicket.auth.store import (
    DATABASES,
    DB_SERVERS,
    Clock,
    JsonStore,
    decode_time,
    encode_time,
    key,
    utc_now,
)
from wicket.backend.base import Backend
from wicket.errors import AlreadyExists, BadParameter, NotFound, WicketError

if TYPE_CHECKING:
    from wicket.auth.roles import AccessChecker

DATABASE_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$")
HOST_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
LABEL_NAME_RE = re.compile(r"^[A-Za-z0-9/._:-]{1,63}$")
DEFAULT_HEARTBEAT_TTL = timedelta(seconds=90)
MAX_LABELS = 64
MAX_DATABASES_PER_HEARTBEAT = 1000


class TlsMode(Enum):
    """How the agent verifies the database's certificate."""

    VERIFY_FULL = "verify-full"
    VERIFY_CA = "verify-ca"
    INSECURE = "insecure"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AwsSettings(_Model):
    """Where a DocumentDB cluster lives and how the agent reaches its IAM roles."""

    region: str = Field(default="", max_length=64, pattern=r"^([a-z]{2}(-[a-z]+)+-\d)?$")
    account_id: str = Field(default="", pattern=r"^(\d{12})?$")
    assume_role_arn: str = Field(
        default="", max_length=2048, pattern=r"^(arn:aws[a-z-]*:iam::.+)?$"
    )
    external_id: str = Field(default="", max_length=1224)


class TlsSettings(_Model):
    """Upstream TLS: verification mode and an extra CA bundle."""

    mode: TlsMode = TlsMode.VERIFY_FULL
    ca_cert_file: str = Field(default="", max_length=4096)


class Database(_Model):
    """A database Wicket proxies (flat form the code uses; `to_resource` gives the YAML)."""

    name: str
    description: str = Field(default="", max_length=1024)
    protocol: Literal["mongodb"] = "mongodb"
    uri: str = Field(min_length=1, max_length=4096)
    labels: dict[str, str] = Field(default_factory=dict)
    aws: AwsSettings = Field(default_factory=AwsSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not DATABASE_NAME_RE.match(value):
            raise ValueError(
                f"invalid database name {value!r}: use 1-63 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_LABELS:
            raise ValueError(f"at most {MAX_LABELS} labels are allowed")
        for label, text in value.items():
            if not LABEL_NAME_RE.match(label):
                raise ValueError(f"invalid label name {label!r}")
            if len(text) > 256:
                raise ValueError(f"label {label!r}: value longer than 256 characters")
        return value

    def to_resource(self) -> dict[str, Any]:
        """The `kind: db` YAML resource (the shape `database_from_resource` reads)."""
        metadata: dict[str, Any] = {"name": self.name}
        if self.description:
            metadata["description"] = self.description
        if self.labels:
            metadata["labels"] = dict(self.labels)
        spec: dict[str, Any] = {"protocol": self.protocol, "uri": self.uri}
        aws = self.aws.model_dump(mode="json", exclude_defaults=True)
        if aws:
            spec["aws"] = aws
        tls = self.tls.model_dump(mode="json", exclude_defaults=True)
        if tls:
            spec["tls"] = tls
        return {"kind": "db", "version": "v3", "metadata": metadata, "spec": spec}


class _DbMetadata(_Model):
    name: str
    description: str = ""
    labels: dict[str, str] = Field(default_factory=dict)


class _DbSpec(_Model):
    protocol: Literal["mongodb"] = "mongodb"
    uri: str
    aws: AwsSettings = Field(default_factory=AwsSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)


class DatabaseResource(_Model):
    """The `kind: db` resource as written in YAML (validated, then flattened to Database)."""

    kind: Literal["db"] = "db"
    version: Literal["v3"] = "v3"
    metadata: _DbMetadata
    spec: _DbSpec

    def to_database(self) -> Database:
        """The flat model; field errors keep their resource paths via `database_from_resource`."""
        return Database(
            name=self.metadata.name,
            description=self.metadata.description,
            labels=self.metadata.labels,
            protocol=self.spec.protocol,
            uri=self.spec.uri,
            aws=self.spec.aws,
            tls=self.spec.tls,
        )


_FLAT_TO_RESOURCE = {
    "name": "metadata.name",
    "description": "metadata.description",
    "labels": "metadata.labels",
    "protocol": "spec.protocol",
    "uri": "spec.uri",
}


def database_from_resource(data: object) -> Database:
    """Validate a `kind: db` resource; errors name the resource's field path."""
    resource = DatabaseResource.model_validate(data)
    try:
        return resource.to_database()
    except ValidationError as error:
        first = error.errors()[0]
        loc = [str(part) for part in first["loc"]]
        path = ".".join([_FLAT_TO_RESOURCE.get(loc[0], loc[0]), *loc[1:]]) if loc else ""
        raise BadParameter(f"{path}: {first['msg']}") from None


@dataclass(frozen=True)
class DatabaseServer:
    """One agent serving one database, until `expires` unless it heartbeats again."""

    host_id: str
    hostname: str
    database: Database
    expires: datetime

    def to_public_dict(self) -> dict[str, Any]:
        """JSON-ready view for `wctl db ls`."""
        return {
            "host_id": self.host_id,
            "hostname": self.hostname,
            "database": self.database.to_resource(),
            "expires": encode_time(self.expires),
        }


def _check_host_id(host_id: str) -> str:
    if not HOST_ID_RE.match(host_id):
        raise BadParameter(f"invalid host id {host_id!r}")
    return host_id


class DatabaseService:
    """Dynamic database resources and the live view of which agent serves what."""

    def __init__(self, backend: Backend, *, clock: Clock = utc_now) -> None:
        self.store = JsonStore(backend)
        self.clock = clock

    async def get(self, name: str) -> Database:
        """The dynamic database called `name`."""
        if not DATABASE_NAME_RE.match(name):
            raise NotFound(f'database "{name}" not found')
        item = await self.store.get(key(DATABASES, name))
        if item is None:
            raise NotFound(f'database "{name}" not found')
        return database_from_resource(item.data)

    async def list(self) -> list[Database]:
        """Every dynamic database, by name."""
        return [database_from_resource(item.data) for item in await self.store.list(DATABASES)]

    async def create(self, database: Database) -> Database:
        """Store a new dynamic database; AlreadyExists if the name is taken."""
        if await self.store.create(key(DATABASES, database.name), database.to_resource()) is None:
            raise AlreadyExists(f'database "{database.name}" already exists (use -f to overwrite)')
        return database

    async def upsert(self, database: Database) -> Database:
        """Create or replace a dynamic database."""
        await self.store.put(key(DATABASES, database.name), database.to_resource())
        return database

    async def delete(self, name: str) -> None:
        """Delete a dynamic database (agents stop serving it at their next sync)."""
        if not DATABASE_NAME_RE.match(name) or not await self.store.delete(key(DATABASES, name)):
            raise NotFound(f'database "{name}" not found')

    async def heartbeat(
        self,
        host_id: str,
        hostname: str,
        databases: Sequence[Database],
        ttl: timedelta = DEFAULT_HEARTBEAT_TTL,
    ) -> datetime:
        """Record that `host_id` serves exactly `databases` for the next `ttl`; returns expiry."""
        _check_host_id(host_id)
        if not hostname or len(hostname) > 255:
            raise BadParameter("hostname must have 1 to 255 characters")
        if len(databases) > MAX_DATABASES_PER_HEARTBEAT:
            raise BadParameter(f"at most {MAX_DATABASES_PER_HEARTBEAT} databases per heartbeat")
        if not timedelta(seconds=1) <= ttl <= timedelta(hours=1):
            raise BadParameter("heartbeat TTL must be between 1s and 1h")
        expires = self.clock() + ttl
        prefix = key(DB_SERVERS, host_id) + "/"
        served = {database.name for database in databases}
        for item in await self.store.list(prefix):
            if item.key.removeprefix(prefix) not in served:
                await self.store.delete(item.key)
        for database in databases:
            await self.store.put(
                key(DB_SERVERS, host_id, database.name),
                {
                    "host_id": host_id,
                    "hostname": hostname,
                    "database": database.to_resource(),
                    "expires": encode_time(expires),
                },
                expires=expires,
            )
        return expires

    async def servers(self, name: str | None = None) -> builtins.list[DatabaseServer]:
        """Live (unexpired) agent/database pairs, optionally for one database name."""
        now = self.clock()
        result: builtins.list[DatabaseServer] = []
        for item in await self.store.list(DB_SERVERS):
            try:
                server = DatabaseServer(
                    host_id=str(item.data["host_id"]),
                    hostname=str(item.data["hostname"]),
                    database=database_from_resource(item.data["database"]),
                    expires=decode_time(item.data["expires"]),
                )
            except (KeyError, ValidationError, BadParameter) as error:
                raise WicketError(f"stored heartbeat {item.key} is malformed: {error}") from None
            if server.expires <= now or (name is not None and server.database.name != name):
                continue
            result.append(server)
        return sorted(result, key=lambda s: (s.database.name, s.host_id))

    async def list_for(self, checker: AccessChecker) -> builtins.list[Database]:
        """Databases being served that the checker's roles allow (one per name)."""
        seen: dict[str, Database] = {}
        for server in await self.servers():
            name = server.database.name
            if name not in seen and checker.check_database(server.database.labels).allowed:
                seen[name] = server.database
        return list(seen.values())
