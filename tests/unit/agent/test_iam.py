"""IAM side of the agent: role ARN mapping, messages, and the credentials cache.

The cache tests run the real IamAuthenticator against moto's in-process STS (no
network), with botocore's own event hooks counting the AssumeRole calls and an
injected clock moving time.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import botocore.session
import pytest
from moto import mock_aws

from wicket.agent.mongodb.iam import (
    AssumeRoleDenied,
    AwsCredentials,
    AwsCredentialsNotFound,
    Hop,
    IamAuthenticator,
    assume_role_denied_message,
    db_user_role_arn,
    endpoint_host,
    no_credentials_message,
    region_of_docdb_host,
    role_arn_of_caller,
    role_session_name,
    utc_now,
)
from wicket.errors import AccessDenied, BadParameter, UpstreamError

ACCOUNT = "111111111111"
DB_ROLE = f"arn:aws:iam::{ACCOUNT}:role/db-user-role"
HOP_ROLE = f"arn:aws:iam::{ACCOUNT}:role/teleport-db-hop"
SERVICE_SESSION = (
    f"arn:aws:sts::{ACCOUNT}:assumed-role/teleport-db-service-role/i-0123456789abcdef0"
)
AWS_DENIED = (
    f"User: {SERVICE_SESSION} is not authorized to perform: sts:AssumeRole on resource: {DB_ROLE}"
)


@pytest.mark.parametrize(
    ("db_user", "expected"),
    [
        ("wicket-docdb-user", f"arn:aws:iam::{ACCOUNT}:role/wicket-docdb-user"),
        ("a", f"arn:aws:iam::{ACCOUNT}:role/a"),
        ("x" * 64, f"arn:aws:iam::{ACCOUNT}:role/{'x' * 64}"),
        ("name+=,.@_-1", f"arn:aws:iam::{ACCOUNT}:role/name+=,.@_-1"),
        (DB_ROLE, DB_ROLE),
        ("arn:aws:iam::222222222222:role/other", "arn:aws:iam::222222222222:role/other"),
        (
            "arn:aws:iam::222222222222:role/team/db/user",
            "arn:aws:iam::222222222222:role/team/db/user",
        ),
        ("arn:aws-cn:iam::222222222222:role/r", "arn:aws-cn:iam::222222222222:role/r"),
    ],
)
def test_db_user_role_arn(db_user: str, expected: str) -> None:
    assert db_user_role_arn(db_user, ACCOUNT) == expected


def test_db_user_role_arn_partition() -> None:
    assert db_user_role_arn("r", ACCOUNT, "aws-us-gov") == f"arn:aws-us-gov:iam::{ACCOUNT}:role/r"
    with pytest.raises(BadParameter, match="partition"):
        db_user_role_arn("r", ACCOUNT, "azure")


@pytest.mark.parametrize(
    ("db_user", "fragment"),
    [
        (f"arn:aws:iam::{ACCOUNT}:user/alice", "IAM user ARN"),
        (SERVICE_SESSION, "not a role"),
        (f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:c", "not a role"),
        (f"arn:aws:iam::{ACCOUNT}:role/bad name", "path and name"),
        (f"arn:aws:iam::{ACCOUNT}:role/a//b", "path and name"),
        (f"arn:aws:iam::{ACCOUNT}:role/", "path and name"),
        (f"arn:aws:iam::{ACCOUNT}:role/{'x' * 65}", "path and name"),
        ("arn:aws:iam::12345:role/r", "12 digits"),
        ("arn:aws:iam:us-east-1:111111111111:role/r", "not a valid IAM role ARN"),
        ("arn:aws", "not a valid ARN"),
        ("team/user", "not an IAM role name"),
        ("with space", "not an IAM role name"),
        ("", "not an IAM role name"),
        ("x" * 65, "not an IAM role name"),
        ("ünïcode", "not an IAM role name"),
    ],
)
def test_db_user_role_arn_refusals(db_user: str, fragment: str) -> None:
    with pytest.raises(BadParameter, match=fragment):
        db_user_role_arn(db_user, ACCOUNT)


def test_db_user_role_arn_bad_account() -> None:
    with pytest.raises(BadParameter, match="12 digits"):
        db_user_role_arn("r", "1234")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("alice", "alice"), ("a", "a-"), ("alice smith/ops", "alice-smith-ops"), ("x" * 80, "x" * 64)],
)
def test_role_session_name(name: str, expected: str) -> None:
    assert role_session_name(name) == expected


def test_small_helpers() -> None:
    assert role_arn_of_caller(SERVICE_SESSION) == (
        f"arn:aws:iam::{ACCOUNT}:role/teleport-db-service-role"
    )
    assert role_arn_of_caller(f"arn:aws:iam::{ACCOUNT}:user/u") == f"arn:aws:iam::{ACCOUNT}:user/u"
    assert endpoint_host("Docdb.Cluster-x.us-east-2.docdb.amazonaws.com:27017") == (
        "docdb.cluster-x.us-east-2.docdb.amazonaws.com"
    )
    assert endpoint_host("mongodb://u:p@host-a:27017,host-b/?tls=true") == "host-a"
    assert endpoint_host("localhost") == "localhost"
    assert region_of_docdb_host("c.cluster-x.eu-west-1.docdb.amazonaws.com") == "eu-west-1"
    assert region_of_docdb_host("localhost") is None
    with pytest.raises(BadParameter):
        endpoint_host("mongodb://")


def test_no_credentials_message_lists_the_chain() -> None:
    text = no_credentials_message(
        {
            "AWS_PROFILE": "ops",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    assert "found no AWS credentials" in text
    assert "AWS_ACCESS_KEY_ID" in text
    assert 'shared credentials file /dev/null and config file /dev/null, profile "ops"' in text
    assert "container credentials" in text
    assert "EC2 instance metadata (IMDS): disabled by AWS_EC2_METADATA_DISABLED=true" in text
    assert "instance profile with the WicketDatabaseService role" in text


@pytest.mark.parametrize(
    ("chain", "index", "fragment"),
    [
        ((Hop(DB_ROLE),), 0, f"assuming the database user's IAM role {DB_ROLE}"),
        ((Hop(HOP_ROLE, "ext-1"), Hop(DB_ROLE)), 0, "the first hop of role chaining"),
        ((Hop(HOP_ROLE, "ext-1"), Hop(DB_ROLE)), 1, "the second hop of role chaining"),
    ],
)
def test_assume_role_denied_message(chain: tuple[Hop, ...], index: int, fragment: str) -> None:
    target = chain[index].role_arn
    aws = AWS_DENIED.replace(DB_ROLE, target)
    text = assume_role_denied_message(aws, chain=chain, index=index)
    assert text.startswith(f"AccessDenied: {aws}\n")
    assert fragment in text
    caller_role = f"arn:aws:iam::{ACCOUNT}:role/teleport-db-service-role"
    assert f"The trust relationship of {target} must allow {caller_role}" in text
    start = text.index("{")
    trust, end = json.JSONDecoder().raw_decode(text[start:])
    statement = trust["Statement"][0]
    assert statement["Principal"] == {"AWS": caller_role}
    assert statement["Action"] == "sts:AssumeRole"
    assert ("Condition" in statement) is (chain[index].external_id is not None)
    assert "iam:ResourceTag/WicketDatabaseService" in text[start + end :]
    command = f"aws sts assume-role --role-arn {target} --role-session-name test-trust-relationship"
    assert command in text


# -- the cache, against moto's in-process STS ----------------------------------------


class Clock:
    """A clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now


