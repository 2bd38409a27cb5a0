"""Auth service domain layer: YAML/JSON resources for `wctl get`, `wctl create` and `wctl rm`.

Kinds `role`, `user`, `token`, `db` and `lock`, one or several `---` documents (or a JSON
list, which is what `--format json` prints). Validation is strict: unknown fields,
duplicate keys and wrong types are refused with the field path. `dump_resources`
writes the same shape `parse_resources` reads.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from wicket.auth.databases import (
    Database,
    DatabaseResource,
    DatabaseService,
    database_from_resource,
)
from wicket.auth.invites import Invite
from wicket.auth.locks import Lock, LockService
from wicket.auth.roles import NAME_RE, Duration, Role, RoleService
from wicket.auth.store import encode_time
from wicket.auth.tokens import DEFAULT_TOKEN_TTL, TokenInfo, TokenService, TokenType
from wicket.auth.users import User, UserService
from wicket.errors import AlreadyExists, BadParameter, NotFound

MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
MAX_DOCUMENTS = 1000


class ResourceKind(Enum):
    """The kinds `wctl get/create/rm` handle."""

    ROLE = "role"
    USER = "user"
    TOKEN = "token"  # noqa: S105 - a kind name, not a secret
    DB = "db"
    LOCK = "lock"


_ALIASES = {
    "role": ResourceKind.ROLE,
    "roles": ResourceKind.ROLE,
    "user": ResourceKind.USER,
    "users": ResourceKind.USER,
    "token": ResourceKind.TOKEN,
    "tokens": ResourceKind.TOKEN,
    "db": ResourceKind.DB,
    "dbs": ResourceKind.DB,
    "database": ResourceKind.DB,
    "databases": ResourceKind.DB,
    "lock": ResourceKind.LOCK,
    "locks": ResourceKind.LOCK,
}


def parse_kind(text: str) -> ResourceKind:
    """`role`, `roles`, `db`, `databases`, ... to a kind (clear error otherwise)."""
    kind = _ALIASES.get(text.strip().lower())
    if kind is None:
        raise BadParameter(
            f"unknown resource kind {text!r}; use one of: "
            + ", ".join(k.value for k in ResourceKind)
        )
    return kind


def parse_reference(text: str) -> tuple[ResourceKind, str | None]:
    """`KIND` or `KIND/NAME` as `wctl get` and `wctl rm` take them."""
    kind_text, _, name = text.partition("/")
    kind = parse_kind(kind_text)
    if "/" in text and not name:
        raise BadParameter(f"missing name after {kind_text}/")
    return kind, name or None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _NamedMetadata(_Model):
    name: str = Field(min_length=1, max_length=256)


class UserSpec(_Model):
    """A user's roles and traits."""

    roles: tuple[str, ...] = ()
    traits: dict[str, tuple[str, ...]] = Field(default_factory=dict)


class UserStatus(_Model):
    """Read-only facts `wctl get` shows; ignored by `wctl create`."""

    created: datetime | None = None
    has_password: bool = False
    otp_enabled: bool = False


class UserResource(_Model):
    """The `kind: user` resource."""

    kind: Literal["user"] = "user"
    version: Literal["v2"] = "v2"
    metadata: _NamedMetadata
    spec: UserSpec = Field(default_factory=UserSpec)
    status: UserStatus | None = None

    @field_validator("metadata")
    @classmethod
    def _check_name(cls, value: _NamedMetadata) -> _NamedMetadata:
        if not NAME_RE.match(value.name):
            raise ValueError(f"invalid user name {value.name!r}")
        return value

    @classmethod
    def from_user(cls, user: User) -> UserResource:
        """The resource view of a user (never any secret)."""
        return cls(
            metadata=_NamedMetadata(name=user.name),
            spec=UserSpec(roles=user.roles, traits=dict(user.traits)),
            status=UserStatus(
                created=user.created, has_password=user.has_password, otp_enabled=user.otp_enabled
            ),
        )


class TokenMetadata(_Model):
    """`name` is the token value on create, its masked id when listed."""

    name: str = Field(min_length=1, max_length=256)
    expires: datetime | None = None


class TokenSpec(_Model):
    """What the token lets join."""

    type: TokenType
    single_use: bool = True
    ttl: Duration | None = None


class TokenResource(_Model):
    """The `kind: token` resource."""

    kind: Literal["token"] = "token"
    version: Literal["v2"] = "v2"
    metadata: TokenMetadata
    spec: TokenSpec

    @classmethod
    def from_info(cls, info: TokenInfo) -> TokenResource:
        """The resource view of a token: masked id, never the value."""
        return cls(
            metadata=TokenMetadata(name=info.id, expires=info.expires),
            spec=TokenSpec(type=info.type, single_use=info.single_use),
        )


Resource = Role | UserResource | TokenResource | DatabaseResource | Lock

_MODELS: dict[ResourceKind, type[BaseModel]] = {
    ResourceKind.ROLE: Role,
    ResourceKind.USER: UserResource,
    ResourceKind.TOKEN: TokenResource,
    ResourceKind.DB: DatabaseResource,
    ResourceKind.LOCK: Lock,
}


