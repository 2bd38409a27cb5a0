"""The proxy's web side: discovery (`/v1/webapi/find`), login, the invite page, install script.

It holds no state: logins and invites are forwarded to the auth service with the
proxy's host identity; the password or invite token in the request is what
authenticates the user there. Because that identity is the proxy's, no request value
reaches an auth API path unchecked (`wicket.proxy.inputs`), and a web login carries
the address of the client's socket for the audit log (`wicket.authserver.forwarded`).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import segno
from aiohttp import web

from wicket import __version__
from wicket.api.bodies import read_json_object
from wicket.api.client import AuthClient
from wicket.api.errors import error_body
from wicket.authserver.forwarded import FORWARDED_FOR
from wicket.descriptors import exhaustion_message, is_exhaustion
from wicket.errors import BadParameter, NotFound, Timeout, UpstreamError, WicketError
from wicket.proxy.inputs import auth_path, invite_token, login_body
from wicket.proxy.install import (
    SAFE_WHEEL,
    WHEEL_NAME,
    Wheel,
    find_wheel,
    render_script,
    wheel_directories,
)

log = logging.getLogger("wicket.proxy")

MAX_FORM_BYTES = 64 * 1024
DEFAULT_BODY_TIMEOUT = 10.0
MIN_CLIENT_VERSION = "0.1.0"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · Wicket</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem; }}
label {{ display: block; margin-top: 1rem; }} input {{ width: 100%; padding: .4rem; }}
button {{ margin-top: 1.5rem; padding: .5rem 1.2rem; }} .error {{ color: #b00020; }}
code {{ background: #f3f3f3; padding: .1rem .3rem; }}
</style></head><body><h1>{title}</h1>{body}</body></html>"""


def page(title: str, body: str, status: int = 200) -> web.Response:
    """An HTML page in the house style."""
    text = PAGE.format(title=html.escape(title), body=body)
    return web.Response(text=text, content_type="text/html", status=status)


