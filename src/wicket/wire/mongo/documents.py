"""Wire layer: the boundary to pymongo's `bson`, translating its errors into ours.

Decoding is lazy: messages keep raw document bytes, and these helpers run only
when a caller asks for a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import bson
from bson.codec_options import CodecOptions, DatetimeConversion

from wicket.errors import LocalProtocolError, RemoteProtocolError
from wicket.wire.mongo.reader import check_document

# DATETIME_AUTO: a valid BSON datetime outside Python's range decodes (as DatetimeMS)
# instead of failing, so only malformed bytes are errors.
DECODE_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    document_class=dict, datetime_conversion=DatetimeConversion.DATETIME_AUTO
)


class DuplicateFieldError(RemoteProtocolError):
    """A document repeats a field name: a server reads the first copy, a dict keeps the last."""


class _UniqueKeyDict(dict[str, Any]):
    """Decoding target that notes a repeated key (bson hides exceptions raised in here)."""

    repeated: str | None = None

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self:
            self.repeated = key
            return
        super().__setitem__(key, value)


def _find_repeated(document: dict[str, Any]) -> str | None:
    """The first repeated key anywhere in a decoded document tree, if any."""
    stack: list[Any] = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if isinstance(value, _UniqueKeyDict) and value.repeated is not None:
                return value.repeated
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return None


_UNIQUE_DECODE_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    document_class=_UniqueKeyDict, datetime_conversion=DatetimeConversion.DATETIME_AUTO
)


def decode_document(raw: bytes, what: str, *, unique_keys: bool = False) -> dict[str, Any]:
    """Decode one document a peer sent; any malformed content is a RemoteProtocolError.

    With `unique_keys`, a repeated field name at any depth raises DuplicateFieldError:
    authorization must see the same value the server acts on, and the server takes
    the first copy where a Python dict would keep the last.
    """
    try:
        document = bson.decode(raw, _UNIQUE_DECODE_OPTIONS if unique_keys else DECODE_OPTIONS)
    # bson raises InvalidBSON, but also ValueError/OverflowError/UnicodeError and
    # others on hostile input; all of them mean "the peer sent bad bytes".
    except Exception as exc:
        raise RemoteProtocolError(f"{what}: invalid BSON: {exc}") from exc
    if unique_keys and (repeated := _find_repeated(document)) is not None:
        raise DuplicateFieldError(f"{what}: field {repeated!r} appears more than once")
    return document


def encode_document(document: Mapping[str, Any] | bytes, what: str) -> bytes:
    """Encode a document we are about to send (raw bytes are checked, not re-encoded)."""
    if isinstance(document, bytes | bytearray | memoryview):
        raw = bytes(document)
        try:
            end = check_document(raw, 0, len(raw), what)
        except RemoteProtocolError as exc:
            raise LocalProtocolError(str(exc)) from exc
        if end != len(raw):
            raise LocalProtocolError(f"{what}: {len(raw) - end} bytes after the BSON document")
        return raw
    try:
        return bson.encode(document)
    except Exception as exc:
        raise LocalProtocolError(f"{what}: cannot encode as BSON: {exc}") from exc
