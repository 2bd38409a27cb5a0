"""`localdocdb demo`: the guide's DocumentDB side on one machine and a real IAM-authenticated query.

It starts the local AWS (moto, provisioned with the guide's IAM setup), starts
localdocdb in docdb mode with TLS, creates the `$external` user for the
`wicket-docdb-user` role exactly as the guide's step 5 does, then — as the
database service would — assumes that role and runs a query over `MONGODB-AWS`.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from pymongo import MongoClient

from localdocdb.localaws import LocalAws, LocalAwsCredentials, MotoServer, assume_role, provision
from localdocdb.process import LocalDocDBProcess

MASTER_USER = "wicketmaster"
MASTER_PASSWORD = "local-demo-password"  # noqa: S105 - a throwaway local server's password


@dataclass
class Playground:
    """Everything the demo started."""

    aws: LocalAws
    docdb: LocalDocDBProcess
    work_dir: Path

    def master_client(self) -> MongoClient[dict[str, Any]]:
        """The master user over SCRAM, as the guide's step 5 logs in."""
        return MongoClient(self.docdb.uri(), serverSelectionTimeoutMS=10_000)

    def iam_client(self, credentials: LocalAwsCredentials) -> MongoClient[dict[str, Any]]:
        """A MONGODB-AWS connection with the given (assumed-role) credentials."""
        # The dict form: pymongo's "KEY:value" string form mangles session tokens.
        properties = (
            {"AWS_SESSION_TOKEN": credentials.session_token} if credentials.session_token else None
        )
        options: dict[str, Any] = {
            "username": credentials.access_key_id,
            "password": credentials.secret_access_key,
            "authMechanism": "MONGODB-AWS",
            "authSource": "$external",
            "tls": True,
            "tlsCAFile": str(self.docdb.ca_file),
            "serverSelectionTimeoutMS": 10_000,
            "retryWrites": False,
        }
        if properties:
            options["authMechanismProperties"] = properties
        return MongoClient("localhost", self.docdb.port, **options)


@contextmanager
def playground(work_dir: Path | None = None) -> Iterator[Playground]:
    """Start moto + localdocdb, create the `$external` IAM user; stop both on exit."""
    own_dir = work_dir is None
    directory = Path(tempfile.mkdtemp(prefix="localdocdb-demo-")) if work_dir is None else work_dir
    directory.mkdir(parents=True, exist_ok=True)
    moto = MotoServer.start(log_file=directory / "moto.log")
    try:
        aws = provision(moto.endpoint)
        docdb = LocalDocDBProcess.start(
            tls_dir=directory / "tls",
            master_user=MASTER_USER,
            master_password=MASTER_PASSWORD,
            args=("--mode", "docdb", "--sts-endpoint", aws.endpoint, "--cluster-id", "my-docdb"),
            log_path=directory / "localdocdb.log",
        )
        try:
            ground = Playground(aws, docdb, directory)
            with ground.master_client() as master:
                master["$external"].command(
                    "createUser",
                    aws.docdb_user_role_arn,
                    mechanisms=["MONGODB-AWS"],
                    roles=[{"role": "root", "db": "admin"}],
                )
            yield ground
        finally:
            docdb.stop()
    finally:
        moto.stop()
        if own_dir:
            shutil.rmtree(directory, ignore_errors=True)


def run_query(ground: Playground) -> list[str]:
    """Assume the db-user role like the database service, and query over MONGODB-AWS."""
    aws = ground.aws
    credentials = assume_role(
        aws.endpoint, aws.region, aws.database_service, aws.docdb_user_role_arn, "wicket-demo"
    )
    lines: list[str] = []
    with ground.iam_client(credentials) as client:
        status = client.admin.command("connectionStatus")
        users = status["authInfo"]["authenticatedUsers"]
        lines.append(f"authenticated as {users[0]['user']} (db {users[0]['db']}) via MONGODB-AWS")
        orders = client.test.orders
        orders.drop()
        orders.insert_many(
            [
                {"item": item, "qty": qty, "region": region}
                for item, qty, region in [("tea", 5, "eu"), ("coffee", 2, "us"), ("tea", 3, "us")]
            ]
        )
        totals = list(
            orders.aggregate(
                [{"$group": {"_id": "$item", "qty": {"$sum": "$qty"}}}, {"$sort": {"_id": 1}}]
            )
        )
        lines.append(
            "test.orders totals by item: " + ", ".join(f"{t['_id']}={t['qty']}" for t in totals)
        )
    return lines


@click.command()
@click.option("--keep-running", is_flag=True, help="Leave the playground up until Ctrl-C.")
def demo_command(keep_running: bool) -> None:
    """Start local AWS + localdocdb and run a real query authenticated with AWS IAM."""
    click.echo("==> starting the local AWS (moto) and provisioning the IAM setup ...")
    with playground() as ground:
        click.echo(f"    policy   {ground.aws.policy_arn}")
        click.echo(f"    role     {ground.aws.database_service_role_arn}")
        click.echo(
            f"    role     {ground.aws.docdb_user_role_arn}  (tag WicketDatabaseService=Allowed)"
        )
        click.echo(f"==> localdocdb (docdb mode, TLS) on localhost:{ground.docdb.port}")
        click.echo(
            f'    created $external user "{ground.aws.docdb_user_role_arn}" (MONGODB-AWS, root)'
        )
        for line in run_query(ground):
            click.echo(f"==> {line}")
        click.echo("==> done: a real query over MONGODB-AWS, verified against STS.")
        if keep_running:
            click.echo("Try it yourself (Ctrl-C stops everything):")
            click.echo(f"    mongosh '{ground.docdb.uri()}'")
            wait_for_interrupt()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("\nstopping ...")
