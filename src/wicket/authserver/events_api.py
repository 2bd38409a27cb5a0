"""The auth service's audit event endpoints (`/v1/events`), on aiohttp.

- `POST /v1/events` `{"events": [...]}`: hosts (agents, proxies) and the local admin
  send events; at most `MAX_EVENTS` per call and 64 KiB per event, all validated before
  any is stored. An event sent by a host carries that host's id as `server_id` (its
  certificate says who it is, not the body) and must be one that host may record
  (`wicket.auth.event_policy`: a db agent only its own sessions' events for databases
  it serves; nothing else). A batch with any invalid or refused event stores nothing
  and answers 400 naming each refused event (ids and types only; the auth service
  logs the same, never the bodies). Answer `{"accepted": N, "duplicates": M}`;
  resending is safe (events are idempotent by id).
- `GET /v1/events?type=&user=&session_id=&db_service=&server_id=&since=&until=&limit=&cursor=`:
  the admin, or users whose roles allow `list` on `events` (built-in `auditor`,
  `editor`). The newest `limit` matches (before `cursor`, when given), newest last,
  as a JSON list.
- `GET /v1/events/page?...` (same parameters): `{"events": [...], "next_cursor": "..."}`;
  `next_cursor` (null on the last page) continues with the older events before the page.
Accepted events are also appended to the auth service's JSON-lines log when one is
configured (`data_dir/log/events.jsonl`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from wicket.api.bodies import read_bounded
from wicket.audit.events import parse_time, validate_event
from wicket.audit.spool import append_private, encode_lines, prepare_private_directory
from wicket.auth.event_policy import HostEventPolicy, ServedDatabases
from wicket.auth.events import DEFAULT_LIMIT, MAX_LIMIT, EventPage, EventQuery, EventStore
from wicket.authserver.api import AuthAPI
from wicket.errors import AccessDenied, BadParameter
from wicket.identity import IdentityKind

log = logging.getLogger("wicket.auth")

MAX_EVENTS = 1000
MAX_EVENTS_BODY = 16 * 1024 * 1024
EVENTS_PATH = "/v1/events"
EVENTS_PAGE_PATH = "/v1/events/page"
MAX_REFUSALS_SHOWN = 5
MAX_QUERY_TEXT = 256
READ_CHUNK = 256 * 1024
QUERY_PARAMETERS = frozenset(
    {"type", "user", "session_id", "db_service", "server_id", "since", "until", "limit", "cursor"}
)


def events_log_path(data_dir: Path) -> Path:
    """The auth service's own JSON-lines copy of the audit log."""
    return Path(data_dir) / "log" / "events.jsonl"


async def _read_events_body(request: web.Request) -> list[Any]:
    """`{"events": [...]}` from the body, bounded in bytes and in count."""
    if request.content_length is not None and request.content_length > MAX_EVENTS_BODY:
        raise BadParameter("event batch is larger than 16 MiB: send smaller batches")
    raw = await read_bounded(request.content, MAX_EVENTS_BODY)
    if raw is None:
        raise BadParameter("event batch is larger than 16 MiB: send smaller batches")
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise BadParameter(f"request body is not JSON: {exc}") from exc
    events = body.get("events") if isinstance(body, dict) else None
    if not isinstance(events, list):
        raise BadParameter('request body must be {"events": [...]}')
    if len(events) > MAX_EVENTS:
        raise BadParameter(f"at most {MAX_EVENTS} events per call")
    return events


