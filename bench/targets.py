"""Everything the bench measures, started on loopback: databases, the floor, Wicket.

Layer: benchmark tooling. `Stage` starts (and stops, in reverse) moto for STS,
localdocdb in DocumentDB mode (MONGODB-AWS), the canned upstream, an HAProxy chain in
front of each, and one all-in-one Wicket cluster with an agent per upstream, reached by
`wsh proxy db --tunnel` and by TLS with the database certificate straight to the proxy
(what `wsh db env` prints for drivers and mongosh). Each `Target` names a URI, a raw
endpoint for idle-session counting and the processes whose memory is its cost.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlparse

from tests.support.cluster import Cluster, WicketProcess, new_cluster, start_wicket
from tests.support.cluster import write_agent_config as agent_config
from tests.support.stage import create_external_user

from bench.haproxy import ChainTls, HaproxyChain
from localdocdb.localaws import LocalAws, MotoServer, assume_role, provision
from localdocdb.process import LocalDocDBProcess, wait_for_line
from localdocdb.tls import ensure_tls_material
from wicket.pki.pem import load_certificate
from wicket.pki.pin import ca_pin

WSH = str(Path(sys.executable).parent / "wsh")
PASSWORD = "a long enough bench password"
DATABASE = "bench"
DOCDB_USER = "wicket-docdb-user"
CANNED_USER = "CN=bench"
START_TIMEOUT = 60.0

# (group, kind): the group's `direct` and `floor` are what its Wicket targets are divided by.
GROUPS = ("localdocdb", "canned")
KINDS = ("direct", "floor", "wicket-tunnel", "wicket-direct")


def target_name(group: str, kind: str) -> str:
    """`direct`, `floor`, `wicket-tunnel`... for localdocdb; `canned`, `floor-canned`... else."""
    if group == "localdocdb":
        return kind
    return "canned" if kind == "direct" else f"{kind}-canned"


ALL_TARGETS = tuple(target_name(group, kind) for group in GROUPS for kind in KINDS)


@dataclass(frozen=True)
class RawEndpoint:
    """Where a bare socket connects for an idle session, and its TLS (None: plain)."""

    host: str
    port: int
    tls: ssl.SSLContext | None


@dataclass
class Target:
    """One thing measured: a driver URI, a raw endpoint and the processes it costs."""

    name: str
    group: str
    kind: str
    uri: str
    raw: RawEndpoint
    pids: dict[str, int] = field(default_factory=dict)


def _tls_context(ca_file: Path, cert_key_file: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    if cert_key_file is not None:
        context.load_cert_chain(str(cert_key_file))
    return context


class Tunnel:
    """`wsh proxy db --tunnel` in the background; `port` is its local plain listener."""

    def __init__(self, env: dict[str, str], *args: str, log: Path) -> None:
        with log.open("wb") as errors:
            self.process = subprocess.Popen(
                [WSH, "proxy", "db", "--tunnel", *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
        assert self.process.stdout is not None
        first = wait_for_line(self.process, self.process.stdout, "", START_TIMEOUT, log)
        found = re.search(r"on 127\.0\.0\.1:(\d+)\.$", first.strip())
        if found is None:
            raise RuntimeError(f"wsh proxy db --tunnel said {first!r}")
        self.port = int(found.group(1))

    def stop(self) -> None:
        """SIGTERM and wait."""
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


class CannedServer:
    """`python -m bench.canned` in its own process (so it never shares a core with clients)."""

    def __init__(self, tls_dir: Path, log: Path) -> None:
        self.tls_dir = tls_dir
        with log.open("wb") as errors:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.canned", "--tls-dir", str(tls_dir)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
        assert self.process.stdout is not None
        line = wait_for_line(self.process, self.process.stdout, "ready ", START_TIMEOUT, log)
        self.port = int(line.split()[1])

    @property
    def ca_file(self) -> Path:
        """The CA its certificate is signed by."""
        return self.tls_dir / "ca.pem"

    def stop(self) -> None:
        """SIGTERM and wait."""
        self.process.terminate()
        self.process.wait(timeout=10)


class Stage:
    """Starts what the chosen targets need; `targets` maps name to `Target`."""

    def __init__(self, directory: Path, wanted: tuple[str, ...]) -> None:
        self.directory = directory
        self.wanted = wanted
        self.targets: dict[str, Target] = {}
        self._stack = ExitStack()
        self._wsh_env: dict[str, str] = {}
        self.aws: LocalAws | None = None

    def _wants(self, group: str, *kinds: str) -> bool:
        return any(target_name(group, kind) in self.wanted for kind in kinds)

    def __enter__(self) -> Stage:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        hop_tls = ensure_tls_material(self.directory / "hop-tls")
        chain_tls = {"hop_ca": hop_tls.ca_cert, "server_pem": hop_tls.server_pem}
        upstreams: dict[str, tuple[int, Path]] = {}  # group -> (port, CA file)
        cluster: Cluster | None = None
        if self._wants("localdocdb", *KINDS):
            moto = self._stack.enter_context(MotoServer.start(log_file=self.directory / "moto.log"))
            aws = self.aws = provision(moto.endpoint)
            docdb = LocalDocDBProcess.start(
                tls_dir=self.directory / "docdb-tls",
                args=("--mode", "docdb", "--sts-endpoint", aws.endpoint),
                log_path=self.directory / "localdocdb.log",
            )
            self._stack.callback(docdb.stop)
            upstreams["localdocdb"] = (docdb.port, docdb.ca_file)
            create_external_user(docdb, aws.docdb_user_role_arn)
            user = assume_role(
                aws.endpoint, aws.region, aws.database_service, aws.docdb_user_role_arn, "bench"
            )
            token = quote_plus(f"AWS_SESSION_TOKEN:{user.session_token}")
            uri = (
                f"mongodb://{quote_plus(user.access_key_id)}:"
                f"{quote_plus(user.secret_access_key)}@localhost:{{port}}/{DATABASE}"
                f"?authMechanism=MONGODB-AWS&authSource=%24external"
                f"&authMechanismProperties={token}&directConnection=true&retryWrites=false"
            )
            self._add_upstream("localdocdb", uri, docdb.port, docdb.ca_file, docdb.process.pid)
        if self._wants("canned", *KINDS):
            canned = CannedServer(self.directory / "canned-tls", self.directory / "canned.log")
            self._stack.callback(canned.stop)
            upstreams["canned"] = (canned.port, canned.ca_file)
            uri = f"mongodb://localhost:{{port}}/{DATABASE}?directConnection=true&retryWrites=false"
            self._add_upstream("canned", uri, canned.port, canned.ca_file, canned.process.pid)
        for group, (port, ca) in upstreams.items():
            if self._wants(group, "floor"):
                chain = HaproxyChain(
                    self.directory / f"haproxy-{group}",
                    port,
                    ChainTls(database_ca=ca, **chain_tls),
                )
                self._stack.enter_context(chain)
                base = self.targets[target_name(group, "direct")]
                self.targets[target_name(group, "floor")] = Target(
                    target_name(group, "floor"),
                    group,
                    "floor",
                    _plain(base.uri.replace(f":{port}/", f":{chain.port}/")),
                    RawEndpoint("127.0.0.1", chain.port, None),
                    {f"haproxy-{hop}": pid for hop, pid in chain.pids().items()},
                )
        wicket_groups = [g for g in upstreams if self._wants(g, "wicket-tunnel", "wicket-direct")]
        if wicket_groups:
            cluster = self._start_cluster()
            for group in wicket_groups:
                self._start_wicket(cluster, group, *upstreams[group])
        for name in list(self.targets):
            if name not in self.wanted:
                del self.targets[name]

    def _add_upstream(self, group: str, uri: str, port: int, ca: Path, pid: int) -> None:
        name = target_name(group, "direct")
        tls_uri = uri.format(port=port) + f"&tls=true&tlsCAFile={quote_plus(str(ca))}"
        raw = RawEndpoint("localhost", port, _tls_context(ca))
        self.targets[name] = Target(name, group, "direct", tls_uri, raw, {"database": pid})

    def _start_cluster(self) -> Cluster:
        cluster = new_cluster(self.directory / "node")
        cluster.start()
        self._stack.callback(cluster.stop)
        created = cluster.admin_call(
            "POST",
            "/v1/users",
            {
                "name": "alice",
                "roles": ["access"],
                "traits": {"db_users": ["*"], "db_names": ["*"]},
            },
        )
        invite = created["invite_url"].rsplit("/", 1)[1]
        cluster.admin_call("POST", f"/v1/invites/{invite}", {"password": PASSWORD})
        self._wsh_env = {**_clean_env(), "WSH_HOME": str(self.directory / "wsh-home")}
        info = json.loads((cluster.data_dir / "admin" / "cluster.json").read_text())
        pin = ca_pin(load_certificate(info["cas"]["host"].encode()))
        self._wsh(
            "login",
            f"--proxy={cluster.proxy_addr}",
            "--user=alice",
            "--password-stdin",
            f"--ca-pin={pin}",
            "--ttl=12h",
            input=PASSWORD + "\n",
        )
        return cluster

    def _wsh(self, *args: str, input: str | None = None) -> str:
        done = subprocess.run(
            [WSH, *args],
            env=self._wsh_env,
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"wsh {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def _start_wicket(self, cluster: Cluster, group: str, port: int, ca: Path) -> None:
        service = "my-docdb" if group == "localdocdb" else "canned"
        db_user = DOCDB_USER if group == "localdocdb" else CANNED_USER
        token = cluster.admin_call("POST", "/v1/tokens", {"type": "db"})["token"]
        token_file = self.directory / f"token-{group}"
        token_file.write_text(token)
        extra: tuple[str, ...] = ("--tls-ca-file", str(ca))
        env: dict[str, str] = {}
        if group == "localdocdb":
            assert self.aws is not None
            extra += ("--aws-region", "us-east-1", "--aws-account-id", self.aws.account_id)
            env = self.aws.environment()
        config = agent_config(
            self.directory / f"agent-{group}",
            cluster,
            token_file,
            name=service,
            uri=f"localhost:{port}",
            extra=extra,
        )
        agent: WicketProcess = start_wicket(config, self.directory / f"agent-{group}.log", env=env)
        self._stack.callback(agent.stop)
        agent.wait_for_log("tunnel to")
        proxy_pid = cluster.processes[-1].process.pid
        flags = (f"--db-user={db_user}", f"--db-name={DATABASE}", service)
        if self._wants(group, "wicket-tunnel"):
            tunnel = Tunnel(self._wsh_env, *flags, log=self.directory / f"tunnel-{group}.log")
            self._stack.callback(tunnel.stop)
            name = target_name(group, "wicket-tunnel")
            self.targets[name] = Target(
                name,
                group,
                "wicket-tunnel",
                f"mongodb://127.0.0.1:{tunnel.port}/{DATABASE}"
                "?directConnection=true&retryWrites=false",
                RawEndpoint("127.0.0.1", tunnel.port, None),
                {"wsh": tunnel.process.pid, "proxy": proxy_pid, "agent": agent.process.pid},
            )
        if self._wants(group, "wicket-direct"):
            self._wsh("db", "login", *flags)
            exported = self._wsh("db", "env", service)
            found = re.search(r"WICKET_DB_URI=['\"]?([^'\"\s]+)", exported)
            if found is None:
                raise RuntimeError(f"wsh db env printed no WICKET_DB_URI: {exported!r}")
            uri = found.group(1)
            query = parse_qs(urlparse(uri).query)
            host, _, proxy_port = cluster.proxy_addr.rpartition(":")
            context = _tls_context(
                Path(query["tlsCAFile"][0]), Path(query["tlsCertificateKeyFile"][0])
            )
            name = target_name(group, "wicket-direct")
            self.targets[name] = Target(
                name,
                group,
                "wicket-direct",
                uri + ("&retryWrites=false" if "retryWrites" not in uri else ""),
                RawEndpoint(host, int(proxy_port), context),
                {"proxy": proxy_pid, "agent": agent.process.pid},
            )


def _plain(uri: str) -> str:
    """The same URI without TLS (the floor's entry is a plain listener, like wsh's)."""
    return re.sub(r"&tls=true&tlsCAFile=[^&]*", "", uri)


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("WSH_DB_PASSWORD", "WSH_HOME"):
        env.pop(key, None)
    return env


def describe(targets: dict[str, Target]) -> dict[str, Any]:
    """What each target is, for the JSON file (no secrets: URIs are left out)."""
    return {
        name: {"group": t.group, "kind": t.kind, "processes": sorted(t.pids)}
        for name, t in targets.items()
    }
