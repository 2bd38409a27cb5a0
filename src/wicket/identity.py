"""Certificate identity (PKI layer): who a Wicket certificate speaks for.

Every Wicket certificate carries one non-critical X.509 extension, `IDENTITY_OID`,
whose value is the UTF-8 JSON form of an `Identity` (docs/architecture.md,
"Certificate identity"). The JSON is the single source of truth for roles,
traits and the database route; the subject name is only a human-readable label.

Parsing is strict: an unknown version, an unknown key, a wrong type or an
oversized document is a `BadParameter`, never a silently partial identity.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from types import MappingProxyType
from typing import Any, TypeVar

from cryptography import x509

from wicket.errors import AccessDenied, BadParameter

IDENTITY_OID = x509.ObjectIdentifier("2.25.271946853429371925446040734215106094681")

IDENTITY_VERSION = 1
MAX_IDENTITY_JSON = 64 * 1024
MAX_NAME_LENGTH = 1024
MAX_ROLES = 256
MAX_TRAITS = 64
MAX_TRAIT_VALUES = 1024

_TOP_KEYS = frozenset(
    {"v", "cluster", "kind", "name", "roles", "traits", "route", "host_id", "host_role"}
)
_ROUTE_KEYS = frozenset({"service", "protocol", "db_user", "db_name"})
_E = TypeVar("_E", bound=Enum)


class IdentityKind(Enum):
    """Which kind of principal a certificate names; decides where it may be used."""

    USER = "user"
    HOST = "host"
    ADMIN = "admin"


class HostRole(Enum):
    """The service a host certificate was issued for."""

    AUTH = "auth"
    PROXY = "proxy"
    DB = "db"


def _check_text(value: object, what: str, *, optional: bool = False) -> str | None:
    """Accept a non-empty string of bounded length without control characters."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise BadParameter(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise BadParameter(f"{what} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise BadParameter(f"{what} is longer than {MAX_NAME_LENGTH} characters")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise BadParameter(f"{what} contains control characters")
    return value


def _require_text(value: object, what: str) -> str:
    """Like `_check_text`, for a required value."""
    text = _check_text(value, what)
    assert text is not None
    return text


def _check_list(value: object, what: str, limit: int) -> tuple[str, ...]:
    """Accept a bounded list (or tuple) of strings."""
    if not isinstance(value, list | tuple):
        raise BadParameter(f"{what} must be a list of strings, not {type(value).__name__}")
    if len(value) > limit:
        raise BadParameter(f"{what} has more than {limit} entries")
    return tuple(_require_text(item, f"an entry of {what}") for item in value)


@dataclass(frozen=True)
class DatabaseRoute:
    """The one database a certificate was issued for (`wsh db login`)."""

    service: str
    protocol: str
    db_user: str | None = None
    db_name: str | None = None

    def __post_init__(self) -> None:
        _check_text(self.service, "route service")
        _check_text(self.protocol, "route protocol")
        _check_text(self.db_user, "route db_user", optional=True)
        _check_text(self.db_name, "route db_name", optional=True)

    def to_dict(self) -> dict[str, str | None]:
        """The JSON object form used inside the identity extension."""
        return {
            "service": self.service,
            "protocol": self.protocol,
            "db_user": self.db_user,
            "db_name": self.db_name,
        }

    @classmethod
    def from_dict(cls, data: object) -> DatabaseRoute:
        """Parse the JSON object form strictly."""
        if not isinstance(data, dict):
            raise BadParameter(f"identity route must be an object, not {type(data).__name__}")
        unknown = set(data) - _ROUTE_KEYS
        if unknown:
            raise BadParameter(f"identity route has unknown fields: {', '.join(sorted(unknown))}")
        return cls(
            service=_require_text(data.get("service"), "route service"),
            protocol=_require_text(data.get("protocol"), "route protocol"),
            db_user=_check_text(data.get("db_user"), "route db_user", optional=True),
            db_name=_check_text(data.get("db_name"), "route db_name", optional=True),
        )


def _freeze_traits(traits: Mapping[str, Any]) -> Mapping[str, tuple[str, ...]]:
    """Copy traits into a read-only mapping of tuples, checking every entry."""
    if not isinstance(traits, Mapping):
        raise BadParameter(f"identity traits must be an object, not {type(traits).__name__}")
    if len(traits) > MAX_TRAITS:
        raise BadParameter(f"identity has more than {MAX_TRAITS} traits")
    frozen: dict[str, tuple[str, ...]] = {}
    for key in sorted(traits, key=str):
        name = _require_text(key, "a trait name")
        frozen[name] = _check_list(traits[key], f"trait {name!r}", MAX_TRAIT_VALUES)
    return MappingProxyType(frozen)


