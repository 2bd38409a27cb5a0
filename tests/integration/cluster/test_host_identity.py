"""Issue 7, class 4: a join token buys only the certificate its host role is entitled to,
and no client takes another host of the cluster for the proxy or the auth service.

A real `wicket start` node; the impostor is a TLS server in this test presenting a
certificate from that cluster's host CA: one a db join token bought, and one shaped like
those the old `/v1/join` handed out (a db host naming `localhost`, `127.0.0.1` and
`wicket-auth`, still valid for a year wherever they were issued).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509

from tests.support.cluster import Cluster, new_cluster, run_coroutine, wicket_bin
from wicket.api.client import AUTH_ALPN, AuthClient
from wicket.client.webapi import ProxyWebClient, verified_context
from wicket.errors import AccessDenied, BadParameter
from wicket.identity import HostRole, Identity, IdentityKind, identity_from_certificate
from wicket.pki.authority import CertificateAuthority
from wicket.pki.keys import generate_private_key, private_key_pem, public_key_pem
from wicket.pki.pem import certificate_pem, load_certificate
from wicket.tlsconfig import client_context, server_context

PASSWORD = "a long enough passphrase"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    node = new_cluster(tmp_path_factory.mktemp("host-identity") / "node")
    node.start()
    yield node
    node.stop()


def cluster_info(cluster: Cluster) -> dict[str, Any]:
    info: dict[str, Any] = json.loads((cluster.data_dir / "admin" / "cluster.json").read_text())
    return info


def auth_context(cluster: Cluster) -> ssl.SSLContext:
    """TLS to the auth service, trusting the cluster's host CA (no client certificate)."""
    return client_context(ca_pems=[cluster_info(cluster)["cas"]["host"].encode()], alpn=[AUTH_ALPN])


def join(cluster: Cluster, body: dict[str, Any]) -> Any:
    """POST /v1/join through the proxy's wicket-auth route, as an agent does."""
    context = auth_context(cluster)

    async def call() -> Any:
        async with AuthClient(cluster.proxy_addr, context) as client:
            return await client.post("/v1/join", body)

    return run_coroutine(call)


def sans(cert: x509.Certificate) -> list[str]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n.value) for n in names]


def test_a_db_token_buys_no_names_and_no_chosen_id(cluster: Cluster) -> None:
    key = generate_private_key()
    wanted = {
        "role": "db",
        "hostname": "db-1",
        "public_key_pem": public_key_pem(key).decode(),
        "dns_names": ["wicket-auth", "localhost"],
        "ip_addresses": ["127.0.0.1"],
    }
    token = cluster.admin_call("POST", "/v1/tokens", {"type": "db", "single_use": False})
    with pytest.raises(BadParameter, match="cannot choose its host id"):
        join(cluster, {**wanted, "token": token["token"], "host_id": "proxy-localhost"})
    answer = join(cluster, {**wanted, "token": token["token"]})
    cert = load_certificate(answer["cert_pem"].encode())
    assert sans(cert) == []
    assert answer["dns_names"] == [] and answer["ip_addresses"] == []
    assert answer["not_granted"] == ["wicket-auth", "localhost", "127.0.0.1"]
    identity = identity_from_certificate(cert)
    assert identity.host_role is HostRole.DB and identity.host_id == answer["host_id"] != "db-1"
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH not in list(usage)


def test_a_proxy_token_buys_only_the_names_the_cluster_allows(cluster: Cluster) -> None:
    token = cluster.admin_call(
        "POST", "/v1/tokens", {"type": "proxy", "names": ["proxy-2.example.com", "10.0.0.5"]}
    )
    assert token["names"] == ["proxy-2.example.com", "10.0.0.5"]
    key = generate_private_key()
    answer = join(
        cluster,
        {
            "token": token["token"],
            "role": "proxy",
            "hostname": "proxy-2",
            "public_key_pem": public_key_pem(key).decode(),
            "dns_names": ["wicket-auth", "proxy-2.example.com"],
        },
    )
    cert = load_certificate(answer["cert_pem"].encode())
    # the token's names and the configured proxy public address (localhost:PORT)
    assert sorted(sans(cert)) == ["10.0.0.5", "localhost", "proxy-2.example.com"]
    assert answer["not_granted"] == ["wicket-auth"]
    with pytest.raises(BadParameter, match="auth service's name"):
        cluster.admin_call("POST", "/v1/tokens", {"type": "proxy", "names": ["wicket-auth"]})


