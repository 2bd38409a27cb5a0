"""Auth service domain layer: Go-style durations (`8h`, `1h30m`, `90s`) in YAML resources."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d{1,9})(h|m|s)")
_UNITS = {"h": 3600, "m": 60, "s": 1}
MAX_DURATION = timedelta(days=366)


def parse_duration(text: str) -> timedelta:
    """Parse `8h`, `30m`, `1h30m15s` as the guide and Teleport's YAML write durations."""
    value = text.strip()
    if not value or len(value) > 32:
        raise ValueError(f"invalid duration {text!r}: use a value like 8h, 30m or 1h30m")
    position = 0
    seconds = 0
    for match in _PART.finditer(value):
        if match.start() != position:
            break
        seconds += int(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(value):
        raise ValueError(f"invalid duration {text!r}: use a value like 8h, 30m or 1h30m")
    result = timedelta(seconds=seconds)
    if result > MAX_DURATION:
        raise ValueError(f"duration {text!r} is too long (at most {format_duration(MAX_DURATION)})")
    return result


def format_duration(value: timedelta) -> str:
    """The shortest `parse_duration` spelling of `value` (whole seconds)."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts)
