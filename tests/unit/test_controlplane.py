"""Tests for localdocdb's control plane: real aiohttp server on loopback, real boto3 clients."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
import urllib3
from botocore.config import Config
from botocore.exceptions import ClientError

from localdocdb.controlplane import ClusterInfo, QueryError, bound_port, parse_filters, start

INFO = ClusterInfo(
    cluster_id="my-docdb",
    region="us-east-1",
    account_id="123456789012",
    endpoint="localhost",
    reader_endpoint="localhost",
    port=27017,
    master_user="master",
    tags=(("env", "dev"), ("team", "data")),
    created_at=datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
)


class ServerThread:
    """The control plane on its own event loop in a thread (boto3 is blocking)."""

    def __init__(self, info: ClusterInfo) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        started: Future[Any] = asyncio.run_coroutine_threadsafe(
            start(info, "127.0.0.1", 0), self.loop
        )
        self.runner = started.result(timeout=10)
        self.url = f"http://127.0.0.1:{bound_port(self.runner)}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    running = ServerThread(INFO)
    try:
        yield running
    finally:
        running.stop()


def _client(service: str, server: ServerThread) -> Any:
    session = boto3.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        region_name="us-east-1",
    )
    return session.client(
        service,
        endpoint_url=server.url,
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10),
    )


@pytest.mark.parametrize("service", ["docdb", "rds"])
def test_describe_db_clusters_parses_in_boto3(server: ServerThread, service: str) -> None:
    response = _client(service, server).describe_db_clusters()
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    (cluster,) = response["DBClusters"]
    assert cluster["DBClusterIdentifier"] == "my-docdb"
    assert cluster["DBClusterArn"] == "arn:aws:rds:us-east-1:123456789012:cluster:my-docdb"
    assert cluster["Engine"] == "docdb"
    assert cluster["EngineVersion"] == "5.0.0"
    assert cluster["Endpoint"] == "localhost"
    assert cluster["ReaderEndpoint"] == "localhost"
    assert cluster["Port"] == 27017
    assert cluster["Status"] == "available"
    assert cluster["MasterUsername"] == "master"
    assert cluster["StorageEncrypted"] is True
    assert cluster["DbClusterResourceId"] == INFO.resource_id
    assert cluster["DbClusterResourceId"].startswith("cluster-")
    assert cluster["AvailabilityZones"] == ["us-east-1a"]
    assert cluster["DBClusterMembers"] == [
        {
            "DBInstanceIdentifier": "my-docdb-instance-1",
            "IsClusterWriter": True,
            "DBClusterParameterGroupStatus": "in-sync",
            "PromotionTier": 1,
        }
    ]
    assert cluster["ClusterCreateTime"] == INFO.created_at
    if service == "rds":
        assert cluster["TagList"] == [
            {"Key": "env", "Value": "dev"},
            {"Key": "team", "Value": "data"},
        ]
        assert cluster["IAMDatabaseAuthenticationEnabled"] is False


@pytest.mark.parametrize("service", ["docdb", "rds"])
@pytest.mark.parametrize("identifier", ["my-docdb", INFO.arn])
def test_describe_by_identifier(server: ServerThread, service: str, identifier: str) -> None:
    response = _client(service, server).describe_db_clusters(
        DBClusterIdentifier=identifier, MaxRecords=20, Marker="ignored"
    )
    assert [c["DBClusterIdentifier"] for c in response["DBClusters"]] == ["my-docdb"]


@pytest.mark.parametrize("service", ["docdb", "rds"])
def test_unknown_cluster_is_not_found_fault(server: ServerThread, service: str) -> None:
    with pytest.raises(ClientError) as info:
        _client(service, server).describe_db_clusters(DBClusterIdentifier="other")
    error = info.value.response["Error"]
    assert error["Code"] == "DBClusterNotFoundFault"
    assert error["Message"] == "DBCluster other not found."
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert info.value.response["ResponseMetadata"]["RequestId"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([{"Name": "engine", "Values": ["docdb"]}], 1),
        ([{"Name": "engine", "Values": ["aurora-postgresql", "docdb"]}], 1),
        ([{"Name": "engine", "Values": ["aurora-mysql"]}], 0),
        ([{"Name": "db-cluster-id", "Values": ["my-docdb"]}], 1),
        ([{"Name": "db-cluster-id", "Values": [INFO.arn]}], 1),
        ([{"Name": "db-cluster-id", "Values": ["nope"]}], 0),
        (
            [
                {"Name": "engine", "Values": ["docdb"]},
                {"Name": "db-cluster-id", "Values": ["nope"]},
            ],
            0,
        ),
    ],
)
def test_filters(server: ServerThread, filters: list[dict[str, Any]], expected: int) -> None:
    response = _client("rds", server).describe_db_clusters(Filters=filters)
    assert len(response["DBClusters"]) == expected


def test_bad_parameters_are_invalid_parameter_value(server: ServerThread) -> None:
    client = _client("rds", server)
    with pytest.raises(ClientError) as info:
        client.describe_db_clusters(Filters=[{"Name": "colour", "Values": ["blue"]}])
    assert info.value.response["Error"]["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as info:
        client.describe_db_clusters(MaxRecords=5)
    assert info.value.response["Error"]["Code"] == "InvalidParameterValue"


@pytest.mark.parametrize("service", ["docdb", "rds"])
def test_list_tags_for_resource(server: ServerThread, service: str) -> None:
    client = _client(service, server)
    tags = client.list_tags_for_resource(ResourceName=INFO.arn)["TagList"]
    assert tags == [{"Key": "env", "Value": "dev"}, {"Key": "team", "Value": "data"}]
    with pytest.raises(ClientError) as info:
        client.list_tags_for_resource(
            ResourceName="arn:aws:rds:us-east-1:123456789012:cluster:other"
        )
    assert info.value.response["Error"]["Code"] == "DBClusterNotFoundFault"


def test_unknown_action_is_invalid_action(server: ServerThread) -> None:
    with pytest.raises(ClientError) as info:
        _client("rds", server).describe_db_instances()
    assert info.value.response["Error"]["Code"] == "InvalidAction"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def _raw_post(server: ServerThread, body: bytes, headers: dict[str, str]) -> Any:
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=5, read=10), retries=False)
    return http.request("POST", server.url + "/", body=body, headers=headers)


def test_unsigned_request_is_missing_authentication_token(server: ServerThread) -> None:
    response = _raw_post(
        server,
        b"Action=DescribeDBClusters&Version=2014-10-31",
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 403
    assert b"<Code>MissingAuthenticationToken</Code>" in response.data
    assert response.data.startswith(b"<?xml")


def test_malformed_authorization_is_incomplete_signature(server: ServerThread) -> None:
    response = _raw_post(
        server,
        b"Action=DescribeDBClusters&Version=2014-10-31",
        {"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Basic abc"},
    )
    assert response.status == 400
    assert b"<Code>IncompleteSignature</Code>" in response.data


def test_oversized_body_is_refused(server: ServerThread) -> None:
    body = b"Action=DescribeDBClusters&Version=2014-10-31&Pad=" + b"x" * (1024 * 1024 + 10)
    response = _raw_post(
        server,
        body,
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=host, Signature=0",
        },
    )
    assert response.status == 413
    assert b"RequestEntityTooLarge" in response.data


def test_parse_filters_rejects_malformed_keys() -> None:
    assert parse_filters(
        {
            "Filters.Filter.1.Name": "engine",
            "Filters.Filter.1.Values.Value.2": "b",
            "Filters.Filter.1.Values.Value.1": "a",
        }
    ) == {"engine": ["a", "b"]}
    for params in (
        {"Filters.Filter.x.Name": "engine"},
        {"Filters.Filter.1.Values.Value.1": "docdb"},
        {"Filters.Filter.1.Name": "engine"},
    ):
        with pytest.raises(QueryError, match="ilter"):
            parse_filters(params)


def test_resource_id_is_stable_and_distinct() -> None:
    again = ClusterInfo(
        cluster_id="my-docdb",
        region="us-east-1",
        account_id="123456789012",
        endpoint="h",
        reader_endpoint="h",
        port=1,
        master_user="m",
    )
    other = ClusterInfo(
        cluster_id="other",
        region="us-east-1",
        account_id="123456789012",
        endpoint="h",
        reader_endpoint="h",
        port=1,
        master_user="m",
    )
    assert again.resource_id == INFO.resource_id
    assert other.resource_id != INFO.resource_id
    assert len(INFO.resource_id) == len("cluster-") + 26
