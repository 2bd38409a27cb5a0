"""Agent layer: the database service's AWS identity for DocumentDB IAM authentication.

DESIGN.md, "Upstream authentication to DocumentDB (IAM)":

1. `--db-user NAME` becomes ``arn:aws:iam::ACCOUNT:role/NAME`` (`db_user_role_arn`);
   the account comes from the database's `aws.account_id`, else from the cluster ARN
   that `rds:DescribeDBClusters` reports for the URI's host, else from
   `sts:GetCallerIdentity` (`IamAuthenticator.account_id`).
2. The agent's own credentials come from botocore's standard chain (environment,
   shared files + AWS_PROFILE, container, instance metadata). With `assume_role_arn`
   it assumes that role first (with `external_id`), then the db-user role (role
   chaining). Assumed credentials are cached until `refresh_margin` before they
   expire, and concurrent callers share one in-flight refresh.

Endpoints follow botocore's conventions (AWS_ENDPOINT_URL_STS / _RDS, profiles), so
tests point this very code at moto and localdocdb with environment variables only.
botocore is blocking: every call runs in a worker thread (`asyncio.to_thread`) under
botocore's own connect/read timeouts and an overall deadline.

Every failure becomes a `wicket.errors` exception whose message says what failed and
what to change (the guide's troubleshooting section), because it ends up in front
of the user's mongosh.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from wicket.errors import AccessDenied, BadParameter, UpstreamError

log = logging.getLogger("wicket.agent.iam")

Clock = Callable[[], datetime]
BotocoreSessionFactory = Callable[[], Any]

DEFAULT_REGION = "us-east-1"
# Role chaining caps a session at one hour in AWS; one hour is also the AssumeRole default.
SESSION_DURATION = timedelta(hours=1)
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 10.0
# The overall deadline of one AWS call (botocore retries once on its own inside it).
CALL_TIMEOUT_SECONDS = 35.0
MAX_DESCRIBE_PAGES = 20
ROLE_TAG_KEY = "WicketDatabaseService"
ROLE_TAG_VALUE = "Allowed"
DATABASE_SERVICE_ROLE = "WicketDatabaseService"
MAX_SESSION_NAME = 64

_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_PARTITION = re.compile(r"aws(?:-[a-z]+)*")
_ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
_PATH_SEGMENT = re.compile(r"[\w+=,.@-]{1,128}", re.ASCII)
_ARN = re.compile(
    r"arn:(?P<partition>[^:]*):(?P<service>[^:]*):(?P<region>[^:]*):(?P<account>[^:]*):"
    r"(?P<resource>.*)",
    re.DOTALL,
)
_SESSION_NAME_BAD = re.compile(r"[^\w+=,.@-]", re.ASCII)
# "User: <arn> is not authorized to perform: sts:AssumeRole on resource: <arn>" (AWS and moto).
_DENIED_CALLER = re.compile(r"User: (?P<caller>arn:\S+) is not authorized")
MAX_ROLE_ARN = 2048


def utc_now() -> datetime:
    """The current time as an aware UTC datetime (the default clock)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class AwsCredentials:
    """One set of AWS credentials: long-lived keys, or a session with a token and an expiry."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiration: datetime | None = None

    def fresh_at(self, now: datetime, margin: timedelta) -> bool:
        """Whether these may still be handed out at `now` (false `margin` before expiry)."""
        return self.expiration is None or now < self.expiration - margin


class AwsCredentialsNotFound(UpstreamError):
    """The standard credential chain found nothing the database service can sign with."""


class AssumeRoleDenied(UpstreamError, AccessDenied):
    """AWS refused sts:AssumeRole; the message says which hop and how to fix the trust."""


class AwsUnreachable(UpstreamError):
    """An AWS endpoint (STS, RDS) did not answer in time or refused the connection."""


def db_user_role_arn(db_user: str, account_id: str, partition: str = "aws") -> str:
    """The IAM role ARN that a `--db-user` names: a role name, or a full role ARN as is."""
    if not _PARTITION.fullmatch(partition):
        raise BadParameter(f"AWS partition {partition!r} is not valid (e.g. aws, aws-cn)")
    if db_user.startswith("arn:"):
        return _checked_role_arn(db_user, what="database user")
    if not _ROLE_NAME.fullmatch(db_user):
        raise BadParameter(
            f"database user {db_user!r} is not an IAM role name or role ARN: for DocumentDB "
            "IAM authentication the database user is an IAM role, given as its name "
            "(1-64 characters: letters, digits and +=,.@_-) or as "
            "arn:aws:iam::<account>:role/<name>"
        )
    if not _ACCOUNT_ID.fullmatch(account_id):
        raise BadParameter(f"AWS account id {account_id!r} is not 12 digits")
    return f"arn:{partition}:iam::{account_id}:role/{db_user}"


def _checked_role_arn(arn: str, *, what: str) -> str:
    """Accept a well-formed IAM role ARN (with an optional path); refuse anything else."""
    match = _ARN.fullmatch(arn) if len(arn) <= MAX_ROLE_ARN else None
    if match is None:
        raise BadParameter(f"{what} {arn[:200]!r} is not a valid ARN")
    resource = match["resource"]
    if match["service"] != "iam" or not resource.startswith("role/"):
        kind = resource.split("/", 1)[0] if "/" in resource else resource
        raise BadParameter(
            f"{what} {arn!r} is an IAM {kind or 'resource'} ARN ({match['service']}), not a role: "
            "DocumentDB IAM authentication through Wicket uses IAM roles; give the role's "
            "name or arn:aws:iam::<account>:role/<name>"
        )
    if not _PARTITION.fullmatch(match["partition"]) or match["region"]:
        raise BadParameter(f"{what} {arn!r} is not a valid IAM role ARN")
    if not _ACCOUNT_ID.fullmatch(match["account"]):
        raise BadParameter(f"{what} {arn!r}: the account id must be 12 digits")
    *path, name = resource[len("role/") :].split("/")
    if not _ROLE_NAME.fullmatch(name) or not all(_PATH_SEGMENT.fullmatch(p) for p in path):
        raise BadParameter(
            f"{what} {arn!r}: the role path and name may hold only letters, digits and "
            "+=,.@_- (names are 1-64 characters)"
        )
    return arn


def role_session_name(name: str) -> str:
    """An sts:AssumeRole session name from a Wicket user name (2-64 of ``[\\w+=,.@-]``)."""
    cleaned = _SESSION_NAME_BAD.sub("-", name)[:MAX_SESSION_NAME]
    return cleaned if len(cleaned) >= 2 else (cleaned + "--")[:2]


def role_arn_of_caller(caller_arn: str) -> str:
    """The role ARN a trust policy names for an assumed-role session ARN (others as is)."""
    match = _ARN.fullmatch(caller_arn)
    if match and match["service"] == "sts" and match["resource"].startswith("assumed-role/"):
        role = match["resource"][len("assumed-role/") :].split("/", 1)[0]
        return f"arn:{match['partition']}:iam::{match['account']}:role/{role}"
    return caller_arn


def account_of_arn(arn: str) -> str | None:
    """The 12-digit account field of an ARN, if it has one."""
    match = _ARN.fullmatch(arn)
    if match is None or not _ACCOUNT_ID.fullmatch(match["account"]):
        return None
    return match["account"]


def no_credentials_message(environ: Mapping[str, str], detail: str = "") -> str:
    """What the chain looked at and how to give the database service credentials."""
    profile = environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE") or "default"
    credentials_file = environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"
    config_file = environ.get("AWS_CONFIG_FILE") or "~/.aws/config"
    container = (
        "set"
        if environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        or environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        else "not set"
    )
    metadata = (
        "disabled by AWS_EC2_METADATA_DISABLED=true"
        if environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true"
        else "no answer"
    )
    lines = [
        "NoCredentialProviders: the database service found no AWS credentials, so it cannot "
        "authenticate to DocumentDB with IAM." + (f" ({detail})" if detail else ""),
        "It looked for them, in this order:",
        "  - environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
        "(+ AWS_SESSION_TOKEN): not set",
        f"  - shared credentials file {credentials_file} and config file {config_file}, "
        f'profile "{profile}" (AWS_PROFILE): no credentials there',
        "  - web identity token (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN): "
        + ("set" if environ.get("AWS_WEB_IDENTITY_TOKEN_FILE") else "not set"),
        "  - container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI): "
        + container,
        f"  - EC2 instance metadata (IMDS): {metadata}",
        "To fix it, give the database service credentials: on EC2, attach an instance profile "
        f"with the {DATABASE_SERVICE_ROLE} role (guide step 3) to its instance; elsewhere, "
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or "
        "AWS_PROFILE with a profile in the shared files, in its environment; then restart it.",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class Hop:
    """One sts:AssumeRole step of a role chain."""

    role_arn: str
    external_id: str | None = None


def assume_role_denied_message(
    aws_message: str,
    *,
    chain: tuple[Hop, ...],
    index: int,
    caller_arn: str | None = None,
) -> str:
    """AWS's own AccessDenied sentence plus which hop failed and the trust policy to add."""
    hop = chain[index]
    target = hop.role_arn
    if len(chain) == 1:
        which = f"assuming the database user's IAM role {target}"
    elif index == 0:
        which = (
            f"the first hop of role chaining: assuming the database's aws.assume_role_arn "
            f"{target} (before the database user's role {chain[-1].role_arn})"
        )
    else:
        which = (
            f"the second hop of role chaining: assuming the database user's role {target} "
            f"as the aws.assume_role_arn role {chain[index - 1].role_arn}"
        )
    if "on resource:" not in aws_message and aws_message.rstrip(".").endswith("sts:AssumeRole"):
        # Some denials (moto's trust-policy refusal) leave out the resource AWS names.
        aws_message = f"{aws_message.rstrip('.')} on resource: {target}"
    match = _DENIED_CALLER.search(aws_message)
    caller = match["caller"] if match else caller_arn
    principal = role_arn_of_caller(caller) if caller else "<the database service's role ARN>"
    trust: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": "sts:AssumeRole",
    }
    if hop.external_id is not None:
        trust["Condition"] = {"StringEquals": {"sts:ExternalId": hop.external_id}}
    trust_policy = {"Version": "2012-10-17", "Statement": [trust]}
    caller_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": target,
                "Condition": {"StringEquals": {f"iam:ResourceTag/{ROLE_TAG_KEY}": ROLE_TAG_VALUE}},
            }
        ],
    }
    command = f"aws sts assume-role --role-arn {target} --role-session-name test-trust-relationship"
    if hop.external_id is not None:
        command += f" --external-id {hop.external_id}"
    return "\n".join(
        [
            f"AccessDenied: {aws_message}",
            f"The database service failed at {which}.",
            f"The trust relationship of {target} must allow {principal} to assume it; "
            "add this statement to the role's trust policy:",
            json.dumps(trust_policy, indent=2),
            f"and the policy of {principal} must allow sts:AssumeRole on {target} "
            f"(tag {target.rsplit('/', 1)[-1]} with {ROLE_TAG_KEY}={ROLE_TAG_VALUE}):",
            json.dumps(caller_policy, indent=2),
            f"Test the trust relationship by running this AWS CLI command as {principal}:",
            f"  $ {command}",
        ]
    )


