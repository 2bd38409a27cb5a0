"""Client layer: how `wctl` and `wsh` print tables, JSON, YAML, times and durations.

Tables follow tsh's plain layout (header, a dashed rule per column, two spaces
between columns, no trailing blanks), so the guide's sample outputs line up and
scripts can split on whitespace. It is plain text on purpose: no colours, no
wrapping at the terminal's width (a long URI stays on one line).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

import yaml

MAX_CELL = 4096  # a cell longer than this is cut (with an ellipsis) rather than printed whole


class OutputFormat(Enum):
    """The `--format` values the CLIs accept."""

    TEXT = "text"
    JSON = "json"
    YAML = "yaml"


FORMAT_CHOICES = tuple(member.value for member in OutputFormat)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A tsh-style table: header line, dashed rule, one line per row (ends with a newline)."""
    cells = [[_cell(value) for value in row] for row in rows]
    for row in cells:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells for {len(headers)} columns")
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [max(width, len(value)) for width, value in zip(widths, row, strict=True)]
    lines = [
        _line(list(headers), widths),
        _line(["-" * width for width in widths], widths),
        *(_line(row, widths) for row in cells),
    ]
    return "\n".join(lines) + "\n"


def _line(values: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(
        value.ljust(width) for value, width in zip(values, widths, strict=True)
    ).rstrip()


def render_json(data: Any) -> str:
    """Indented JSON with a final newline."""
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def render_yaml(data: Any) -> str:
    """Block-style YAML in the given key order (a list becomes `---` separated documents)."""
    if isinstance(data, list):
        if not data:
            return ""
        return "---\n".join(yaml.safe_dump(item, sort_keys=False) for item in data)
    return yaml.safe_dump(data, sort_keys=False)


def render(data: Any, output: OutputFormat) -> str:
    """JSON or YAML of plain data (text output is each command's own)."""
    if output is OutputFormat.JSON:
        return render_json(data)
    if output is OutputFormat.YAML:
        return render_yaml(data)
    raise ValueError("text output is rendered by the command")


def labels_text(labels: Mapping[str, object]) -> str:
    """Labels as sorted `k=v` pairs joined by commas."""
    return ",".join(f"{key}={labels[key]}" for key in sorted(labels))


def go_duration(value: timedelta) -> str:
    """A duration the way tsh prints one: `12h0m0s`, `59m59s`, `5s`."""
    seconds = max(0, int(value.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def human_duration(value: timedelta) -> str:
    """A duration in words for messages: `30 minutes`, `1 hour`, `2 hours 30 minutes`."""
    seconds = max(0, round(value.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    for amount, unit in ((hours, "hour"), (minutes, "minute"), (secs, "second")):
        if amount:
            parts.append(f"{amount} {unit}{'' if amount == 1 else 's'}")
    return " ".join(parts) or "0 seconds"


def local_time(moment: datetime) -> str:
    """A moment in the local time zone, as tsh shows `Valid until`."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z")


def parse_time(text: str) -> datetime:
    """An ISO 8601 time from the API (`...Z` accepted)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