@dataclass
class Impostor:
    """An HTTPS server with a host certificate of the cluster; records every request."""

    cert_pem: bytes
    key_pem: bytes
    cluster_answer: dict[str, Any]
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    port: int = 0

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path, await request.read()))
        if request.path == "/v1/webapi/cluster":
            return web.json_response(self.cluster_answer)
        return web.json_response({"auth": {"second_factor": "off"}})

    def serve(self) -> Iterator[Impostor]:
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        stop = asyncio.Event()

        async def main() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            context = server_context(self.cert_pem, self.key_pem, alpn=["http/1.1", AUTH_ALPN])
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
            await site.start()
            server = site._server
            assert isinstance(server, asyncio.Server)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            await stop.wait()
            await runner.cleanup()

        thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
        thread.start()
        assert ready.wait(10)
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(10)
            loop.close()


def wsh_login(home: Path, address: str, pin: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WSH_HOME": str(home), "WICKET_CONFIG_FILE": ""}
    return subprocess.run(
        [
            wicket_bin("wsh"),
            "login",
            f"--proxy={address}",
            "--user=alice",
            "--password-stdin",
            f"--ca-pin={pin}",
        ],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def auth_login(cluster: Cluster, address: str) -> None:
    context = auth_context(cluster)

    async def call() -> None:
        async with AuthClient(address, context) as client:
            await client.post("/v1/login", {"user": "alice", "password": PASSWORD})

    run_coroutine(call)


def joined_db_certificate(cluster: Cluster) -> tuple[bytes, bytes]:
    """What a db join token buys, asking for every name an impostor would want."""
    token = cluster.admin_call("POST", "/v1/tokens", {"type": "db"})["token"]
    key = generate_private_key()
    answer = join(
        cluster,
        {
            "token": token,
            "role": "db",
            "hostname": "impostor",
            "public_key_pem": public_key_pem(key).decode(),
            "dns_names": ["wicket-auth", "localhost"],
            "ip_addresses": ["127.0.0.1"],
        },
    )
    return answer["cert_pem"].encode(), private_key_pem(key)


def old_style_db_certificate(cluster: Cluster) -> tuple[bytes, bytes]:
    """A db host certificate naming localhost, 127.0.0.1 and wicket-auth (the old join's)."""
    database = sqlite3.connect(f"file:{cluster.data_dir / 'backend.sqlite'}?mode=ro", uri=True)
    try:
        (record,) = database.execute("SELECT value FROM items WHERE key = '/cas/host'").fetchone()
    finally:
        database.close()
    host_ca = CertificateAuthority.from_json(bytes(record))
    key = generate_private_key()
    identity = Identity(
        cluster="example.com",
        kind=IdentityKind.HOST,
        name="0f6b7a1e-old",
        host_id="0f6b7a1e-old",
        host_role=HostRole.DB,
    )
    cert = host_ca.issue(
        key.public_key(),
        identity,
        ttl=timedelta(days=365),
        server=True,
        client=True,
        dns_names=["wicket-auth", "localhost"],
        ip_addresses=["127.0.0.1"],
    )
    return certificate_pem(cert), private_key_pem(key)


@pytest.mark.parametrize(
    ("make", "wsh_error", "auth_error"),
    [
        (joined_db_certificate, "is not the proxy", "is not the auth service"),
        (
            old_style_db_certificate,
            "presented a certificate for a db host (0f6b7a1e-old), not the proxy",
            "presented a certificate for a db host (0f6b7a1e-old), not the auth service",
        ),
    ],
    ids=["joined-now", "joined-before-the-fix"],
)
def test_a_db_host_cannot_pose_as_the_proxy_or_the_auth_service(
    cluster: Cluster, tmp_path: Path, make: Any, wsh_error: str, auth_error: str
) -> None:
    cert_pem, key_pem = make(cluster)
    info = cluster_info(cluster)
    answer = {"cluster_name": info["cluster_name"], "cas": info["cas"], "ca_pin": info["ca_pin"]}
    impostor = Impostor(cert_pem, key_pem, answer)
    for running in impostor.serve():
        address = f"localhost:{running.port}"
        result = wsh_login(tmp_path / "home", address, info["ca_pin"])
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        assert f"the server at {address}" in result.stderr and wsh_error in result.stderr
        with pytest.raises(AccessDenied) as refused:
            auth_login(cluster, f"127.0.0.1:{running.port}")
        assert f"the server at 127.0.0.1:{running.port}" in str(refused.value)
        assert auth_error in str(refused.value)
        # only the unverified CA fetch (before the pin check) ever reached the impostor
        assert [(method, path) for method, path, _ in running.requests] == [
            ("GET", "/v1/webapi/cluster")
        ]
        assert all(PASSWORD.encode() not in body for _, _, body in running.requests)


def test_the_real_proxy_and_auth_service_are_still_accepted(cluster: Cluster) -> None:
    host_ca = cluster_info(cluster)["cas"]["host"].encode()
    web_client = ProxyWebClient(cluster.proxy_addr, verified_context(host_ca))
    assert run_coroutine(web_client.find)["cluster_name"] == "example.com"
    assert cluster.admin_call("GET", "/v1/status")["cluster_name"] == "example.com"
