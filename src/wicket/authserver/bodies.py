"""Auth API layer: reading request bodies (bounded JSON) and their typed fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from wicket.api.bodies import read_json_object
from wicket.errors import BadParameter

MAX_BODY_BYTES = 1024 * 1024


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object (bounded)."""
    return await read_json_object(request, MAX_BODY_BYTES)


def text(body: Mapping[str, Any], field: str, *, required: bool = True) -> str | None:
    value = body.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise BadParameter(f'"{field}" must be a non-empty string')
    return value


def strings(body: Mapping[str, Any], field: str) -> list[str]:
    value = body.get(field, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadParameter(f'"{field}" must be a list of strings')
    return value


def traits(body: Mapping[str, Any]) -> dict[str, list[str]]:
    value = body.get("traits", {})
    if not isinstance(value, dict):
        raise BadParameter('"traits" must be an object of string lists')
    traits: dict[str, list[str]] = {}
    for name, values in value.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise BadParameter(f'trait "{name}" must be a list of strings')
        traits[str(name)] = values
    return traits
