"""The agent's IAM path end to end: moto (IAM/STS), localdocdb (MONGODB-AWS, DescribeDBClusters).

botocore finds everything through environment variables, as on a real host:
credentials of the assumed WicketDatabaseService role, AWS_ENDPOINT_URL_STS/_RDS.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from localdocdb.localaws import ROLE_TAG_KEY, ROLE_TAG_VALUE, LocalAws, free_port
from localdocdb.process import LocalDocDBProcess
from tests.integration.agent.iam.conftest import (
    create_external_user,
    service_session_arn,
)
from tests.integration.agent.iam.upstream import RawUpstream
from tests.support.clients import StartDocDB
from wicket.agent.mongodb.aws_sasl import UpstreamAuthError, authenticate_mongodb_aws
from wicket.agent.mongodb.iam import AssumeRoleDenied, IamAuthenticator, db_user_role_arn

TAGS = ((ROLE_TAG_KEY, ROLE_TAG_VALUE),)


async def authenticated_user(upstream: RawUpstream) -> list[dict[str, str]]:
    status = await upstream.command("admin", {"connectionStatus": 1})
    assert status["ok"] == 1.0
    users: list[dict[str, str]] = status["authInfo"]["authenticatedUsers"]
    return users


async def test_guide_flow_db_user_to_mongodb_aws(
    agent_env: LocalAws, docdb: LocalDocDBProcess, upstream: RawUpstream
) -> None:
    create_external_user(docdb, agent_env.docdb_user_role_arn)
    iam = IamAuthenticator()
    # no aws.account_id, no cluster with this endpoint in (moto's) RDS: GetCallerIdentity
    account = await iam.account_id(
        database_aws_account_id=None, cluster_endpoint=f"localhost:{docdb.port}", region=None
    )
    assert account == agent_env.account_id
    role_arn = db_user_role_arn("wicket-docdb-user", account)
    assert role_arn == agent_env.docdb_user_role_arn
    credentials = await iam.credentials_for(
        role_arn=role_arn, assume_role_arn=None, external_id=None, session_name="alice", region=None
    )
    assert credentials.session_token is not None
    await authenticate_mongodb_aws(upstream.command, credentials, role_arn=role_arn)
    assert await authenticated_user(upstream) == [{"user": role_arn, "db": "$external"}]
    inserted = await upstream.command(
        "test", {"insert": "docs", "documents": [{"_id": 1, "via": "iam"}]}
    )
    assert inserted["ok"] == 1.0 and inserted["n"] == 1
    found = await upstream.command("test", {"find": "docs", "filter": {}})
    assert found["cursor"]["firstBatch"] == [{"_id": 1, "via": "iam"}]
    # the second session reuses the cached credentials and logs in again
    again = await iam.credentials_for(
        role_arn=role_arn, assume_role_arn=None, external_id=None, session_name="alice", region=None
    )
    assert again is credentials
    second = await RawUpstream.connect(docdb.port, docdb.ca_file)
    try:
        await authenticate_mongodb_aws(second.command, again, role_arn=role_arn)
        assert await authenticated_user(second) == [{"user": role_arn, "db": "$external"}]
    finally:
        await second.close()


async def test_role_chaining_with_external_id(
    agent_env: LocalAws,
    docdb: LocalDocDBProcess,
    upstream: RawUpstream,
    make_role: Callable[..., str],
) -> None:
    external_id = "wicket-external-id-1"
    hop = make_role(
        "wicket-hop",
        trusted_principals=(service_session_arn(agent_env),),
        external_id=external_id,
        attach_database_policy=True,
        tags=TAGS,
    )
    hop_name = hop.rsplit("/", 1)[-1]
    # a db-user role that trusts only sessions of the hop role: reachable by chaining only
    chained_user = make_role(
        "chained-docdb-user",
        trusted_principals=(f"arn:aws:sts::{agent_env.account_id}:assumed-role/{hop_name}/bob",),
        tags=TAGS,
    )
    create_external_user(docdb, chained_user)
    iam = IamAuthenticator()
    credentials = await iam.credentials_for(
        role_arn=chained_user,
        assume_role_arn=hop,
        external_id=external_id,
        session_name="bob",
        region=None,
    )
    await authenticate_mongodb_aws(upstream.command, credentials, role_arn=chained_user)
    assert await authenticated_user(upstream) == [{"user": chained_user, "db": "$external"}]

    # without the first hop the database service itself is not trusted
    with pytest.raises(AssumeRoleDenied) as direct:
        await iam.credentials_for(
            role_arn=chained_user,
            assume_role_arn=None,
            external_id=None,
            session_name="bob",
            region=None,
        )
    assert f"assuming the database user's IAM role {chained_user}" in str(direct.value)

    # a wrong external id fails the first hop, and the message says so
    with pytest.raises(AssumeRoleDenied) as first_hop:
        await iam.credentials_for(
            role_arn=chained_user,
            assume_role_arn=hop,
            external_id="not-the-external-id",
            session_name="bob",
            region=None,
        )
    text = str(first_hop.value)
    assert text.startswith(
        f"AccessDenied: User: {service_session_arn(agent_env)} is not authorized to perform: "
        f"sts:AssumeRole on resource: {hop}"
    )
    assert "the first hop of role chaining" in text
    assert '"sts:ExternalId": "not-the-external-id"' in text
    assert f"--role-arn {hop} --role-session-name test-trust-relationship --external-id" in text

    # the hop session is not trusted by this role: the second hop fails
    with pytest.raises(AssumeRoleDenied) as second_hop:
        await iam.credentials_for(
            role_arn=chained_user,
            assume_role_arn=hop,
            external_id=external_id,
            session_name="carol",
            region=None,
        )
    text = str(second_hop.value)
    hop_session = f"arn:aws:sts::{agent_env.account_id}:assumed-role/{hop_name}/carol"
    assert text.startswith(
        f"AccessDenied: User: {hop_session} is not authorized to perform: "
        f"sts:AssumeRole on resource: {chained_user}"
    )
    assert "the second hop of role chaining" in text
    assert f'"AWS": "{hop}"' in text  # the trust policy to add names the hop role


async def test_account_from_describe_db_clusters(
    monkeypatch: pytest.MonkeyPatch, agent_env: LocalAws, start_localdocdb: StartDocDB
) -> None:
    api_port = free_port()
    cluster_account = "210987654321"
    docdb = start_localdocdb(
        "--mode",
        "docdb",
        "--sts-endpoint",
        agent_env.endpoint,
        "--cluster-id",
        "my-docdb",
        "--aws-api-port",
        str(api_port),
        "--account-id",
        cluster_account,
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL_RDS", f"http://127.0.0.1:{api_port}")
    iam = IamAuthenticator()
    account = await iam.account_id(
        database_aws_account_id=None, cluster_endpoint=f"localhost:{docdb.port}", region=None
    )
    assert account == cluster_account
    # a host no cluster reports: the account falls back to the caller's (GetCallerIdentity)
    other = await iam.account_id(
        database_aws_account_id=None,
        cluster_endpoint="mongodb://elsewhere.example:27017/?tls=true",
        region="us-east-1",
    )
    assert other == agent_env.account_id
    # the configured account wins without asking anything
    assert (
        await iam.account_id(
            database_aws_account_id="333333333333", cluster_endpoint="localhost", region=None
        )
        == "333333333333"
    )


async def test_external_user_missing_gives_the_guides_message(
    agent_env: LocalAws, docdb: LocalDocDBProcess, upstream: RawUpstream
) -> None:
    iam = IamAuthenticator()
    role_arn = agent_env.docdb_user_role_arn
    credentials = await iam.credentials_for(
        role_arn=role_arn, assume_role_arn=None, external_id=None, session_name="dave", region=None
    )
    with pytest.raises(UpstreamAuthError) as info:
        await authenticate_mongodb_aws(upstream.command, credentials, role_arn=role_arn)
    text = str(info.value)
    assert text.startswith(
        'unable to authenticate using mechanism "MONGODB-AWS": Authentication failed.'
    )
    assert f'IAM role {role_arn} exists as a user in the "$external" database' in text
    assert f'db.createUser( {{ user: "{role_arn}", mechanisms: ["MONGODB-AWS"]' in text
    # following the message's advice fixes it
    create_external_user(docdb, role_arn)
    fresh = await RawUpstream.connect(docdb.port, docdb.ca_file)
    try:
        await authenticate_mongodb_aws(fresh.command, credentials, role_arn=role_arn)
        assert await authenticated_user(fresh) == [{"user": role_arn, "db": "$external"}]
    finally:
        await fresh.close()


async def test_account_falls_back_when_rds_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, agent_env: LocalAws
) -> None:
    closed = free_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL_RDS", f"http://127.0.0.1:{closed}")
    iam = IamAuthenticator()
    account = await iam.account_id(
        database_aws_account_id=None, cluster_endpoint="localhost:27017", region=None
    )
    assert account == agent_env.account_id