def unreachable_message(service: str, endpoint: str, reason: str, timeout: float) -> str:
    """Which endpoint did not answer and what to check on the database service's host."""
    variable = f"AWS_ENDPOINT_URL_{service.upper()}"
    return (
        f"AWS {service.upper()} at {endpoint} could not be reached from the database service "
        f"({reason}; deadline {timeout:.0f} s). Check that this host can reach {endpoint}: "
        "DNS resolution, security groups and network ACLs allowing outbound HTTPS, "
        "HTTPS_PROXY/NO_PROXY settings, and, in a private subnet, a VPC endpoint for "
        f"{service.lower()}. A different endpoint can be set with {variable} "
        "(or the profile's endpoint_url)."
    )


ChainKey = tuple[tuple[Hop, ...], str, str]


class IamAuthenticator:
    """The agent's AWS side: account resolution and cached, chained role credentials."""

    def __init__(
        self,
        *,
        clock: Clock = utc_now,
        refresh_margin: timedelta = timedelta(minutes=5),
        botocore_session_factory: BotocoreSessionFactory | None = None,
        call_timeout: float = CALL_TIMEOUT_SECONDS,
        session_duration: timedelta = SESSION_DURATION,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._clock = clock
        self._refresh_margin = refresh_margin
        self._factory: BotocoreSessionFactory = (
            botocore_session_factory or botocore.session.get_session
        )
        self._call_timeout = call_timeout
        self._duration_seconds = int(session_duration.total_seconds())
        self._environ = environ
        self._session: Any = None
        # botocore sessions are not safe to create clients from in parallel threads.
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], Any] = {}
        self._cache: dict[ChainKey, AwsCredentials] = {}
        self._in_flight: dict[ChainKey, asyncio.Task[AwsCredentials]] = {}
        self._accounts: dict[tuple[str, str], str] = {}

    # -- public API ----------------------------------------------------------------

    async def account_id(
        self, *, database_aws_account_id: str | None, cluster_endpoint: str, region: str | None
    ) -> str:
        """The AWS account of a DocumentDB database: configured, its cluster ARN, or ours."""
        if database_aws_account_id:
            if not _ACCOUNT_ID.fullmatch(database_aws_account_id):
                raise BadParameter(
                    f"aws.account_id {database_aws_account_id!r} is not a 12-digit AWS account id"
                )
            return database_aws_account_id
        host = endpoint_host(cluster_endpoint)
        chosen_region = region or region_of_docdb_host(host) or await self._default_region()
        key = (host, chosen_region)
        cached = self._accounts.get(key)
        if cached is not None:
            return cached
        account, definitive = await self._account_from_cluster(host, chosen_region)
        if account is None:
            account = await self._caller_account(chosen_region)
        if definitive:
            # A failed DescribeDBClusters is asked again next time: the cluster may live
            # in another account than ours.
            self._accounts[key] = account
        return account

    async def credentials_for(
        self,
        *,
        role_arn: str,
        assume_role_arn: str | None,
        external_id: str | None,
        session_name: str,
        region: str | None,
    ) -> AwsCredentials:
        """Credentials of `role_arn`, assumed directly or through `assume_role_arn` (cached)."""
        _checked_role_arn(role_arn, what="database user role")
        hops: list[Hop] = []
        if assume_role_arn:
            _checked_role_arn(assume_role_arn, what="aws.assume_role_arn")
            hops.append(Hop(assume_role_arn, external_id))
        elif external_id is not None:
            raise BadParameter(
                "aws.external_id is set but aws.assume_role_arn is not: the external id is "
                "sent only when assuming aws.assume_role_arn"
            )
        hops.append(Hop(role_arn))
        chosen_region = region or await self._default_region()
        return await self._chain(tuple(hops), role_session_name(session_name), chosen_region)

    # -- role chain with caching -------------------------------------------------------

    async def _chain(
        self,
        hops: tuple[Hop, ...],
        session_name: str,
        region: str,
        full_chain: tuple[Hop, ...] | None = None,
    ) -> AwsCredentials:
        """Credentials at the end of `hops` (a prefix of `full_chain`, for error messages)."""
        key: ChainKey = (hops, session_name, region)
        cached = self._cache.get(key)
        if cached is not None and cached.fresh_at(self._clock(), self._refresh_margin):
            return cached
        task = self._in_flight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._refresh(key, full_chain or hops))
            self._in_flight[key] = task
            task.add_done_callback(functools.partial(self._finished, key))
        # A cancelled caller must not cancel the refresh the others are waiting on.
        return await asyncio.shield(task)

    def _finished(self, key: ChainKey, task: asyncio.Task[AwsCredentials]) -> None:
        if self._in_flight.get(key) is task:
            del self._in_flight[key]
        if not task.cancelled() and task.exception() is None:
            self._cache[key] = task.result()

    async def _refresh(self, key: ChainKey, full_chain: tuple[Hop, ...]) -> AwsCredentials:
        hops, session_name, region = key
        source: AwsCredentials | None = None
        if len(hops) > 1:
            source = await self._chain(hops[:-1], session_name, region, full_chain)
        hop = hops[-1]
        client = await self._client("sts", region, source)
        arguments: dict[str, Any] = {
            "RoleArn": hop.role_arn,
            "RoleSessionName": session_name,
            "DurationSeconds": self._duration_seconds,
        }
        if hop.external_id is not None:
            arguments["ExternalId"] = hop.external_id
        try:
            response = await self._call("sts", client, "assume_role", arguments)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = str(error.get("Message", ""))
            if code == "AccessDenied":
                raise AssumeRoleDenied(
                    assume_role_denied_message(message, chain=full_chain, index=len(hops) - 1)
                ) from None
            raise UpstreamError(
                f"AWS STS refused sts:AssumeRole on {hop.role_arn}: {code}: {message}"
            ) from None
        credentials = response["Credentials"]
        expiration = credentials.get("Expiration")
        if isinstance(expiration, datetime) and expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=UTC)
        log.debug("assumed %s (session %s)", hop.role_arn, session_name)
        return AwsCredentials(
            access_key_id=credentials["AccessKeyId"],
            secret_access_key=credentials["SecretAccessKey"],
            session_token=credentials.get("SessionToken"),
            expiration=expiration if isinstance(expiration, datetime) else None,
        )

    # -- account resolution ------------------------------------------------------------

    async def _account_from_cluster(self, host: str, region: str) -> tuple[str | None, bool]:
        """The account of the cluster whose endpoint is `host`, and whether RDS answered."""
        client = await self._client("rds", region, None)
        marker: str | None = None
        try:
            for _ in range(MAX_DESCRIBE_PAGES):
                arguments: dict[str, Any] = {"MaxRecords": 100}
                if marker:
                    arguments["Marker"] = marker
                page = await self._call("rds", client, "describe_db_clusters", arguments)
                for cluster in page.get("DBClusters", []):
                    endpoints = {
                        str(cluster.get("Endpoint", "")).lower(),
                        str(cluster.get("ReaderEndpoint", "")).lower(),
                        *(str(e).lower() for e in cluster.get("CustomEndpoints", []) or []),
                    }
                    if host in endpoints:
                        account = account_of_arn(str(cluster.get("DBClusterArn", "")))
                        if account is not None:
                            return account, True
                marker = page.get("Marker")
                if not marker:
                    break
        except ClientError as exc:
            error = exc.response.get("Error", {})
            log.warning(
                "rds:DescribeDBClusters failed (%s: %s); using sts:GetCallerIdentity's account",
                error.get("Code"),
                error.get("Message"),
            )
            return None, False
        except AwsUnreachable as exc:
            log.warning("%s; using sts:GetCallerIdentity's account", exc)
            return None, False
        log.info("no DocumentDB cluster has endpoint %s; using sts:GetCallerIdentity", host)
        return None, True

    async def _caller_account(self, region: str) -> str:
        client = await self._client("sts", region, None)
        try:
            identity = await self._call("sts", client, "get_caller_identity", {})
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise UpstreamError(
                f"AWS STS refused sts:GetCallerIdentity: {error.get('Code')}: "
                f"{error.get('Message')}"
            ) from None
        account = str(identity.get("Account", ""))
        if not _ACCOUNT_ID.fullmatch(account):
            raise UpstreamError(f"sts:GetCallerIdentity returned account {account[:40]!r}")
        return account

    # -- botocore plumbing -----------------------------------------------------------------

    def _botocore_session(self) -> Any:
        with self._lock:
            if self._session is None:
                self._session = self._factory()
            return self._session

    async def _default_region(self) -> str:
        session = await asyncio.to_thread(self._botocore_session)
        try:
            region = session.get_config_variable("region")
        except ProfileNotFound as exc:
            raise self._profile_not_found(exc) from None
        return str(region) if region else DEFAULT_REGION

    def _profile_not_found(self, exc: ProfileNotFound) -> AwsCredentialsNotFound:
        environ = self._environ if self._environ is not None else os.environ
        return AwsCredentialsNotFound(
            no_credentials_message(
                environ, f"{exc}: AWS_PROFILE names a profile the shared files do not have"
            )
        )

    async def _client(self, service: str, region: str, source: AwsCredentials | None) -> Any:
        """A botocore client; the agent's own (chain) credentials when `source` is None."""

        def create() -> Any:
            session = self._botocore_session()
            config = Config(
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                read_timeout=READ_TIMEOUT_SECONDS,
                retries={"total_max_attempts": 2, "mode": "standard"},
            )
            with self._lock:
                if source is None:
                    client = self._clients.get((service, region))
                    if client is None:
                        client = session.create_client(service, region_name=region, config=config)
                        self._clients[(service, region)] = client
                    return client
                return session.create_client(
                    service,
                    region_name=region,
                    config=config,
                    aws_access_key_id=source.access_key_id,
                    aws_secret_access_key=source.secret_access_key,
                    aws_session_token=source.session_token,
                )

        try:
            return await asyncio.to_thread(create)
        except ProfileNotFound as exc:
            raise self._profile_not_found(exc) from None
        except BotoCoreError as exc:
            raise UpstreamError(f"cannot set up the AWS {service.upper()} client: {exc}") from None

    async def _call(self, service: str, client: Any, operation: str, arguments: Any) -> Any:
        """Run one botocore call in a thread with a deadline; translate transport errors."""
        endpoint = str(client.meta.endpoint_url)
        method = getattr(client, operation)
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(method, **arguments), timeout=self._call_timeout
            )
        except TimeoutError:
            raise AwsUnreachable(
                unreachable_message(service, endpoint, "no answer", self._call_timeout)
            ) from None
        except (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError) as exc:
            environ = self._environ if self._environ is not None else os.environ
            detail = "" if isinstance(exc, NoCredentialsError) else str(exc)
            raise AwsCredentialsNotFound(no_credentials_message(environ, detail)) from None
        except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError) as exc:
            raise AwsUnreachable(
                unreachable_message(service, endpoint, str(exc), self._call_timeout)
            ) from None
        except BotoCoreError as exc:
            raise UpstreamError(f"AWS {service.upper()} call {operation} failed: {exc}") from None


def endpoint_host(cluster_endpoint: str) -> str:
    """The host of a cluster endpoint given as a host, host:port or mongodb URI."""
    text = cluster_endpoint.strip()
    for scheme in ("mongodb+srv://", "mongodb://"):
        if text.lower().startswith(scheme):
            text = text[len(scheme) :]
            text = text.split("/", 1)[0].split("?", 1)[0]
            text = text.rsplit("@", 1)[-1].split(",", 1)[0]
            break
    if text.startswith("["):
        return text[1:].split("]", 1)[0].lower()
    host = text.rsplit(":", 1)[0] if text.count(":") == 1 else text
    if not host or len(host) > 255:
        raise BadParameter(f"cluster endpoint {cluster_endpoint[:200]!r} has no host")
    return host.lower()


def region_of_docdb_host(host: str) -> str | None:
    """The region in a DocumentDB endpoint (``name.cluster-x.REGION.docdb.amazonaws.com``)."""
    labels = host.split(".")
    if "docdb" in labels:
        index = labels.index("docdb")
        if index >= 1 and labels[index + 1 :][:1] == ["amazonaws"]:
            return labels[index - 1]
    return None
