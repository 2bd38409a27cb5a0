"""`localdocdb aws`: run a provisioned local AWS (moto) until interrupted.

Layer: command-line shell around `localdocdb.localaws`.
"""

from __future__ import annotations

import os
import shlex
import signal
import threading
from pathlib import Path
from types import FrameType

import click
from botocore.exceptions import BotoCoreError, ClientError

from localdocdb.localaws import LocalAws, LocalAwsError, MotoServer, provision


def environment_lines(aws: LocalAws) -> list[str]:
    """`export NAME=value` lines for the database service's credentials."""
    return [f"export {name}={shlex.quote(value)}" for name, value in aws.environment().items()]


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)


@click.command("aws")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address moto listens on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port for moto (0: pick a free one).",
)
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write endpoint, credentials and ARNs as JSON here (mode 0600).",
)
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the environment lines here too (mode 0600), for `source`.",
)
@click.option("--region", default="us-east-1", show_default=True)
def aws_command(
    host: str, port: int, state_file: Path | None, env_file: Path | None, region: str
) -> None:
    """Start a local AWS (moto) with the guide's IAM roles and print the database service's env."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            server = MotoServer.start(host=host, port=port)
        except LocalAwsError as exc:
            raise click.ClickException(str(exc)) from exc
        try:
            try:
                aws = provision(server.endpoint, region=region)
            except (LocalAwsError, BotoCoreError, ClientError) as exc:
                raise click.ClickException(f"provisioning the local AWS failed: {exc}") from exc
            lines = environment_lines(aws)
            if state_file is not None:
                aws.save(state_file)
            if env_file is not None:
                _write_private(env_file, "\n".join(lines) + "\n")
            # The secret is printed on purpose: this is a throwaway local account that lives
            # only as long as this process, and the demo and tests need these values.
            for line in lines:
                click.echo(line)
            click.echo(f"ready {server.endpoint.rsplit(':', 1)[1]}")
            while not stop.wait(0.5):
                if not server.running():
                    raise click.ClickException("moto_server exited unexpectedly")
        finally:
            server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
