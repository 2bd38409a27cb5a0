"""localdocdb's AWS control plane: DescribeDBClusters and ListTagsForResource for itself.

Layer: localdocdb HTTP service (aiohttp), beside the MongoDB wire server.

It speaks the AWS Query protocol of RDS/DocumentDB API version 2014-10-31: a
form-encoded POST (or GET with a query string) carrying `Action=...&Version=...`,
answered with XML shaped exactly like RDS's, so boto3's `docdb` and `rds` clients
(botocore's query parser) work against it unchanged via `endpoint_url`. Errors are
AWS-style `<ErrorResponse>` documents with the codes RDS uses.

Authentication: a request must carry a SigV4 `Authorization` header (or a presigned
`X-Amz-Signature` query), as AWS requires; without one it is refused with
`MissingAuthenticationToken` (403). The signature itself is NOT verified:
localdocdb holds no AWS secret keys to verify it with. It is a local stand-in, not
a security boundary; it only reports metadata (no secrets) about its own cluster.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from aiohttp import web

API_VERSION = "2014-10-31"
XML_NAMESPACE = f"http://rds.amazonaws.com/doc/{API_VERSION}/"
MAX_BODY_BYTES = 1024 * 1024
MAX_FIELDS = 1000
BODY_READ_TIMEOUT_SECONDS = 10.0
KEEPALIVE_TIMEOUT_SECONDS = 15.0
MIN_MAX_RECORDS = 20
MAX_MAX_RECORDS = 100
_FILTER_NAME = re.compile(r"^Filters\.Filter\.(\d{1,3})\.Name$")
_FILTER_VALUE = re.compile(r"^Filters\.Filter\.(\d{1,3})\.Values\.Value\.(\d{1,3})$")
KNOWN_FILTERS = frozenset({"db-cluster-id", "engine", "db-cluster-resource-id"})


@dataclass(frozen=True, kw_only=True)
class ClusterInfo:
    """What the control plane reports about localdocdb's own cluster."""

    cluster_id: str
    region: str
    account_id: str
    endpoint: str  # the host clients use, e.g. "localhost"
    reader_endpoint: str
    port: int
    master_user: str
    engine_version: str = "5.0.0"
    tags: tuple[tuple[str, str], ...] = ()
    status: str = "available"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def arn(self) -> str:
        """The cluster ARN as RDS forms it."""
        return f"arn:aws:rds:{self.region}:{self.account_id}:cluster:{self.cluster_id}"

    @property
    def resource_id(self) -> str:
        """A stable `cluster-...` resource id derived from the ARN (like RDS's opaque one)."""
        digest = hashlib.sha256(self.arn.encode()).digest()
        return "cluster-" + base64.b32encode(digest).decode()[:26]

    @property
    def instance_id(self) -> str:
        """The one (writer) instance the cluster reports as its member."""
        return f"{self.cluster_id}-instance-1"


