"""localdocdb at the byte level: opcodes, flags, compression, exhaust and bad input."""

from __future__ import annotations

import struct

import bson
import pytest

from localdocdb.process import LocalDocDBProcess
from tests.support.clients import StartDocDB
from tests.support.raw_wire import RawClient, reply_body
from wicket.wire.mongo import (
    Compressor,
    OpCompressed,
    OpMsg,
    OpMsgFlags,
    OpReply,
    ReplyFlags,
    compress_message,
    encode_op_msg,
    encode_op_query,
)


@pytest.fixture
def server(start_localdocdb: StartDocDB) -> LocalDocDBProcess:
    return start_localdocdb()


def connect(server: LocalDocDBProcess, *, login: bool = True) -> RawClient:
    client = RawClient(server.port, server.ca_file)
    if login:
        client.login(server.master_user, server.master_password)
    return client


def test_hello_over_op_query_gets_op_reply(server: LocalDocDBProcess) -> None:
    with connect(server, login=False) as client:
        client.send(
            encode_op_query(
                "admin.$cmd",
                {"isMaster": 1, "client": {"driver": {"name": "raw"}}},
                request_id=client.request_id(),
                number_to_return=-1,
            )
        )
        reply = client.receive()
        assert isinstance(reply, OpReply)
        doc = bson.decode(reply.documents[0])
        assert doc["ismaster"] is True
        assert doc["maxWireVersion"] == 13
        assert doc["maxMessageSizeBytes"] == 48_000_000


def test_legacy_op_query_find_is_refused_with_query_failure(server: LocalDocDBProcess) -> None:
    with connect(server) as client:
        client.send(encode_op_query("test.things", {}, request_id=client.request_id()))
        reply = client.receive()
        assert isinstance(reply, OpReply)
        assert reply.response_flags & ReplyFlags.QUERY_FAILURE
        assert bson.decode(reply.documents[0])["code"] == 352


def test_checksummed_request_is_answered(server: LocalDocDBProcess) -> None:
    with connect(server) as client:
        assert client.command({"ping": 1, "$db": "admin"}, checksum=True)["ok"] == 1.0


def test_corrupted_checksum_closes_the_connection(server: LocalDocDBProcess) -> None:
    with connect(server) as client:
        data = bytearray(encode_op_msg({"ping": 1, "$db": "admin"}, request_id=7, checksum=True))
        data[-1] ^= 0xFF
        client.send(bytes(data))
        assert client.closed_by_server()
    with connect(server) as other:  # the server itself is unharmed
        assert other.command({"ping": 1, "$db": "admin"})["ok"] == 1.0


def test_declared_length_over_the_maximum_closes_before_the_body(server: LocalDocDBProcess) -> None:
    with connect(server) as client:
        client.send(struct.pack("<iiii", 48_000_001, 1, 0, 2013))
        assert client.closed_by_server()


def test_garbage_closes_the_connection(server: LocalDocDBProcess) -> None:
    with connect(server, login=False) as client:
        client.send(struct.pack("<iiii", 40, 1, 0, 9999) + b"\x00" * 24)
        assert client.closed_by_server()


def test_unknown_command_is_command_not_found(server: LocalDocDBProcess) -> None:
    with connect(server) as client:
        reply = client.command({"frobnicate": 1, "$db": "admin"})
        assert (reply["ok"], reply["code"], reply["codeName"]) == (0.0, 59, "CommandNotFound")


def test_commands_before_login_are_refused(server: LocalDocDBProcess) -> None:
    with connect(server, login=False) as client:
        assert client.command({"ping": 1, "$db": "admin"})["ok"] == 1.0
        reply = client.command({"find": "things", "$db": "test"})
        assert reply["code"] == 13


def test_compressed_request_gets_compressed_reply(server: LocalDocDBProcess) -> None:
    with connect(server, login=False) as client:
        hello = client.command(
            {"hello": 1, "compression": ["zstd", "snappy", "zlib"], "$db": "admin"}
        )
        assert hello["compression"] == ["zstd", "snappy", "zlib"]
        client.login(server.master_user, server.master_password)
        for compressor in (Compressor.ZLIB, Compressor.SNAPPY, Compressor.ZSTD):
            data = encode_op_msg({"ping": 1, "$db": "admin"}, request_id=client.request_id())
            client.send(compress_message(data, compressor))
            reply = client.receive()
            assert isinstance(reply, OpCompressed)
            assert reply.compressor == compressor
            assert reply_body(reply)["ok"] == 1.0


def test_more_to_come_request_gets_no_reply(server: LocalDocDBProcess) -> None:
    with connect(server) as client:
        client.send(
            encode_op_msg(
                {
                    "insert": "quiet",
                    "documents": [{"a": 1}],
                    "$db": "test",
                    "writeConcern": {"w": 0},
                },
                request_id=client.request_id(),
                flags=OpMsgFlags.MORE_TO_COME,
            )
        )
        # the next reply we read must be the find's, not an insert acknowledgement
        reply = client.command({"find": "quiet", "filter": {}, "$db": "test"})
        assert [d["a"] for d in reply["cursor"]["firstBatch"]] == [1]


def test_exhaust_get_more_streams_every_batch(server: LocalDocDBProcess) -> None:
    with connect(server) as client:
        client.command(
            {"insert": "many", "documents": [{"i": i} for i in range(25)], "$db": "test"}
        )
        first = client.command({"find": "many", "batchSize": 5, "sort": {"i": 1}, "$db": "test"})
        cursor_id = first["cursor"]["id"]
        seen = [d["i"] for d in first["cursor"]["firstBatch"]]
        request = encode_op_msg(
            {"getMore": cursor_id, "collection": "many", "batchSize": 5, "$db": "test"},
            request_id=client.request_id(),
            flags=OpMsgFlags.EXHAUST_ALLOWED,
        )
        client.send(request)
        while True:
            reply = client.receive()
            assert isinstance(reply, OpMsg)
            body = reply.body_document()
            seen += [d["i"] for d in body["cursor"]["nextBatch"]]
            if body["cursor"]["id"] == 0:
                assert not reply.more_to_come
                break
            assert reply.more_to_come
        assert seen == list(range(25))


def test_awaitable_hello_streams_with_exhaust(server: LocalDocDBProcess) -> None:
    with connect(server, login=False) as client:
        first = client.command({"hello": 1, "$db": "admin"})
        version = first["topologyVersion"]
        client.send(
            encode_op_msg(
                {"hello": 1, "topologyVersion": version, "maxAwaitTimeMS": 200, "$db": "admin"},
                request_id=client.request_id(),
                flags=OpMsgFlags.EXHAUST_ALLOWED,
            )
        )
        previous = None
        for _ in range(3):
            reply = client.receive()
            assert isinstance(reply, OpMsg)
            assert reply.more_to_come
            if previous is not None:
                assert reply.header.response_to == previous
            previous = reply.header.request_id
            assert reply.body_document()["topologyVersion"] == version
