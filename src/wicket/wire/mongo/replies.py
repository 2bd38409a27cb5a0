"""Wire layer: error replies in the shape each kind of client request expects.

OP_MSG requests get `{ok: 0, errmsg, code, codeName}` in an OP_MSG; commands sent
as OP_QUERY on "db.$cmd" get the same document in an OP_REPLY; legacy queries and
getMores get an OP_REPLY with the QueryFailure flag and a `$err` document.
"""

from __future__ import annotations

from typing import Any

from wicket.errors import LocalProtocolError
from wicket.wire.mongo.compression import OpCompressed
from wicket.wire.mongo.constants import ReplyFlags
from wicket.wire.mongo.messages import Message
from wicket.wire.mongo.opmsg import OpMsg, encode_op_msg
from wicket.wire.mongo.opquery import OpQuery
from wicket.wire.mongo.opreply import OpReply, encode_op_reply


def error_document(errmsg: str, code: int, code_name: str) -> dict[str, Any]:
    """The command error body every MongoDB client parses."""
    return {"ok": 0.0, "errmsg": errmsg, "code": code, "codeName": code_name}


def op_msg_error(
    *, request_id: int, response_to: int, errmsg: str, code: int, code_name: str
) -> bytes:
    """An OP_MSG reply carrying a command error."""
    return encode_op_msg(
        error_document(errmsg, code, code_name), request_id=request_id, response_to=response_to
    )


def op_reply_error(
    *,
    request_id: int,
    response_to: int,
    errmsg: str,
    code: int,
    code_name: str,
    query_failure: bool = True,
) -> bytes:
    """An OP_REPLY error: QueryFailure + `$err` for queries, a command error otherwise."""
    if query_failure:
        document = {"$err": errmsg, "code": code, "codeName": code_name, "ok": 0.0}
        flags = ReplyFlags.QUERY_FAILURE
    else:
        document = error_document(errmsg, code, code_name)
        flags = ReplyFlags(0)
    return encode_op_reply(
        [document], request_id=request_id, response_to=response_to, response_flags=flags
    )


def error_reply_for(
    request: Message, *, request_id: int, errmsg: str, code: int, code_name: str
) -> bytes:
    """The error reply matching how `request` was sent (decompress OP_COMPRESSED first)."""
    response_to = request.header.request_id
    if isinstance(request, OpMsg):
        return op_msg_error(
            request_id=request_id,
            response_to=response_to,
            errmsg=errmsg,
            code=code,
            code_name=code_name,
        )
    if isinstance(request, OpCompressed):
        raise LocalProtocolError("decompress an OP_COMPRESSED request before answering it")
    if isinstance(request, OpReply):
        raise LocalProtocolError("OP_REPLY is a reply; it cannot be answered")
    return op_reply_error(
        request_id=request_id,
        response_to=response_to,
        errmsg=errmsg,
        code=code,
        code_name=code_name,
        query_failure=not (isinstance(request, OpQuery) and request.is_command),
    )
