"""Auth service domain layer: role resources, the built-in roles, and access decisions.

Rules of a decision (Teleport's model, see DESIGN.md "RBAC"):
- A role's `allow.db_users` / `allow.db_names` apply only to databases its
  `allow.db_labels` match; an empty label selector matches nothing.
- `deny.db_labels` (non-empty) that match a database deny the whole database.
  `deny.db_users` / `deny.db_names` apply to databases `deny.db_labels` match, or to
  every database when `deny.db_labels` is empty (stricter than Teleport, which
  ignores them then: a deny that silently does nothing is a trap).
- Deny wins over allow. `*` matches anything; `*` inside a value is a glob
  (`prod-*`). The label selector `{'*': '*'}` matches every database.
- `{{internal.NAME}}` / `{{external.NAME}}` expand to each value of the user's
  trait NAME (text around the template is kept); a missing trait expands to nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, field_validator

from wicket.auth.durations import format_duration, parse_duration
from wicket.auth.store import ROLES, USERS, JsonStore, key
from wicket.backend.base import Backend
from wicket.errors import AccessDenied, AlreadyExists, BadParameter, NotFound

NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,63}$"
NAME_RE = re.compile(NAME_PATTERN)
RESOURCES = ("users", "roles", "tokens", "db", "events", "sessions", "locks")
VERBS = ("list", "read", "create", "update", "delete")
MAX_LIST_ITEMS = 256
MAX_VALUE_LENGTH = 256

TEMPLATE_RE = re.compile(r"\{\{\s*(internal|external)\.([A-Za-z0-9_.-]{1,64})\s*\}\}")


def _check_value(value: str) -> str:
    if not value or len(value) > MAX_VALUE_LENGTH:
        raise ValueError(f"values must have 1 to {MAX_VALUE_LENGTH} characters, got {value!r}")
    without_templates = TEMPLATE_RE.sub("", value)
    if "{{" in without_templates or "}}" in without_templates:
        raise ValueError(
            f"invalid template in {value!r}: use {{{{internal.NAME}}}} or {{{{external.NAME}}}}"
        )
    return value


def _check_values(values: tuple[str, ...]) -> tuple[str, ...]:
    if len(values) > MAX_LIST_ITEMS:
        raise ValueError(f"at most {MAX_LIST_ITEMS} entries are allowed")
    return tuple(_check_value(value) for value in values)


def _labels_in(value: object) -> object:
    """Accept `{k: v}` and `{k: [v, ...]}`; store every value as a tuple."""
    if not isinstance(value, Mapping):
        return value
    return {k: (v,) if isinstance(v, str) else v for k, v in value.items()}


def _labels_out(value: Mapping[str, tuple[str, ...]]) -> dict[str, str | list[str]]:
    return {k: v[0] if len(v) == 1 else list(v) for k, v in value.items()}


LabelSelector = Annotated[
    dict[str, tuple[str, ...]],
    BeforeValidator(_labels_in),
    PlainSerializer(_labels_out),
]


def _duration_in(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError("expected a duration like 8h, 30m or 1h30m")


Duration = Annotated[
    timedelta, BeforeValidator(_duration_in), PlainSerializer(format_duration, return_type=str)
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Model):
    """Which management verbs a role grants (or denies) on which resources."""

    resources: tuple[str, ...] = Field(min_length=1)
    verbs: tuple[str, ...] = Field(min_length=1)

    @field_validator("resources")
    @classmethod
    def _known_resources(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if item != "*" and item not in RESOURCES:
                raise ValueError(f"unknown resource {item!r}; known: {', '.join(RESOURCES)}, *")
        return value

    @field_validator("verbs")
    @classmethod
    def _known_verbs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if item != "*" and item not in VERBS:
                raise ValueError(f"unknown verb {item!r}; known: {', '.join(VERBS)}, *")
        return value


class RoleConditions(_Model):
    """One side (allow or deny) of a role."""

    db_labels: LabelSelector = Field(default_factory=dict)
    db_users: tuple[str, ...] = ()
    db_names: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()

    @field_validator("db_labels")
    @classmethod
    def _check_labels(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        if len(value) > MAX_LIST_ITEMS:
            raise ValueError(f"at most {MAX_LIST_ITEMS} labels are allowed")
        for label, values in value.items():
            if not label or len(label) > MAX_VALUE_LENGTH or "{{" in label:
                raise ValueError(f"invalid label name {label!r}")
            if not values:
                raise ValueError(f"label {label!r} needs at least one value")
            _check_values(values)
        return value

    @field_validator("db_users", "db_names")
    @classmethod
    def _check_lists(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_values(value)


class RoleOptions(_Model):
    """Session options; the smallest `max_session_ttl` of a user's roles caps certificates.

    `allow_unknown_commands` lets database commands the inspector cannot classify through
    for databases this role's `db_labels` match; off by default (they are refused).
    `allow_server_commands` is the only grant for server-wide commands (other sessions'
    operations, logs, server settings, user management, every database's names): for
    databases this role's `db_labels` match; off by default, since no `db_names` entry
    can say "the whole server".
    """

    max_session_ttl: Duration | None = None
    allow_unknown_commands: bool = False
    allow_server_commands: bool = False


class RoleSpec(_Model):
    """What a role allows and denies."""

    options: RoleOptions = Field(default_factory=RoleOptions)
    allow: RoleConditions = Field(default_factory=RoleConditions)
    deny: RoleConditions = Field(default_factory=RoleConditions)


class RoleMetadata(_Model):
    """A role's name and description."""

    name: str
    description: str = Field(default="", max_length=1024)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError(
                f"invalid role name {value!r}: use 1-64 letters, digits, '.', '_', '@' or '-'"
            )
        return value


class Role(_Model):
    """A role resource, exactly as `wctl create -f role.yaml` reads it."""

    kind: Literal["role"] = "role"
    version: Literal["v1"] = "v1"
    metadata: RoleMetadata
    spec: RoleSpec = Field(default_factory=RoleSpec)

    @property
    def name(self) -> str:
        """The role's name."""
        return self.metadata.name

    def to_resource(self) -> dict[str, Any]:
        """The resource as plain data, in the shape `Role.model_validate` reads back."""
        spec = self.spec.model_dump(mode="json", exclude_defaults=True)
        return {
            "kind": self.kind,
            "version": self.version,
            "metadata": self.metadata.model_dump(mode="json", exclude_defaults=True),
            "spec": {
                "options": spec.get("options", {}),
                "allow": spec.get("allow", {}),
                "deny": spec.get("deny", {}),
            },
        }


_ALL_VERBS = VERBS

BUILTIN_ROLES: dict[str, Role] = {
    role.name: role
    for role in (
        Role(
            metadata=RoleMetadata(
                name="access", description="Connect to databases with the user's traits"
            ),
            spec=RoleSpec(
                allow=RoleConditions(
                    db_labels={"*": ("*",)},
                    db_users=("{{internal.db_users}}",),
                    db_names=("{{internal.db_names}}",),
                )
            ),
        ),
        Role(
            metadata=RoleMetadata(
                name="editor", description="Manage users, roles, join tokens, databases and locks"
            ),
            spec=RoleSpec(
                allow=RoleConditions(
                    rules=(
                        Rule(
                            resources=("users", "roles", "tokens", "db", "locks"), verbs=_ALL_VERBS
                        ),
                    )
                )
            ),
        ),
        Role(
            metadata=RoleMetadata(name="auditor", description="Read audit events and sessions"),
            spec=RoleSpec(
                allow=RoleConditions(
                    rules=(Rule(resources=("events", "sessions"), verbs=("list", "read")),)
                )
            ),
        ),
    )
}


class RoleService:
    """Stored roles plus the built-in ones, which cannot be changed or deleted."""

    def __init__(self, backend: Backend) -> None:
        self.store = JsonStore(backend)

    async def get(self, name: str) -> Role:
        """The role called `name`."""
        builtin = BUILTIN_ROLES.get(name)
        if builtin is not None:
            return builtin
        if not NAME_RE.match(name):
            raise NotFound(f'role "{name}" not found')
        record = await self.store.get(key(ROLES, name))
        if record is None:
            raise NotFound(f'role "{name}" not found')
        return Role.model_validate(record.data)

    async def require(self, names: Iterable[str]) -> None:
        """Raise NotFound for the first of `names` that is not a role."""
        for name in names:
            await self.get(name)

    async def list(self) -> list[Role]:
        """Built-in roles first, then stored roles by name."""
        stored = [Role.model_validate(item.data) for item in await self.store.list(ROLES)]
        return [*BUILTIN_ROLES.values(), *stored]

    def _refuse_builtin(self, name: str, action: str) -> None:
        if name in BUILTIN_ROLES:
            raise BadParameter(
                f'role "{name}" is built in and cannot be {action}; '
                "create a role with another name instead"
            )

    async def create(self, role: Role) -> Role:
        """Store a new role; AlreadyExists if one has that name."""
        self._refuse_builtin(role.name, "replaced")
        created = await self.store.create(key(ROLES, role.name), role.to_resource())
        if created is None:
            raise AlreadyExists(f'role "{role.name}" already exists (use -f to overwrite)')
        return role

    async def upsert(self, role: Role) -> Role:
        """Create or replace a role."""
        self._refuse_builtin(role.name, "changed")
        await self.store.put(key(ROLES, role.name), role.to_resource())
        return role

    async def delete(self, name: str) -> None:
        """Delete a role that no user holds any more."""
        self._refuse_builtin(name, "deleted")
        await self.get(name)
        holders = sorted(
            str(item.data.get("name"))
            for item in await self.store.list(USERS)
            if name in item.data.get("roles", ())
        )
        if holders:
            raise BadParameter(
                f'role "{name}" is still assigned to users: {", ".join(holders)}; '
                "remove it from them first (wctl users update)"
            )
        if not await self.store.delete(key(ROLES, name)):
            raise NotFound(f'role "{name}" not found')


# --- decisions ------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _glob_re(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$")


def glob_match(pattern: str, value: str) -> bool:
    """`*` matches any run of characters (so `*` alone matches anything); the rest is literal."""
    if "*" not in pattern:
        return pattern == value
    return _glob_re(pattern).match(value) is not None


def expand_traits(value: str, traits: Mapping[str, Sequence[str]]) -> list[str]:
    """Expand the trait templates in `value`; a missing trait expands to nothing."""
    match = TEMPLATE_RE.search(value)
    if match is None:
        return [value]
    prefix, suffix = value[: match.start()], value[match.end() :]
    results: list[str] = []
    for trait_value in traits.get(match.group(2), ()):
        # Trait values are data, never templates: expand only the role's own text.
        results.extend(prefix + trait_value + rest for rest in expand_traits(suffix, traits))
    return results


def _expand_all(values: Iterable[str], traits: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        for expanded in expand_traits(value, traits):
            if expanded not in out:
                out.append(expanded)
    return tuple(out)


@dataclass(frozen=True)
class _Side:
    db_labels: dict[str, tuple[str, ...]]
    db_users: tuple[str, ...]
    db_names: tuple[str, ...]
    rules: tuple[Rule, ...]

    @classmethod
    def expand(cls, conditions: RoleConditions, traits: Mapping[str, Sequence[str]]) -> _Side:
        return cls(
            db_labels={k: _expand_all(v, traits) for k, v in conditions.db_labels.items()},
            db_users=_expand_all(conditions.db_users, traits),
            db_names=_expand_all(conditions.db_names, traits),
            rules=conditions.rules,
        )


@dataclass(frozen=True)
class _ResolvedRole:
    name: str
    allow: _Side
    deny: _Side
    max_session_ttl: timedelta | None
    db_labels: Mapping[str, Sequence[str]] = field(default_factory=dict)
    allow_unknown_commands: bool = False
    allow_server_commands: bool = False


def labels_match(selector: Mapping[str, Sequence[str]], labels: Mapping[str, str]) -> bool:
    """Whether a label selector matches a database's labels (empty selector: never)."""
    if not selector:
        return False
    for label, patterns in selector.items():
        if label == "*":
            if "*" not in patterns:
                return False
            continue
        actual = labels.get(label)
        if actual is None or not any(glob_match(p, actual) for p in patterns):
            return False
    return True


def _format_labels(labels: Mapping[str, str] | Mapping[str, tuple[str, ...]]) -> str:
    def show(value: str | Sequence[str]) -> str:
        if isinstance(value, str):
            return value
        return value[0] if len(value) == 1 else "[" + ", ".join(value) + "]"

    if not labels:
        return "{}"
    return "{" + ", ".join(f"{k}: {show(v)}" for k, v in sorted(labels.items())) + "}"


@dataclass(frozen=True)
class AccessDecision:
    """Whether access is allowed, and which role or rule decided it (for errors and audit)."""

    allowed: bool
    reason: str


_Field = Literal["db_users", "db_names"]
_SINGULAR: dict[_Field, str] = {"db_users": "db_user", "db_names": "db_name"}


class AccessChecker:
    """A user's roles with traits expanded: answers every RBAC question about them."""

    def __init__(self, roles: Sequence[Role], traits: Mapping[str, Sequence[str]]) -> None:
        self.role_names = tuple(role.name for role in roles)
        self._roles = tuple(
            _ResolvedRole(
                name=role.name,
                allow=_Side.expand(role.spec.allow, traits),
                deny=_Side.expand(role.spec.deny, traits),
                max_session_ttl=role.spec.options.max_session_ttl,
                db_labels=role.spec.allow.db_labels,
                allow_unknown_commands=role.spec.options.allow_unknown_commands,
                allow_server_commands=role.spec.options.allow_server_commands,
            )
            for role in roles
        )

    @classmethod
    async def for_identity(
        cls, roles: RoleService, role_names: Iterable[str], traits: Mapping[str, Sequence[str]]
    ) -> AccessChecker:
        """Resolve role names (as carried by a certificate) and build the checker."""
        resolved: list[Role] = []
        for name in role_names:
            try:
                resolved.append(await roles.get(name))
            except NotFound:
                raise AccessDenied(
                    f'role "{name}" no longer exists; ask an administrator, then log in again'
                ) from None
        return cls(resolved, traits)

    def _roles_text(self) -> str:
        return ", ".join(self.role_names) or "none"

    def check_database(self, labels: Mapping[str, str]) -> AccessDecision:
        """May the user reach a database with these labels at all."""
        for role in self._roles:
            if labels_match(role.deny.db_labels, labels):
                return AccessDecision(
                    False,
                    f'denied by role "{role.name}": deny.db_labels '
                    f"{_format_labels(role.deny.db_labels)} matches {_format_labels(labels)}",
                )
        for role in self._roles:
            if labels_match(role.allow.db_labels, labels):
                return AccessDecision(
                    True,
                    f'allowed by role "{role.name}": allow.db_labels '
                    f"{_format_labels(role.allow.db_labels)}",
                )
        return AccessDecision(
            False,
            f"no role allows a database with labels {_format_labels(labels)} "
            f"(roles: {self._roles_text()})",
        )

    def _deny_scope(self, role: _ResolvedRole, labels: Mapping[str, str]) -> bool:
        return not role.deny.db_labels or labels_match(role.deny.db_labels, labels)

    def _check_value(self, labels: Mapping[str, str], field: _Field, value: str) -> AccessDecision:
        singular = _SINGULAR[field]
        database = self.check_database(labels)
        if not database.allowed:
            return database
        if not value:
            return AccessDecision(False, f"no {singular} given")
        for role in self._roles:
            if not self._deny_scope(role, labels):
                continue
            for pattern in getattr(role.deny, field):
                if glob_match(pattern, value):
                    return AccessDecision(
                        False, f'denied by role "{role.name}": deny.{field} matches "{value}"'
                    )
        for role in self._roles:
            if not labels_match(role.allow.db_labels, labels):
                continue
            for pattern in getattr(role.allow, field):
                if glob_match(pattern, value):
                    return AccessDecision(
                        True, f'allowed by role "{role.name}": allow.{field} matches "{value}"'
                    )
        allowed = self._allowed(labels, field)
        return AccessDecision(
            False,
            f'no role allows {singular} "{value}" (roles: {self._roles_text()}; '
            f"allowed: [{', '.join(allowed)}])",
        )

    def _allowed(self, labels: Mapping[str, str], field: _Field) -> list[str]:
        if not self.check_database(labels).allowed:
            return []
        denied = [
            pattern
            for role in self._roles
            if self._deny_scope(role, labels)
            for pattern in getattr(role.deny, field)
        ]
        result: list[str] = []
        for role in self._roles:
            if not labels_match(role.allow.db_labels, labels):
                continue
            for pattern in getattr(role.allow, field):
                if pattern in result or any(glob_match(d, pattern) for d in denied):
                    continue
                result.append(pattern)
        return result

    def check_db_user(self, labels: Mapping[str, str], db_user: str) -> AccessDecision:
        """May the user connect as `db_user` to a database with these labels."""
        return self._check_value(labels, "db_users", db_user)

    def check_db_name(self, labels: Mapping[str, str], db_name: str) -> AccessDecision:
        """May the user touch logical database `db_name` in a database with these labels."""
        return self._check_value(labels, "db_names", db_name)

    def allowed_db_users(self, labels: Mapping[str, str]) -> list[str]:
        """The db_user patterns the user may pick here (for `wsh db ls`), denied ones removed."""
        return self._allowed(labels, "db_users")

    def allowed_db_names(self, labels: Mapping[str, str]) -> list[str]:
        """The db_name patterns the user may use here, denied ones removed."""
        return self._allowed(labels, "db_names")

    def allows_unknown_commands(self, labels: Mapping[str, str]) -> bool:
        """Whether a role whose db_labels match this database opts in to unknown commands."""
        return any(
            role.allow_unknown_commands and labels_match(role.db_labels, labels)
            for role in self._roles
        )

    def server_commands_grant(self, labels: Mapping[str, str]) -> str | None:
        """The role whose db_labels match this database and that grants server-wide commands."""
        for role in self._roles:
            if role.allow_server_commands and labels_match(role.db_labels, labels):
                return role.name
        return None

    def max_session_ttl(self) -> timedelta | None:
        """The smallest `max_session_ttl` of the user's roles (caps certificate TTL)."""
        ttls = [role.max_session_ttl for role in self._roles if role.max_session_ttl is not None]
        return min(ttls) if ttls else None

    def can(self, resource: str, verb: str) -> bool:
        """May the user do `verb` on `resource` (management API); deny rules win."""

        def matches(rules: Iterable[Rule]) -> bool:
            return any(
                (resource in rule.resources or "*" in rule.resources)
                and (verb in rule.verbs or "*" in rule.verbs)
                for rule in rules
            )

        if any(matches(role.deny.rules) for role in self._roles):
            return False
        return any(matches(role.allow.rules) for role in self._roles)