class ProxyWeb:
    """Handlers of the proxy's HTTPS side."""

    def __init__(
        self,
        *,
        auth: AuthClient,
        cluster_name: str,
        public_addr: str,
        second_factor: str,
        host_ca_pem: str,
        data_dir: Path | None = None,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
    ) -> None:
        self.auth = auth
        self.cluster_name = cluster_name
        self.public_addr = public_addr
        self.second_factor = second_factor
        self.host_ca_pem = host_ca_pem
        self.data_dir = data_dir
        self.body_timeout = body_timeout

    def application(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(middlewares=[self._errors], client_max_size=MAX_FORM_BYTES)
        app.add_routes(
            [
                web.get("/v1/webapi/find", self.find),
                web.get("/v1/webapi/ping", self.ping),
                web.get("/v1/webapi/cluster", self.cluster),
                web.post("/v1/webapi/login", self.login),
                web.get("/web/invite/{token}", self.invite_page),
                web.post("/web/invite/{token}", self.invite_submit),
                web.get("/scripts/install.sh", self.install_script),
                web.get("/webapi/wheels/{name}", self.wheel),
            ]
        )
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Errors as JSON for the API and as a page for `/web/...`; never a bare 500."""
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except WicketError as error:
            if _out_of_descriptors(error):
                error = UpstreamError(exhaustion_message("connecting to the auth service"))
                log.error("%s %s: %s", request.method, request.path, error)
            status, body = error_body(error)
            message = str(error)
        except web.HTTPException as error:
            if error.status < 400:
                raise
            text = f"{request.method} {request.path}: {error.reason}"
            known = NotFound(text) if error.status == 404 else BadParameter(text)
            _, body = error_body(known)
            status, message = error.status, text
        except Exception:
            log.exception("web request %s %s failed", request.method, request.path)
            status, body = error_body(WicketError("internal error in the proxy; see its log"))
            message = body["error"]["message"]
        if request.path.startswith("/web/"):
            title = "Page not found" if status == 404 else "Something went wrong"
            return page(title, f'<p class="error">{html.escape(message)}</p>', status)
        return web.json_response(body, status=status)

    @contextlib.asynccontextmanager
    async def _body_deadline(self) -> AsyncIterator[None]:
        """A request body must arrive within `body_timeout` (no body dribbled for ever)."""
        try:
            async with asyncio.timeout(self.body_timeout):
                yield
        except TimeoutError:
            raise Timeout(
                f"the request body did not arrive within {self.body_timeout:g} s"
            ) from None

    def _find_document(self) -> dict[str, Any]:
        return {
            "server_version": __version__,
            "min_client_version": MIN_CLIENT_VERSION,
            "cluster_name": self.cluster_name,
            "auth": {"type": "local", "second_factor": self.second_factor},
            "proxy": {
                "public_addr": self.public_addr,
                "tls_routing_enabled": True,
                "alpn": ["wicket-auth", "wicket-tunnel", "wicket-mongodb"],
            },
        }

    async def find(self, request: web.Request) -> web.Response:
        """What a client needs before logging in (the guide's `curl .../find | jq`)."""
        return web.json_response(self._find_document())

    async def ping(self, request: web.Request) -> web.Response:
        """Liveness, with the same facts as find."""
        return web.json_response(self._find_document())

    async def cluster(self, request: web.Request) -> web.Response:
        """The cluster's public CA certificates and pin, for `wsh login` to check."""
        return web.json_response(await self.auth.get("/v1/cluster"))

    async def login(self, request: web.Request) -> web.Response:
        """Forward a login (user, password, otp, public key) to the auth service."""
        async with self._body_deadline():
            body = login_body(await _json_body(request))
        # The auth service believes this header from proxies only (authserver.forwarded):
        # it is the address of the socket this proxy accepted, never the client's own header.
        client = request.remote
        headers = {FORWARDED_FOR: client} if client else None
        result = await self.auth.post("/v1/login", body, headers=headers)
        return web.json_response(result)

    async def _invite(self, token: str) -> dict[str, Any]:
        """The pending invite of a checked token, as the auth service describes it."""
        info = await self.auth.get(auth_path("/v1/invites", token))
        if not isinstance(info, dict):
            raise UpstreamError("the auth service answered the invite lookup with no object")
        return info

    async def invite_page(self, request: web.Request) -> web.Response:
        """The page where an invited user sets a password (and enrolls TOTP)."""
        token = invite_token(request.match_info["token"])
        try:
            info = await self._invite(token)
        except NotFound as error:
            return page("Invite not valid", f'<p class="error">{html.escape(str(error))}</p>', 404)
        return page("Set up your account", self._invite_form(info, None))

    def _invite_form(self, info: dict[str, Any], error: str | None) -> str:
        user = html.escape(str(info.get("user", "")))
        parts = [
            f"<p>Welcome, <strong>{user}</strong>. Choose a password for cluster "
            f"<code>{html.escape(self.cluster_name)}</code>.</p>"
        ]
        if error:
            parts.append(f'<p class="error" id="error">{html.escape(error)}</p>')
        parts.append('<form method="post" id="invite">')
        parts.append(
            '<label>Password (at least 12 characters)<input type="password" name="password" '
            'id="password" autocomplete="new-password" required minlength="12"></label>'
            '<label>Confirm password<input type="password" name="confirm" id="confirm" '
            'autocomplete="new-password" required></label>'
        )
        otp_uri = info.get("otp_uri")
        if info.get("otp_required") and isinstance(otp_uri, str):
            buffer = io.BytesIO()
            segno.make(otp_uri, error="m").save(buffer, kind="svg", scale=4, xmldecl=False)
            parts.append(
                "<p>Scan this code with your authenticator app, then enter the code it shows:</p>"
                f'<div id="otp-qr">{buffer.getvalue().decode()}</div>'
                f'<p><small>Or enter the secret by hand: <code id="otp-uri">'
                f"{html.escape(otp_uri)}</code></small></p>"
                '<label>One-time code<input name="otp" id="otp" inputmode="numeric" '
                'autocomplete="one-time-code" required></label>'
            )
        parts.append('<button type="submit" id="submit">Create account</button></form>')
        return "".join(parts)

    async def invite_submit(self, request: web.Request) -> web.Response:
        """Complete the invite; show the next step or the form again with the error."""
        token = invite_token(request.match_info["token"])
        async with self._body_deadline():
            form = await request.post()
        password = str(form.get("password", ""))
        confirm = str(form.get("confirm", ""))
        otp = form.get("otp")
        try:
            info = await self._invite(token)
        except NotFound as error:
            return page("Invite not valid", f'<p class="error">{html.escape(str(error))}</p>', 404)
        if password != confirm:
            return page("Set up your account", self._invite_form(info, "Passwords do not match."))
        try:
            result = await self.auth.post(
                auth_path("/v1/invites", token),
                {"password": password, "otp": str(otp) if otp is not None else None},
            )
        except WicketError as error:
            return page("Set up your account", self._invite_form(info, str(error)), 400)
        done_user = result.get("user") if isinstance(result, dict) else None
        if not isinstance(done_user, dict) or not isinstance(done_user.get("name"), str):
            raise UpstreamError("the auth service answered the invite with no user name")
        user = html.escape(done_user["name"])
        command = f"wsh login --proxy={html.escape(self.public_addr)} --user={user}"
        return page(
            "Account ready",
            '<p id="done">Your password is set. Log in from a terminal:</p>'
            f"<p><code>{command}</code></p>",
        )

    def _wheel_or_error(self) -> Wheel:
        wheel = find_wheel(self.data_dir)
        if wheel is None:
            places = ", ".join(str(p) for p in wheel_directories(self.data_dir))
            raise UpstreamError(
                f"this proxy has no {WHEEL_NAME} to install; put it in one of: {places}"
            )
        return wheel

    async def install_script(self, request: web.Request) -> web.Response:
        """The installer for this cluster's version (`curl .../scripts/install.sh | sudo bash`)."""
        try:
            wheel = self._wheel_or_error()
        except UpstreamError as error:
            script = f"#!/bin/sh\necho 'wicket install: {error}' >&2\nexit 1\n"
            return web.Response(text=script, content_type="text/x-shellscript", status=503)
        text = render_script(proxy=self.public_addr, wheel=wheel, ca_pem=self.host_ca_pem)
        return web.Response(text=text, content_type="text/x-shellscript")

    async def wheel(self, request: web.Request) -> web.StreamResponse:
        """The wheel the install script downloads (only this version's)."""
        name = request.match_info["name"]
        wheel = self._wheel_or_error()
        if not SAFE_WHEEL.match(name) or name != wheel.path.name:
            raise NotFound(f"no wheel named {name}; this proxy serves {wheel.path.name}")
        return web.FileResponse(wheel.path, headers={"Content-Type": "application/octet-stream"})


def _out_of_descriptors(error: BaseException) -> bool:
    """Whether an error was caused, anywhere down its chain, by running out of descriptors."""
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            return False
        if is_exhaustion(seen) or is_exhaustion(getattr(seen, "os_error", None)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def _json_body(request: web.Request) -> dict[str, Any]:
    return await read_json_object(request, MAX_FORM_BYTES)
