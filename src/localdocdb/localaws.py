"""A local AWS (moto server) with the guide's IAM setup, for tests and the demo.

Layer: local stand-in (process management and provisioning; no Wicket code depends on it).

`MotoServer` runs moto's server on loopback as its own process group. `provision()`
creates, with moto's default (unauthenticated) access, one admin IAM user; then it
switches moto's auth enforcement on (`POST /moto-api/reset-auth` with body `0`: from
the next request on, every call must be SigV4-signed with a known key and be allowed
by the caller's policies); then, as that admin, it creates the guide's step 3 and
step 5 setup under our names and assumes `WicketDatabaseService` with an EC2-like
session name, which gives the credentials the database service runs with.

What moto 5.2 evaluates with auth on (see moto/iam/access_control.py; the
integration tests in tests/integration/test_localaws.py check each point):

- the signature and the access key / session token of every call;
- the caller's identity policies (Allow/Deny, Action and Resource wildcards);
- on sts:AssumeRole, the target role's trust policy: the Principal must be `*`
  or list the caller's ARN exactly (IAM user ARN or
  `arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`). An account principal
  (`arn:aws:iam::ACCT:root`) does NOT cover the account's users and roles in moto,
  unlike AWS. That is why our trust policies say "this account" as
  `Principal {"AWS": "*"}` + `StringEquals aws:PrincipalAccount`, which means the
  same thing in AWS and works in moto;
- conditions: only `StringEquals`, and only context keys moto supplies, which is
  just `sts:ExternalId` in a trust policy. A condition whose key is not supplied
  passes, so the identity policy's `iam:ResourceTag/...` condition is NOT enforced
  (a role without the tag can be assumed) and a trust policy requiring an external
  id is satisfied by a call that sends none. Timestamps and credential expiry are
  not checked either: Wicket must not rely on moto for any of these.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3

DEFAULT_REGION = "us-east-1"
MOTO_DEFAULT_ACCOUNT_ID = "123456789012"
ADMIN_USER_NAME = "wicket-local-admin"
ADMIN_POLICY_NAME = "WicketLocalAdministrator"
POLICY_NAME = "WicketDatabaseAccessDocumentDB"
DATABASE_SERVICE_ROLE_NAME = "WicketDatabaseService"
DOCDB_USER_ROLE_NAME = "wicket-docdb-user"
ROLE_TAG_KEY = "WicketDatabaseService"
ROLE_TAG_VALUE = "Allowed"
# The longest session AWS allows for a role (its MaxSessionDuration can be at most 12 h).
MAX_SESSION_SECONDS = 43200
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
HTTP_TIMEOUT_SECONDS = 10.0
LOG_TAIL_BYTES = 4000
STATE_FILE_LIMIT_BYTES = 64 * 1024


class LocalAwsError(Exception):
    """The local AWS could not be started or provisioned."""


@dataclass(frozen=True)
class LocalAwsCredentials:
    """One set of AWS credentials issued by the local AWS."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RoleSpec:
    """An extra IAM role for tests (e.g. one the database service may not assume)."""

    name: str
    # ARNs allowed to assume the role; None means any principal of this account.
    trusted_principals: tuple[str, ...] | None = None
    tags: tuple[tuple[str, str], ...] = ()
    attach_database_policy: bool = False
    # When set, the trust policy requires this sts:ExternalId (moto: only if one is sent).
    external_id: str | None = None


