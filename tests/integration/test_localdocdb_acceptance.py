"""Issue 2 acceptance: real clients (pymongo, mongosh) against a real localdocdb process.

Everything runs on loopback: localdocdb over TLS (CA verified), moto server as STS
with auth enforcement, pymongo and the pinned mongosh.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import boto3
import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from localdocdb.localaws import LocalAws, LocalAwsCredentials, assume_role
from localdocdb.process import LocalDocDBProcess
from tests.support.clients import Mongosh, StartDocDB
from tests.support.mongo_aws import Breakage, aws_conversation

GUIDE_CREATE_USER = (
    'db.getSiblingDB("$external").createUser({{user: "{arn}", mechanisms: ["MONGODB-AWS"], '
    'roles: [{{role: "root", db: "admin"}}]}})'
)


def master(docdb: LocalDocDBProcess, **options: Any) -> MongoClient[dict[str, Any]]:
    return MongoClient(docdb.uri(), serverSelectionTimeoutMS=5000, **options)


def docdb_user_credentials(aws: LocalAws) -> LocalAwsCredentials:
    """What the database service holds after assuming the db-user role."""
    return assume_role(
        aws.endpoint, aws.region, aws.database_service, aws.docdb_user_role_arn, "alice"
    )


def iam_client(docdb: LocalDocDBProcess, creds: LocalAwsCredentials) -> MongoClient[dict[str, Any]]:
    return MongoClient(
        "localhost",
        docdb.port,
        username=creds.access_key_id,
        password=creds.secret_access_key,
        authMechanism="MONGODB-AWS",
        authSource="$external",
        authMechanismProperties={"AWS_SESSION_TOKEN": creds.session_token},
        tls=True,
        tlsCAFile=str(docdb.ca_file),
        serverSelectionTimeoutMS=5000,
        retryWrites=False,
    )


def create_iam_user(docdb: LocalDocDBProcess, arn: str) -> None:
    """The guide's step 5 createUser, with the master user."""
    with master(docdb) as client:
        client["$external"].command(
            "createUser", arn, mechanisms=["MONGODB-AWS"], roles=[{"role": "root", "db": "admin"}]
        )


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_pymongo_scram_over_verified_tls(docdb: LocalDocDBProcess, mechanism: str) -> None:
    with master(docdb, authMechanism=mechanism) as client:
        client.test.things.insert_one({"n": 1})
        assert client.test.things.find_one({}, {"_id": 0}) == {"n": 1}
        status = client.admin.command("connectionStatus")
        assert status["authInfo"]["authenticatedUsers"] == [{"user": "master", "db": "admin"}]


def test_wrong_password_is_refused(docdb: LocalDocDBProcess) -> None:
    uri = docdb.uri().replace("master-password", "wrong")
    with (
        MongoClient(uri, serverSelectionTimeoutMS=5000) as client,
        pytest.raises(OperationFailure) as failure,
    ):
        client.admin.command("ping")
    assert failure.value.code == 18


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_mongosh_scram_and_guide_create_user(
    docdb: LocalDocDBProcess, mongosh: Mongosh, local_aws: LocalAws, mechanism: str
) -> None:
    arn = local_aws.docdb_user_role_arn
    script = (
        GUIDE_CREATE_USER.format(arn=arn)
        + "; print(JSON.stringify(db.getSiblingDB('$external').getUsers()))"
    )
    result = mongosh.run(docdb.uri(authMechanism=mechanism), "--quiet", "--eval", script)
    assert result.returncode == 0, result.stderr + result.stdout
    assert arn in result.stdout
    assert "MONGODB-AWS" in result.stdout


