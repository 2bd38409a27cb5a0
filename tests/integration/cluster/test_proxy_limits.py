"""A proxy that cannot be starved: connection deadlines and descriptor limits, through a real
`wicket start` with short configured timeouts.

Silent connections (TLS done but no request, no ClientHello at all, a ClientHello on the
spliced `wicket-auth` route and then nothing, a header dribbled byte by byte) are closed
within their configured deadline while other clients keep working; the daemon raises and
logs its descriptor limit; and when descriptors do run out, clients and the log say so.
"""

from __future__ import annotations

import json
import resource
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support.cluster import Cluster, WicketProcess, new_cluster, wicket_bin
from tests.support.raw_https import connect, https, is_closed, request, tls_context
from wicket.api.client import AUTH_ALPN, AUTH_SERVER_NAME
from wicket.pki.keys import generate_private_key, public_key_pem

DEADLINE = 3  # seconds: client_hello, tls_handshake and first_request of the test cluster
MARGIN = 6.0  # scheduling slack on a shared machine; the old proxy held them for an hour
SILENT_TLS = 200
COMMON_SOFT_LIMIT = 1024


def set_timeouts(cluster: Cluster, **values: str) -> None:
    """Add `proxy_service.timeouts` to the cluster's config."""
    text = cluster.config.read_text()
    anchor = f"  public_addr: {cluster.proxy_addr}\n"
    assert anchor in text
    lines = "".join(f"    {name}: {value}\n" for name, value in values.items())
    cluster.config.write_text(text.replace(anchor, anchor + "  timeouts:\n" + lines))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = new_cluster(tmp_path_factory.mktemp("proxy-limits"))
    set_timeouts(
        cluster,
        client_hello=f"{DEADLINE}s",
        tls_handshake=f"{DEADLINE}s",
        first_request=f"{DEADLINE}s",
        idle="1m",
    )
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    start_with_descriptor_limit(cluster, COMMON_SOFT_LIMIT, hard)  # the usual default
    try:
        yield cluster
    finally:
        cluster.stop()


def web_works(cluster: Cluster) -> None:
    answer = https(cluster.proxy_port, "GET", "/v1/webapi/find")
    assert answer.status == 200
    assert json.loads(answer.body)["cluster_name"] == "example.com"


def auth_works(cluster: Cluster) -> None:
    info = cluster.admin_call("GET", "/v1/cluster")
    context = tls_context(alpn=(AUTH_ALPN,), ca_pem=info["cas"]["host"])
    answer = https(
        cluster.proxy_port, "GET", "/v1/ping", context=context, server_hostname=AUTH_SERVER_NAME
    )
    assert answer.status == 200
    assert json.loads(answer.body)["cluster_name"] == "example.com"


def wait_all_closed(sockets: list[tuple[float, socket.socket]], seconds: float) -> None:
    """Each socket, opened at its time, must be closed by the peer within `seconds` of it."""
    still_open = []
    for opened, sock in sockets:
        if not is_closed(sock, max(0.05, opened + seconds - time.monotonic())):
            still_open.append(sock)
    assert not still_open, f"{len(still_open)} of {len(sockets)} still open after {seconds} s"


def test_daemon_raises_and_logs_its_descriptor_limit(cluster: Cluster) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    log = cluster.processes[-1].log_text()
    assert f"file descriptor limit raised from {COMMON_SOFT_LIMIT} to {hard}" in log
    assert f"Max open files            {hard}" in proc_limits(cluster.processes[-1])


def proc_limits(process: WicketProcess) -> str:
    return Path(f"/proc/{process.process.pid}/limits").read_text()


def test_silent_tls_connections_are_closed_while_others_work(cluster: Cluster) -> None:
    context = tls_context()
    with ExitStack() as stack:
        silent = []
        for _ in range(SILENT_TLS):
            sock = stack.enter_context(connect(cluster.proxy_port, context))
            silent.append((time.monotonic(), sock))
        web_works(cluster)
        auth_works(cluster)
        wait_all_closed(silent, DEADLINE + MARGIN)
        web_works(cluster)
        auth_works(cluster)


def test_silent_raw_tcp_is_closed_at_the_client_hello_deadline(cluster: Cluster) -> None:
    with ExitStack() as stack:
        silent = []
        for _ in range(50):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", cluster.proxy_port)))
            silent.append((time.monotonic(), sock))
        web_works(cluster)
        wait_all_closed(silent, DEADLINE + MARGIN)


