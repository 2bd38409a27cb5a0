"""A real Wicket cluster for tests: `wicket configure` + `wicket start` processes on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from localdocdb.localaws import free_port
from wicket.api.client import AuthClient
from wicket.tlsconfig import client_context

START_TIMEOUT = 30.0
T = TypeVar("T")
BIN = Path(sys.executable).parent


def run_coroutine(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a private loop in a worker thread.

    Works whether or not the caller already runs an event loop (pytest-asyncio,
    Playwright's sync API).
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def wicket_bin(name: str = "wicket") -> str:
    """A console script of this checkout's environment."""
    return str(BIN / name)


@dataclass
class WicketProcess:
    """One `wicket start` process."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        """Everything it logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = START_TIMEOUT) -> None:
        """Block until `text` appears in the log; fail with the log if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_text():
                return
            if self.process.poll() is not None:
                raise AssertionError(
                    f"wicket exited ({self.process.returncode}):\n{self.log_text()}"
                )
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} in the log within {timeout}s:\n{self.log_text()}")

    def stop(self) -> int:
        """SIGTERM and wait."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL (crash test)."""
        self.process.kill()
        self.process.wait(timeout=10)


def start_wicket(
    config: Path,
    log_path: Path,
    *,
    wait: str = "wicket started",
    env: dict[str, str] | None = None,
) -> WicketProcess:
    """Run `wicket start -c config` (extra `env` on top of ours) and wait until it started."""
    log = log_path.open("ab")
    try:
        process = subprocess.Popen(
            [wicket_bin(), "start", "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
    finally:
        log.close()
    running = WicketProcess(process, log_path)
    try:
        running.wait_for_log(wait)
    except BaseException:
        running.stop()
        raise
    return running


@dataclass
class Cluster:
    """An all-in-one auth+proxy node made by `wicket configure`."""

    directory: Path
    proxy_port: int
    auth_port: int
    processes: list[WicketProcess] = field(default_factory=list)

    @property
    def config(self) -> Path:
        """The all-in-one config file."""
        return self.directory / "wicket.yaml"

    @property
    def data_dir(self) -> Path:
        """The auth/proxy node's data directory."""
        return self.directory / "data"

    @property
    def proxy_addr(self) -> str:
        """HOST:PORT users and agents use."""
        return f"localhost:{self.proxy_port}"

    def configure(self) -> None:
        """`wicket configure` exactly as a user runs it."""
        subprocess.run(
            [
                wicket_bin(),
                "configure",
                "--cluster-name",
                "example.com",
                "--public-addr",
                self.proxy_addr,
                "--data-dir",
                str(self.data_dir),
                "--auth-listen-addr",
                f"127.0.0.1:{self.auth_port}",
                "-o",
                str(self.config),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> WicketProcess:
        """Start (or restart) the node."""
        log = self.directory / f"wicket-{len(self.processes)}.log"
        process = start_wicket(self.config, log)
        self.processes.append(process)
        return process

    def admin_call(self, method: str, path: str, body: Any = None) -> Any:
        """One API call with the local admin identity (what wctl uses on the auth host)."""
        admin = self.data_dir / "admin"
        info = json.loads((admin / "cluster.json").read_text())
        context = client_context(
            ca_pems=[info["cas"]["host"].encode()],
            cert_chain_pem=(admin / "cert.pem").read_bytes(),
            key_pem=(admin / "key.pem").read_bytes(),
        )

        async def call() -> Any:
            async with AuthClient(info["auth_addr"], context) as client:
                return await client.call(method, path, body)

        return run_coroutine(call)

    def stop(self) -> None:
        """Stop every process this cluster started."""
        for process in self.processes:
            process.stop()


def new_cluster(directory: Path) -> Cluster:
    """Configure (not start) a cluster on free loopback ports."""
    directory.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(directory, free_port(), free_port())
    cluster.configure()
    return cluster


def write_agent_config(
    directory: Path,
    cluster: Cluster,
    token_file: Path,
    *,
    name: str = "my-docdb",
    labels: str = "env=dev",
    uri: str = "localhost:27017",
    extra: tuple[str, ...] = (),
) -> Path:
    """`wicket db configure create` as the guide's step 2 runs it."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "agent.yaml"
    subprocess.run(
        [
            wicket_bin(),
            "db",
            "configure",
            "create",
            "-o",
            str(config),
            f"--name={name}",
            f"--proxy={cluster.proxy_addr}",
            "--protocol=mongodb",
            f"--token={token_file}",
            f"--uri={uri}",
            f"--labels={labels}",
            "--data-dir",
            str(directory / "data"),
            *extra,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return config
