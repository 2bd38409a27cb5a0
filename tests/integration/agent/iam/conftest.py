"""Fixtures for the agent's IAM tests: botocore pointed at the local AWS by environment only."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pymongo import MongoClient

from localdocdb.localaws import (
    DATABASE_SERVICE_ROLE_NAME,
    LocalAws,
    LocalAwsCredentials,
    RoleSpec,
    create_role,
)
from localdocdb.process import LocalDocDBProcess
from tests.integration.agent.iam.upstream import RawUpstream


def clear_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every AWS_* variable and make sure nothing but loopback can be asked."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


def point_at_local_aws(
    monkeypatch: pytest.MonkeyPatch,
    local_aws: LocalAws,
    credentials: LocalAwsCredentials | None = None,
) -> None:
    """The database service's environment: its credentials and the local endpoints."""
    clear_aws_environment(monkeypatch)
    for name, value in local_aws.environment(credentials).items():
        monkeypatch.setenv(name, value)
    # moto answers rds:DescribeDBClusters too (with no clusters) unless a test overrides it.
    monkeypatch.setenv("AWS_ENDPOINT_URL_RDS", local_aws.endpoint)


@pytest.fixture
def agent_env(monkeypatch: pytest.MonkeyPatch, local_aws: LocalAws) -> LocalAws:
    """The agent runs as the assumed WicketDatabaseService role, with local endpoints."""
    point_at_local_aws(monkeypatch, local_aws)
    return local_aws


def service_session_arn(local_aws: LocalAws) -> str:
    """The database service's own identity (an EC2-like assumed-role session)."""
    return (
        f"arn:aws:sts::{local_aws.account_id}:assumed-role/{DATABASE_SERVICE_ROLE_NAME}/"
        f"{local_aws.database_service_session_name}"
    )


@pytest.fixture
def make_role(local_aws: LocalAws) -> Callable[..., str]:
    """Create a uniquely named IAM role (as the local admin); returns its ARN."""
    iam = local_aws.client("iam", local_aws.admin)

    def make(prefix: str, **spec: Any) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        return create_role(iam, local_aws.account_id, RoleSpec(name, **spec), local_aws.policy_arn)

    return make


def create_external_user(docdb: LocalDocDBProcess, role_arn: str) -> None:
    """The guide's step 5: the IAM role as a MONGODB-AWS user in `$external` (master user)."""
    client: MongoClient[dict[str, Any]]
    with MongoClient(docdb.uri(), serverSelectionTimeoutMS=5000) as client:
        client["$external"].command(
            "createUser",
            role_arn,
            mechanisms=["MONGODB-AWS"],
            roles=[{"role": "root", "db": "admin"}],
        )


@pytest.fixture
async def upstream(docdb: LocalDocDBProcess) -> AsyncIterator[RawUpstream]:
    """A raw TLS connection to the test's localdocdb."""
    connection = await RawUpstream.connect(docdb.port, docdb.ca_file)
    yield connection
    await connection.close()
