"""The guide's troubleshooting section, each case end to end, as mongosh shows it.

mongosh connects straight to the proxy with the user's database certificate (no ALPN,
like `mongosh --tls --tlsCertificateKeyFile`), the agent fails upstream, and the user
reads what failed and what to check.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pymongo import MongoClient

from localdocdb.localaws import LocalAws, RoleSpec, create_role
from localdocdb.process import LocalDocDBProcess
from tests.integration.cluster.test_database_routes import User
from tests.support.clients import Mongosh, StartDocDB
from tests.support.cluster import Cluster, WicketProcess, new_cluster, start_wicket
from tests.support.cluster import write_agent_config as agent_config
from wicket.pki.keys import private_key_pem, write_private_file

NO_AWS = {
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ACCESS_KEY_ID": "",
    "AWS_SECRET_ACCESS_KEY": "",
    "AWS_SESSION_TOKEN": "",
}


@dataclass
class Stage:
    cluster: Cluster
    directory: Path
    aws: LocalAws
    agents: list[WicketProcess]

    def agent(self, name: str, uri: str, *extra: str, env: dict[str, str] | None = None) -> None:
        token = self.cluster.admin_call("POST", "/v1/tokens", {"type": "db"})["token"]
        token_file = self.directory / f"{name}.token"
        token_file.write_text(token)
        config = agent_config(
            self.directory / name, self.cluster, token_file, name=name, uri=uri, extra=extra
        )
        process = start_wicket(config, self.directory / f"{name}.log", env=env)
        process.wait_for_log("tunnel to")
        self.agents.append(process)

    def mongosh_error(self, mongosh: Mongosh, user: User, service: str, db_user: str) -> str:
        cert = user.database_cert(service, db_user, "test")
        pem = self.directory / f"{service}-{db_user}.pem"
        write_private_file(pem, cert + private_key_pem(user.key))
        ca = self.directory / "cluster-ca.pem"
        ca.write_bytes(user.host_ca)
        uri = f"mongodb://{self.cluster.proxy_addr}/test?directConnection=true&serverSelectionTimeoutMS=15000"
        result = mongosh.run(
            uri,
            "--tls",
            "--tlsCertificateKeyFile",
            str(pem),
            "--tlsCAFile",
            str(ca),
            "--quiet",
            "--eval",
            "db.runCommand({ping: 1})",
            timeout=90,
        )
        assert result.returncode != 0, result.stdout
        return result.stdout + result.stderr


@pytest.fixture
def stage(tmp_path: Path, local_aws: LocalAws) -> Iterator[Stage]:
    cluster = new_cluster(tmp_path / "node")
    cluster.start()
    stage = Stage(cluster, tmp_path, local_aws, [])
    try:
        yield stage
    finally:
        for agent in stage.agents:
            agent.stop()
        cluster.stop()


def iam_flags(aws: LocalAws, docdb: LocalDocDBProcess) -> tuple[str, ...]:
    return (
        "--aws-region",
        "us-east-1",
        "--aws-account-id",
        aws.account_id,
        "--tls-ca-file",
        str(docdb.ca_file),
    )


def alice(stage: Stage) -> User:
    return User(stage.cluster, "alice", ["access"], {"db_users": ["*"], "db_names": ["*"]})


def test_legacy_common_name_certificate(
    stage: Stage, start_localdocdb: StartDocDB, mongosh: Mongosh
) -> None:
    old = start_localdocdb("--legacy-cn-cert", "--sts-endpoint", stage.aws.endpoint)
    stage.agent(
        "old-docdb",
        f"localhost:{old.port}",
        *iam_flags(stage.aws, old),
        env=stage.aws.environment(),
    )
    output = stage.mongosh_error(mongosh, alice(stage), "old-docdb", "wicket-docdb-user")
    assert "x509: certificate relies on legacy Common Name field, use SANs instead" in output


def test_no_aws_credentials(stage: Stage, docdb: LocalDocDBProcess, mongosh: Mongosh) -> None:
    stage.agent("my-docdb", f"localhost:{docdb.port}", *iam_flags(stage.aws, docdb), env=NO_AWS)
    output = stage.mongosh_error(mongosh, alice(stage), "my-docdb", "wicket-docdb-user")
    assert "no AWS credentials" in output


def test_connection_timeout(stage: Stage, docdb: LocalDocDBProcess, mongosh: Mongosh) -> None:
    with socket.socket() as silent:  # accepts TCP, never speaks TLS
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        stage.agent(
            "slow-docdb",
            f"127.0.0.1:{port}",
            *iam_flags(stage.aws, docdb),
            env=stage.aws.environment(),
        )
        output = stage.mongosh_error(mongosh, alice(stage), "slow-docdb", "wicket-docdb-user")
    assert f"127.0.0.1:{port}" in output
    assert "timed out" in output


def test_assume_role_not_authorized(
    stage: Stage, docdb: LocalDocDBProcess, mongosh: Mongosh
) -> None:
    aws = stage.aws
    admin_iam = aws.client("iam", aws.admin)
    role_arn = create_role(
        admin_iam,
        aws.account_id,
        RoleSpec(
            "db-user-role",
            trusted_principals=(f"arn:aws:iam::{aws.account_id}:user/nobody",),
            tags=(("WicketDatabaseService", "Allowed"),),
        ),
        aws.policy_arn,
    )
    with MongoClient(docdb.uri(), serverSelectionTimeoutMS=5000) as master:
        master["$external"].command(
            "createUser",
            role_arn,
            mechanisms=["MONGODB-AWS"],
            roles=[{"role": "root", "db": "admin"}],
        )
    stage.agent(
        "my-docdb", f"localhost:{docdb.port}", *iam_flags(aws, docdb), env=aws.environment()
    )
    output = stage.mongosh_error(mongosh, alice(stage), "my-docdb", "db-user-role")
    assert "is not authorized to perform: sts:AssumeRole" in output
    assert role_arn in output
    assert "trust" in output.lower()


def test_mongodb_aws_authentication_failed(
    stage: Stage, docdb: LocalDocDBProcess, mongosh: Mongosh
) -> None:
    # the role exists and may be assumed, but no $external user was created for it (step 5)
    stage.agent(
        "my-docdb",
        f"localhost:{docdb.port}",
        *iam_flags(stage.aws, docdb),
        env=stage.aws.environment(),
    )
    output = stage.mongosh_error(mongosh, alice(stage), "my-docdb", "wicket-docdb-user")
    assert 'unable to authenticate using mechanism "MONGODB-AWS"' in output
    assert "$external" in output
