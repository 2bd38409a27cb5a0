"""Hand-built messages shared by the wire tests (one valid encoding of every opcode)."""

from __future__ import annotations

import bson

from wicket.wire.mongo import (
    Compressor,
    DocumentSequence,
    OpMsgFlags,
    compress_message,
    encode_op_delete,
    encode_op_get_more,
    encode_op_insert,
    encode_op_kill_cursors,
    encode_op_msg,
    encode_op_query,
    encode_op_reply,
    encode_op_update,
)

# bson.encode({"ping": 1, "$db": "admin"}), spelled out:
#   1e000000                 document length 30
#   10 70696e6700 01000000   int32 "ping" = 1
#   02 2464620000 06000000 61646d696e00   string "$db" = "admin"
#   00                       end of document
PING_BODY_HEX = "1e0000001070696e67000100000002246462000600000061646d696e0000"

# OP_MSG {ping: 1, $db: "admin"} with requestID 1 (wire protocol reference, "OP_MSG"):
#   33000000 length 51 | 01000000 requestID 1 | 00000000 responseTo | dd070000 opCode 2013
#   00000000 flagBits | 00 section kind 0 | body
OP_MSG_PING_HEX = "330000000100000000000000dd0700000000000000" + PING_BODY_HEX


def valid_messages() -> list[bytes]:
    """One or more valid encodings of every opcode, for round trips and mutation fuzzing."""
    doc = {"a": 1}
    plain = encode_op_msg({"ping": 1, "$db": "admin"}, request_id=1)
    with_sequence = encode_op_msg(
        {"insert": "c", "$db": "test"},
        request_id=2,
        sequences=[DocumentSequence("documents", (bson.encode(doc), bson.encode({"b": 2})))],
        checksum=True,
    )
    messages = [
        bytes.fromhex(OP_MSG_PING_HEX),
        plain,
        with_sequence,
        encode_op_msg({"x": 1, "$db": "t"}, request_id=3, flags=OpMsgFlags.EXHAUST_ALLOWED),
        encode_op_query("admin.$cmd", {"isMaster": 1}, request_id=4),
        encode_op_query("test.c", {"a": 1}, request_id=5, return_fields_selector={"_id": 0}),
        encode_op_reply([{"ok": 1.0}, doc], request_id=6, response_to=4, cursor_id=77),
        encode_op_get_more("test.c", 99, request_id=7, number_to_return=10),
        encode_op_insert("test.c", [doc, doc], request_id=8),
        encode_op_update("test.c", doc, {"$set": {"a": 2}}, request_id=9),
        encode_op_delete("test.c", doc, request_id=10),
        encode_op_kill_cursors([1, 2, 3], request_id=11),
    ]
    for compressor in Compressor:
        messages.append(compress_message(with_sequence, compressor))
    return messages
