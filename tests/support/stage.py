"""The guide's stage for engine tests: localdocdb with the `$external` IAM user (step 5),
an all-in-one cluster, and a database agent serving it with the database service's AWS role."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pymongo import MongoClient

from localdocdb.localaws import LocalAws
from localdocdb.process import LocalDocDBProcess
from tests.support.cluster import Cluster, WicketProcess, new_cluster, start_wicket
from tests.support.cluster import write_agent_config as agent_config


def create_external_user(docdb: LocalDocDBProcess, arn: str) -> None:
    """Step 5: `use $external; db.createUser({user: ARN, mechanisms: ["MONGODB-AWS"], ...})`."""
    master: MongoClient[dict[str, Any]]
    with MongoClient(docdb.uri(), serverSelectionTimeoutMS=5000) as master:
        master["$external"].command(
            "createUser", arn, mechanisms=["MONGODB-AWS"], roles=[{"role": "root", "db": "admin"}]
        )


def start_iam_stage(
    directory: Path, docdb: LocalDocDBProcess, aws: LocalAws
) -> tuple[Cluster, WicketProcess]:
    """A running cluster and an agent serving `docdb` as "my-docdb" over IAM (caller stops them)."""
    create_external_user(docdb, aws.docdb_user_role_arn)
    cluster = new_cluster(directory / "node")
    cluster.start()
    try:
        token = cluster.admin_call("POST", "/v1/tokens", {"type": "db"})["token"]
        (directory / "token").write_text(token)
        config = agent_config(
            directory / "agent",
            cluster,
            directory / "token",
            uri=f"localhost:{docdb.port}",
            extra=(
                "--aws-region",
                "us-east-1",
                "--aws-account-id",
                aws.account_id,
                "--tls-ca-file",
                str(docdb.ca_file),
            ),
        )
        agent = start_wicket(config, directory / "agent.log", env=aws.environment())
        agent.wait_for_log("tunnel to")
    except BaseException:
        cluster.stop()
        raise
    return cluster, agent
