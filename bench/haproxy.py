"""The floor: HAProxy doing exactly Wicket's hops and TLS legs, with no inspection.

Layer: benchmark tooling. Wicket's data path is three processes and four legs:
client --plain--> wsh tunnel --TLS--> proxy --TLS--> agent --TLS--> database. The floor
is the same shape in C: three HAProxy processes (one per hop, one thread each, like
Wicket's single-threaded Python processes), each terminating and re-originating TLS
where Wicket does, verifying certificates against the test PKI. `chain_configs` is pure
(tested without HAProxy); `HaproxyChain` runs it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from localdocdb.localaws import free_port

HOPS = ("tunnel", "proxy", "agent")
START_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class ChainPorts:
    """Where each hop listens, and the database it ends at."""

    tunnel: int
    proxy: int
    agent: int
    database: int


@dataclass(frozen=True)
class ChainTls:
    """Certificates: one server PEM (cert+key) for the hops, CA files to verify with."""

    server_pem: Path
    hop_ca: Path
    database_ca: Path


def _global(maxconn: int) -> list[str]:
    return [
        "global",
        "    nbthread 1",
        f"    maxconn {maxconn}",
        "    tune.ssl.default-dh-param 2048",
        "defaults",
        "    mode tcp",
        "    timeout connect 10s",
        "    timeout client 10m",
        "    timeout server 10m",
        "",
    ]


def chain_configs(ports: ChainPorts, tls: ChainTls, maxconn: int = 5000) -> dict[str, str]:
    """One HAProxy config per hop: plain in -> TLS out, TLS in -> TLS out, twice."""
    legs = {
        # hop: (listen port, TLS on the listener, next port, CA that verifies the next hop)
        "tunnel": (ports.tunnel, False, ports.proxy, tls.hop_ca),
        "proxy": (ports.proxy, True, ports.agent, tls.hop_ca),
        "agent": (ports.agent, True, ports.database, tls.database_ca),
    }
    configs: dict[str, str] = {}
    for hop, (listen, tls_in, upstream, ca) in legs.items():
        bind = f"    bind 127.0.0.1:{listen}"
        if tls_in:
            bind += f" ssl crt {tls.server_pem}"
        lines = [
            *_global(maxconn),
            f"frontend {hop}_in",
            bind,
            f"    default_backend {hop}_out",
            "",
            f"backend {hop}_out",
            f"    server next 127.0.0.1:{upstream} ssl verify required ca-file {ca}"
            " sni str(localhost) verifyhost localhost",
            "",
        ]
        configs[hop] = "\n".join(lines)
    return configs


def haproxy_path() -> str | None:
    """The haproxy binary (Debian installs it in /usr/sbin), if installed."""
    return shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )


class HaproxyChain:
    """Three HAProxy processes in front of `database_port`; `port` is the client's entry."""

    def __init__(self, directory: Path, database_port: int, tls: ChainTls) -> None:
        self.directory = directory
        self.ports = ChainPorts(free_port(), free_port(), free_port(), database_port)
        self.tls = tls
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def port(self) -> int:
        """The plain listener clients connect to (like wsh's tunnel)."""
        return self.ports.tunnel

    def start(self) -> None:
        """Write the configs and start one process per hop."""
        binary = haproxy_path()
        if binary is None:
            raise RuntimeError("haproxy is not installed: run scripts/dev.sh setup")
        self.directory.mkdir(parents=True, exist_ok=True)
        for hop, text in chain_configs(self.ports, self.tls).items():
            config = self.directory / f"{hop}.cfg"
            config.write_text(text)
            log = (self.directory / f"{hop}.log").open("wb")
            try:
                self.processes[hop] = subprocess.Popen(
                    [binary, "-db", "-f", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            finally:
                log.close()
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        for hop, port in (("tunnel", self.ports.tunnel), ("proxy", self.ports.proxy)):
            while True:
                if self.processes[hop].poll() is not None:
                    log = (self.directory / f"{hop}.log").read_text(errors="replace")
                    raise RuntimeError(f"haproxy ({hop}) exited:\n{log}")
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"haproxy ({hop}) did not listen on {port}")
                time.sleep(0.05)

    def pids(self) -> dict[str, int]:
        """Process id per hop (for RSS)."""
        return {hop: process.pid for hop, process in self.processes.items()}

    def stop(self) -> None:
        """Stop every hop."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def __enter__(self) -> HaproxyChain:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
