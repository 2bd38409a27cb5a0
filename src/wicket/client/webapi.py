"""Client layer: `wsh`'s calls to the proxy's HTTPS web API (find, cluster, login).

These go to the proxy's web side (ALPN `http/1.1`). Before the client trusts the
cluster it fetches `/v1/webapi/cluster` without verifying the proxy, only to learn
the host CA and compare its pin; every later call verifies the proxy's certificate
against that CA, its name against the address dialled and its host role (`proxy`:
`wicket.server_identity`) -- or, with `--insecure`, nothing.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import aiohttp

from wicket.api.bodies import read_bounded
from wicket.api.errors import error_from_body
from wicket.errors import AccessDenied, Timeout, UpstreamError
from wicket.identity import HostRole
from wicket.server_identity import describe_verification_error, require_server_role
from wicket.tlsconfig import client_context

WEB_ALPN = "http/1.1"
MAX_WEB_RESPONSE = 1024 * 1024
WEB_TIMEOUT = 30.0


def unverified_context(alpn: list[str] | None = None) -> ssl.SSLContext:
    """TLS that verifies nothing: for fetching the CA before the pin check, or `--insecure`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(alpn or [WEB_ALPN])
    return context


def verified_context(host_ca_pem: bytes) -> ssl.SSLContext:
    """TLS to the proxy's web side, verified against the cluster's host CA."""
    return client_context(ca_pems=[host_ca_pem], alpn=[WEB_ALPN])


class ProxyWebClient:
    """JSON calls to one proxy's `/v1/webapi/...`."""

    def __init__(
        self, proxy: str, context: ssl.SSLContext, *, timeout: float = WEB_TIMEOUT
    ) -> None:
        self.proxy = proxy
        self._context = require_server_role(context, HostRole.PROXY)
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 10.0))

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """One call; the proxy's error answers become the matching WicketError."""
        url = f"https://{self.proxy}{path}"
        connector = aiohttp.TCPConnector(ssl=self._context, limit=4)
        try:
            async with (
                aiohttp.ClientSession(connector=connector, timeout=self._timeout) as session,
                session.request(method, url, json=body) as response,
            ):
                raw = await read_bounded(response.content, MAX_WEB_RESPONSE)
                if raw is None:
                    raise UpstreamError(f"answer from {self.proxy} is larger than 1 MiB")
                try:
                    data = json.loads(raw) if raw else None
                except ValueError:
                    data = None
                if response.status >= 300:
                    raise error_from_body(response.status, data)
                return data
        except TimeoutError as exc:
            raise Timeout(f"the proxy at {self.proxy} did not answer in time") from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            message = describe_verification_error(exc.certificate_error, self.proxy, HostRole.PROXY)
            if message is not None:
                raise AccessDenied(message) from exc
            raise UpstreamError(
                f"cannot verify the proxy at {self.proxy}: {exc.certificate_error}"
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamError(f"cannot reach the proxy at {self.proxy}: {exc.os_error}") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"proxy at {self.proxy}: {exc}") from exc

    async def find(self) -> dict[str, Any]:
        """`/v1/webapi/find`: version, cluster name, second factor."""
        return _object(await self.call("GET", "/v1/webapi/find"), "find")

    async def cluster(self) -> dict[str, Any]:
        """`/v1/webapi/cluster`: the cluster's CA certificates and pin."""
        return _object(await self.call("GET", "/v1/webapi/cluster"), "cluster")

    async def login(self, body: dict[str, Any]) -> dict[str, Any]:
        """`/v1/webapi/login`: password (and OTP) for a certificate of our public key."""
        return _object(await self.call("POST", "/v1/webapi/login", body), "login")


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise UpstreamError(f"the proxy's {what} answer is not a JSON object")
    return data