def test_mongodb_aws_end_to_end(docdb: LocalDocDBProcess, local_aws: LocalAws) -> None:
    create_iam_user(docdb, local_aws.docdb_user_role_arn)
    with iam_client(docdb, docdb_user_credentials(local_aws)) as client:
        status = client.admin.command("connectionStatus")
        assert status["authInfo"]["authenticatedUsers"] == [
            {"user": local_aws.docdb_user_role_arn, "db": "$external"}
        ]
        coll = client.test.orders
        coll.insert_many([{"i": i, "kind": "even" if i % 2 == 0 else "odd"} for i in range(1000)])
        # several getMore batches: 1000 docs in batches of 64
        cursor = coll.find({}, batch_size=64).sort("i", 1)
        assert [doc["i"] for doc in cursor] == list(range(1000))
        result = coll.update_many({"kind": "odd"}, {"$inc": {"i": 1000}})
        assert result.modified_count == 500
        groups = list(
            coll.aggregate([{"$group": {"_id": "$kind", "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}])
        )
        assert groups == [{"_id": "even", "n": 500}, {"_id": "odd", "n": 500}]


@pytest.mark.parametrize(
    "breakage",
    [
        Breakage(tamper_signature=True),
        Breakage(session_token="IQoJb3JpZ2luX2VjEBogus"),
        Breakage(clock_skew=datetime.timedelta(minutes=-20)),
        Breakage(other_nonce=True),
    ],
    ids=["tampered-signature", "wrong-session-token", "stale-date", "other-nonce"],
)
def test_mongodb_aws_refusals(
    docdb: LocalDocDBProcess, local_aws: LocalAws, breakage: Breakage
) -> None:
    create_iam_user(docdb, local_aws.docdb_user_role_arn)
    creds = docdb_user_credentials(local_aws)
    with MongoClient(
        "localhost",
        docdb.port,
        tls=True,
        tlsCAFile=str(docdb.ca_file),
        maxPoolSize=1,
        serverSelectionTimeoutMS=5000,
    ) as client:
        # the untouched proof works on this very path ...
        reply = aws_conversation(
            client, creds.access_key_id, creds.secret_access_key, creds.session_token
        )
        assert reply["done"] is True
        # ... and the broken one does not
        with pytest.raises(OperationFailure) as failure:
            aws_conversation(
                client, creds.access_key_id, creds.secret_access_key, creds.session_token, breakage
            )
    assert failure.value.code == 18


def test_mongodb_aws_role_without_external_user(
    docdb: LocalDocDBProcess, local_aws: LocalAws
) -> None:
    # the role exists in IAM and may be assumed, but nobody created its $external user
    creds = docdb_user_credentials(local_aws)
    with iam_client(docdb, creds) as client, pytest.raises(OperationFailure) as failure:
        client.admin.command("ping")
    assert failure.value.code == 18


def test_builtin_roles_are_enforced(docdb: LocalDocDBProcess) -> None:
    with master(docdb) as admin:
        admin.test.command("createUser", "reader", pwd="reader-pw", roles=["read"])
        admin.test.command(
            "createUser", "writer", pwd="writer-pw", roles=[{"role": "readWrite", "db": "test"}]
        )
        admin.test.docs.insert_one({"x": 1})
        admin.admin.secrets.insert_one({"y": 2})
    base = f"localhost:{docdb.port}/?tls=true&tlsCAFile={docdb.ca_file}&authSource=test"
    with MongoClient(f"mongodb://reader:reader-pw@{base}", serverSelectionTimeoutMS=5000) as reader:
        assert reader.test.docs.count_documents({}) == 1
        with pytest.raises(OperationFailure) as denied:
            reader.test.docs.insert_one({"x": 2})
        assert denied.value.code == 13
    with MongoClient(f"mongodb://writer:writer-pw@{base}", serverSelectionTimeoutMS=5000) as writer:
        writer.test.docs.insert_one({"x": 3})
        with pytest.raises(OperationFailure) as denied:
            writer.admin.secrets.find_one()
        assert denied.value.code == 13


def test_describe_db_clusters_with_boto3(start_localdocdb: StartDocDB) -> None:
    from localdocdb.localaws import free_port

    api_port = free_port()
    docdb = start_localdocdb(
        "--cluster-id", "my-docdb", "--aws-api-port", str(api_port), "--tag", "env=dev"
    )
    for service in ("docdb", "rds"):
        client = boto3.client(
            service,
            endpoint_url=f"http://127.0.0.1:{api_port}",
            region_name="us-east-1",
            aws_access_key_id="AKIDLOCAL",
            aws_secret_access_key="local-secret",
        )
        clusters = client.describe_db_clusters()["DBClusters"]
        assert [c["DBClusterIdentifier"] for c in clusters] == ["my-docdb"]
        cluster = clusters[0]
        assert cluster["Engine"] == "docdb"
        assert cluster["EngineVersion"] == "5.0.0"
        assert cluster["Port"] == docdb.port
        assert cluster["DBClusterArn"] == "arn:aws:rds:us-east-1:123456789012:cluster:my-docdb"
        tags = client.list_tags_for_resource(ResourceName=cluster["DBClusterArn"])["TagList"]
        assert tags == [{"Key": "env", "Value": "dev"}]


def test_mongosh_eval_reports_json(docdb: LocalDocDBProcess, mongosh: Mongosh) -> None:
    script = (
        "db.getSiblingDB('shop').items.insertMany([{a: 1}, {a: 2}, {a: 3}]);"
        "const found = db.getSiblingDB('shop').items.find({a: {$gte: 2}}, {_id: 0}).toArray();"
        "print(JSON.stringify(found))"
    )
    result = mongosh.run(docdb.uri(), "--quiet", "--eval", script)
    assert result.returncode == 0, result.stderr + result.stdout
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [{"a": 2}, {"a": 3}]


@pytest.mark.parametrize("compressor", ["zlib", "snappy", "zstd"])
def test_op_compressed_round_trip(docdb: LocalDocDBProcess, compressor: str) -> None:
    with master(docdb, compressors=compressor) as client:
        hello = client.admin.command("hello")
        assert hello["ok"] == 1.0
        coll = client.test.compressed
        coll.insert_many([{"i": i, "text": "x" * 500} for i in range(200)])
        assert sum(1 for _ in coll.find({}, batch_size=50)) == 200
        status = client.admin.command("serverStatus")
        assert status["ok"] == 1.0
        # the server answered in the compressor it was asked in, or pymongo could not read it
        pool_compressors = client.options.pool_options._compression_settings.compressors
        assert pool_compressors == [compressor]


def test_positional_update_and_projection(docdb: LocalDocDBProcess) -> None:
    with master(docdb) as client:
        students = client.school.students
        students.insert_one({"_id": 1, "grades": [85, 80, 80]})
        students.update_one({"_id": 1, "grades": 80}, {"$set": {"grades.$": 82}})
        assert students.find_one({"_id": 1})["grades"] == [85, 82, 80]
        assert students.find_one({"grades": 85}, {"grades.$": 1}) == {"_id": 1, "grades": [85]}