def database_access_policy_document() -> dict[str, Any]:
    """The guide's step 3 policy JSON, with our tag name."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["rds:DescribeDBClusters"],
                "Resource": "*",
            },
            {
                "Effect": "Allow",
                "Action": ["sts:AssumeRole"],
                "Resource": "*",
                "Condition": {"StringEquals": {f"iam:ResourceTag/{ROLE_TAG_KEY}": ROLE_TAG_VALUE}},
            },
        ],
    }


def trust_policy_document(
    account_id: str,
    trusted_principals: tuple[str, ...] | None = None,
    external_id: str | None = None,
) -> dict[str, Any]:
    """A role trust policy: this account (the console's "AWS account" option) or named ARNs."""
    statement: dict[str, Any] = {"Effect": "Allow", "Action": "sts:AssumeRole"}
    equals: dict[str, str] = {}
    # Order matters to moto: it pairs the values it has with the expected values by
    # position, so a key it supplies (sts:ExternalId) must come before one it does not.
    if external_id is not None:
        equals["sts:ExternalId"] = external_id
    if trusted_principals is None:
        # Same meaning as Principal arn:aws:iam::ACCT:root in AWS; see the module docstring.
        statement["Principal"] = {"AWS": "*"}
        equals["aws:PrincipalAccount"] = account_id
    else:
        statement["Principal"] = {"AWS": list(trusted_principals)}
    if equals:
        statement["Condition"] = {"StringEquals": equals}
    return {"Version": "2012-10-17", "Statement": [statement]}


def ec2_instance_session_name() -> str:
    """A role session name like the one EC2 uses for an instance profile (i-<17 hex>)."""
    return "i-" + secrets.token_hex(9)[:17]


@dataclass(frozen=True)
class LocalAws:
    """Where the local AWS is and the credentials and ARNs it was provisioned with."""

    endpoint: str
    region: str
    account_id: str
    admin: LocalAwsCredentials
    database_service: LocalAwsCredentials
    database_service_role_arn: str
    docdb_user_role_arn: str
    policy_arn: str
    database_service_session_name: str = ""

    def environment(self, credentials: LocalAwsCredentials | None = None) -> dict[str, str]:
        """Environment variables that point botocore at this local AWS, and only at it."""
        chosen = credentials if credentials is not None else self.database_service
        env = {
            "AWS_ACCESS_KEY_ID": chosen.access_key_id,
            "AWS_SECRET_ACCESS_KEY": chosen.secret_access_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL_STS": self.endpoint,
            "AWS_ENDPOINT_URL_IAM": self.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
        if chosen.session_token is not None:
            env["AWS_SESSION_TOKEN"] = chosen.session_token
        return env

    def session(self, credentials: LocalAwsCredentials | None = None) -> boto3.Session:
        """A boto3 session with the given credentials (default: the database service's)."""
        chosen = credentials if credentials is not None else self.database_service
        return _session(chosen, self.region)

    def client(self, service: str, credentials: LocalAwsCredentials | None = None) -> Any:
        """A boto3 client for `service` on the local endpoint."""
        return self.session(credentials).client(service, endpoint_url=self.endpoint)

    def to_json(self) -> str:
        """The state file's content (contains secrets: write it 0600)."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LocalAws:
        """Read what `to_json` wrote."""
        if len(text) > STATE_FILE_LIMIT_BYTES:
            raise LocalAwsError("local AWS state file is too large")
        try:
            raw = json.loads(text)
            values = dict(raw)
            values["admin"] = LocalAwsCredentials(**raw["admin"])
            values["database_service"] = LocalAwsCredentials(**raw["database_service"])
            return cls(**values)
        except (ValueError, TypeError, KeyError) as exc:
            raise LocalAwsError(f"local AWS state file is not valid: {exc}") from exc

    def save(self, path: Path) -> None:
        """Write the state file with mode 0600 (it holds credentials)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(self.to_json())

    @classmethod
    def load(cls, path: Path) -> LocalAws:
        """Read a state file written by `save`."""
        with path.open("r", encoding="utf-8") as handle:
            return cls.from_json(handle.read(STATE_FILE_LIMIT_BYTES + 1))


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind to port 0 and ask)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _moto_server_command(host: str, port: int) -> list[str]:
    """The moto_server script next to our interpreter, else `python -m moto.server`."""
    script = Path(sys.executable).parent / "moto_server"
    if script.exists():
        return [str(script), "-H", host, "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]


def _log_tail(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


class MotoServer:
    """The moto server process on loopback, started and stopped cleanly."""

    def __init__(
        self, process: subprocess.Popen[bytes], endpoint: str, log_path: Path, owns_log: bool
    ) -> None:
        self._process = process
        self.endpoint = endpoint
        self.log_path = log_path
        self._owns_log = owns_log

    @property
    def pid(self) -> int:
        """The server's process id (also its process group id)."""
        return self._process.pid

    @classmethod
    def start(
        cls,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_file: Path | None = None,
        timeout: float = STARTUP_TIMEOUT_SECONDS,
    ) -> MotoServer:
        """Start moto_server and wait until it answers HTTP."""
        chosen_port = port or free_port(host)
        owns_log = log_file is None
        if log_file is None:
            fd, name = tempfile.mkstemp(prefix="moto-", suffix=".log")
            os.close(fd)
            log_file = Path(name)
        env = dict(os.environ)
        # moto must not read credentials or config from this machine, nor reach out.
        env.update(
            {
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        with log_file.open("ab") as log:
            process = subprocess.Popen(
                _moto_server_command(host, chosen_port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        server = cls(process, f"http://{host}:{chosen_port}", log_file, owns_log)
        try:
            server._wait_ready(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"{self.endpoint}/moto-api/config"
        while True:
            if self._process.poll() is not None:
                raise LocalAwsError(
                    f"moto_server exited with status {self._process.returncode}; "
                    f"log tail:\n{_log_tail(self.log_path)}"
                )
            # Werkzeug logs "Running on" only once it has bound the port: without it, an
            # answer could come from another server already on that port.
            if "Running on" in _log_tail(self.log_path):
                try:
                    with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310
                        if 200 <= response.status < 300 and self._process.poll() is None:
                            return  # (moto answers this GET with 201)
                except (urllib.error.URLError, OSError):
                    pass
            if time.monotonic() >= deadline:
                raise LocalAwsError(
                    f"moto_server did not answer on {self.endpoint} within {timeout:.0f} s; "
                    f"log tail:\n{_log_tail(self.log_path)}"
                )
            time.sleep(0.1)

    def running(self) -> bool:
        """Whether the process is still alive."""
        return self._process.poll() is None

    def stop(self) -> None:
        """Stop the server's whole process group (SIGTERM, then SIGKILL)."""
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
        if self._owns_log:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> MotoServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _session(credentials: LocalAwsCredentials, region: str) -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
        region_name=region,
    )


def _credentials_from_sts(response: Mapping[str, Any]) -> LocalAwsCredentials:
    creds = response["Credentials"]
    return LocalAwsCredentials(
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
        session_token=creds["SessionToken"],
    )


def enable_auth_enforcement(endpoint: str) -> None:
    """Make moto authenticate and authorize every following request."""
    # Not form-encoded: moto reads the raw body, which a form content type would consume.
    request = urllib.request.Request(  # noqa: S310
        f"{endpoint}/moto-api/reset-auth",
        data=b"0",
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310
        if response.status != 200:
            raise LocalAwsError(f"moto refused to enable auth: HTTP {response.status}")


def assume_role(
    endpoint: str,
    region: str,
    credentials: LocalAwsCredentials,
    role_arn: str,
    session_name: str,
    *,
    duration_seconds: int = 3600,
    external_id: str | None = None,
) -> LocalAwsCredentials:
    """Call sts:AssumeRole on the local AWS and return the session's credentials."""
    sts = _session(credentials, region).client("sts", endpoint_url=endpoint)
    kwargs: dict[str, Any] = {
        "RoleArn": role_arn,
        "RoleSessionName": session_name,
        "DurationSeconds": duration_seconds,
    }
    if external_id is not None:
        kwargs["ExternalId"] = external_id
    response = sts.assume_role(**kwargs)
    return _credentials_from_sts(response)


def caller_arn(endpoint: str, region: str, credentials: LocalAwsCredentials) -> str:
    """The ARN sts:GetCallerIdentity reports for these credentials."""
    sts = _session(credentials, region).client("sts", endpoint_url=endpoint)
    arn: str = sts.get_caller_identity()["Arn"]
    return arn


def create_role(iam: Any, account_id: str, spec: RoleSpec, policy_arn: str) -> str:
    """Create one role from a spec (as the admin) and return its ARN."""
    document = trust_policy_document(account_id, spec.trusted_principals, spec.external_id)
    kwargs: dict[str, Any] = {
        "RoleName": spec.name,
        "AssumeRolePolicyDocument": json.dumps(document),
        "MaxSessionDuration": MAX_SESSION_SECONDS,
    }
    if spec.tags:
        kwargs["Tags"] = [{"Key": key, "Value": value} for key, value in spec.tags]
    arn: str = iam.create_role(**kwargs)["Role"]["Arn"]
    if spec.attach_database_policy:
        iam.attach_role_policy(RoleName=spec.name, PolicyArn=policy_arn)
    return arn


def provision(
    endpoint: str, *, region: str = DEFAULT_REGION, extra_roles: Sequence[RoleSpec] = ()
) -> LocalAws:
    """Create the guide's IAM setup on a fresh moto server and switch its auth on."""
    bootstrap = LocalAwsCredentials("testing", "testing")
    iam = _session(bootstrap, region).client("iam", endpoint_url=endpoint)
    iam.create_user(UserName=ADMIN_USER_NAME)
    admin_policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    admin_policy_arn = iam.create_policy(
        PolicyName=ADMIN_POLICY_NAME, PolicyDocument=json.dumps(admin_policy)
    )["Policy"]["Arn"]
    iam.attach_user_policy(UserName=ADMIN_USER_NAME, PolicyArn=admin_policy_arn)
    key = iam.create_access_key(UserName=ADMIN_USER_NAME)["AccessKey"]
    admin = LocalAwsCredentials(key["AccessKeyId"], key["SecretAccessKey"])
    account_id = admin_policy_arn.split(":")[4]

    enable_auth_enforcement(endpoint)

    iam = _session(admin, region).client("iam", endpoint_url=endpoint)
    policy_arn: str = iam.create_policy(
        PolicyName=POLICY_NAME, PolicyDocument=json.dumps(database_access_policy_document())
    )["Policy"]["Arn"]
    service_role_arn = create_role(
        iam,
        account_id,
        RoleSpec(DATABASE_SERVICE_ROLE_NAME, attach_database_policy=True),
        policy_arn,
    )
    docdb_user_role_arn = create_role(
        iam,
        account_id,
        RoleSpec(DOCDB_USER_ROLE_NAME, tags=((ROLE_TAG_KEY, ROLE_TAG_VALUE),)),
        policy_arn,
    )
    for spec in extra_roles:
        create_role(iam, account_id, spec, policy_arn)

    session_name = ec2_instance_session_name()
    database_service = assume_role(
        endpoint,
        region,
        admin,
        service_role_arn,
        session_name,
        duration_seconds=MAX_SESSION_SECONDS,
    )
    expected = f"arn:aws:sts::{account_id}:assumed-role/{DATABASE_SERVICE_ROLE_NAME}/{session_name}"
    actual = caller_arn(endpoint, region, database_service)
    if actual != expected:
        raise LocalAwsError(f"database service identity is {actual}, expected {expected}")
    # The database service must be able to become the DocumentDB user (guide step 5).
    docdb_user = assume_role(endpoint, region, database_service, docdb_user_role_arn, "check")
    actual = caller_arn(endpoint, region, docdb_user)
    if f":assumed-role/{DOCDB_USER_ROLE_NAME}/check" not in actual:
        raise LocalAwsError(f"wicket-docdb-user session identity is {actual}")
    return LocalAws(
        endpoint=endpoint,
        region=region,
        account_id=account_id,
        admin=admin,
        database_service=database_service,
        database_service_role_arn=service_role_arn,
        docdb_user_role_arn=docdb_user_role_arn,
        policy_arn=policy_arn,
        database_service_session_name=session_name,
    )
