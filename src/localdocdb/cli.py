"""The `localdocdb` command line: `serve` (the server), `aws` (local IAM/STS), `cert`, `demo`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from localdocdb import __version__
from localdocdb.demo import demo_command
from localdocdb.localaws_cli import aws_command
from localdocdb.service import run_service
from localdocdb.state import Mode, ServerConfig
from localdocdb.tls import TlsMaterial, issue_client_certificate
from wicket.errors import WicketError

log = logging.getLogger("localdocdb")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="localdocdb")
def cli() -> None:
    """localdocdb: a DocumentDB-compatible server with real IAM authentication, for local use."""


@cli.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    required=True,
    help="Port to listen on (0: any free port).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--tls-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for ca.pem, server.pem and server-key.pem (created if missing).",
)
@click.option(
    "--legacy-cn-cert",
    is_flag=True,
    help="Serve a certificate with only a Common Name and no SAN (pre-2020 RDS shape).",
)
@click.option("--master-user", required=True, help="Master user name (lives in admin).")
@click.option("--master-password", required=True, help="Master user password.")
@click.option(
    "--mode",
    type=click.Choice([m.value for m in Mode]),
    default=Mode.DOCDB.value,
    show_default=True,
    help="docdb: SCRAM + MONGODB-AWS; mongodb: SCRAM + MONGODB-X509.",
)
@click.option(
    "--client-ca",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="CA that signs client certificates (mongodb mode; default: the --tls-dir CA).",
)
@click.option(
    "--sts-endpoint",
    default="https://sts.amazonaws.com",
    show_default=True,
    help="Where MONGODB-AWS proofs are verified.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep data here (default: in memory).",
)
@click.option(
    "--cluster-id", default="localdocdb", show_default=True, help="DocumentDB cluster identifier."
)
@click.option(
    "--aws-api-port",
    type=click.IntRange(0, 65535),
    help="Serve DescribeDBClusters/ListTagsForResource on this port.",
)
@click.option("--region", default="us-east-1", show_default=True, help="AWS region of the cluster.")
@click.option(
    "--account-id", default="123456789012", show_default=True, help="AWS account of the cluster."
)
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Cluster tag (repeatable).")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
)
def serve(
    port: int,
    host: str,
    tls_dir: Path,
    legacy_cn_cert: bool,
    master_user: str,
    master_password: str,
    mode: str,
    client_ca: Path | None,
    sts_endpoint: str,
    data_dir: Path | None,
    cluster_id: str,
    aws_api_port: int | None,
    region: str,
    account_id: str,
    tags: tuple[str, ...],
    log_level: str,
) -> None:
    """Run the server; prints `ready <port>` once it accepts connections."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    parsed_tags = []
    for tag in tags:
        key, sep, value = tag.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{tag!r} is not KEY=VALUE", param_hint="--tag")
        parsed_tags.append((key, value))
    config = ServerConfig(
        port=port,
        host=host,
        tls_dir=tls_dir,
        legacy_cn_cert=legacy_cn_cert,
        master_user=master_user,
        master_password=master_password,
        mode=Mode(mode),
        client_ca=client_ca,
        sts_endpoint=sts_endpoint,
        data_dir=data_dir,
        cluster_id=cluster_id,
        aws_api_port=aws_api_port,
        region=region,
        account_id=account_id,
        tags=tuple(parsed_tags),
    )
    try:
        run_service(config)
    except WicketError as exc:
        click.echo(f"localdocdb: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"localdocdb: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        sys.exit(1)


@cli.group()
def cert() -> None:
    """Certificates for clients of a localdocdb server."""


@cert.command("client")
@click.option(
    "--tls-dir", type=click.Path(file_okay=False, exists=True, path_type=Path), required=True
)
@click.option("--subject", required=True, help='RFC 4514 subject, e.g. "CN=alice,O=Example".')
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the certificate and key (PEM, 0600).",
)
def cert_client(tls_dir: Path, subject: str, out: Path) -> None:
    """Issue a client certificate from the --tls-dir CA (for MONGODB-X509 in mongodb mode)."""
    try:
        issue_client_certificate(TlsMaterial(tls_dir), subject, out)
    except (WicketError, OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(str(out))


cli.add_command(aws_command, "aws")
cli.add_command(demo_command, "demo")


def main() -> None:
    """Entry point of the console script."""
    cli()