@dataclass(frozen=True)
class Identity:
    """A principal as its certificate states it: cluster, kind, name, roles, traits, route."""

    cluster: str
    kind: IdentityKind
    name: str
    roles: tuple[str, ...] = ()
    traits: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    route: DatabaseRoute | None = None
    host_id: str | None = None
    host_role: HostRole | None = None
    # Filled from the certificate's notAfter when read from one; never encoded.
    expires: datetime | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _check_text(self.cluster, "identity cluster")
        _check_text(self.name, "identity name")
        if not isinstance(self.kind, IdentityKind):
            raise BadParameter(f"identity kind must be an IdentityKind, not {self.kind!r}")
        object.__setattr__(self, "roles", _check_list(self.roles, "identity roles", MAX_ROLES))
        object.__setattr__(self, "traits", _freeze_traits(self.traits))
        if self.route is not None and not isinstance(self.route, DatabaseRoute):
            raise BadParameter("identity route must be a DatabaseRoute")
        _check_text(self.host_id, "identity host_id", optional=True)
        if self.host_role is not None and not isinstance(self.host_role, HostRole):
            raise BadParameter(f"identity host_role must be a HostRole, not {self.host_role!r}")
        if self.kind is IdentityKind.HOST:
            if self.host_id is None or self.host_role is None:
                raise BadParameter("a host identity needs host_id and host_role")
        elif self.host_role is not None or self.host_id is not None:
            raise BadParameter(f"a {self.kind.value} identity cannot have host_id or host_role")
        if self.kind is IdentityKind.HOST and self.route is not None:
            raise BadParameter("a host identity cannot carry a database route")

    @property
    def common_name(self) -> str:
        """The subject CN a certificate for this identity gets (host id for hosts)."""
        if self.kind is IdentityKind.HOST:
            assert self.host_id is not None
            return self.host_id
        return self.name

    def trait(self, name: str) -> tuple[str, ...]:
        """The values of one trait, empty when the identity does not have it."""
        return self.traits.get(name, ())

    def with_route(self, route: DatabaseRoute | None) -> Identity:
        """The same identity bound to one database (or unbound with None)."""
        return replace(self, route=route)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object form (docs/architecture.md, "Certificate identity")."""
        return {
            "v": IDENTITY_VERSION,
            "cluster": self.cluster,
            "kind": self.kind.value,
            "name": self.name,
            "roles": list(self.roles),
            "traits": {key: list(values) for key, values in self.traits.items()},
            "route": self.route.to_dict() if self.route is not None else None,
            "host_id": self.host_id,
            "host_role": self.host_role.value if self.host_role is not None else None,
        }

    def to_json(self) -> bytes:
        """UTF-8 JSON for the certificate extension; refuses to exceed the parse limit."""
        data = json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
        if len(data) > MAX_IDENTITY_JSON:
            raise BadParameter(f"identity JSON is {len(data)} bytes, over {MAX_IDENTITY_JSON}")
        return data

    @classmethod
    def from_dict(cls, data: object) -> Identity:
        """Parse the JSON object form strictly (version 1 only)."""
        if not isinstance(data, dict):
            raise BadParameter(f"identity must be a JSON object, not {type(data).__name__}")
        version = data.get("v")
        if type(version) is not int or version != IDENTITY_VERSION:
            raise BadParameter(f"identity version {version!r} is not supported (want 1)")
        unknown = set(data) - _TOP_KEYS
        if unknown:
            raise BadParameter(f"identity has unknown fields: {', '.join(sorted(unknown))}")
        kind = _enum_value(IdentityKind, data.get("kind"), "identity kind")
        host_role_raw = data.get("host_role")
        host_role = (
            None if host_role_raw is None else _enum_value(HostRole, host_role_raw, "host_role")
        )
        route_raw = data.get("route")
        route = None if route_raw is None else DatabaseRoute.from_dict(route_raw)
        traits = data.get("traits", {})
        if not isinstance(traits, dict):
            raise BadParameter(f"identity traits must be an object, not {type(traits).__name__}")
        return cls(
            cluster=_require_text(data.get("cluster"), "identity cluster"),
            kind=kind,
            name=_require_text(data.get("name"), "identity name"),
            roles=_check_list(data.get("roles", []), "identity roles", MAX_ROLES),
            traits=traits,
            route=route,
            host_id=_check_text(data.get("host_id"), "identity host_id", optional=True),
            host_role=host_role,
        )

    @classmethod
    def from_json(cls, data: bytes) -> Identity:
        """Parse the extension's UTF-8 JSON; anything malformed is a BadParameter."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise BadParameter(f"identity JSON must be bytes, not {type(data).__name__}")
        if len(data) > MAX_IDENTITY_JSON:
            raise BadParameter(f"identity JSON is {len(data)} bytes, over {MAX_IDENTITY_JSON}")
        try:
            text = bytes(data).decode("utf-8")
            parsed = json.loads(text, parse_constant=_refuse_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise BadParameter(f"identity is not valid UTF-8 JSON: {exc}") from exc
        return cls.from_dict(parsed)


def _refuse_constant(name: str) -> None:
    """Reject NaN and Infinity, which are not JSON."""
    raise ValueError(f"{name} is not allowed")


def _enum_value(enum: type[_E], value: object, what: str) -> _E:
    """Map a JSON string onto an Enum member, naming the allowed values on failure."""
    if isinstance(value, str):
        for member in enum:
            if member.value == value:
                return member
    allowed = ", ".join(str(member.value) for member in enum)
    raise BadParameter(f"{what} {value!r} is not one of: {allowed}")


def identity_from_certificate(cert: x509.Certificate) -> Identity:
    """Read the identity extension of a certificate (not verifying it: see pki.authority)."""
    try:
        extension = cert.extensions.get_extension_for_oid(IDENTITY_OID)
    except x509.ExtensionNotFound:
        raise AccessDenied(
            f"certificate {cert.subject.rfc4514_string()!r} carries no Wicket identity; "
            "log in again to get a Wicket certificate"
        ) from None
    except ValueError as exc:  # duplicate or malformed extensions
        raise AccessDenied(f"certificate extensions are malformed: {exc}") from exc
    value = extension.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise AccessDenied("certificate identity extension has an unexpected form")
    try:
        identity = Identity.from_json(value.value)
    except BadParameter as exc:
        raise AccessDenied(f"certificate identity is malformed: {exc}") from exc
    return replace(identity, expires=cert.not_valid_after_utc)
