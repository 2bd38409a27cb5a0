"""CLI layer: `wctl events ls`, the audit log as the auth service stores it.

Registered on `wctl` by `cli.add_command(events_group)`. It calls the auth API as the
identity `wctl`'s root group resolved (the object on the click context with a
`call(work)` method); run on its own, it resolves the identity the same documented
way (`wicket.client.identity_files`). `--since` takes a duration back from now
(`90s`, `15m`, `1h`, `1h30m`, `2d`) or an ISO 8601 time.

Pages: the answer is the newest `--limit` matches, oldest first. When older matches
remain, the cursor to them is printed on stderr (stdout stays the events, in every
format); `--cursor` continues from it with the same filters, and `--all` follows the
cursors itself (then `--limit` is the page size) and prints everything, oldest first.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

import click

from wicket.api.client import AuthClient
from wicket.audit.events import format_time, parse_time
from wicket.auth.durations import parse_duration
from wicket.client.cli_support import ErrorReportingGroup, run
from wicket.client.identity_files import resolve_identity
from wicket.client.output import FORMAT_CHOICES, OutputFormat, render, render_table
from wicket.client.profile import ProfileStore, wsh_home
from wicket.errors import BadParameter

T = TypeVar("T")
DAYS_RE = re.compile(r"^(\d{1,3})d(.*)$")
MAX_DETAIL = 120


class CallsAuth(Protocol):
    """What wctl's root group stores on the context: a way to call the auth API."""

    def call(self, work: Callable[[AuthClient], Awaitable[T]]) -> T:
        """Run `work` with an API client for the resolved identity."""


class EventsGroup(ErrorReportingGroup):
    """Errors are `wctl: ...`."""

    program = "wctl"


def _call(work: Callable[[AuthClient], Awaitable[T]]) -> T:
    """Call the auth API as wctl's identity."""
    context = click.get_current_context()
    owner = context.find_root().obj
    if owner is not None and callable(getattr(owner, "call", None)):
        session: CallsAuth = owner
        return session.call(work)
    identity = resolve_identity(identity_dir=None, config_file=None, store=ProfileStore(wsh_home()))

    async def main() -> T:
        async with identity.auth_client() as client:
            return await work(client)

    return run(main())


def parse_since(text: str, now: datetime) -> datetime:
    """`1h`, `30m`, `2d`, `1d12h` back from `now`, or an ISO 8601 time."""
    value = text.strip()
    if not value:
        raise BadParameter("--since needs a duration like 1h or a time like 2026-11-24T08:00:00Z")
    match = DAYS_RE.match(value)
    try:
        if match:
            rest = match.group(2)
            delta = timedelta(days=int(match.group(1))) + (
                parse_duration(rest) if rest else timedelta(0)
            )
            return now - delta
        if value[0].isdigit() and value[-1] in "hms":
            return now - parse_duration(value)
    except ValueError as error:
        raise BadParameter(str(error)) from None
    return parse_time(value)


def _database(event: dict[str, Any]) -> str:
    service = event.get("db_service") or ""
    name = event.get("db_name") or ""
    if service and name:
        return f"{service}/{name}"
    return str(service or name)


def _detail(event: dict[str, Any]) -> str:
    """What happened, in a few words: the command, the error, or the session's totals."""
    kind = str(event.get("type", ""))
    error = event.get("error")
    if kind.startswith("db.session.query"):
        text = str(event.get("command") or "")
        namespaces = event.get("namespaces") or []
        if isinstance(namespaces, list) and namespaces:
            text += " " + ",".join(str(name) for name in namespaces)
        if error:
            text += f": {error}"
    elif kind == "db.session.end":
        text = (
            f"{event.get('duration_seconds', 0)}s, "
            f"{event.get('messages_from_client', 0)} messages in, "
            f"{event.get('bytes_from_client', 0)}/{event.get('bytes_from_server', 0)} bytes"
        )
    elif kind == "user.locked":
        text = f"locked until {event.get('locked_until')}"
    elif "success" in event:
        text = "success" if event.get("success") else f"failed: {error or 'unknown reason'}"
    else:
        text = str(error or "")
    text = text.replace("\n", " ")
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


def render_events_text(events: list[dict[str, Any]]) -> str:
    """One line per event: time, type, user, session, db user, database, command or error."""
    rows = [
        (
            event.get("time", ""),
            event.get("type", ""),
            event.get("user") or "-",
            event.get("session_id") or "-",
            event.get("db_user") or "-",
            _database(event) or "-",
            _detail(event),
        )
        for event in events
    ]
    return render_table(("Time", "Type", "User", "Session", "DB user", "Database", "Details"), rows)


def _getter(path: str) -> Callable[[AuthClient], Awaitable[Any]]:
    async def get(client: AuthClient) -> Any:
        return await client.get(path)

    return get


def _pages(
    query: dict[str, str], cursor: str | None, follow: bool
) -> tuple[list[dict[str, Any]], str | None]:
    """The events of one page (or, following cursors, of all), oldest first; the next cursor."""
    pages: list[list[dict[str, Any]]] = []
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        path = f"/v1/events/page?{urlencode(params)}"
        answer = _call(_getter(path))
        events = answer.get("events") if isinstance(answer, dict) else None
        if not isinstance(events, list):
            raise BadParameter("the auth service answered an unexpected event page")
        pages.append(events)
        next_cursor = answer.get("next_cursor")
        cursor = next_cursor if isinstance(next_cursor, str) and next_cursor else None
        if cursor is None or not follow:
            break
    pages.reverse()
    return [event for page in pages for event in page], cursor


@click.group("events", cls=EventsGroup)
def events_group() -> None:
    """Read the audit log."""


@events_group.command("ls")
@click.option("--type", "event_type", help="Event type, or a family like db.session.*.")
@click.option("--user", help="Only this user's events.")
@click.option("--session", "session_id", help="Only the events of this session id.")
@click.option("--db", "db_service", help="Only the events of this database (service name).")
@click.option("--since", help="Start: a duration back from now (1h, 2d) or an ISO time.")
@click.option("--until", help="End (exclusive): a duration back from now or an ISO time.")
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=1000,
    show_default=True,
    help="At most this many (the newest); with --all, the page size.",
)
@click.option("--cursor", help="Continue with the events before a previous answer's page.")
@click.option(
    "--all", "follow", is_flag=True, help="Follow the cursors: every match, oldest first."
)
@click.option(
    "--format",
    "output",
    type=click.Choice(FORMAT_CHOICES),
    default="text",
    show_default=True,
    help="Output format.",
)
def events_ls(
    event_type: str | None,
    user: str | None,
    session_id: str | None,
    db_service: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    cursor: str | None,
    follow: bool,
    output: str,
) -> None:
    """List audit events (the newest --limit), oldest first."""
    now = datetime.now(UTC)
    query: dict[str, str] = {"limit": str(limit)}
    if event_type:
        query["type"] = event_type
    if user:
        query["user"] = user
    if session_id:
        query["session_id"] = session_id
    if db_service:
        query["db_service"] = db_service
    if since:
        query["since"] = format_time(parse_since(since, now))
    if until:
        query["until"] = format_time(parse_since(until, now))
    answer, next_cursor = _pages(query, cursor, follow)
    if output != OutputFormat.TEXT.value:
        click.echo(render(answer, OutputFormat(output)), nl=False)
    else:
        click.echo(render_events_text(answer), nl=False)
    if next_cursor is not None:
        click.echo(f"more events before these: add --cursor {next_cursor}", err=True)
