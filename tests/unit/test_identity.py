"""Tests of wicket.identity: the JSON identity a certificate carries."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from wicket.errors import AccessDenied, BadParameter
from wicket.identity import (
    IDENTITY_OID,
    MAX_IDENTITY_JSON,
    DatabaseRoute,
    HostRole,
    Identity,
    IdentityKind,
    identity_from_certificate,
)
from wicket.pki.authority import CAKind, CertificateAuthority
from wicket.pki.keys import generate_private_key

ALICE = Identity(
    cluster="example",
    kind=IdentityKind.USER,
    name="alice",
    roles=("access", "docdb-dev"),
    traits={"db_users": ("*",), "db_names": ("test", "reports")},
    route=DatabaseRoute("my-docdb", "mongodb", "teleport-docdb-user", "test"),
)
LEGACY_TIME = datetime(2026, 1, 1, tzinfo=UTC)
PROXY_HOST = Identity(
    cluster="example",
    kind=IdentityKind.HOST,
    name="proxy-1",
    host_id="5f0c2c4e-host",
    host_role=HostRole.PROXY,
)


def valid_document() -> dict[str, Any]:
    """The architecture document's example, as a dict to mutate."""
    return {
        "v": 1,
        "cluster": "example",
        "kind": "user",
        "name": "alice",
        "roles": ["access"],
        "traits": {"db_users": ["*"], "db_names": ["*"]},
        "route": {"service": "my-docdb", "protocol": "mongodb", "db_user": "u", "db_name": "test"},
        "host_id": None,
        "host_role": None,
    }


@pytest.mark.parametrize("identity", [ALICE, PROXY_HOST, ALICE.with_route(None)])
def test_json_round_trip(identity: Identity) -> None:
    data = identity.to_json()
    assert Identity.from_json(data) == identity
    assert json.loads(data)["v"] == 1


def test_architecture_example_parses() -> None:
    identity = Identity.from_json(json.dumps(valid_document()).encode())
    assert identity.kind is IdentityKind.USER
    assert identity.trait("db_names") == ("*",)
    assert identity.trait("missing") == ()
    assert identity.route == DatabaseRoute("my-docdb", "mongodb", "u", "test")


def test_traits_are_immutable_and_identity_hashable() -> None:
    traits = {"db_users": ["a"]}
    identity = Identity(cluster="c", kind=IdentityKind.USER, name="n", traits=traits)  # type: ignore[arg-type]
    traits["db_users"].append("b")
    assert identity.traits["db_users"] == ("a",)
    with pytest.raises(TypeError):
        identity.traits["db_users"] = ("x",)  # type: ignore[index]
    assert hash(identity) == hash(Identity(cluster="c", kind=IdentityKind.USER, name="n"))


def test_with_route_keeps_everything_else() -> None:
    route = DatabaseRoute("other", "mongodb", None, None)
    routed = ALICE.with_route(route)
    assert routed.route == route
    assert (routed.name, routed.roles, routed.traits) == (ALICE.name, ALICE.roles, ALICE.traits)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"v": 2}, "version 2"),
        ({"v": "1"}, "version"),
        ({"v": True}, "version"),
        ({"kind": "root"}, "kind"),
        ({"name": ""}, "empty"),
        ({"name": 7}, "must be a string"),
        ({"cluster": None}, "must be a string"),
        ({"roles": "access"}, "list"),
        ({"roles": [1]}, "string"),
        ({"traits": []}, "object"),
        ({"traits": {"db_users": "*"}}, "list"),
        ({"route": "db"}, "object"),
        ({"route": {"service": "s"}}, "protocol"),
        ({"route": {"service": "s", "protocol": "m", "extra": 1}}, "unknown"),
        ({"host_role": "proxy"}, "host_id or host_role"),
        ({"extra": 1}, "unknown fields: extra"),
        ({"name": "a\nb"}, "control"),
        ({"kind": "host", "route": None}, "host_id and host_role"),
    ],
)
def test_strict_parsing(change: dict[str, Any], message: str) -> None:
    document = valid_document() | change
    with pytest.raises(BadParameter, match=message):
        Identity.from_json(json.dumps(document).encode())


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"\xff\xfe", b"[]", b"null", b'{"v": NaN}', b"[" * 100_000],
)
def test_garbage_is_bad_parameter(data: bytes) -> None:
    with pytest.raises(BadParameter):
        Identity.from_json(data)


def test_oversize_refused_both_ways() -> None:
    big = {"db_names": tuple(f"database-{i:06d}" * 10 for i in range(1000))}
    with pytest.raises(BadParameter, match="over"):
        Identity(cluster="c", kind=IdentityKind.USER, name="n", traits=big).to_json()
    document = valid_document() | {"name": "x" * (MAX_IDENTITY_JSON + 1)}
    with pytest.raises(BadParameter, match="over"):
        Identity.from_json(json.dumps(document).encode())


def test_limits_on_counts() -> None:
    with pytest.raises(BadParameter, match="more than"):
        Identity(cluster="c", kind=IdentityKind.USER, name="n", roles=tuple("r" * 300))
    document = valid_document() | {"traits": {f"t{i}": [] for i in range(100)}}
    with pytest.raises(BadParameter, match="more than 64 traits"):
        Identity.from_json(json.dumps(document).encode())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
field_names = st.sampled_from([*sorted(valid_document()), "service", "protocol", "x"])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_bytes_only_bad_parameter(data: bytes) -> None:
    with contextlib.suppress(BadParameter):
        Identity.from_json(data)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(field_names, json_values, max_size=6), st.booleans())
def test_fuzz_mutated_documents_only_bad_parameter(changes: dict[str, Any], base: bool) -> None:
    document = (valid_document() if base else {}) | changes
    data = json.dumps(document).encode()
    try:
        identity = Identity.from_json(data)
    except BadParameter:
        return
    # Whatever parses must survive its own round trip unchanged.
    assert Identity.from_json(identity.to_json()) == identity


def test_identity_from_certificate_sets_expiry() -> None:
    ca = CertificateAuthority.create(CAKind.USER, "example")
    key = generate_private_key()
    cert = ca.issue(key.public_key(), ALICE, ttl=timedelta(hours=12))
    identity = identity_from_certificate(cert)
    assert identity == ALICE
    assert identity.expires == cert.not_valid_after_utc
    raw = cert.extensions.get_extension_for_oid(IDENTITY_OID)
    assert raw.critical is False
    assert json.loads(raw.value.value)["name"] == "alice"  # type: ignore[attr-defined]


def _self_signed(extensions: list[x509.ExtensionType]) -> x509.Certificate:
    key = generate_private_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "legacy")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(LEGACY_TIME)
        .not_valid_after(LEGACY_TIME + timedelta(days=1))
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(key, hashes.SHA256())


def test_certificate_without_identity_is_access_denied() -> None:
    with pytest.raises(AccessDenied, match="carries no Wicket identity"):
        identity_from_certificate(_self_signed([]))


def test_certificate_with_malformed_identity_is_access_denied() -> None:
    cert = _self_signed([x509.UnrecognizedExtension(IDENTITY_OID, b'{"v": 9}')])
    with pytest.raises(AccessDenied, match="malformed"):
        identity_from_certificate(cert)