class CountingSession:
    """A botocore session factory whose sessions count sts:AssumeRole calls (botocore hooks)."""

    def __init__(self) -> None:
        self.assume_calls: list[dict[str, Any]] = []

    def __call__(self) -> Any:
        session = botocore.session.get_session()
        session.register("provide-client-params.sts.AssumeRole", self._count)
        return session

    def _count(self, params: dict[str, Any], **kwargs: Any) -> None:
        self.assume_calls.append(dict(params))


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDUNITTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unit-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    with mock_aws():
        yield


async def test_twenty_concurrent_callers_share_one_assume_role(aws_env: None) -> None:
    clock = Clock()
    counter = CountingSession()
    iam = IamAuthenticator(clock=clock, botocore_session_factory=counter)

    async def get() -> AwsCredentials:
        return await iam.credentials_for(
            role_arn=DB_ROLE,
            assume_role_arn=None,
            external_id=None,
            session_name="alice",
            region=None,
        )

    results = await asyncio.gather(*(get() for _ in range(20)))
    assert len(counter.assume_calls) == 1
    assert counter.assume_calls[0]["RoleArn"] == DB_ROLE
    assert counter.assume_calls[0]["RoleSessionName"] == "alice"
    assert len({r.access_key_id for r in results}) == 1
    first = results[0]
    assert first.session_token
    assert first.expiration is not None
    assert "secret" not in repr(first) and first.session_token not in repr(first)
    # still fresh a second before the refresh margin: served from the cache
    clock.now = first.expiration - timedelta(minutes=5, seconds=1)
    assert await get() == first
    assert len(counter.assume_calls) == 1
    # inside the margin: refreshed, once, for all concurrent callers
    clock.now = first.expiration - timedelta(minutes=5) + timedelta(seconds=1)
    again = await asyncio.gather(*(get() for _ in range(20)))
    assert len(counter.assume_calls) == 2
    assert {r.access_key_id for r in again} == {again[0].access_key_id}
    assert again[0].access_key_id != first.access_key_id


