"""The troubleshooting cases of the guide, as the agent reports them (real moto, real sockets)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from localdocdb.localaws import (
    DATABASE_SERVICE_ROLE_NAME,
    ROLE_TAG_KEY,
    ROLE_TAG_VALUE,
    LocalAws,
)
from tests.integration.agent.iam.conftest import clear_aws_environment, service_session_arn
from wicket.agent.mongodb.iam import (
    AssumeRoleDenied,
    AwsCredentialsNotFound,
    AwsUnreachable,
    IamAuthenticator,
)
from wicket.errors import UpstreamError


async def test_no_credentials_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_aws_environment(monkeypatch)
    # even if it had credentials, nothing but loopback could be reached
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
    iam = IamAuthenticator()
    with pytest.raises(AwsCredentialsNotFound) as info:
        await iam.credentials_for(
            role_arn="arn:aws:iam::123456789012:role/wicket-docdb-user",
            assume_role_arn=None,
            external_id=None,
            session_name="alice",
            region="us-east-1",
        )
    text = str(info.value)
    assert "the database service found no AWS credentials" in text
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in text
    assert '/dev/null and config file /dev/null, profile "default" (AWS_PROFILE)' in text
    assert "container credentials" in text
    assert "EC2 instance metadata (IMDS): disabled by AWS_EC2_METADATA_DISABLED=true" in text
    assert "instance profile with the WicketDatabaseService role" in text
    # account resolution reports the same thing
    with pytest.raises(AwsCredentialsNotFound):
        await iam.account_id(
            database_aws_account_id=None, cluster_endpoint="localhost", region="us-east-1"
        )


async def test_profile_that_does_not_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_aws_environment(monkeypatch)
    monkeypatch.setenv("AWS_PROFILE", "wicket-ops")
    iam = IamAuthenticator()
    with pytest.raises(AwsCredentialsNotFound) as info:
        await iam.credentials_for(
            role_arn="arn:aws:iam::123456789012:role/wicket-docdb-user",
            assume_role_arn=None,
            external_id=None,
            session_name="alice",
            region=None,
        )
    text = str(info.value)
    assert "The config profile (wicket-ops) could not be found" in text
    assert 'profile "wicket-ops" (AWS_PROFILE)' in text


async def test_assume_role_not_authorized(
    agent_env: LocalAws, make_role: Callable[..., str]
) -> None:
    other = f"arn:aws:iam::{agent_env.account_id}:user/someone-else"
    untrusting = make_role(
        "db-user-role", trusted_principals=(other,), tags=((ROLE_TAG_KEY, ROLE_TAG_VALUE),)
    )
    iam = IamAuthenticator()
    with pytest.raises(AssumeRoleDenied) as info:
        await iam.credentials_for(
            role_arn=untrusting,
            assume_role_arn=None,
            external_id=None,
            session_name="alice",
            region=None,
        )
    assert isinstance(info.value, UpstreamError)
    text = str(info.value)
    caller = service_session_arn(agent_env)
    # AWS's own sentence, as the guide shows it
    assert text.startswith(
        f"AccessDenied: User: {caller} is not authorized to perform: sts:AssumeRole "
        f"on resource: {untrusting}"
    )
    assert f"assuming the database user's IAM role {untrusting}" in text
    service_role = f"arn:aws:iam::{agent_env.account_id}:role/{DATABASE_SERVICE_ROLE_NAME}"
    assert f"The trust relationship of {untrusting} must allow {service_role}" in text
    trust, _ = json.JSONDecoder().raw_decode(text[text.index("{") :])
    assert trust["Statement"] == [
        {"Effect": "Allow", "Principal": {"AWS": service_role}, "Action": "sts:AssumeRole"}
    ]
    assert '"iam:ResourceTag/WicketDatabaseService": "Allowed"' in text
    assert (
        f"aws sts assume-role --role-arn {untrusting} --role-session-name test-trust-relationship"
        in text
    )


async def test_sts_connection_refused(monkeypatch: pytest.MonkeyPatch, agent_env: LocalAws) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{closed_port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", endpoint)
    iam = IamAuthenticator()
    with pytest.raises(AwsUnreachable) as info:
        await iam.credentials_for(
            role_arn=agent_env.docdb_user_role_arn,
            assume_role_arn=None,
            external_id=None,
            session_name="alice",
            region=None,
        )
    text = str(info.value)
    assert f"AWS STS at {endpoint} could not be reached from the database service" in text
    assert f"Check that this host can reach {endpoint}" in text
    assert "AWS_ENDPOINT_URL_STS" in text


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback TCP server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    for connection in accepted:
        connection.close()
    listener.close()


async def test_sts_timeout(
    monkeypatch: pytest.MonkeyPatch, agent_env: LocalAws, silent_server: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", silent_server)
    iam = IamAuthenticator(call_timeout=1.5)
    with pytest.raises(AwsUnreachable) as info:
        await iam.credentials_for(
            role_arn=agent_env.docdb_user_role_arn,
            assume_role_arn=None,
            external_id=None,
            session_name="alice",
            region=None,
        )
    text = str(info.value)
    assert f"AWS STS at {silent_server} could not be reached" in text
    assert "no answer; deadline 2 s" in text