def resource_kind(resource: Resource) -> ResourceKind:
    """The kind of a parsed resource."""
    return ResourceKind(resource.kind)


def resource_name(resource: Resource) -> str:
    """The `metadata.name` of a parsed resource."""
    return resource.metadata.name


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Hashable, Any]:
    loader.flatten_mapping(node)
    result: dict[Hashable, Any] = {}
    for key_node, value_node in node.value:
        item_key = loader.construct_object(key_node, deep=True)
        if not isinstance(item_key, Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, "mapping key is not hashable", key_node.start_mark
            )
        if item_key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {item_key!r}", key_node.start_mark
            )
        result[item_key] = loader.construct_object(value_node, deep=True)
    return result


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def _error_text(error: ValidationError) -> str:
    parts = []
    for detail in error.errors()[:5]:
        path = ".".join(str(p) for p in detail["loc"]) or "(document)"
        message = str(detail["msg"]).removeprefix("Value error, ")
        parts.append(f"{path}: {message}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse_resource(data: object, *, where: str = "document 1") -> Resource:
    """Validate one decoded document into its resource model."""
    if not isinstance(data, dict):
        raise BadParameter(f"{where}: expected a mapping with kind, metadata and spec")
    kind_value = data.get("kind")
    if not isinstance(kind_value, str):
        raise BadParameter(
            f"{where}: kind: required; use one of: " + ", ".join(k.value for k in ResourceKind)
        )
    try:
        kind = ResourceKind(kind_value)
    except ValueError:
        raise BadParameter(
            f"{where}: kind: unknown kind {kind_value!r}; use one of: "
            + ", ".join(k.value for k in ResourceKind)
        ) from None
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    label = f'{where} ({kind.value} "{name}")' if isinstance(name, str) else where
    try:
        resource = _MODELS[kind].model_validate(data)
        if isinstance(resource, DatabaseResource):
            database_from_resource(data)
    except ValidationError as error:
        raise BadParameter(f"{label}: {_error_text(error)}") from None
    except BadParameter as error:
        raise BadParameter(f"{label}: {error}") from None
    assert isinstance(resource, Role | UserResource | TokenResource | DatabaseResource | Lock)
    return resource


def parse_resources(text: str, *, source: str = "input") -> list[Resource]:
    """Every resource in a YAML stream (`---` separated) or a JSON object or list."""
    if len(text.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        raise BadParameter(f"{source}: larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        documents = [doc for doc in yaml.load_all(text, Loader=_StrictLoader) if doc is not None]
    except yaml.YAMLError as error:
        raise BadParameter(f"{source}: not valid YAML: {error}") from None
    if len(documents) == 1 and isinstance(documents[0], list):
        documents = [doc for doc in documents[0] if doc is not None]
    if not documents:
        raise BadParameter(f"{source}: no resources found")
    if len(documents) > MAX_DOCUMENTS:
        raise BadParameter(f"{source}: more than {MAX_DOCUMENTS} documents")
    return [
        parse_resource(doc, where=f"{source}: document {index}")
        for index, doc in enumerate(documents, start=1)
    ]


def resource_to_dict(resource: Resource) -> dict[str, Any]:
    """Plain data in the shape `parse_resource` reads back."""
    if isinstance(resource, Role | Lock):
        return resource.to_resource()
    if isinstance(resource, DatabaseResource):
        return resource.to_database().to_resource()
    data = resource.model_dump(mode="json", exclude_none=True)
    data["kind"], data["version"] = resource.kind, resource.version
    return {"kind": data.pop("kind"), "version": data.pop("version"), **data}


def dump_resources(resources: Sequence[Resource], format: Literal["yaml", "json"]) -> str:
    """YAML documents separated by `---`, or a JSON list, of the given resources."""
    data = [resource_to_dict(resource) for resource in resources]
    if format == "json":
        return json.dumps(data, indent=2) + "\n"
    return "---\n".join(yaml.safe_dump(doc, sort_keys=False) for doc in data)


@dataclass(frozen=True)
class Applied:
    """What `wctl create` did with one resource (with the invite for a new user)."""

    kind: ResourceKind
    name: str
    created: bool
    invite: Invite | None = field(default=None, repr=False)

    def message(self) -> str:
        """One line for the CLI, like Teleport's `role "x" has been created`."""
        return (
            f'{self.kind.value} "{self.name}" has been {"created" if self.created else "updated"}'
        )


class ResourceManager:
    """`wctl get/create/rm` over the domain services."""

    def __init__(
        self,
        *,
        roles: RoleService,
        users: UserService,
        tokens: TokenService,
        databases: DatabaseService,
        locks: LockService,
    ) -> None:
        self.roles = roles
        self.users = users
        self.tokens = tokens
        self.databases = databases
        self.locks = locks

    async def get(self, kind: ResourceKind, name: str | None = None) -> list[Resource]:
        """One named resource, or all of a kind (tokens masked, users without secrets)."""
        if kind is ResourceKind.ROLE:
            return [await self.roles.get(name)] if name else list(await self.roles.list())
        if kind is ResourceKind.USER:
            users = [await self.users.get(name)] if name else await self.users.list()
            return [UserResource.from_user(user) for user in users]
        if kind is ResourceKind.TOKEN:
            infos = [await self.tokens.get(name)] if name else await self.tokens.list()
            return [TokenResource.from_info(info) for info in infos]
        if kind is ResourceKind.LOCK:
            return [await self.locks.get(name)] if name else list(await self.locks.list())
        return [
            DatabaseResource.model_validate(db.to_resource()) for db in await self._databases(name)
        ]

    async def _databases(self, name: str | None) -> list[Database]:
        """Dynamic databases plus static ones known from heartbeats, by name."""
        found: dict[str, Database] = {db.name: db for db in await self.databases.list()}
        for server in await self.databases.servers(name):
            found.setdefault(server.database.name, server.database)
        if name is not None:
            if name not in found:
                raise NotFound(f'database "{name}" not found')
            return [found[name]]
        return [found[key] for key in sorted(found)]

    async def create(self, resource: Resource, *, overwrite: bool = False) -> Applied:
        """Create a resource, or with `overwrite` (`-f`) replace an existing one."""
        kind, name = resource_kind(resource), resource_name(resource)
        if isinstance(resource, Role):
            if not overwrite:
                await self.roles.create(resource)
                return Applied(kind, name, created=True)
            existed = await self._exists(self.roles.get(name))
            await self.roles.upsert(resource)
            return Applied(kind, name, created=not existed)
        if isinstance(resource, DatabaseResource):
            database = resource.to_database()
            if not overwrite:
                await self.databases.create(database)
                return Applied(kind, name, created=True)
            existed = await self._exists(self.databases.get(name))
            await self.databases.upsert(database)
            return Applied(kind, name, created=not existed)
        if isinstance(resource, UserResource):
            return await self._create_user(resource, overwrite=overwrite)
        if isinstance(resource, Lock):
            return await self._create_lock(resource)
        return await self._create_token(resource, overwrite=overwrite)

    async def _create_lock(self, resource: Lock) -> Applied:
        """A new lock from a resource's spec (its id is always chosen anew)."""
        target = resource.target
        lock = await self.locks.create(
            user=target.user,
            role=target.role,
            db=target.db,
            message=resource.spec.message,
            expires=resource.spec.expires,
            created_by=resource.spec.created_by,
        )
        return Applied(ResourceKind.LOCK, lock.id, created=True)

    @staticmethod
    async def _exists(lookup: Any) -> bool:
        try:
            await lookup
        except NotFound:
            return False
        return True

    async def _create_user(self, resource: UserResource, *, overwrite: bool) -> Applied:
        name = resource.metadata.name
        try:
            current = await self.users.get(name)
        except NotFound:
            _, invite = await self.users.create(
                name, roles=resource.spec.roles, traits=resource.spec.traits
            )
            return Applied(ResourceKind.USER, name, created=True, invite=invite)
        if not overwrite:
            raise AlreadyExists(f'user "{name}" already exists (use -f to overwrite)')
        traits: dict[str, tuple[str, ...]] = {trait: () for trait in current.traits}
        traits.update(resource.spec.traits)
        await self.users.update(name, roles=resource.spec.roles, traits=traits)
        return Applied(ResourceKind.USER, name, created=False)

    async def _create_token(self, resource: TokenResource, *, overwrite: bool) -> Applied:
        value = resource.metadata.name
        now = self.tokens.clock()
        if resource.metadata.expires is not None:
            ttl = resource.metadata.expires - now
        else:
            ttl = resource.spec.ttl or DEFAULT_TOKEN_TTL
        if ttl <= timedelta(0):
            expired = encode_time(resource.metadata.expires or now)
            raise BadParameter(f"token: metadata.expires {expired} is in the past")
        existed = False
        if overwrite:
            try:
                await self.tokens.delete(value)
                existed = True
            except NotFound:
                existed = False
        info = (
            await self.tokens.create(
                resource.spec.type, ttl, single_use=resource.spec.single_use, value=value
            )
        )[1]
        return Applied(ResourceKind.TOKEN, info.id, created=not existed)

    async def delete(self, kind: ResourceKind, name: str) -> None:
        """`wctl rm KIND/NAME`."""
        if kind is ResourceKind.ROLE:
            await self.roles.delete(name)
        elif kind is ResourceKind.USER:
            await self.users.delete(name)
        elif kind is ResourceKind.TOKEN:
            await self.tokens.delete(name)
        elif kind is ResourceKind.LOCK:
            await self.locks.delete(name)
        else:
            try:
                await self.databases.delete(name)
            except NotFound:
                if await self.databases.servers(name):
                    raise BadParameter(
                        f'database "{name}" is static (from an agent\'s config); '
                        "remove it from that agent's wicket.yaml"
                    ) from None
                raise
