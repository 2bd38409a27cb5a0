"""What the proxy's web side accepts from a browser or `wsh` before it calls the auth service.

The web side calls the auth service with the proxy's own host identity, so a value
from a web request that reached an auth API path unchecked could steer that call to
another endpoint (`../users`) with the proxy's rights. Every such value is therefore
checked against its exact format first (anything else is NotFound: no such page, and
no backend call), and only then placed into a path, percent-quoted as one segment by
`auth_path`. Request bodies are rebuilt from their known fields with checked types.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from wicket.auth.invites import INVITE_TOKEN_BYTES
from wicket.errors import BadParameter, NotFound

INVITE_TOKEN = re.compile(rf"[0-9a-f]{{{2 * INVITE_TOKEN_BYTES}}}")
"""An invite token as `InviteService.create` makes it: the hex of 32 random bytes."""

MAX_USER_LENGTH = 253
MAX_PASSWORD_LENGTH = 4096
MAX_OTP_LENGTH = 16
MAX_PUBLIC_KEY_LENGTH = 16 * 1024


def invite_token(value: str) -> str:
    """The invite token of a page's path, if it has the format invites are made with."""
    if not INVITE_TOKEN.fullmatch(value):
        raise NotFound(
            "this invite link is not valid: copy the whole link the administrator sent, "
            "or ask for a new one (wctl users reset NAME)"
        )
    return value


def auth_path(prefix: str, *segments: str) -> str:
    """`prefix` + each already-checked segment, percent-quoted so it stays one segment."""
    return prefix + "".join("/" + quote(segment, safe="") for segment in segments)


def _string(
    body: dict[str, Any], field: str, limit: int, *, required: bool, empty: bool = False
) -> str | None:
    value = body.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (not value and not empty):
        raise BadParameter(f'"{field}" must be a non-empty string')
    if len(value) > limit:
        raise BadParameter(f'"{field}" is longer than {limit} characters')
    return value


def login_body(body: dict[str, Any]) -> dict[str, Any]:
    """The login request forwarded to the auth service: known fields, checked types."""
    ttl = body.get("ttl_seconds")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
        raise BadParameter('"ttl_seconds" must be a positive integer')
    checked: dict[str, Any] = {
        "user": _string(body, "user", MAX_USER_LENGTH, required=True),
        "password": _string(body, "password", MAX_PASSWORD_LENGTH, required=True, empty=True),
        "otp": _string(body, "otp", MAX_OTP_LENGTH, required=False),
        "public_key_pem": _string(body, "public_key_pem", MAX_PUBLIC_KEY_LENGTH, required=True),
    }
    if ttl is not None:
        checked["ttl_seconds"] = ttl
    return {name: value for name, value in checked.items() if value is not None}
