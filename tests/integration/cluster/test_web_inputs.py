"""The proxy's web side against hostile input, through a real `wicket start` (raw HTTPS).

Path values never reach an auth API path unchecked (the invite page used to paste its
token into `/v1/invites/{token}`, so `..%2f` steered the proxy's own identity to other
endpoints), and the audited client address of a login is the real one: a forwarded
header counts only from the cluster's own proxy, which sends its accepted socket's
address for web logins.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster, new_cluster
from tests.support.raw_https import Response, https, tls_context
from wicket.api.client import AUTH_ALPN, AUTH_SERVER_NAME
from wicket.pki.keys import generate_private_key, private_key_pem, public_key_pem

PASSWORD = "correct horse battery staple"
SPOOFED = "203.0.113.7"
CLIENT = "127.0.0.2"  # loopback, but not the proxy's own address towards the auth service
WAIT = 20.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = new_cluster(tmp_path_factory.mktemp("web-inputs"))
    cluster.start()
    created = cluster.admin_call("POST", "/v1/users", {"name": "alice", "roles": ["access"]})
    token = created["invite_url"].rsplit("/", 1)[1]
    cluster.admin_call("POST", f"/v1/invites/{token}", {"password": PASSWORD})
    try:
        yield cluster
    finally:
        cluster.stop()


def web(cluster: Cluster, method: str, target: str, **kwargs: Any) -> Response:
    return https(cluster.proxy_port, method, target, **kwargs)


GOOD_FORMAT = secrets.token_hex(32)
MALFORMED = [
    "..%2fping",
    "..%2f..%2fv1%2fping",
    "%2e%2e%2fusers",
    "%2e%2e%2f%2e%2e%2fv1%2fcluster",
    "..%2Fcluster",
    "..%5cusers",
    "a" * 5000,
    "g" * 64,
    GOOD_FORMAT.upper(),
    GOOD_FORMAT[:-1],
    GOOD_FORMAT + "0",
    GOOD_FORMAT[:-2] + "%00",
    "%ff%fe",
]


@pytest.mark.parametrize("token", MALFORMED)
def test_malformed_invite_tokens_are_a_not_found_page(cluster: Cluster, token: str) -> None:
    for method, body in (("GET", b""), ("POST", b"password=aaaaaaaaaaaaa&confirm=aaaaaaaaaaaaa")):
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        answer = web(cluster, method, f"/web/invite/{token}", headers=headers, body=body)
        assert answer.status == 404, (method, token, answer.status, answer.text[:300])
        assert answer.headers["content-type"].startswith("text/html")
        assert "Set up your account" not in answer.text
        assert "invite" in answer.text.lower()


def test_unknown_but_well_formed_token_is_not_found(cluster: Cluster) -> None:
    answer = web(cluster, "GET", f"/web/invite/{GOOD_FORMAT}")
    assert answer.status == 404
    assert "invite not found" in answer.text


def test_unknown_paths_are_404_pages_or_json(cluster: Cluster) -> None:
    page = web(cluster, "GET", "/web/nothing/here")
    assert page.status == 404
    assert page.headers["content-type"].startswith("text/html")
    api = web(cluster, "GET", "/v1/webapi/..%2f..%2fv1%2fusers")
    assert api.status == 404
    assert json.loads(api.body)["error"]["kind"] == "not_found"


def test_malformed_login_bodies_are_400_json(cluster: Cluster) -> None:
    for body in (b"[1]", b"{", b'{"user": ["alice"], "password": "x", "public_key_pem": "x"}'):
        answer = web(cluster, "POST", "/v1/webapi/login", body=body)
        assert answer.status == 400, (body, answer.status, answer.text)
        assert json.loads(answer.body)["error"]["kind"] == "bad_parameter"


def login_body(user: str, password: str) -> bytes:
    key = public_key_pem(generate_private_key()).decode()
    return json.dumps({"user": user, "password": password, "public_key_pem": key}).encode()


def login_events(cluster: Cluster, user: str, count: int = 1) -> list[dict[str, Any]]:
    """The `user.login` events of `user`, once the audit writer stored `count` of them."""
    deadline = time.monotonic() + WAIT
    while True:
        found = cluster.admin_call("GET", f"/v1/events?type=user.login&user={user}")
        events = found.get("events", []) if isinstance(found, dict) else found
        if len(events) >= count or time.monotonic() > deadline:
            return list(events)
        time.sleep(0.2)


def test_web_login_is_audited_with_the_clients_address(cluster: Cluster) -> None:
    answer = web(
        cluster,
        "POST",
        "/v1/webapi/login",
        body=login_body("alice", PASSWORD),
        headers={"Content-Type": "application/json", "X-Forwarded-For": SPOOFED},
        source=CLIENT,
    )
    assert answer.status == 200, answer.text
    refused = web(
        cluster, "POST", "/v1/webapi/login", body=login_body("web-nobody", "x"), source=CLIENT
    )
    assert refused.status == 403, refused.text
    [ok] = [e for e in login_events(cluster, "alice") if e["success"]]
    assert ok["client_addr"] == CLIENT
    [failed] = login_events(cluster, "web-nobody")
    assert failed["client_addr"] == CLIENT


def spliced_login(cluster: Cluster, user: str, cert_dir: Path | None) -> Response:
    """`POST /v1/login` straight to the auth service through the `wicket-auth` splice."""
    info = cluster.admin_call("GET", "/v1/cluster")
    context = tls_context(
        alpn=(AUTH_ALPN,),
        ca_pem=info["cas"]["host"],
        cert_file=None if cert_dir is None else cert_dir / "cert.pem",
        key_file=None if cert_dir is None else cert_dir / "key.pem",
    )
    return https(
        cluster.proxy_port,
        "POST",
        "/v1/login",
        body=login_body(user, "wrong password"),
        headers={"Content-Type": "application/json", "X-Forwarded-For": SPOOFED},
        source=CLIENT,
        context=context,
        server_hostname=AUTH_SERVER_NAME,
    )


def test_forwarded_header_from_others_is_ignored(cluster: Cluster, tmp_path: Path) -> None:
    # No certificate at all.
    assert spliced_login(cluster, "spoof-nocert", None).status == 403
    # A user's certificate: a user is not a proxy.
    key = generate_private_key()
    body = json.loads(login_body("alice", PASSWORD))
    body["public_key_pem"] = public_key_pem(key).decode()
    answer = web(cluster, "POST", "/v1/webapi/login", body=json.dumps(body).encode())
    assert answer.status == 200, answer.text
    (tmp_path / "cert.pem").write_text(json.loads(answer.body)["cert_pem"])
    (tmp_path / "key.pem").write_bytes(private_key_pem(key))
    assert spliced_login(cluster, "spoof-usercert", tmp_path).status == 403
    for user in ("spoof-nocert", "spoof-usercert"):
        [event] = login_events(cluster, user)
        assert event["client_addr"] != SPOOFED
        assert event["client_addr"] == "127.0.0.1"  # the splice's own connection
