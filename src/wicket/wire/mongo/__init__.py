"""Wire layer: a sans-IO MongoDB wire-protocol codec (framing, opcodes, compression, inspection).

Shared by localdocdb (server side) and the Wicket agent (proxy side). Nothing here
does I/O: callers feed bytes in and get messages, encoded bytes or protocol errors out.
"""

from __future__ import annotations

from wicket.wire.mongo.compression import OpCompressed, compress_message, decompress_message
from wicket.wire.mongo.constants import (
    COMPRESSOR_BY_ID,
    COMPRESSOR_NAMES,
    DEFAULT_MAX_MESSAGE_SIZE,
    HEADER_SIZE,
    Compressor,
    OpCode,
    OpMsgFlags,
    QueryFlags,
    ReplyFlags,
)
from wicket.wire.mongo.documents import DuplicateFieldError, decode_document, encode_document
from wicket.wire.mongo.framing import Frame, MessageFramer
from wicket.wire.mongo.header import MsgHeader, encode_header, parse_header
from wicket.wire.mongo.inspect import (
    Access,
    CommandInfo,
    Namespace,
    Scope,
    inspect_command,
    inspect_message,
)
from wicket.wire.mongo.legacy import (
    OpDelete,
    OpGetMore,
    OpInsert,
    OpKillCursors,
    OpUpdate,
    encode_op_delete,
    encode_op_get_more,
    encode_op_insert,
    encode_op_kill_cursors,
    encode_op_update,
)
from wicket.wire.mongo.messages import Message, decode_message, expects_reply
from wicket.wire.mongo.opmsg import DocumentSequence, OpMsg, encode_op_msg
from wicket.wire.mongo.opquery import OpQuery, encode_op_query
from wicket.wire.mongo.opreply import OpReply, encode_op_reply
from wicket.wire.mongo.replies import (
    error_document,
    error_reply_for,
    op_msg_error,
    op_reply_error,
)

__all__ = [
    "COMPRESSOR_BY_ID",
    "COMPRESSOR_NAMES",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "HEADER_SIZE",
    "Access",
    "CommandInfo",
    "Compressor",
    "DocumentSequence",
    "DuplicateFieldError",
    "Frame",
    "Message",
    "MessageFramer",
    "MsgHeader",
    "Namespace",
    "OpCode",
    "OpCompressed",
    "OpDelete",
    "OpGetMore",
    "OpInsert",
    "OpKillCursors",
    "OpMsg",
    "OpMsgFlags",
    "OpQuery",
    "OpReply",
    "OpUpdate",
    "QueryFlags",
    "ReplyFlags",
    "Scope",
    "compress_message",
    "decode_document",
    "decode_message",
    "decompress_message",
    "encode_document",
    "encode_header",
    "encode_op_delete",
    "encode_op_get_more",
    "encode_op_insert",
    "encode_op_kill_cursors",
    "encode_op_msg",
    "encode_op_query",
    "encode_op_reply",
    "encode_op_update",
    "error_document",
    "error_reply_for",
    "expects_reply",
    "inspect_command",
    "inspect_message",
    "op_msg_error",
    "op_reply_error",
    "parse_header",
]