class EventsAPI:
    """Route handlers for audit events, bound to the auth API and an event store."""

    def __init__(
        self,
        api: AuthAPI,
        store: EventStore,
        *,
        jsonl_path: Path | None = None,
        policy: HostEventPolicy | None = None,
    ):
        self.api = api
        self.store = store
        self.policy = policy or HostEventPolicy(
            store, ServedDatabases(api.databases.store.backend, clock=api.databases.clock)
        )
        self.jsonl_path = jsonl_path
        if jsonl_path is not None:
            prepare_private_directory(jsonl_path.parent)

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the auth API application."""
        return [
            web.post(EVENTS_PATH, self.post_events),
            web.get(EVENTS_PATH, self.get_events),
            web.get(EVENTS_PAGE_PATH, self.get_events_page),
        ]

    async def post_events(self, request: web.Request) -> web.Response:
        """Store a batch of events sent by a host or the admin."""
        identity = self.api.identity(request)
        if identity is None or identity.kind not in {IdentityKind.HOST, IdentityKind.ADMIN}:
            raise AccessDenied("only Wicket hosts and the admin may record audit events")
        raw_events = await _read_events_body(request)
        events = [validate_event(event) for event in raw_events]
        if identity.kind is IdentityKind.HOST:
            host_id = identity.host_id or identity.name
            for event in events:
                event["server_id"] = host_id
            refused = await self.policy.refusals(host_id, identity.host_role, events)
            if refused:
                shown = "; ".join(refusal.describe() for refusal in refused[:MAX_REFUSALS_SHOWN])
                more = len(refused) - MAX_REFUSALS_SHOWN
                log.warning(
                    "refused %d of %d audit events from host %s: %s%s",
                    len(refused),
                    len(events),
                    host_id,
                    shown,
                    f" (and {more} more)" if more > 0 else "",
                )
                raise BadParameter(
                    f"audit events refused, none stored: {shown}"
                    + (f" (and {more} more)" if more > 0 else "")
                )
        result = await self.store.append(events)
        if self.jsonl_path is not None and result.accepted:
            await asyncio.to_thread(self._append_log, events)
        return web.json_response({"accepted": result.accepted, "duplicates": result.duplicates})

    def _append_log(self, events: list[dict[str, Any]]) -> None:
        assert self.jsonl_path is not None
        try:
            append_private(self.jsonl_path, encode_lines(events))
        except OSError as error:  # the backend has them; the file is a copy
            log.error("cannot append audit events to %s: %s", self.jsonl_path, error)

    async def _search(self, request: web.Request) -> EventPage:
        await self.api.require(request, "events", "list")
        query = request.rel_url.query
        for name, value in query.items():
            if len(value) > MAX_QUERY_TEXT:
                raise BadParameter(f'query parameter "{name}" is too long')
        unknown = sorted(set(query) - QUERY_PARAMETERS)
        if unknown:
            raise BadParameter(
                f"unknown query parameter {unknown[0]!r}: use {', '.join(sorted(QUERY_PARAMETERS))}"
            )
        raw_limit = query.get("limit", str(DEFAULT_LIMIT))
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise BadParameter(f'"limit" must be a whole number from 1 to {MAX_LIMIT}')
        return await self.store.search(
            EventQuery(
                type=query.get("type") or None,
                user=query.get("user") or None,
                session_id=query.get("session_id") or None,
                db_service=query.get("db_service") or None,
                server_id=query.get("server_id") or None,
                since=parse_time(query["since"]) if query.get("since") else None,
                until=parse_time(query["until"]) if query.get("until") else None,
                limit=int(raw_limit),
                cursor=query.get("cursor") or None,
            )
        )

    async def get_events(self, request: web.Request) -> web.Response:
        """Search events (admin, auditor, editor): a list, newest last."""
        return await _json_off_loop((await self._search(request)).events)

    async def get_events_page(self, request: web.Request) -> web.Response:
        """Search events: one page and the cursor to the older page before it."""
        page = await self._search(request)
        return await _json_off_loop({"events": page.events, "next_cursor": page.next_cursor})


async def _json_off_loop(data: object) -> web.Response:
    """A JSON answer encoded in a thread: up to 10,000 events must not stall the sessions."""
    body = await asyncio.to_thread(json.dumps, data)
    return web.Response(text=body, content_type="application/json")


def add_event_routes(
    app: web.Application,
    api: AuthAPI,
    store: EventStore,
    *,
    jsonl_path: Path | None = None,
) -> EventsAPI:
    """Register `/v1/events` on the auth API application (once; before it starts)."""
    events = EventsAPI(api, store, jsonl_path=jsonl_path)
    for resource in app.router.resources():
        if resource.canonical == EVENTS_PATH:
            return events  # already registered
    app.add_routes(events.routes())
    return events
