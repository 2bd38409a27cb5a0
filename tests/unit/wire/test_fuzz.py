"""Property tests: whatever bytes arrive, the codec raises nothing but ProtocolError.

Profiles come from conftest.py ("fast" by default, HYPOTHESIS_PROFILE=deep for more).
"""

from __future__ import annotations

import contextlib
from typing import Any

import bson
from hypothesis import example, given
from hypothesis import strategies as st

from wicket.errors import ProtocolError
from wicket.wire.mongo import (
    CommandInfo,
    MessageFramer,
    OpCompressed,
    decode_message,
    decompress_message,
    inspect_command,
    inspect_message,
)
from wicket.wire.mongo.messages import Message
from wicket.wire.mongo.opmsg import OpMsg
from wicket.wire.mongo.opquery import OpQuery
from wicket.wire.mongo.opreply import OpReply

from .fixtures import valid_messages

VALID = valid_messages()
SMALL_MAX = 1 << 20


def _exercise(message: Message) -> None:
    """Use every lazy path of a decoded message, as a server or the agent would."""
    if isinstance(message, OpCompressed):
        inner = decode_message(decompress_message(message, max_message_size=SMALL_MAX))
        _exercise(inner)
        return
    if isinstance(message, OpMsg):
        message.command()
    elif isinstance(message, OpQuery):
        message.query_document()
    elif isinstance(message, OpReply):
        message.decoded_documents()
        return
    info = inspect_message(message)
    assert isinstance(info, CommandInfo)


def _decode_everything(data: bytes) -> None:
    try:
        framer = MessageFramer(max_message_size=SMALL_MAX)
        framer.receive_data(data)
        while (frame := framer.next_frame()) is not None:
            _exercise(decode_message(frame.data, max_message_size=SMALL_MAX))
    except ProtocolError:
        pass
    with contextlib.suppress(ProtocolError):
        _exercise(decode_message(data, max_message_size=SMALL_MAX))


@given(st.binary(max_size=512))
@example(b"")
@example(b"\x10\x00\x00\x00" + b"\x00" * 12)
def test_arbitrary_bytes(data: bytes) -> None:
    _decode_everything(data)


@given(
    st.sampled_from(VALID),
    st.lists(
        st.tuples(st.sampled_from(["flip", "insert", "delete", "set"]), st.integers(0, 10_000),
                  st.integers(0, 255)),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)  # fmt: skip
def test_mutated_valid_messages(
    original: bytes, mutations: list[tuple[str, int, int]], fix_length: bool
) -> None:
    data = bytearray(original)
    for kind, position, value in mutations:
        index = position % (len(data) + 1)
        if kind == "insert":
            data[index:index] = bytes([value])
        elif index < len(data):
            if kind == "flip":
                data[index] ^= 1 << (value % 8)
            elif kind == "delete":
                del data[index]
            else:
                data[index] = value
    if fix_length and len(data) >= 4:
        # Keep the header's length honest so the mutation reaches the body parsers.
        data[0:4] = len(data).to_bytes(4, "little")
    _decode_everything(bytes(data))


def test_every_valid_message_is_fully_exercised_without_error() -> None:
    for data in VALID:
        message = decode_message(data)
        if not isinstance(message, OpReply):
            _exercise(message)


bson_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=10),
    st.sampled_from(["c", "t.c", "$x", "a.b.c", "", "db", 1, 1.0, 0]),
)
stage_names = st.sampled_from(
    ["$match", "$lookup", "$unionWith", "$out", "$merge", "$facet", "$graphLookup",
     "$documents", "$currentOp", "$group", "$unknown", "from", "coll", "db", "into", "pipeline",
     "as", "viewOn", "to", "nsInfo", "ns", "roles", "role", "out", "replace", "inline",
     "collection", "whenMatched"]
)  # fmt: skip
bson_value = st.recursive(
    bson_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(stage_names, st.text(max_size=8)), children, max_size=4),
    ),
    max_leaves=30,
)
command_names = st.sampled_from(
    ["find", "aggregate", "explain", "renameCollection", "bulkWrite", "mapReduce", "create",
     "collMod", "getMore", "usersInfo", "createUser", "dataSize", "hello", "killCursors",
     "cloneCollectionAsCapped", "unknownCommand"]
)  # fmt: skip


@given(
    st.one_of(command_names, st.text(max_size=10)),
    bson_value,
    st.dictionaries(st.one_of(stage_names, st.text(max_size=8)), bson_value, max_size=5),
    st.sampled_from(["t", "admin", "$external", "", "a.b", "x y"]),
)
def test_inspect_command_never_raises(
    name: str, value: Any, rest: dict[str, Any], database: str
) -> None:
    command = {name: value, **{k: v for k, v in rest.items() if k != name}}
    info = inspect_command(command, database)
    assert isinstance(info, CommandInfo)
    if not info.known:
        assert info.namespaces == ()
    # The same command through BSON (as the agent sees it) gives the same answer.
    try:
        encoded = bson.encode(command)
    except Exception:  # some generated values (huge ints in lists...) are not BSON-able
        return
    assert inspect_command(bson.decode(encoded), database).known == info.known
