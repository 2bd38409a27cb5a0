"""`localdocdb serve` refuses bad input with one clear line, never a traceback."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from localdocdb.process import localdocdb_executable


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*localdocdb_executable(), "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def base_args(tmp_path: Path, port: int = 0) -> list[str]:
    return [
        "--port",
        str(port),
        "--tls-dir",
        str(tmp_path / "tls"),
        "--master-user",
        "m",
        "--master-password",
        "p",
    ]


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = serve(*base_args(tmp_path, busy.getsockname()[1]))
    assert result.returncode == 1
    assert "address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_unusable_tls_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = serve(
        "--port",
        "0",
        "--tls-dir",
        str(blocker / "tls"),
        "--master-user",
        "m",
        "--master-password",
        "p",
    )
    assert result.returncode == 1
    assert result.stderr.startswith("localdocdb: --tls-dir ")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--bogus"], "No such option"),
        (["--mode", "oracle"], "Invalid value for '--mode'"),
        (["--tag", "novalue"], "is not KEY=VALUE"),
        (["--port", "70000"], "Invalid value for '--port'"),
    ],
)
def test_bad_flags_are_usage_errors(tmp_path: Path, extra: list[str], message: str) -> None:
    args = base_args(tmp_path)
    if extra[0] == "--port":
        args = args[2:]
    result = serve(*args, *extra)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