def client_hello(alpn: str) -> bytes:
    """The first flight of a TLS client offering `alpn` (nothing more will follow)."""
    context = tls_context(alpn=(alpn,))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=AUTH_SERVER_NAME)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize("alpn", [AUTH_ALPN, "http/1.1", "wicket-tunnel", "wicket-mongodb"])
def test_client_hello_then_nothing_is_closed(cluster: Cluster, alpn: str) -> None:
    """Spliced (`wicket-auth`: first-bytes deadline) or terminated (handshake deadline)."""
    with ExitStack() as stack:
        silent = []
        for _ in range(20):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", cluster.proxy_port)))
            sock.sendall(client_hello(alpn))  # the server answers; the client never does
            silent.append((time.monotonic(), sock))
        auth_works(cluster)
        wait_all_closed(silent, DEADLINE + MARGIN)


def test_dribbled_request_header_is_closed_at_the_first_request_deadline(
    cluster: Cluster,
) -> None:
    with connect(cluster.proxy_port, tls_context()) as sock:
        opened = time.monotonic()
        sock.sendall(b"GET /v1/webapi/find HTTP/1.1\r\nHost: localhost\r\n")
        closed = False
        while time.monotonic() < opened + DEADLINE + MARGIN:
            try:
                sock.sendall(b"X")  # one header byte at a time, never the blank line
            except OSError:
                closed = True
                break
            if is_closed(sock, 0.3):
                closed = True
                break
        assert closed, "a request header dribbled forever kept its connection"


def test_dribbled_request_body_is_refused_at_the_deadline(cluster: Cluster) -> None:
    with connect(cluster.proxy_port, tls_context()) as sock:
        head = (
            "POST /v1/webapi/login HTTP/1.1\r\nHost: localhost\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        sock.sendall(head.encode())  # and the other 999 bytes never come
        sock.settimeout(DEADLINE + MARGIN)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 504"), answer[:200]
    assert b"request body did not arrive within" in answer


# -- running out of descriptors -------------------------------------------------------------

LOW_LIMIT = 160


def start_with_descriptor_limit(cluster: Cluster, soft: int, hard: int) -> WicketProcess:
    """`wicket start` with RLIMIT_NOFILE at (soft, hard)."""
    log_path = cluster.directory / f"wicket-nofile-{soft}.log"

    def lower_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [wicket_bin(), "start", "-c", str(cluster.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=lower_limit,  # noqa: PLW1509 - only setrlimit, no threads touched
        )
    running = WicketProcess(process, log_path)
    cluster.processes.append(running)
    running.wait_for_log("wicket started")
    return running


def test_out_of_descriptors_is_named_in_the_log_and_to_the_web_client(tmp_path: Path) -> None:
    cluster = new_cluster(tmp_path / "low-limit")
    set_timeouts(cluster, client_hello="1m", first_request="1m", idle="5m")
    try:
        process = start_with_descriptor_limit(cluster, LOW_LIMIT, LOW_LIMIT)  # cannot raise
        assert f"file descriptor limit {LOW_LIMIT} (hard limit {LOW_LIMIT})" in process.log_text()
        with ExitStack() as stack:
            # A keep-alive web connection made while descriptors were still free.
            web = stack.enter_context(connect(cluster.proxy_port, tls_context()))
            assert request(web, "GET", "/v1/webapi/find").status == 200
            # Fill every descriptor the proxy has left with connections that say nothing.
            for _ in range(LOW_LIMIT):
                stack.enter_context(socket.create_connection(("127.0.0.1", cluster.proxy_port)))
            process.wait_for_log("the proxy has run out of file descriptors", timeout=20)
            assert f"(limit {LOW_LIMIT}) while accepting connections" in process.log_text()
            # A login needs a connection to the auth service, and there is no descriptor.
            key = public_key_pem(generate_private_key()).decode()
            body = json.dumps({"user": "alice", "password": "x", "public_key_pem": key})
            answer = request(web, "POST", "/v1/webapi/login", body=body.encode())
            assert answer.status == 502, answer.text
            message = json.loads(answer.body)["error"]["message"]
            assert message.startswith(
                f"the proxy has run out of file descriptors (limit {LOW_LIMIT}) while "
                "connecting to the auth service"
            )
    finally:
        cluster.stop()
