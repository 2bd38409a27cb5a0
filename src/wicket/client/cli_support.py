"""Client layer: what `wctl` and `wsh` share as click programs.

Errors Wicket raises on purpose become one line per message on stderr, prefixed
with the program's name, and exit code 1; click's usage errors keep exit code 2.
Nobody sees a traceback for a failure we anticipated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import click

from wicket.errors import WicketError

EXIT_FAILURE = 1
T = TypeVar("T")


def fail(program: str, message: str) -> click.exceptions.Exit:
    """Print `program: message` (each line) on stderr; the Exit(1) to raise."""
    for line in message.splitlines() or [""]:
        click.echo(f"{program}: {line}", err=True)
    return click.exceptions.Exit(EXIT_FAILURE)


class ErrorReportingGroup(click.Group):
    """A click group that turns WicketError into `program: message` and exit 1."""

    program = "wicket"

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand, reporting anticipated failures in one line each."""
        try:
            return super().invoke(ctx)
        except WicketError as error:
            raise fail(self.program, str(error)) from None
        except OSError as error:
            raise fail(
                self.program, f"{error.strerror or error}: {error.filename or ''}".rstrip(": ")
            ) from None


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine to completion on a fresh event loop."""
    return asyncio.run(coroutine)
