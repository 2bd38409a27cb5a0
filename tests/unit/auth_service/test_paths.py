"""Path parameters of the auth API: every one has a format, checked before any handler."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.client.harness import Cluster, start_cluster, stop_cluster

from wicket.authserver.paths import PATH_FORMATS, check_path_parameters, undeclared_parameters
from wicket.errors import NotFound, WicketError


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("user", "bob"),
        ("role", "docdb-dev"),
        ("db", "my-docdb"),
        ("invite", "ab" * 32),
        ("token_id", "0123abcd"),
        ("lock_id", "3f1c0d7e-2a55-4b9e-9a39-1d2f6f9f0a01"),
    ],
)
def test_well_formed_values_pass(name: str, value: str) -> None:
    check_path_parameters({name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("user", ".."),
        ("user", "../status"),
        ("user", "a" * 65),
        ("role", "-x"),
        ("role", "x\n"),
        ("db", "a/b"),
        ("invite", "../../v1/status"),
        ("invite", "AB" * 32),
        ("token_id", ".."[:1]),
        ("lock_id", "not-a-uuid"),
        ("lock_id", "3F1C0D7E-2A55-4B9E-9A39-1D2F6F9F0A01"),
        ("user", "bøb"),
    ],
)
def test_anything_else_is_not_found_with_the_expected_format(name: str, value: str) -> None:
    with pytest.raises(NotFound) as refused:
        check_path_parameters({name: value})
    assert PATH_FORMATS[name].expected in str(refused.value)
    assert len(str(refused.value)) < 300  # an overlong value is not echoed whole


def test_a_parameter_without_a_format_is_a_server_bug() -> None:
    with pytest.raises(WicketError, match="no format"):
        check_path_parameters({"name": "bob"})
    assert undeclared_parameters(["/v1/users/{user}", "/v1/x/{id}", "/v1/y/{name:.*}"]) == [
        "/v1/x/{id}",
        "/v1/y/{name:.*}",
    ]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    started = start_cluster(tmp_path / "data")
    try:
        yield started
    finally:
        stop_cluster(started)


def test_every_route_of_the_running_auth_service_is_declared(cluster: Cluster) -> None:
    assert cluster.auth is not None
    app = cluster.auth.runner.app
    patterns = [str(item.get_info().get("formatter", "")) for item in app.router.resources()]
    assert "/v1/locks/{lock_id}" in patterns and "/v1/users/{user}" in patterns
    assert undeclared_parameters(patterns) == []
