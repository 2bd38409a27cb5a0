"""The invite page in a real headless Chromium: set a password (and enroll TOTP), then log in."""

from __future__ import annotations

import json
import shutil
import ssl
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.support.cluster import Cluster, new_cluster, run_coroutine
from wicket.pki.keys import generate_private_key, public_key_pem

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is installed by scripts/dev.sh setup")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def start_cluster(directory: Path, *, otp: bool) -> Cluster:
    cluster = new_cluster(directory)
    if otp:
        text = cluster.config.read_text().replace("second_factor: 'off'", "second_factor: otp")
        cluster.config.write_text(text)
    cluster.start()
    return cluster


def proxy_login(cluster: Cluster, user: str, password: str, otp: str | None) -> dict[str, Any]:
    """The proxy's login endpoint, as wsh calls it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    body = {
        "user": user,
        "password": password,
        "otp": otp,
        "public_key_pem": public_key_pem(generate_private_key()).decode(),
    }

    async def call() -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"https://{cluster.proxy_addr}/v1/webapi/login", json=body, ssl=context
            ) as response,
        ):
            data: dict[str, Any] = json.loads(await response.read())
            data["status"] = response.status
            return data

    return run_coroutine(call)


def test_invite_page_sets_password_then_login_works(browser: Browser, tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path / "node", otp=False)
    try:
        created = cluster.admin_call(
            "POST", "/v1/users", {"name": "alice", "roles": ["access"], "traits": {}}
        )
        url = created["invite_url"]
        assert url.startswith(f"https://{cluster.proxy_addr}/web/invite/")
        page = browser.new_page(ignore_https_errors=True)
        page.goto(url)
        assert "alice" in page.inner_text("body")
        page.fill("#password", "short")
        page.fill("#confirm", "short")
        page.click("#submit")  # the browser refuses (minlength); nothing is sent
        assert page.locator("#done").count() == 0
        page.fill("#password", PASSWORD)
        page.fill("#confirm", PASSWORD + "x")
        page.click("#submit")
        page.wait_for_selector("#error")
        assert "do not match" in page.inner_text("#error")
        page.fill("#password", PASSWORD)
        page.fill("#confirm", PASSWORD)
        page.click("#submit")
        page.wait_for_selector("#done")
        assert f"wsh login --proxy={cluster.proxy_addr} --user=alice" in page.inner_text("body")
        page.screenshot(path=str(tmp_path / "invite-done.png"))
        page.close()
        assert proxy_login(cluster, "alice", PASSWORD, None)["status"] == 200
        refused = proxy_login(cluster, "alice", "wrong password!!", None)
        assert refused["status"] == 403
        assert "invalid username or password" in refused["error"]["message"]
        # the invite is single-use
        again = browser.new_page(ignore_https_errors=True)
        again.goto(url)
        assert "Invite not valid" in again.inner_text("body")
        again.close()
    finally:
        cluster.stop()


def test_invite_page_enrolls_totp(browser: Browser, tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path / "node", otp=True)
    try:
        created = cluster.admin_call(
            "POST", "/v1/users", {"name": "bob", "roles": ["access"], "traits": {}}
        )
        page = browser.new_page(ignore_https_errors=True)
        page.goto(created["invite_url"])
        assert page.locator("#otp-qr svg").count() == 1
        uri = page.inner_text("#otp-uri")
        secret = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0]
        totp = pyotp.TOTP(secret)
        page.fill("#password", PASSWORD)
        page.fill("#confirm", PASSWORD)
        page.fill("#otp", totp.now())
        page.click("#submit")
        page.wait_for_selector("#done")
        page.close()
        no_code = proxy_login(cluster, "bob", PASSWORD, None)
        assert no_code["status"] == 403
        # a code from the next step: the one used at enrollment cannot be replayed
        later = totp.at(int(time.time()) + 30)
        assert proxy_login(cluster, "bob", PASSWORD, later)["status"] == 200
    finally:
        cluster.stop()


def test_repeated_wrong_passwords_lock_the_account(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path / "node", otp=False)
    try:
        created = cluster.admin_call(
            "POST", "/v1/users", {"name": "carol", "roles": ["access"], "traits": {}}
        )
        token = created["invite_url"].rsplit("/", 1)[1]
        cluster.admin_call("POST", f"/v1/invites/{token}", {"password": PASSWORD})
        for _ in range(5):
            failed = proxy_login(cluster, "carol", "not the password", None)
            assert failed["status"] == 403
        locked = proxy_login(cluster, "carol", PASSWORD, None)
        assert locked["status"] == 403
        message = locked["error"]["message"]
        assert "locked" in message
        assert "wctl users reset carol" in message
    finally:
        cluster.stop()