async def test_cache_is_per_chain_and_session(aws_env: None) -> None:
    counter = CountingSession()
    iam = IamAuthenticator(botocore_session_factory=counter, refresh_margin=timedelta(minutes=1))
    base = {"assume_role_arn": None, "external_id": None, "region": None}
    alice = await iam.credentials_for(role_arn=DB_ROLE, session_name="alice", **base)
    bob = await iam.credentials_for(role_arn=DB_ROLE, session_name="bob", **base)
    assert alice != bob
    assert len(counter.assume_calls) == 2
    chained = await iam.credentials_for(
        role_arn=DB_ROLE,
        assume_role_arn=HOP_ROLE,
        external_id="ext-1",
        session_name="alice",
        region=None,
    )
    assert chained not in (alice, bob)
    assert [(c["RoleArn"], c.get("ExternalId")) for c in counter.assume_calls[2:]] == [
        (HOP_ROLE, "ext-1"),
        (DB_ROLE, None),
    ]
    await iam.credentials_for(
        role_arn=DB_ROLE,
        assume_role_arn=HOP_ROLE,
        external_id="ext-1",
        session_name="alice",
        region=None,
    )
    assert len(counter.assume_calls) == 4


async def test_cancelled_caller_does_not_cancel_shared_refresh(aws_env: None) -> None:
    counter = CountingSession()
    iam = IamAuthenticator(botocore_session_factory=counter)
    kwargs: dict[str, Any] = {
        "role_arn": DB_ROLE,
        "assume_role_arn": None,
        "external_id": None,
        "session_name": "carol",
        "region": None,
    }
    doomed = asyncio.ensure_future(iam.credentials_for(**kwargs))
    survivor = asyncio.ensure_future(iam.credentials_for(**kwargs))
    await asyncio.sleep(0)
    doomed.cancel()
    credentials = await survivor
    assert credentials.session_token
    assert len(counter.assume_calls) == 1


async def test_parameter_errors(aws_env: None) -> None:
    iam = IamAuthenticator()
    with pytest.raises(BadParameter, match="external_id"):
        await iam.credentials_for(
            role_arn=DB_ROLE, assume_role_arn=None, external_id="x", session_name="a", region=None
        )
    with pytest.raises(BadParameter, match=r"aws\.assume_role_arn"):
        await iam.credentials_for(
            role_arn=DB_ROLE,
            assume_role_arn=f"arn:aws:iam::{ACCOUNT}:user/u",
            external_id=None,
            session_name="a",
            region=None,
        )
    with pytest.raises(BadParameter, match=r"aws\.account_id"):
        await iam.account_id(
            database_aws_account_id="12", cluster_endpoint="localhost", region=None
        )
    assert (
        await iam.account_id(
            database_aws_account_id="999999999999", cluster_endpoint="localhost", region=None
        )
        == "999999999999"
    )


async def test_no_credentials_is_reported_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    iam = IamAuthenticator()
    with pytest.raises(AwsCredentialsNotFound) as info:
        await iam.credentials_for(
            role_arn=DB_ROLE, assume_role_arn=None, external_id=None, session_name="a", region=None
        )
    assert isinstance(info.value, UpstreamError)
    assert "found no AWS credentials" in str(info.value)


def test_error_family() -> None:
    assert issubclass(AssumeRoleDenied, UpstreamError)
    assert issubclass(AssumeRoleDenied, AccessDenied)
