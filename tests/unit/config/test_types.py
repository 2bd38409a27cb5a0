"""Config layer: HOST:PORT, Go-style durations, labels, URIs and the other value checks."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wicket.config.types import (
    HostPort,
    check_aws_account_id,
    check_aws_region,
    check_ca_pin,
    check_database_name,
    check_external_id,
    check_mongodb_uri,
    check_role_arn,
    format_duration,
    parse_duration,
    parse_labels,
)


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("proxy.example.com:3080", "proxy.example.com", 3080),
        ("127.0.0.1:3025", "127.0.0.1", 3025),
        ("0.0.0.0:1", "0.0.0.0", 1),
        ("localhost:65535", "localhost", 65535),
        ("[::1]:443", "[::1]", 443),
        ("docdb.cluster-x.us-east-1.docdb.amazonaws.com:27017", None, 27017),
    ],
)
def test_host_port_parses(text: str, host: str | None, port: int) -> None:
    parsed = HostPort.parse(text)
    assert parsed.port == port
    if host is not None:
        assert parsed.host == host
    assert str(parsed) == text


def test_host_port_bare_host_strips_ipv6_brackets() -> None:
    assert HostPort.parse("[::1]:443").bare_host == "::1"
    assert HostPort.parse("a.b:1").bare_host == "a.b"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("foo", '"foo" is not HOST:PORT'),
        (":3080", '":3080" is not HOST:PORT'),
        ("::1:443", '"::1:443" is not HOST:PORT'),
        ("host:", '"host:" is not HOST:PORT (the port must be a number)'),
        ("host:http", '"host:http" is not HOST:PORT (the port must be a number)'),
        ("host:0", '"host:0" is not HOST:PORT (the port must be 1-65535)'),
        ("host:65536", '"host:65536" is not HOST:PORT (the port must be 1-65535)'),
        (
            "https://p.example.com:3080",
            '"https://p.example.com:3080" is not HOST:PORT (leave out the scheme)',
        ),
        ("bad host:1", '"bad host:1" is not HOST:PORT (bad host name "bad host")'),
        ("[nope]:1", '"[nope]:1" is not HOST:PORT (bad host name "[nope]")'),
    ],
)
def test_host_port_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        HostPort.parse(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", timedelta(0)),
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("500ms", timedelta(milliseconds=500)),
        ("2m3s", timedelta(minutes=2, seconds=3)),
        ("1h1h", timedelta(hours=2)),
        ("250us", timedelta(microseconds=250)),
    ],
)
def test_duration_parses(text: str, value: timedelta) -> None:
    assert parse_duration(text) == value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(hours=12), "12h"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(seconds=1, milliseconds=500), "1.5s"),
        (timedelta(days=2), "48h"),
        (timedelta(seconds=-5), "-5s"),
    ],
)
def test_duration_formats(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", '"" is not a duration (write e.g. "90s", "30m", "1h30m")'),
        ("12", '"12" is not a duration (write e.g. "90s", "30m", "1h30m")'),
        ("1d", '"1d" is not a duration (write e.g. "90s", "30m", "1h30m")'),
        ("h", '"h" is not a duration (write e.g. "90s", "30m", "1h30m")'),
        ("-5m", '"-5m" is not a duration (write e.g. "90s", "30m", "1h30m")'),
        ("1h 30m", '"1h 30m" is not a duration (write e.g. "90s", "30m", "1h30m")'),
        ("99999999h", '"99999999h" is too long (at most 87600h)'),
    ],
)
def test_duration_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_duration(text)


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3650)))
def test_duration_round_trip(value: timedelta) -> None:
    assert parse_duration(format_duration(value)) == value


def test_labels() -> None:
    assert parse_labels("") == {}
    assert parse_labels("env=dev") == {"env": "dev"}
    assert parse_labels("env=dev, team = db ,x=") == {"env": "dev", "team": "db", "x": ""}
    assert parse_labels("a=b=c") == {"a": "b=c"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("env", '"env" is not KEY=VALUE'),
        ("env=dev,env=prod", 'label "env" is given twice'),
        (
            "bad key=1",
            '"bad key" is not a valid label key (letters, digits and _.:/*-, at most 63)',
        ),
        ("=v", '"" is not a valid label key (letters, digits and _.:/*-, at most 63)'),
    ],
)
def test_labels_reject(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_labels(text)


@pytest.mark.parametrize(
    "uri",
    [
        "docdb.cluster-x.us-east-1.docdb.amazonaws.com:27017",
        "mongodb://db1:27017,db2:27017/admin?replicaSet=rs0",
        "mongodb://localhost",
        "mongodb://[::1]:27017",
        "mongodb+srv://cluster0.example.com/?tls=true",
    ],
)
def test_uri_accepts(uri: str) -> None:
    assert check_mongodb_uri(uri) == uri


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("foo", '"foo" is not HOST:PORT, mongodb://HOST:PORT or mongodb+srv://HOST'),
        (
            "postgres://h:5432",
            '"postgres://h:5432": the scheme must be mongodb:// or mongodb+srv://',
        ),
        (
            "mongodb://user:pw@h:27017",
            '"mongodb://user:pw@h:27017" must not carry credentials: '
            "Wicket authenticates to the database itself",
        ),
        ("mongodb://", '"mongodb://" names no host'),
        (
            "mongodb://h:99999",
            '"mongodb://h:99999": "h:99999" is not HOST:PORT (the port must be 1-65535)',
        ),
        (
            "mongodb+srv://a.com:27017",
            '"mongodb+srv://a.com:27017": mongodb+srv:// takes one host name and no port',
        ),
        (
            "mongodb+srv://a.com,b.com",
            '"mongodb+srv://a.com,b.com": mongodb+srv:// takes one host name and no port',
        ),
    ],
)
def test_uri_rejects(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_mongodb_uri(uri)


@pytest.mark.parametrize(
    ("check", "good", "bad"),
    [
        (check_database_name, ["my-docdb", "a", "db1"], ["My-DB", "-a", "a-", "a_b", "a" * 64, ""]),
        (check_ca_pin, ["sha256:" + "0f" * 32], ["sha256:" + "0F" * 32, "sha1:00", "abc"]),
        (check_aws_region, ["us-east-1", "ap-southeast-2", "us-gov-west-1"], ["US", "east"]),
        (check_aws_account_id, ["123456789012"], ["12345", "12345678901a"]),
        (
            check_role_arn,
            ["arn:aws:iam::123456789012:role/teleport-db", "arn:aws-cn:iam::123456789012:role/a/b"],
            ["arn:aws:iam::123:role/x", "arn:aws:iam::123456789012:user/x", "role/x"],
        ),
        (check_external_id, ["ab", "my-external-id:1"], ["a", "bad id"]),
    ],
)
def test_checks(check: object, good: list[str], bad: list[str]) -> None:
    assert callable(check)
    for value in good:
        assert check(value) == value
    for value in bad:
        with pytest.raises(ValueError, match="is not"):
            check(value)
