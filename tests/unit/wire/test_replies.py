"""Tests for wicket.wire.mongo.replies: error replies decode as clients expect."""

from __future__ import annotations

from typing import TypedDict

import pytest
from pymongo.errors import OperationFailure
from pymongo.helpers_shared import _check_command_response
from pymongo.message import _UNPACK_REPLY

from wicket.errors import LocalProtocolError
from wicket.wire.mongo import (
    Compressor,
    OpCode,
    OpMsg,
    OpReply,
    ReplyFlags,
    compress_message,
    decode_message,
    encode_op_get_more,
    encode_op_msg,
    encode_op_query,
    encode_op_reply,
    error_document,
    error_reply_for,
    op_msg_error,
    op_reply_error,
)


class _Error(TypedDict):
    errmsg: str
    code: int
    code_name: str


ERROR: _Error = {
    "errmsg": "not authorized on test to execute command",
    "code": 13,
    "code_name": "Unauthorized",
}


def test_error_document_shape() -> None:
    assert error_document("boom", 2, "BadValue") == {
        "ok": 0.0,
        "errmsg": "boom",
        "code": 2,
        "codeName": "BadValue",
    }


def test_op_msg_error_is_understood_by_pymongo() -> None:
    data = op_msg_error(request_id=5, response_to=4, **ERROR)
    message = decode_message(data)
    assert isinstance(message, OpMsg) and message.header.response_to == 4
    # pymongo's own reply parser and error check, as a driver sees the reply.
    reply = _UNPACK_REPLY[OpCode.MSG](data[16:])
    (document,) = reply.unpack_response()
    with pytest.raises(OperationFailure) as caught:
        _check_command_response(document, None)
    assert caught.value.code == 13
    assert caught.value.details is not None
    assert caught.value.details["codeName"] == "Unauthorized"


def test_op_reply_query_failure() -> None:
    data = op_reply_error(request_id=5, response_to=4, **ERROR)
    message = decode_message(data)
    assert isinstance(message, OpReply)
    assert message.response_flags == ReplyFlags.QUERY_FAILURE
    assert message.header.response_to == 4
    assert message.decoded_documents() == [
        {"$err": ERROR["errmsg"], "code": 13, "codeName": "Unauthorized", "ok": 0.0}
    ]


def test_op_reply_command_error() -> None:
    data = op_reply_error(request_id=5, response_to=4, query_failure=False, **ERROR)
    message = decode_message(data)
    assert isinstance(message, OpReply)
    assert message.response_flags == ReplyFlags(0)
    (document,) = message.decoded_documents()
    with pytest.raises(OperationFailure) as caught:
        _check_command_response(document, None)
    assert caught.value.code == 13


def test_error_reply_for_each_request_kind() -> None:
    op_msg = decode_message(encode_op_msg({"find": "c", "$db": "t"}, request_id=11))
    reply = decode_message(error_reply_for(op_msg, request_id=1, **ERROR))
    assert isinstance(reply, OpMsg) and reply.header.response_to == 11
    assert reply.command()["code"] == 13

    command = decode_message(encode_op_query("admin.$cmd", {"isMaster": 1}, request_id=12))
    reply = decode_message(error_reply_for(command, request_id=2, **ERROR))
    assert isinstance(reply, OpReply) and reply.header.response_to == 12
    assert reply.response_flags == ReplyFlags(0)
    assert reply.decoded_documents()[0]["errmsg"] == ERROR["errmsg"]

    query = decode_message(encode_op_query("t.c", {}, request_id=13))
    reply = decode_message(error_reply_for(query, request_id=3, **ERROR))
    assert isinstance(reply, OpReply) and reply.response_flags == ReplyFlags.QUERY_FAILURE
    assert reply.decoded_documents()[0]["$err"] == ERROR["errmsg"]

    get_more = decode_message(encode_op_get_more("t.c", 5, request_id=14))
    reply = decode_message(error_reply_for(get_more, request_id=4, **ERROR))
    assert isinstance(reply, OpReply) and reply.response_flags == ReplyFlags.QUERY_FAILURE


def test_error_reply_for_refuses_compressed_and_replies() -> None:
    ping = encode_op_msg({"ping": 1}, request_id=1)
    compressed = decode_message(compress_message(ping, Compressor.ZLIB))
    with pytest.raises(LocalProtocolError, match="decompress"):
        error_reply_for(compressed, request_id=1, **ERROR)
    reply = decode_message(encode_op_reply([], request_id=1, response_to=1))
    with pytest.raises(LocalProtocolError):
        error_reply_for(reply, request_id=1, **ERROR)
