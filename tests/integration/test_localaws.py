"""Integration tests for the local AWS: a real moto server on loopback, real boto3 calls.

They also pin down what moto evaluates with auth enforcement on (trust policies,
identity policies, conditions), which later troubleshooting tests rely on.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localdocdb.localaws import (
    DOCDB_USER_ROLE_NAME,
    POLICY_NAME,
    LocalAws,
    LocalAwsCredentials,
    LocalAwsError,
    MotoServer,
    RoleSpec,
    assume_role,
    caller_arn,
    create_role,
    database_access_policy_document,
    provision,
)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer.start() as server:
        yield server


@pytest.fixture(scope="module")
def local_aws(moto_server: MotoServer) -> LocalAws:
    return provision(moto_server.endpoint)


def _admin_iam(aws: LocalAws) -> Any:
    return aws.client("iam", aws.admin)


def _error_code(exc: ClientError) -> str:
    code: str = exc.response["Error"]["Code"]
    return code


def test_database_service_identity_is_an_ec2_like_role_session(local_aws: LocalAws) -> None:
    arn = caller_arn(local_aws.endpoint, local_aws.region, local_aws.database_service)
    assert arn.startswith(
        f"arn:aws:sts::{local_aws.account_id}:assumed-role/WicketDatabaseService/i-"
    )
    session = arn.rsplit("/", 1)[1]
    assert len(session) == 19
    int(session[2:], 16)
    assert local_aws.account_id == "123456789012"
    assert local_aws.database_service.session_token


def test_database_service_assumes_docdb_user_role(local_aws: LocalAws) -> None:
    creds = assume_role(
        local_aws.endpoint,
        local_aws.region,
        local_aws.database_service,
        local_aws.docdb_user_role_arn,
        "alice",
    )
    arn = caller_arn(local_aws.endpoint, local_aws.region, creds)
    assert arn == f"arn:aws:sts::{local_aws.account_id}:assumed-role/{DOCDB_USER_ROLE_NAME}/alice"


def test_iam_setup_matches_the_guide(local_aws: LocalAws) -> None:
    iam = _admin_iam(local_aws)
    policy = iam.get_policy(PolicyArn=local_aws.policy_arn)["Policy"]
    assert policy["PolicyName"] == POLICY_NAME
    version = iam.get_policy_version(
        PolicyArn=local_aws.policy_arn, VersionId=policy["DefaultVersionId"]
    )["PolicyVersion"]["Document"]
    document = json.loads(version) if isinstance(version, str) else version
    assert document == database_access_policy_document()
    condition = document["Statement"][1]["Condition"]
    assert condition == {"StringEquals": {"iam:ResourceTag/WicketDatabaseService": "Allowed"}}
    attached = iam.list_attached_role_policies(RoleName="WicketDatabaseService")
    assert [p["PolicyArn"] for p in attached["AttachedPolicies"]] == [local_aws.policy_arn]
    tags = iam.list_role_tags(RoleName=DOCDB_USER_ROLE_NAME)["Tags"]
    assert tags == [{"Key": "WicketDatabaseService", "Value": "Allowed"}]


def test_auth_is_enforced_signature_and_keys(local_aws: LocalAws) -> None:
    wrong_secret = LocalAwsCredentials(
        local_aws.database_service.access_key_id,
        "x" * 40,
        local_aws.database_service.session_token,
    )
    with pytest.raises(ClientError) as info:
        caller_arn(local_aws.endpoint, local_aws.region, wrong_secret)
    assert _error_code(info.value) == "SignatureDoesNotMatch"

    wrong_token = LocalAwsCredentials(
        local_aws.database_service.access_key_id,
        local_aws.database_service.secret_access_key,
        "not-the-token",
    )
    with pytest.raises(ClientError) as info:
        caller_arn(local_aws.endpoint, local_aws.region, wrong_token)
    assert _error_code(info.value) == "InvalidClientTokenId"

    unknown = LocalAwsCredentials("AKIAUNKNOWNUNKNOWN00", "y" * 40)
    with pytest.raises(ClientError) as info:
        caller_arn(local_aws.endpoint, local_aws.region, unknown)
    assert _error_code(info.value) == "InvalidClientTokenId"


def test_identity_policy_is_evaluated(local_aws: LocalAws) -> None:
    iam = _admin_iam(local_aws)
    iam.create_user(UserName="no-policies")
    key = iam.create_access_key(UserName="no-policies")["AccessKey"]
    user = LocalAwsCredentials(key["AccessKeyId"], key["SecretAccessKey"])
    with pytest.raises(ClientError) as info:
        assume_role(local_aws.endpoint, local_aws.region, user, local_aws.docdb_user_role_arn, "s1")
    assert _error_code(info.value) == "AccessDenied"
    # The database service's policy allows rds:DescribeDBClusters and sts:AssumeRole only.
    with pytest.raises(ClientError) as info:
        local_aws.client("iam").list_roles()
    assert _error_code(info.value) == "AccessDenied"


def test_trust_policy_is_evaluated_with_guide_shaped_message(local_aws: LocalAws) -> None:
    iam = _admin_iam(local_aws)
    other = f"arn:aws:iam::{local_aws.account_id}:user/someone-else"
    arn = create_role(
        iam,
        local_aws.account_id,
        RoleSpec(
            "untrusting-role",
            trusted_principals=(other,),
            tags=(("WicketDatabaseService", "Allowed"),),
        ),
        local_aws.policy_arn,
    )
    with pytest.raises(ClientError) as info:
        assume_role(local_aws.endpoint, local_aws.region, local_aws.database_service, arn, "s1")
    assert _error_code(info.value) == "AccessDenied"
    message = info.value.response["Error"]["Message"]
    service_arn = caller_arn(local_aws.endpoint, local_aws.region, local_aws.database_service)
    assert message.startswith(f"User: {service_arn} is not authorized to perform: sts:AssumeRole")


def test_trust_policy_naming_the_session_arn_allows(local_aws: LocalAws) -> None:
    iam = _admin_iam(local_aws)
    service_arn = caller_arn(local_aws.endpoint, local_aws.region, local_aws.database_service)
    arn = create_role(
        iam,
        local_aws.account_id,
        RoleSpec("trusts-session", trusted_principals=(service_arn,)),
        local_aws.policy_arn,
    )
    creds = assume_role(local_aws.endpoint, local_aws.region, local_aws.database_service, arn, "ok")
    assert caller_arn(local_aws.endpoint, local_aws.region, creds).endswith(
        "assumed-role/trusts-session/ok"
    )


def test_moto_account_root_principal_does_not_cover_roles(local_aws: LocalAws) -> None:
    """In AWS this would be allowed; moto compares principal ARNs literally."""
    iam = _admin_iam(local_aws)
    arn = create_role(
        iam,
        local_aws.account_id,
        RoleSpec(
            "trusts-account-root",
            trusted_principals=(f"arn:aws:iam::{local_aws.account_id}:root",),
        ),
        local_aws.policy_arn,
    )
    with pytest.raises(ClientError) as info:
        assume_role(local_aws.endpoint, local_aws.region, local_aws.database_service, arn, "s1")
    assert _error_code(info.value) == "AccessDenied"


def test_moto_does_not_enforce_resource_tag_condition(local_aws: LocalAws) -> None:
    """The guide's tag condition would refuse this in AWS; moto lets it through."""
    iam = _admin_iam(local_aws)
    arn = create_role(iam, local_aws.account_id, RoleSpec("untagged-role"), local_aws.policy_arn)
    creds = assume_role(local_aws.endpoint, local_aws.region, local_aws.database_service, arn, "s1")
    assert "assumed-role/untagged-role/s1" in caller_arn(
        local_aws.endpoint, local_aws.region, creds
    )


