"""Open sessions are authorized continuously (issue 7, class 1), through real processes.

pymongo loops through the proxy and the agent while an administrator deletes the user,
edits a role, or locks the user; the loop gets an error saying why within 2 s, the
session's end event records it, and a new connection is refused with the same reason.
Certificate expiry and `max_session_ttl` end a session on time. One stage for the module.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from localdocdb.localaws import LocalAws
from localdocdb.process import LocalDocDBProcess
from tests.integration.cluster.test_database_routes import PASSWORD, User
from tests.integration.engine.test_docdb_iam_session import Setup, events_of
from tests.integration.engine.test_wsh_db_commands import WSH, Tunnel
from tests.support.cluster import wicket_bin
from tests.support.stage import start_iam_stage
from wicket.pki.keys import private_key_pem, write_private_file
from wicket.pki.pem import load_certificate
from wicket.pki.pin import ca_pin
from wicket.tlsconfig import client_context
from wicket.wire.mongo import MessageFramer, OpMsg, decode_message, encode_op_msg

WITHIN = 2.0  # seconds: how fast a change must end an open session
DB_USER = "wicket-docdb-user"


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory, local_aws: LocalAws) -> Iterator[Setup]:
    directory = tmp_path_factory.mktemp("live")
    docdb = LocalDocDBProcess.start(
        tls_dir=directory / "tls",
        args=("--mode", "docdb", "--sts-endpoint", local_aws.endpoint),
        log_path=directory / "localdocdb.log",
    )
    try:
        cluster, agent = start_iam_stage(directory, docdb, local_aws)
        try:
            agent.wait_for_log("access state synced")
            yield Setup(cluster, agent, docdb, local_aws, directory)
        finally:
            agent.stop()
            cluster.stop()
    finally:
        docdb.stop()


def put_role(stage: Setup, name: str, db_names: list[str], **options: Any) -> None:
    stage.cluster.admin_call(
        "PUT",
        f"/v1/roles/{name}",
        {
            "kind": "role",
            "version": "v1",
            "metadata": {"name": name},
            "spec": {
                "options": options,
                "allow": {"db_labels": {"env": "dev"}, "db_users": ["*"], "db_names": db_names},
            },
        },
    )


def client(stage: Setup, user: User, cert: bytes) -> MongoClient[dict[str, Any]]:
    """pymongo straight at the proxy with the user's database certificate."""
    pem = stage.directory / f"{user.key.public_key().public_numbers().x}.pem"
    write_private_file(pem, cert + private_key_pem(user.key))
    ca = stage.directory / "cluster-ca.pem"
    ca.write_bytes(user.host_ca)
    host, port = stage.cluster.proxy_addr.split(":")
    return MongoClient(
        host,
        int(port),
        tls=True,
        tlsCAFile=str(ca),
        tlsCertificateKeyFile=str(pem),
        directConnection=True,
        retryWrites=False,
        retryReads=False,
        serverSelectionTimeoutMS=1500,
    )


def error_within(client: MongoClient[dict[str, Any]], text: str, seconds: float) -> str:
    """Loop queries until one fails with `text` in its error (else fail after `seconds`)."""
    deadline = time.monotonic() + seconds
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            client.test.things.find_one({})
        except PyMongoError as error:
            seen.append(str(error))
            if text in str(error):
                return str(error)
    raise AssertionError(f"no error with {text!r} within {seconds}s; saw {seen[:2]}")


