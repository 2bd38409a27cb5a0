"""Start and stop a `localdocdb serve` child process (tests, demo and benchmarks share this)."""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import quote_plus

from wicket.errors import Timeout, WicketError

READY_TIMEOUT = 30.0


def localdocdb_executable() -> list[str]:
    """The command that runs localdocdb: the console script beside this interpreter."""
    script = Path(sys.executable).with_name("localdocdb")
    if script.exists():
        return [str(script)]
    found = shutil.which("localdocdb")
    if found:
        return [found]
    return [sys.executable, "-m", "localdocdb"]


def wait_for_line(
    process: subprocess.Popen[str], stream: IO[str], prefix: str, timeout: float, log: Path | None
) -> str:
    """Read `stream` until a line starts with `prefix` (fail clearly if the process dies)."""
    deadline = time.monotonic() + timeout
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout(f"no {prefix!r} line within {timeout:.0f}s{_log_tail(log)}")
            if not selector.select(remaining):
                continue
            line = stream.readline()
            if not line:
                code = process.wait(timeout=5)
                raise WicketError(
                    f"process exited with code {code} before {prefix!r}{_log_tail(log)}"
                )
            if line.startswith(prefix):
                return line.strip()
    finally:
        selector.close()


def _log_tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    lines = log.read_text(errors="replace").splitlines()[-20:]
    return "\n--- log tail ---\n" + "\n".join(lines)


@dataclass
class LocalDocDBProcess:
    """A running `localdocdb serve`."""

    process: subprocess.Popen[str]
    port: int
    tls_dir: Path
    master_user: str
    master_password: str = field(repr=False)
    log_path: Path | None = None

    @property
    def ca_file(self) -> Path:
        """The CA clients verify this server with."""
        return self.tls_dir / "ca.pem"

    @classmethod
    def start(
        cls,
        *,
        tls_dir: Path,
        master_user: str = "master",
        master_password: str = "master-password",  # noqa: S107 - local test server default
        port: int = 0,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        timeout: float = READY_TIMEOUT,
    ) -> LocalDocDBProcess:
        """Start the server and wait for its `ready <port>` line."""
        command = [
            *localdocdb_executable(),
            "serve",
            "--port",
            str(port),
            "--tls-dir",
            str(tls_dir),
            "--master-user",
            master_user,
            "--master-password",
            master_password,
            *args,
        ]
        stderr = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                text=True,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        finally:
            if log_path:
                stderr.close()  # type: ignore[union-attr]
        assert process.stdout is not None
        try:
            line = wait_for_line(process, process.stdout, "ready ", timeout, log_path)
        except BaseException:
            _terminate(process)
            raise
        return cls(process, int(line.split()[1]), tls_dir, master_user, master_password, log_path)

    def uri(self, *, host: str = "localhost", **params: str) -> str:
        """A master-user connection string with TLS verified against this server's CA."""
        options = {"tls": "true", "tlsCAFile": str(self.ca_file), **params}
        query = "&".join(f"{k}={quote_plus(v)}" for k, v in options.items())
        user = quote_plus(self.master_user)
        password = quote_plus(self.master_password)
        return f"mongodb://{user}:{password}@{host}:{self.port}/?{query}"

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 10 s; returns the exit code."""
        return _terminate(self.process)

    def kill(self) -> None:
        """SIGKILL at once (crash test)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def __enter__(self) -> LocalDocDBProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _terminate(process: subprocess.Popen[str]) -> int:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()
    return process.returncode