def test_moto_external_id_condition(local_aws: LocalAws) -> None:
    """A wrong external id is refused; a missing one passes in moto (not in AWS)."""
    iam = _admin_iam(local_aws)
    arn = create_role(
        iam,
        local_aws.account_id,
        RoleSpec("needs-external-id", external_id="wicket-ext"),
        local_aws.policy_arn,
    )
    args = (local_aws.endpoint, local_aws.region, local_aws.database_service, arn, "s1")
    with pytest.raises(ClientError) as info:
        assume_role(*args, external_id="wrong")
    assert _error_code(info.value) == "AccessDenied"
    assume_role(*args, external_id="wicket-ext")
    assume_role(*args)


def test_environment_drives_botocore_without_explicit_endpoint(local_aws: LocalAws) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": "/nonexistent"}
    env.update(local_aws.environment())
    code = (
        "import boto3\n"
        "print(boto3.client('sts').get_caller_identity()['Arn'])\n"
        "print(boto3.client('iam').meta.endpoint_url)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    arn, iam_endpoint = result.stdout.split()
    assert arn == caller_arn(local_aws.endpoint, local_aws.region, local_aws.database_service)
    assert iam_endpoint == local_aws.endpoint
    admin_env = local_aws.environment(local_aws.admin)
    assert admin_env["AWS_ACCESS_KEY_ID"] == local_aws.admin.access_key_id
    assert "AWS_SESSION_TOKEN" not in admin_env
    assert env["AWS_CONFIG_FILE"] == os.devnull


def test_state_file_round_trip_is_private(local_aws: LocalAws, tmp_path: Path) -> None:
    path = tmp_path / "aws.json"
    local_aws.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert LocalAws.load(path) == local_aws
    assert LocalAws.from_json(local_aws.to_json()) == local_aws
    assert local_aws.database_service.secret_access_key not in repr(local_aws)
    with pytest.raises(LocalAwsError):
        LocalAws.from_json('{"endpoint": "x"}')


def test_moto_server_stops_its_process_group(tmp_path: Path) -> None:
    log = tmp_path / "moto.log"
    server = MotoServer.start(log_file=log)
    pid = server.pid
    assert server.running()
    server.stop()
    assert not server.running()
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert "Running on" in log.read_text()


def test_moto_server_start_failure_reports_log(moto_server: MotoServer) -> None:
    busy_port = int(moto_server.endpoint.rsplit(":", 1)[1])
    with pytest.raises(LocalAwsError, match="moto_server exited"):
        MotoServer.start(port=busy_port, timeout=20)


def _cli(*args: str) -> list[str]:
    code = "from localdocdb.localaws_cli import aws_command; aws_command()"
    return [sys.executable, "-c", code, *args]


def test_cli_runs_until_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    env_file = tmp_path / "aws.env"
    process = subprocess.Popen(
        _cli("--state-file", str(state), "--env-file", str(env_file)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("ready "):
                break
        assert lines and lines[-1].startswith("ready "), lines
        port = int(lines[-1].split()[1])
        exports = dict(line.removeprefix("export ").split("=", 1) for line in lines[:-1])
        assert exports["AWS_ENDPOINT_URL_STS"] == f"http://127.0.0.1:{port}"
        assert "AWS_SESSION_TOKEN" in exports
        aws = LocalAws.load(state)
        assert stat.S_IMODE(state.stat().st_mode) == 0o600
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        assert env_file.read_text().splitlines() == lines[:-1]
        assert aws.endpoint == f"http://127.0.0.1:{port}"
        assert ":assumed-role/WicketDatabaseService/i-" in caller_arn(
            aws.endpoint, aws.region, aws.database_service
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        with pytest.raises(ConnectionRefusedError):  # moto is gone with the CLI
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_cli_bad_flag_is_a_usage_error() -> None:
    result = subprocess.run(
        _cli("--port", "notaport"), check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "Usage:" in result.stderr
    assert "Traceback" not in result.stderr
