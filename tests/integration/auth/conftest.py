"""Fixtures for MONGODB-AWS tests: a real moto server (IAM + STS) with auth enforcement on."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from pymongo.errors import OperationFailure

import localdocdb.commands.auth  # noqa: F401 - registers the handlers
from localdocdb.auth.users import UserStore
from localdocdb.commands.registry import CommandContext
from localdocdb.dispatch import run_command
from localdocdb.engine.storage import Catalog
from localdocdb.state import ConnectionState, Mode, ServerConfig, ServerState

ROOT = Path(__file__).resolve().parents[3]
MOTO_SERVER = ROOT / ".venv" / "bin" / "moto_server"
ACCOUNT = "123456789012"
SERVICE_USER = "wicket-database-service"
DB_ROLE = "wicket-docdb-user"
ORPHAN_ROLE = "wicket-orphan-role"  # a role with no $external user
IAM_USER = "alice"


@dataclass(frozen=True)
class AwsKeys:
    """One set of AWS credentials (session token for assumed roles)."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


@dataclass(frozen=True)
class LocalSts:
    """A running moto server with auth on, and credentials made through it."""

    endpoint: str
    db_role: AwsKeys  # assumed wicket-docdb-user
    orphan_role: AwsKeys  # assumed wicket-orphan-role
    iam_user: AwsKeys  # alice's long-term keys


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(endpoint: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):  # noqa: S310 - loopback
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise TimeoutError(f"moto_server at {endpoint} not ready after {timeout}s")


def _post(url: str, body: bytes) -> None:
    # text/plain: with the urllib default (a form) werkzeug would swallow the body.
    request = urllib.request.Request(  # noqa: S310 - loopback
        url, data=body, method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        assert response.status == 200


@pytest.fixture(scope="module")
def local_sts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSts]:
    """moto on loopback: IAM entities made with default keys, then auth enforcement on."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    process = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _wait_ready(endpoint, process)
        defaults: dict[str, Any] = {
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
        }
        iam = boto3.client("iam", **defaults)
        iam.create_user(UserName=SERVICE_USER)
        service_key = iam.create_access_key(UserName=SERVICE_USER)["AccessKey"]
        allow_assume = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
        }
        iam.put_user_policy(
            UserName=SERVICE_USER, PolicyName="assume", PolicyDocument=json.dumps(allow_assume)
        )
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{SERVICE_USER}"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        for role in (DB_ROLE, ORPHAN_ROLE):
            iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
        iam.create_user(UserName=IAM_USER)
        alice_key = iam.create_access_key(UserName=IAM_USER)["AccessKey"]
        _post(f"{endpoint}/moto-api/reset-auth", b"0")  # from now on every request is verified

        sts = boto3.client(
            "sts",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=service_key["AccessKeyId"],
            aws_secret_access_key=service_key["SecretAccessKey"],
        )

        def assume(role: str) -> AwsKeys:
            credentials = sts.assume_role(
                RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{role}", RoleSessionName="wicket-test"
            )["Credentials"]
            return AwsKeys(
                credentials["AccessKeyId"],
                credentials["SecretAccessKey"],
                credentials["SessionToken"],
            )

        yield LocalSts(
            endpoint=endpoint,
            db_role=assume(DB_ROLE),
            orphan_role=assume(ORPHAN_ROLE),
            iam_user=AwsKeys(alice_key["AccessKeyId"], alice_key["SecretAccessKey"]),
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


class Client:
    """One connection to a ServerState; commands go through the registered handlers."""

    auth_ctx: Any = None

    def __init__(self, server: ServerState) -> None:
        self.server = server
        connection_id = server.next_connection_id()
        self.connection = ConnectionState(connection_id, "127.0.0.1:50000", "127.0.0.1:27017")

    def context(self, db: str, name: str) -> CommandContext:
        """A handler context for `name` on `db`."""
        return CommandContext(self.server, self.connection, db, name)

    async def run(self, db: str, cmd: Mapping[str, Any]) -> dict[str, Any]:
        """Run a command through the server's own dispatch (auth gate, handler, errors)."""
        return await run_command(self.server, self.connection, dict(cmd), db)

    async def command(self, db: str, cmd: Mapping[str, Any], **_: Any) -> dict[str, Any]:
        """pymongo's AsyncConnection.command shape: raise OperationFailure on ok: 0."""
        reply = await self.run(db, cmd)
        if not reply["ok"]:
            raise OperationFailure(reply["errmsg"], reply["code"], reply)
        return reply


MakeServer = Callable[..., ServerState]


@pytest.fixture
def make_docdb(tmp_path: Path, local_sts: LocalSts) -> Iterator[MakeServer]:
    """Build docdb-mode ServerStates whose STS endpoint is the moto server."""
    servers: list[ServerState] = []

    def make(**config: Any) -> ServerState:
        config.setdefault("sts_endpoint", local_sts.endpoint)
        settings = ServerConfig(
            port=0,
            tls_dir=tmp_path / "tls",
            master_user="master",
            master_password="master-pw",
            mode=Mode.DOCDB,
            **config,
        )
        users = UserStore.open(None)
        users.ensure_master_user("master", "master-pw")
        server = ServerState(settings, Catalog.open(None), users)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()
