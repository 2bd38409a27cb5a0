"""The auth API client: JSON over HTTPS with the caller's certificate (mutual TLS).

Everyone talks to the auth service through this: the proxy (host certificate),
agents and remote `wctl`/`wsh` (through the proxy's `wicket-auth` route), and
`wctl` on the auth host (local admin identity). The auth service's certificate
always names `wicket-auth`, so it is verified the same way whichever address
reached it; and only a host certificate of role `auth` is accepted as that name
(`wicket.server_identity`), so no other host of the cluster can pose as it.
"""

from __future__ import annotations

import json
import ssl
from types import SimpleNamespace, TracebackType
from typing import Any

import aiohttp

from wicket.api.bodies import read_bounded
from wicket.api.errors import error_from_body
from wicket.errors import AccessDenied, Timeout, UpstreamError
from wicket.identity import HostRole
from wicket.server_identity import describe_verification_error, require_server_role

AUTH_SERVER_NAME = "wicket-auth"  # DNS SAN every auth service certificate carries
AUTH_ALPN = "wicket-auth"
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
DEFAULT_TIMEOUT = 30.0
USER_REFUSAL_HINT = "log in again (wsh login) or use this cluster's identity"


async def _note_reuse(
    _session: aiohttp.ClientSession, context: SimpleNamespace, _params: object
) -> None:
    """Record that a call went out on a pooled connection (see `AuthClient.call`)."""
    if isinstance(context.trace_request_ctx, SimpleNamespace):
        context.trace_request_ctx.reused = True


_REUSE = aiohttp.TraceConfig()
_REUSE.on_connection_reuseconn.append(_note_reuse)


class AuthClient:
    """Calls `/v1/...` on an auth service (directly or through a proxy)."""

    def __init__(
        self,
        address: str,
        ssl_context: ssl.SSLContext,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        refusal_hint: str = USER_REFUSAL_HINT,
    ) -> None:
        self.address = address  # HOST:PORT
        self.refusal_hint = refusal_hint  # what to do if the server refused our certificate
        self._ssl = require_server_role(ssl_context, HostRole.AUTH)
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 10.0))
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AuthClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _session_or_new(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=32)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, trace_configs=[_REUSE]
            )
        return self._session

    async def close(self) -> None:
        """Close pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None
    ) -> Any:
        """One API call (extra `headers` if any); raises the WicketError the server described."""
        url = f"https://{self.address}{path}"
        session = self._session_or_new()
        connection = SimpleNamespace(reused=False)
        try:
            async with session.request(
                method,
                url,
                json=body,
                headers=headers,
                server_hostname=AUTH_SERVER_NAME,
                trace_request_ctx=connection,
            ) as response:
                raw = await read_bounded(response.content, MAX_RESPONSE_BYTES)
                if raw is None:
                    raise UpstreamError(f"answer from {self.address} is larger than 16 MiB")
                try:
                    data = json.loads(raw) if raw else None
                except ValueError:
                    if response.status < 300:
                        raise UpstreamError(f"answer from {self.address} is not JSON") from None
                    data = None
                if response.status >= 300:
                    raise error_from_body(response.status, data)
                return data
        except TimeoutError as exc:
            raise Timeout(f"the auth service at {self.address} did not answer in time") from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            message = describe_verification_error(
                exc.certificate_error, self.address, HostRole.AUTH
            )
            if message is not None:
                raise AccessDenied(message) from exc
            raise UpstreamError(
                f"cannot verify the auth service at {self.address}: {exc.certificate_error}"
            ) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            if isinstance(exc, aiohttp.ClientConnectorError):
                raise UpstreamError(
                    f"cannot reach the auth service at {self.address}: {exc.os_error}"
                ) from exc
            if connection.reused:  # a pooled connection the server closed: it restarted
                raise UpstreamError(
                    f"the auth service at {self.address} closed a kept-alive connection: "
                    "it is probably restarting; try again in a moment"
                ) from exc
            # TLS 1.3 reports a refused client certificate only as a closed new connection.
            raise AccessDenied(
                f"the auth service at {self.address} closed the connection before answering: "
                "it is restarting, or it refused this call's certificate (expired, or issued "
                f"by another cluster's CA); if it persists, {self.refusal_hint}"
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamError(
                f"cannot reach the auth service at {self.address}: {exc.os_error}"
            ) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"auth service at {self.address}: {exc}") from exc

    async def get(self, path: str) -> Any:
        """GET `path`."""
        return await self.call("GET", path)

    async def post(
        self, path: str, body: Any = None, *, headers: dict[str, str] | None = None
    ) -> Any:
        """POST `path` with a JSON body."""
        return await self.call("POST", path, body, headers=headers)

    async def put(self, path: str, body: Any = None) -> Any:
        """PUT `path` with a JSON body."""
        return await self.call("PUT", path, body)

    async def delete(self, path: str) -> Any:
        """DELETE `path`."""
        return await self.call("DELETE", path)
