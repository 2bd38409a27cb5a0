"""Client layer: table, JSON/YAML, duration and time rendering."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from wicket.client.output import (
    MAX_CELL,
    OutputFormat,
    go_duration,
    human_duration,
    labels_text,
    local_time,
    parse_time,
    render,
    render_table,
)


def test_table_has_tsh_layout() -> None:
    text = render_table(
        ("Name", "Description", "Labels"), [("my-docdb", "", "env=dev"), ("x", "long one", "")]
    )
    assert text == (
        "Name      Description  Labels\n"
        "--------  -----------  -------\n"
        "my-docdb               env=dev\n"
        "x         long one\n"
    )


def test_table_without_rows_and_odd_cells() -> None:
    assert render_table(("A", "Bee"), []) == "A  Bee\n-  ---\n"
    text = render_table(("A",), [("line\nbreak",), (None,), ("x" * (MAX_CELL + 10),)])
    lines = text.splitlines()
    assert lines[2] == "line break"
    assert lines[3] == ""
    assert len(lines[4]) == MAX_CELL and lines[4].endswith("...")
    with pytest.raises(ValueError, match="2 cells for 1 columns"):
        render_table(("A",), [("a", "b")])


def test_json_and_yaml_round_trip() -> None:
    data = [{"b": 1, "a": ["x"]}, {"c": None}]
    assert json.loads(render(data, OutputFormat.JSON)) == data
    assert list(yaml.safe_load_all(render(data, OutputFormat.YAML))) == data
    assert render([], OutputFormat.YAML) == ""
    assert yaml.safe_load(render({"k": "v"}, OutputFormat.YAML)) == {"k": "v"}
    assert list(json.loads(render({"z": 1, "a": 2}, OutputFormat.JSON))) == ["z", "a"]
    assert render({"z": 1, "a": 2}, OutputFormat.YAML) == "z: 1\na: 2\n"
    with pytest.raises(ValueError):
        render({}, OutputFormat.TEXT)


@pytest.mark.parametrize(
    ("value", "go", "human"),
    [
        (timedelta(hours=12), "12h0m0s", "12 hours"),
        (timedelta(minutes=59, seconds=59), "59m59s", "59 minutes 59 seconds"),
        (timedelta(seconds=5), "5s", "5 seconds"),
        (timedelta(hours=1, minutes=1), "1h1m0s", "1 hour 1 minute"),
        (timedelta(seconds=-3), "0s", "0 seconds"),
    ],
)
def test_durations(value: timedelta, go: str, human: str) -> None:
    assert go_duration(value) == go
    assert human_duration(value) == human


def test_labels_and_times() -> None:
    assert labels_text({"z": "1", "env": "dev"}) == "env=dev,z=1"
    assert labels_text({}) == ""
    moment = parse_time("2026-03-01T10:00:00Z")
    assert moment == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_time("2026-03-01T10:00:00+00:00") == moment
    shown = local_time(moment)
    assert shown.count(":") == 2 and len(shown.split()) >= 3