class QueryError(Exception):
    """An AWS Query-protocol error answer."""

    def __init__(self, status: int, code: str, message: str, *, sender: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.sender = sender


def cluster_not_found(identifier: str) -> QueryError:
    """RDS's answer for an unknown cluster id or ARN."""
    return QueryError(404, "DBClusterNotFoundFault", f"DBCluster {identifier} not found.")


def invalid_parameter(message: str) -> QueryError:
    """RDS's answer for a parameter with a bad value."""
    return QueryError(400, "InvalidParameterValue", message)


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _text(parent: ET.Element, tag: str, value: str | int | bool) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if isinstance(value, bool):
        element.text = "true" if value else "false"
    else:
        element.text = str(value)
    return element


def _tag_list(parent: ET.Element, tags: tuple[tuple[str, str], ...]) -> None:
    tag_list = ET.SubElement(parent, "TagList")
    for key, value in tags:
        tag = ET.SubElement(tag_list, "Tag")
        _text(tag, "Key", key)
        _text(tag, "Value", value)


def cluster_element(parent: ET.Element, info: ClusterInfo) -> None:
    """Append one `<DBCluster>` with the fields RDS and DocumentDB clients read."""
    cluster = ET.SubElement(parent, "DBCluster")
    zones = ET.SubElement(cluster, "AvailabilityZones")
    _text(zones, "AvailabilityZone", f"{info.region}a")
    _text(cluster, "BackupRetentionPeriod", 1)
    _text(cluster, "DBClusterIdentifier", info.cluster_id)
    _text(cluster, "DBClusterParameterGroup", "default.docdb5.0")
    _text(cluster, "Status", info.status)
    _text(cluster, "Endpoint", info.endpoint)
    _text(cluster, "ReaderEndpoint", info.reader_endpoint)
    _text(cluster, "MultiAZ", False)
    _text(cluster, "Engine", "docdb")
    _text(cluster, "EngineVersion", info.engine_version)
    _text(cluster, "Port", info.port)
    _text(cluster, "MasterUsername", info.master_user)
    members = ET.SubElement(cluster, "DBClusterMembers")
    member = ET.SubElement(members, "DBClusterMember")
    _text(member, "DBInstanceIdentifier", info.instance_id)
    _text(member, "IsClusterWriter", True)
    _text(member, "DBClusterParameterGroupStatus", "in-sync")
    _text(member, "PromotionTier", 1)
    _text(cluster, "StorageEncrypted", True)
    _text(cluster, "DbClusterResourceId", info.resource_id)
    _text(cluster, "DBClusterArn", info.arn)
    # The RDS flag for RDS IAM database auth; DocumentDB's IAM auth does not use it.
    _text(cluster, "IAMDatabaseAuthenticationEnabled", False)
    _text(cluster, "ClusterCreateTime", _timestamp(info.created_at))
    _text(cluster, "DeletionProtection", False)
    if info.tags:
        _tag_list(cluster, info.tags)


def _response(action: str, fill: Callable[[ET.Element], None]) -> web.Response:
    root = ET.Element(f"{action}Response", xmlns=XML_NAMESPACE)
    result = ET.SubElement(root, f"{action}Result")
    fill(result)
    request_id = str(uuid.uuid4())
    metadata = ET.SubElement(root, "ResponseMetadata")
    _text(metadata, "RequestId", request_id)
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return web.Response(
        body=body, content_type="text/xml", headers={"x-amzn-RequestId": request_id}
    )


def error_response(error: QueryError) -> web.Response:
    """An AWS Query `<ErrorResponse>` document."""
    root = ET.Element("ErrorResponse", xmlns=XML_NAMESPACE)
    element = ET.SubElement(root, "Error")
    _text(element, "Type", "Sender" if error.sender else "Receiver")
    _text(element, "Code", error.code)
    _text(element, "Message", error.message)
    request_id = str(uuid.uuid4())
    _text(root, "RequestId", request_id)
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return web.Response(
        status=error.status,
        body=body,
        content_type="text/xml",
        headers={"x-amzn-RequestId": request_id},
    )


def parse_filters(params: Mapping[str, str]) -> dict[str, list[str]]:
    """Decode `Filters.Filter.N.Name` / `Filters.Filter.N.Values.Value.M` into a dict."""
    names: dict[int, str] = {}
    values: dict[int, list[tuple[int, str]]] = {}
    for key, value in params.items():
        if match := _FILTER_NAME.match(key):
            names[int(match.group(1))] = value
        elif match := _FILTER_VALUE.match(key):
            values.setdefault(int(match.group(1)), []).append((int(match.group(2)), value))
        elif key.startswith("Filters."):
            raise invalid_parameter(f"Malformed filter parameter: {key}")
    filters: dict[str, list[str]] = {}
    for index, name in names.items():
        if name not in KNOWN_FILTERS:
            raise invalid_parameter(f"Unrecognized filter name: {name}")
        entries = [value for _, value in sorted(values.get(index, []))]
        if not entries:
            raise invalid_parameter(f"Filter {name} needs at least one value")
        filters.setdefault(name, []).extend(entries)
    if set(values) - set(names):
        raise invalid_parameter("Filter values without a filter name")
    return filters


def _matches_identifier(info: ClusterInfo, identifier: str) -> bool:
    return identifier in (info.cluster_id, info.arn)


def _valid_max_records(value: str) -> bool:
    return (
        len(value) <= 4
        and value.isascii()
        and value.isdigit()
        and MIN_MAX_RECORDS <= int(value) <= MAX_MAX_RECORDS
    )


def describe_db_clusters(info: ClusterInfo, params: Mapping[str, str]) -> web.Response:
    """DescribeDBClusters for the one cluster this server is."""
    max_records = params.get("MaxRecords")
    if max_records is not None and not _valid_max_records(max_records):
        raise invalid_parameter(
            f"MaxRecords must be between {MIN_MAX_RECORDS} and {MAX_MAX_RECORDS}."
        )
    # Marker is accepted; with a single cluster every answer is the last page.
    identifier = params.get("DBClusterIdentifier")
    if identifier is not None and not _matches_identifier(info, identifier):
        raise cluster_not_found(identifier)
    filters = parse_filters(params)
    selected = True
    if "engine" in filters and "docdb" not in filters["engine"]:
        selected = False
    if "db-cluster-id" in filters and not any(
        _matches_identifier(info, value) for value in filters["db-cluster-id"]
    ):
        selected = False
    if (
        "db-cluster-resource-id" in filters
        and info.resource_id not in filters["db-cluster-resource-id"]
    ):
        selected = False

    def fill(result: ET.Element) -> None:
        clusters = ET.SubElement(result, "DBClusters")
        if selected:
            cluster_element(clusters, info)

    return _response("DescribeDBClusters", fill)


def list_tags_for_resource(info: ClusterInfo, params: Mapping[str, str]) -> web.Response:
    """ListTagsForResource for this cluster's ARN."""
    resource = params.get("ResourceName")
    if not resource:
        raise QueryError(
            400, "MissingParameter", "The request must contain the parameter ResourceName"
        )
    if resource != info.arn:
        raise cluster_not_found(resource)

    def fill(result: ET.Element) -> None:
        _tag_list(result, info.tags)

    return _response("ListTagsForResource", fill)


ACTIONS: dict[str, Callable[[ClusterInfo, Mapping[str, str]], web.Response]] = {
    "DescribeDBClusters": describe_db_clusters,
    "ListTagsForResource": list_tags_for_resource,
}


def _has_sigv4(request: web.Request) -> bool:
    authorization = request.headers.get("Authorization", "")
    if authorization:
        return True
    return "X-Amz-Signature" in request.query


def _check_sigv4_shape(request: web.Request) -> None:
    authorization = request.headers.get("Authorization")
    if authorization is None:
        return
    required = ("AWS4-HMAC-SHA256 ", "Credential=", "SignedHeaders=", "Signature=")
    if not authorization.startswith(required[0]) or not all(
        part in authorization for part in required[1:]
    ):
        raise QueryError(
            400,
            "IncompleteSignature",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' "
            "parameters with the AWS4-HMAC-SHA256 algorithm.",
        )


async def _read_params(request: web.Request) -> dict[str, str]:
    params: dict[str, str] = dict(request.query)
    if request.method == "POST":
        try:
            body = await asyncio.wait_for(request.read(), BODY_READ_TIMEOUT_SECONDS)
        except TimeoutError as exc:
            raise QueryError(
                408, "RequestTimeout", "The request body was not sent in time."
            ) from exc
        except web.HTTPRequestEntityTooLarge as exc:
            raise QueryError(
                413, "RequestEntityTooLarge", f"The request body exceeds {MAX_BODY_BYTES} bytes."
            ) from exc
        try:
            text = body.decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
        except (UnicodeDecodeError, ValueError) as exc:
            raise QueryError(400, "MalformedQueryString", "The request body is not valid.") from exc
        params.update(pairs)
    return params


def build_app(info: ClusterInfo) -> web.Application:
    """The aiohttp application answering the control-plane actions for `info`."""

    async def handle(request: web.Request) -> web.Response:
        try:
            if not _has_sigv4(request):
                raise QueryError(
                    403, "MissingAuthenticationToken", "Request is missing Authentication Token"
                )
            _check_sigv4_shape(request)
            params = await _read_params(request)
            action = params.get("Action", "")
            handler = ACTIONS.get(action)
            if handler is None:
                raise QueryError(
                    400,
                    "InvalidAction",
                    f"The action {action or '(none)'} is not valid for this web service.",
                )
            version = params.get("Version", API_VERSION)
            if version != API_VERSION:
                raise QueryError(
                    400, "InvalidAction", f"Version {version} is not supported (use {API_VERSION})."
                )
            return handler(info, params)
        except QueryError as error:
            return error_response(error)

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_route("POST", "/", handle)
    app.router.add_route("GET", "/", handle)
    return app


async def start(info: ClusterInfo, host: str, port: int) -> web.AppRunner:
    """Serve the control plane on host:port; the caller calls `runner.cleanup()`."""
    runner = web.AppRunner(
        build_app(info),
        access_log=None,
        keepalive_timeout=KEEPALIVE_TIMEOUT_SECONDS,
        shutdown_timeout=5.0,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port a started runner listens on (useful when started with port 0)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            port: int = address[1]
            return port
    raise RuntimeError("control plane is not listening")
