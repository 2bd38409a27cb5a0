"""Docs layer: the reference docs match the code (regenerate: python -m wicket.docsgen)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel

from wicket import docsgen
from wicket.config.models import WicketConfig


def test_committed_reference_docs_are_current() -> None:
    """Fails when a config field or CLI option changed without `python -m wicket.docsgen`."""
    assert docsgen.stale_files(docsgen.REFERENCE_DIR) == []


def test_check_detects_missing_and_stale_files(tmp_path: Path) -> None:
    problems = docsgen.stale_files(tmp_path)
    assert problems == [f"{tmp_path / 'config.md'}: missing", f"{tmp_path / 'cli.md'}: missing"]
    assert sorted(p.name for p in docsgen.write(tmp_path)) == ["cli.md", "config.md"]
    assert docsgen.stale_files(tmp_path) == []
    assert docsgen.write(tmp_path) == []  # nothing changed: nothing rewritten
    config = tmp_path / "config.md"
    config.write_text(config.read_text().replace("| `wicket.nodename` |", "| `wicket.name` |"))
    (problem,) = docsgen.stale_files(tmp_path)
    assert problem.startswith(f"{config}: stale (+1 -1 lines; first: -| `wicket.name` |")


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)


def test_check_command_exit_codes(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "wicket.docsgen", "--out-dir", str(tmp_path)]
    stale = _run(*command, "--check")
    assert stale.returncode == 1
    assert "regenerate with: python -m wicket.docsgen" in stale.stderr
    written = _run(*command)
    assert written.returncode == 0
    assert "wrote" in written.stdout
    fresh = _run(*command, "--check")
    assert fresh.returncode == 0, fresh.stderr


def test_config_reference_lists_every_field() -> None:
    text = docsgen.config_reference()
    paths: set[str] = set()
    for section in ("wicket", "auth_service", "proxy_service", "db_service"):
        model = WicketConfig.model_fields[section].annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        paths.update(row[0] for row in docsgen.config_rows(model, section))
    assert "db_service.databases[].tls.mode" in paths
    assert "db_service.resources[].labels" in paths
    for path in paths:
        assert f"| `{path}` |" in text
    assert "| `auth_service.session_ttl` | duration" in text
    assert "`12h`" in text
    assert "the machine's hostname" in text


def test_cli_reference_covers_every_command() -> None:
    text = docsgen.cli_reference()
    for heading in (
        "### `wicket db configure create`",
        "### `wicket install systemd`",
        "### `wicket start`",
        "## `wctl`",
        "## `wsh`",
    ):
        assert heading in text
    for flag in ("--proxy HOST:PORT", "--aws-assume-role-arn", "--tls-ca-file", "-o, --output"):
        assert flag in text
