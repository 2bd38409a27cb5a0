"""A minimal blocking MongoDB client over TLS built on our codec, for wire-level tests.

pymongo hides the bytes; these tests need to send exactly what they mean (checksums,
moreToCome, exhaust, compressed requests, garbage) and look at exactly what comes back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import ssl
from pathlib import Path
from typing import Any

import bson

from wicket.wire.mongo import (
    Compressor,
    Message,
    MessageFramer,
    OpCompressed,
    OpMsg,
    OpMsgFlags,
    OpReply,
    compress_message,
    decode_message,
    decompress_message,
    encode_op_msg,
)

NO_FLAGS = OpMsgFlags(0)


class RawClient:
    """One TLS connection; send bytes, receive whole decoded messages."""

    def __init__(self, port: int, ca_file: Path, timeout: float = 10.0) -> None:
        context = ssl.create_default_context(cafile=str(ca_file))
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")
        self.framer = MessageFramer()
        self.next_id = 1

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request_id(self) -> int:
        """A fresh request id."""
        self.next_id += 1
        return self.next_id

    def send(self, data: bytes) -> None:
        """Send raw bytes."""
        self.sock.sendall(data)

    def receive(self) -> Message:
        """Read one whole message (decompressed messages are returned as OpCompressed)."""
        while True:
            frame = self.framer.next_frame()
            if frame is not None:
                return decode_message(frame.data)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.framer.receive_data(chunk)

    def closed_by_server(self) -> bool:
        """Whether the server has closed the connection (reads EOF)."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionError, ssl.SSLError):
            return True

    def command(
        self,
        body: dict[str, Any],
        *,
        flags: OpMsgFlags = NO_FLAGS,
        checksum: bool = False,
        compressor: Compressor | None = None,
    ) -> dict[str, Any]:
        """Send an OP_MSG command and return the reply body."""
        data = encode_op_msg(body, request_id=self.request_id(), flags=flags, checksum=checksum)
        if compressor is not None:
            data = compress_message(data, compressor)
        self.send(data)
        return reply_body(self.receive())

    def login(self, user: str, password: str) -> None:
        """SCRAM-SHA-256 (RFC 7677) as a driver does it, on the admin database."""
        nonce = base64.b64encode(os.urandom(24)).decode()
        first_bare = f"n={user},r={nonce}"
        start = self.command(
            {
                "saslStart": 1,
                "mechanism": "SCRAM-SHA-256",
                "payload": b"n,," + first_bare.encode(),
                "$db": "admin",
                "options": {"skipEmptyExchange": True},
            }
        )
        server_first = bytes(start["payload"]).decode()
        fields = dict(item.split("=", 1) for item in server_first.split(","))
        salted = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
        )
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        final_bare = f"c=biws,r={fields['r']}"
        auth_message = f"{first_bare},{server_first},{final_bare}".encode()
        signature = hmac.digest(stored_key, auth_message, "sha256")
        proof = base64.b64encode(
            bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        ).decode()
        reply = self.command(
            {
                "saslContinue": 1,
                "conversationId": start["conversationId"],
                "payload": f"{final_bare},p={proof}".encode(),
                "$db": "admin",
            }
        )
        if reply.get("ok") != 1.0 or not reply.get("done"):
            raise AssertionError(f"login failed: {reply}")


def reply_body(message: Message) -> dict[str, Any]:
    """The first document of a reply, whichever opcode carried it."""
    if isinstance(message, OpCompressed):
        message = decode_message(decompress_message(message))
    if isinstance(message, OpMsg):
        return message.body_document()
    if isinstance(message, OpReply):
        return bson.decode(message.documents[0])
    raise AssertionError(f"unexpected reply {message!r}")
