"""Agent layer, MongoDB engine: `listDatabases` replies narrowed to what the roles allow (pure).

`listDatabases` names every database on the server, but `mongosh`'s `show dbs` and
pymongo's `list_database_names()` are everyday calls, so refusing it would break
users for nothing. Without the server-wide grant, the agent lets the request through
and rewrites only its reply: the databases `db_names` does not allow are dropped and
`totalSize`/`totalSizeMb` are summed again over the ones left (the server's total
would tell how much data the hidden ones hold). The reply is small, so decoding and
re-encoding it costs nothing; every other reply is relayed byte for byte.

It fails closed: a reply that does not have the shape of a `listDatabases` answer is
replaced by an error, and when too many narrowed requests are outstanding (a client
that pipelines without reading) a new one is refused, never relayed unnarrowed.
Replies are matched by `responseTo`; the server answers a connection's requests in
order, so several pending requests with the same id are narrowed in turn.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from wicket.errors import RemoteProtocolError
from wicket.wire.mongo import (
    DEFAULT_MAX_MESSAGE_SIZE,
    HEADER_SIZE,
    OpCompressed,
    OpMsg,
    OpReply,
    decode_message,
    decompress_message,
    encode_op_msg,
    encode_op_reply,
    error_document,
    parse_header,
)

MAX_PENDING = 64
"""At most this many narrowed requests awaiting their reply; more are refused."""
MEBIBYTE = 1024 * 1024
UNAUTHORIZED = 13

AllowsDatabase = Callable[[str], bool]


class UnexpectedListing(RemoteProtocolError):
    """A reply to `listDatabases` that is not shaped like one."""


def narrow_list_databases(reply: Mapping[str, Any], allows: AllowsDatabase) -> dict[str, Any]:
    """The reply with only the databases `allows` accepts, totals summed over them."""
    if reply.get("ok") != 1:
        return dict(reply)  # an error names no database
    databases = reply.get("databases")
    if not isinstance(databases, list):
        raise UnexpectedListing("listDatabases reply without a databases list")
    kept: list[Any] = []
    for entry in databases:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise UnexpectedListing("listDatabases reply entry without a name")
        if allows(entry["name"]):
            kept.append(entry)
    narrowed = {**reply, "databases": kept}
    if "totalSize" in reply or "totalSizeMb" in reply:
        total = 0
        for entry in kept:
            size = entry.get("sizeOnDisk", 0)
            if isinstance(size, int | float) and not isinstance(size, bool):
                total += int(size)
        if "totalSize" in reply:
            narrowed["totalSize"] = total
        if "totalSizeMb" in reply:
            narrowed["totalSizeMb"] = total // MEBIBYTE
    return narrowed


def _withheld(reason: str) -> dict[str, Any]:
    return error_document(
        f"Wicket withheld the listDatabases reply ({reason}): it could not narrow it to the "
        "databases your roles allow",
        UNAUTHORIZED,
        "Unauthorized",
    )


class DatabaseListings:
    """The `listDatabases` requests of one session whose replies must be narrowed."""

    def __init__(self) -> None:
        self._pending: Counter[int] = Counter()
        self._allows: dict[int, AllowsDatabase] = {}

    @property
    def pending(self) -> int:
        """How many narrowed requests await their reply."""
        return sum(self._pending.values())

    def expect(self, request_id: int, allows: AllowsDatabase) -> bool:
        """Narrow the reply to `request_id`; False (refuse the request) when too many wait."""
        if self.pending >= MAX_PENDING:
            return False
        self._pending[request_id] += 1
        self._allows[request_id] = allows
        return True

    def relay(self, data: bytes) -> bytes:
        """A whole frame from the database as the client may see it."""
        if not self._pending or len(data) < HEADER_SIZE:
            return data
        header = parse_header(data)
        if self._pending[header.response_to] <= 0:
            return data
        self._pending[header.response_to] -= 1
        allows = self._allows[header.response_to]
        if self._pending[header.response_to] <= 0:
            del self._pending[header.response_to]
            del self._allows[header.response_to]
        message = decode_message(data, max_message_size=max(len(data), DEFAULT_MAX_MESSAGE_SIZE))
        if isinstance(message, OpCompressed):
            message = decode_message(decompress_message(message))
        if isinstance(message, OpMsg):
            return encode_op_msg(
                self._narrow(message.body_document(), allows),
                request_id=header.request_id,
                response_to=header.response_to,
            )
        if isinstance(message, OpReply) and len(message.documents) == 1:
            return encode_op_reply(
                [self._narrow(message.decoded_documents()[0], allows)],
                request_id=header.request_id,
                response_to=header.response_to,
                response_flags=message.response_flags,
            )
        return encode_op_msg(
            _withheld("unexpected reply opcode"),
            request_id=header.request_id,
            response_to=header.response_to,
        )

    @staticmethod
    def _narrow(reply: Mapping[str, Any], allows: AllowsDatabase) -> dict[str, Any]:
        try:
            return narrow_list_databases(reply, allows)
        except UnexpectedListing as failure:
            return _withheld(str(failure))
