"""Auth API layer: the format of every path parameter, checked before any handler runs.

A path parameter is caller input that ends up in backend keys and error messages, so
each one is named for what it holds (`{user}`, `{role}`, `{db}`, `{invite}`,
`{token_id}`, `{lock_id}`) and that name selects its format here. The API's middleware
checks every parameter of the matched route against this table before the handler (and
so before any backend call); a value that does not fit is a 404 saying what was
expected. A route with a parameter missing from the table is refused as a server bug,
so a new route cannot silently skip the check.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from wicket.auth.databases import DATABASE_NAME_RE
from wicket.auth.invites import INVITE_TOKEN_BYTES
from wicket.auth.roles import NAME_RE
from wicket.errors import NotFound, WicketError

MAX_SHOWN = 64
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
INVITE_RE = re.compile(rf"^[0-9a-f]{{{INVITE_TOKEN_BYTES * 2}}}$")
# A join token is named by its value (16-256 of these) or a hex prefix of its id.
TOKEN_ID_RE = re.compile(r"^[A-Za-z0-9._-]{4,256}$")


@dataclass(frozen=True)
class PathFormat:
    """What one kind of path parameter must look like, and how to say so."""

    what: str
    pattern: re.Pattern[str]
    expected: str

    def check(self, value: str) -> str:
        """The value, or NotFound naming the expected format (the value shown safely)."""
        if self.pattern.match(value) and value.isascii() and "\n" not in value:
            return value
        shown = value if len(value) <= MAX_SHOWN else value[:MAX_SHOWN] + "..."
        raise NotFound(f"no {self.what} {shown!r}: {self.expected}")


PATH_FORMATS: dict[str, PathFormat] = {
    "user": PathFormat("user", NAME_RE, "user names are 1-64 letters, digits, '.', '_', '@', '-'"),
    "role": PathFormat("role", NAME_RE, "role names are 1-64 letters, digits, '.', '_', '@', '-'"),
    "db": PathFormat(
        "database", DATABASE_NAME_RE, "database names are 1-63 letters, digits, '.', '_', '-'"
    ),
    "invite": PathFormat(
        "invite", INVITE_RE, "an invite token is the 64 hex digits at the end of the invite URL"
    ),
    "token_id": PathFormat(
        "join token", TOKEN_ID_RE, "give a join token's id (wctl tokens ls) or its value"
    ),
    "lock_id": PathFormat("lock", UUID_RE, "a lock id is a UUID (wctl locks ls lists them)"),
}


def check_path_parameters(match_info: Mapping[str, str]) -> None:
    """Raise NotFound for the first parameter that does not fit its format."""
    for name, value in match_info.items():
        path_format = PATH_FORMATS.get(name)
        if path_format is None:
            raise WicketError(
                f"route parameter {{{name}}} has no format in wicket.authserver.paths"
            )
        path_format.check(value)


def undeclared_parameters(formatters: list[str]) -> list[str]:
    """The route patterns among `formatters` with a parameter this table does not know."""
    found: list[str] = []
    for pattern in formatters:
        names = re.findall(r"\{([^}:]+)(?::[^}]*)?\}", pattern)
        if any(name not in PATH_FORMATS for name in names):
            found.append(pattern)
    return found
