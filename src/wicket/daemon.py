"""The `wicket start` daemon: runs the services a config enables (being built in issue 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_daemon(config: Any, config_path: Path) -> int:
    """Run the enabled services until SIGINT/SIGTERM; returns the exit code."""
    raise NotImplementedError("the wicket daemon lands with the auth and proxy services")
