"""Start `localdocdb serve` for a benchmark and give the `direct` target for it.

Layer: benchmark tooling. Uses only the server's command-line contract from the
issue (`--port --tls-dir --master-user --master-password`, the `ready <port>` line).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import quote_plus

from bench.harness import DIRECT, Target

READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
MASTER_USER = "benchmaster"
MAX_LINE_BYTES = 4096


def _drain(stream: IO[bytes]) -> None:
    while stream.read(65536):
        pass


def localdocdb_command() -> list[str]:
    """The `localdocdb` script next to this interpreter, else the one on PATH."""
    script = Path(sys.executable).parent / "localdocdb"
    if script.exists():
        return [str(script)]
    found = shutil.which("localdocdb")
    if found is None:
        raise RuntimeError("localdocdb is not installed (no script next to python or on PATH)")
    return [found]


class LocaldocdbServer:
    """A `localdocdb serve` process in its own process group, in a temporary directory."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.password = secrets.token_urlsafe(18)
        self._workdir = Path(tempfile.mkdtemp(prefix="bench-localdocdb-"))
        self.tls_dir = self._workdir / "tls"
        self._log_path = self._workdir / "server.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._drain: threading.Thread | None = None

    def start(self) -> None:
        """Run the server on a free port and wait for its `ready <port>` line."""
        command = [
            *localdocdb_command(),
            "serve",
            "--port",
            "0",
            "--host",
            self.host,
            "--tls-dir",
            str(self.tls_dir),
            "--master-user",
            MASTER_USER,
            "--master-password",
            self.password,
        ]
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        stdout = self._process.stdout
        assert stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        pending = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._process.poll() is not None:
                log_tail = self._log_tail()
                self.stop()
                raise RuntimeError(
                    f"localdocdb did not print 'ready <port>' (output {pending[-200:]!r}); "
                    f"log:\n{log_tail}"
                )
            readable, _, _ = select.select([stdout], [], [], min(remaining, 0.5))
            if not readable:
                continue
            chunk = os.read(stdout.fileno(), 4096)
            if not chunk:
                time.sleep(0.05)  # EOF: the process is exiting; poll() reports it next
                continue
            *lines, pending = (pending + chunk).split(b"\n")
            pending = pending[-MAX_LINE_BYTES:]
            for line in lines:
                if line.startswith(b"ready "):
                    self.port = int(line.split()[1])
                    # Keep draining stdout so the server can never block on a full pipe.
                    self._drain = threading.Thread(target=_drain, args=(stdout,), daemon=True)
                    self._drain.start()
                    return

    def _log_tail(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def target(self) -> Target:
        """The `direct` target: SCRAM-SHA-256 over TLS, verifying the server's CA."""
        ca_file = quote_plus(str(self.tls_dir / "ca.pem"))
        uri = (
            f"mongodb://{quote_plus(MASTER_USER)}:{quote_plus(self.password)}@"
            f"{self.host}:{self.port}/?tls=true&tlsCAFile={ca_file}"
            "&authSource=admin&authMechanism=SCRAM-SHA-256&directConnection=true"
        )
        return Target(DIRECT, uri, f"localdocdb on {self.host}:{self.port}")

    def stop(self) -> None:
        """Stop the server's process group and remove its directory."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
        if self._drain is not None:
            self._drain.join(timeout=STOP_TIMEOUT_SECONDS)
        if process is not None and process.stdout is not None:
            process.stdout.close()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> LocaldocdbServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