def works_for(client: MongoClient[dict[str, Any]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        client.test.things.find_one({})
        time.sleep(0.05)


def end_event_with(stage: Setup, user: str, text: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    ends: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        ends = [e for e in events_of(stage, user) if e["type"] == "db.session.end"]
        for event in ends:
            if text in str(event.get("error")):
                return event
        time.sleep(0.2)
    raise AssertionError(f"no db.session.end with {text!r}: {[e.get('error') for e in ends]}")


def refused_at_handshake(stage: Setup, user: User, cert: bytes, text: str) -> None:
    with client(stage, user, cert) as fresh, pytest.raises(PyMongoError) as refused:
        fresh.test.command("ping")
    assert text in str(refused.value)


class UserTunnel:
    """`wsh login` as the user, then `wsh proxy db --tunnel` to my-docdb (db name test)."""

    def __init__(self, stage: Setup, name: str) -> None:
        home = stage.directory / f"wsh-{name}"
        self.env = {**os.environ, "WSH_HOME": str(home)}
        self.env.pop("WSH_DB_PASSWORD", None)
        info = json.loads((stage.cluster.data_dir / "admin" / "cluster.json").read_text())
        self.pin = ca_pin(load_certificate(info["cas"]["host"].encode()))
        self.proxy = stage.cluster.proxy_addr
        self.name = name
        done = self.login()
        assert done.returncode == 0, done.stderr
        self.tunnel = Tunnel(self, f"--db-user={DB_USER}", "--db-name=test", "my-docdb")

    def login(self) -> subprocess.CompletedProcess[str]:
        """`wsh login` as this user (password on stdin)."""
        return subprocess.run(
            [
                WSH,
                "login",
                f"--proxy={self.proxy}",
                f"--user={self.name}",
                "--password-stdin",
                f"--ca-pin={self.pin}",
            ],
            env=self.env,
            input=PASSWORD + "\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def client(self) -> MongoClient[dict[str, Any]]:
        return self.tunnel.client(serverSelectionTimeoutMS="1500")

    def stop(self) -> None:
        self.tunnel.process.terminate()
        self.tunnel.process.wait(timeout=20)


def test_deleting_the_user_ends_the_session(stage: Setup) -> None:
    carol = User(stage.cluster, "carol", ["access"], {"db_users": ["*"], "db_names": ["test"]})
    cert = carol.database_cert("my-docdb", DB_USER, "test")
    tunnel = UserTunnel(stage, "carol")
    try:
        with tunnel.client() as carols:
            works_for(carols, 0.3)
            stage.cluster.admin_call("DELETE", "/v1/users/carol")
            error_within(carols, 'user "carol" was deleted', WITHIN)
    finally:
        tunnel.stop()
    end_event_with(stage, "carol", 'session ended: user "carol" was deleted')
    refused_at_handshake(stage, carol, cert, 'user "carol" was deleted')


def test_role_edit_that_withdraws_the_db_name_ends_the_session(stage: Setup) -> None:
    put_role(stage, "live-reports", ["test", "reports"])
    dan = User(stage.cluster, "dan", ["live-reports"], {})
    cert = dan.database_cert("my-docdb", DB_USER, "test")
    with client(stage, dan, cert) as dans:
        works_for(dans, 0.3)
        put_role(stage, "live-reports", ["test", "reports", "extra"])  # unrelated edit
        works_for(dans, WITHIN + 0.5)
        put_role(stage, "live-reports", ["reports"])  # withdraws "test"
        error_within(dans, "role change", WITHIN)
    end_event_with(stage, "dan", "session ended: role change")
    refused_at_handshake(stage, dan, cert, '"test"')


class RawSession:
    """One TLS connection to the proxy's database side: exactly what one client sees."""

    def __init__(self, stage: Setup, user: User, cert: bytes) -> None:
        context = client_context(
            ca_pems=[user.host_ca], cert_chain_pem=cert, key_pem=private_key_pem(user.key)
        )
        host, port = stage.cluster.proxy_addr.split(":")
        raw = socket.create_connection((host, int(port)), timeout=15)
        self.tls = context.wrap_socket(raw, server_hostname=host)
        self.request_id = 0

    def ask(self, command: dict[str, Any]) -> dict[str, Any] | None:
        """Send one command, read its reply (None: the connection closed)."""
        self.request_id += 1
        self.tls.sendall(encode_op_msg(command, request_id=self.request_id))
        framer = MessageFramer()
        while (frame := framer.next_frame()) is None:
            chunk = self.tls.recv(65536)
            if not chunk:
                return None
            framer.receive_data(chunk)
        message = decode_message(frame.data)
        assert isinstance(message, OpMsg)
        return dict(bson.decode(message.body))

    def until_refused(self, seconds: float) -> tuple[float, str]:
        """Query in a loop; (when, errmsg) of the first refusal (fail after `seconds`)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            reply = self.ask({"find": "things", "filter": {}, "$db": "test"})
            if reply is None:
                raise AssertionError("the session closed without saying why")
            if reply.get("ok") != 1.0:
                assert reply.get("code") == 13, reply
                return time.monotonic(), str(reply.get("errmsg"))
            time.sleep(0.02)
        raise AssertionError(f"the session was not ended within {seconds}s")

    def close(self) -> None:
        self.tls.close()


def test_certificate_expiry_ends_the_session(stage: Setup) -> None:
    put_role(stage, "short-lived", ["test"], max_session_ttl="8s")
    erin = User(stage.cluster, "erin", ["short-lived"], {})  # certificate valid for 8 s
    cert = erin.database_cert("my-docdb", DB_USER, "test")
    expires = load_certificate(cert).not_valid_after_utc
    session = RawSession(stage, erin, cert)
    try:
        assert session.ask({"hello": 1, "$db": "admin"}) is not None
        try:
            _, errmsg = session.until_refused(10.0 + WITHIN)
        except AssertionError as error:
            log = [line for line in stage.agent.log_text().splitlines() if "erin" in line]
            raise AssertionError(f"{error}; expires {expires}; agent: {log[-5:]}") from None
        ended = datetime.now(UTC)
    finally:
        session.close()
    assert errmsg.startswith("session ended: certificate expired")
    assert expires - timedelta(seconds=0.5) <= ended <= expires + timedelta(seconds=WITHIN)
    end_event_with(stage, "erin", "session ended: certificate expired")


def test_max_session_ttl_caps_the_session(stage: Setup) -> None:
    put_role(stage, "capped", ["test"])
    fay = User(stage.cluster, "fay", ["capped"], {})  # a 12 h certificate
    cert = fay.database_cert("my-docdb", DB_USER, "test")
    opened = time.monotonic()  # the agent counts from a moment after this one
    session = RawSession(stage, fay, cert)
    try:
        assert session.ask({"hello": 1, "$db": "admin"}) is not None
        ready = time.monotonic()
        put_role(stage, "capped", ["test"], max_session_ttl="6s")
        when, errmsg = session.until_refused(6.0 + WITHIN + 1.0)
    finally:
        session.close()
    assert errmsg.startswith("session ended: max_session_ttl (6s)"), errmsg
    # from the session's start, not from the role edit
    assert when - opened >= 6.0 and when - ready <= 6.0 + WITHIN, (when - opened, when - ready)
    end = end_event_with(stage, "fay", "session ended: max_session_ttl")
    assert end["duration_seconds"] >= 5.9, end


def wctl(stage: Setup, *args: str) -> str:
    """The real `wctl` on the auth host (the local admin identity)."""
    done = subprocess.run(
        [wicket_bin("wctl"), "-c", str(stage.cluster.config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_lock_ends_the_session_with_its_message(stage: Setup) -> None:
    """The issue's acceptance: `wctl lock --user` during a pymongo loop through the user's
    tunnel ends it within 2 s with the lock's message; `wsh login` is refused with it;
    `wctl rm lock/ID` restores access."""
    gus = User(stage.cluster, "gus", ["access"], {"db_users": ["*"], "db_names": ["test"]})
    cert = gus.database_cert("my-docdb", DB_USER, "test")
    tunnel = UserTunnel(stage, "gus")
    try:
        with tunnel.client() as guss:
            works_for(guss, 0.3)
            created = wctl(stage, "lock", "--user=gus", "--message=incident 42: credentials leaked")
            lock_id = created.strip()
            error_within(guss, "incident 42: credentials leaked", WITHIN)
        end_event_with(stage, "gus", "session ended: access locked (user gus")
        refused_at_handshake(stage, gus, cert, "incident 42: credentials leaked")
        login = tunnel.login()
        assert login.returncode != 0 and "incident 42: credentials leaked" in login.stderr, login
        listed = json.loads(wctl(stage, "locks", "ls", "--format=json"))
        (lock,) = [found for found in listed if found["spec"]["target"] == {"user": "gus"}]
        assert lock["metadata"]["name"] == lock_id
        wctl(stage, "rm", f"lock/{lock_id}")
        assert tunnel.login().returncode == 0
        with tunnel.client() as guss:
            works_for(guss, 0.3)
    finally:
        tunnel.stop()
