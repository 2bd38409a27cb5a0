"""One mapping between Wicket's error family and HTTP, used by the API server and client.

The server answers `{"error": {"kind": KIND, "message": MESSAGE}}` with the status
below; the client raises the matching `WicketError` with the same message, so a
user sees the auth service's words wherever the call started.
"""

from __future__ import annotations

from typing import Any

from wicket.errors import (
    AccessDenied,
    AlreadyExists,
    BadParameter,
    NotFound,
    Timeout,
    UpstreamError,
    WicketError,
)

KINDS: dict[str, tuple[type[WicketError], int]] = {
    "access_denied": (AccessDenied, 403),
    "not_found": (NotFound, 404),
    "already_exists": (AlreadyExists, 409),
    "bad_parameter": (BadParameter, 400),
    "timeout": (Timeout, 504),
    "upstream": (UpstreamError, 502),
    "internal": (WicketError, 500),
}


def error_kind(error: WicketError) -> str:
    """The API kind of an error (its most specific known class)."""
    for kind, (cls, _status) in KINDS.items():
        if cls is not WicketError and isinstance(error, cls):
            return kind
    return "internal"


def error_body(error: WicketError) -> tuple[int, dict[str, Any]]:
    """HTTP status and JSON body for an error."""
    kind = error_kind(error)
    return KINDS[kind][1], {"error": {"kind": kind, "message": str(error)}}


def error_from_body(status: int, body: Any) -> WicketError:
    """The error a client raises for a non-2xx answer."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        kind = str(body["error"].get("kind", "internal"))
        message = str(body["error"].get("message", f"HTTP {status}"))
        cls = KINDS.get(kind, (WicketError, status))[0]
        return cls(message)
    return WicketError(f"unexpected answer from the auth service (HTTP {status})")
