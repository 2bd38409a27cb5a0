"""Errors a localdocdb command answers with, as MongoDB names and numbers them.

A handler raises `CommandError`; the server turns it into `{ok: 0, errmsg, code,
codeName}` in the client's reply format. Codes follow MongoDB's error_codes.yml.
"""

from __future__ import annotations

from typing import Any


class CommandError(Exception):
    """A command failed with a MongoDB error code."""

    def __init__(self, code: int, code_name: str, errmsg: str, **extra: Any) -> None:
        super().__init__(errmsg)
        self.code = code
        self.code_name = code_name
        self.errmsg = errmsg
        self.extra = extra

    def to_document(self) -> dict[str, Any]:
        """The reply body MongoDB sends for this error."""
        doc: dict[str, Any] = {"ok": 0.0, "errmsg": self.errmsg, "code": self.code}
        doc["codeName"] = self.code_name
        doc.update(self.extra)
        return doc


def bad_value(errmsg: str) -> CommandError:
    """Code 2: a value in the command is not acceptable."""
    return CommandError(2, "BadValue", errmsg)


def failed_to_parse(errmsg: str) -> CommandError:
    """Code 9: the command's shape is wrong."""
    return CommandError(9, "FailedToParse", errmsg)


def type_mismatch(errmsg: str) -> CommandError:
    """Code 14: a field has the wrong BSON type."""
    return CommandError(14, "TypeMismatch", errmsg)


def unauthorized(errmsg: str) -> CommandError:
    """Code 13: the authenticated users lack the privilege."""
    return CommandError(13, "Unauthorized", errmsg)


def authentication_failed(errmsg: str = "Authentication failed.") -> CommandError:
    """Code 18: a SASL conversation or X.509 login failed."""
    return CommandError(18, "AuthenticationFailed", errmsg)


def namespace_not_found(errmsg: str) -> CommandError:
    """Code 26: the collection or database does not exist."""
    return CommandError(26, "NamespaceNotFound", errmsg)


def namespace_exists(errmsg: str) -> CommandError:
    """Code 48: the collection exists already."""
    return CommandError(48, "NamespaceExists", errmsg)


def cursor_not_found(cursor_id: int) -> CommandError:
    """Code 43: the cursor id is unknown (or belongs to another user)."""
    return CommandError(43, "CursorNotFound", f"cursor id {cursor_id} not found")


def command_not_found(name: str) -> CommandError:
    """Code 59: MongoDB's answer to a command it does not know."""
    return CommandError(59, "CommandNotFound", f"no such command: '{name}'")


def invalid_namespace(errmsg: str) -> CommandError:
    """Code 73: the database or collection name is not valid."""
    return CommandError(73, "InvalidNamespace", errmsg)


def duplicate_key(errmsg: str) -> CommandError:
    """Code 11000: a unique index refused the write."""
    return CommandError(11000, "DuplicateKey", errmsg)
