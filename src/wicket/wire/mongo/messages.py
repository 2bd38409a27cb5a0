"""Wire layer: decoding one whole framed message, dispatched on its opcode."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from wicket.errors import RemoteProtocolError
from wicket.wire.mongo.compression import OpCompressed, decode_op_compressed
from wicket.wire.mongo.constants import DEFAULT_MAX_MESSAGE_SIZE, HEADER_SIZE, OpCode
from wicket.wire.mongo.framing import check_declared_length
from wicket.wire.mongo.header import MsgHeader, parse_header
from wicket.wire.mongo.legacy import (
    OpDelete,
    OpGetMore,
    OpInsert,
    OpKillCursors,
    OpUpdate,
    decode_op_delete,
    decode_op_get_more,
    decode_op_insert,
    decode_op_kill_cursors,
    decode_op_update,
)
from wicket.wire.mongo.opmsg import OpMsg, decode_op_msg
from wicket.wire.mongo.opquery import OpQuery, decode_op_query
from wicket.wire.mongo.opreply import OpReply, decode_op_reply

Message: TypeAlias = (
    OpMsg
    | OpQuery
    | OpReply
    | OpCompressed
    | OpGetMore
    | OpInsert
    | OpUpdate
    | OpDelete
    | OpKillCursors
)

_DECODERS: dict[int, Callable[[MsgHeader, bytes], Message]] = {
    OpCode.MSG: decode_op_msg,
    OpCode.QUERY: decode_op_query,
    OpCode.REPLY: decode_op_reply,
    OpCode.COMPRESSED: decode_op_compressed,
    OpCode.GET_MORE: decode_op_get_more,
    OpCode.INSERT: decode_op_insert,
    OpCode.UPDATE: decode_op_update,
    OpCode.DELETE: decode_op_delete,
    OpCode.KILL_CURSORS: decode_op_kill_cursors,
}


def decode_message(
    data: bytes | bytearray | memoryview, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> Message:
    """Decode one whole message; it must be consumed exactly, documents are left raw."""
    raw = bytes(data)
    if len(raw) < HEADER_SIZE:
        raise RemoteProtocolError(f"message of {len(raw)} bytes is shorter than its header")
    header = parse_header(raw)
    if header.length != len(raw):
        raise RemoteProtocolError(
            f"message header says {header.length} bytes but the frame has {len(raw)}"
        )
    decoder = _DECODERS.get(header.op_code)
    if decoder is None:
        raise RemoteProtocolError(f"unknown opcode {header.op_code}")
    check_declared_length(header, max_message_size)
    return decoder(header, raw)


def expects_reply(message: Message) -> bool:
    """Whether the sender waits for an answer (no for moreToCome and legacy writes)."""
    if isinstance(message, OpMsg):
        return not message.more_to_come
    return isinstance(message, OpQuery | OpGetMore)
