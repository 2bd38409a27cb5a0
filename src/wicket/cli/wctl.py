"""The `wctl` command line."""

from __future__ import annotations

import click

from wicket import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """wctl: part of Wicket, identity-aware access to MongoDB and DocumentDB."""


@cli.command()
def version() -> None:
    """Print the version."""
    click.echo(f"wctl v{__version__}")


def main() -> None:
    """Entry point of the console script."""
    cli()
